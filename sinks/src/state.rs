//! What a restarted pipeline reads back from a store to carry on where it stopped.
//!
//! Implemented by [`crate::postgres::PostgresState`]. MySQL / MariaDB does not implement it: its
//! schema has no stream cursors (`source_offsets`), and its sink does not resolve the open
//! refill markers a later run's refill covers, so neither read could be answered from it as
//! exactly as from PostgreSQL.

use std::future::Future;

use cryptoflow_operators::features::ContextItem;

use crate::task::SinkError;

/// Where one live stream resumes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResumePoint {
    /// Venue (`binance`, `binance-usdm`, `binance-coinm`).
    pub venue: String,
    /// Symbol.
    pub symbol: String,
    /// Stream kind (`trade`, `aggTrade`).
    pub kind: String,
    /// The last id below which every id is stored: the stream resumes after it.
    pub last_id: u64,
}

/// The resume and restore reads of a store.
pub trait StateStore {
    /// Where each live stream should resume: per (venue, symbol, kind), the last id below which
    /// every id is stored. `window` bounds how deep below the stored cursor a crash can have left
    /// holes (flushes in flight × batch size).
    fn resume_points(
        &self,
        window: u64,
    ) -> impl Future<Output = Result<Vec<ResumePoint>, SinkError>> + Send;

    /// The stored context a restarted pipeline feeds its features and sentiment windows: the
    /// sentiment of `model` for every item within `retain_ms` of its coins' newest item, every
    /// macro observation, and the latest market snapshot per coin.
    fn restore_context(
        &self,
        model: &str,
        retain_ms: i64,
    ) -> impl Future<Output = Result<Vec<ContextItem>, SinkError>> + Send;
}
