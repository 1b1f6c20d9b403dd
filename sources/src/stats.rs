//! Per-source counters and the dead-letter output for input that cannot be decoded.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::binance::Control;

/// Readiness of a source, for health checks (e.g. an HTTP readiness probe): read it with
/// [`SourceStats::health`] or [`SourceStats::is_ready`].
///
/// The Kafka source reports [`Starting`](SourceHealth::Starting) until its brokers answered and
/// the group gave it its first partition assignment, [`Lost`](SourceHealth::Lost) while no broker
/// has answered for longer than `kafka.connect_timeout_ms` (it keeps retrying), and
/// [`Ready`](SourceHealth::Ready) otherwise. Sources that do not track it stay
/// [`Untracked`](SourceHealth::Untracked), which counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum SourceHealth {
    /// The source does not report its readiness (taken as ready).
    Untracked = 0,
    /// Not connected yet, or (Kafka) no partition assignment yet.
    Starting = 1,
    /// Connected and assigned: delivering, or caught up and waiting for input.
    Ready = 2,
    /// Its upstream answered before but has not for longer than the connect timeout; the source
    /// keeps retrying and becomes [`Ready`](SourceHealth::Ready) again once it answers.
    Lost = 3,
}

impl SourceHealth {
    /// Whether a readiness probe should pass: [`Ready`](SourceHealth::Ready) or
    /// [`Untracked`](SourceHealth::Untracked).
    pub fn is_ready(self) -> bool {
        matches!(self, SourceHealth::Ready | SourceHealth::Untracked)
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => SourceHealth::Starting,
            2 => SourceHealth::Ready,
            3 => SourceHealth::Lost,
            _ => SourceHealth::Untracked,
        }
    }
}

/// Counters of one source; cheap to update from any thread.
pub struct SourceStats {
    /// Frames or lines read.
    pub frames: AtomicU64,
    /// Events emitted.
    pub events: AtomicU64,
    /// Frames that could not be decoded (each one is a dead letter).
    pub decode_errors: AtomicU64,
    /// Reconnects of live connections: one per logged "Reconnecting." (a lost connection or a
    /// failed attempt), counted when the reconnect starts.
    pub reconnects: AtomicU64,
    /// Control frames (subscription acks, `serverShutdown`, …) and frames of ignored types.
    pub control_frames: AtomicU64,
    /// Frames of a known Binance type that cryptoflow does not process (not dead letters); per
    /// type in the ledger ([`crate::ledger::Ledger::ignored`]).
    pub ignored: AtomicU64,
    /// Trades dropped because their id was already delivered.
    pub duplicates: AtomicU64,
    /// Trades whose id went backwards (counted, logged, not delivered).
    pub out_of_order: AtomicU64,
    /// Id holes detected.
    pub gaps_detected: AtomicU64,
    /// Id holes refilled completely from the REST API.
    pub gaps_refilled: AtomicU64,
    /// Trades delivered by REST refills.
    pub ids_refilled: AtomicU64,
    /// Ids that could not be refilled (recorded as gaps).
    pub ids_unrefillable: AtomicU64,
    /// Longest time a WebSocket reader waited to hand a frame on, ms (an exchange drops a reader
    /// that stops reading; the live source queues and spills instead of pushing back).
    pub reader_stall_max_ms: AtomicU64,
    /// Batches the live source queued on disk because the pipeline pushed back.
    pub spilled_batches: AtomicU64,
    /// Most batches on disk at once.
    pub spill_peak_batches: AtomicU64,
    /// Trades delivered ahead of a hole still being refilled (the hole held longer than the
    /// hold time; its trades follow as the refill fetches them).
    pub trades_ahead_of_refill: AtomicU64,
    /// The per-symbol data-quality ledger this source reports into.
    pub ledger: std::sync::Arc<crate::ledger::Ledger>,
    /// [`SourceHealth`] as a number (see [`SourceStats::health`]).
    health: AtomicU8,
    warned: Mutex<HashSet<String>>,
    dead_letters: Mutex<Option<Box<dyn Write + Send>>>,
}

/// One record of the dead-letter output (JSON lines).
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// Source name.
    pub source: &'a str,
    /// The decode error.
    pub error: String,
    /// The offending input, cut to 4 KiB.
    pub raw: &'a str,
    /// Receive time, ms.
    pub ts_received: i64,
}

impl Default for SourceStats {
    fn default() -> Self {
        SourceStats::with_ledger(std::sync::Arc::new(crate::ledger::Ledger::new(
            60_000,
            crate::now_ms(),
        )))
    }
}

impl std::fmt::Debug for SourceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStats")
            .field("frames", &self.frames)
            .field("events", &self.events)
            .field("decode_errors", &self.decode_errors)
            .field("reconnects", &self.reconnects)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl SourceStats {
    /// Counters reporting into `ledger`.
    pub fn with_ledger(ledger: std::sync::Arc<crate::ledger::Ledger>) -> Self {
        SourceStats {
            frames: AtomicU64::new(0),
            events: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            control_frames: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            gaps_detected: AtomicU64::new(0),
            gaps_refilled: AtomicU64::new(0),
            ids_refilled: AtomicU64::new(0),
            ids_unrefillable: AtomicU64::new(0),
            reader_stall_max_ms: AtomicU64::new(0),
            spilled_batches: AtomicU64::new(0),
            spill_peak_batches: AtomicU64::new(0),
            trades_ahead_of_refill: AtomicU64::new(0),
            ledger,
            health: AtomicU8::new(SourceHealth::Untracked as u8),
            warned: Mutex::new(HashSet::new()),
            dead_letters: Mutex::new(None),
        }
    }

    /// Counters with dead letters written to `out` (JSON lines).
    pub fn with_dead_letters(self, out: Box<dyn Write + Send>) -> Self {
        let s = self;
        if let Ok(mut g) = s.dead_letters.lock() {
            *g = Some(out);
        }
        s
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The source's readiness now.
    pub fn health(&self) -> SourceHealth {
        SourceHealth::from_u8(self.health.load(Ordering::SeqCst))
    }

    /// Sets the source's readiness (by the source).
    pub fn set_health(&self, health: SourceHealth) {
        self.health.store(health as u8, Ordering::SeqCst);
    }

    /// Whether the source is ready (see [`SourceHealth::is_ready`]).
    pub fn is_ready(&self) -> bool {
        self.health().is_ready()
    }

    /// Counts a control frame, and as ignored under its type unless it is acted upon (see
    /// [`Control::ignored_type`]).
    pub fn control(&self, source: &str, control: &Control) {
        Self::inc(&self.control_frames);
        if let Some(ty) = control.ignored_type() {
            Self::inc(&self.ignored);
            self.ledger.count_ignored(source, ty);
        }
        if let Control::Error { code, msg } = control {
            tracing::warn!(
                source,
                code,
                msg,
                "The server answered a request with an error."
            );
        }
    }

    /// Counts a decode error, logs it once per kind with a sample, and writes a dead letter.
    pub fn dead_letter(
        &self,
        source: &str,
        kind: &str,
        error: &dyn std::fmt::Display,
        raw: &str,
        ts_received: i64,
    ) {
        Self::inc(&self.decode_errors);
        let mut cut = raw.len().min(4096);
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        let raw = &raw[..cut];
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(kind.to_string()))
            .unwrap_or(false);
        if first {
            tracing::warn!(source, kind, %error, sample = raw, "Undecodable input sent to dead letters (logged once per kind).");
        }
        if let Ok(mut g) = self.dead_letters.lock() {
            if let Some(out) = g.as_mut() {
                let rec = DeadLetter {
                    source,
                    error: error.to_string(),
                    raw,
                    ts_received,
                };
                if let Ok(line) = serde_json::to_string(&rec) {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
    }

    /// Flushes the dead-letter output.
    pub fn flush(&self) {
        if let Ok(mut g) = self.dead_letters.lock() {
            if let Some(out) = g.as_mut() {
                let _ = out.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_untracked_until_a_source_sets_it() {
        let s = SourceStats::default();
        assert_eq!(s.health(), SourceHealth::Untracked);
        assert!(s.is_ready(), "sources that do not track it count as ready");
        for (h, ready) in [
            (SourceHealth::Starting, false),
            (SourceHealth::Ready, true),
            (SourceHealth::Lost, false),
            (SourceHealth::Untracked, true),
        ] {
            s.set_health(h);
            assert_eq!(s.health(), h);
            assert_eq!(s.is_ready(), ready, "{h:?}");
        }
    }
}
