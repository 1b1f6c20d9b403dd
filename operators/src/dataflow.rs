//! Timely operators over normalized events, sharded by symbol.
//!
//! Timestamps are event-time ticks (`u64`). The source computes a watermark tick per event,
//! `tick(newest event time seen before it − allowed lateness)`, and sends the event together
//! with it as a [`Watermarked`] pair, at a timely time no later than that watermark (it advances
//! its input once per batch, so progress tracking stays cheap at any message rate). Decisions that
//! depend on lateness read the watermark carried in the record, so they do not depend on how the
//! source batched its input. The exact event time travels in the record.
//!
//! - [`DedupTrades::dedup_trades`]: each trade id once per (venue, symbol), before the rest.
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

use crate::math::{to_f64, CandleAcc, Ema, IdSet, Sma};
use crate::model::{
    Candle, IndicatorValues, Interval, Kline, KlineMismatch, Millis, Symbol, Trade, Venue,
};
pub use crate::model::{EnrichedTrade, IndicatorRow, LateTrade};

/// A fast, non-cryptographic hasher for operator state keyed by symbols (keys are not
/// attacker-chosen beyond the configured symbols; `SipHash` costs more than the state update).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// A record with the watermark tick the source had when it received it.
pub type Watermarked<T> = (T, u64);

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
    /// Highest id seen per id space (trade ids, aggregate ids).
    last_id: [Option<u64>; 2],
    /// The averages as they stood before each recent id hole of at least `fork_min_hole` ids,
    /// to continue in id order when the hole's trades arrive after later ones (a long refill
    /// delivers live trades first).
    forks: std::collections::VecDeque<Fork>,
    /// Holes shorter than this (an SMA window) are reorderings: their trades join the averages
    /// in arrival order.
    fork_min_hole: u64,
}

/// The averages at the start of a hole: `next` is the id they expect next.
struct Fork {
    space: usize,
    next: u64,
    /// The first id after the hole.
    end: u64,
    sma: Sma,
    ema: Ema,
}

/// Holes remembered per symbol (older ones are forgotten; their late trades then get the
/// averages as they stand).
const MAX_FORKS: usize = 16;

impl SymbolState {
    /// The averages after `trade`. Trades join the averages in arrival order, except around a
    /// hole of at least an SMA window: the averages before it are remembered, and a trade from
    /// inside it arriving later (a long refill) continues them instead, so refilled trades get
    /// the values they would have had in id order and the live averages are not disturbed by
    /// old prices.
    fn update(&mut self, trade: &Trade) -> (Decimal, Option<f64>) {
        let space = usize::from(trade.agg.is_some());
        let id = trade.trade_id;
        match self.last_id[space] {
            Some(last) if id < last => {
                let fork = self
                    .forks
                    .iter_mut()
                    .filter(|f| f.space == space && f.next <= id && id < f.end)
                    .max_by_key(|f| f.next);
                match fork {
                    Some(f) => {
                        f.sma.update(trade.price);
                        let ema = f.ema.update(to_f64(trade.price));
                        f.next = id + 1;
                        (f.sma.mean(), ema)
                    }
                    None => {
                        self.sma.update(trade.price);
                        let ema = self.ema.update(to_f64(trade.price));
                        (self.sma.mean(), ema)
                    }
                }
            }
            last => {
                if let Some(last) = last {
                    if id - last > self.fork_min_hole {
                        if self.forks.len() == MAX_FORKS {
                            self.forks.pop_front();
                        }
                        self.forks.push_back(Fork {
                            space,
                            next: last + 1,
                            end: id,
                            sma: self.sma.clone(),
                            ema: self.ema.clone(),
                        });
                    }
                }
                self.last_id[space] = Some(id);
                self.sma.update(trade.price);
                let ema = self.ema.update(to_f64(trade.price));
                (self.sma.mean(), ema)
            }
        }
    }
}

/// Per-symbol moving averages and whale detection.
pub trait TradeAnalytics<'scope> {
    /// Enriches every trade; exchanged by symbol so each symbol's state lives on one worker.
    fn trade_analytics(self, config: &AnalyticsConfig) -> StreamVec<'scope, u64, EnrichedTrade>;
}

impl<'scope> TradeAnalytics<'scope> for StreamVec<'scope, u64, Watermarked<Trade>> {
    fn trade_analytics(self, config: &AnalyticsConfig) -> StreamVec<'scope, u64, EnrichedTrade> {
        let config = config.clone();
        self.unary(
            Exchange::new(|t: &Watermarked<Trade>| t.0.symbol.shard_hash()),
            "TradeAnalytics",
            move |_cap, _info| {
                let mut state: FxHashMap<(Venue, Symbol), SymbolState> = FxHashMap::default();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            for (trade, _) in batch.drain(..) {
                                let st =
                                    state.entry((trade.venue, trade.symbol)).or_insert_with(|| {
                                        SymbolState {
                                            sma: Sma::new(config.sma_window),
                                            ema: Ema::new(config.ema_window),
                                            threshold: config.whales.for_symbol(&trade.symbol),
                                            last_id: [None; 2],
                                            forks: Default::default(),
                                            fork_min_hole: config.sma_window.max(1) as u64,
                                        }
                                    });
                                let (moving_average, ema) = st.update(&trade);
                                let is_whale = trade.notional() >= st.threshold;
                                session.give(EnrichedTrade {
                                    moving_average,
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

/// Drops repeated trades before any operator sees them.
pub trait DedupTrades<'scope> {
    /// Passes each (venue, symbol, id space, trade id) once, in arrival order, on the first
    /// stream; every repeat (overlapping captures, merged recordings, a rollover overlap) comes
    /// out on the second stream instead, at the time it arrived. Exchanged by symbol, so the
    /// downstream per-symbol operators stay on the same worker. Trade ids (`t`) and aggregate
    /// ids (`a`) are separate id spaces.
    fn dedup_trades(
        self,
    ) -> (
        StreamVec<'scope, u64, Watermarked<Trade>>,
        StreamVec<'scope, u64, Trade>,
    );
}

impl<'scope> DedupTrades<'scope> for StreamVec<'scope, u64, Watermarked<Trade>> {
    fn dedup_trades(
        self,
    ) -> (
        StreamVec<'scope, u64, Watermarked<Trade>>,
        StreamVec<'scope, u64, Trade>,
    ) {
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
        use timely::dataflow::operators::generic::OutputBuilder;
        use timely::progress::operate::FrontierInterest;

        let mut builder = OperatorBuilder::new("DedupTrades".to_owned(), self.scope());
        let mut input = builder.new_input(
            self,
            Exchange::new(|t: &Watermarked<Trade>| t.0.symbol.shard_hash()),
        );
        builder.set_notify_for(0, FrontierInterest::Never);
        let (unique, unique_stream) = builder.new_output();
        let (repeats, repeat_stream) = builder.new_output();
        let mut unique =
            OutputBuilder::<u64, CapacityContainerBuilder<Vec<Watermarked<Trade>>>>::from(unique);
        let mut repeats = OutputBuilder::<u64, CapacityContainerBuilder<Vec<Trade>>>::from(repeats);
        builder.build(move |_capabilities| {
            let mut seen: FxHashMap<(Venue, Symbol, bool), IdSet> = FxHashMap::default();
            move |_frontiers| {
                let mut unique = unique.activate();
                let mut repeats = repeats.activate();
                input.for_each_stamp(|cap, data| {
                    let mut first = unique.session(&cap);
                    let mut again = repeats.session(&cap);
                    for batch in data {
                        for (trade, wm) in batch.drain(..) {
                            let key = (trade.venue, trade.symbol, trade.agg.is_some());
                            if seen.entry(key).or_default().insert(trade.trade_id) {
                                first.give((trade, wm));
                            } else {
                                again.give(trade);
                            }
                        }
                    }
                });
            }
        });
        (unique_stream, repeat_stream)
    }
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

/// A candle window: venue, symbol, interval, open time (spot and futures `BTCUSDT` never merge).
type CandleKey = (Venue, Symbol, Interval, Millis);

/// Event-time candles.
///
/// A window is final once the input frontier passes its end tick. A trade is late when the
/// watermark it carries has already reached the end of its window: then the trade comes out as
/// [`CandleOutput::Late`] and the candle is not changed. The final candle is emitted at the
/// window's last tick (`end − 1`); forming updates at the time of the input that changed them.
pub trait EventTimeCandles<'scope> {
    /// Candles per (symbol, interval); exchanged by symbol.
    fn event_time_candles(self, config: &CandleConfig) -> StreamVec<'scope, u64, CandleOutput>;
}

impl<'scope> EventTimeCandles<'scope> for StreamVec<'scope, u64, Watermarked<Trade>> {
    fn event_time_candles(self, config: &CandleConfig) -> StreamVec<'scope, u64, CandleOutput> {
        let config = config.clone();
        let tick = config.tick_ms.max(1);
        self.unary_frontier(
            Exchange::new(|t: &Watermarked<Trade>| t.0.symbol.shard_hash()),
            "EventTimeCandles",
            move |_cap, _info| {
                // Open windows: venue, accumulator, and whether it changed since the last emission.
                let mut open: FxHashMap<CandleKey, (Venue, CandleAcc, bool)> = FxHashMap::default();
                // End tick → capability at end − 1 and the candles ending there.
                let mut ending: BTreeMap<u64, (Capability<u64>, Vec<CandleKey>)> = BTreeMap::new();
                let mut touched: Vec<CandleKey> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        if cap.least().is_none() {
                            return;
                        }
                        let port = output.output_index();
                        let mut session = output.session(&cap);
                        for batch in data {
                            for (trade, now) in batch.drain(..) {
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
                                    let key = (trade.venue, trade.symbol, interval, open_time);
                                    match open.get_mut(&key) {
                                        Some((_, acc, dirty)) => {
                                            acc.add(&trade);
                                            if config.emit_forming && !*dirty {
                                                *dirty = true;
                                                touched.push(key);
                                            }
                                        }
                                        None => {
                                            let acc = CandleAcc::new(open_time, &trade);
                                            open.insert(
                                                key,
                                                (trade.venue, acc, config.emit_forming),
                                            );
                                            if config.emit_forming {
                                                touched.push(key);
                                            }
                                            ending
                                                .entry(end_tick)
                                                .or_insert_with(|| {
                                                    (cap.delayed(&(end_tick - 1), port), Vec::new())
                                                })
                                                .1
                                                .push(key);
                                        }
                                    }
                                }
                            }
                        }
                        touched.sort_unstable();
                        for key in touched.drain(..) {
                            if let Some((venue, acc, dirty)) = open.get_mut(&key) {
                                *dirty = false;
                                session.give(CandleOutput::Candle(
                                    acc.to_candle(*venue, key.1, key.2, false),
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
                            if let Some((venue, acc, _)) = open.remove(&key) {
                                session.give(CandleOutput::Candle(
                                    acc.to_candle(venue, key.1, key.2, true),
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

/// Input of [`KlineReconciliation`]: final computed candles and closed exchange klines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileInput {
    /// A final candle computed from trades.
    Candle(Candle),
    /// A closed exchange kline.
    Kline(Kline),
}

impl ReconcileInput {
    fn key(&self) -> CandleKey {
        match self {
            ReconcileInput::Candle(c) => (c.venue, c.symbol, c.interval, c.open_time),
            ReconcileInput::Kline(k) => (k.venue, k.symbol, k.interval, k.open_time),
        }
    }
}

/// What a kline and a candle are compared on: one side of a pair while the other is awaited
/// (about half the size of a whole candle, since the reconciliation holds every final candle of
/// its horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ComparedSide {
    /// The exchange's kline (not the computed candle).
    is_kline: bool,
    /// Open, high, low, close, base volume.
    ohlcv: [Decimal; 5],
    /// Number of trades.
    trade_count: u64,
}

impl ComparedSide {
    fn of(item: &ReconcileInput) -> Self {
        match item {
            ReconcileInput::Candle(c) => Self::candle(c),
            ReconcileInput::Kline(k) => Self::kline(k),
        }
    }

    fn candle(c: &Candle) -> Self {
        ComparedSide {
            is_kline: false,
            ohlcv: [c.open, c.high, c.low, c.close, c.volume],
            trade_count: c.trade_count,
        }
    }

    fn kline(k: &Kline) -> Self {
        ComparedSide {
            is_kline: true,
            ohlcv: [k.open, k.high, k.low, k.close, k.volume],
            trade_count: k.trade_count,
        }
    }
}

/// Compares a closed kline with the candle computed for the same window; the differing fields.
pub fn kline_differences(candle: &Candle, kline: &Kline, compare_trade_count: bool) -> Vec<String> {
    side_differences(
        &ComparedSide::candle(candle),
        &ComparedSide::kline(kline),
        compare_trade_count,
    )
}

/// The fields in which two sides differ.
fn side_differences(a: &ComparedSide, b: &ComparedSide, compare_trade_count: bool) -> Vec<String> {
    const NAMES: [&str; 5] = ["open", "high", "low", "close", "volume"];
    let mut out: Vec<String> = NAMES
        .iter()
        .zip(a.ohlcv.iter().zip(b.ohlcv.iter()))
        .filter(|(_, (x, y))| x != y)
        .map(|(name, _)| (*name).to_string())
        .collect();
    if compare_trade_count && a.trade_count != b.trade_count {
        out.push("trade_count".to_string());
    }
    out
}

/// Kline reconciliation: every closed exchange kline is compared with the candle cryptoflow
/// computed from trades for the same (symbol, interval, open time); a disagreement comes out as
/// one [`KlineMismatch`] listing the fields. Windows with only one side are dropped after
/// `horizon_ms` of watermark progress (a kline for a window without trades, or a stream that
/// is not subscribed).
pub trait KlineReconciliation<'scope> {
    /// Reconciles; exchanged by symbol.
    fn reconcile_klines(
        self,
        tick_ms: i64,
        horizon_ms: i64,
        compare_trade_count: bool,
    ) -> StreamVec<'scope, u64, KlineMismatch>;
}

impl<'scope> KlineReconciliation<'scope> for StreamVec<'scope, u64, ReconcileInput> {
    fn reconcile_klines(
        self,
        tick_ms: i64,
        horizon_ms: i64,
        compare_trade_count: bool,
    ) -> StreamVec<'scope, u64, KlineMismatch> {
        let tick = tick_ms.max(1);
        self.unary_frontier(
            Exchange::new(|x: &ReconcileInput| x.key().1.shard_hash()),
            "KlineReconciliation",
            move |_cap, _info| {
                let mut pending: FxHashMap<CandleKey, ComparedSide> = FxHashMap::default();
                move |(input, frontier), output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            for item in batch.drain(..) {
                                let key = item.key();
                                let side = ComparedSide::of(&item);
                                match pending.remove(&key) {
                                    Some(other) if other.is_kline != side.is_kline => {
                                        let fields =
                                            side_differences(&other, &side, compare_trade_count);
                                        if !fields.is_empty() {
                                            session.give(KlineMismatch {
                                                venue: key.0,
                                                symbol: key.1,
                                                interval: key.2,
                                                open_time: key.3,
                                                fields,
                                            });
                                        }
                                    }
                                    _ => {
                                        // First side of a pair (or a repeat of the same side: keep the newest).
                                        pending.insert(key, side);
                                    }
                                }
                            }
                        }
                    });
                    if let Some(&f) = frontier.frontier().iter().next() {
                        let watermark_ms = f as i64 * tick;
                        pending.retain(|(_, _, interval, open), _| {
                            open + interval.millis() + horizon_ms > watermark_ms
                        });
                    }
                }
            },
        )
        .container::<Vec<_>>()
    }
}

/// The key of per-(symbol, interval) candle state.
pub type CandleKey3 = (Venue, Symbol, Interval);

/// Adds `c` to `set` and returns the indicators at it.
pub fn indicators_at(
    set: &mut crate::math::indicators::IndicatorSet,
    c: &Candle,
) -> IndicatorValues {
    let bar = crate::math::indicators::Bar {
        high: to_f64(c.high),
        low: to_f64(c.low),
        close: to_f64(c.close),
        volume: to_f64(c.volume),
    };
    set.update(&bar, c.quote_volume, c.volume)
}

/// Final candles stored by an earlier run, read back at a start so that indicators and
/// strategies carry on warm instead of starting over. Shared read-only by every worker; each
/// takes the candles of a (symbol, interval) when the run's first final candle of it arrives,
/// which is on the worker that owns the symbol.
///
/// Only stored candles that open **before** that first candle are used: the candle the run
/// resumes in (and any later one) is computed again from the trades, never counted twice.
#[derive(Debug, Default, Clone)]
pub struct RestoredCandles {
    by_key: HashMap<CandleKey3, Vec<Candle>>,
}

impl RestoredCandles {
    /// The candles, grouped by (venue, symbol, interval) in open-time order (a repeated open time
    /// keeps the first).
    pub fn new(candles: Vec<Candle>) -> Self {
        let mut by_key: HashMap<CandleKey3, Vec<Candle>> = HashMap::new();
        for c in candles {
            by_key
                .entry((c.venue, c.symbol, c.interval))
                .or_default()
                .push(c);
        }
        for v in by_key.values_mut() {
            v.sort_by_key(|c| c.open_time);
            v.dedup_by_key(|c| c.open_time);
        }
        RestoredCandles { by_key }
    }

    /// Number of candles.
    pub fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The restored candles of `key` that open before `first`, oldest first.
    pub fn before(&self, key: &CandleKey3, first: Millis) -> &[Candle] {
        match self.by_key.get(key) {
            Some(v) => &v[..v.partition_point(|c| c.open_time < first)],
            None => &[],
        }
    }

    /// The indicator state after the restored candles of `key` before `first`, the open time of
    /// the last of them (`Millis::MIN` when none) and the indicator rows they give.
    pub fn warm(
        &self,
        key: &CandleKey3,
        first: Millis,
    ) -> (
        crate::math::indicators::IndicatorSet,
        Millis,
        Vec<IndicatorRow>,
    ) {
        let mut set = crate::math::indicators::IndicatorSet::default();
        let mut last = Millis::MIN;
        let mut rows = Vec::new();
        for c in self.before(key, first) {
            let v = indicators_at(&mut set, c);
            last = c.open_time;
            rows.push(IndicatorRow::new(c, v));
        }
        (set, last, rows)
    }
}

/// Technical indicators per (symbol, interval) over final candles.
pub trait CandleIndicators<'scope> {
    /// The final candle with its indicators, in open-time order per (symbol, interval); exchanged
    /// by symbol. A final candle not newer than the last one of its key is ignored (a repeat).
    fn candle_indicators(self) -> StreamVec<'scope, u64, (Candle, IndicatorValues)>;

    /// [`CandleIndicators::candle_indicators`] warmed up by `restored`: a (symbol, interval)'s
    /// state starts from its restored candles before the run's first candle of it.
    fn candle_indicators_from(
        self,
        restored: std::sync::Arc<RestoredCandles>,
    ) -> StreamVec<'scope, u64, (Candle, IndicatorValues)>;
}

impl<'scope> CandleIndicators<'scope> for StreamVec<'scope, u64, Candle> {
    fn candle_indicators(self) -> StreamVec<'scope, u64, (Candle, IndicatorValues)> {
        self.candle_indicators_from(std::sync::Arc::default())
    }

    fn candle_indicators_from(
        self,
        restored: std::sync::Arc<RestoredCandles>,
    ) -> StreamVec<'scope, u64, (Candle, IndicatorValues)> {
        use crate::math::indicators::IndicatorSet;
        self.unary(
            Exchange::new(|c: &Candle| c.symbol.shard_hash()),
            "CandleIndicators",
            move |_cap, _info| {
                let mut state: FxHashMap<CandleKey3, (Millis, IndicatorSet)> = FxHashMap::default();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut candles: Vec<Candle> = Vec::new();
                        for batch in data {
                            candles.append(batch);
                        }
                        candles.sort_by_key(|c| (c.venue, c.symbol, c.interval, c.open_time));
                        let mut session = output.session(&cap);
                        for c in candles {
                            let key = (c.venue, c.symbol, c.interval);
                            let (last, set) = state.entry(key).or_insert_with(|| {
                                let (set, last, _) = restored.warm(&key, c.open_time);
                                (last, set)
                            });
                            if c.open_time <= *last {
                                continue;
                            }
                            *last = c.open_time;
                            let values = indicators_at(set, &c);
                            session.give((c, values));
                        }
                    });
                }
            },
        )
        .container::<Vec<_>>()
    }
}

/// Strategy signals over the indicator rows of final candles.
pub trait StrategySignals<'scope> {
    /// The signals of `strategies` at each indicator row; exchanged by symbol, so the state of
    /// each (symbol, interval, strategy) lives on the worker that owns the symbol. Rows of a
    /// (symbol, interval) must come in open-time order (as [`CandleIndicators`] emits them); the
    /// rows of one time are taken in key order.
    fn strategy_signals(
        self,
        strategies: &[crate::trading::signals::StrategyConfig],
    ) -> StreamVec<'scope, u64, crate::model::SignalRow>;

    /// [`StrategySignals::strategy_signals`] warmed up by `restored`: before the first row of a
    /// (symbol, interval), the strategies see the indicator rows of its restored candles (their
    /// signals were emitted by the run that stored them, so they are not emitted again).
    fn strategy_signals_from(
        self,
        strategies: &[crate::trading::signals::StrategyConfig],
        restored: std::sync::Arc<RestoredCandles>,
    ) -> StreamVec<'scope, u64, crate::model::SignalRow>;
}

impl<'scope> StrategySignals<'scope> for StreamVec<'scope, u64, IndicatorRow> {
    fn strategy_signals(
        self,
        strategies: &[crate::trading::signals::StrategyConfig],
    ) -> StreamVec<'scope, u64, crate::model::SignalRow> {
        self.strategy_signals_from(strategies, std::sync::Arc::default())
    }

    fn strategy_signals_from(
        self,
        strategies: &[crate::trading::signals::StrategyConfig],
        restored: std::sync::Arc<RestoredCandles>,
    ) -> StreamVec<'scope, u64, crate::model::SignalRow> {
        let configs = strategies.to_vec();
        self.unary(
            Exchange::new(|r: &IndicatorRow| r.symbol.shard_hash()),
            "StrategySignals",
            move |_cap, _info| {
                let mut strategies = crate::trading::signals::Strategies::new(configs);
                let mut warmed: std::collections::HashSet<CandleKey3> = Default::default();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut rows: Vec<IndicatorRow> = Vec::new();
                        for batch in data {
                            rows.append(batch);
                        }
                        rows.sort_by_key(|r| (r.venue, r.symbol, r.interval, r.open_time));
                        let mut session = output.session(&cap);
                        for r in &rows {
                            let key = (r.venue, r.symbol, r.interval);
                            if !restored.is_empty() && warmed.insert(key) {
                                for old in restored.warm(&key, r.open_time).2 {
                                    let _ = strategies.on_indicators(&old);
                                }
                            }
                            for s in strategies.signal_rows(r) {
                                session.give(s);
                            }
                        }
                    });
                }
            },
        )
        .container::<Vec<_>>()
    }
}

/// Input of [`MlFeatures`] that is per symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FeatureInput {
    /// A final candle and its indicators.
    Candle(Box<(Candle, IndicatorValues)>),
    /// A whale trade: venue, symbol, exchange time, trade id, quantity.
    Whale(Venue, Symbol, Millis, u64, f64),
}

/// Point-in-time ML feature vectors at final candles.
pub trait MlFeatures<'scope> {
    /// One [`crate::model::FeatureRow`] per final candle, computed once every input has passed
    /// the candle's time; `context` is broadcast to every worker.
    fn ml_features(
        self,
        context: StreamVec<'scope, u64, crate::model::ContextItem>,
    ) -> StreamVec<'scope, u64, crate::model::FeatureRow>;
}

impl<'scope> MlFeatures<'scope> for StreamVec<'scope, u64, FeatureInput> {
    fn ml_features(
        self,
        context: StreamVec<'scope, u64, crate::model::ContextItem>,
    ) -> StreamVec<'scope, u64, crate::model::FeatureRow> {
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::vec::Broadcast;
        let context = context.broadcast();
        self.binary_frontier(
            context,
            Exchange::new(|x: &FeatureInput| match x {
                FeatureInput::Candle(c) => c.0.symbol.shard_hash(),
                FeatureInput::Whale(_, s, ..) => s.shard_hash(),
            }),
            Pipeline,
            "MlFeatures",
            move |_cap, _info| {
                let mut engine = crate::features::FeatureEngine::new();
                let mut stash: BTreeMap<u64, (Capability<u64>, Vec<FeatureInput>)> =
                    BTreeMap::new();
                move |(input1, frontier1), (input2, frontier2), output| {
                    input2.for_each_stamp(|_cap, data| {
                        for batch in data {
                            for item in batch.drain(..) {
                                engine.add_context(item);
                            }
                        }
                    });
                    input1.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        let entry = stash
                            .entry(*cap.time())
                            .or_insert_with(|| (cap, Vec::new()));
                        for batch in data {
                            entry.1.append(batch);
                        }
                    });
                    // Whales first, then candles in key order, for every time the frontier passed.
                    while let Some(e) = stash.first_entry() {
                        if frontier1.frontier().less_equal(e.key())
                            || frontier2.frontier().less_equal(e.key())
                        {
                            break;
                        }
                        let (cap, items) = e.remove();
                        let mut candles = Vec::new();
                        for item in items {
                            match item {
                                FeatureInput::Whale(v, s, ts, id, q) => {
                                    engine.add_whale(v, s, ts, id, q)
                                }
                                FeatureInput::Candle(c) => candles.push(c),
                            }
                        }
                        candles
                            .sort_by_key(|c| (c.0.venue, c.0.symbol, c.0.interval, c.0.open_time));
                        let mut session = output.session(&cap);
                        for c in candles {
                            if let Some(row) = engine.on_candle(&c.0, &c.1) {
                                session.give(row);
                            }
                        }
                    }
                }
            },
        )
        .container::<Vec<_>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Side;

    fn trade(id: u64) -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            trade_id: id,
            price: Decimal::from(100 + (id * 7919) % 97),
            qty: Decimal::ONE,
            side: Side::Buy,
            ts_exchange: id as i64,
            ts_received: 0,
            agg: None,
        }
    }

    fn final_candle(open_time: Millis, close: i64) -> Candle {
        crate::model::outputs::tests::candle(open_time, close, true)
    }

    #[test]
    fn restored_candles_warm_only_before_the_first_candle_of_the_run() {
        let m = 60_000;
        // Stored out of order, with a repeat; the run starts again at 40 min (its candle and the
        // later ones are computed again from the trades, never counted twice).
        let mut stored: Vec<Candle> = (0..45)
            .rev()
            .map(|i| final_candle(i * m, 100 + i))
            .collect();
        stored.push(final_candle(3 * m, 999));
        let restored = RestoredCandles::new(stored);
        assert_eq!(restored.len(), 45);
        let key = (
            Venue::Binance,
            Symbol::new("BTCUSDT").expect("s"),
            Interval::MINUTE,
        );
        let before = restored.before(&key, 40 * m);
        assert_eq!(before.len(), 40);
        assert!(before.windows(2).all(|w| w[0].open_time < w[1].open_time));
        let (mut warm, last, rows) = restored.warm(&key, 40 * m);
        assert_eq!((last, rows.len()), (39 * m, 40));
        // The same state as feeding the 40 candles in order.
        let mut cold = crate::math::indicators::IndicatorSet::default();
        for i in 0..40 {
            indicators_at(&mut cold, &final_candle(i * m, 100 + i));
        }
        let next = final_candle(40 * m, 140);
        let (w, c) = (
            indicators_at(&mut warm, &next),
            indicators_at(&mut cold, &next),
        );
        assert_eq!(w, c);
        assert!(w.macd.is_some());
        let other = (Venue::BinanceUsdm, key.1, key.2);
        assert!(restored.before(&other, 40 * m).is_empty());
    }

    fn state() -> SymbolState {
        SymbolState {
            sma: Sma::new(5),
            ema: Ema::new(5),
            threshold: Decimal::MAX,
            last_id: [None; 2],
            forks: Default::default(),
            fork_min_hole: 5,
        }
    }

    #[test]
    fn refilled_trades_get_the_averages_of_id_order() {
        // In id order: 1..=40.
        let mut in_order = state();
        let want: Vec<_> = (1..=40).map(|id| in_order.update(&trade(id))).collect();
        // A long refill: 1..=10, then live 21..=40 (ids 11..=20 missing), then the refill 11..=20.
        let mut st = state();
        let mut got = std::collections::BTreeMap::new();
        for id in (1..=10).chain(21..=40).chain(11..=20) {
            got.insert(id, st.update(&trade(id)));
        }
        for id in 1..=20u64 {
            assert_eq!(got[&id], want[id as usize - 1], "id {id}");
        }
        // Live trades after the hole got the averages known when they arrived, and five trades
        // later (the SMA window) the SMA is the id-order one again.
        assert_ne!(got[&21].0, want[20].0);
        for id in 26..=40u64 {
            assert_eq!(got[&id].0, want[id as usize - 1].0, "id {id}");
        }
    }

    #[test]
    fn a_short_reordering_joins_the_averages_in_arrival_order() {
        // Ids 1..=10, then 13, 11, 12 (a hole of 2 < the window of 5): plain arrival order.
        let order = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 11, 12, 14];
        let mut sma = Sma::new(5);
        let mut st = state();
        for id in order {
            sma.update(trade(id).price);
            assert_eq!(st.update(&trade(id)).0, sma.mean(), "id {id}");
        }
    }
}
