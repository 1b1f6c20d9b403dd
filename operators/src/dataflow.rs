//! Timely operators over normalized events, sharded by symbol.
//!
//! Timestamps are event-time ticks (`u64`): the source sends each event at its current watermark
//! tick, `tick(max event time seen − allowed lateness)`, so a timestamp never runs ahead of the
//! data. The exact event time travels in the record.
//!
//! - [`TradeAnalytics::trade_analytics`]: per-symbol SMA/EMA over the last N trades and the whale
//!   flag, in arrival order (one source per symbol keeps that order deterministic).
//! - [`EventTimeCandles::event_time_candles`]: tumbling candles per interval, emitted while forming
//!   and once more when the watermark passes their end; a trade whose candle was already final when
//!   it arrived comes out as [`CandleOutput::Late`].

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::math::{to_f64, CandleAcc, Ema, Sma};
use crate::model::{Candle, Interval, Millis, Symbol, Trade, Venue, WhaleAlert};

/// A trade with the per-symbol analytics computed at its arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedTrade {
    /// The trade.
    pub trade: Trade,
    /// Mean price of the last `sma_window` trades of the symbol, this one included
    /// (of all trades so far during warm-up).
    pub moving_average: Decimal,
    /// EMA of the price over `ema_window` trades, once warmed up (f64 indicator math).
    pub ema: Option<f64>,
    /// Notional ≥ the whale threshold of the symbol's quote asset.
    pub is_whale: bool,
    /// The threshold that applied.
    pub whale_threshold: Decimal,
}

impl EnrichedTrade {
    /// The whale alert for this trade, if it is one.
    pub fn whale_alert(&self) -> Option<WhaleAlert> {
        self.is_whale.then(|| WhaleAlert {
            trade: self.trade.clone(),
            notional: self.trade.notional(),
            threshold: self.whale_threshold,
        })
    }
}

/// Whale thresholds in the quote currency: a default and per-quote-asset overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhaleThresholds {
    /// Used when no override matches the symbol's quote asset.
    pub default: Decimal,
    /// Quote asset (`BTC`, `EUR`, …) → threshold in that asset.
    pub per_quote: BTreeMap<String, Decimal>,
}

impl Default for WhaleThresholds {
    fn default() -> Self {
        WhaleThresholds {
            default: Decimal::from(100_000),
            per_quote: BTreeMap::new(),
        }
    }
}

impl WhaleThresholds {
    /// The threshold for a symbol.
    pub fn for_symbol(&self, symbol: &Symbol) -> Decimal {
        symbol
            .quote_asset()
            .and_then(|q| self.per_quote.get(q))
            .copied()
            .unwrap_or(self.default)
    }
}

/// Settings of [`TradeAnalytics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsConfig {
    /// Trades in the simple moving average (default 20).
    pub sma_window: usize,
    /// Trades in the EMA period (default 20).
    pub ema_window: usize,
    /// Whale thresholds.
    pub whales: WhaleThresholds,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            sma_window: 20,
            ema_window: 20,
            whales: WhaleThresholds::default(),
        }
    }
}

struct SymbolState {
    sma: Sma,
    ema: Ema,
    threshold: Decimal,
}

/// Per-symbol moving averages and whale detection.
pub trait TradeAnalytics<'scope> {
    /// Enriches every trade; exchanged by symbol so each symbol's state lives on one worker.
    fn trade_analytics(self, config: &AnalyticsConfig) -> StreamVec<'scope, u64, EnrichedTrade>;
}

impl<'scope> TradeAnalytics<'scope> for StreamVec<'scope, u64, Trade> {
    fn trade_analytics(self, config: &AnalyticsConfig) -> StreamVec<'scope, u64, EnrichedTrade> {
        let config = config.clone();
        self.unary(
            Exchange::new(|t: &Trade| t.symbol.shard_hash()),
            "TradeAnalytics",
            move |_cap, _info| {
                let mut state: HashMap<Symbol, SymbolState> = HashMap::new();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            for trade in batch.drain(..) {
                                let st = state.entry(trade.symbol).or_insert_with(|| SymbolState {
                                    sma: Sma::new(config.sma_window),
                                    ema: Ema::new(config.ema_window),
                                    threshold: config.whales.for_symbol(&trade.symbol),
                                });
                                st.sma.update(trade.price);
                                let ema = st.ema.update(to_f64(trade.price));
                                let is_whale = trade.notional() >= st.threshold;
                                session.give(EnrichedTrade {
                                    moving_average: st.sma.mean(),
                                    ema,
                                    is_whale,
                                    whale_threshold: st.threshold,
                                    trade,
                                });
                            }
                        }
                    });
                }
            },
        )
        .container::<Vec<_>>()
    }
}

/// A trade that arrived after its candle was final.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LateTrade {
    /// The trade (it is still stored; only its candle is not corrected).
    pub trade: Trade,
    /// The candle interval it missed.
    pub interval: Interval,
    /// Open time of the candle it belongs to.
    pub candle_open_time: Millis,
}

/// Output of [`EventTimeCandles`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CandleOutput {
    /// A candle update (forming or final).
    Candle(Candle),
    /// A trade too late for its candle.
    Late(LateTrade),
}

/// Settings of [`EventTimeCandles`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandleConfig {
    /// Intervals to compute.
    pub intervals: Vec<Interval>,
    /// Length of a timely tick in ms; every interval must be a multiple of it.
    pub tick_ms: i64,
    /// Emit forming updates (each activation that changed a candle), not only final candles.
    pub emit_forming: bool,
}

impl Default for CandleConfig {
    fn default() -> Self {
        CandleConfig {
            intervals: vec![Interval::MINUTE],
            tick_ms: 100,
            emit_forming: true,
        }
    }
}

type CandleKey = (Symbol, Interval, Millis);

/// Event-time candles.
pub trait EventTimeCandles<'scope> {
    /// Candles per (symbol, interval); exchanged by symbol.
    fn event_time_candles(self, config: &CandleConfig) -> StreamVec<'scope, u64, CandleOutput>;
}

impl<'scope> EventTimeCandles<'scope> for StreamVec<'scope, u64, Trade> {
    fn event_time_candles(self, config: &CandleConfig) -> StreamVec<'scope, u64, CandleOutput> {
        let config = config.clone();
        let tick = config.tick_ms.max(1);
        self.unary_frontier(
            Exchange::new(|t: &Trade| t.symbol.shard_hash()),
            "EventTimeCandles",
            move |_cap, _info| {
                let mut open: HashMap<CandleKey, (Venue, CandleAcc)> = HashMap::new();
                // End tick → capability at end − 1 and the candles ending there.
                let mut ending: BTreeMap<u64, (Capability<u64>, Vec<CandleKey>)> = BTreeMap::new();
                let mut touched: Vec<CandleKey> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(&now) = cap.least() else { return };
                        let port = output.output_index();
                        let mut session = output.session(&cap);
                        for batch in data {
                            for trade in batch.drain(..) {
                                for &interval in &config.intervals {
                                    let open_time = interval.open_time(trade.ts_exchange);
                                    let end = open_time + interval.millis();
                                    let end_tick = end.div_euclid(tick).max(1) as u64;
                                    if now >= end_tick {
                                        session.give(CandleOutput::Late(LateTrade {
                                            trade: trade.clone(),
                                            interval,
                                            candle_open_time: open_time,
                                        }));
                                        continue;
                                    }
                                    let key = (trade.symbol, interval, open_time);
                                    match open.get_mut(&key) {
                                        Some((_, acc)) => acc.add(&trade),
                                        None => {
                                            open.insert(
                                                key,
                                                (trade.venue, CandleAcc::new(open_time, &trade)),
                                            );
                                            ending
                                                .entry(end_tick)
                                                .or_insert_with(|| {
                                                    (cap.delayed(&(end_tick - 1), port), Vec::new())
                                                })
                                                .1
                                                .push(key);
                                        }
                                    }
                                    if config.emit_forming {
                                        touched.push(key);
                                    }
                                }
                            }
                        }
                        touched.sort_unstable();
                        touched.dedup();
                        for key in touched.drain(..) {
                            if let Some((venue, acc)) = open.get(&key) {
                                session.give(CandleOutput::Candle(
                                    acc.to_candle(*venue, key.0, key.1, false),
                                ));
                            }
                        }
                    });
                    // Finalize every window whose end the frontier has passed.
                    while let Some(entry) = ending.first_entry() {
                        if frontier.less_equal(&(*entry.key() - 1)) {
                            break;
                        }
                        let (cap, mut keys) = entry.remove();
                        keys.sort_unstable();
                        let mut session = output.session(&cap);
                        for key in keys {
                            if let Some((venue, acc)) = open.remove(&key) {
                                session.give(CandleOutput::Candle(
                                    acc.to_candle(venue, key.0, key.1, true),
                                ));
                            }
                        }
                    }
                }
            },
        )
        .container::<Vec<_>>()
    }
}
