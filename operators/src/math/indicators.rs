//! Technical indicators as incremental state machines: O(1) per update (a ring buffer of at most
//! the period), no I/O, `update(..) -> Option<value>` while warming up. All follow TA-Lib's
//! conventions and, where TA-Lib has the indicator, its floating-point operation order, so the
//! values equal TA-Lib 0.8's (tests compare them with TA-Lib's own output, warm-up rows included,
//! at prices from 1e-8 to 1e5). No zero test uses a fixed epsilon: each is exact or relative to
//! the values tested, so an indicator reads the same at every price scale (prices
//! multiplied by a power of two give exactly scaled outputs):
//!
//! | indicator | TA-Lib | first value at bar (0-based) | convention |
//! | --- | --- | --- | --- |
//! | [`Sma`]`(n)` | `SMA` | n−1 | running sum: add the new value, divide, subtract the oldest |
//! | [`super::Ema`]`(n)` | `EMA` | n−1 | seeded with the SMA of the first n values, then `(x − ema)·k + ema` as one fused multiply-add, `k = 2/(n+1)` |
//! | [`Wma`]`(n)` | `WMA` | n−1 | weights 1..n (newest n), divided by n(n+1)/2; running sums recomputed from the window every 8·n values (TA-Lib 0.8) |
//! | [`Rsi`]`(n)` | `RSI` | n | Wilder: the first averages are the means of the first n gains and losses, then `avg = (avg·(n−1) + x)·(1/n)`; 0 only when gains + losses are exactly 0 (TA-Lib 0.8's `> 0` test; the averages are multiplied by 1/n) |
//! | [`Macd`]`(12, 26, 9)` | `MACD` | slow−1 + signal−1 (33) | fast and slow EMAs both start at bar slow−1: the fast one is seeded with the SMA of the *fast* values ending there (not of the first ones); signal = EMA of the MACD line; histogram = MACD − signal |
//! | [`Bollinger`]`(20, 2)` | `BBANDS` (SMA) | n−1 | middle = SMA; population σ from running sums of `x − c` (TA-Lib 0.8): `c` starts at the first value and moves to the window's mean when the sums have drifted (relative tests, or every 32·n bars), where σ = 0 if σ² ≤ 1e-12·mean((x − c)²) |
//! | [`Atr`]`(14)` | `ATR` | n | true range from bar 1; the first ATR is the mean of the first n true ranges, then Wilder smoothing `atr·((n−1)/n) + tr·(1 − (n−1)/n)` as one fused multiply-add |
//! | [`Obv`] | `OBV` | 0 | starts at the first bar's volume; ± volume when the close rises / falls |
//! | [`Stoch`]`(14, 3, 3)` | `STOCH` (SMA, SMA) | k−1 + sk−1 + sd−1 (17) | fast %K = ((close − lowest low)/(highest high − lowest low))·100, 0 when the range is within 1e-14 of \|highest\| + \|lowest\| (TA-Lib's `TA_IS_ZERO_SCALED`); slow %K = SMA of fast %K; %D = SMA of slow %K |
//! | [`Roc`]`(n)` | `ROC` | n | `(x/x[n ago] − 1)·100`, 0 when the old value is exactly 0 |
//! | [`Momentum`]`(n)` | `MOM` | n | `x − x[n ago]` |
//! | [`Volatility`]`(n)` | — | n (n log returns) | population standard deviation of the last n log returns `ln(c/c_prev)` |
//! | [`ZScore`]`(n)` | — | n−1 | `(x − mean)/σ` over the last n values, population σ; 0 when σ = 0 (a window of equal values) |
//! | [`Vwap`]`(n)` | — | n−1 | Σ quote volume / Σ volume over the last n candles, exact in `Decimal` |
//!
//! The last three have no TA-Lib function; their reference is exact arithmetic on the same
//! inputs (Python fractions and `decimal`), which numpy's `std` is not at large price scales.
//! Volatility and z-score keep running sums shifted by a value of the window and rebuilt from the
//! window every `n − 1` updates and after a jump or spike leaves it, which keeps the variance free
//! of catastrophic cancellation for prices far from zero and of accumulated rounding.

use std::collections::VecDeque;

use rust_decimal::Decimal;

pub use crate::model::{IndicatorValues, FLOAT_COLUMNS};

/// TA-Lib's relative zero test (`TA_IS_ZERO_SCALED(v, scale)`: `|v| ≤ 1e-14·scale`), for a
/// difference `v` of two values whose magnitudes add up to `scale`: scale-free, about 90 ulp.
fn is_zero_scaled(v: f64, scale: f64) -> bool {
    v.abs() <= TA_EPSILON * scale
}

/// TA-Lib's `TA_EPSILON`.
const TA_EPSILON: f64 = 1e-14;

/// One candle's values for the indicators that need more than the close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: f64,
}

/// Simple moving average (TA-Lib `SMA`) in `f64`.
#[derive(Debug, Clone)]
pub struct Sma {
    n: usize,
    buf: VecDeque<f64>,
    total: f64,
}

impl Sma {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Sma {
            n,
            buf: VecDeque::with_capacity(n + 1),
            total: 0.0,
        }
    }

    /// Adds a value.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.total += x;
        self.buf.push_back(x);
        if self.buf.len() < self.n {
            return None;
        }
        let out = self.total / self.n as f64;
        if let Some(old) = self.buf.pop_front() {
            self.total -= old;
        }
        Some(out)
    }
}

/// Weighted moving average (TA-Lib `WMA`): weights 1..n, newest heaviest. Like TA-Lib 0.8 it
/// recomputes its running sums from the window every 8·n values.
#[derive(Debug, Clone)]
pub struct Wma {
    n: usize,
    buf: VecDeque<f64>,
    period_sum: f64,
    period_sub: f64,
    trailing: f64,
    seen: usize,
    countdown: usize,
}

impl Wma {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Wma {
            n,
            buf: VecDeque::with_capacity(n + 1),
            period_sum: 0.0,
            period_sub: 0.0,
            trailing: 0.0,
            seen: 0,
            countdown: 8 * n,
        }
    }

    /// Adds a value.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.seen += 1;
        self.buf.push_back(x);
        if self.seen < self.n {
            self.period_sub += x;
            self.period_sum += x * self.seen as f64;
            return None;
        }
        let n = self.n as f64;
        let divider = (n + 1.0) * n * 0.5;
        self.countdown -= 1;
        let total = if self.countdown == 0 {
            self.countdown = 8 * self.n;
            let (mut sub, mut total) = (0.0, 0.0);
            for (i, v) in self.buf.iter().enumerate() {
                sub += v;
                total += v * (i + 1) as f64;
            }
            self.period_sub = sub;
            total
        } else {
            self.period_sub += x;
            self.period_sub -= self.trailing;
            x * n + self.period_sum
        };
        self.period_sum = total - self.period_sub;
        self.trailing = self.buf.pop_front().unwrap_or(0.0);
        Some(total / divider)
    }
}

/// Relative strength index, Wilder's smoothing (TA-Lib `RSI`).
#[derive(Debug, Clone)]
pub struct Rsi {
    n: usize,
    inv_n: f64,
    prev: Option<f64>,
    changes: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Rsi {
            n,
            inv_n: 1.0 / n as f64,
            prev: None,
            changes: 0,
            gain: 0.0,
            loss: 0.0,
        }
    }

    /// `100·gain/(gain + loss)`; 0 only when both averages are exactly 0 (TA-Lib 0.8 tests
    /// `gain + loss > 0`, no epsilon: any price scale keeps its RSI).
    fn value(&self) -> f64 {
        let t = self.loss + self.gain;
        if t > 0.0 {
            (self.gain / t) * 100.0
        } else {
            0.0
        }
    }

    /// Adds a close.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        let d = x - prev;
        // TA-Lib's split of the change: the gain `up` is `d` when positive, the loss `up − d`.
        let up = if d > 0.0 { d } else { 0.0 };
        let down = up - d;
        self.changes += 1;
        if self.changes <= self.n {
            self.gain += up;
            self.loss += down;
            if self.changes < self.n {
                return None;
            }
            self.loss *= self.inv_n;
            self.gain *= self.inv_n;
            return Some(self.value());
        }
        let m = (self.n - 1) as f64;
        self.gain = (self.gain * m + up) * self.inv_n;
        self.loss = (down + self.loss * m) * self.inv_n;
        Some(self.value())
    }
}

/// MACD line, signal and histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// Fast EMA − slow EMA.
    pub macd: f64,
    /// EMA of the MACD line.
    pub signal: f64,
    /// MACD − signal.
    pub hist: f64,
}

/// MACD with TA-Lib's lookback alignment (`MACD`).
#[derive(Debug, Clone)]
pub struct Macd {
    fast_n: usize,
    recent: VecDeque<f64>,
    fast: Option<super::Ema>,
    slow: super::Ema,
    signal: super::Ema,
}

impl Macd {
    /// Periods (TA-Lib swaps fast and slow when fast > slow).
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        let (fast, slow) = if slow < fast {
            (slow, fast)
        } else {
            (fast, slow)
        };
        Macd {
            fast_n: fast.max(1),
            recent: VecDeque::with_capacity(fast.max(1) + 1),
            fast: None,
            slow: super::Ema::new(slow),
            signal: super::Ema::new(signal),
        }
    }

    /// Adds a close.
    pub fn update(&mut self, x: f64) -> Option<MacdValue> {
        let slow = self.slow.update(x);
        let fast = match (&mut self.fast, slow) {
            (Some(f), _) => f.update(x),
            (None, None) => {
                self.recent.push_back(x);
                if self.recent.len() > self.fast_n {
                    self.recent.pop_front();
                }
                None
            }
            (None, Some(_)) => {
                // Seed the fast EMA with the values ending at the slow one's first bar.
                self.recent.push_back(x);
                if self.recent.len() > self.fast_n {
                    self.recent.pop_front();
                }
                let mut f = super::Ema::new(self.fast_n);
                let mut v = None;
                for r in self.recent.drain(..) {
                    v = f.update(r);
                }
                self.fast = Some(f);
                v
            }
        };
        let macd = fast? - slow?;
        let signal = self.signal.update(macd)?;
        Some(MacdValue {
            macd,
            signal,
            hist: macd - signal,
        })
    }
}

/// Bollinger bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Middle + k·σ.
    pub upper: f64,
    /// SMA.
    pub middle: f64,
    /// Middle − k·σ.
    pub lower: f64,
}

/// Bollinger bands over an SMA (TA-Lib `BBANDS`, equal up and down deviations), with TA-Lib
/// 0.8's deviation: running sums of the values shifted by a reference `c`, `σ² = mean((x − c)²) −
/// mean(x − c)²`. The reference starts at the first value; the sums are rebuilt around the
/// window's mean (`c` = mean, `σ = 0` when `σ² ≤ 1e-12·mean((x − c)²)`) when the shifted second
/// moment has grown past 1e6·σ², when a leaving value dominates it 1e6-fold, or every 32·n bars.
/// Every test is relative, so the bands are the same at any price scale.
#[derive(Debug, Clone)]
pub struct Bollinger {
    n: usize,
    k: f64,
    inv_n: f64,
    buf: VecDeque<f64>,
    sum: f64,
    shift: f64,
    s1: f64,
    s2: f64,
    countdown: usize,
    started: bool,
}

impl Bollinger {
    /// Period `n`, `k` standard deviations.
    pub fn new(n: usize, k: f64) -> Self {
        let n = n.max(1);
        Bollinger {
            n,
            k,
            inv_n: 1.0 / n as f64,
            buf: VecDeque::with_capacity(n + 1),
            sum: 0.0,
            shift: 0.0,
            s1: 0.0,
            s2: 0.0,
            countdown: 32 * n,
            started: false,
        }
    }

    /// Rebuilds the shifted sums around the mean of `old` and the values in the buffer (the
    /// window that just produced a value); `Some(σ²)`, or `None` when it is rounding residue.
    fn rebase(&mut self, old: f64) -> Option<f64> {
        let mut total = old;
        for v in &self.buf {
            total += v;
        }
        self.shift = self.inv_n * total;
        let d = old - self.shift;
        let (mut s1, mut s2) = (d, d * d);
        for v in &self.buf {
            let d = v - self.shift;
            s1 += d;
            s2 += d * d;
        }
        let m2 = self.inv_n * s2;
        let t = self.inv_n * s1;
        let var = m2 - t * t;
        self.s1 = s1 - d;
        self.s2 = s2 - d * d;
        self.countdown = 32 * self.n;
        (m2 * 1e-12 <= var).then_some(var)
    }

    /// Adds a close.
    pub fn update(&mut self, x: f64) -> Option<Bands> {
        if !self.started {
            self.started = true;
            self.shift = x;
        }
        self.buf.push_back(x);
        self.sum += x;
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        if self.buf.len() < self.n {
            return None;
        }
        let t = self.inv_n * self.s1;
        let mut var = self.inv_n * self.s2 - t * t;
        let middle = self.sum / self.n as f64;
        let old = self.buf.pop_front().unwrap_or(x);
        self.sum -= old;
        let od = old - self.shift;
        let od2 = od * od;
        self.s2 -= od2;
        let stale = self.inv_n * self.s2 * 1e-6 > var || od2 > self.s2 * 1e6 || {
            self.countdown -= 1;
            self.countdown == 0
        };
        if stale {
            var = self.rebase(old).unwrap_or(0.0);
        } else {
            self.s1 -= od;
        }
        let sd = if var == 0.0 { 0.0 } else { var.sqrt() };
        let (upper, lower) = if self.k == 1.0 {
            (middle + sd, middle - sd)
        } else {
            let t = sd * self.k;
            (middle + t, middle - t)
        };
        Some(Bands {
            upper,
            middle,
            lower,
        })
    }
}

/// Average true range, Wilder's smoothing (TA-Lib `ATR`).
#[derive(Debug, Clone)]
pub struct Atr {
    n: usize,
    prev_close: Option<f64>,
    trs: usize,
    sum: f64,
    atr: f64,
}

impl Atr {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        Atr {
            n: n.max(1),
            prev_close: None,
            trs: 0,
            sum: 0.0,
            atr: 0.0,
        }
    }

    /// Adds a bar.
    pub fn update(&mut self, b: &Bar) -> Option<f64> {
        let prev = self.prev_close.replace(b.close)?;
        let mut tr = b.high - b.low;
        let up = (prev - b.high).abs();
        if up > tr {
            tr = up;
        }
        let down = (prev - b.low).abs();
        if down > tr {
            tr = down;
        }
        self.trs += 1;
        let n = self.n as f64;
        if self.trs <= self.n {
            self.sum += tr;
            if self.trs < self.n {
                return None;
            }
            self.atr = self.sum / n;
            return Some(self.atr);
        }
        // TA-Lib 0.8: atr·((n − 1)/n) + tr·(1 − (n − 1)/n), one fused multiply-add.
        let keep = (n - 1.0) / n;
        self.atr = self.atr.mul_add(keep, tr * (1.0 - keep));
        Some(self.atr)
    }
}

/// On-balance volume (TA-Lib `OBV`).
#[derive(Debug, Clone, Default)]
pub struct Obv {
    prev: Option<(f64, f64)>,
}

impl Obv {
    /// A new OBV.
    pub fn new() -> Self {
        Obv::default()
    }

    /// Adds a bar (close and volume).
    pub fn update(&mut self, b: &Bar) -> Option<f64> {
        let obv = match self.prev {
            None => b.volume,
            Some((prev_close, obv)) if b.close > prev_close => obv + b.volume,
            Some((prev_close, obv)) if b.close < prev_close => obv - b.volume,
            Some((_, obv)) => obv,
        };
        self.prev = Some((b.close, obv));
        Some(obv)
    }
}

/// Slow stochastic %K and %D.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StochValue {
    /// Slow %K.
    pub k: f64,
    /// %D.
    pub d: f64,
}

/// Rolling maximum (or minimum) over the last `n` values: a monotonic deque, amortized O(1).
#[derive(Debug, Clone)]
struct Extremum {
    n: usize,
    max: bool,
    seen: u64,
    q: VecDeque<(u64, f64)>,
}

impl Extremum {
    fn new(n: usize, max: bool) -> Self {
        Extremum {
            n: n.max(1),
            max,
            seen: 0,
            q: VecDeque::with_capacity(n.max(1) + 1),
        }
    }

    fn push(&mut self, x: f64) -> f64 {
        let i = self.seen;
        self.seen += 1;
        while let Some(&(_, back)) = self.q.back() {
            if (self.max && back <= x) || (!self.max && back >= x) {
                self.q.pop_back();
            } else {
                break;
            }
        }
        self.q.push_back((i, x));
        while self
            .q
            .front()
            .is_some_and(|&(j, _)| j + (self.n as u64) <= i)
        {
            self.q.pop_front();
        }
        self.q.front().map(|&(_, v)| v).unwrap_or(x)
    }
}

/// Stochastic oscillator (TA-Lib `STOCH` with SMA smoothing).
#[derive(Debug, Clone)]
pub struct Stoch {
    n: usize,
    seen: usize,
    highest: Extremum,
    lowest: Extremum,
    slow_k: Sma,
    slow_d: Sma,
}

impl Stoch {
    /// Fast %K period, slow %K period, %D period.
    pub fn new(fast_k: usize, slow_k: usize, slow_d: usize) -> Self {
        let n = fast_k.max(1);
        Stoch {
            n,
            seen: 0,
            highest: Extremum::new(n, true),
            lowest: Extremum::new(n, false),
            slow_k: Sma::new(slow_k),
            slow_d: Sma::new(slow_d),
        }
    }

    /// Adds a bar.
    pub fn update(&mut self, b: &Bar) -> Option<StochValue> {
        let hh = self.highest.push(b.high);
        let ll = self.lowest.push(b.low);
        self.seen += 1;
        if self.seen < self.n {
            return None;
        }
        let range = hh - ll;
        let fast_k = if is_zero_scaled(range, hh.abs() + ll.abs()) {
            0.0
        } else {
            ((b.close - ll) / range) * 100.0
        };
        let k = self.slow_k.update(fast_k)?;
        let d = self.slow_d.update(k)?;
        Some(StochValue { k, d })
    }
}

/// The value `n` updates ago, and the newest.
#[derive(Debug, Clone)]
struct Lag {
    n: usize,
    buf: VecDeque<f64>,
}

impl Lag {
    fn new(n: usize) -> Self {
        Lag {
            n: n.max(1),
            buf: VecDeque::with_capacity(n.max(1) + 2),
        }
    }

    fn push(&mut self, x: f64) -> Option<f64> {
        self.buf.push_back(x);
        if self.buf.len() > self.n + 1 {
            self.buf.pop_front();
        }
        (self.buf.len() == self.n + 1).then(|| self.buf[0])
    }
}

/// Rate of change in percent (TA-Lib `ROC`).
#[derive(Debug, Clone)]
pub struct Roc(Lag);

impl Roc {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        Roc(Lag::new(n))
    }

    /// Adds a close.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let old = self.0.push(x)?;
        Some(if old != 0.0 {
            ((x / old) - 1.0) * 100.0
        } else {
            0.0
        })
    }
}

/// Momentum (TA-Lib `MOM`).
#[derive(Debug, Clone)]
pub struct Momentum(Lag);

impl Momentum {
    /// Period `n` (≥ 1).
    pub fn new(n: usize) -> Self {
        Momentum(Lag::new(n))
    }

    /// Adds a close.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let old = self.0.push(x)?;
        Some(x - old)
    }
}

/// Mean and population standard deviation over the last `n` values, from running sums of the
/// values shifted by a value of the window; before that value leaves the window (every `n − 1`
/// updates), and when a leaving value outweighs the rest of the sums 1000-fold, the shift moves to
/// the newest value and the sums are recomputed from the window (amortized O(1)), so rounding
/// errors never pile up.
#[derive(Debug, Clone)]
struct Moments {
    n: usize,
    buf: VecDeque<f64>,
    shift: f64,
    s1: f64,
    s2: f64,
    since_rebase: usize,
}

impl Moments {
    fn new(n: usize) -> Self {
        Moments {
            n: n.max(1),
            buf: VecDeque::with_capacity(n.max(1) + 1),
            shift: 0.0,
            s1: 0.0,
            s2: 0.0,
            since_rebase: usize::MAX,
        }
    }

    /// Adds `x`; `(x − mean, σ)` once `n` values are in.
    fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        self.buf.push_back(x);
        let mut residue = false;
        if self.buf.len() > self.n {
            if let Some(old) = self.buf.pop_front() {
                let y = old - self.shift;
                self.s1 -= y;
                self.s2 -= y * y;
                // A leaving value that outweighed the rest (a jump, a spike) leaves its rounding
                // in the sums: relative to what remains, so scale-free.
                residue = y * y > 1e3 * self.s2;
            }
        }
        if residue || self.since_rebase >= self.n - 1 {
            self.shift = x;
            self.s1 = 0.0;
            self.s2 = 0.0;
            for v in &self.buf {
                let y = v - self.shift;
                self.s1 += y;
                self.s2 += y * y;
            }
            self.since_rebase = 0;
        } else {
            let y = x - self.shift;
            self.s1 += y;
            self.s2 += y * y;
            self.since_rebase += 1;
        }
        if self.buf.len() < self.n {
            return None;
        }
        let n = self.n as f64;
        let mean = self.s1 / n;
        let m2 = self.s2 / n;
        let var = m2 - mean * mean;
        // Relative, so scale-free: the shift is a value of the window, at most σ·√(n − 1) from
        // the mean, so a real window has m2 ≤ n·σ² and σ² ≫ 1e-12·m2; below that the variance is
        // the sums' rounding residue (a window of equal values after unequal ones) and is 0.
        let var = if var <= 1e-12 * m2 { 0.0 } else { var };
        // The newest value's deviation from the mean, from the shifted values: exact `x − c`
        // minus the small shifted mean, without the rounding of `mean + c` at the price's scale.
        Some(((x - self.shift) - mean, var.sqrt()))
    }
}

/// Rolling volatility: population σ of the last `n` log returns.
#[derive(Debug, Clone)]
pub struct Volatility {
    prev: Option<f64>,
    m: Moments,
}

impl Volatility {
    /// Over `n` log returns.
    pub fn new(n: usize) -> Self {
        Volatility {
            prev: None,
            m: Moments::new(n),
        }
    }

    /// Adds a close (a non-positive close resets nothing and yields nothing).
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        if prev <= 0.0 || x <= 0.0 {
            return None;
        }
        self.m.push((x / prev).ln()).map(|(_, sd)| sd)
    }
}

/// Z-score of the newest value over the last `n`.
#[derive(Debug, Clone)]
pub struct ZScore(Moments);

impl ZScore {
    /// Over `n` values.
    pub fn new(n: usize) -> Self {
        ZScore(Moments::new(n))
    }

    /// Adds a value.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let (dev, sd) = self.0.push(x)?;
        Some(if sd > 0.0 { dev / sd } else { 0.0 })
    }
}

/// Volume-weighted average price over the last `n` candles, exact.
#[derive(Debug, Clone)]
pub struct Vwap {
    n: usize,
    buf: VecDeque<(Decimal, Decimal)>,
    quote: Decimal,
    volume: Decimal,
}

impl Vwap {
    /// Over `n` candles.
    pub fn new(n: usize) -> Self {
        Vwap {
            n: n.max(1),
            buf: VecDeque::with_capacity(n.max(1) + 1),
            quote: Decimal::ZERO,
            volume: Decimal::ZERO,
        }
    }

    /// Adds a candle's quote volume (Σ price·qty) and volume; `None` until `n` candles, or when
    /// their volume is zero.
    pub fn update(&mut self, quote_volume: Decimal, volume: Decimal) -> Option<Decimal> {
        self.quote += quote_volume;
        self.volume += volume;
        self.buf.push_back((quote_volume, volume));
        if self.buf.len() > self.n {
            if let Some((q, v)) = self.buf.pop_front() {
                self.quote -= q;
                self.volume -= v;
            }
        }
        if self.buf.len() < self.n || self.volume.is_zero() {
            return None;
        }
        self.quote.checked_div(self.volume)
    }
}

/// Final candles after which every indicator of [`IndicatorSet`] has a value (MACD(12, 26, 9)'s
/// first value comes at the 34th); the strategies compare with one row more.
pub const WARMUP_CANDLES: usize = 34;

/// Every indicator of one (symbol, interval), fed with its final candles in order.
#[derive(Debug, Clone)]
pub struct IndicatorSet {
    sma: Sma,
    ema: super::Ema,
    wma: Wma,
    rsi: Rsi,
    macd: Macd,
    bb: Bollinger,
    atr: Atr,
    obv: Obv,
    stoch: Stoch,
    roc: Roc,
    mom: Momentum,
    vol: Volatility,
    z: ZScore,
    vwap: Vwap,
}

impl Default for IndicatorSet {
    fn default() -> Self {
        IndicatorSet {
            sma: Sma::new(20),
            ema: super::Ema::new(20),
            wma: Wma::new(20),
            rsi: Rsi::new(14),
            macd: Macd::new(12, 26, 9),
            bb: Bollinger::new(20, 2.0),
            atr: Atr::new(14),
            obv: Obv::new(),
            stoch: Stoch::new(14, 3, 3),
            roc: Roc::new(10),
            mom: Momentum::new(10),
            vol: Volatility::new(20),
            z: ZScore::new(20),
            vwap: Vwap::new(20),
        }
    }
}

impl IndicatorSet {
    /// Adds one candle (high, low, close and volume as `f64`; quote volume and volume exact).
    pub fn update(&mut self, bar: &Bar, quote_volume: Decimal, volume: Decimal) -> IndicatorValues {
        let x = bar.close;
        let m = self.macd.update(x);
        let b = self.bb.update(x);
        let s = self.stoch.update(bar);
        IndicatorValues {
            sma_20: self.sma.update(x),
            ema_20: self.ema.update(x),
            wma_20: self.wma.update(x),
            rsi_14: self.rsi.update(x),
            macd: m.map(|v| v.macd),
            macd_signal: m.map(|v| v.signal),
            macd_hist: m.map(|v| v.hist),
            bb_upper: b.map(|v| v.upper),
            bb_middle: b.map(|v| v.middle),
            bb_lower: b.map(|v| v.lower),
            atr_14: self.atr.update(bar),
            obv: self.obv.update(bar),
            stoch_k: s.map(|v| v.k),
            stoch_d: s.map(|v| v.d),
            roc_10: self.roc.update(x),
            mom_10: self.mom.update(x),
            volatility_20: self.vol.update(x),
            zscore_20: self.z.update(x),
            vwap_20: self.vwap.update(quote_volume, volume),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mean(w: &[f64]) -> f64 {
        w.iter().sum::<f64>() / w.len() as f64
    }

    fn pstd(w: &[f64]) -> f64 {
        let m = mean(w);
        (w.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / w.len() as f64).sqrt()
    }

    /// `|a − b| ≤ 1e-9 · scale`, `scale` being the size of the quantity compared (a price scale for
    /// prices, 100 for percentages): no absolute floor.
    fn near(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-9 * scale
    }

    /// Every output of every indicator (but VWAP) on one series, `None`s as NaN.
    fn all_outputs(bars: &[Bar]) -> Vec<f64> {
        let mut set = IndicatorSet::default();
        let mut out = Vec::new();
        for b in bars {
            let v = set.update(b, Decimal::ZERO, Decimal::ZERO);
            out.extend(v.floats().map(|x| x.unwrap_or(f64::NAN)));
        }
        out
    }

    proptest! {
        /// Incremental = recomputation over the window, at every step, at any price scale.
        #[test]
        fn incremental_equals_recomputation(
            raw in proptest::collection::vec(1.0f64..1000.0, 1..120),
            n in 1usize..25,
            e in -10i32..7,
        ) {
            // Prices between 10^e and 1000·10^e.
            let unit = 10f64.powi(e);
            let xs: Vec<f64> = raw.iter().map(|x| x * unit).collect();
            let price = 1000.0 * unit;
            let (mut sma, mut wma, mut bb) = (Sma::new(n), Wma::new(n), Bollinger::new(n, 2.0));
            let (mut z, mut mom, mut roc, mut vol) = (ZScore::new(n), Momentum::new(n), Roc::new(n), Volatility::new(n));
            let mut st = Stoch::new(n, 1, 1);
            for i in 0..xs.len() {
                let x = xs[i];
                let (s, w, b, zz) = (sma.update(x), wma.update(x), bb.update(x), z.update(x));
                let (m, r, v) = (mom.update(x), roc.update(x), vol.update(x));
                let k = st.update(&Bar { high: x + unit, low: x - unit, close: x, volume: 1.0 });
                if i + 1 < n {
                    prop_assert!(s.is_none() && w.is_none() && b.is_none() && zz.is_none() && k.is_none());
                } else {
                    let win = &xs[i + 1 - n..=i];
                    prop_assert!(near(s.unwrap_or(f64::NAN), mean(win), price));
                    let wsum: f64 = win.iter().enumerate().map(|(j, v)| v * (j + 1) as f64).sum();
                    prop_assert!(near(w.unwrap_or(f64::NAN), wsum / (n * (n + 1) / 2) as f64, price));
                    let bands = b.unwrap_or(Bands { upper: f64::NAN, middle: f64::NAN, lower: f64::NAN });
                    let sd = pstd(win);
                    // Shifted sums: σ within 1e-9 of itself, plus the sums' rounding: about 1e-16
                    // of the squared price per update over a few dozen updates, carried into σ
                    // divided by 2σ (it shows when σ is small next to the prices).
                    let got_sd = (bands.upper - bands.middle) / 2.0;
                    let sd_tol = 1e-9 * sd + 1e-15 * price + 1e-15 * price * price / sd.max(f64::MIN_POSITIVE);
                    prop_assert!((got_sd - sd).abs() <= sd_tol, "{got_sd} vs {sd}");
                    prop_assert!(near(bands.middle - bands.lower, bands.upper - bands.middle, price));
                    let zref = if sd > 0.0 { (x - mean(win)) / sd } else { 0.0 };
                    // |z| ≤ √n; the running sums round at about 1e-16 of the squared price over
                    // a few dozen updates, and z carries that error divided by σ².
                    let rel = price / sd.max(f64::MIN_POSITIVE);
                    let ztol = 1e-9 * (n as f64).sqrt() + 1e-14 * rel + 1e-15 * rel * rel;
                    prop_assert!((zz.unwrap_or(f64::NAN) - zref).abs() <= ztol, "{zz:?} vs {zref}");
                    let hh = win.iter().fold(f64::MIN, |a, v| a.max(v + unit));
                    let ll = win.iter().fold(f64::MAX, |a, v| a.min(v - unit));
                    let fk = (x - ll) / (hh - ll) * 100.0;
                    prop_assert!(near(k.map(|v| v.k).unwrap_or(f64::NAN), fk, 100.0));
                }
                if i >= n {
                    prop_assert!(near(m.unwrap_or(f64::NAN), x - xs[i - n], price));
                    // ROC in percent: up to 1e5 % for these ranges.
                    prop_assert!(near(r.unwrap_or(f64::NAN), (x / xs[i - n] - 1.0) * 100.0, 1e5));
                    let rets: Vec<f64> = (i + 1 - n..=i).map(|j| (xs[j] / xs[j - 1]).ln()).collect();
                    let scale = rets.iter().fold(0.0f64, |a, r| a.max(r.abs()));
                    prop_assert!((v.unwrap_or(f64::NAN) - pstd(&rets)).abs() <= 1e-9 * scale);
                } else {
                    prop_assert!(m.is_none() && r.is_none() && v.is_none());
                }
            }
        }

        /// No fixed epsilon anywhere: the same candles with every price multiplied by 2^k (exact
        /// in binary floating point, k from −60 to 40: prices from ~1e-18 to ~1e15) give the
        /// price-unit outputs multiplied by exactly 2^k and every other output bit for bit equal;
        /// volumes multiplied by 2^j scale OBV by 2^j and change nothing else.
        #[test]
        fn outputs_scale_exactly_with_the_prices(
            raw in proptest::collection::vec((1u32..2000, 0u32..40, 0u32..40, 0u32..100), 1..80),
            flat in proptest::collection::vec(any::<bool>(), 80),
            k in -60i32..40,
            j in -30i32..40,
        ) {
            let mut price = 1000.0f64;
            let mut bars = Vec::new();
            for (i, (step, up, down, vol)) in raw.iter().enumerate() {
                // Integer prices around 1000: flat stretches, zero ranges and zero volumes.
                if !flat[i] {
                    price = (price + f64::from(*step) - 1000.0).max(1.0);
                }
                let (up, down) = if flat[i] { (0.0, 0.0) } else { (f64::from(*up), f64::from(*down)) };
                bars.push(Bar { high: price + up, low: (price - down).max(0.5), close: price, volume: f64::from(*vol) });
            }
            let p = 2f64.powi(k);
            let q = 2f64.powi(j);
            let scaled: Vec<Bar> = bars
                .iter()
                .map(|b| Bar { high: b.high * p, low: b.low * p, close: b.close * p, volume: b.volume * q })
                .collect();
            let (a, b) = (all_outputs(&bars), all_outputs(&scaled));
            prop_assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let name = FLOAT_COLUMNS[i % FLOAT_COLUMNS.len()];
                let f = match name {
                    "rsi_14" | "stoch_k" | "stoch_d" | "roc_10" | "volatility_20" | "zscore_20" => 1.0,
                    "obv" => q,
                    _ => p,
                };
                prop_assert!(
                    (x.is_nan() && y.is_nan()) || x * f == *y,
                    "{} at bar {}: {} · {} ≠ {}", name, i / FLOAT_COLUMNS.len(), x, f, y
                );
            }
        }

        #[test]
        fn vwap_is_exact(qv in proptest::collection::vec((1u32..1_000_000, 0u32..1000), 1..60), n in 1usize..10) {
            let mut v = Vwap::new(n);
            for i in 0..qv.len() {
                let got = v.update(Decimal::from(qv[i].0), Decimal::from(qv[i].1));
                if i + 1 >= n {
                    let w = &qv[i + 1 - n..=i];
                    let q: Decimal = w.iter().map(|p| Decimal::from(p.0)).sum();
                    let vol: Decimal = w.iter().map(|p| Decimal::from(p.1)).sum();
                    prop_assert_eq!(got, if vol.is_zero() { None } else { Some(q / vol) });
                } else {
                    prop_assert_eq!(got, None);
                }
            }
        }
    }

    #[test]
    fn rsi_of_a_flat_series_is_zero_and_of_a_rising_one_100() {
        let mut r = Rsi::new(3);
        let out: Vec<Option<f64>> = [5.0, 5.0, 5.0, 5.0].iter().map(|x| r.update(*x)).collect();
        assert_eq!(out, vec![None, None, None, Some(0.0)]);
        let mut r = Rsi::new(2);
        let out: Vec<Option<f64>> = [1.0, 2.0, 3.0].iter().map(|x| r.update(*x)).collect();
        assert_eq!(out, vec![None, None, Some(100.0)]);
    }
}
