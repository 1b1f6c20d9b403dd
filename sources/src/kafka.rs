//! Kafka source: raw Binance payloads from topics, read with a consumer group.
//!
//! Messages are the frames a Binance WebSocket sends (a plain `trade`/`aggTrade`/`kline` event,
//! a combined-stream wrapper, or a capture line as `cryptoflow record` writes them); one message
//! per frame, keyed by symbol so one symbol stays in one partition.
//!
//! Delivery: offsets are committed only for messages whose every output every sink has
//! acknowledged. The source batches messages, and for each batch it learns from the feeding
//! worker the watermark tick the batch was fed at ([`OffsetFeedback::fed`]). A batch is released
//! once the least ack over all sinks ([`OffsetFeedback::durable`]) passes both that tick (its
//! trades are stored) and the end tick of every candle its trades belong to (the final candle is
//! stored): after a crash the restarted consumer re-reads exactly the trades whose candles were
//! not final yet, so candles come out whole. Batches are released in order and committed per
//! partition. Sinks are idempotent, so what is read twice is stored once.
//!
//! Per (symbol, stream) the trade ids are sequenced: repeats are dropped and counted, holes are
//! reported as [`Gap`] events (`detail` says the ids are not in the topic).
//!
//! Partitions: the watermark never passes the slowest partition still delivering
//! ([`WatermarkCap`]). A partition read to its end (librdkafka's `enable.partition.eof`, set
//! here; an empty partition reports it at once) holds neither the watermark nor the commits back
//! until it delivers again; one silent for `partition_idle_ms` stops holding them too.
//!
//! Readiness ([`SourceStats::health`]): `Starting` until the first partition assignment, `Lost`
//! while no broker connection has been up (librdkafka's statistics, every second) for longer than
//! `connect_timeout_ms`, `Ready` otherwise. Both waits past `connect_timeout_ms` are a WARN naming
//! the brokers; the brokers' return is an INFO line. librdkafka reconnects by itself.
//!
//! Bad input (not UTF-8, not JSON, wrong shape, larger than `max_message_bytes`) is counted,
//! logged once per kind and produced to the dead-letter topic, with headers naming the error and
//! the origin; a bad message's offset is committed only after the dead-letter topic has it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoflow_operators::backoff::Backoff;
use cryptoflow_operators::model::{Event, Gap, GapReason, StreamKind, Symbol, Venue};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::binance::{decode_frame, set_venue, Decoded};
pub use crate::progress::{Durable, WatermarkCap};
use crate::sequencer::{Sequencer, Verdict};
use crate::stats::{SourceHealth, SourceStats};
use crate::EventBatch;

const SOURCE: &str = "kafka";

/// Settings of the Kafka source.
#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group.
    pub group_id: String,
    /// Topic for bad input (`""`: bad input is only counted and written to the dead-letter file).
    pub dead_letter_topic: String,
    /// Larger messages are bad input.
    pub max_message_bytes: usize,
    /// Most messages per batch handed to the dataflow.
    pub batch_max: usize,
    /// Extra librdkafka consumer settings (override the defaults set here).
    pub consumer: BTreeMap<String, String>,
    /// Candle intervals of the pipeline, ms (a batch is released when its candles are final).
    pub candle_intervals_ms: Vec<i64>,
    /// Length of a timely tick, ms.
    pub tick_ms: i64,
    /// A partition silent for this long (of the consumer's reading time) stops holding the
    /// watermark back, ms; one read to its end (librdkafka's partition EOF) stops at once, until
    /// it delivers again.
    pub partition_idle_ms: u64,
    /// Brokers that do not answer a metadata request within this long at start-up are an
    /// error, ms. Once running, brokers lost for longer (or no partition assignment for longer)
    /// are a warning naming them, and the source reports itself not ready
    /// ([`SourceStats::health`]) until they answer.
    pub connect_timeout_ms: u64,
}

/// What the runtime tells the source about its batches.
pub struct OffsetFeedback {
    /// The watermark tick each batch was fed at, in the order the batches were sent.
    pub fed: mpsc::UnboundedReceiver<u64>,
    /// The least ack over all sinks.
    pub durable: watch::Receiver<Durable>,
    /// Event-time bound for the watermark, kept up to date by the source.
    pub cap: WatermarkCap,
}

/// Newest exchange time per partition, when the partition last delivered (or was assigned), on
/// the consumer's own clock, and whether it is known to be read to its end: time the source spent
/// blocked handing batches on (backpressure) or writing dead letters does not count, so a
/// partition is never taken for idle because the pipeline, not the partition, was slow.
#[derive(Default)]
struct PartitionClock {
    parts: HashMap<(String, i32), PartState>,
    started: Option<std::time::Instant>,
    blocked: Duration,
}

/// What [`PartitionClock`] knows of one partition.
#[derive(Debug, Clone, Copy)]
struct PartState {
    /// Newest exchange time read (`i64::MIN`: none yet).
    newest: i64,
    /// When it last delivered or was assigned, on the consumer's clock.
    at: Duration,
    /// Read to its end (librdkafka's partition EOF) and nothing delivered since.
    at_end: bool,
}

impl PartitionClock {
    /// Time the consumer has been able to read, since it started.
    fn now(&mut self) -> Duration {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        started.elapsed().saturating_sub(self.blocked)
    }

    /// Time spent blocked outside the consumer.
    fn blocked_for(&mut self, d: Duration) {
        self.blocked += d;
    }

    /// A partition delivered an event of exchange time `ts`: it holds the watermark again.
    fn saw(&mut self, topic: &str, partition: i32, ts: i64) {
        let now = self.now();
        let e = self
            .parts
            .entry((topic.to_string(), partition))
            .or_insert(PartState {
                newest: ts,
                at: now,
                at_end: false,
            });
        e.newest = e.newest.max(ts);
        e.at = now;
        e.at_end = false;
    }

    /// A partition delivered a message (with or without events): it is not at its end.
    fn delivered(&mut self, topic: &str, partition: i32) {
        if let Some(e) = self.parts.get_mut(&(topic.to_string(), partition)) {
            e.at_end = false;
        }
    }

    /// A partition was read to its end: until it delivers again, it holds neither the watermark
    /// nor the commits back (an empty partition would otherwise hold them for the idle time).
    fn at_end(&mut self, topic: &str, partition: i32) {
        if let Some(e) = self.parts.get_mut(&(topic.to_string(), partition)) {
            e.at_end = true;
        }
    }

    /// Forgets which partitions are at their end (the brokers stopped answering: what was the end
    /// may not be any more); they fall back to the idle time.
    fn forget_ends(&mut self) {
        for e in self.parts.values_mut() {
            e.at_end = false;
        }
    }

    /// Follows the assignment: a partition assigned but not read yet holds the watermark back
    /// until it delivers, is read to its end, or stays silent for the idle time; a revoked one no
    /// longer counts.
    fn sync(&mut self, assigned: &[(String, i32)]) {
        let now = self.now();
        self.parts.retain(|p, _| assigned.contains(p));
        for p in assigned {
            self.parts.entry(p.clone()).or_insert(PartState {
                newest: i64::MIN,
                at: now,
                at_end: false,
            });
        }
    }

    /// The least newest time over partitions still delivering (neither at their end nor silent
    /// for `idle_after`); `i64::MAX` when there is none; `i64::MIN` while nothing is assigned
    /// (during a rebalance).
    fn cap(&mut self, idle_after: Duration) -> i64 {
        if self.parts.is_empty() {
            return i64::MIN;
        }
        let now = self.now();
        self.parts
            .values()
            .filter(|p| !p.at_end && now.saturating_sub(p.at) < idle_after)
            .map(|p| p.newest)
            .min()
            .unwrap_or(i64::MAX)
    }
}

/// Whether the source is ready, and when to say it is not: the brokers' reachability (librdkafka's
/// statistics, or `AllBrokersDown` errors when they are off; messages and end-of-partition events
/// prove them up) and
/// the first partition assignment, each allowed `grace` (`kafka.connect_timeout_ms`) before a
/// warning.
#[derive(Debug)]
struct Readiness {
    started: std::time::Instant,
    grace: Duration,
    assigned: bool,
    waiting_warned: bool,
    down_since: Option<std::time::Instant>,
    lost_warned: bool,
}

/// What [`Readiness`] asks to be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadinessNote {
    /// No partition assignment yet, this long after the start (warn, once).
    NoAssignment(Duration),
    /// No broker has answered for this long (warn, once per outage).
    Lost(Duration),
    /// The brokers answer again after an outage of this long that was warned about (info).
    Recovered(Duration),
}

impl Readiness {
    fn new(now: std::time::Instant, grace: Duration) -> Self {
        Readiness {
            started: now,
            grace,
            assigned: false,
            waiting_warned: false,
            down_since: None,
            lost_warned: false,
        }
    }

    /// The group assigned partitions (possibly none) for the first time.
    fn assigned(&mut self) {
        self.assigned = true;
    }

    /// No broker answers (from now on, unless already so).
    fn down(&mut self, now: std::time::Instant) {
        self.down_since.get_or_insert(now);
    }

    /// A broker answered.
    fn up(&mut self, now: std::time::Instant) -> Option<ReadinessNote> {
        let since = self.down_since.take()?;
        std::mem::take(&mut self.lost_warned)
            .then(|| ReadinessNote::Recovered(now.saturating_duration_since(since)))
    }

    /// Whether the brokers are known to be down (not yet warned, maybe).
    fn is_down(&self) -> bool {
        self.down_since.is_some()
    }

    /// What to warn about now, once each.
    fn check(&mut self, now: std::time::Instant) -> Option<ReadinessNote> {
        if let Some(since) = self.down_since {
            let d = now.saturating_duration_since(since);
            if d >= self.grace && !self.lost_warned {
                self.lost_warned = true;
                return Some(ReadinessNote::Lost(d));
            }
        }
        let d = now.saturating_duration_since(self.started);
        if !self.assigned && d >= self.grace && !self.waiting_warned {
            self.waiting_warned = true;
            return Some(ReadinessNote::NoAssignment(d));
        }
        None
    }

    /// The health to report.
    fn health(&self) -> SourceHealth {
        if self.lost_warned {
            SourceHealth::Lost
        } else if !self.assigned {
            SourceHealth::Starting
        } else {
            SourceHealth::Ready
        }
    }
}

/// A run of consecutive messages of one partition, in one batch, whose trades belong to candles
/// ending at the same tick.
#[derive(Debug)]
struct Run {
    /// Batch sequence number (send order).
    batch: u64,
    /// Offset to commit once the run is released (last offset + 1).
    next_offset: i64,
    /// End tick of the latest candle its trades belong to (0: none).
    candle_release: u64,
}

/// Messages handed to the dataflow and not yet committed.
///
/// Each partition is released as a prefix of its own runs, so a commit stops right before the
/// first message of the first candle that is not final and stored: a restart re-reads whole
/// candles, never the tail of one already final.
#[derive(Debug, Default)]
struct Uncommitted {
    parts: BTreeMap<(String, i32), VecDeque<Run>>,
    /// Watermark tick each batch was fed at, from batch `fed_base` on.
    fed: VecDeque<Option<u64>>,
    fed_base: u64,
    /// Batches sent (the current batch's sequence number).
    sent: u64,
    /// Feed reports received.
    reports: u64,
}

impl Uncommitted {
    /// Records a message of the current batch.
    fn add(&mut self, part: (String, i32), offset: i64, candle_release: u64) {
        let batch = self.sent;
        let runs = self.parts.entry(part).or_default();
        match runs.back_mut() {
            Some(r) if r.batch == batch && r.candle_release == candle_release => {
                r.next_offset = r.next_offset.max(offset + 1);
            }
            _ => runs.push_back(Run {
                batch,
                next_offset: offset + 1,
                candle_release,
            }),
        }
    }

    /// The current batch was sent.
    fn batch_sent(&mut self) {
        self.sent += 1;
        self.fed.push_back(None);
    }

    /// The next batch in send order was fed at watermark tick `w`.
    fn fed(&mut self, w: u64) {
        let i = self.reports.saturating_sub(self.fed_base) as usize;
        if let Some(slot) = self.fed.get_mut(i) {
            *slot = Some(w);
        }
        self.reports += 1;
    }

    fn is_empty(&self) -> bool {
        self.parts.values().all(VecDeque::is_empty)
    }

    /// Moves the runs whose outputs are durable everywhere to `releasable`, per partition in
    /// offset order.
    fn release(&mut self, releasable: &mut Releasable, durable: Durable, last_fed: Option<u64>) {
        // When every sink completed, everything fed is stored; but candles closed only because
        // the input ended are not final in event time, so their trades stay uncommitted.
        let before = match (durable.complete, last_fed) {
            (true, Some(w)) => Some(durable.before.unwrap_or(0).max(w + 1)),
            _ => durable.before,
        };
        let Some(before) = before else { return };
        let mut min_batch = self.sent;
        let (fed, fed_base) = (&self.fed, self.fed_base);
        let fed = |b: u64| {
            b.checked_sub(fed_base)
                .and_then(|i| fed.get(i as usize).copied().flatten())
        };
        let mut out: Vec<((String, i32), i64)> = Vec::new();
        for (part, runs) in self.parts.iter_mut() {
            while let Some(r) = runs.front() {
                let Some(fed_at) = fed(r.batch) else { break };
                if fed_at + 1 > before || r.candle_release > before {
                    break;
                }
                out.push((part.clone(), r.next_offset));
                runs.pop_front();
            }
            if let Some(r) = runs.front() {
                min_batch = min_batch.min(r.batch);
            }
        }
        for (part, o) in out {
            let e = releasable.entry(part).or_insert(o);
            *e = (*e).max(o);
        }
        self.parts.retain(|_, runs| !runs.is_empty());
        // Forget feed reports no run refers to any more.
        while self.fed_base < min_batch.min(self.reports) && !self.fed.is_empty() {
            self.fed.pop_front();
            self.fed_base += 1;
        }
    }
}

/// Offsets released but not yet committed, per (topic, partition).
type Releasable = BTreeMap<(String, i32), i64>;

/// Tracks partition assignments so that offsets of revoked partitions are not committed, and
/// the brokers' state from librdkafka's statistics.
#[derive(Default)]
struct GroupContext {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
    assigned: Arc<Mutex<Vec<(String, i32)>>>,
    /// The group assigned partitions (possibly none) at least once.
    assigned_once: std::sync::atomic::AtomicBool,
    /// The latest statistics report not yet taken: whether some broker connection was up.
    brokers_up: Mutex<Option<bool>>,
    /// A statistics report came (they are on: `statistics.interval.ms` > 0).
    stats_seen: std::sync::atomic::AtomicBool,
}

/// The part of librdkafka's statistics the source reads.
#[derive(serde::Deserialize)]
struct ClientStats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
}

/// One broker (connection) in librdkafka's statistics.
#[derive(serde::Deserialize)]
struct BrokerStats {
    #[serde(default)]
    state: String,
}

/// Whether a statistics report (JSON) shows a broker connection up (`None`: unreadable).
fn stats_brokers_up(json: &[u8]) -> Option<bool> {
    let s: ClientStats = serde_json::from_slice(json).ok()?;
    Some(s.brokers.values().any(|b| b.state == "UP"))
}

impl ClientContext for GroupContext {
    // Consumer errors also come out of `recv`, where the source counts, backs off and logs them;
    // the end of a partition is an event, not an error.
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::debug!(source = SOURCE, %error, reason, "librdkafka error.");
        }
    }

    // Called while the consumer is polled (`recv`), every `statistics.interval.ms`.
    fn stats_raw(&self, statistics: &[u8]) {
        if let Some(up) = stats_brokers_up(statistics) {
            self.stats_seen
                .store(true, std::sync::atomic::Ordering::SeqCst);
            if let Ok(mut g) = self.brokers_up.lock() {
                *g = Some(up);
            }
        }
    }
}

impl GroupContext {
    /// The latest statistics report's verdict, once.
    fn take_brokers_up(&self) -> Option<bool> {
        self.brokers_up.lock().ok().and_then(|mut g| g.take())
    }
}

/// Moves `parts` out of `from` and into `to`.
fn move_parts(
    parts: &[(String, i32)],
    from: &Mutex<Vec<(String, i32)>>,
    to: &Mutex<Vec<(String, i32)>>,
) {
    if let Ok(mut f) = from.lock() {
        f.retain(|p| !parts.contains(p));
    }
    if let Ok(mut t) = to.lock() {
        t.extend(parts.iter().cloned());
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let parts = |tpl: &TopicPartitionList| -> Vec<(String, i32)> {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        };
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = parts(tpl);
                tracing::info!(source = SOURCE, partitions = ?parts, "Partitions revoked; their uncommitted batches will be read again by the next owner.");
                move_parts(&parts, &self.assigned, &self.revoked);
            }
            Rebalance::Assign(tpl) => {
                let parts = parts(tpl);
                tracing::info!(source = SOURCE, partitions = ?parts, "Partitions assigned.");
                move_parts(&parts, &self.revoked, &self.assigned);
                self.assigned_once
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Rebalance::Error(e) => {
                tracing::warn!(source = SOURCE, error = %e, "Rebalance error.");
            }
        }
    }
}

/// The end tick of the latest candle `ts` belongs to, over `intervals`.
fn candle_end_tick(ts: i64, intervals: &[i64], tick: i64) -> u64 {
    intervals
        .iter()
        .filter(|&&i| i > 0)
        .map(|&i| {
            let end = ts.div_euclid(i) * i + i;
            end.div_euclid(tick.max(1)).max(0) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Errors that stop the source before it starts.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The client could not be created or could not subscribe.
    #[error("Kafka source: {0}")]
    Client(String),
    /// No broker answered at start-up.
    #[error(
        "Kafka source: no broker of {brokers:?} answered within {secs} s ({error}); check \
         kafka.brokers / --brokers, that the brokers run and that this host reaches them \
         (kafka.connect_timeout_ms sets the wait)"
    )]
    Unreachable {
        /// `bootstrap.servers`.
        brokers: String,
        /// How long it waited.
        secs: u64,
        /// librdkafka's error.
        error: String,
    },
}

/// Waits until a broker answers a metadata request (`Ok`), `timeout` passes (`Err`) or shutdown
/// is asked for (`Ok`: the caller's loop then ends at once).
async fn await_brokers(
    cc: &ClientConfig,
    brokers: &str,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), KafkaSourceError> {
    let probe: rdkafka::consumer::BaseConsumer = cc
        .create()
        .map_err(|e| KafkaSourceError::Client(format!("cannot create the consumer: {e}")))?;
    let fetch = tokio::task::spawn_blocking(move || {
        probe
            .fetch_metadata(None, timeout)
            .map(|m| m.brokers().len())
            .map_err(|e| e.to_string())
    });
    tokio::select! {
        r = fetch => match r {
            Ok(Ok(n)) => {
                tracing::info!(source = SOURCE, brokers = n, "Kafka brokers answered.");
                Ok(())
            }
            Ok(Err(error)) => Err(KafkaSourceError::Unreachable {
                brokers: brokers.to_string(),
                secs: timeout.as_secs(),
                error,
            }),
            Err(e) => Err(KafkaSourceError::Client(format!("broker check failed: {e}"))),
        },
        _ = async { while !*shutdown.borrow() { if shutdown.changed().await.is_err() { break; } } } => Ok(()),
    }
}

/// Per-stream sequencing state.
#[derive(Default)]
struct StreamState {
    seq: Sequencer,
    last_seen: Option<i64>,
}

/// Decoded content of one message.
struct Decoder {
    streams: HashMap<(Venue, Symbol, StreamKind), StreamState>,
}

/// The value of a message's `venue` header (`cryptoflow record --kafka` sets it): `None` without
/// one, empty bytes for a header without a value.
fn venue_header<M: Message>(m: &M) -> Option<&[u8]> {
    use rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == "venue")
        .map(|h| h.value.unwrap_or_default())
}

/// The venue a `venue` header value names; messages without one are spot.
fn header_venue(value: Option<&[u8]>) -> Result<Venue, String> {
    match value {
        None => Ok(Venue::Binance),
        Some(v) => std::str::from_utf8(v)
            .map_err(|e| e.to_string())
            .and_then(|v| v.parse::<Venue>().map_err(|e| e.to_string())),
    }
}

/// The consumer's decoding of message payloads, without a broker: the size limit, UTF-8, the
/// `venue` header, the frame, and the per-stream id sequence (gaps and repeats across messages).
/// [`kafka_source`] decodes every message with one; it is public so that the decoding can be
/// tested and fuzzed on bytes alone.
pub struct MessageDecoder {
    decoder: Decoder,
    max_message_bytes: usize,
}

impl MessageDecoder {
    /// A decoder that refuses payloads above `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        MessageDecoder {
            decoder: Decoder {
                streams: HashMap::new(),
            },
            max_message_bytes,
        }
    }

    /// Decodes one message's `payload` (with its `venue` header value, `None` without one),
    /// received at `ts_received`, appending its events to `out`. A message that cannot be used
    /// is a dead letter: its kind (`too_large`, `utf8`, `venue`, or the frame's decode error
    /// kind) and why.
    pub fn decode(
        &mut self,
        payload: &[u8],
        venue: Option<&[u8]>,
        ts_received: i64,
        stats: &SourceStats,
        out: &mut EventBatch,
    ) -> Result<(), (&'static str, String)> {
        if payload.len() > self.max_message_bytes {
            return Err((
                "too_large",
                format!(
                    "message of {} bytes is above max_message_bytes = {}",
                    payload.len(),
                    self.max_message_bytes
                ),
            ));
        }
        let text = std::str::from_utf8(payload).map_err(|e| ("utf8", format!("not UTF-8: {e}")))?;
        let venue = header_venue(venue).map_err(|e| ("venue", format!("venue header: {e}")))?;
        self.decoder
            .events(text, venue, ts_received, stats, out)
            .map_err(|e| (e.kind(), e.to_string()))
    }
}

impl Decoder {
    fn events(
        &mut self,
        text: &str,
        venue: Venue,
        ts_received: i64,
        stats: &SourceStats,
        out: &mut EventBatch,
    ) -> Result<(), crate::binance::DecodeError> {
        let decoded = match decode_frame(text, ts_received)? {
            Decoded::Event(mut e) => {
                set_venue(&mut e, venue);
                Decoded::Event(e)
            }
            other => other,
        };
        match decoded {
            Decoded::Event(Event::Trade(mut t)) => {
                if t.ts_received == 0 {
                    t.ts_received = ts_received;
                }
                SourceStats::inc(&stats.events);
                let st = self.streams.entry((venue, t.symbol, t.kind())).or_default();
                let prev_seen = st.last_seen.replace(t.ts_received);
                let verdict = st.seq.observe(t.trade_id);
                stats.ledger.update(SOURCE, t.symbol.as_str(), |c| {
                    c.frames += 1;
                    c.last_received_ms = t.ts_received;
                    c.last_event_ms = c.last_event_ms.max(t.ts_exchange);
                    match verdict {
                        Verdict::Next => c.trades += 1,
                        Verdict::Gap { from, to } => {
                            c.trades += 1;
                            c.gaps_detected += 1;
                            c.ids_unrefillable += to - from + 1;
                        }
                        Verdict::Duplicate | Verdict::Backwards => c.duplicates += 1,
                    }
                });
                match verdict {
                    Verdict::Next => out.push(Event::Trade(t)),
                    Verdict::Gap { from, to } => {
                        SourceStats::inc(&stats.gaps_detected);
                        SourceStats::add(&stats.ids_unrefillable, to - from + 1);
                        out.push(Event::Gap(Gap {
                            venue,
                            symbol: t.symbol,
                            kind: t.kind(),
                            since: prev_seen.unwrap_or(t.ts_received),
                            until: t.ts_received,
                            last_id: Some(from - 1),
                            reason: GapReason::IdHole,
                            from_id: Some(from),
                            to_id: Some(to),
                            refilled: false,
                            detail: "ids missing from the Kafka topic".into(),
                        }));
                        out.push(Event::Trade(t));
                    }
                    Verdict::Duplicate | Verdict::Backwards => {
                        // Ids at or below the cursor: already delivered (producer retries,
                        // a partition read again after a rebalance).
                        SourceStats::inc(&stats.duplicates);
                    }
                }
            }
            Decoded::Event(e) => {
                SourceStats::inc(&stats.events);
                out.push(e);
            }
            Decoded::Control(c) => stats.control(SOURCE, &c),
        }
        Ok(())
    }
}

/// Consumes `cfg.topics` until `shutdown`, sending batches to `tx`; commits offsets as
/// `feedback` releases them; returns after the final commit once every sink completed.
pub async fn kafka_source(
    cfg: KafkaSourceConfig,
    tx: mpsc::Sender<EventBatch>,
    stats: Arc<SourceStats>,
    mut feedback: OffsetFeedback,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), KafkaSourceError> {
    stats.set_health(SourceHealth::Starting);
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let assigned = Arc::new(Mutex::new(Vec::new()));
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // Latency over broker round trips: librdkafka's 500 ms default adds up to that much
        // per fetch on brokers that wait it out.
        .set("fetch.wait.max.ms", "10")
        // One event per partition read to its end: an empty or caught-up partition then holds
        // neither the watermark nor the commits back.
        .set("enable.partition.eof", "true")
        // The brokers' connection states, for the source's readiness.
        .set("statistics.interval.ms", "1000")
        .set("client.id", "cryptoflow-source");
    for (k, v) in &cfg.consumer {
        cc.set(k, v);
    }
    // Unreachable or misconfigured brokers are an error within the connect timeout, not a
    // silent wait forever (librdkafka itself retries without end).
    let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
    await_brokers(&cc, &cfg.brokers, connect_timeout, &mut shutdown).await?;
    let consumer: StreamConsumer<GroupContext> = cc
        .create_with_context(GroupContext {
            revoked: revoked.clone(),
            assigned: assigned.clone(),
            ..GroupContext::default()
        })
        .map_err(|e| KafkaSourceError::Client(format!("cannot create the consumer: {e}")))?;
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| KafkaSourceError::Client(format!("cannot subscribe to {topics:?}: {e}")))?;
    let dlq: Option<FutureProducer> = if cfg.dead_letter_topic.is_empty() {
        None
    } else {
        let mut pc = ClientConfig::new();
        pc.set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("client.id", "cryptoflow-dead-letters");
        Some(pc.create().map_err(|e| {
            KafkaSourceError::Client(format!("cannot create the dead-letter producer: {e}"))
        })?)
    };
    tracing::info!(source = SOURCE, topics = ?cfg.topics, group = %cfg.group_id, "Consuming.");

    let mut decoder = MessageDecoder::new(cfg.max_message_bytes);
    let mut pending = Uncommitted::default();
    let mut releasable: Releasable = BTreeMap::new();
    let mut last_fed: Option<u64> = None;
    let mut consuming = true;
    let mut fed_open = true;
    let mut commit_tick = tokio::time::interval(Duration::from_millis(200));
    let mut batch: EventBatch = Vec::with_capacity(cfg.batch_max);
    let mut messages = 0usize;
    let mut clock = PartitionClock::default();
    let idle_after = Duration::from_millis(cfg.partition_idle_ms.max(1));
    let mut cap_before: Option<i64> = None;
    let mut consumer_errors = 0u32;
    let mut readiness = Readiness::new(std::time::Instant::now(), connect_timeout);
    let mut eof_ambiguous_told = false;
    loop {
        let linger = if messages > 0 {
            Duration::from_millis(2)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            biased;
            fed = feedback.fed.recv(), if fed_open => {
                match fed {
                    Some(w) => {
                        last_fed = Some(w);
                        // Reports arrive in send order.
                        pending.fed(w);
                        pending.release(&mut releasable, *feedback.durable.borrow(), last_fed);
                    }
                    None => {
                        // The workers are gone: nothing more will be fed.
                        fed_open = false;
                        consuming = false;
                    }
                }
            }
            changed = feedback.durable.changed() => {
                if changed.is_err() {
                    break;
                }
                let d = *feedback.durable.borrow();
                pending.release(&mut releasable, d, last_fed);
                if d.complete {
                    break;
                }
            }
            _ = commit_tick.tick() => {
                commit(&consumer, &mut releasable, &revoked, CommitMode::Async);
                // Partitions fall idle with time, not only when a batch is sent.
                if let Ok(a) = assigned.lock() {
                    clock.sync(&a);
                }
                broker_report(&consumer, &mut readiness, &mut clock, &mut consumer_errors, &stats, &cfg);
                let note = readiness.check(std::time::Instant::now());
                log_readiness(note, &cfg);
                stats.set_health(readiness.health());
                feedback.cap.set_latest(clock.cap(idle_after));
            }
            _ = shutdown.changed(), if consuming => {
                if *shutdown.borrow() {
                    // Stop reading but keep the partitions until the final commit.
                    consuming = false;
                }
            }
            msg = tokio::time::timeout(linger, consumer.recv()), if consuming && messages < cfg.batch_max => {
                let idle = !matches!(msg, Ok(Ok(_)));
                // Statistics are served while polling.
                broker_report(&consumer, &mut readiness, &mut clock, &mut consumer_errors, &stats, &cfg);
                match msg {
                    Ok(Ok(m)) => {
                        brokers_answered(&mut readiness, &mut consumer_errors, &stats, &cfg);
                        messages += 1;
                        let ts_received = crate::now_ms();
                        let part = (m.topic().to_string(), m.partition());
                        clock.delivered(&part.0, part.1);
                        let offset = m.offset();
                        if cap_before.is_none() {
                            if let Ok(a) = assigned.lock() {
                                clock.sync(&a);
                            }
                            cap_before = Some(clock.cap(idle_after));
                        }
                        let mut candle_release = 0u64;
                        SourceStats::inc(&stats.frames);
                        let payload = m.payload().unwrap_or_default();
                        let before = batch.len();
                        let bad = match decoder.decode(payload, venue_header(&m), ts_received, &stats, &mut batch) {
                            Ok(()) => {
                                for e in &batch[before..] {
                                    clock.saw(&part.0, part.1, e.ts_exchange());
                                    if let Event::Trade(t) = e {
                                        candle_release = candle_release.max(candle_end_tick(t.ts_exchange, &cfg.candle_intervals_ms, cfg.tick_ms));
                                    }
                                }
                                None
                            }
                            Err(bad) => Some(bad),
                        };
                        if let Some((kind, error)) = bad {
                            let shown = String::from_utf8_lossy(&payload[..payload.len().min(4096)]);
                            stats.ledger.update(SOURCE, "", |c| {
                                c.frames += 1;
                                c.decode_errors += 1;
                            });
                            stats.dead_letter(SOURCE, kind, &error, &shown, ts_received);
                            if let Some(p) = &dlq {
                                let headers = OwnedHeaders::new()
                                    .insert(Header { key: "error_kind", value: Some(kind) })
                                    .insert(Header { key: "error", value: Some(error.as_str()) })
                                    .insert(Header { key: "source_topic", value: Some(part.0.as_str()) })
                                    .insert(Header { key: "source_partition", value: Some(part.1.to_string().as_str()) })
                                    .insert(Header { key: "source_offset", value: Some(offset.to_string().as_str()) });
                                let t = std::time::Instant::now();
                                dead_letter(p, &cfg.dead_letter_topic, m.key(), payload, headers, &shutdown).await;
                                clock.blocked_for(t.elapsed());
                            }
                        }
                        pending.add(part, offset, candle_release);
                    }
                    Ok(Err(KafkaError::PartitionEOF(p))) => {
                        brokers_answered(&mut readiness, &mut consumer_errors, &stats, &cfg);
                        // librdkafka names the partition but not the topic: with several topics
                        // sharing the number it cannot be placed, and the idle time applies.
                        let mut topics_with_p = Vec::new();
                        if let Ok(a) = assigned.lock() {
                            clock.sync(&a);
                            topics_with_p.extend(a.iter().filter(|(_, q)| *q == p).map(|(t, _)| t.clone()));
                        }
                        match topics_with_p.as_slice() {
                            [t] => clock.at_end(t, p),
                            [] => {}
                            several => {
                                if !std::mem::replace(&mut eof_ambiguous_told, true) {
                                    tracing::info!(source = SOURCE, partition = p, topics = ?several, idle_ms = cfg.partition_idle_ms, "Several topics have this partition number: the end of one cannot be told apart, so a silent partition stops holding the watermark only after kafka.partition_idle_ms.");
                                }
                            }
                        }
                        if messages == 0 {
                            feedback.cap.set_latest(clock.cap(idle_after));
                        }
                    }
                    Ok(Err(e)) => {
                        // A lost broker, a failed fetch: librdkafka reconnects by itself, with its
                        // own backoff (reconnect.backoff.ms doubling to reconnect.backoff.max.ms,
                        // 100 ms to 10 s). Reading goes on: errors are queued events, and a pause
                        // per error would hold back the messages queued behind those of an
                        // outage for the sum of the pauses. Logged at attempts 1, 2, 4, 8, ...
                        let ctx = consumer.context();
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown)
                            && !ctx.stats_seen.load(std::sync::atomic::Ordering::SeqCst)
                        {
                            // Without statistics (statistics.interval.ms = 0) this is the only
                            // sign of a loss; with them, they tell (errors may come late).
                            readiness.down(std::time::Instant::now());
                            clock.forget_ends();
                        }
                        consumer_errors += 1;
                        stats.ledger.update(SOURCE, "", |c| c.reconnects += 1);
                        SourceStats::inc(&stats.reconnects);
                        if consumer_errors.is_power_of_two() {
                            tracing::warn!(source = SOURCE, error = %e, attempt = consumer_errors, "Kafka consumer error; librdkafka retries.");
                        }
                    }
                    Err(_) => {} // linger over: hand the batch on below
                }
                let full = messages >= cfg.batch_max;
                if messages > 0 && (full || idle) {
                    pending.batch_sent();
                    messages = 0;
                    if let Ok(a) = assigned.lock() {
                        clock.sync(&a);
                    }
                    let after = clock.cap(idle_after);
                    feedback
                        .cap
                        .for_batch(cap_before.take().unwrap_or(after).min(after), after);
                    let out = std::mem::replace(&mut batch, Vec::with_capacity(cfg.batch_max));
                    let t = std::time::Instant::now();
                    let sent = tx.send(out).await;
                    clock.blocked_for(t.elapsed());
                    if sent.is_err() {
                        consuming = false;
                    }
                }
            }
        }
    }
    pending.release(&mut releasable, *feedback.durable.borrow(), last_fed);
    commit(&consumer, &mut releasable, &revoked, CommitMode::Sync);
    if !pending.is_empty() {
        tracing::info!(
            source = SOURCE,
            "Stopping with batches whose candles are not final: they will be read again."
        );
    }
    // Leave the group now, so that the other members get the partitions without waiting for a
    // session or rebalance timeout: the revocation is served by polling.
    consumer.unsubscribe();
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            if let Ok(a) = assigned.lock() {
                if a.is_empty() {
                    break;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        }
    })
    .await;
    // Closing a group consumer can block: do it off the async threads, bounded.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || drop(consumer)),
    )
    .await;
    Ok(())
}

/// Applies the latest statistics report (if a new one came) to the readiness: no broker
/// connection up counts as down (and what was the end of a partition is forgotten).
fn broker_report(
    consumer: &StreamConsumer<GroupContext>,
    readiness: &mut Readiness,
    clock: &mut PartitionClock,
    consumer_errors: &mut u32,
    stats: &SourceStats,
    cfg: &KafkaSourceConfig,
) {
    let ctx = consumer.context();
    if ctx.assigned_once.load(std::sync::atomic::Ordering::SeqCst) {
        readiness.assigned();
    }
    let now = std::time::Instant::now();
    match ctx.take_brokers_up() {
        Some(true) => brokers_answered(readiness, consumer_errors, stats, cfg),
        Some(false) => {
            if !readiness.is_down() {
                clock.forget_ends();
            }
            readiness.down(now);
        }
        None => {}
    }
}

/// A message, an end-of-partition event or a statistics report with a connection up came: the
/// brokers answer.
fn brokers_answered(
    readiness: &mut Readiness,
    consumer_errors: &mut u32,
    stats: &SourceStats,
    cfg: &KafkaSourceConfig,
) {
    log_readiness(readiness.up(std::time::Instant::now()), cfg);
    if *consumer_errors > 0 {
        tracing::info!(
            source = SOURCE,
            errors = *consumer_errors,
            "Kafka consumer recovered."
        );
        *consumer_errors = 0;
    }
    stats.set_health(readiness.health());
}

/// Logs what [`Readiness`] asks for.
fn log_readiness(note: Option<ReadinessNote>, cfg: &KafkaSourceConfig) {
    match note {
        Some(ReadinessNote::Lost(d)) => tracing::warn!(
            source = SOURCE,
            brokers = %cfg.brokers,
            secs = d.as_secs(),
            "Kafka brokers {} unreachable for {} s (more than kafka.connect_timeout_ms); still \
             retrying. The source is not ready; nothing is read or committed until a broker \
             answers.",
            cfg.brokers,
            d.as_secs()
        ),
        Some(ReadinessNote::NoAssignment(d)) => tracing::warn!(
            source = SOURCE,
            brokers = %cfg.brokers,
            group = %cfg.group_id,
            topics = ?cfg.topics,
            "No partition assignment from the Kafka brokers {} for group {} after {} s (more \
             than kafka.connect_timeout_ms); still waiting. The source is not ready.",
            cfg.brokers,
            cfg.group_id,
            d.as_secs()
        ),
        Some(ReadinessNote::Recovered(d)) => tracing::info!(
            source = SOURCE,
            brokers = %cfg.brokers,
            "Kafka brokers {} answer again after {:.1} s unreachable; the source is ready.",
            cfg.brokers,
            d.as_secs_f64()
        ),
        None => {}
    }
}

/// Produces one dead letter, retrying until the broker has it (or shutdown), with the shared
/// backoff from 100 ms doubling up to 5 s.
async fn dead_letter(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
    shutdown: &watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let mut rec = FutureRecord::to(topic)
            .payload(payload)
            .headers(headers.clone());
        if let Some(k) = key {
            rec = rec.key(k);
        }
        match producer.send(rec, Duration::from_secs(5)).await {
            Ok(_) => return,
            Err((e, _)) => {
                if *shutdown.borrow() {
                    tracing::warn!(source = SOURCE, topic, error = %e, "Cannot write a dead letter; stopping.");
                    return;
                }
                let delay = backoff.next_delay();
                tracing::warn!(source = SOURCE, topic, error = %e, ?delay, "Cannot write a dead letter; retrying.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Commits released offsets of partitions still assigned to this consumer.
fn commit(
    consumer: &StreamConsumer<GroupContext>,
    releasable: &mut Releasable,
    revoked: &Mutex<Vec<(String, i32)>>,
    mode: CommitMode,
) {
    if releasable.is_empty() {
        return;
    }
    let revoked: Vec<(String, i32)> = revoked.lock().map(|r| r.clone()).unwrap_or_default();
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in std::mem::take(releasable) {
        if revoked.contains(&(t.clone(), p)) {
            continue;
        }
        if let Err(e) = tpl.add_partition_offset(&t, p, Offset::Offset(o)) {
            tracing::warn!(source = SOURCE, topic = %t, partition = p, error = %e, "Cannot add an offset to commit.");
        }
    }
    if tpl.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        tracing::warn!(source = SOURCE, error = %e, "Offset commit failed; the messages will be read again after a restart.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_decoder_dead_letters_and_id_holes() {
        let stats = SourceStats::default();
        let mut d = MessageDecoder::new(200);
        let mut out = Vec::new();
        let frame = |id: u64| {
            format!(
                r#"{{"e":"trade","E":1,"s":"BTCUSDT","t":{id},"p":"1.5","q":"2","T":3,"m":true}}"#
            )
        };
        let kind = |r: Result<(), (&'static str, String)>| r.err().map(|(k, _)| k);
        assert_eq!(
            kind(d.decode(&[b' '; 201], None, 9, &stats, &mut out)),
            Some("too_large")
        );
        assert_eq!(
            kind(d.decode(b"\xff\xfe", None, 9, &stats, &mut out)),
            Some("utf8")
        );
        assert_eq!(
            kind(d.decode(frame(1).as_bytes(), Some(b"nowhere"), 9, &stats, &mut out)),
            Some("venue")
        );
        assert_eq!(
            kind(d.decode(b"{", None, 9, &stats, &mut out)),
            Some("json")
        );
        assert!(out.is_empty(), "a dead letter adds nothing");
        // Ids 1, then 4: the hole 2..=3 is a gap event before the trade; 4 again is a repeat.
        for id in [1, 4, 4] {
            let venue = Some(&b"binance-usdm"[..]);
            assert_eq!(
                d.decode(frame(id).as_bytes(), venue, 9, &stats, &mut out),
                Ok(())
            );
        }
        assert_eq!(out.len(), 3, "{out:?}");
        match (&out[1], &out[2]) {
            (Event::Gap(g), Event::Trade(t)) => {
                assert_eq!((g.from_id, g.to_id), (Some(2), Some(3)));
                assert_eq!((t.trade_id, t.venue), (4, Venue::BinanceUsdm));
            }
            other => panic!("expected a gap then the trade, got {other:?}"),
        }
    }

    #[test]
    fn partitions_not_read_yet_hold_the_watermark() {
        let a = ("t".to_string(), 0);
        let b = ("t".to_string(), 1);
        let long = Duration::from_secs(60);
        let mut c = PartitionClock::default();
        c.sync(&[a.clone(), b.clone()]);
        c.saw("t", 0, 500);
        assert_eq!(c.cap(long), i64::MIN, "partition 1 has not delivered yet");
        c.saw("t", 1, 300);
        assert_eq!(c.cap(long), 300);
        assert_eq!(
            c.cap(Duration::ZERO),
            i64::MAX,
            "silent partitions do not hold it back"
        );
        c.sync(std::slice::from_ref(&b));
        assert_eq!(c.cap(long), 300);
        c.sync(&[]);
        assert_eq!(c.cap(long), i64::MIN, "nothing assigned: hold");
    }

    #[test]
    fn partitions_at_their_end_do_not_hold_the_watermark() {
        let a = ("t".to_string(), 0);
        let b = ("t".to_string(), 1);
        let c = ("t".to_string(), 2);
        let long = Duration::from_secs(60);
        let mut k = PartitionClock::default();
        k.sync(&[a.clone(), b.clone(), c.clone()]);
        k.saw("t", 0, 500);
        assert_eq!(k.cap(long), i64::MIN, "1 and 2 not read yet");
        // Partitions 1 and 2 are empty: their end events come at once.
        k.at_end("t", 1);
        assert_eq!(k.cap(long), i64::MIN, "2 still holds");
        k.at_end("t", 2);
        assert_eq!(k.cap(long), 500, "only the partition delivering holds");
        k.at_end("t", 0);
        assert_eq!(k.cap(long), i64::MAX, "every partition read to its end");
        // A new message in partition 1 makes it hold again, at its own time.
        k.saw("t", 1, 300);
        assert_eq!(k.cap(long), 300);
        k.at_end("t", 1);
        assert_eq!(k.cap(long), i64::MAX);
        // A message without events (bad input) makes it hold too, at its newest time.
        k.delivered("t", 1);
        assert_eq!(k.cap(long), 300);
        k.at_end("t", 1);
        // Re-syncing the same assignment keeps what is known.
        k.sync(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(k.cap(long), i64::MAX);
        // Lost brokers: the ends are forgotten, and partitions hold until idle.
        k.forget_ends();
        assert_eq!(k.cap(long), i64::MIN, "2 never delivered");
        assert_eq!(
            k.cap(Duration::ZERO),
            i64::MAX,
            "silent partitions still go idle"
        );
        // A partition revoked and assigned again starts over: not known to be at its end.
        k.at_end("t", 0);
        k.at_end("t", 1);
        k.at_end("t", 2);
        k.sync(&[a.clone(), b.clone()]);
        k.sync(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(k.cap(long), i64::MIN, "2 was assigned anew");
        // End events of partitions not assigned change nothing.
        k.at_end("other", 2);
        assert_eq!(k.cap(long), i64::MIN);
    }

    #[test]
    fn readiness_follows_assignment_and_broker_loss() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = Readiness::new(t0, Duration::from_secs(2));
        assert_eq!(r.health(), SourceHealth::Starting);
        assert_eq!(r.check(at(1_000)), None);
        assert_eq!(
            r.check(at(2_500)),
            Some(ReadinessNote::NoAssignment(Duration::from_millis(2_500))),
            "no assignment within the grace: warn"
        );
        assert_eq!(r.check(at(3_000)), None, "once");
        assert_eq!(r.health(), SourceHealth::Starting);
        r.assigned();
        assert_eq!(r.health(), SourceHealth::Ready);
        // A short loss is neither warned about nor a change of health.
        r.down(at(4_000));
        assert_eq!(r.check(at(5_000)), None);
        assert_eq!(r.health(), SourceHealth::Ready);
        assert_eq!(r.up(at(5_500)), None, "recovered before the grace: silent");
        // A loss past the grace: warn once, not ready; the loss counts from its first report.
        r.down(at(10_000));
        r.down(at(11_000));
        assert_eq!(r.check(at(11_900)), None);
        assert_eq!(
            r.check(at(12_100)),
            Some(ReadinessNote::Lost(Duration::from_millis(2_100)))
        );
        assert_eq!(r.health(), SourceHealth::Lost);
        assert!(!r.health().is_ready());
        assert_eq!(r.check(at(20_000)), None, "once per outage");
        assert_eq!(
            r.up(at(20_500)),
            Some(ReadinessNote::Recovered(Duration::from_millis(10_500)))
        );
        assert_eq!(r.health(), SourceHealth::Ready);
        assert_eq!(r.up(at(21_000)), None);
        // The next outage is warned about again.
        r.down(at(30_000));
        assert_eq!(
            r.check(at(32_000)),
            Some(ReadinessNote::Lost(Duration::from_secs(2)))
        );
    }

    #[test]
    fn statistics_tell_whether_a_broker_is_up() {
        let up = br#"{"name":"c","brokers":{"127.0.0.1:9092/111":{"state":"UP","nodeid":111},"GroupCoordinator":{"state":"TRY_CONNECT"}}}"#;
        let down = br#"{"brokers":{"127.0.0.1:9092/111":{"state":"TRY_CONNECT"},"127.0.0.1:9092/bootstrap":{"state":"INIT"}}}"#;
        assert_eq!(stats_brokers_up(up), Some(true));
        assert_eq!(stats_brokers_up(down), Some(false));
        assert_eq!(stats_brokers_up(b"{}"), Some(false), "no broker known");
        assert_eq!(stats_brokers_up(b"not json"), None);
    }

    #[test]
    fn candle_end_ticks() {
        // 1m candles, 100 ms ticks: a trade at 61.5 s belongs to [60 s, 120 s) → tick 1200.
        assert_eq!(candle_end_tick(61_500, &[60_000], 100), 1200);
        assert_eq!(candle_end_tick(61_500, &[], 100), 0);
        assert_eq!(candle_end_tick(61_500, &[1_000, 60_000], 100), 1200);
    }

    #[test]
    fn releases_each_partition_up_to_the_first_open_candle() {
        let d = |before: u64, complete: bool| Durable {
            before: Some(before),
            complete,
        };
        let p0 = || ("t".to_string(), 0);
        let p1 = || ("t".to_string(), 1);
        let mut u = Uncommitted::default();
        // Batch 0: p0 offsets 0..=2 in the candle ending at 10, offset 3 in the one ending at 20;
        // p1 offset 0 ending at 10.
        u.add(p0(), 0, 10);
        u.add(p0(), 1, 10);
        u.add(p0(), 2, 10);
        u.add(p0(), 3, 20);
        u.add(p1(), 0, 10);
        u.batch_sent();
        // Batch 1: p1 offset 1 ending at 10.
        u.add(p1(), 1, 10);
        u.batch_sent();
        let mut rel = Releasable::new();
        u.release(&mut rel, d(10, false), None);
        assert!(rel.is_empty(), "nothing fed yet");
        u.fed(5);
        u.release(&mut rel, d(9, false), Some(5));
        assert!(rel.is_empty(), "the first candle is not final yet");
        u.release(&mut rel, d(10, false), Some(5));
        assert_eq!(
            rel.get(&p0()),
            Some(&3),
            "up to the first message of the open candle"
        );
        assert_eq!(rel.get(&p1()), Some(&1), "batch 1 not fed yet");
        u.fed(6);
        u.release(&mut rel, d(10, false), Some(6));
        assert_eq!(rel.get(&p1()), Some(&2));
        u.release(&mut rel, d(30, false), Some(6));
        assert_eq!(rel.get(&p0()), Some(&4));
        assert!(u.is_empty());
        assert!(
            u.fed.is_empty(),
            "feed reports are forgotten once no run needs them"
        );
        // Complete: what was fed is stored, but open candles keep their trades uncommitted.
        let mut u = Uncommitted::default();
        u.add(p0(), 9, 100);
        u.batch_sent();
        u.fed(50);
        let mut rel = Releasable::new();
        u.release(&mut rel, d(40, true), Some(50));
        assert!(rel.is_empty());
    }
}
