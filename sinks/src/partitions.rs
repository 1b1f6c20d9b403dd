//! Bounded storage in PostgreSQL: the day partitions of `trades` and the retention.
//!
//! `trades` is partitioned by range of `ts_exchange` (migration 0014), one partition per UTC day
//! named `trades_pYYYYMMDD`. The pipeline keeps it so:
//! - the sink creates the partition of every day it writes before the flush that needs it
//!   ([`PartitionCache`]), so a replay of any past day finds its partition;
//! - a maintenance pass ([`maintain`]), at the sink's start and then every
//!   `maintenance_interval_s`, creates the partitions of today and of `partition_ahead` days
//!   ahead, drops every partition whose range ends before now − `retention_days` (a catalogue
//!   change: no row is read or deleted) and deletes the candles older than
//!   `candle_retention_days`.
//!
//! Several writers may do this at once (forks, processes): an existing partition, one created
//! concurrently, and a day covered already by another partition (`trades_legacy`, the table a
//! migration attached whole) all count as done.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_postgres::error::SqlState;

use crate::task::SinkError;

const SINK: &str = "postgres";

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) of a time in ms since the epoch.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The date of a day number of [`day_of`]; `None` outside chrono's range.
fn date_of(day: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(Duration::try_days(day)?)
}

/// The partition of `trades` that holds `day`: `trades_pYYYYMMDD`.
pub fn partition_name(day: i64) -> Option<String> {
    date_of(day).map(|d| format!("trades_p{}", d.format("%Y%m%d")))
}

/// The day of a partition name of [`partition_name`]; `None` for any other name.
pub fn day_of_partition(name: &str) -> Option<i64> {
    let date = NaiveDate::parse_from_str(name.strip_prefix("trades_p")?, "%Y%m%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

/// Creates in the database of `to` the day partitions of `trades` that the one of `from` has
/// (a copy of one database's rows into another, e.g. `bench --bulk-reference`); returns how many
/// it created.
pub async fn copy_layout(
    from: &tokio_postgres::Client,
    to: &tokio_postgres::Client,
) -> Result<usize, SinkError> {
    let mut created = 0;
    for (name, _) in partitions(from).await? {
        if let Some(day) = day_of_partition(&name) {
            created += usize::from(ensure_partition(to, day).await?);
        }
    }
    Ok(created)
}

/// The statement that creates the partition of `day` (`[day 00:00 UTC, next day 00:00 UTC)`).
pub fn create_partition_sql(day: i64) -> Option<String> {
    let from = date_of(day)?;
    let to = date_of(day + 1)?;
    Some(format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF trades \
         FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
        partition_name(day)?,
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d"),
    ))
}

/// Creates the partition of `day` unless a partition holds it already; returns whether it
/// created one.
pub async fn ensure_partition(
    client: &tokio_postgres::Client,
    day: i64,
) -> Result<bool, SinkError> {
    let sql = create_partition_sql(day).ok_or_else(|| SinkError::Permanent {
        sink: SINK,
        message: format!("trade time out of range (day {day} since 1970-01-01)"),
    })?;
    let before = partition_exists(client, day).await?;
    if before {
        return Ok(false);
    }
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Another partition covers the day (`trades_legacy`), or another writer created it
        // between our look and our statement (IF NOT EXISTS does not close that race).
        Err(e)
            if e.code() == Some(&SqlState::INVALID_OBJECT_DEFINITION)
                || e.code() == Some(&SqlState::DUPLICATE_TABLE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::postgres::classify(
            &e,
            &format!("create partition of day {day}"),
        )),
    }
}

async fn partition_exists(client: &tokio_postgres::Client, day: i64) -> Result<bool, SinkError> {
    let name = partition_name(day).unwrap_or_default();
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| crate::postgres::classify(&e, "look up partition"))?;
    Ok(row.get(0))
}

/// The partitions of `trades` with the end of their range (exclusive), oldest first.
pub async fn partitions(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, DateTime<Utc>)>, SinkError> {
    let rows = client
        .query(
            "SELECT c.relname::text,
                    (extract(epoch FROM (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                                      'TO \\(''([^'']+)''\\)'))[1]::timestamptz) * 1000)::int8
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'trades'::regclass
             ORDER BY 2",
            &[],
        )
        .await
        .map_err(|e| crate::postgres::classify(&e, "list partitions"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let end = DateTime::<Utc>::from_timestamp_millis(r.get::<_, Option<i64>>(1)?)?;
            Some((r.get(0), end))
        })
        .collect())
}

/// How `trades` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Day partitions (migration 0014): created and dropped here.
    Partitioned,
    /// A TimescaleDB hypertable (`migrate --timescaledb`): chunks are the extension's, the
    /// retention drops them with `drop_chunks`.
    Hypertable,
    /// One plain table (a schema before 0014): nothing to create, no retention.
    Plain,
}

/// The layout of `trades`.
pub async fn layout(client: &tokio_postgres::Client) -> Result<Layout, SinkError> {
    let row = client
        .query_one(
            "SELECT c.relkind::text, to_regclass('timescaledb_information.hypertables') IS NOT NULL
             FROM pg_class c WHERE c.oid = 'trades'::regclass",
            &[],
        )
        .await
        .map_err(|e| crate::postgres::classify(&e, "read the layout of trades"))?;
    let (kind, timescale): (String, bool) = (row.get(0), row.get(1));
    if kind == "p" {
        return Ok(Layout::Partitioned);
    }
    if timescale {
        let hyper: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                                WHERE hypertable_name = 'trades')",
                &[],
            )
            .await
            .map_err(|e| crate::postgres::classify(&e, "read hypertables"))?
            .get(0);
        if hyper {
            return Ok(Layout::Hypertable);
        }
    }
    Ok(Layout::Plain)
}

/// The optional TimescaleDB layout (`sql/postgres/optional/timescaledb.sql`).
pub const TIMESCALEDB_SQL: &str = include_str!("../../sql/postgres/optional/timescaledb.sql");

/// Turns `trades` into a compressed TimescaleDB hypertable ([`TIMESCALEDB_SQL`], one
/// transaction) when the server has the extension; returns whether it did (false: it is one
/// already). Untested here: no TimescaleDB package exists for the test server.
pub async fn to_hypertable(client: &mut tokio_postgres::Client) -> Result<bool, SinkError> {
    let available: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
            &[],
        )
        .await
        .map_err(|e| crate::postgres::classify(&e, "look up timescaledb"))?
        .get(0);
    if !available {
        return Err(SinkError::Permanent {
            sink: SINK,
            message: "the server has no TimescaleDB extension (pg_available_extensions): install it and add it to shared_preload_libraries, or migrate without \
                      --timescaledb (the day partitions)"
                .into(),
        });
    }
    if layout(client).await? == Layout::Hypertable {
        return Ok(false);
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| crate::postgres::classify(&e, "begin"))?;
    tx.batch_execute(TIMESCALEDB_SQL)
        .await
        .map_err(|e| crate::postgres::classify(&e, "timescaledb layout"))?;
    tx.commit()
        .await
        .map_err(|e| crate::postgres::classify(&e, "commit timescaledb layout"))?;
    Ok(true)
}

/// The retention settings of [`maintain`] (from `[sinks.postgres]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days of trades kept (a partition goes once its whole day is older); 0 keeps every day.
    pub retention_days: u32,
    /// Days of partitions created ahead of today.
    pub partition_ahead: u32,
    /// Days of candles kept (by `open_time`); 0 keeps every candle.
    pub candle_retention_days: u32,
}

/// What one [`maintain`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions created (today and ahead).
    pub created: Vec<String>,
    /// Partitions dropped (past the retention).
    pub dropped: Vec<String>,
    /// Candles deleted (past the candle retention).
    pub candles_deleted: u64,
}

/// One maintenance pass at `now`: the partitions of today and `partition_ahead` days ahead, the
/// partitions whose range ended before `now − retention_days` dropped, the candles that opened
/// before `now − candle_retention_days` deleted.
pub async fn maintain(
    client: &tokio_postgres::Client,
    r: Retention,
    now: DateTime<Utc>,
) -> Result<Maintained, SinkError> {
    let mut done = Maintained::default();
    let layout = layout(client).await?;
    if layout == Layout::Hypertable && r.retention_days > 0 {
        let horizon = now - Duration::days(i64::from(r.retention_days));
        let rows = client
            .query(
                "SELECT c::text FROM drop_chunks('trades',
                     older_than => 'epoch'::timestamptz + $1::int8 * interval '1 millisecond') c",
                &[&horizon.timestamp_millis()],
            )
            .await
            .map_err(|e| crate::postgres::classify(&e, "drop_chunks"))?;
        done.dropped = rows.iter().map(|r| r.get(0)).collect();
    }
    if layout != Layout::Partitioned {
        return delete_candles(client, r, now, done).await;
    }
    let today = day_of(now.timestamp_millis());
    for day in today..=today + i64::from(r.partition_ahead) {
        if ensure_partition(client, day).await? {
            done.created.extend(partition_name(day));
        }
    }
    if r.retention_days > 0 {
        let horizon = now - Duration::days(i64::from(r.retention_days));
        for (name, end) in partitions(client).await? {
            if end <= horizon {
                // Not `trades` itself nor anything but its partitions (the name came from the
                // catalogue's list of them).
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS \"{name}\""))
                    .await
                    .map_err(|e| crate::postgres::classify(&e, &format!("drop {name}")))?;
                done.dropped.push(name);
            }
        }
    }
    delete_candles(client, r, now, done).await
}

async fn delete_candles(
    client: &tokio_postgres::Client,
    r: Retention,
    now: DateTime<Utc>,
    mut done: Maintained,
) -> Result<Maintained, SinkError> {
    if r.candle_retention_days > 0 {
        let horizon = now - Duration::days(i64::from(r.candle_retention_days));
        done.candles_deleted = client
            .execute(
                "DELETE FROM candles
                 WHERE open_time < 'epoch'::timestamptz + $1::int8 * interval '1 millisecond'",
                &[&horizon.timestamp_millis()],
            )
            .await
            .map_err(|e| crate::postgres::classify(&e, "delete old candles"))?;
    }
    Ok(done)
}

/// The days whose partitions this process knows exist, shared by a sink's forks: a flush asks
/// for the partitions of its trades' days only the first time it meets a day.
#[derive(Debug, Clone, Default)]
pub struct PartitionCache {
    known: Arc<Mutex<HashSet<i64>>>,
}

impl PartitionCache {
    /// The days of `times` (ms) not known yet, each once, in order.
    pub fn missing(&self, times: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut days: Vec<i64> = times
            .into_iter()
            .map(day_of)
            .filter(|d| !known.contains(d))
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Notes that `day` has its partition.
    pub fn add(&self, day: i64) {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(day);
    }

    /// Forgets every day (a partition was dropped under us: ask again).
    pub fn clear(&self) {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_names() {
        // 2025-01-01T00:00:00Z = 1735689600 s (date -u -d 2025-01-01 +%s).
        let jan1 = 1_735_689_600_000;
        assert_eq!(day_of(jan1), 20089);
        assert_eq!(day_of(jan1 - 1), 20088);
        assert_eq!(day_of(-1), -1);
        assert_eq!(partition_name(20089).as_deref(), Some("trades_p20250101"));
        assert_eq!(partition_name(20088).as_deref(), Some("trades_p20241231"));
        assert_eq!(
            create_partition_sql(20088).as_deref(),
            Some(
                "CREATE TABLE IF NOT EXISTS trades_p20241231 PARTITION OF trades FOR VALUES \
                 FROM ('2024-12-31 00:00:00+00') TO ('2025-01-01 00:00:00+00')"
            )
        );
        assert_eq!(partition_name(i64::MAX), None);
        assert_eq!(day_of_partition("trades_p20250101"), Some(20089));
        assert_eq!(day_of_partition("trades_p19691231"), Some(-1));
        assert_eq!(day_of_partition("trades_legacy"), None);
        assert_eq!(day_of_partition("trades_p20251341"), None);
    }

    #[test]
    fn the_cache_asks_once_per_day() {
        let c = PartitionCache::default();
        let jan1 = 1_735_689_600_000;
        assert_eq!(
            c.missing([jan1 + 5, jan1 - 5, jan1 + 10, jan1 + DAY_MS]),
            vec![20088, 20089, 20090]
        );
        c.add(20089);
        assert_eq!(c.missing([jan1, jan1 - 5]), vec![20088]);
        c.clear();
        assert_eq!(c.missing([jan1]), vec![20089]);
    }
}
