//! Pure, incremental state machines: no I/O, O(1) per update. Technical indicators with TA-Lib
//! parity are in [`indicators`].
//!
//! Conventions:
//! - [`Sma`] keeps an exact [`Decimal`] running sum over the last `n` values. `update` returns
//!   `None` until `n` values were seen (TA-Lib's warm-up); [`Sma::mean`] gives the mean of the
//!   values seen so far, which is what the `trades.moving_average` column stores from the first
//!   trade on.
//! - [`Ema`] works in `f64` (documented indicator math), seeded like TA-Lib with the SMA of the
//!   first `n` values, then `ema = alpha·(x − ema) + ema` as one fused multiply-add (TA-Lib 0.8),
//!   `alpha = 2 / (n + 1)`.
//! - [`CandleAcc`] accumulates one event-time window; open and close are the trades with the
//!   lowest and highest id, so the result does not depend on arrival order.

pub mod indicators;

use std::collections::{BTreeMap, VecDeque};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::model::{Candle, Interval, Millis, Side, Trade};

/// Simple moving average over the last `n` values, exact in [`Decimal`].
#[derive(Debug, Clone)]
pub struct Sma {
    n: usize,
    window: VecDeque<Decimal>,
    sum: Decimal,
}

impl Sma {
    /// A moving average over `n` values (`n` ≥ 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Sma {
            n,
            window: VecDeque::with_capacity(n),
            sum: Decimal::ZERO,
        }
    }

    /// Adds a value; returns the average once `n` values were seen.
    pub fn update(&mut self, x: Decimal) -> Option<Decimal> {
        if self.window.len() == self.n {
            if let Some(old) = self.window.pop_front() {
                self.sum -= old;
            }
        }
        self.window.push_back(x);
        self.sum += x;
        (self.window.len() == self.n).then(|| self.mean())
    }

    /// Mean of the values in the window (fewer than `n` during warm-up); zero before any value.
    pub fn mean(&self) -> Decimal {
        if self.window.is_empty() {
            Decimal::ZERO
        } else {
            (self.sum / Decimal::from(self.window.len() as u64)).normalize()
        }
    }

    /// Values currently in the window.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// True before the first value.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }
}

/// Exponential moving average in `f64`, seeded with the SMA of the first `n` values (TA-Lib).
#[derive(Debug, Clone)]
pub struct Ema {
    n: usize,
    alpha: f64,
    seen: usize,
    seed_sum: f64,
    value: f64,
}

impl Ema {
    /// An EMA of period `n` (`n` ≥ 1), `alpha = 2 / (n + 1)`.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Ema {
            n,
            alpha: 2.0 / (n as f64 + 1.0),
            seen: 0,
            seed_sum: 0.0,
            value: 0.0,
        }
    }

    /// Adds a value; returns the EMA once `n` values were seen.
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.seen = self.seen.saturating_add(1);
        if self.seen < self.n {
            self.seed_sum += x;
            None
        } else if self.seen == self.n {
            self.seed_sum += x;
            self.value = self.seed_sum / self.n as f64;
            Some(self.value)
        } else {
            // TA-Lib 0.8's step: one fused multiply-add, `alpha·(x − ema) + ema`.
            self.value = self.alpha.mul_add(x - self.value, self.value);
            Some(self.value)
        }
    }

    /// The current value, once warmed up.
    pub fn value(&self) -> Option<f64> {
        (self.seen >= self.n).then_some(self.value)
    }
}

/// Converts a decimal to `f64` for indicator math (NaN never results from a finite decimal).
pub fn to_f64(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// The ids seen of one trade stream, as disjoint inclusive ranges: memory grows with the holes
/// between them, not with the ids (a stream in order is one range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    /// start → end (inclusive), disjoint and not adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl IdSet {
    /// Most ranges kept; past it the two oldest merge (the hole between them counts as seen), so
    /// memory stays bounded even for a stream with holes everywhere.
    pub const MAX_RANGES: usize = 4096;

    /// Adds `id`; false when it was already in (a repeat).
    pub fn insert(&mut self, id: u64) -> bool {
        let mut start = id;
        if let Some((&s, &e)) = self.ranges.range(..=id).next_back() {
            if id <= e {
                return false;
            }
            if e.checked_add(1) == Some(id) {
                start = s;
            }
        }
        let mut end = id;
        if let Some(next) = id.checked_add(1) {
            if let Some(e) = self.ranges.remove(&next) {
                end = e;
            }
        }
        self.ranges.insert(start, end);
        if self.ranges.len() > Self::MAX_RANGES {
            let mut lowest = self.ranges.iter().take(2).map(|(s, e)| (*s, *e));
            if let (Some((s0, _)), Some((s1, e1))) = (lowest.next(), lowest.next()) {
                self.ranges.remove(&s1);
                self.ranges.insert(s0, e1);
            }
        }
        true
    }

    /// Whether `id` was seen.
    pub fn contains(&self, id: u64) -> bool {
        self.ranges
            .range(..=id)
            .next_back()
            .is_some_and(|(_, &e)| id <= e)
    }

    /// Number of disjoint ranges.
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

/// Accumulates the trades of one candle window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleAcc {
    /// Window start, ms.
    pub open_time: Millis,
    open: (u64, Decimal),
    close: (u64, Decimal),
    high: Decimal,
    low: Decimal,
    volume: Decimal,
    quote_volume: Decimal,
    taker_buy_volume: Decimal,
    trade_count: u64,
}

impl CandleAcc {
    /// Starts a window with its first trade.
    pub fn new(open_time: Millis, t: &Trade) -> Self {
        CandleAcc {
            open_time,
            open: (t.trade_id, t.price),
            close: (t.trade_id, t.price),
            high: t.price,
            low: t.price,
            volume: t.qty,
            quote_volume: t.price * t.qty,
            taker_buy_volume: if t.side == Side::Buy {
                t.qty
            } else {
                Decimal::ZERO
            },
            trade_count: 1,
        }
    }

    /// Adds a trade (any order).
    pub fn add(&mut self, t: &Trade) {
        if t.trade_id < self.open.0 {
            self.open = (t.trade_id, t.price);
        }
        if t.trade_id > self.close.0 {
            self.close = (t.trade_id, t.price);
        }
        self.high = self.high.max(t.price);
        self.low = self.low.min(t.price);
        self.volume += t.qty;
        self.quote_volume += t.price * t.qty;
        if t.side == Side::Buy {
            self.taker_buy_volume += t.qty;
        }
        self.trade_count += 1;
    }

    /// The candle as it stands.
    pub fn candle(&self, t: &Trade, interval: Interval, is_final: bool) -> Candle {
        self.to_candle(t.venue, t.symbol, interval, is_final)
    }

    /// The candle for `venue`/`symbol` as it stands.
    pub fn to_candle(
        &self,
        venue: crate::model::Venue,
        symbol: crate::model::Symbol,
        interval: Interval,
        is_final: bool,
    ) -> Candle {
        let vwap = if self.volume.is_zero() {
            self.close.1
        } else {
            // Full `Decimal` precision (28 significant digits at most), never a fixed number of
            // decimal places: at prices around 1e-8 a fixed scale would keep only a few digits.
            (self.quote_volume / self.volume).normalize()
        };
        Candle {
            venue,
            symbol,
            interval,
            open_time: self.open_time,
            close_time: self.open_time + interval.millis(),
            open: self.open.1,
            high: self.high,
            low: self.low,
            close: self.close.1,
            volume: self.volume.normalize(),
            quote_volume: self.quote_volume.normalize(),
            vwap,
            trade_count: self.trade_count,
            taker_buy_volume: self.taker_buy_volume.normalize(),
            first_trade_id: self.open.0,
            last_trade_id: self.close.0,
            is_final,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Symbol, Venue};
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn id_sets_find_repeats_in_any_order() {
        let mut s = IdSet::default();
        for id in [5, 6, 7, 10, 9, 1, 8, 2, 3, 4] {
            assert!(s.insert(id), "{id}");
        }
        assert_eq!(s.ranges(), 1, "1..=10 merged into one range");
        for id in 1..=10 {
            assert!(!s.insert(id), "{id} repeated");
        }
        assert!(s.insert(12));
        assert!(!s.contains(11) && s.contains(12) && s.ranges() == 2);
        assert!(s.insert(u64::MAX) && !s.insert(u64::MAX));
        assert!(s.insert(0) && !s.insert(0));
    }

    proptest! {
        /// The set answers like a plain set of every id inserted, for random ids with repeats.
        #[test]
        fn id_set_equals_a_plain_set(ids in proptest::collection::vec(0u64..300, 0..600)) {
            let mut s = IdSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for id in ids {
                prop_assert_eq!(s.insert(id), plain.insert(id));
            }
            for id in 0..300 {
                prop_assert_eq!(s.contains(id), plain.contains(&id));
            }
        }
    }

    #[test]
    fn sma_by_hand() {
        // Window 3 over 1, 2, 3, 4, 10: means 2, 3, 17/3.
        let mut s = Sma::new(3);
        assert_eq!(s.update(d("1")), None);
        assert_eq!(s.mean(), d("1"));
        assert_eq!(s.update(d("2")), None);
        assert_eq!(s.mean(), d("1.5"));
        assert_eq!(s.update(d("3")), Some(d("2")));
        assert_eq!(s.update(d("4")), Some(d("3")));
        let last = s.update(d("10")).unwrap();
        assert_eq!(last.round_dp(6), d("5.666667"));
    }

    #[test]
    fn ema_by_hand() {
        // n = 3, alpha = 0.5: seed = mean(2, 4, 6) = 4; then 4 + 0.5 (8 - 4) = 6; 6 + 0.5 (0 - 6) = 3.
        let mut e = Ema::new(3);
        assert_eq!(e.update(2.0), None);
        assert_eq!(e.update(4.0), None);
        assert_eq!(e.update(6.0), Some(4.0));
        assert_eq!(e.update(8.0), Some(6.0));
        assert_eq!(e.update(0.0), Some(3.0));
    }

    fn trade(id: u64, price: &str, qty: &str, side: Side) -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            trade_id: id,
            price: d(price),
            qty: d(qty),
            side,
            ts_exchange: 0,
            ts_received: 0,
            agg: None,
        }
    }

    #[test]
    fn candle_by_hand() {
        // Trades (id, price, qty, side): (3, 101, 2, buy) (1, 100, 1, sell) (2, 105, 1, buy) (4, 99, 4, sell)
        // open 100 (id 1), close 99 (id 4), high 105, low 99, volume 8,
        // quote 202 + 100 + 105 + 396 = 803, vwap 100.375, taker buy 3.
        let ts = [
            trade(3, "101", "2", Side::Buy),
            trade(1, "100", "1", Side::Sell),
            trade(2, "105", "1", Side::Buy),
            trade(4, "99", "4", Side::Sell),
        ];
        let mut acc = CandleAcc::new(0, &ts[0]);
        for t in &ts[1..] {
            acc.add(t);
        }
        let c = acc.candle(&ts[0], Interval::MINUTE, true);
        assert_eq!(
            (c.open, c.high, c.low, c.close),
            (d("100"), d("105"), d("99"), d("99"))
        );
        assert_eq!(
            (c.volume, c.quote_volume, c.vwap),
            (d("8"), d("803"), d("100.375"))
        );
        assert_eq!((c.trade_count, c.taker_buy_volume), (4, d("3")));
        assert_eq!(
            (c.first_trade_id, c.last_trade_id, c.close_time),
            (1, 4, 60_000)
        );
    }

    proptest! {
        #[test]
        fn sma_equals_recomputation(xs in proptest::collection::vec(0i64..1_000_000, 1..200), n in 1usize..30) {
            let mut s = Sma::new(n);
            for (i, x) in xs.iter().enumerate() {
                let got = s.update(Decimal::new(*x, 2));
                let lo = (i + 1).saturating_sub(n);
                let window = &xs[lo..=i];
                let want = Decimal::from(window.iter().sum::<i64>()) / Decimal::from(100 * window.len() as i64);
                prop_assert_eq!(s.mean(), want.normalize());
                prop_assert_eq!(got.is_some(), i + 1 >= n);
            }
        }

        #[test]
        fn candle_is_order_independent(mut prices in proptest::collection::vec(1i64..100_000, 1..50), seed in 0u64..1000) {
            let trades: Vec<Trade> = prices.drain(..).enumerate()
                .map(|(i, p)| trade(i as u64, &Decimal::new(p, 2).to_string(), "0.5", if (i as u64 + seed).is_multiple_of(3) { Side::Buy } else { Side::Sell }))
                .collect();
            let mut shuffled = trades.clone();
            shuffled.rotate_left((seed as usize) % trades.len());
            let fold = |ts: &[Trade]| {
                let mut acc = CandleAcc::new(0, &ts[0]);
                for t in &ts[1..] { acc.add(t); }
                acc.candle(&ts[0], Interval::MINUTE, false)
            };
            prop_assert_eq!(fold(&trades), fold(&shuffled));
        }
    }
}
