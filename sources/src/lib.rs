//! Sources of cryptoflow: they turn upstream bytes into normalized [`Event`]s.
//!
//! # Layout
//!
//! - [`binance`]: Binance wire types (private) and decoders for WebSocket frames, REST items and
//!   the public CSV dumps.
//! - [`ws`]: the Binance WebSocket client: combined streams, pings, reconnects with the shared
//!   [`Backoff`](cryptoflow_operators::backoff::Backoff), in-band
//!   [`Gap`](cryptoflow_operators::model::Gap) events.
//! - [`replay`]: reads recorded captures (JSON lines, optionally gzip) and CSV dumps, paced or
//!   as fast as possible, streaming the file.
//! - [`kafka`]: the Kafka source: raw Binance payloads with a consumer group, offsets committed
//!   only once every sink acknowledged the outputs (and their candles are final); dead letters.
//! - [`poll`]: the poll driver's parts shared by every poller: schedules (interval, cron in a time
//!   zone), circuit breaker, rate limiter, `Retry-After`, the polite HTTP fetcher.
//! - [`progress`]: what a source and the runtime tell each other: the source's bound on event
//!   time ([`WatermarkCap`](progress::WatermarkCap)) and the sinks' least ack
//!   ([`Durable`](progress::Durable)).
//! - [`record`]: writes frames with their receive time in the format `replay` reads back.
//! - [`generate`]: deterministic synthetic Binance trade payloads.
//! - [`sequencer`]: id-gap, duplicate and out-of-order detection per stream.
//! - [`spill`]: the live source's queue, in memory up to a bound and on disk beyond it.
//! - [`rest`]: the Binance REST client that refills id gaps within a weight budget.
//! - [`ledger`]: the data-quality ledger per source and symbol (table snapshots, metrics).
//! - [`stats`]: per-source counters and the dead-letter output.
#![warn(missing_docs)]

pub mod binance;
pub mod generate;
pub mod kafka;
pub mod ledger;
pub mod poll;
pub mod progress;
pub mod record;
pub mod replay;
pub mod rest;
pub mod sequencer;
pub mod spill;
pub mod stats;
pub mod telegram;
pub mod ws;

pub use cryptoflow_operators::model::Event;

/// A batch of events handed from a source to the dataflow.
pub type EventBatch = Vec<Event>;

/// Milliseconds since the Unix epoch, read from the system clock (only sources read the clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
