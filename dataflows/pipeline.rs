//! The trade pipeline's dataflow graph, built once per worker.
//!
//! ```text
//! events ─┬─ trades ─┬─ trade_analytics ──► Trade + Whale records ────────────┐
//!         │          │        └─ whale trades ──────────┐                       │
//!         │          └─ event_time_candles ► Candle + Late records ────────────┼─► a sink operator
//!         │                └─ final candles ► candle_indicators ► Indicators ──┤   per sink
//!         │                                    ├─► strategy_signals ► Signal ──────┤
//!         │                                    └─► ml_features ◄─ context ► Features
//!         ├─ polled news and posts ─► model ► Sentiment records ──────────────┤
//!         │                          └─► sentiment_windows (differential) ─────┤
//!         ├─ sentiment, macro, market snapshots ─► context (broadcast)        │
//!         └─ gaps, polled items ───────────► Gap + Polled records ────────────┘
//!
//! repeated trades (dedup), Late records, Mismatch records ──► quality facts
//! ```
//!
//! The graph takes a stream of events and returns two streams ([`TradeStreams`]): the records
//! for the sinks and the data-quality facts. It knows nothing of sources, sinks or the ledger:
//! the runtime attaches those.

use cryptoflow_operators::dataflow::{
    AnalyticsConfig, CandleConfig, CandleIndicators, CandleOutput, DedupTrades, EventTimeCandles,
    FeatureInput, IndicatorRow, KlineReconciliation, MlFeatures, ReconcileInput, RestoredCandles,
    StrategySignals, TradeAnalytics, Watermarked,
};
use cryptoflow_operators::features::ContextItem;
use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::{Event, Output, QualityFact};
use cryptoflow_operators::polled::Polled;
use cryptoflow_operators::sentiment::windows::SentimentWindows;
use cryptoflow_operators::sentiment::{score_item, SentimentModel};
use cryptoflow_operators::trading::signals::StrategyConfig;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

/// The parts the events are split into, by kind ([`part_of`]).
const PARTS: u64 = 5;

/// The part of an event: trades, klines, polled items, restored context, gap markers.
fn part_of(e: &Event) -> u64 {
    match e {
        Event::Trade(_) => 0,
        Event::Kline(_) => 1,
        Event::Polled(_) => 2,
        Event::Context(_) => 3,
        Event::Gap(_) => 4,
    }
}

/// How long a kline or candle waits for its counterpart, in watermark time.
const RECONCILE_HORIZON_MS: i64 = 10 * 60_000;

/// What the trade pipeline produces.
pub struct TradeStreams<'scope> {
    /// The records for the sinks.
    pub records: StreamVec<'scope, u64, Output>,
    /// The data-quality facts: repeated trades (dropped from `records`), late trades and kline
    /// mismatches (also in `records`, as [`Output::Late`] and [`Output::Mismatch`]). Each comes
    /// out on the worker that produced it.
    pub quality: StreamVec<'scope, u64, QualityFact>,
}

/// Builds the record and data-quality streams of the trade pipeline from an event stream.
/// `strategies` run over every indicator row (none: no signals); `restored_candles` holds the stored final
/// candles the indicators and strategies are warmed with (empty: they start cold).
pub fn trade_pipeline<'scope>(
    events: StreamVec<'scope, u64, Watermarked<Event>>,
    analytics: &AnalyticsConfig,
    candles: &CandleConfig,
    sentiment: std::sync::Arc<dyn SentimentModel>,
    compare_trade_count: bool,
    strategies: &[StrategyConfig],
    restored_candles: std::sync::Arc<RestoredCandles>,
) -> TradeStreams<'scope> {
    let tick_ms = candles.tick_ms;
    // Each event goes to one part, by kind: trades are not copied into the other branches.
    let mut parts = events.partition(PARTS, |(e, wm)| (part_of(&e), (e, wm)));
    let gap_part = parts.pop().expect("PARTS parts");
    let restored_part = parts.pop().expect("PARTS parts");
    let polled_part = parts.pop().expect("PARTS parts");
    let kline_part = parts.pop().expect("PARTS parts");
    let trade_part = parts.pop().expect("PARTS parts");
    // Each (venue, symbol, id) once: a repeat would count twice in candles and averages. Repeats
    // leave as quality facts.
    let (trades, repeats) = trade_part
        .flat_map(|(e, wm)| match e {
            Event::Trade(t) => Some((t, wm)),
            _ => None,
        })
        .dedup_trades();
    let klines = kline_part.flat_map(|(e, _)| match e {
        Event::Kline(k) if k.is_closed => Some(ReconcileInput::Kline(*k)),
        _ => None,
    });
    let polled = polled_part.flat_map(|(e, _)| match e {
        Event::Polled(p) => Some(p),
        _ => None,
    });
    // News and posts are scored once; scores, macro observations and market snapshots are the
    // features' context.
    let scored = polled
        .clone()
        .flat_map(move |p| score_item(sentiment.as_ref(), &p));
    // Context restored at a restart joins the features and the windows, and is not written again.
    let restored = restored_part.flat_map(|(e, _)| match e {
        Event::Context(c) => Some(*c.0),
        _ => None,
    });
    let restored_sentiment = restored.clone().flat_map(|c| match c {
        ContextItem::Sentiment(r) => Some(r),
        _ => None,
    });
    let context = scored
        .clone()
        .map(ContextItem::Sentiment)
        .concat(polled.clone().flat_map(|p| match *p {
            Polled::Macro(m) => Some(ContextItem::Macro(m)),
            Polled::Market(m) => Some(ContextItem::Market(Box::new(m))),
            _ => None,
        }))
        .concat(restored);
    let windows = scored
        .clone()
        .concat(restored_sentiment)
        .sentiment_windows()
        .map(|w| Output::SentimentWindow(Box::new(w)));
    let sentiment = scored.map(|r| Output::Sentiment(Box::new(r)));
    let gaps = gap_part
        .flat_map(|(e, _)| match e {
            Event::Gap(g) => Some(Output::Gap(g)),
            _ => None,
        })
        .concat(polled.map(Output::Polled));
    let analysed = trades.clone().trade_analytics(analytics);
    let whales = analysed.clone().flat_map(|e| {
        e.is_whale.then(|| {
            FeatureInput::Whale(
                e.trade.venue,
                e.trade.symbol,
                e.trade.ts_exchange,
                e.trade.trade_id,
                to_f64(e.trade.qty),
            )
        })
    });
    let enriched = analysed.flat_map(|e| {
        let whale = e.whale_alert().map(Output::Whale);
        std::iter::once(Output::Trade(e)).chain(whale)
    });
    // Final candles, forming updates and late trades apart, so only the few final candles
    // and late trades are copied into the branches that need them.
    let mut candle_parts = trades
        .event_time_candles(candles)
        .partition(3, |c| match c {
            CandleOutput::Candle(c) if c.is_final => (0, CandleOutput::Candle(c)),
            c @ CandleOutput::Candle(_) => (1, c),
            c @ CandleOutput::Late(_) => (2, c),
        });
    let late = candle_parts.pop().expect("3 parts").flat_map(|c| match c {
        CandleOutput::Late(l) => Some(l),
        CandleOutput::Candle(_) => None,
    });
    let forming = candle_parts.pop().expect("3 parts");
    let final_candles = candle_parts.pop().expect("3 parts").flat_map(|c| match c {
        CandleOutput::Candle(c) => Some(c),
        CandleOutput::Late(_) => None,
    });
    let finals = final_candles.clone().map(ReconcileInput::Candle);
    let with_indicators = final_candles
        .clone()
        .candle_indicators_from(restored_candles.clone());
    let indicator_rows = with_indicators
        .clone()
        .map(|(c, v)| IndicatorRow::new(&c, v));
    let indicators = if strategies.is_empty() {
        indicator_rows.map(|r| Output::Indicators(Box::new(r)))
    } else {
        let signals = indicator_rows
            .clone()
            .strategy_signals_from(strategies, restored_candles)
            .map(|s| Output::Signal(Box::new(s)));
        indicator_rows
            .map(|r| Output::Indicators(Box::new(r)))
            .concat(signals)
    };
    let features = with_indicators
        .map(|cv| FeatureInput::Candle(Box::new(cv)))
        .concat(whales)
        .ml_features(context)
        .map(|f| Output::Features(Box::new(f)));
    let mismatches =
        finals
            .concat(klines)
            .reconcile_klines(tick_ms, RECONCILE_HORIZON_MS, compare_trade_count);
    let quality = repeats
        .map(QualityFact::Duplicate)
        .concat(late.clone().map(QualityFact::Late))
        .concat(mismatches.clone().map(QualityFact::Mismatch));
    let mismatches = mismatches.map(Output::Mismatch);
    let candles = final_candles
        .map(Output::Candle)
        .concat(forming.flat_map(|c| match c {
            CandleOutput::Candle(c) => Some(Output::Candle(c)),
            CandleOutput::Late(_) => None,
        }))
        .concat(late.map(Output::Late));
    let records = enriched
        .concat(candles)
        .concat(gaps)
        .concat(mismatches)
        .concat(indicators)
        .concat(sentiment)
        .concat(windows)
        .concat(features);
    TradeStreams { records, quality }
}
