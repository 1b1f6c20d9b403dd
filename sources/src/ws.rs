//! Binance WebSocket client: combined streams, pings, reconnects, in-band gaps.
//!
//! [`run_connections`] keeps one connection per chunk of at most `max_streams_per_connection`
//! streams (Binance allows 1024), reconnecting with exponential backoff and equal jitter
//! ([`Backoff`]: from `backoff_initial` doubling up to `backoff_max`, each wait drawn from the
//! upper half of the current delay, back to the start once a connection delivers). It hands
//! raw frames with their receive time to a channel ([`WsItem`]), which [`binance_live`] decodes
//! into events and `cryptoflow record` writes to disk. Pings are answered by echoing the payload
//! (tungstenite queues the pong; the reader flushes it at once).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoflow_operators::backoff::Backoff;
use cryptoflow_operators::model::{
    Event, Gap, GapReason, Millis, StreamKind, Symbol, Trade, Venue, REFILLING,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

pub use crate::binance::set_venue;
use crate::binance::{decode_frame, Control, Decoded};
use crate::progress::WatermarkCap;
use crate::rest::{BinanceRest, RestConfig, RestError};
use crate::sequencer::{Sequencer, Verdict};
use crate::spill::SpillQueue;
use crate::stats::SourceStats;
use crate::{now_ms, EventBatch};

/// WebSocket settings.
///
/// The futures endpoints (`wss://fstream.binance.com/market` USDⓈ-M, `wss://dstream.binance.com`
/// COIN-M) take the same combined-stream URL with up to 1024 streams per connection, and allow 10
/// incoming messages per second per connection (spot: 5); cryptoflow subscribes through the URL and
/// only ever sends pongs (one per server ping), so it stays far below either limit.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// The venue of every event this source emits, and of its ledger and cursor keys.
    pub venue: Venue,
    /// Base URL, e.g. `wss://stream.binance.com:9443` or `ws://127.0.0.1:PORT` in tests.
    pub base_url: String,
    /// Stream names, e.g. `btcusdt@trade`, `ethusdt@kline_1m`.
    pub streams: Vec<String>,
    /// Streams per connection (Binance's limit is 1024).
    pub max_streams_per_connection: usize,
    /// First reconnect delay: the first wait is drawn from `[backoff_initial/2, backoff_initial]`.
    pub backoff_initial: Duration,
    /// Largest reconnect delay: the ceiling of the waits stops doubling here.
    pub backoff_max: Duration,
    /// Reconnect when nothing (not even a ping) arrived for this long.
    pub idle_timeout: Duration,
    /// Roll over to a fresh connection after this long (Binance closes connections at 24 h).
    pub max_connection_age: Duration,
    /// Connection attempts allowed per 5 minutes (Binance's limit is 300 per IP).
    pub max_attempts_per_5min: usize,
    /// How long the old connection is still read after the replacement's first frame.
    pub rollover_overlap: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            venue: Venue::Binance,
            base_url: "wss://stream.binance.com:9443".into(),
            streams: Vec::new(),
            max_streams_per_connection: 1024,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            max_connection_age: Duration::from_secs(23 * 3600 + 50 * 60),
            max_attempts_per_5min: 250,
            rollover_overlap: Duration::from_millis(500),
        }
    }
}

impl WsConfig {
    /// The combined-stream URL of each connection.
    pub fn connection_urls(&self) -> Vec<String> {
        let base = self.base_url.trim_end_matches('/');
        self.streams
            .chunks(self.max_streams_per_connection.clamp(1, 1024))
            .map(|chunk| format!("{base}/stream?streams={}", chunk.join("/")))
            .collect()
    }
}

/// What a connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsItem {
    /// A text frame as received.
    Frame {
        /// Connection index.
        conn: usize,
        /// The frame text.
        text: String,
        /// Receive time, ms.
        ts_received: Millis,
    },
    /// A connection is up (also after every reconnect).
    Connected {
        /// Connection index.
        conn: usize,
        /// When, ms.
        at: Millis,
        /// Connects of this connection so far (1 for the first).
        attempt: u64,
        /// A make-before-break replacement (the previous connection is still delivering).
        replacement: bool,
    },
    /// A connection went down.
    Disconnected {
        /// Connection index.
        conn: usize,
        /// When, ms.
        at: Millis,
        /// Why.
        reason: String,
    },
}

/// Runs every connection until `shutdown` turns true or the receiver is dropped. The longest
/// time a reader waited for room in `tx` (it reads nothing meanwhile) goes to `stall_max_ms`.
pub async fn run_connections(
    cfg: WsConfig,
    tx: mpsc::Sender<WsItem>,
    shutdown: watch::Receiver<bool>,
    stall_max_ms: Arc<AtomicU64>,
) {
    let mut tasks = Vec::new();
    let limiter = Arc::new(AttemptLimiter::default());
    for (conn, url) in cfg.connection_urls().into_iter().enumerate() {
        let cfg = cfg.clone();
        let tx = tx.clone();
        let shutdown = shutdown.clone();
        let limiter = limiter.clone();
        let stall = stall_max_ms.clone();
        tasks.push(tokio::spawn(async move {
            run_one(conn, url, cfg, tx, shutdown, limiter, stall).await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connection attempts in a sliding 5-minute window, shared by every connection of a process
/// (Binance bans IPs that try more than 300 times in 5 minutes).
#[derive(Debug, Default)]
pub struct AttemptLimiter {
    attempts: std::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>>,
}

impl AttemptLimiter {
    /// Waits until one more attempt fits in `max` per 5 minutes, and records it.
    pub async fn acquire(&self, max: usize) {
        let window = Duration::from_secs(300);
        loop {
            let wait = {
                let Ok(mut q) = self.attempts.lock() else {
                    return;
                };
                let now = tokio::time::Instant::now();
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                if q.len() < max.max(1) {
                    q.push_back(now);
                    return;
                }
                q.front()
                    .map(|t| window - now.duration_since(*t))
                    .unwrap_or(window)
            };
            tracing::warn!(
                source = "binance",
                ?wait,
                "Connection attempt limit reached; waiting."
            );
            tokio::time::sleep(wait).await;
        }
    }
}

async fn connect(
    url: &str,
    limiter: &AttemptLimiter,
    max_attempts: usize,
) -> Result<WsStream, String> {
    limiter.acquire(max_attempts).await;
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Err(_) => Err("connect timed out".to_string()),
        Ok(Err(e)) => Err(format!("connect failed: {e}")),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// What one read from a connection gave.
enum Read {
    Text(String),
    Ping,
    Closed(String),
}

async fn read(ws: &mut WsStream, idle: Duration) -> Read {
    loop {
        return match tokio::time::timeout(idle, ws.next()).await {
            Err(_) => Read::Closed(format!("no frame for {idle:?}")),
            Ok(None) => Read::Closed("connection closed".to_string()),
            Ok(Some(Err(e))) => Read::Closed(format!("read failed: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => Read::Text(t.as_str().to_owned()),
            Ok(Some(Ok(Message::Binary(b)))) => {
                Read::Text(String::from_utf8_lossy(&b).into_owned())
            }
            Ok(Some(Ok(Message::Ping(_)))) => {
                // tungstenite queued the pong (same payload); send it now.
                match ws.flush().await {
                    Ok(()) => Read::Ping,
                    Err(e) => Read::Closed(format!("pong failed: {e}")),
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                Read::Closed(format!("server closed: {frame:?}"))
            }
            Ok(Some(Ok(_))) => continue,
        };
    }
}

async fn read_opt(ws: &mut Option<WsStream>, idle: Duration) -> Read {
    match ws.as_mut() {
        Some(ws) => read(ws, idle).await,
        None => std::future::pending().await,
    }
}

fn is_server_shutdown(text: &str) -> bool {
    text.contains("serverShutdown")
        && matches!(
            decode_frame(text, 0),
            Ok(Decoded::Control(Control::ServerShutdown { .. }))
        )
}

/// One connection slot: connects, reads, reconnects with backoff; rolls over to a fresh
/// connection before the old one is closed (at `max_connection_age`, or at once on
/// `serverShutdown`): the new connection is opened first; once it delivered its first frame,
/// the old one keeps being read for `rollover_overlap` (so it catches up to where the new one
/// started) while the new one's frames are held, then the old one is closed and the held frames
/// follow. The overlap is deduplicated by trade id downstream.
async fn run_one(
    conn: usize,
    url: String,
    cfg: WsConfig,
    tx: mpsc::Sender<WsItem>,
    mut shutdown: watch::Receiver<bool>,
    limiter: Arc<AttemptLimiter>,
    stall_max_ms: Arc<AtomicU64>,
) {
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    let mut attempt = 0u64;
    let mut current: Option<WsStream> = None;
    let mut born = tokio::time::Instant::now();
    let mut replacement: Option<WsStream> = None;
    let mut rollover_due = false;
    let mut healthy = false;
    // Frames of the replacement held until the switch, and when the switch happens.
    let mut held: Vec<(String, Millis)> = Vec::new();
    let mut switch_at: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if current.is_none() {
            match connect(&url, &limiter, cfg.max_attempts_per_5min).await {
                Ok(ws) => {
                    attempt += 1;
                    current = Some(ws);
                    born = tokio::time::Instant::now();
                    healthy = false;
                    if tx
                        .send(WsItem::Connected {
                            conn,
                            at: now_ms(),
                            attempt,
                            replacement: false,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(reason) => {
                    if !wait_backoff(conn, &reason, &mut backoff, &tx, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if rollover_due && replacement.is_none() {
            match connect(&url, &limiter, cfg.max_attempts_per_5min).await {
                Ok(ws) => {
                    attempt += 1;
                    replacement = Some(ws);
                    tracing::info!(
                        source = "binance",
                        conn,
                        "Replacement connection open; switching after its first frame."
                    );
                    if tx
                        .send(WsItem::Connected {
                            conn,
                            at: now_ms(),
                            attempt,
                            replacement: true,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(reason) => {
                    tracing::warn!(source = "binance", conn, %reason, "Replacement connection failed; keeping the current one.")
                }
            }
            rollover_due = false;
        }
        let age_deadline = born + cfg.max_connection_age;
        let got = tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(age_deadline), if replacement.is_none() && !rollover_due => {
                tracing::info!(source = "binance", conn, "Connection reached its maximum age; rolling over.");
                rollover_due = true;
                continue;
            }
            _ = async { match switch_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                // The old connection had its overlap: close it, release the held frames.
                switch_at = None;
                if let Some(mut old) = current.take() {
                    let _ = old.close(None).await;
                }
                current = replacement.take();
                born = tokio::time::Instant::now();
                for (text, ts_received) in held.drain(..) {
                    if tx.send(WsItem::Frame { conn, text, ts_received }).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            r = read_opt(&mut current, cfg.idle_timeout) => (false, r),
            r = read_opt(&mut replacement, cfg.idle_timeout) => (true, r),
        };
        match got {
            (is_new, Read::Text(text)) => {
                if !healthy {
                    healthy = true;
                    backoff.reset();
                }
                if !is_new && is_server_shutdown(&text) {
                    tracing::info!(
                        source = "binance",
                        conn,
                        "serverShutdown: rolling over now."
                    );
                    rollover_due = true;
                }
                if is_new {
                    // The replacement delivers: hold its frames while the old one catches up.
                    held.push((text, now_ms()));
                    switch_at
                        .get_or_insert_with(|| tokio::time::Instant::now() + cfg.rollover_overlap);
                    continue;
                }
                let item = WsItem::Frame {
                    conn,
                    text,
                    ts_received: now_ms(),
                };
                if send_timed(&tx, item, &stall_max_ms).await.is_err() {
                    return;
                }
            }
            (_, Read::Ping) => {}
            (true, Read::Closed(reason)) => {
                tracing::warn!(source = "binance", conn, %reason, "Replacement connection lost before the switch.");
                replacement = None;
                held.clear();
                switch_at = None;
            }
            (false, Read::Closed(reason)) => {
                current = None;
                if let Some(new) = replacement.take() {
                    // The old one closed first: the replacement takes over without a gap marker.
                    current = Some(new);
                    born = tokio::time::Instant::now();
                    switch_at = None;
                    for (text, ts_received) in held.drain(..) {
                        if tx
                            .send(WsItem::Frame {
                                conn,
                                text,
                                ts_received,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    continue;
                }
                if !wait_backoff(conn, &reason, &mut backoff, &tx, &mut shutdown).await {
                    return;
                }
            }
        }
    }
    for mut ws in [current, replacement].into_iter().flatten() {
        let _ = ws.close(None).await;
    }
}

/// Sends `item`, measuring how long the reader waits when the channel is full.
async fn send_timed(
    tx: &mpsc::Sender<WsItem>,
    item: WsItem,
    stall_max_ms: &AtomicU64,
) -> Result<(), ()> {
    match tx.try_send(item) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        Err(mpsc::error::TrySendError::Full(item)) => {
            let waited = tokio::time::Instant::now();
            let sent = tx.send(item).await.map_err(|_| ());
            stall_max_ms.fetch_max(waited.elapsed().as_millis() as u64, Ordering::Relaxed);
            sent
        }
    }
}

/// Reports a disconnect and sleeps the backoff; false when the run is over.
async fn wait_backoff(
    conn: usize,
    reason: &str,
    backoff: &mut Backoff,
    tx: &mpsc::Sender<WsItem>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if tx
        .send(WsItem::Disconnected {
            conn,
            at: now_ms(),
            reason: reason.to_string(),
        })
        .await
        .is_err()
    {
        return false;
    }
    let delay = backoff.next_delay();
    tracing::warn!(source = "binance", conn, %reason, ?delay, "Reconnecting.");
    tokio::select! {
        _ = shutdown.changed() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// A stream name split into symbol and kind (`btcusdt@kline_1m` → BTCUSDT, Kline).
pub fn parse_stream_name(stream: &str) -> Option<(Symbol, StreamKind)> {
    let (sym, kind) = stream.split_once('@')?;
    let kind = match kind {
        "trade" => StreamKind::Trade,
        "aggTrade" => StreamKind::AggTrade,
        k if k.starts_with("kline_") => StreamKind::Kline,
        _ => return None,
    };
    Some((Symbol::from_str(sym).ok()?, kind))
}

#[derive(Default)]
struct ConnState {
    streams: Vec<(Symbol, StreamKind)>,
    last_frame: Option<Millis>,
    down_since: Option<Millis>,
    connects: u64,
}

/// A hole being refilled.
#[derive(Debug, Clone)]
struct Hole {
    reason: GapReason,
    from: u64,
    to: u64,
    since: Millis,
    until: Millis,
    last_id: u64,
    error: Option<String>,
    /// The refill answered (all pages in, or failed).
    done: bool,
    /// Ids the refill delivered, as merged ranges (pages come in id order).
    got: Vec<(u64, u64)>,
    /// Exchange time of the last trade before the hole (`i64::MIN`: unknown, e.g. after a
    /// restart), then of the last refilled trade delivered: while the hole is open the watermark
    /// stays at or below it, so the trades still to come are not late for their candles.
    cap: i64,
    /// Written as open ([`REFILLING`]) when the hold let go: its final row must resolve it.
    marked: bool,
}

impl Hole {
    fn add_got(&mut self, id: u64) {
        match self.got.last_mut() {
            Some((_, hi)) if *hi + 1 == id => *hi = id,
            Some((_, hi)) if *hi >= id => {}
            _ => self.got.push((id, id)),
        }
    }

    /// The gap event of ids `from..=to` of this hole.
    fn gap_event(
        &self,
        venue: Venue,
        key: Key,
        from: u64,
        to: u64,
        refilled: bool,
        detail: String,
    ) -> Event {
        Event::Gap(Gap {
            venue,
            symbol: key.0,
            kind: key.1,
            since: self.since,
            until: self.until,
            last_id: Some(self.last_id),
            reason: self.reason,
            from_id: Some(from),
            to_id: Some(to),
            refilled,
            detail,
        })
    }

    fn got_count(&self) -> u64 {
        self.got.iter().map(|(lo, hi)| hi - lo + 1).sum()
    }

    /// The sub-ranges of the hole the refill did not deliver.
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = self.from;
        for &(lo, hi) in &self.got {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = next.max(hi + 1);
        }
        if next <= self.to {
            out.push((next, self.to));
        }
        out
    }
}

/// Per (symbol, kind): the id cursor and, while holes are refilled, what is held back.
///
/// A hole first holds the live trades after it, so a short hole (a reconnect, refilled in one or
/// two pages) comes out in id order. A hole still open after the hold time (or with too many
/// trades held) lets go: the held trades are delivered, live trades flow on at once, and the
/// refill's pages follow as they arrive; the watermark waits for the hole (see [`Hole::cap`]).
#[derive(Default)]
struct StreamState {
    seq: Sequencer,
    /// Resumed from a stored cursor: the first hole is a restart gap.
    resumed: bool,
    last_seen: Option<Millis>,
    /// Exchange time of the newest trade delivered.
    last_ts: Option<Millis>,
    pending: usize,
    fetched: Vec<Trade>,
    held: Vec<Trade>,
    holes: Vec<Hole>,
    /// When the current hold began (the first open hole was found).
    held_since: Option<tokio::time::Instant>,
    /// The hold let go: live trades and refill pages are delivered as they come.
    streaming: bool,
}

impl StreamState {
    /// The hole `from..=to` found at `ts_received` (the stream was last seen at `prev_seen`): a
    /// restart gap when the stream just resumed from a stored cursor, else an id hole.
    fn hole(&mut self, from: u64, to: u64, prev_seen: Option<Millis>, ts_received: Millis) -> Hole {
        let reason = if std::mem::take(&mut self.resumed) {
            GapReason::Restart
        } else {
            GapReason::IdHole
        };
        Hole {
            reason,
            from,
            to,
            since: prev_seen.unwrap_or(ts_received),
            until: ts_received,
            last_id: from - 1,
            error: None,
            done: false,
            got: Vec::new(),
            cap: self.last_ts.unwrap_or(i64::MIN),
            marked: false,
        }
    }

    /// Opens a hole and starts its refill; the first open hole starts a hold.
    fn open(&mut self, hole: Hole, key: Key, start_refill: &mut dyn FnMut(Key, usize, Hole)) {
        if self.pending == 0 {
            self.held_since = Some(tokio::time::Instant::now());
            self.streaming = false;
        }
        self.pending += 1;
        self.holes.push(hole.clone());
        start_refill(key, self.holes.len() - 1, hole);
    }

    /// The event time the watermark may not pass for this stream (`i64::MAX`: no bound).
    fn cap(&self) -> i64 {
        if self.pending == 0 {
            return i64::MAX;
        }
        self.holes
            .iter()
            .filter(|h| !(self.streaming && h.done))
            .map(|h| h.cap)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Delivers refilled trades (in id order), moving each hole's bound along.
    fn deliver_refilled(&mut self, trades: Vec<Trade>, out: &mut Vec<Trade>) {
        for t in trades {
            if let Some(h) = self
                .holes
                .iter_mut()
                .find(|h| (h.from..=h.to).contains(&t.trade_id))
            {
                h.cap = h.cap.max(t.ts_exchange);
            }
            out.push(t);
        }
    }
}

type Key = (Symbol, StreamKind);

/// What a refill task reports.
enum Refill {
    /// A page of refilled trades, in id order.
    Page {
        key: Key,
        hole: usize,
        trades: Vec<Trade>,
    },
    /// The refill of a hole ended.
    Done {
        key: Key,
        hole: usize,
        result: Result<u64, RestError>,
    },
}

/// How long a hole holds the live trades after it, and where the source queues what the
/// pipeline cannot take yet.
#[derive(Debug, Clone)]
pub struct LiveLimits {
    /// A hole holds the live trades after it (to deliver them in id order) at most this long.
    pub hold: Duration,
    /// … and at most this many trades per stream.
    pub hold_trades: usize,
    /// Events queued in memory while the pipeline pushes back; more go to a spill file.
    pub queue_events: usize,
    /// Directory of the spill file (created and unlinked at once).
    pub spill_dir: std::path::PathBuf,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            hold: Duration::from_secs(3),
            hold_trades: 20_000,
            queue_events: 50_000,
            spill_dir: std::env::temp_dir(),
        }
    }
}

/// Most events gathered into one batch while the pipeline pushes back.
const STAGE_EVENTS: usize = 1024;

/// A batch with the watermark bounds it was assembled under (see [`WatermarkCap::for_batch`]).
type Queued = (EventBatch, i64, i64);

/// Live Binance source: decodes frames into events; emits a [`Gap`] marker per stream of a
/// connection every time it reconnects; sequences trade ids per (symbol, kind): duplicates are
/// dropped, ids going backwards are counted, and holes are refilled from the REST API (when
/// `rest` is set). A hole refilled within the hold time comes out in id order before the live
/// trades that follow it; a longer one lets the live trades go on and its pages follow, with
/// the watermark held at the hole through `cap`. Every hole ends as a [`Gap`] event saying
/// whether it was refilled, and if not, why.
///
/// The source never stops reading its connections: what the pipeline cannot take yet waits in
/// a queue that spills to disk beyond `limits.queue_events`.
/// Runs until `shutdown` or the receiver is dropped.
#[allow(clippy::too_many_arguments)]
pub async fn binance_live(
    cfg: WsConfig,
    rest: Option<RestConfig>,
    resume: HashMap<(Symbol, StreamKind), u64>,
    tx: mpsc::Sender<EventBatch>,
    stats: Arc<SourceStats>,
    shutdown: watch::Receiver<bool>,
    limits: LiveLimits,
    cap: WatermarkCap,
) {
    let (wtx, mut wrx) = mpsc::channel::<WsItem>(4096);
    let mut conns: HashMap<usize, ConnState> = HashMap::new();
    for (i, chunk) in cfg
        .streams
        .chunks(cfg.max_streams_per_connection.clamp(1, 1024))
        .enumerate()
    {
        let streams = chunk.iter().filter_map(|s| parse_stream_name(s)).collect();
        conns.insert(
            i,
            ConnState {
                streams,
                ..Default::default()
            },
        );
    }
    let rest = match rest.map(BinanceRest::new).transpose() {
        Ok(r) => r.map(|r| Arc::new(tokio::sync::Mutex::new(r))),
        Err(e) => {
            tracing::error!(source = "binance", error = %e, "REST client unavailable; gaps will not be refilled.");
            None
        }
    };
    let (rtx, mut rrx) = mpsc::channel::<Refill>(8);
    let venue = cfg.venue;
    let stall = Arc::new(AtomicU64::new(0));
    let runner = tokio::spawn(run_connections(cfg, wtx, shutdown, stall.clone()));
    let mut streams: HashMap<Key, StreamState> = resume
        .into_iter()
        .map(|(key, last)| {
            (
                key,
                StreamState {
                    seq: Sequencer::resume(Some(last)),
                    resumed: true,
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut queue: SpillQueue<Queued> = SpillQueue::new(limits.queue_events, &limits.spill_dir);
    let mut spill_warned = false;
    // While the pipeline pushes back, events gather here into one batch (up to STAGE_EVENTS)
    // before they join the queue: fewer, larger batches are cheaper to feed and to spill.
    let mut staging: Option<Queued> = None;
    let mut hold_tick = tokio::time::interval(Duration::from_millis(100));
    hold_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ws_open = true;
    let mut refills_pending = 0usize;
    // The bound the watermark may not pass: each open hole, and each stream of a connection that
    // is down (its trades since are unknown until it is back and its hole is refilled; without
    // this, an idle watermark could follow the wall clock past them).
    let global_cap =
        |streams: &HashMap<Key, StreamState>, conns: &HashMap<usize, ConnState>, pending: usize| {
            let holes = if pending == 0 {
                i64::MAX
            } else {
                streams
                    .values()
                    .map(StreamState::cap)
                    .min()
                    .unwrap_or(i64::MAX)
            };
            let down = conns
                .values()
                .filter(|c| c.down_since.is_some())
                .flat_map(|c| c.streams.iter())
                .filter_map(|k| streams.get(k).and_then(|s| s.last_ts))
                .min()
                .unwrap_or(i64::MAX);
            holes.min(down)
        };
    while ws_open || refills_pending > 0 || !queue.is_empty() || staging.is_some() {
        let mut out: EventBatch = Vec::new();
        let before = global_cap(&streams, &conns, refills_pending);
        tokio::select! {
            item = wrx.recv(), if ws_open => match item {
                None => ws_open = false,
                Some(item) => on_ws_item(venue, item, &mut conns, &mut streams, &stats, &mut out, &mut |key, hole_idx, hole: Hole| {
                    refills_pending += 1;
                    spawn_refill(rest.clone(), rtx.clone(), key, hole_idx, hole);
                }),
            },
            msg = rrx.recv(), if refills_pending > 0 => {
                if let Some(msg) = msg {
                    if matches!(msg, Refill::Done { .. }) {
                        refills_pending -= 1;
                    }
                    on_refill(venue, msg, &mut streams, &stats, &mut out);
                }
            }
            permit = tx.reserve(), if !queue.is_empty() || staging.is_some() => {
                let Ok(permit) = permit else { break };
                let next = if queue.is_empty() { Ok(staging.take()) } else { queue.pop() };
                match next {
                    Ok(Some((batch, b, a))) => {
                        cap.for_batch(b, a);
                        // Between batches the bound is the current one, not the queued batch's.
                        cap.set_latest(global_cap(&streams, &conns, refills_pending));
                        permit.send(batch);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(source = "binance", error = %e, "Queued events lost."),
                }
                stats.spill_peak_batches.fetch_max(queue.peak_spilled() as u64, Ordering::Relaxed);
            }
            _ = hold_tick.tick() => {
                let now = tokio::time::Instant::now();
                for (key, st) in streams.iter_mut() {
                    let due = st.held_since.is_some_and(|t| now.duration_since(t) >= limits.hold)
                        || st.held.len() >= limits.hold_trades;
                    if st.pending > 0 && !st.streaming && due {
                        let_go(venue, *key, st, &stats, &mut out);
                    }
                }
            }
        }
        stats
            .reader_stall_max_ms
            .fetch_max(stall.load(Ordering::Relaxed), Ordering::Relaxed);
        let after = global_cap(&streams, &conns, refills_pending);
        if out.is_empty() {
            if after != before && queue.is_empty() {
                // A hole opened or a connection went down or came back, with nothing to send:
                // the bound between batches changes now.
                cap.set_latest(after);
            }
            continue;
        }
        if queue.is_empty() && staging.is_none() {
            match tx.try_reserve() {
                Ok(permit) => {
                    cap.for_batch(before, after);
                    permit.send(out);
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
        }
        // Merged batches keep the least bound inside (a lower bound only delays the watermark)
        // and the later one after.
        let full = match &mut staging {
            Some((batch, b, a)) => {
                batch.extend(out);
                *b = (*b).min(*a).min(before);
                *a = after;
                batch.len() >= STAGE_EVENTS
            }
            None => {
                staging = Some((out, before, after));
                false
            }
        };
        if full {
            if let Some(item) = staging.take() {
                let n = item.0.len();
                if let Err(e) = queue.push(item, n) {
                    if !std::mem::replace(&mut spill_warned, true) {
                        tracing::warn!(source = "binance", error = %e, "Cannot spill to disk; queueing in memory.");
                    }
                }
            }
        }
        stats
            .spilled_batches
            .store(queue.total_spilled(), Ordering::Relaxed);
    }
    runner.abort();
}

/// The hold of a stream ends before its holes are refilled: what was fetched and held goes out
/// in id order, and from now on live trades and refill pages are delivered as they come.
fn let_go(venue: Venue, key: Key, st: &mut StreamState, stats: &SourceStats, out: &mut EventBatch) {
    st.streaming = true;
    let fetched = std::mem::take(&mut st.fetched);
    let held = std::mem::take(&mut st.held);
    tracing::info!(source = venue.as_str(), symbol = %key.0, held = held.len(), holes = st.pending, "A hole outlasts the hold: live trades go on while it is refilled.");
    let mut all = Vec::with_capacity(fetched.len() + held.len());
    st.deliver_refilled(fetched, &mut all);
    SourceStats::add(&stats.trades_ahead_of_refill, held.len() as u64);
    // Each open hole is recorded as open first: live trades past it are stored before it is.
    for h in st.holes.iter_mut().filter(|h| !h.done) {
        h.marked = true;
        out.push(h.gap_event(venue, key, h.from, h.to, false, REFILLING.into()));
    }
    all.extend(held);
    all.sort_by_key(|t| t.trade_id);
    all.dedup_by_key(|t| t.trade_id);
    emit_trades(venue, key, all, stats, out);
}

/// Delivers trades of one stream, counting them in the ledger.
fn emit_trades(
    venue: Venue,
    key: Key,
    trades: Vec<Trade>,
    stats: &SourceStats,
    out: &mut EventBatch,
) {
    if trades.is_empty() {
        return;
    }
    stats.ledger.update(venue.as_str(), key.0.as_str(), |c| {
        c.trades += trades.len() as u64
    });
    out.extend(trades.into_iter().map(Event::Trade));
}

fn spawn_refill(
    rest: Option<Arc<tokio::sync::Mutex<BinanceRest>>>,
    done: mpsc::Sender<Refill>,
    key: Key,
    hole: usize,
    h: Hole,
) {
    tokio::spawn(async move {
        let result = match rest {
            Some(rest) => {
                let pages = done.clone();
                rest.lock()
                    .await
                    .refill_pages(key.0, key.1, h.from, h.to, |trades| {
                        let pages = pages.clone();
                        async move { pages.send(Refill::Page { key, hole, trades }).await.is_ok() }
                    })
                    .await
            }
            None => Err(RestError::Unavailable(
                "REST refill is not configured".into(),
            )),
        };
        let _ = done.send(Refill::Done { key, hole, result }).await;
    });
}

fn on_ws_item(
    venue: Venue,
    item: WsItem,
    conns: &mut HashMap<usize, ConnState>,
    streams: &mut HashMap<Key, StreamState>,
    stats: &SourceStats,
    out: &mut EventBatch,
    start_refill: &mut dyn FnMut(Key, usize, Hole),
) {
    match item {
        WsItem::Frame {
            conn,
            text,
            ts_received,
        } => {
            SourceStats::inc(&stats.frames);
            if let Some(c) = conns.get_mut(&conn) {
                c.last_frame = Some(ts_received);
            }
            let decoded = decode_frame(&text, ts_received).map(|d| match d {
                Decoded::Event(mut e) => {
                    set_venue(&mut e, venue);
                    Decoded::Event(e)
                }
                other => other,
            });
            match decoded {
                Ok(Decoded::Control(Control::OffBookTrade {
                    symbol,
                    trade_id,
                    kind: x,
                })) => {
                    // Not on the tape, but its id is taken: advance the cursor over it (a hole
                    // before it is refilled as usual; the hole never covers its own id).
                    SourceStats::inc(&stats.control_frames);
                    let key = (symbol, StreamKind::Trade);
                    let st = streams.entry(key).or_default();
                    let prev_seen = st.last_seen.replace(ts_received);
                    let verdict = st.seq.observe(trade_id);
                    stats.ledger.update(venue.as_str(), symbol.as_str(), |c| {
                        c.frames += 1;
                        c.last_received_ms = ts_received;
                        if let Verdict::Gap { .. } = verdict {
                            c.gaps_detected += 1;
                        }
                    });
                    tracing::debug!(source = venue.as_str(), %symbol, id = trade_id, kind = %x, "Trade outside the order book (not on the tape).");
                    if let Verdict::Gap { from, to } = verdict {
                        SourceStats::inc(&stats.gaps_detected);
                        let hole = st.hole(from, to, prev_seen, ts_received);
                        st.open(hole, key, start_refill);
                    } else if verdict == Verdict::Next && st.pending == 0 {
                        st.resumed = false;
                    }
                }
                Ok(Decoded::Event(Event::Trade(t))) => {
                    SourceStats::inc(&stats.events);
                    let key = (t.symbol, t.kind());
                    let st = streams.entry(key).or_default();
                    let prev_seen = st.last_seen.replace(ts_received);
                    let verdict = st.seq.observe(t.trade_id);
                    stats.ledger.update(venue.as_str(), t.symbol.as_str(), |c| {
                        c.frames += 1;
                        c.last_received_ms = ts_received;
                        c.last_event_ms = c.last_event_ms.max(t.ts_exchange);
                        match verdict {
                            Verdict::Duplicate => c.duplicates += 1,
                            Verdict::Gap { .. } => c.gaps_detected += 1,
                            _ => {}
                        }
                    });
                    if let Verdict::Gap { from, to } = verdict {
                        SourceStats::inc(&stats.gaps_detected);
                        let hole = st.hole(from, to, prev_seen, ts_received);
                        tracing::info!(source = "binance", symbol = %t.symbol, from, to, "Id gap; refilling.");
                        st.open(hole, key, start_refill);
                    }
                    match verdict {
                        Verdict::Duplicate => SourceStats::inc(&stats.duplicates),
                        Verdict::Backwards if st.pending == 0 => {
                            let n = stats.out_of_order.fetch_add(1, Ordering::Relaxed);
                            if n == 0 {
                                tracing::warn!(source = "binance", symbol = %t.symbol, id = t.trade_id, last = ?st.seq.last(), "Trade id went backwards (counted, not delivered; logged once).");
                            }
                        }
                        // Inside a hole being refilled: the refill may bring it too, and the
                        // repeat is dropped downstream.
                        _ if st.pending > 0 && !st.streaming => st.held.push(t),
                        _ => {
                            if st.pending == 0 {
                                st.resumed = false;
                            } else {
                                SourceStats::inc(&stats.trades_ahead_of_refill);
                            }
                            st.last_ts =
                                Some(st.last_ts.map_or(t.ts_exchange, |l| l.max(t.ts_exchange)));
                            emit_trades(venue, key, vec![t], stats, out);
                        }
                    }
                }
                Ok(Decoded::Event(e)) => {
                    SourceStats::inc(&stats.events);
                    out.push(e);
                }
                Ok(Decoded::Control(c)) => {
                    stats.control("binance", &c);
                    if let Control::ServerShutdown { at } = c {
                        tracing::info!(
                            source = "binance",
                            conn,
                            at,
                            "Server announced a shutdown."
                        );
                    }
                }
                Err(err) => {
                    stats.ledger.update(venue.as_str(), "", |c| {
                        c.frames += 1;
                        c.decode_errors += 1;
                    });
                    stats.dead_letter(venue.as_str(), err.kind(), &err, &text, ts_received)
                }
            }
        }
        WsItem::Disconnected { conn, at, reason } => {
            if let Some(c) = conns.get_mut(&conn) {
                c.down_since.get_or_insert(c.last_frame.unwrap_or(at));
            }
            // One per "Reconnecting." the connection logs (a lost connection or a failed
            // attempt), whether or not a later attempt succeeds before the run ends.
            SourceStats::inc(&stats.reconnects);
            tracing::debug!(source = "binance", conn, %reason, "Disconnected.");
        }
        WsItem::Connected {
            replacement: true, ..
        } => {}
        WsItem::Connected { conn, at, .. } => {
            let Some(c) = conns.get_mut(&conn) else {
                return;
            };
            c.connects += 1;
            if c.connects == 1 {
                return;
            }
            for (symbol, _) in &c.streams {
                stats
                    .ledger
                    .update(venue.as_str(), symbol.as_str(), |c| c.reconnects += 1);
            }
            let since = c.down_since.take().or(c.last_frame).unwrap_or(at);
            for &(symbol, kind) in &c.streams {
                out.push(Event::Gap(Gap {
                    venue,
                    symbol,
                    kind,
                    since,
                    until: at,
                    last_id: streams.get(&(symbol, kind)).and_then(|s| s.seq.last()),
                    reason: GapReason::Reconnect,
                    from_id: None,
                    to_id: None,
                    refilled: false,
                    detail: String::new(),
                }));
            }
        }
    }
}

fn on_refill(
    venue: Venue,
    msg: Refill,
    streams: &mut HashMap<Key, StreamState>,
    stats: &SourceStats,
    out: &mut EventBatch,
) {
    let (key, hole, result) = match msg {
        Refill::Page { key, hole, trades } => {
            let Some(st) = streams.get_mut(&key) else {
                return;
            };
            if let Some(h) = st.holes.get_mut(hole) {
                for t in &trades {
                    h.add_got(t.trade_id);
                }
            }
            if st.streaming {
                let mut ready = Vec::with_capacity(trades.len());
                st.deliver_refilled(trades, &mut ready);
                emit_trades(venue, key, ready, stats, out);
            } else {
                st.fetched.extend(trades);
            }
            return;
        }
        Refill::Done { key, hole, result } => (key, hole, result),
    };
    let Some(st) = streams.get_mut(&key) else {
        return;
    };
    st.pending = st.pending.saturating_sub(1);
    if let Some(h) = st.holes.get_mut(hole) {
        h.done = true;
        if let Err(e) = result {
            tracing::warn!(source = "binance", symbol = %key.0, from = h.from, to = h.to, error = %e, "Gap could not be refilled.");
            h.error = Some(e.to_string());
        }
    }
    if st.pending > 0 {
        return;
    }
    // Every hole of this stream is answered: release what is still held, in id order.
    let fetched = std::mem::take(&mut st.fetched);
    let mut all = Vec::with_capacity(fetched.len() + st.held.len());
    st.deliver_refilled(fetched, &mut all);
    all.append(&mut st.held);
    all.sort_by_key(|t| t.trade_id);
    all.dedup_by_key(|t| t.trade_id);
    st.streaming = false;
    st.held_since = None;
    for h in std::mem::take(&mut st.holes) {
        let got = h.got_count();
        SourceStats::add(&stats.ids_refilled, got);
        stats
            .ledger
            .update(venue.as_str(), key.0.as_str(), |c| c.ids_refilled += got);
        let missing = h.missing();
        if missing.is_empty() {
            SourceStats::inc(&stats.gaps_refilled);
            stats
                .ledger
                .update(venue.as_str(), key.0.as_str(), |c| c.gaps_refilled += 1);
            out.push(h.gap_event(venue, key, h.from, h.to, true, String::new()));
        } else {
            if h.marked {
                // Resolve the open row; the missing ranges get rows of their own.
                let detail = "partly refilled: the missing ranges have rows of their own";
                out.push(h.gap_event(venue, key, h.from, h.to, true, detail.into()));
            }
            for (from, to) in missing {
                SourceStats::add(&stats.ids_unrefillable, to - from + 1);
                stats.ledger.update(venue.as_str(), key.0.as_str(), |c| {
                    c.ids_unrefillable += to - from + 1
                });
                let detail = h
                    .error
                    .clone()
                    .unwrap_or_else(|| "the REST API did not return these ids".into());
                out.push(h.gap_event(venue, key, from, to, false, detail));
            }
        }
    }
    if let Some(last) = all.last() {
        st.last_ts = Some(
            st.last_ts
                .map_or(last.ts_exchange, |l| l.max(last.ts_exchange)),
        );
    }
    emit_trades(venue, key, all, stats, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_over_connections() {
        let cfg = WsConfig {
            base_url: "ws://h:1/".into(),
            streams: (0..2050).map(|i| format!("s{i}usdt@trade")).collect(),
            ..Default::default()
        };
        let urls = cfg.connection_urls();
        assert_eq!(urls.len(), 3);
        assert!(urls[0].starts_with("ws://h:1/stream?streams=s0usdt@trade/s1usdt@trade/"));
        assert_eq!(urls[0].matches("@trade").count(), 1024);
        assert_eq!(urls[2].matches("@trade").count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_limiter_keeps_to_its_window() {
        let l = AttemptLimiter::default();
        let t0 = tokio::time::Instant::now();
        for _ in 0..3 {
            l.acquire(3).await;
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
        // The fourth attempt waits until the first leaves the 5-minute window.
        l.acquire(3).await;
        assert!(
            t0.elapsed() >= Duration::from_secs(300),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn missing_ranges_of_a_hole() {
        let hole = |from, to, got: &[u64]| {
            let mut h = StreamState::default().hole(from, to, None, 0);
            for &id in got {
                h.add_got(id);
            }
            h
        };
        let h = hole(1, 9, &[3, 4, 7]);
        assert_eq!(h.missing(), vec![(1, 2), (5, 6), (8, 9)]);
        assert_eq!(h.got_count(), 3);
        assert_eq!(hole(3, 4, &[3, 4]).missing(), vec![]);
        assert_eq!(hole(5, 5, &[]).missing(), vec![(5, 5)]);
        assert_eq!(hole(1, 5, &[2, 2, 3]).got_count(), 2);
    }

    #[test]
    fn stream_names() {
        assert_eq!(
            parse_stream_name("btcusdt@kline_1m"),
            Some((Symbol::new("BTCUSDT").unwrap(), StreamKind::Kline))
        );
        assert_eq!(
            parse_stream_name("ethusdt@aggTrade").map(|x| x.1),
            Some(StreamKind::AggTrade)
        );
        assert_eq!(parse_stream_name("ethusdt@depth"), None);
    }
}
