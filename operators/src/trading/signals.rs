//! Strategy signals from the indicators of final candles, and the order intent a signal asks for.
//!
//! Each strategy looks at one interval and fires on a **crossing**, so a condition that holds for
//! many candles gives one signal, at the candle where it started:
//! - `ma_cross`: EMA(20) crosses the SMA(20) (the EMA reacts faster): up → buy, down → sell;
//! - `rsi_bands`: RSI(14) leaves the oversold band upwards (crosses `rsi_low` up) → buy; leaves
//!   the overbought band downwards (crosses `rsi_high` down) → sell;
//! - `bollinger_breakout`: the close crosses above the upper band → buy; crosses below the
//!   middle band → sell (the breakout is over).
//!
//! The first candle with values only sets the state (no crossing without a previous candle).
//! Everything here is a pure function of the rows in order, so a replay, a backtest and a live run
//! give the same signals for the same candles.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Intent, OrderKind};
use crate::model::{IndicatorRow, Interval, Millis, Side, SignalRow, Symbol, Venue};

/// The rule a strategy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// EMA(20) crossing SMA(20).
    MaCross,
    /// RSI(14) leaving its bands.
    RsiBands,
    /// Close crossing the Bollinger(20, 2) bands.
    BollingerBreakout,
}

impl StrategyKind {
    /// The indicator columns the rule compares (`close` is the candle's close).
    pub fn inputs(self) -> &'static [&'static str] {
        match self {
            StrategyKind::MaCross => &["ema_20", "sma_20"],
            StrategyKind::RsiBands => &["rsi_14"],
            StrategyKind::BollingerBreakout => &["close", "bb_upper", "bb_middle"],
        }
    }

    /// The name used in tables and topics.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::MaCross => "ma_cross",
            StrategyKind::RsiBands => "rsi_bands",
            StrategyKind::BollingerBreakout => "bollinger_breakout",
        }
    }
}

/// One configured strategy (`[[strategies]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Unique name (letters, digits, `_`, `-`; at most 32 characters); defaults to the kind.
    #[serde(default)]
    pub name: String,
    /// The rule.
    pub kind: StrategyKind,
    /// The candles it reads.
    pub interval: Interval,
    /// Symbols it trades (empty: every symbol).
    #[serde(default)]
    pub symbols: Vec<Symbol>,
    /// `rsi_bands`: the oversold level.
    #[serde(default = "default_rsi_low")]
    pub rsi_low: f64,
    /// `rsi_bands`: the overbought level.
    #[serde(default = "default_rsi_high")]
    pub rsi_high: f64,
}

fn default_rsi_low() -> f64 {
    30.0
}

fn default_rsi_high() -> f64 {
    70.0
}

impl StrategyConfig {
    /// A strategy of `kind` on `interval` with the default parameters.
    pub fn new(kind: StrategyKind, interval: Interval) -> Self {
        StrategyConfig {
            name: kind.as_str().into(),
            kind,
            interval,
            symbols: Vec::new(),
            rsi_low: default_rsi_low(),
            rsi_high: default_rsi_high(),
        }
    }

    /// The name, or the kind's when none is set.
    pub fn name(&self) -> &str {
        if self.name.is_empty() {
            self.kind.as_str()
        } else {
            &self.name
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        if name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "strategy name {name:?}: use at most 32 letters, digits, `_` or `-`"
            ));
        }
        let band = 0.0..=100.0;
        if !(band.contains(&self.rsi_low) && band.contains(&self.rsi_high))
            || self.rsi_low >= self.rsi_high
        {
            return Err(format!(
                "strategy {name}: need 0 ≤ rsi_low < rsi_high ≤ 100 (got {} and {})",
                self.rsi_low, self.rsi_high
            ));
        }
        Ok(())
    }
}

/// A strategy's decision at a final candle (`reason`: in words, e.g.
/// `EMA(20) 101.2 crossed above SMA(20) 100.9`).
pub use crate::model::Signal;

impl Signal {
    /// The deterministic id of this signal, used as the client order id of its intent: `cf`
    /// and 32 hex digits of a 128-bit FNV-1a hash of (strategy, venue, symbol, interval,
    /// open time, side). The same signal always gets the same id, in any process.
    pub fn id(&self) -> String {
        let key = format!(
            "{}|{}|{}|{}|{}|{}",
            self.strategy,
            self.venue.as_str(),
            self.symbol.as_str(),
            self.interval.label(),
            self.open_time,
            self.side.as_str()
        );
        format!("cf{:032x}", fnv1a_128(key.as_bytes()))
    }

    /// The row the pipeline stores and publishes: this signal with its id and `inputs`.
    pub fn row(self, inputs: BTreeMap<String, f64>) -> SignalRow {
        SignalRow {
            id: self.id(),
            signal: self,
            inputs,
        }
    }
}

/// FNV-1a, 128 bits: stable across versions and platforms (unlike the std hashers).
pub fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// The previous candle's values a strategy compares with.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Prev {
    open_time: Millis,
    /// (fast, slow) for `ma_cross`; (rsi, _) for `rsi_bands`; (close, upper, middle) packed in
    /// three for `bollinger_breakout`.
    a: f64,
    b: f64,
    c: f64,
}

/// Every configured strategy and its per-symbol state.
#[derive(Debug, Clone, Default)]
pub struct Strategies {
    configs: Vec<StrategyConfig>,
    state: HashMap<(usize, Venue, Symbol), Prev>,
}

impl Strategies {
    /// The strategies of `configs` (validate them first).
    pub fn new(configs: Vec<StrategyConfig>) -> Self {
        Strategies {
            configs,
            state: HashMap::new(),
        }
    }

    /// The configured strategies.
    pub fn configs(&self) -> &[StrategyConfig] {
        &self.configs
    }

    /// The intervals some strategy reads.
    pub fn intervals(&self) -> Vec<Interval> {
        let mut v: Vec<Interval> = self.configs.iter().map(|c| c.interval).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The signals of a final candle's indicators. Rows of one (symbol, interval) must come in
    /// open-time order; a row not newer than the last one seen is ignored.
    pub fn on_indicators(&mut self, row: &IndicatorRow) -> Vec<Signal> {
        self.fire(row).into_iter().map(|(_, s)| s).collect()
    }

    /// [`Strategies::on_indicators`] as the rows the pipeline emits: each signal with its id and
    /// the values its strategy compared.
    pub fn signal_rows(&mut self, row: &IndicatorRow) -> Vec<SignalRow> {
        let fired = self.fire(row);
        fired
            .into_iter()
            .map(|(i, s)| {
                let kind = self.configs.get(i).map(|c| c.kind);
                let inputs = kind
                    .map(|k| k.inputs())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|name| {
                        let v = if *name == "close" {
                            Some(crate::math::to_f64(row.close))
                        } else {
                            column(&row.values, name)
                        };
                        v.filter(|x| x.is_finite()).map(|x| (name.to_string(), x))
                    })
                    .collect();
                s.row(inputs)
            })
            .collect()
    }

    /// The signals of `row`, each with the index of its strategy.
    fn fire(&mut self, row: &IndicatorRow) -> Vec<(usize, Signal)> {
        let mut out = Vec::new();
        for (i, cfg) in self.configs.iter().enumerate() {
            if cfg.interval != row.interval
                || (!cfg.symbols.is_empty() && !cfg.symbols.contains(&row.symbol))
            {
                continue;
            }
            let v = &row.values;
            let close = crate::math::to_f64(row.close);
            let now = match cfg.kind {
                StrategyKind::MaCross => v.ema_20.zip(v.sma_20).map(|(a, b)| (a, b, 0.0)),
                StrategyKind::RsiBands => v.rsi_14.map(|r| (r, 0.0, 0.0)),
                StrategyKind::BollingerBreakout => {
                    v.bb_upper.zip(v.bb_middle).map(|(u, m)| (close, u, m))
                }
            };
            let Some((a, b, c)) =
                now.filter(|(a, b, c)| a.is_finite() && b.is_finite() && c.is_finite())
            else {
                continue;
            };
            let key = (i, row.venue, row.symbol);
            let prev = self.state.get(&key).copied();
            if prev.is_some_and(|p| p.open_time >= row.open_time) {
                continue;
            }
            self.state.insert(
                key,
                Prev {
                    open_time: row.open_time,
                    a,
                    b,
                    c,
                },
            );
            let Some(p) = prev else { continue };
            let fired = match cfg.kind {
                StrategyKind::MaCross => {
                    if p.a <= p.b && a > b {
                        Some((
                            Side::Buy,
                            format!("EMA(20) {a:.8} crossed above SMA(20) {b:.8}"),
                        ))
                    } else if p.a >= p.b && a < b {
                        Some((
                            Side::Sell,
                            format!("EMA(20) {a:.8} crossed below SMA(20) {b:.8}"),
                        ))
                    } else {
                        None
                    }
                }
                StrategyKind::RsiBands => {
                    if p.a <= cfg.rsi_low && a > cfg.rsi_low {
                        Some((
                            Side::Buy,
                            format!("RSI(14) {a:.2} rose through {}", cfg.rsi_low),
                        ))
                    } else if p.a >= cfg.rsi_high && a < cfg.rsi_high {
                        Some((
                            Side::Sell,
                            format!("RSI(14) {a:.2} fell through {}", cfg.rsi_high),
                        ))
                    } else {
                        None
                    }
                }
                StrategyKind::BollingerBreakout => {
                    if p.a <= p.b && a > b {
                        Some((
                            Side::Buy,
                            format!("close {a} broke above the upper band {b:.8}"),
                        ))
                    } else if p.a >= p.c && a < c {
                        Some((
                            Side::Sell,
                            format!("close {a} fell below the middle band {c:.8}"),
                        ))
                    } else {
                        None
                    }
                }
            };
            if let Some((side, reason)) = fired {
                out.push((
                    i,
                    Signal {
                        strategy: cfg.name().to_string(),
                        venue: row.venue,
                        symbol: row.symbol,
                        interval: row.interval,
                        open_time: row.open_time,
                        close_time: row.close_time,
                        side,
                        price: row.close,
                        reason,
                    },
                ));
            }
        }
        out
    }
}

/// The value of the `f64` indicator column `name` of `values`.
fn column(values: &crate::model::IndicatorValues, name: &str) -> Option<f64> {
    crate::model::FLOAT_COLUMNS
        .iter()
        .position(|c| *c == name)
        .and_then(|i| values.floats()[i])
}

/// How big the order of a signal is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sizing {
    /// A buy signal spends this much quote asset (a market order of `quote_per_order / price`).
    pub quote_per_order: Decimal,
    /// A sell signal sells this fraction of the position (1 = all of it).
    pub sell_fraction: Decimal,
}

impl Default for Sizing {
    fn default() -> Self {
        Sizing {
            quote_per_order: Decimal::ONE_HUNDRED,
            sell_fraction: Decimal::ONE,
        }
    }
}

/// The market-order intent of `signal`: a buy of `quote_per_order / price` (before the risk
/// gate rounds it to the lot size), a sell of `sell_fraction` of `position` (`None` when there is
/// nothing to sell or the price is not positive).
pub fn intent_for(signal: &Signal, sizing: &Sizing, position: Decimal) -> Option<Intent> {
    let qty = match signal.side {
        Side::Buy => {
            if signal.price <= Decimal::ZERO {
                return None;
            }
            sizing.quote_per_order.checked_div(signal.price)?
        }
        Side::Sell => position.checked_mul(sizing.sell_fraction)?,
    };
    if qty <= Decimal::ZERO {
        return None;
    }
    Some(Intent {
        id: signal.id(),
        venue: signal.venue,
        symbol: signal.symbol,
        side: signal.side,
        qty: qty.normalize(),
        kind: OrderKind::Market,
        created_at: signal.close_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IndicatorValues;

    fn row(open_time: Millis, close: &str, f: impl Fn(&mut IndicatorValues)) -> IndicatorRow {
        let mut values = IndicatorValues::default();
        f(&mut values);
        IndicatorRow {
            venue: Venue::Binance,
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: "1h".parse().expect("interval"),
            open_time,
            close_time: open_time + 3_600_000,
            close: close.parse().expect("close"),
            values,
        }
    }

    fn run(kind: StrategyKind, rows: &[IndicatorRow]) -> Vec<(Millis, Side)> {
        let mut s = Strategies::new(vec![StrategyConfig::new(kind, "1h".parse().expect("i"))]);
        rows.iter()
            .flat_map(|r| s.on_indicators(r))
            .map(|sig| (sig.open_time, sig.side))
            .collect()
    }

    #[test]
    fn ma_cross_fires_once_per_crossing() {
        let h = 3_600_000;
        let pairs = [
            (1.0, 2.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (3.0, 2.0),
            (1.0, 2.0),
            (1.0, 2.0),
        ];
        let rows: Vec<_> = pairs
            .iter()
            .enumerate()
            .map(|(i, (e, s))| {
                row(i as i64 * h, "100", |v| {
                    v.ema_20 = Some(*e);
                    v.sma_20 = Some(*s);
                })
            })
            .collect();
        assert_eq!(
            run(StrategyKind::MaCross, &rows),
            vec![(2 * h, Side::Buy), (4 * h, Side::Sell)]
        );
    }

    #[test]
    fn rsi_bands_fire_on_leaving_the_bands() {
        let h = 3_600_000;
        let rsi = [50.0, 25.0, 28.0, 35.0, 75.0, 80.0, 65.0, 60.0];
        let mut rows: Vec<_> = rsi
            .iter()
            .enumerate()
            .map(|(i, r)| row(i as i64 * h, "100", |v| v.rsi_14 = Some(*r)))
            .collect();
        // A warming-up row (no RSI) changes nothing.
        rows.insert(3, row(2 * h + 1, "100", |_| {}));
        assert_eq!(
            run(StrategyKind::RsiBands, &rows),
            vec![(3 * h, Side::Buy), (6 * h, Side::Sell)]
        );
    }

    #[test]
    fn bollinger_breakout_and_exit() {
        let h = 3_600_000;
        let closes = ["100", "104", "106", "103", "99"];
        let rows: Vec<_> = closes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                row(i as i64 * h, c, |v| {
                    v.bb_upper = Some(105.0);
                    v.bb_middle = Some(100.0);
                    v.bb_lower = Some(95.0);
                })
            })
            .collect();
        assert_eq!(
            run(StrategyKind::BollingerBreakout, &rows),
            vec![(2 * h, Side::Buy), (4 * h, Side::Sell)]
        );
    }

    #[test]
    fn signal_rows_carry_the_id_and_the_values_compared() {
        let h = 3_600_000;
        let mut s = Strategies::new(vec![StrategyConfig::new(
            StrategyKind::BollingerBreakout,
            "1h".parse().expect("i"),
        )]);
        let band = |v: &mut IndicatorValues| {
            v.bb_upper = Some(105.0);
            v.bb_middle = Some(100.0);
            v.rsi_14 = Some(50.0);
        };
        assert!(s.signal_rows(&row(0, "100", band)).is_empty());
        let fired = row(h, "106", band);
        let rows = s.signal_rows(&fired);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        let mut plain = Strategies::new(s.configs().to_vec());
        plain.on_indicators(&row(0, "100", band));
        let sig = plain.on_indicators(&fired).remove(0);
        assert_eq!(r.id, sig.id());
        assert_eq!(r.signal, sig);
        assert_eq!(
            (r.signal.side, r.signal.price, r.signal.open_time),
            (Side::Buy, sig.price, h)
        );
        let inputs: Vec<(&str, f64)> = r.inputs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            inputs,
            vec![("bb_middle", 100.0), ("bb_upper", 105.0), ("close", 106.0)]
        );
    }

    #[test]
    fn repeats_and_other_intervals_are_ignored() {
        let h = 3_600_000;
        let mut s = Strategies::new(vec![StrategyConfig::new(
            StrategyKind::RsiBands,
            "1h".parse().expect("i"),
        )]);
        let a = row(0, "1", |v| v.rsi_14 = Some(20.0));
        let b = row(h, "1", |v| v.rsi_14 = Some(40.0));
        assert!(s.on_indicators(&a).is_empty());
        assert_eq!(s.on_indicators(&b).len(), 1);
        assert!(s.on_indicators(&b).is_empty(), "a repeat fires nothing");
        let mut other = row(2 * h, "1", |v| v.rsi_14 = Some(20.0));
        other.interval = "1m".parse().expect("i");
        assert!(s.on_indicators(&other).is_empty());
    }

    #[test]
    fn ids_are_stable_and_fit_binance_client_ids() {
        let sig = Signal {
            strategy: "rsi_bands".into(),
            venue: Venue::Binance,
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: "1h".parse().expect("i"),
            open_time: 1_700_000_000_000,
            close_time: 1_700_003_600_000,
            side: Side::Buy,
            price: "100".parse().expect("p"),
            reason: String::new(),
        };
        let id = sig.id();
        assert_eq!(id.len(), 34);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(id, sig.clone().id());
        let mut later = sig.clone();
        later.open_time += 1;
        assert_ne!(id, later.id());
        // The published FNV-1a 128 test vector: "" → the offset basis; "a" → d228cb696f1a8caf78912b704e4a8964.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn sizing() {
        let mut sig = Signal {
            strategy: "x".into(),
            venue: Venue::Binance,
            symbol: "PEPEUSDT".parse().expect("symbol"),
            interval: "1h".parse().expect("i"),
            open_time: 0,
            close_time: 1,
            side: Side::Buy,
            price: "0.00000712".parse().expect("p"),
            reason: String::new(),
        };
        let sizing = Sizing::default();
        let buy = intent_for(&sig, &sizing, Decimal::ZERO).expect("a buy");
        assert_eq!(buy.qty * sig.price, Decimal::ONE_HUNDRED);
        sig.side = Side::Sell;
        assert!(intent_for(&sig, &sizing, Decimal::ZERO).is_none());
        let sell = intent_for(&sig, &sizing, "5000000".parse().expect("q")).expect("a sell");
        assert_eq!(sell.qty, "5000000".parse::<Decimal>().expect("q"));
    }
}
