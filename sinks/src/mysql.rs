//! MySQL / MariaDB sink and migration runner: the same tables as PostgreSQL (`sql/mysql/`),
//! described in [`crate::sql::tables`] and rendered by [`crate::sql::mysql`].
//!
//! Each flush is one transaction. Trades: per symbol, the ids of the batch that already exist are
//! read `FOR UPDATE` (which also locks the id range against a parallel flush), the new ones are
//! written with batched multi-row `INSERT … ON DUPLICATE KEY UPDATE`, and `trade_aggregates` grows
//! by exactly those new trades — so replays and redeliveries never double count. Candles are
//! upserted with the same rule as PostgreSQL: a final row wins, a forming row only replaces a
//! forming row with no more trades than itself. Every other table is written with multi-row
//! inserts under its conflict rule: once per key (gaps, data-quality snapshots, polled items,
//! indicators, sentiment, features; an open refill marker is replaced by its final row), or
//! upserted (sentiment windows). Sessions run in UTC.

use std::collections::{BTreeMap, BTreeSet};

use cryptoflow_operators::dataflow::EnrichedTrade;
use cryptoflow_operators::model::{Symbol, Venue};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, TxOpts};
use rust_decimal::Decimal;

use crate::sql::mysql as dialect;
use crate::sql::tables::{self, TradeAggregate};
use crate::sql::Table;
use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::{latest_candles, Output};

const SINK: &str = "mysql";

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("../../sql/mysql/0001_core.sql")),
    (
        2,
        "gaps_quality",
        include_str!("../../sql/mysql/0002_gaps_quality.sql"),
    ),
    (3, "polled", include_str!("../../sql/mysql/0003_polled.sql")),
    (
        4,
        "analytics",
        include_str!("../../sql/mysql/0004_analytics.sql"),
    ),
    (
        5,
        "sentiment_windows",
        include_str!("../../sql/mysql/0005_sentiment_windows.sql"),
    ),
    (
        6,
        "money_scale",
        include_str!("../../sql/mysql/0006_money_scale.sql"),
    ),
    (
        7,
        "polled_exact",
        include_str!("../../sql/mysql/0007_polled_exact.sql"),
    ),
    (8, "venues", include_str!("../../sql/mysql/0008_venues.sql")),
];

/// The views, applied in order after the migrations by every [`migrate`]: (file name, SQL).
/// Each file is `NN_<view>.sql` and holds one `CREATE OR REPLACE VIEW <view>`.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "01_whale_trades.sql",
        include_str!("../../sql/mysql/views/01_whale_trades.sql"),
    ),
    (
        "02_latest_prices.sql",
        include_str!("../../sql/mysql/views/02_latest_prices.sql"),
    ),
    (
        "03_open_gaps.sql",
        include_str!("../../sql/mysql/views/03_open_gaps.sql"),
    ),
    (
        "04_data_quality_latest.sql",
        include_str!("../../sql/mysql/views/04_data_quality_latest.sql"),
    ),
    (
        "05_sentiment_coin_rolling.sql",
        include_str!("../../sql/mysql/views/05_sentiment_coin_rolling.sql"),
    ),
];

/// Classifies a driver error.
pub fn classify(e: &mysql_async::Error, context: &str) -> SinkError {
    match e {
        mysql_async::Error::Server(s) => {
            // Deadlock, lock wait timeout, too many connections, shutdown, connection killed.
            let transient = matches!(
                s.code,
                1205 | 1213 | 1040 | 1053 | 1927 | 2006 | 2013 | 4031
            );
            let hint = match s.code {
                1146 | 1054 => " (is the schema migrated? run `cryptoflow migrate --mysql URL`)",
                // ER_BAD_DB_ERROR: unknown database.
                1049 => {
                    " (create the database first, e.g. `CREATE DATABASE name;`, or point \
                     sinks.mysql.url / --mysql at an existing one; `cryptoflow migrate` then \
                     creates the tables)"
                }
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR.
                1045 | 1044 => {
                    " (check the user and password in the URL, set through \
                     CRYPTOFLOW__SINKS__MYSQL__URL, and the user's grants)"
                }
                _ => "",
            };
            let message = format!("{context}: {} [error {}]{hint}", s.message, s.code);
            if transient {
                SinkError::Transient {
                    sink: SINK,
                    message,
                }
            } else {
                SinkError::Permanent {
                    sink: SINK,
                    message,
                }
            }
        }
        mysql_async::Error::Url(u) => SinkError::Permanent {
            sink: SINK,
            message: format!("invalid MySQL URL: {u}"),
        },
        other => SinkError::Transient {
            sink: SINK,
            message: format!("{context}: {other}"),
        },
    }
}

/// Connection options from a URL (`mysql://user:pass@host:port/db`), sessions in UTC.
pub fn opts(url: &str) -> Result<Opts, SinkError> {
    let base = Opts::from_url(url).map_err(|e| SinkError::Permanent {
        sink: SINK,
        message: format!("invalid MySQL URL: {e}"),
    })?;
    Ok(OptsBuilder::from_opts(base)
        .init(vec!["SET time_zone = '+00:00'"])
        .into())
}

fn statements(sql: &str) -> Vec<String> {
    let no_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    no_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Applies pending migrations, then (re-)applies every view; returns the versions applied now
/// (idempotent; a named lock serializes concurrent migrators).
pub async fn migrate(url: &str) -> Result<Vec<i32>, SinkError> {
    let pool = Pool::new(opts(url)?);
    let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
    let ctx = |what: &'static str| move |e: mysql_async::Error| classify(&e, what);
    conn.query_drop("SELECT GET_LOCK('cryptoflow_migrate', 60)")
        .await
        .map_err(ctx("lock"))?;
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INT PRIMARY KEY, name VARCHAR(100) NOT NULL, applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))",
    )
    .await
    .map_err(ctx("migrations table"))?;
    // A table made before checksums were recorded gets the column (MySQL 8 has no
    // `ADD COLUMN IF NOT EXISTS`).
    let has_checksum: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = 'schema_migrations' AND column_name = 'checksum'",
        )
        .await
        .map_err(ctx("migrations table"))?;
    if has_checksum.unwrap_or(0) == 0 {
        conn.query_drop("ALTER TABLE schema_migrations ADD COLUMN checksum CHAR(64) NULL")
            .await
            .map_err(ctx("migrations table"))?;
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let recorded: Option<Option<String>> = conn
            .exec_first(
                "SELECT checksum FROM schema_migrations WHERE version = ?",
                (*version,),
            )
            .await
            .map_err(ctx("read migrations"))?;
        let sum = crate::migrations::checksum(sql);
        match crate::migrations::check("mysql", "mysql", (*version, *name, *sql), recorded)? {
            crate::migrations::Check::Same => continue,
            crate::migrations::Check::Record => {
                conn.exec_drop(
                    "UPDATE schema_migrations SET checksum = ? WHERE version = ?",
                    (&sum, *version),
                )
                .await
                .map_err(ctx("record migration checksum"))?;
                continue;
            }
            crate::migrations::Check::Apply => {}
        }
        // DDL commits implicitly in MySQL; every statement is idempotent (IF NOT EXISTS / OR REPLACE).
        for stmt in statements(sql) {
            conn.query_drop(stmt)
                .await
                .map_err(|e| classify(&e, &format!("migration {version} ({name})")))?;
        }
        conn.exec_drop(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)",
            (*version, *name, &sum),
        )
        .await
        .map_err(ctx("record migration"))?;
        applied.push(*version);
    }
    // Every view, every time, in file order (MySQL's CREATE OR REPLACE VIEW takes any columns).
    for (file, sql) in VIEWS {
        for stmt in statements(sql) {
            conn.query_drop(stmt)
                .await
                .map_err(|e| classify(&e, &format!("view {file}")))?;
        }
    }
    conn.query_drop("SELECT RELEASE_LOCK('cryptoflow_migrate')")
        .await
        .map_err(ctx("unlock"))?;
    drop(conn);
    let _ = pool.disconnect().await;
    Ok(applied)
}

/// `[sinks.mysql]`: settings of the MySQL / MariaDB sink.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlConfig {
    /// URL ("" disables).
    pub url: String,
    /// Flushes in flight at once.
    pub parallel_flushes: usize,
}

impl crate::task::SinkSpec for MySqlConfig {
    type Sink = MySqlSink;
    fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
    fn parallelism(&self) -> usize {
        self.parallel_flushes
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<MySqlSink, SinkError> {
        MySqlSink::connect(&self.url).await
    }
}

/// The MySQL / MariaDB sink.
pub struct MySqlSink {
    pool: Pool,
}

impl MySqlSink {
    /// Builds the pool and checks that the schema is there.
    pub async fn connect(url: &str) -> Result<Self, SinkError> {
        let pool = Pool::new(opts(url)?);
        let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
        // Every table but the ones only PostgreSQL keeps (stream cursors, signals).
        let names: Vec<&str> = mysql_tables().collect();
        conn.query_drop(format!("SELECT 1 FROM {} LIMIT 0", names.join(", ")))
            .await
            .map_err(|e| classify(&e, "schema check"))?;
        Ok(MySqlSink { pool })
    }
}

/// Writes `items` into `table`: multi-row inserts of [`dialect::CHUNK`] rows.
async fn write_table<T: Sync + ?Sized>(
    tx: &mut mysql_async::Transaction<'_>,
    table: &Table<T>,
    items: &[&T],
) -> Result<(), SinkError> {
    if items.is_empty() {
        return Ok(());
    }
    let name = table.schema.name;
    let rows = table.rows_for(SINK, items)?;
    for (sql, params) in dialect::inserts(&table.schema, &rows) {
        tx.exec_drop(sql, params)
            .await
            .map_err(|e| classify(&e, &format!("write {name}")))?;
    }
    Ok(())
}

impl Sink for MySqlSink {
    fn name(&self) -> &'static str {
        SINK
    }

    /// Every kind but the strategy signals, which only PostgreSQL stores.
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        use cryptoflow_operators::model::{OutputKind, OutputKinds};
        OutputKinds::ALL.without(OutputKind::Signal)
    }

    /// Flushes commute (see the module doc), so they may run in parallel.
    fn fork(&self) -> Option<Self> {
        Some(MySqlSink {
            pool: self.pool.clone(),
        })
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let mut b = tables::Batch::default();
        for r in records {
            b.add(r);
        }
        let candles = latest_candles(records);
        if b.is_empty() && candles.is_empty() {
            return Ok(());
        }
        let mut trades: BTreeMap<(Venue, Symbol), Vec<&EnrichedTrade>> = BTreeMap::new();
        for e in &b.trades {
            trades
                .entry((e.trade.venue, e.trade.symbol))
                .or_default()
                .push(e);
        }
        let mut tx = self
            .pool
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| classify(&e, "begin"))?;
        for ((venue, symbol), mut batch) in trades {
            batch.sort_by_key(|e| e.trade.trade_id);
            batch.dedup_by_key(|e| e.trade.trade_id);
            let (lo, hi) = (
                batch[0].trade.trade_id,
                batch[batch.len() - 1].trade.trade_id,
            );
            let existing: BTreeSet<u64> = tx
                .exec::<u64, _, _>(
                    "SELECT trade_id FROM trades WHERE venue = ? AND symbol = ? AND trade_id BETWEEN ? AND ? FOR UPDATE",
                    (venue.as_str(), symbol.as_str(), lo, hi),
                )
                .await
                .map_err(|e| classify(&e, "read existing trades"))?
                .into_iter()
                .collect();
            let new: Vec<&EnrichedTrade> = batch
                .into_iter()
                .filter(|e| !existing.contains(&e.trade.trade_id))
                .collect();
            let Some(last) = new.last() else {
                continue;
            };
            write_table(&mut tx, &tables::TRADES, &new).await?;
            let id = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let aggregate = TradeAggregate {
                venue,
                symbol,
                moving_average: last.moving_average,
                trade_count: id(new.len() as u64),
                total_volume: new.iter().map(|e| e.trade.qty).sum(),
                total_quote_volume: new
                    .iter()
                    .map(|e| e.trade.price * e.trade.qty)
                    .sum::<Decimal>(),
                last_trade_id: id(last.trade.trade_id),
                last_price: last.trade.price,
                updated_at: new
                    .iter()
                    .map(|e| e.trade.ts_exchange)
                    .max()
                    .unwrap_or(last.trade.ts_exchange),
            };
            write_table(&mut tx, &tables::TRADE_AGGREGATES, &[&aggregate]).await?;
        }
        write_table(&mut tx, &tables::CANDLES, &candles).await?;
        write_table(&mut tx, &tables::GAPS, &b.gaps).await?;
        write_table(&mut tx, &tables::DATA_QUALITY, &b.quality).await?;
        write_table(&mut tx, &tables::INDICATORS, &b.indicators).await?;
        write_table(&mut tx, &tables::ML_FEATURES, &b.features).await?;
        write_table(&mut tx, &tables::SENTIMENT, &b.sentiment).await?;
        // In order: a window's later value replaces its earlier one, never a larger count.
        write_table(&mut tx, &tables::SENTIMENT_COIN_WINDOWS, &b.windows).await?;
        write_table(&mut tx, &tables::COINGECKO_DATA, &b.markets).await?;
        write_table(&mut tx, &tables::NEWS, &b.news).await?;
        write_table(&mut tx, &tables::SOCIAL_POSTS, &b.social).await?;
        write_table(&mut tx, &tables::MACRO_OBSERVATIONS, &b.macros).await?;
        write_table(&mut tx, &tables::FUND_NAVS, &b.funds).await?;
        tx.commit().await.map_err(|e| classify(&e, "commit"))
    }
}

/// Runs `sql` once on the server of `server_url`.
async fn on_server(server_url: &str, sql: &[String]) -> Result<(), SinkError> {
    let pool = Pool::new(opts(server_url)?);
    let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
    for q in sql {
        conn.query_drop(q).await.map_err(|e| classify(&e, q))?;
    }
    drop(conn);
    let _ = pool.disconnect().await;
    Ok(())
}

/// Drops the database `name` (if any) on the server of `server_url` and creates it empty;
/// returns its URL. For `cryptoflow bench --bulk-reference`.
pub async fn recreate_database(server_url: &str, name: &str) -> Result<String, SinkError> {
    crate::sql::check_database_name(SINK, name)?;
    on_server(
        server_url,
        &[
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ],
    )
    .await?;
    Ok(crate::sql::with_database(server_url, name))
}

/// Drops the database `name` (if any) on the server of `server_url`.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), SinkError> {
    crate::sql::check_database_name(SINK, name)?;
    on_server(server_url, &[format!("DROP DATABASE IF EXISTS {name}")]).await
}

/// The tables of [`tables::ALL`] MySQL has (all but [`tables::POSTGRES_ONLY`]).
fn mysql_tables() -> impl Iterator<Item = &'static str> {
    tables::ALL
        .iter()
        .map(|s| s.name)
        .filter(|n| !tables::POSTGRES_ONLY.contains(n))
}

/// Appends `v` as one field of `LOAD DATA`'s default format (tab-separated, `\` escapes,
/// `\N` for NULL). Values come from the text protocol, so as their text.
fn push_field(out: &mut bytes::BytesMut, v: &mysql_async::Value) -> Result<(), SinkError> {
    use mysql_async::Value;
    match v {
        Value::NULL => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => {
            for &c in b {
                match c {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0 => out.extend_from_slice(b"\\0"),
                    c => out.extend_from_slice(&[c]),
                }
            }
        }
        other => {
            return Err(SinkError::Permanent {
                sink: SINK,
                message: format!("dump: a text-protocol value was {other:?}"),
            })
        }
    }
    Ok(())
}

/// Every non-empty table a sink writes, read back whole (`SELECT *`, every column, defaults
/// such as `inserted_at` included) as `LOAD DATA`'s default tab-separated text.
pub async fn dump_tables(url: &str) -> Result<Vec<crate::sql::TableDump>, SinkError> {
    let pool = Pool::new(opts(url)?);
    let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
    let mut out = Vec::new();
    for table in mysql_tables() {
        let what = format!("SELECT * FROM `{table}`");
        let mut result = conn
            .query_iter(what.as_str())
            .await
            .map_err(|e| classify(&e, &what))?;
        let mut dump = crate::sql::DumpBuilder::default();
        let mut failure = None;
        result
            .for_each(|row| {
                if failure.is_some() {
                    return;
                }
                let buf = dump.buf();
                for i in 0..row.len() {
                    if i > 0 {
                        buf.extend_from_slice(b"\t");
                    }
                    let v = row.as_ref(i).unwrap_or(&mysql_async::Value::NULL);
                    if let Err(e) = push_field(buf, v) {
                        failure = Some(e);
                        return;
                    }
                }
                buf.extend_from_slice(b"\n");
                dump.end_line();
            })
            .await
            .map_err(|e| classify(&e, &what))?;
        if let Some(e) = failure {
            return Err(e);
        }
        let dump = dump.finish(table);
        if dump.rows > 0 {
            out.push(dump);
        }
    }
    drop(conn);
    let _ = pool.disconnect().await;
    Ok(out)
}

/// The error when the server refuses `LOAD DATA LOCAL INFILE`.
fn local_infile_off(detail: &str) -> SinkError {
    SinkError::Permanent {
        sink: SINK,
        message: format!(
            "the server does not allow LOAD DATA LOCAL INFILE ({detail}): start it with \
             --local-infile=1 (MariaDB's default) or run `SET GLOBAL local_infile = 1` as an \
             administrator"
        ),
    }
}

/// Loads `dumps` into the (migrated, empty) database at `url` with the server's own bulk path:
/// one transaction, one `LOAD DATA LOCAL INFILE` per table. Returns the time from
/// `START TRANSACTION` to the end of `COMMIT` (the connection is opened, and the server's
/// `local_infile` setting checked, before). Fails when the server refuses local infiles, and
/// when a load warns (a value the table did not take as it was).
pub async fn load_data(
    url: &str,
    dumps: &[crate::sql::TableDump],
) -> Result<std::time::Duration, SinkError> {
    use futures_util::StreamExt;
    let pool = Pool::new(opts(url)?);
    let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
    let on: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.local_infile")
        .await
        .map_err(|e| classify(&e, "read local_infile"))?;
    if on != Some(1) {
        return Err(local_infile_off("local_infile is OFF"));
    }
    let mut warned = Vec::new();
    let started = std::time::Instant::now();
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| classify(&e, "begin"))?;
    for d in dumps {
        let data = d.data.clone();
        conn.set_infile_handler(async move {
            Ok(futures_util::stream::iter(data.into_iter().map(Ok)).boxed())
        });
        let what = format!("LOAD DATA LOCAL INFILE into {}", d.table);
        conn.query_drop(format!(
            "LOAD DATA LOCAL INFILE 'cryptoflow-{t}.tsv' INTO TABLE `{t}` CHARACTER SET utf8mb4",
            t = d.table
        ))
        .await
        .map_err(|e| match &e {
            mysql_async::Error::Server(s) if matches!(s.code, 1148 | 3948 | 4166) => {
                local_infile_off(&s.message)
            }
            _ => classify(&e, &what),
        })?;
        let n = conn.affected_rows();
        if n != d.rows {
            return Err(SinkError::Permanent {
                sink: SINK,
                message: format!("{what}: loaded {n} rows of {}", d.rows),
            });
        }
        if conn.get_warnings() > 0 {
            warned.push(d.table);
        }
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| classify(&e, "commit"))?;
    let elapsed = started.elapsed();
    drop(conn);
    let _ = pool.disconnect().await;
    if !warned.is_empty() {
        return Err(SinkError::Permanent {
            sink: SINK,
            message: format!(
                "LOAD DATA warned on {}: a value was not taken as it was",
                warned.join(", ")
            ),
        });
    }
    Ok(elapsed)
}

/// Row count and digest (`CHECKSUM TABLE … EXTENDED`) of every table a sink writes.
pub async fn table_digests(url: &str) -> Result<Vec<crate::sql::TableDigest>, SinkError> {
    let pool = Pool::new(opts(url)?);
    let mut conn = pool.get_conn().await.map_err(|e| classify(&e, "connect"))?;
    let mut out = Vec::new();
    for table in mysql_tables() {
        let rows: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM `{table}`"))
            .await
            .map_err(|e| classify(&e, &format!("count {table}")))?;
        let sum: Option<(String, Option<u64>)> = conn
            .query_first(format!("CHECKSUM TABLE `{table}` EXTENDED"))
            .await
            .map_err(|e| classify(&e, &format!("checksum {table}")))?;
        out.push(crate::sql::TableDigest {
            table,
            rows: rows.unwrap_or(0),
            digest: sum
                .and_then(|(_, c)| c)
                .map_or_else(|| "NULL".into(), |c| c.to_string()),
        });
    }
    drop(conn);
    let _ = pool.disconnect().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_statements() {
        let s = statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE VIEW v AS SELECT 1;\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x INT)", "CREATE VIEW v AS SELECT 1"]
        );
        // Tables only: the views are in views/.
        assert_eq!(statements(MIGRATIONS[0].2).len(), 3);
        assert_eq!(statements(MIGRATIONS[1].2).len(), 2);
        assert!(statements(MIGRATIONS[7].2).is_empty());
    }

    /// Every file of `sql/mysql/views/` is applied, and creates the view it is named after.
    #[test]
    fn views_are_listed_and_named() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/mysql/views");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("views dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<&str> = VIEWS.iter().map(|(f, _)| *f).collect();
        assert_eq!(files, listed);
        for (file, sql) in VIEWS {
            let name = crate::postgres::view_name(file);
            assert_eq!(statements(sql).len(), 1, "{file}");
            assert!(
                sql.contains(&format!("CREATE OR REPLACE VIEW {name} AS")),
                "{file}"
            );
        }
        for (_, name, sql) in MIGRATIONS {
            assert!(
                !sql.contains("CREATE OR REPLACE VIEW"),
                "{name}: views live in views/"
            );
        }
    }
}
