//! The trade pipeline's dataflow graph, built once per worker.
//!
//! ```text
//! events ─┬─ trades ─┬─ trade_analytics ──► Trade + Whale records ─┐
//!         │          └─ event_time_candles ► Candle + Late records ─┼─► one sink operator per sink
//!         └─ gaps ─────────────────────────► Gap records ───────────┘
//! ```

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use cryptoflow_operators::dataflow::{
    AnalyticsConfig, CandleConfig, CandleOutput, EventTimeCandles, TradeAnalytics, Watermarked,
};
use cryptoflow_operators::model::Event;
use cryptoflow_sinks::{SinkMsg, SinkRecord};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Operator};
use timely::dataflow::StreamVec;
use tokio::sync::mpsc;

/// Builds the record stream of the trade pipeline from an event stream.
pub fn trade_pipeline<'scope>(
    events: StreamVec<'scope, u64, Watermarked<Event>>,
    analytics: &AnalyticsConfig,
    candles: &CandleConfig,
) -> StreamVec<'scope, u64, SinkRecord> {
    let trades = events.clone().flat_map(|(e, wm)| match e {
        Event::Trade(t) => Some((t, wm)),
        _ => None,
    });
    let gaps = events.flat_map(|(e, _)| match e {
        Event::Gap(g) => Some(SinkRecord::Gap(g)),
        _ => None,
    });
    let enriched = trades.clone().trade_analytics(analytics).flat_map(|e| {
        let whale = e.whale_alert().map(SinkRecord::Whale);
        std::iter::once(SinkRecord::Trade(e)).chain(whale)
    });
    let candles = trades.event_time_candles(candles).map(|c| match c {
        CandleOutput::Candle(c) => SinkRecord::Candle(c),
        CandleOutput::Late(l) => SinkRecord::Late(l),
    });
    enriched.concat(candles).concat(gaps)
}

/// Shared counters between the feeding worker and the sink operators.
#[derive(Debug, Default)]
pub struct Flow {
    /// Trades fed but not yet handed to the first sink.
    pub in_flight: AtomicI64,
    /// Set when a sink task is gone (it failed); workers stop feeding.
    pub sink_failed: AtomicBool,
}

/// Hands records and frontier progress of this worker to a sink task. Blocks the worker when the
/// sink's queue is full (backpressure). `count_trades` makes this operator release in-flight
/// trades (set on exactly one sink).
pub fn attach_sink(
    records: StreamVec<'_, u64, SinkRecord>,
    worker: usize,
    tx: mpsc::Sender<SinkMsg>,
    flow: Arc<Flow>,
    count_trades: bool,
) {
    let mut last: Option<Option<u64>> = None;
    records.sink(Pipeline, "Sink", move |(input, frontier)| {
        input.for_each_stamp(|cap, data| {
            let Some(&time) = cap.least() else { return };
            let mut records: Vec<SinkRecord> = Vec::new();
            for batch in data {
                if records.is_empty() {
                    std::mem::swap(&mut records, batch);
                } else {
                    records.append(batch);
                }
            }
            let trades = if count_trades {
                records
                    .iter()
                    .filter(|r| matches!(r, SinkRecord::Trade(_)))
                    .count() as i64
            } else {
                0
            };
            if tx
                .blocking_send(SinkMsg::Data {
                    worker,
                    time,
                    records,
                })
                .is_err()
            {
                flow.sink_failed.store(true, Ordering::SeqCst);
            }
            if trades > 0 {
                flow.in_flight.fetch_sub(trades, Ordering::SeqCst);
            }
        });
        let f = frontier.frontier().iter().next().copied();
        if last != Some(f) {
            last = Some(f);
            if tx
                .blocking_send(SinkMsg::Progress {
                    worker,
                    frontier: f,
                })
                .is_err()
            {
                flow.sink_failed.store(true, Ordering::SeqCst);
            }
        }
    });
}
