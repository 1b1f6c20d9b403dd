//! PostgreSQL sink, migration runner and the resume / restore reads ([`PostgresState`]).
//!
//! The tables are described in [`crate::sql::tables`] and rendered by [`crate::sql::postgres`].
//! Each flush is one transaction:
//! - trades go in through one `UNNEST` statement, `ON CONFLICT (venue, symbol, trade_id,
//!   ts_exchange) DO NOTHING` (the key of the partitioned table, [`crate::partitions`]), after
//!   the partitions of their days are created, whose `RETURNING` rows (the trades that were really new) update
//!   `trade_aggregates` in the same statement, so counters never double count on redelivery;
//!   the same statement without the conflict clause runs first, in a savepoint (a plain insert
//!   costs the server about two thirds of a speculative one per row), and the conflict-handling
//!   one only when a trade of the flush is stored already;
//! - candle updates are deduplicated per key (last wins) and upserted; a forming update never
//!   overwrites a final candle, and a final one replaces a final one only with at least as many
//!   trades (a restart that re-reads the tail of a closed window cannot shrink it);
//! - every other table gets one `UNNEST` statement per flush, or one prepared single-row insert
//!   per row for the tables with `TEXT[]` columns (news, posts, sentiment); polled items go in
//!   once per natural key (`ON CONFLICT DO NOTHING`).
//!
//! Connection and server-state errors are transient (retried by the sink task); data and schema
//! errors are permanent and say what to fix.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::partitions::{self, PartitionCache};
use crate::sql::postgres as dialect;
use crate::sql::tables;
use crate::sql::Table;
use crate::state::{ResumePoint, StateStore};
use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::{latest_candles, Output};
use cryptoflow_operators::sentiment::SentimentRow;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("../../sql/postgres/0001_core.sql")),
    (2, "gaps", include_str!("../../sql/postgres/0002_gaps.sql")),
    (
        3,
        "source_offsets",
        include_str!("../../sql/postgres/0003_source_offsets.sql"),
    ),
    (
        4,
        "data_quality",
        include_str!("../../sql/postgres/0004_data_quality.sql"),
    ),
    (
        5,
        "polled",
        include_str!("../../sql/postgres/0005_polled.sql"),
    ),
    (
        6,
        "analytics",
        include_str!("../../sql/postgres/0006_analytics.sql"),
    ),
    (
        7,
        "sentiment_windows",
        include_str!("../../sql/postgres/0007_sentiment_windows.sql"),
    ),
    (
        8,
        "polled_exact",
        include_str!("../../sql/postgres/0008_polled_exact.sql"),
    ),
    (
        9,
        "venues",
        include_str!("../../sql/postgres/0009_venues.sql"),
    ),
    (
        10,
        "serving",
        include_str!("../../sql/postgres/0010_serving.sql"),
    ),
    (
        11,
        "executor",
        include_str!("../../sql/postgres/0011_executor.sql"),
    ),
    (
        12,
        "signals",
        include_str!("../../sql/postgres/0012_signals.sql"),
    ),
    (
        13,
        "text_orders",
        include_str!("../../sql/postgres/0013_text_orders.sql"),
    ),
    (
        14,
        "partitioned_trades",
        include_str!("../../sql/postgres/0014_partitioned_trades.sql"),
    ),
];
/// The views, applied in order after the migrations by every [`migrate`]: (file name, SQL).
/// Each file is `NN_<view>.sql` and holds one `CREATE OR REPLACE VIEW <view>`.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "01_whale_trades.sql",
        include_str!("../../sql/postgres/views/01_whale_trades.sql"),
    ),
    (
        "02_latest_prices.sql",
        include_str!("../../sql/postgres/views/02_latest_prices.sql"),
    ),
    (
        "03_open_gaps.sql",
        include_str!("../../sql/postgres/views/03_open_gaps.sql"),
    ),
    (
        "04_data_quality_latest.sql",
        include_str!("../../sql/postgres/views/04_data_quality_latest.sql"),
    ),
    (
        "05_coingecko_latest.sql",
        include_str!("../../sql/postgres/views/05_coingecko_latest.sql"),
    ),
    (
        "06_macro_latest.sql",
        include_str!("../../sql/postgres/views/06_macro_latest.sql"),
    ),
    (
        "07_sentiment_coin_rolling.sql",
        include_str!("../../sql/postgres/views/07_sentiment_coin_rolling.sql"),
    ),
    (
        "08_sentiment_coin_windows_now.sql",
        include_str!("../../sql/postgres/views/08_sentiment_coin_windows_now.sql"),
    ),
    (
        "09_latest_indicators.sql",
        include_str!("../../sql/postgres/views/09_latest_indicators.sql"),
    ),
    (
        "10_crypto_combined_data.sql",
        include_str!("../../sql/postgres/views/10_crypto_combined_data.sql"),
    ),
    (
        "11_ml_features_wide.sql",
        include_str!("../../sql/postgres/views/11_ml_features_wide.sql"),
    ),
];

/// The text of `views/11_ml_features_wide.sql`: one `DOUBLE PRECISION` column per feature of the
/// catalogue, in its order, read out of the `features` JSON (a test keeps the file equal to it).
pub fn ml_features_wide_view() -> String {
    let mut sql = String::from(
        "-- Generated from the feature catalogue (docs/FEATURES.md); a test keeps it equal to\n\
         -- cryptoflow_sinks::postgres::ml_features_wide_view(). One column per feature.\n\
         CREATE OR REPLACE VIEW ml_features_wide AS\n    SELECT venue, symbol, interval, open_time, close_time",
    );
    for f in cryptoflow_operators::features::CATALOGUE {
        sql.push_str(&format!(
            ",\n           (features ->> '{0}')::double precision AS \"{0}\"",
            f.name
        ));
    }
    sql.push_str(
        "\n    FROM ml_features;\n\
         COMMENT ON VIEW ml_features_wide IS\n    \
         'The ML feature vectors with one column per feature (NULL while a feature warms up).';\n",
    );
    sql
}

/// The view a file of [`VIEWS`] creates: its name without the `NN_` prefix and `.sql`.
pub fn view_name(file: &str) -> &str {
    let stem = file.strip_suffix(".sql").unwrap_or(file);
    stem.split_once('_').map_or(stem, |(_, name)| name)
}

const SINK: &str = "postgres";

/// Classifies a driver error.
pub fn classify(e: &tokio_postgres::Error, context: &str) -> SinkError {
    match e.code() {
        Some(code) => {
            let c = code.code();
            let transient = c.starts_with("08") // connection exception
                || c.starts_with("53") // insufficient resources
                || c.starts_with("57") // operator intervention (admin shutdown, cannot connect now)
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE;
            let hint = if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN
            {
                " (is the schema migrated? run `cryptoflow migrate --postgres URL`)"
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                " (create the database first, e.g. `createdb NAME` or `CREATE DATABASE NAME;` as a \
                 user allowed to, or point sinks.postgres.url / --postgres at an existing one; \
                 `cryptoflow migrate` then creates the tables)"
            } else if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                " (check the user and password in the URL, set through \
                 CRYPTOFLOW__SINKS__POSTGRES__URL, and the server's pg_hba.conf)"
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                " (grant the user the privilege, or connect as one that has it)"
            } else {
                ""
            };
            // The server's own words (e.g. `database "x" does not exist`), not just "db error".
            let detail = match e.as_db_error() {
                Some(db) => {
                    let mut m = db.message().to_string();
                    if let Some(d) = db.detail() {
                        m.push_str(&format!("; {d}"));
                    }
                    if let Some(h) = db.hint() {
                        m.push_str(&format!("; hint: {h}"));
                    }
                    m
                }
                None => e.to_string(),
            };
            let message = format!("{context}: {detail} [SQLSTATE {c}]{hint}");
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
        // No SQLSTATE: I/O, closed connection, timeouts: worth retrying.
        None => SinkError::Transient {
            sink: SINK,
            message: format!("{context}: {e}"),
        },
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> SinkError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(&e, "connect"),
        other => SinkError::Transient {
            sink: SINK,
            message: format!("connection pool: {other}"),
        },
    }
}

/// Parses a connection URL (`postgres://user@host:port/db`), with a 5 s connect timeout.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, SinkError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| SinkError::Permanent {
        sink: SINK,
        message: format!("invalid PostgreSQL URL: {e}"),
    })?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(5));
    }
    cfg.application_name("cryptoflow");
    Ok(cfg)
}

/// One connection outside the sink's pool (migrations, start-up reads), with its driver task;
/// drop the client, then await the task.
async fn connect_once(
    url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), SinkError> {
    let (client, conn) = parse_url(url)?
        .connect(NoTls)
        .await
        .map_err(|e| classify(&e, "connect"))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "Connection ended.");
        }
    });
    Ok((client, driver))
}

/// Applies pending migrations, then (re-)applies every view; returns the versions applied now.
/// Idempotent and safe to run concurrently (an advisory lock serializes migrators). Each applied
/// migration's checksum is recorded; an applied migration whose file changed since is an error
/// naming the file (see [`crate::migrations`]).
pub async fn migrate(url: &str) -> Result<Vec<i32>, SinkError> {
    let (mut client, driver) = connect_once(url).await?;
    let ctx = |what: &'static str| move |e: tokio_postgres::Error| classify(&e, what);
    client
        .batch_execute(
            "SELECT pg_advisory_lock(7231001);
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT",
        )
        .await
        .map_err(ctx("migrations table"))?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(ctx("begin"))?;
        let recorded: Option<Option<String>> = tx
            .query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(ctx("read migrations"))?
            .map(|row| row.get(0));
        let sum = crate::migrations::checksum(sql);
        match crate::migrations::check("postgres", "postgres", (*version, *name, *sql), recorded)? {
            crate::migrations::Check::Apply => {
                tx.batch_execute(sql)
                    .await
                    .map_err(|e| classify(&e, &format!("migration {version} ({name})")))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    &[version, name, &sum],
                )
                .await
                .map_err(ctx("record migration"))?;
                applied.push(*version);
            }
            crate::migrations::Check::Record => {
                tx.execute(
                    "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                    &[version, &sum],
                )
                .await
                .map_err(ctx("record migration checksum"))?;
            }
            crate::migrations::Check::Same => {}
        }
        tx.commit().await.map_err(ctx("commit migration"))?;
    }
    apply_views(&mut client).await?;
    client
        .batch_execute("SELECT pg_advisory_unlock(7231001)")
        .await
        .map_err(ctx("unlock"))?;
    drop(client);
    let _ = driver.await;
    Ok(applied)
}

/// `migrate --timescaledb`: after [`migrate`], `trades` becomes a compressed TimescaleDB
/// hypertable ([`partitions::to_hypertable`]) and the views are applied again; returns whether
/// it converted the table (false: it was one already). Fails clearly when the server has no
/// TimescaleDB. Untested here (no TimescaleDB package for the test server).
pub async fn migrate_timescaledb(url: &str) -> Result<bool, SinkError> {
    let (mut client, driver) = connect_once(url).await?;
    client
        .batch_execute("SELECT pg_advisory_lock(7231001)")
        .await
        .map_err(|e| classify(&e, "lock"))?;
    let converted = partitions::to_hypertable(&mut client).await;
    let views = match &converted {
        Ok(true) => apply_views(&mut client).await,
        _ => Ok(()),
    };
    let unlock = client
        .batch_execute("SELECT pg_advisory_unlock(7231001)")
        .await
        .map_err(|e| classify(&e, "unlock"));
    drop(client);
    let _ = driver.await;
    let converted = converted?;
    views?;
    unlock?;
    Ok(converted)
}

/// Applies every view of [`VIEWS`] in one transaction, in file order (a view after the views it
/// reads). `CREATE OR REPLACE VIEW` cannot drop, rename or retype a view's columns: when a
/// view's columns changed, it is dropped (with the views that read it, re-created after it) and
/// created again.
async fn apply_views(client: &mut tokio_postgres::Client) -> Result<(), SinkError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(&e, "begin views"))?;
    for (file, sql) in VIEWS {
        let name = view_name(file);
        let what = |e: tokio_postgres::Error| classify(&e, &format!("view {file}"));
        tx.batch_execute("SAVEPOINT view").await.map_err(what)?;
        match tx.batch_execute(sql).await {
            Ok(()) => tx
                .batch_execute("RELEASE SAVEPOINT view")
                .await
                .map_err(what)?,
            Err(e) if e.code() == Some(&SqlState::INVALID_TABLE_DEFINITION) => {
                tracing::info!(
                    view = name,
                    "The view's columns changed: dropping it (and the views on it) and creating it again."
                );
                tx.batch_execute(&format!(
                    "ROLLBACK TO SAVEPOINT view; DROP VIEW IF EXISTS {name} CASCADE"
                ))
                .await
                .map_err(what)?;
                tx.batch_execute(sql).await.map_err(what)?;
            }
            Err(e) => return Err(what(e)),
        }
    }
    tx.commit().await.map_err(|e| classify(&e, "commit views"))
}

/// The resume and restore reads of a PostgreSQL database ([`StateStore`]).
#[derive(Debug, Clone)]
pub struct PostgresState {
    url: String,
}

impl PostgresState {
    /// The store at `url` (each read opens its own connection).
    pub fn new(url: &str) -> Self {
        PostgresState {
            url: url.to_string(),
        }
    }
}

/// Where each live stream should resume, as (venue, symbol, kind, last id):
/// [`StateStore::resume_points`] of [`PostgresState`].
pub async fn resume_points(
    url: &str,
    window: u64,
) -> Result<Vec<(String, String, String, u64)>, SinkError> {
    Ok(PostgresState::new(url)
        .resume_points(window)
        .await?
        .into_iter()
        .map(|p| (p.venue, p.symbol, p.kind, p.last_id))
        .collect())
}

/// The context a restarted pipeline needs: [`StateStore::restore_context`] of
/// [`PostgresState`].
pub async fn restore_context(
    url: &str,
    model: &str,
    retain_ms: i64,
) -> Result<Vec<cryptoflow_operators::features::ContextItem>, SinkError> {
    PostgresState::new(url)
        .restore_context(model, retain_ms)
        .await
}

/// The newest `n` final candles of every (venue, symbol, interval) of `intervals`, oldest first
/// per key, that open at or before the stream cursor of their instrument (the exchange time of
/// the trade at `source_offsets.last_id`; no bound without a cursor): what a restarted pipeline
/// warms its indicators and strategies with. The candle the run resumes in is among them when it
/// was stored final; the operators use only the candles before the run's own first candle.
pub async fn restore_candles(
    url: &str,
    intervals: &[cryptoflow_operators::model::Interval],
    n: usize,
) -> Result<Vec<cryptoflow_operators::model::Candle>, SinkError> {
    use cryptoflow_operators::model::Candle;
    let labels: Vec<&str> = intervals.iter().map(|i| i.label()).collect();
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let (client, driver) = connect_once(url).await?;
    let rows = client
        .query(
            "WITH resume AS (
                 SELECT o.venue, o.symbol, min(t.ts_exchange) AS at
                 FROM source_offsets o
                 JOIN trades t ON t.venue = o.venue AND t.symbol = o.symbol AND t.trade_id = o.last_id
                 GROUP BY 1, 2),
             ranked AS (
                 SELECT c.*, row_number() OVER (PARTITION BY c.venue, c.symbol, c.interval
                                                ORDER BY c.open_time DESC) AS k
                 FROM candles c LEFT JOIN resume r ON r.venue = c.venue AND r.symbol = c.symbol
                 WHERE c.is_final AND c.interval = ANY($1) AND (r.at IS NULL OR c.open_time <= r.at))
             SELECT venue, symbol, interval,
                    (extract(epoch FROM open_time) * 1000)::int8,
                    (extract(epoch FROM close_time) * 1000)::int8,
                    open, high, low, close, volume, quote_volume, vwap, trade_count,
                    taker_buy_volume, first_trade_id, last_trade_id
             FROM ranked WHERE k <= $2 ORDER BY venue, symbol, interval, open_time",
            &[&labels, &n],
        )
        .await
        .map_err(|e| classify(&e, "read candles"))?;
    let bad = |what: String| SinkError::Permanent {
        sink: SINK,
        message: format!("candles: {what}"),
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (venue, symbol, interval): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let count = |i: usize| -> Result<u64, SinkError> {
            let v: i64 = r.get(i);
            u64::try_from(v).map_err(|_| bad(format!("negative count {v} for {symbol}")))
        };
        out.push(Candle {
            venue: venue
                .parse()
                .map_err(|e| bad(format!("venue {venue:?}: {e}")))?,
            symbol: symbol
                .parse()
                .map_err(|e| bad(format!("symbol {symbol:?}: {e}")))?,
            interval: interval
                .parse()
                .map_err(|e| bad(format!("interval {interval:?}: {e}")))?,
            open_time: r.get(3),
            close_time: r.get(4),
            open: r.get(5),
            high: r.get(6),
            low: r.get(7),
            close: r.get(8),
            volume: r.get(9),
            quote_volume: r.get(10),
            vwap: r.get(11),
            trade_count: count(12)?,
            taker_buy_volume: r.get(13),
            first_trade_id: count(14)?,
            last_trade_id: count(15)?,
            is_final: true,
        });
    }
    drop(client);
    let _ = driver.await;
    Ok(out)
}

impl StateStore for PostgresState {
    /// The cursor in `source_offsets` is the highest id committed. With parallel flushes a crash
    /// can leave a hole just below it (a later flush committed, an earlier one did not), never
    /// more than `window` ids deep (flushes in flight × batch size); the resume point is
    /// therefore the last id before the first hole in the `window` ids below the cursor, and
    /// before any hole whose refill was cut short.
    async fn resume_points(&self, window: u64) -> Result<Vec<ResumePoint>, SinkError> {
        let (client, driver) = connect_once(&self.url).await?;
        let rows = client
            .query(
                "SELECT venue, symbol, kind, last_id FROM source_offsets ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .map_err(|e| classify(&e, "read source_offsets"))?;
        let mut out = Vec::new();
        for r in rows {
            let (venue, symbol, kind, last): (String, String, String, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let lo = last.saturating_sub(window as i64);
            let ids: Vec<i64> = client
                .query(
                    "SELECT trade_id FROM trades WHERE venue = $1 AND symbol = $2 AND trade_id > $3 AND trade_id <= $4
                       AND (first_trade_id IS NULL) = ($5 = 'trade') ORDER BY trade_id",
                    &[&venue, &symbol, &lo, &last, &kind],
                )
                .await
                .map_err(|e| classify(&e, "check cursor"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut resume = ids.first().copied().unwrap_or(last);
            for &id in ids.iter().skip(1) {
                if id != resume + 1 {
                    break;
                }
                resume = id;
            }
            if resume < last {
                tracing::warn!(%symbol, %kind, cursor = last, resume, "Ids missing below the cursor; resuming from the first hole.");
            }
            // A hole whose refill was still running at a crash (live trades were stored past it).
            let open: Option<i64> = client
                .query_one(
                    "SELECT min(from_id) FROM gaps WHERE venue = $1 AND symbol = $2 AND kind = $3
                       AND resolved_at IS NULL AND detail LIKE 'refilling%'",
                    &[&venue, &symbol, &kind],
                )
                .await
                .map_err(|e| classify(&e, "read open refills"))?
                .get(0);
            if let Some(from) = open.filter(|&f| f - 1 < resume) {
                tracing::warn!(%symbol, %kind, cursor = last, from, "A refill was cut short; resuming before its hole.");
                resume = from - 1;
            }
            out.push(ResumePoint {
                venue,
                symbol,
                kind,
                last_id: resume.max(0) as u64,
            });
        }
        drop(client);
        let _ = driver.await;
        Ok(out)
    }

    /// The stored sentiment of `model` for every item within `retain_ms` of its coins' newest
    /// item (the per-coin windows and the features' 1 h / 24 h sentiment), every stored macro
    /// observation (the features' FRED values) and the latest CoinGecko market snapshot per coin
    /// (the features' market data).
    async fn restore_context(
        &self,
        model: &str,
        retain_ms: i64,
    ) -> Result<Vec<cryptoflow_operators::features::ContextItem>, SinkError> {
        use cryptoflow_operators::features::ContextItem;
        use cryptoflow_operators::polled::MacroObservation;
        use cryptoflow_operators::sentiment::SentimentScore;
        let (client, driver) = connect_once(&self.url).await?;
        let mut out = Vec::new();
        let rows = client
            .query(
                "WITH s AS (SELECT * FROM sentiment WHERE model = $1),
                      newest AS (SELECT coin, max(published_at) AS m FROM s, unnest(s.coins) AS coin GROUP BY coin)
                 SELECT item_key, kind, (extract(epoch FROM published_at) * 1000)::int8, coins, neg, neu, pos, compound
                 FROM s
                 WHERE EXISTS (SELECT 1 FROM unnest(s.coins) AS c JOIN newest n ON n.coin = c
                               WHERE s.published_at >= n.m - $2::int8 * interval '1 millisecond')
                 ORDER BY published_at, item_key",
                &[&model, &retain_ms],
            )
            .await
            .map_err(|e| classify(&e, "read sentiment"))?;
        for r in rows {
            out.push(ContextItem::Sentiment(SentimentRow {
                item_key: r.get(0),
                kind: r.get(1),
                model: model.to_string(),
                published_at: r.get(2),
                coins: r.get(3),
                score: SentimentScore {
                    neg: r.get(4),
                    neu: r.get(5),
                    pos: r.get(6),
                    compound: r.get(7),
                },
            }));
        }
        let rows = client
            .query(
                "SELECT series_id, date::text, value, realtime_start::text, realtime_end::text
                 FROM macro_observations ORDER BY series_id, date, realtime_start",
                &[],
            )
            .await
            .map_err(|e| classify(&e, "read macro_observations"))?;
        let date = |s: String| {
            s.parse::<chrono::NaiveDate>()
                .map_err(|e| SinkError::Permanent {
                    sink: SINK,
                    message: format!("macro_observations: bad date {s:?}: {e}"),
                })
        };
        for r in rows {
            out.push(ContextItem::Macro(MacroObservation {
                series_id: r.get(0),
                date: date(r.get(1))?,
                value: r.get(2),
                realtime_start: date(r.get(3))?,
                realtime_end: date(r.get(4))?,
            }));
        }
        let rows = client
            .query(
                "SELECT coin_id, vs_currency, endpoint, (extract(epoch FROM last_updated) * 1000)::int8,
                        symbol, name, price, market_cap, market_cap_rank::int8, total_volume, high_24h,
                        low_24h, price_change_24h, price_change_pct_24h, circulating_supply,
                        total_supply, max_supply, ath, atl,
                        (extract(epoch FROM fetched_at) * 1000)::int8, raw::text
                 FROM coingecko_latest ORDER BY last_updated, coin_id",
                &[],
            )
            .await
            .map_err(|e| classify(&e, "read coingecko_latest"))?;
        for r in rows {
            out.push(ContextItem::Market(Box::new(
                cryptoflow_operators::polled::CoinMarket {
                    coin_id: r.get(0),
                    vs_currency: r.get(1),
                    endpoint: r.get(2),
                    last_updated: r.get(3),
                    symbol: r.get(4),
                    name: r.get(5),
                    price: r.get(6),
                    market_cap: r.get(7),
                    market_cap_rank: r.get(8),
                    total_volume: r.get(9),
                    high_24h: r.get(10),
                    low_24h: r.get(11),
                    price_change_24h: r.get(12),
                    price_change_pct_24h: r.get(13),
                    circulating_supply: r.get(14),
                    total_supply: r.get(15),
                    max_supply: r.get(16),
                    ath: r.get(17),
                    atl: r.get(18),
                    fetched_at: r.get(19),
                    raw: r.get(20),
                },
            )));
        }
        drop(client);
        let _ = driver.await;
        Ok(out)
    }
}

/// `[sinks.postgres]`: settings of the PostgreSQL sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL ("" disables).
    pub url: String,
    /// Pool size.
    pub pool_size: usize,
    /// Days of trades kept: a day's partition of `trades` is dropped once the whole day is older
    /// (0 keeps every day).
    pub retention_days: u32,
    /// Days of `trades` partitions created ahead of today.
    pub partition_ahead: u32,
    /// Days of candles kept, by open time (0 keeps every candle).
    pub candle_retention_days: u32,
    /// Seconds between two maintenance passes (partitions ahead, retention).
    pub maintenance_interval_s: u64,
}

impl Default for PostgresConfig {
    /// Off (`url` empty), with the settings of `dataflows/default.toml`.
    fn default() -> Self {
        PostgresConfig {
            url: String::new(),
            pool_size: 2,
            retention_days: 0,
            partition_ahead: 3,
            candle_retention_days: 0,
            maintenance_interval_s: 3600,
        }
    }
}

impl PostgresConfig {
    /// The retention settings of the maintenance pass.
    pub fn retention(&self) -> crate::partitions::Retention {
        crate::partitions::Retention {
            retention_days: self.retention_days,
            partition_ahead: self.partition_ahead,
            candle_retention_days: self.candle_retention_days,
        }
    }
}

impl crate::task::SinkSpec for PostgresConfig {
    type Sink = PostgresSink;
    fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
    fn parallelism(&self) -> usize {
        self.pool_size
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<PostgresSink, SinkError> {
        PostgresSink::connect(self).await
    }
}

/// The PostgreSQL sink.
pub struct PostgresSink {
    pool: Pool,
    /// The days whose `trades` partition exists, shared by the forks.
    partitions: PartitionCache,
    /// Whether `trades` has day partitions the sink creates ([`partitions::Layout`]).
    partitioned: bool,
    /// The periodic maintenance, ended when the last fork is dropped.
    _maintenance: Option<Arc<AbortOnDrop>>,
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The server's words for a row of a partitioned table whose partition is missing.
const NO_PARTITION: &str = "no partition of relation";

/// Logs what a maintenance pass changed.
fn log_maintained(done: &partitions::Maintained) {
    if !done.created.is_empty() || !done.dropped.is_empty() || done.candles_deleted > 0 {
        tracing::info!(
            created = ?done.created,
            dropped = ?done.dropped,
            candles_deleted = done.candles_deleted,
            "Storage maintenance: trades partitions ahead, retention applied."
        );
    }
}

/// The key of [`dialect::trades_fresh_sql`] in [`STATEMENTS`].
const TRADES_FRESH: &str = "trades (fresh)";

/// The statements of every table, rendered once: the array-bound insert, or the single-row one
/// for tables with list columns; the trades and gaps statements.
static STATEMENTS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    let mut m: HashMap<&'static str, String> = tables::ALL
        .iter()
        .map(|s| {
            let sql = if s.has_lists() {
                dialect::insert_values(s)
            } else {
                dialect::insert_unnest(s)
            };
            (s.name, sql)
        })
        .collect();
    m.insert(tables::TRADES.schema.name, dialect::trades_sql());
    m.insert(TRADES_FRESH, dialect::trades_fresh_sql());
    m.insert(tables::GAPS.schema.name, dialect::gaps_sql());
    m
});

impl PostgresSink {
    /// Builds the pool and checks that the schema is there.
    pub async fn connect(cfg: &PostgresConfig) -> Result<Self, SinkError> {
        let mgr = Manager::from_config(
            parse_url(&cfg.url)?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(1))
            .build()
            .map_err(|e| SinkError::Permanent {
                sink: SINK,
                message: format!("pool: {e}"),
            })?;
        let client = pool.get().await.map_err(pool_err)?;
        let names: Vec<&str> = tables::ALL.iter().map(|s| s.name).collect();
        client
            .query(&format!("SELECT 1 FROM {} LIMIT 0", names.join(", ")), &[])
            .await
            .map_err(|e| classify(&e, "schema check"))?;
        // The first pass before any write: today's partitions are there, expired ones gone.
        let retention = cfg.retention();
        let layout = partitions::layout(&client).await?;
        if layout == partitions::Layout::Plain {
            tracing::warn!(
                "`trades` is one plain table: no partitions, no retention (run `cryptoflow migrate`)."
            );
        }
        let done = partitions::maintain(&client, retention, chrono::Utc::now()).await?;
        log_maintained(&done);
        drop(client);
        let maintenance = (cfg.maintenance_interval_s > 0).then(|| {
            let pool = pool.clone();
            let every = std::time::Duration::from_secs(cfg.maintenance_interval_s);
            Arc::new(AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let pass = async {
                        let client = pool.get().await.map_err(pool_err)?;
                        partitions::maintain(&client, retention, chrono::Utc::now()).await
                    };
                    match pass.await {
                        Ok(done) => log_maintained(&done),
                        Err(e) => {
                            tracing::warn!(error = %e, "Storage maintenance failed; trying again at the next pass.")
                        }
                    }
                }
            })))
        });
        Ok(PostgresSink {
            pool,
            partitions: PartitionCache::default(),
            partitioned: layout == partitions::Layout::Partitioned,
            _maintenance: maintenance,
        })
    }

    /// Creates the `trades` partitions of the days of `trades` this sink has not met yet.
    async fn ensure_partitions(
        &self,
        trades: &[&cryptoflow_operators::dataflow::EnrichedTrade],
    ) -> Result<(), SinkError> {
        if !self.partitioned {
            return Ok(());
        }
        let days = self
            .partitions
            .missing(trades.iter().map(|t| t.trade.ts_exchange));
        if days.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        for day in days {
            if partitions::ensure_partition(&client, day).await? {
                tracing::debug!(day, "Created a trades partition.");
            }
            self.partitions.add(day);
        }
        Ok(())
    }

    /// The pool (tests and other writers in the same transaction protocol use it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Writes `items` into `table` with its statement of [`STATEMENTS`]: one array-bound statement,
/// or the single-row statement once per row.
async fn write_table<T: Sync + ?Sized>(
    tx: &Transaction<'_>,
    table: &Table<T>,
    items: &[&T],
) -> Result<(), SinkError> {
    if items.is_empty() {
        return Ok(());
    }
    let name = table.schema.name;
    let sql = STATEMENTS.get(name).map(String::as_str).unwrap_or_default();
    let stmt = tx
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(&e, &format!("prepare {name}")))?;
    let context = || format!("write {name}");
    if table.schema.has_lists() {
        let rows = table.rows_for(SINK, items)?;
        for row in rows.iter() {
            tx.execute(&stmt, &dialect::params(row))
                .await
                .map_err(|e| classify(&e, &context()))?;
        }
    } else {
        let columns = table.columns_for(SINK, items)?;
        tx.execute(&stmt, &dialect::params(&columns))
            .await
            .map_err(|e| classify(&e, &context()))?;
    }
    Ok(())
}

/// Writes the trades of a flush: first with a plain insert in a savepoint (the usual case, no
/// trade of the flush stored yet: no speculative insertion per row), and after a unique
/// violation (a replay or redelivery) with `ON CONFLICT DO NOTHING`. Both statements maintain
/// `trade_aggregates` and `source_offsets` from the trades they inserted.
async fn write_trades(
    tx: &Transaction<'_>,
    trades: &[&cryptoflow_operators::dataflow::EnrichedTrade],
) -> Result<(), SinkError> {
    if trades.is_empty() {
        return Ok(());
    }
    let table = &tables::TRADES;
    let columns = table.columns_for(SINK, trades)?;
    let sql = STATEMENTS
        .get(TRADES_FRESH)
        .map(String::as_str)
        .unwrap_or_default();
    let stmt = tx
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(&e, "prepare trades"))?;
    let params = dialect::params(&columns);
    tx.batch_execute("SAVEPOINT fresh_trades")
        .await
        .map_err(|e| classify(&e, "savepoint"))?;
    match tx.execute(&stmt, &params).await {
        Ok(_) => tx
            .batch_execute("RELEASE SAVEPOINT fresh_trades")
            .await
            .map_err(|e| classify(&e, "release savepoint")),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT fresh_trades")
                .await
                .map_err(|e| classify(&e, "rollback to savepoint"))?;
            write_table(tx, table, trades).await
        }
        Err(e) => Err(classify(&e, "write trades")),
    }
}

impl Sink for PostgresSink {
    fn name(&self) -> &'static str {
        SINK
    }

    /// Flushes commute: trades are insert-or-ignore, aggregates add up and keep the values of the
    /// highest trade id, candles keep the final row and otherwise the one with more trades.
    fn fork(&self) -> Option<Self> {
        Some(PostgresSink {
            pool: self.pool.clone(),
            partitions: self.partitions.clone(),
            partitioned: self.partitioned,
            _maintenance: self._maintenance.clone(),
        })
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let mut b = tables::Batch::default();
        for r in records {
            b.add(r);
        }
        let candles = latest_candles(records);
        // One row per key of the upserted tables (a statement may not update a row twice).
        let windows = tables::last_windows(&b.windows);
        let gaps = tables::last_gaps(&b.gaps);
        if b.is_empty() && candles.is_empty() {
            return Ok(());
        }
        self.ensure_partitions(&b.trades).await?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify(&e, "begin"))?;
        if let Err(e) = write_trades(&tx, &b.trades).await {
            if let SinkError::Permanent { message, .. } = &e {
                if message.contains(NO_PARTITION) {
                    // The maintenance dropped a day this sink had met (a trade older than the
                    // retention): forget the days and let the retry create it again.
                    self.partitions.clear();
                    return Err(SinkError::Transient {
                        sink: SINK,
                        message: message.clone(),
                    });
                }
            }
            return Err(e);
        }
        write_table(&tx, &tables::CANDLES, &candles).await?;
        write_table(&tx, &tables::GAPS, &gaps).await?;
        write_table(&tx, &tables::DATA_QUALITY, &b.quality).await?;
        write_table(&tx, &tables::COINGECKO_DATA, &b.markets).await?;
        write_table(&tx, &tables::NEWS, &b.news).await?;
        write_table(&tx, &tables::SOCIAL_POSTS, &b.social).await?;
        write_table(&tx, &tables::MACRO_OBSERVATIONS, &b.macros).await?;
        write_table(&tx, &tables::FUND_NAVS, &b.funds).await?;
        write_table(&tx, &tables::INDICATORS, &b.indicators).await?;
        write_table(&tx, &tables::SENTIMENT, &b.sentiment).await?;
        write_table(&tx, &tables::SENTIMENT_COIN_WINDOWS, &windows).await?;
        write_table(&tx, &tables::ML_FEATURES, &b.features).await?;
        write_table(&tx, &tables::SIGNALS, &b.signals).await?;
        tx.commit().await.map_err(|e| classify(&e, "commit"))
    }
}

/// Drops the database `name` (if any) on the server of `server_url` and creates it empty;
/// returns its URL. For `cryptoflow bench --bulk-reference`.
pub async fn recreate_database(server_url: &str, name: &str) -> Result<String, SinkError> {
    drop_database(server_url, name).await?;
    let (client, driver) = connect_once(server_url).await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| classify(&e, "create database"))?;
    drop(client);
    let _ = driver.await;
    Ok(crate::sql::with_database(server_url, name))
}

/// Drops the database `name` (if any) on the server of `server_url`.
pub async fn drop_database(server_url: &str, name: &str) -> Result<(), SinkError> {
    crate::sql::check_database_name(SINK, name)?;
    let (client, driver) = connect_once(server_url).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(|e| classify(&e, "drop database"))?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Every non-empty table a sink writes ([`tables::ALL`]), read back whole with
/// `COPY (SELECT * FROM t) TO STDOUT` (text format, every column, defaults such as `inserted_at`
/// included).
pub async fn dump_tables(url: &str) -> Result<Vec<crate::sql::TableDump>, SinkError> {
    use futures_util::StreamExt;
    let (client, driver) = connect_once(url).await?;
    let mut out = Vec::new();
    for s in tables::ALL {
        // The query form: a partitioned table (`trades`) has no `COPY t TO`.
        let what = format!("COPY (SELECT * FROM {}) TO STDOUT", s.name);
        let stream = client
            .copy_out(&what)
            .await
            .map_err(|e| classify(&e, &what))?;
        futures_util::pin_mut!(stream);
        let mut dump = crate::sql::DumpBuilder::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&e, &what))?;
            // Text format: one line per row, newlines inside values escaped.
            let rows = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            dump.extend(&chunk, rows);
        }
        let dump = dump.finish(s.name);
        if dump.rows > 0 {
            out.push(dump);
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(out)
}

/// Creates in the database at `to` the day partitions of `trades` that the one at `from` has,
/// so that a [`copy_load`] of its rows finds them.
pub async fn copy_partition_layout(from: &str, to: &str) -> Result<usize, SinkError> {
    let (a, da) = connect_once(from).await?;
    let (b, db) = connect_once(to).await?;
    let created = partitions::copy_layout(&a, &b).await;
    drop((a, b));
    let _ = da.await;
    let _ = db.await;
    created
}

/// Loads `dumps` into the (migrated, empty) database at `url` with the server's own bulk path:
/// one transaction, one `COPY t FROM STDIN` (text format) per table. Returns the time from
/// `BEGIN` to the end of `COMMIT` (the connection is opened before).
pub async fn copy_load(
    url: &str,
    dumps: &[crate::sql::TableDump],
) -> Result<std::time::Duration, SinkError> {
    use futures_util::SinkExt;
    let (mut client, driver) = connect_once(url).await?;
    let started = std::time::Instant::now();
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(&e, "begin"))?;
    for d in dumps {
        let what = format!("COPY {} FROM STDIN", d.table);
        let sink = tx
            .copy_in::<_, bytes::Bytes>(&what)
            .await
            .map_err(|e| classify(&e, &what))?;
        futures_util::pin_mut!(sink);
        for chunk in &d.data {
            sink.feed(chunk.clone())
                .await
                .map_err(|e| classify(&e, &what))?;
        }
        let n = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| classify(&e, &what))?;
        if n != d.rows {
            return Err(SinkError::Permanent {
                sink: SINK,
                message: format!("{what}: loaded {n} rows of {}", d.rows),
            });
        }
    }
    tx.commit().await.map_err(|e| classify(&e, "commit"))?;
    let elapsed = started.elapsed();
    drop(client);
    let _ = driver.await;
    Ok(elapsed)
}

/// Row count and digest (md5 of the rows' text, sorted) of every table of [`tables::ALL`].
pub async fn table_digests(url: &str) -> Result<Vec<crate::sql::TableDigest>, SinkError> {
    let (client, driver) = connect_once(url).await?;
    let mut out = Vec::new();
    for s in tables::ALL {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) \
                     FROM {} t",
                    s.name
                ),
                &[],
            )
            .await
            .map_err(|e| classify(&e, &format!("digest {}", s.name)))?;
        let rows: i64 = row.get(0);
        out.push(crate::sql::TableDigest {
            table: s.name,
            rows: rows.max(0) as u64,
            digest: row.get(1),
        });
    }
    drop(client);
    let _ = driver.await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `sql/postgres/views/` is applied, and creates the view it is named after.
    #[test]
    fn views_are_listed_and_named() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/postgres/views");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("views dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<&str> = VIEWS.iter().map(|(f, _)| *f).collect();
        assert_eq!(files, listed);
        for (file, sql) in VIEWS {
            let name = view_name(file);
            assert_eq!(sql.matches("CREATE OR REPLACE VIEW").count(), 1, "{file}");
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

    #[test]
    fn the_wide_features_view_follows_the_catalogue() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../sql/postgres/views/11_ml_features_wide.sql"
        );
        if std::env::var_os("CRYPTOFLOW_BLESS").is_some() {
            std::fs::write(path, ml_features_wide_view()).expect("write the view");
        }
        let file = std::fs::read_to_string(path).expect("the view file");
        assert_eq!(
            file,
            ml_features_wide_view(),
            "regenerate it: CRYPTOFLOW_BLESS=1 cargo test -p cryptoflow-sinks wide_features"
        );
    }

    #[test]
    fn every_table_has_a_statement() {
        for s in tables::ALL {
            let sql = &STATEMENTS[s.name];
            assert!(
                sql.contains(&format!("INSERT INTO {} AS s", s.name)),
                "{sql}"
            );
        }
    }
}
