//! Sinks of cryptoflow and the delivery protocol that lets upstream commit.
//!
//! # Layout
//!
//! - [`task`]: the one sink task every sink runs in: bounded input, batching (size + linger),
//!   retries with backoff for transient errors, and the "durable up to time t" ack.
//! - [`sql`]: the SQL tables described once ([`sql::tables`]) and the PostgreSQL and MySQL
//!   dialects that render and bind them.
//! - [`postgres`]: PostgreSQL sink (idempotent UNNEST upserts, one transaction per flush), the
//!   migration runner (migrations, then every view) and the resume / restore reads.
//! - [`state`]: [`state::StateStore`], the reads a restarted pipeline makes.
//! - [`influx`]: InfluxDB sink (line protocol, 1.x and 2.x HTTP APIs, gzip).
//! - [`mysql`]: MySQL / MariaDB sink (multi-row upserts, new trades counted once) and the
//!   migration runner.
//! - [`kafka`]: Kafka sink (JSON messages keyed by symbol on four topics, idempotent producer,
//!   delivery reports before the ack).
//! - [`redis`]: Redis sink (latest state per instrument in hashes with a TTL, guarded so
//!   versions never go back; final candles, whales and indicators published).
//! - [`journal`]: the order executor's journal in PostgreSQL (written ahead of the wire).
//! - [`console`], [`jsonl`]: a readable line per final candle and whale; JSON lines to a file.
#![warn(missing_docs)]

pub mod binance_orders;
pub mod console;
pub mod influx;
pub mod journal;
pub mod jsonl;
pub mod kafka;
pub mod migrations;
pub mod mysql;
pub mod partitions;
pub mod postgres;
pub mod redis;
pub mod sql;
pub mod state;
pub mod task;

pub use task::{Ack, Sink, SinkError, SinkMsg};

/// Wall-clock milliseconds since the Unix epoch (lifecycle events, `resolved_at` of gaps).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
