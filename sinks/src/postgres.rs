//! PostgreSQL sink and migration runner.
//!
//! Each flush is one transaction:
//! - trades go in through one `UNNEST` statement, `ON CONFLICT (venue, symbol, trade_id) DO
//!   NOTHING`, whose `RETURNING` rows (the trades that were really new) update
//!   `trade_aggregates` in the same statement, so counters never double count on redelivery;
//! - candle updates are deduplicated per key (last wins) and upserted; a forming update never
//!   overwrites a final candle, and a final one replaces a final one only with at least as many
//!   trades (a restart that re-reads the tail of a closed window cannot shrink it);
//! - polled items go into their tables once per natural key (`ON CONFLICT DO NOTHING`).
//!
//! Connection and server-state errors are transient (retried by the sink task); data and schema
//! errors are permanent and say what to fix.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::task::{Sink, SinkError};
use cryptoflow_operators::dataflow::IndicatorRow;
use cryptoflow_operators::features::FeatureRow;
use cryptoflow_operators::math::indicators::FLOAT_COLUMNS;
use cryptoflow_operators::model::{latest_candles, Output};
use cryptoflow_operators::polled::Polled;
use cryptoflow_operators::sentiment::windows::SentimentWindowRow;
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
];

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

/// Applies pending migrations; returns the versions applied now. Idempotent and safe to run
/// concurrently (an advisory lock serializes migrators).
pub async fn migrate(url: &str) -> Result<Vec<i32>, SinkError> {
    let (mut client, driver) = connect_once(url).await?;
    let ctx = |what: &'static str| move |e: tokio_postgres::Error| classify(&e, what);
    client
        .batch_execute(
            "SELECT pg_advisory_lock(7231001);
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(ctx("migrations table"))?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = client.transaction().await.map_err(ctx("begin"))?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(ctx("read migrations"))?
            .is_some();
        if !done {
            tx.batch_execute(sql)
                .await
                .map_err(|e| classify(&e, &format!("migration {version} ({name})")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(ctx("record migration"))?;
            applied.push(*version);
        }
        tx.commit().await.map_err(ctx("commit migration"))?;
    }
    client
        .batch_execute("SELECT pg_advisory_unlock(7231001)")
        .await
        .map_err(ctx("unlock"))?;
    drop(client);
    let _ = driver.await;
    Ok(applied)
}

/// Where each live stream should resume: per (venue, symbol, kind), the last id below which
/// every id is stored.
///
/// The cursor in `source_offsets` is the highest id committed. With parallel flushes a crash can
/// leave a hole just below it (a later flush committed, an earlier one did not), never more than
/// `window` ids deep (flushes in flight × batch size); the resume point is therefore the last id
/// before the first hole in the `window` ids below the cursor.
pub async fn resume_points(
    url: &str,
    window: u64,
) -> Result<Vec<(String, String, String, u64)>, SinkError> {
    let (client, driver) = connect_once(url).await?;
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
        out.push((venue, symbol, kind, resume.max(0) as u64));
    }
    drop(client);
    let _ = driver.await;
    Ok(out)
}

/// The context a restarted pipeline needs to carry on where it stopped: the stored sentiment of
/// `model` for every item within `retain_ms` of its coins' newest item (the per-coin windows and
/// the features' 1 h / 24 h sentiment), every stored macro observation (the features' FRED
/// values) and the latest CoinGecko market snapshot per coin (the features' market data).
pub async fn restore_context(
    url: &str,
    model: &str,
    retain_ms: i64,
) -> Result<Vec<cryptoflow_operators::features::ContextItem>, SinkError> {
    use cryptoflow_operators::features::ContextItem;
    use cryptoflow_operators::polled::MacroObservation;
    use cryptoflow_operators::sentiment::SentimentScore;
    let (client, driver) = connect_once(url).await?;
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

/// `[sinks.postgres]`: settings of the PostgreSQL sink.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL ("" disables).
    pub url: String,
    /// Pool size.
    pub pool_size: usize,
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
}

const TRADES_SQL: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::numeric[], $5::numeric[], $6::text[],
                         $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::bool[], $12::numeric[], $13::float8[])
        AS t(venue, symbol, trade_id, price, qty, side, ts_exchange, ts_received, first_trade_id, last_trade_id,
             is_whale, moving_average, ema)
), ins AS (
    INSERT INTO trades (venue, symbol, trade_id, price, qty, side, ts_exchange, ts_received,
                        first_trade_id, last_trade_id, is_whale, moving_average, ema)
    SELECT venue, symbol, trade_id, price, qty, side,
           'epoch'::timestamptz + ts_exchange * interval '1 millisecond',
           'epoch'::timestamptz + ts_received * interval '1 millisecond',
           first_trade_id, last_trade_id, is_whale, moving_average, ema
    FROM input
    ON CONFLICT (venue, symbol, trade_id) DO NOTHING
    RETURNING venue, symbol, trade_id, price, qty, moving_average, ts_exchange
), cursors AS (
    INSERT INTO source_offsets AS o (venue, symbol, kind, last_id)
    SELECT venue, symbol, CASE WHEN first_trade_id IS NULL THEN 'trade' ELSE 'aggTrade' END, max(trade_id)
    FROM input GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (venue, symbol, kind) DO UPDATE SET
        last_id = GREATEST(o.last_id, excluded.last_id), updated_at = now()
), agg AS (
    SELECT venue, symbol, count(*) AS n, sum(qty) AS vol, sum(price * qty) AS qvol, max(trade_id) AS last_id,
           (array_agg(moving_average ORDER BY trade_id DESC))[1] AS ma,
           (array_agg(price ORDER BY trade_id DESC))[1] AS last_price,
           max(ts_exchange) AS ts
    FROM ins GROUP BY venue, symbol
)
INSERT INTO trade_aggregates AS a (venue, symbol, moving_average, trade_count, total_volume, total_quote_volume,
                                   last_trade_id, last_price, updated_at)
SELECT venue, symbol, ma, n, vol, qvol, last_id, last_price, ts FROM agg ORDER BY venue, symbol
ON CONFLICT (venue, symbol) DO UPDATE SET
    trade_count = a.trade_count + excluded.trade_count,
    total_volume = a.total_volume + excluded.total_volume,
    total_quote_volume = a.total_quote_volume + excluded.total_quote_volume,
    moving_average = CASE WHEN excluded.last_trade_id > a.last_trade_id THEN excluded.moving_average ELSE a.moving_average END,
    last_price = CASE WHEN excluded.last_trade_id > a.last_trade_id THEN excluded.last_price ELSE a.last_price END,
    last_trade_id = GREATEST(a.last_trade_id, excluded.last_trade_id),
    updated_at = GREATEST(a.updated_at, excluded.updated_at)";

const CANDLES_SQL: &str = "
INSERT INTO candles AS c (venue, symbol, interval, open_time, close_time, open, high, low, close, volume,
                          quote_volume, vwap, trade_count, taker_buy_volume, first_trade_id, last_trade_id, is_final)
SELECT venue, symbol, interval,
       'epoch'::timestamptz + open_time * interval '1 millisecond',
       'epoch'::timestamptz + close_time * interval '1 millisecond',
       open, high, low, close, volume, quote_volume, vwap, trade_count, taker_buy_volume,
       first_trade_id, last_trade_id, is_final
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::numeric[], $7::numeric[], $8::numeric[],
            $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[], $13::int8[], $14::numeric[], $15::int8[],
            $16::int8[], $17::bool[])
    AS t(venue, symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, vwap,
         trade_count, taker_buy_volume, first_trade_id, last_trade_id, is_final)
ON CONFLICT (venue, symbol, interval, open_time) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, quote_volume = excluded.quote_volume, vwap = excluded.vwap,
    trade_count = excluded.trade_count, taker_buy_volume = excluded.taker_buy_volume,
    first_trade_id = excluded.first_trade_id, last_trade_id = excluded.last_trade_id,
    is_final = excluded.is_final, updated_at = now()
WHERE (excluded.is_final AND (NOT c.is_final OR excluded.trade_count >= c.trade_count))
   OR (NOT c.is_final AND excluded.trade_count >= c.trade_count)";

/// Gaps: a hole's row is written when it is answered; a hole that outlasted the source's hold
/// is written first as open ([`cryptoflow_operators::model::REFILLING`]), so a crash before its
/// refill ends leaves it open and the next run resumes before it. Its final row resolves it, and
/// a refilled range resolves every open marker it covers (the refill of a later run).
const GAPS_SQL: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::bool[], $10::text[])
        AS t(venue, symbol, kind, reason, from_id, to_id, since, detected, refilled, detail)
), resolved AS (
    UPDATE gaps g SET resolved_at = now()
    FROM input i
    WHERE i.refilled AND g.resolved_at IS NULL AND g.detail LIKE 'refilling%'
      AND g.venue = i.venue AND g.symbol = i.symbol AND g.kind = i.kind
      AND g.from_id >= i.from_id AND g.to_id <= i.to_id
      AND NOT (g.reason = i.reason AND g.from_id = i.from_id AND g.to_id = i.to_id
               AND g.detected_at = 'epoch'::timestamptz + i.detected * interval '1 millisecond')
)
INSERT INTO gaps AS g (venue, symbol, kind, reason, from_id, to_id, since, detected_at, resolved_at, detail)
SELECT venue, symbol, kind, reason, from_id, to_id,
       'epoch'::timestamptz + since * interval '1 millisecond',
       'epoch'::timestamptz + detected * interval '1 millisecond',
       CASE WHEN refilled THEN now() END, detail
FROM input
ON CONFLICT (venue, symbol, kind, reason, from_id, to_id, detected_at) DO UPDATE
    SET resolved_at = excluded.resolved_at, detail = excluded.detail
    WHERE g.resolved_at IS NULL AND g.detail LIKE 'refilling%'";

const QUALITY_SQL: &str = "
INSERT INTO data_quality (source, symbol, snapshot_at, frames, trades, gaps_detected, gaps_refilled, ids_refilled,
                          ids_unrefillable, duplicates, late_events, reconnects, decode_errors, kline_mismatches,
                          last_event_at, last_event_age_ms, stale)
VALUES ($1, $2, 'epoch'::timestamptz + $3::int8 * interval '1 millisecond', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        CASE WHEN $15::int8 > 0 THEN 'epoch'::timestamptz + $15::int8 * interval '1 millisecond' END, $16, $17)
ON CONFLICT DO NOTHING";

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
        client
            .query(
                "SELECT 1 FROM trades, candles, trade_aggregates, gaps, source_offsets, data_quality, coingecko_data, news, social_posts, macro_observations, fund_navs, indicators, sentiment, sentiment_coin_windows, ml_features LIMIT 0",
                &[],
            )
            .await
            .map_err(|e| classify(&e, "schema check"))?;
        Ok(PostgresSink { pool })
    }

    /// The pool (tests and other writers in the same transaction protocol use it).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

#[derive(Default)]
struct TradeCols {
    venue: Vec<&'static str>,
    symbol: Vec<String>,
    trade_id: Vec<i64>,
    price: Vec<Decimal>,
    qty: Vec<Decimal>,
    side: Vec<&'static str>,
    ts_exchange: Vec<i64>,
    ts_received: Vec<i64>,
    first_id: Vec<Option<i64>>,
    last_id: Vec<Option<i64>>,
    is_whale: Vec<bool>,
    ma: Vec<Decimal>,
    ema: Vec<Option<f64>>,
}

#[derive(Default)]
struct GapCols {
    venue: Vec<&'static str>,
    symbol: Vec<String>,
    kind: Vec<&'static str>,
    reason: Vec<&'static str>,
    from: Vec<i64>,
    to: Vec<i64>,
    since: Vec<i64>,
    detected: Vec<i64>,
    refilled: Vec<bool>,
    detail: Vec<String>,
}

#[derive(Default)]
struct CandleCols {
    venue: Vec<&'static str>,
    symbol: Vec<String>,
    interval: Vec<&'static str>,
    open_time: Vec<i64>,
    close_time: Vec<i64>,
    o: Vec<Decimal>,
    h: Vec<Decimal>,
    l: Vec<Decimal>,
    c: Vec<Decimal>,
    v: Vec<Decimal>,
    qv: Vec<Decimal>,
    vwap: Vec<Decimal>,
    n: Vec<i64>,
    tbv: Vec<Decimal>,
    first: Vec<i64>,
    last: Vec<i64>,
    fin: Vec<bool>,
}

fn id(v: u64) -> Result<i64, SinkError> {
    i64::try_from(v).map_err(|_| SinkError::Permanent {
        sink: SINK,
        message: format!("id {v} does not fit BIGINT"),
    })
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
        })
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let mut t = TradeCols::default();
        let mut g = GapCols::default();
        let mut quality: Vec<&cryptoflow_operators::model::DataQuality> = Vec::new();
        let mut polled: Vec<&Polled> = Vec::new();
        let mut indicators: Vec<&IndicatorRow> = Vec::new();
        let mut sentiment: Vec<&SentimentRow> = Vec::new();
        let mut windows: Vec<&SentimentWindowRow> = Vec::new();
        let mut features: Vec<&FeatureRow> = Vec::new();
        for r in records {
            match r {
                Output::Trade(e) => {
                    let tr = &e.trade;
                    t.venue.push(tr.venue.as_str());
                    t.symbol.push(tr.symbol.as_str().to_string());
                    t.trade_id.push(id(tr.trade_id)?);
                    t.price.push(tr.price);
                    t.qty.push(tr.qty);
                    t.side.push(tr.side.as_str());
                    t.ts_exchange.push(tr.ts_exchange);
                    t.ts_received.push(tr.ts_received);
                    t.first_id
                        .push(tr.agg.map(|a| id(a.first_trade_id)).transpose()?);
                    t.last_id
                        .push(tr.agg.map(|a| id(a.last_trade_id)).transpose()?);
                    t.is_whale.push(e.is_whale);
                    t.ma.push(e.moving_average);
                    t.ema.push(e.ema.filter(|x| x.is_finite()));
                }
                Output::Gap(gap) => {
                    g.venue.push(gap.venue.as_str());
                    g.symbol.push(gap.symbol.as_str().to_string());
                    g.kind.push(gap.kind.as_str());
                    g.reason.push(gap.reason.as_str());
                    g.from.push(gap.from_id.map(id).transpose()?.unwrap_or(-1));
                    g.to.push(gap.to_id.map(id).transpose()?.unwrap_or(-1));
                    g.since.push(gap.since);
                    g.detected.push(gap.until);
                    g.refilled.push(gap.refilled);
                    g.detail.push(gap.detail.clone());
                }
                Output::Quality(q) => quality.push(q),
                Output::Polled(p) => polled.push(p),
                Output::Indicators(i) => indicators.push(i),
                Output::Sentiment(x) => sentiment.push(x),
                Output::SentimentWindow(w) => windows.push(w),
                Output::Features(f) => features.push(f),
                Output::Candle(_) | Output::Whale(_) | Output::Late(_) | Output::Mismatch(_) => {}
            }
        }
        let mut k = CandleCols::default();
        let candles = latest_candles(records);
        for c in candles {
            k.venue.push(c.venue.as_str());
            k.symbol.push(c.symbol.as_str().to_string());
            k.interval.push(c.interval.label());
            k.open_time.push(c.open_time);
            k.close_time.push(c.close_time);
            k.o.push(c.open);
            k.h.push(c.high);
            k.l.push(c.low);
            k.c.push(c.close);
            k.v.push(c.volume);
            k.qv.push(c.quote_volume);
            k.vwap.push(c.vwap);
            k.n.push(id(c.trade_count)?);
            k.tbv.push(c.taker_buy_volume);
            k.first.push(id(c.first_trade_id)?);
            k.last.push(id(c.last_trade_id)?);
            k.fin.push(c.is_final);
        }
        if t.trade_id.is_empty()
            && k.open_time.is_empty()
            && g.from.is_empty()
            && quality.is_empty()
            && polled.is_empty()
            && indicators.is_empty()
            && sentiment.is_empty()
            && windows.is_empty()
            && features.is_empty()
        {
            return Ok(());
        }
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify(&e, "begin"))?;
        if !t.trade_id.is_empty() {
            let stmt = tx
                .prepare_cached(TRADES_SQL)
                .await
                .map_err(|e| classify(&e, "prepare trades"))?;
            tx.execute(
                &stmt,
                &[
                    &t.venue,
                    &t.symbol,
                    &t.trade_id,
                    &t.price,
                    &t.qty,
                    &t.side,
                    &t.ts_exchange,
                    &t.ts_received,
                    &t.first_id,
                    &t.last_id,
                    &t.is_whale,
                    &t.ma,
                    &t.ema,
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert trades"))?;
        }
        if !k.open_time.is_empty() {
            let stmt = tx
                .prepare_cached(CANDLES_SQL)
                .await
                .map_err(|e| classify(&e, "prepare candles"))?;
            tx.execute(
                &stmt,
                &[
                    &k.venue,
                    &k.symbol,
                    &k.interval,
                    &k.open_time,
                    &k.close_time,
                    &k.o,
                    &k.h,
                    &k.l,
                    &k.c,
                    &k.v,
                    &k.qv,
                    &k.vwap,
                    &k.n,
                    &k.tbv,
                    &k.first,
                    &k.last,
                    &k.fin,
                ],
            )
            .await
            .map_err(|e| classify(&e, "upsert candles"))?;
        }
        if !g.from.is_empty() {
            let stmt = tx
                .prepare_cached(GAPS_SQL)
                .await
                .map_err(|e| classify(&e, "prepare gaps"))?;
            tx.execute(
                &stmt,
                &[
                    &g.venue,
                    &g.symbol,
                    &g.kind,
                    &g.reason,
                    &g.from,
                    &g.to,
                    &g.since,
                    &g.detected,
                    &g.refilled,
                    &g.detail,
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert gaps"))?;
        }
        for q in quality {
            let n = |v: u64| v.min(i64::MAX as u64) as i64;
            let stmt = tx
                .prepare_cached(QUALITY_SQL)
                .await
                .map_err(|e| classify(&e, "prepare data_quality"))?;
            tx.execute(
                &stmt,
                &[
                    &q.source,
                    &q.symbol,
                    &q.snapshot_at,
                    &n(q.frames),
                    &n(q.trades),
                    &n(q.gaps_detected),
                    &n(q.gaps_refilled),
                    &n(q.ids_refilled),
                    &n(q.ids_unrefillable),
                    &n(q.duplicates),
                    &n(q.late_events),
                    &n(q.reconnects),
                    &n(q.decode_errors),
                    &n(q.kline_mismatches),
                    &q.last_event_ms,
                    &q.last_event_age_ms,
                    &q.stale,
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert data_quality"))?;
        }
        for p in polled {
            insert_polled(&tx, p).await?;
        }
        if !indicators.is_empty() {
            let stmt = tx
                .prepare_cached(&indicators_sql())
                .await
                .map_err(|e| classify(&e, "prepare indicators"))?;
            for r in indicators {
                let floats = r.values.floats();
                let (venue, symbol, interval) =
                    (r.venue.as_str(), r.symbol.as_str(), r.interval.label());
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
                    &venue,
                    &symbol,
                    &interval,
                    &r.open_time,
                    &r.close_time,
                    &r.close,
                ];
                for f in &floats {
                    params.push(f);
                }
                params.push(&r.values.vwap_20);
                tx.execute(&stmt, &params)
                    .await
                    .map_err(|e| classify(&e, "insert indicators"))?;
            }
        }
        for r in sentiment {
            let stmt = tx
                .prepare_cached(SENTIMENT_SQL)
                .await
                .map_err(|e| classify(&e, "prepare sentiment"))?;
            let s = &r.score;
            tx.execute(
                &stmt,
                &[
                    &r.item_key,
                    &r.model,
                    &r.kind,
                    &r.published_at,
                    &r.coins,
                    &s.neg,
                    &s.neu,
                    &s.pos,
                    &s.compound,
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert sentiment"))?;
        }
        // In order: a window's later value replaces its earlier one, never a larger count.
        for w in windows {
            let stmt = tx
                .prepare_cached(WINDOW_SQL)
                .await
                .map_err(|e| classify(&e, "prepare sentiment_coin_windows"))?;
            let items = i64::try_from(w.items).unwrap_or(i64::MAX);
            tx.execute(
                &stmt,
                &[
                    &w.coin,
                    &w.model,
                    &w.span,
                    &w.window_end,
                    &items,
                    &w.mean_compound,
                    &w.positive_share,
                    &w.negative_share,
                ],
            )
            .await
            .map_err(|e| classify(&e, "upsert sentiment_coin_windows"))?;
        }
        for f in features {
            let stmt = tx
                .prepare_cached(FEATURES_SQL)
                .await
                .map_err(|e| classify(&e, "prepare ml_features"))?;
            tx.execute(
                &stmt,
                &[
                    &f.venue.as_str(),
                    &f.symbol.as_str(),
                    &f.interval.label(),
                    &f.open_time,
                    &f.close_time,
                    &f.json(),
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert ml_features"))?;
        }
        tx.commit().await.map_err(|e| classify(&e, "commit"))
    }
}

const FEATURES_SQL: &str = "
INSERT INTO ml_features (venue, symbol, interval, open_time, close_time, features)
VALUES ($1, $2, $3, 'epoch'::timestamptz + $4::int8 * interval '1 millisecond',
        'epoch'::timestamptz + $5::int8 * interval '1 millisecond', $6::text::jsonb)
ON CONFLICT DO NOTHING";

const WINDOW_SQL: &str = "
INSERT INTO sentiment_coin_windows AS w (coin, model, span, window_end, items, mean_compound,
    positive_share, negative_share)
VALUES ($1, $2, $3, 'epoch'::timestamptz + $4::int8 * interval '1 millisecond', $5, $6, $7, $8)
ON CONFLICT (coin, model, span, window_end) DO UPDATE SET
    items = EXCLUDED.items, mean_compound = EXCLUDED.mean_compound,
    positive_share = EXCLUDED.positive_share, negative_share = EXCLUDED.negative_share,
    updated_at = now()
WHERE w.items <= EXCLUDED.items";

const SENTIMENT_SQL: &str = "
INSERT INTO sentiment (item_key, model, kind, published_at, coins, neg, neu, pos, compound)
VALUES ($1, $2, $3, 'epoch'::timestamptz + $4::int8 * interval '1 millisecond', $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING";

const MARKET_SQL: &str = "
INSERT INTO coingecko_data (coin_id, vs_currency, endpoint, last_updated, symbol, name, price, market_cap,
    market_cap_rank, total_volume, high_24h, low_24h, price_change_24h, price_change_pct_24h,
    circulating_supply, total_supply, max_supply, ath, atl, fetched_at, raw)
VALUES ($1, $2, $3, 'epoch'::timestamptz + $4::int8 * interval '1 millisecond', $5, $6, $7, $8, $9::int8, $10,
    $11, $12, $13, $14, $15, $16, $17, $18, $19, 'epoch'::timestamptz + $20::int8 * interval '1 millisecond',
    $21::text::json)
ON CONFLICT DO NOTHING";

const NEWS_SQL: &str = "
INSERT INTO news (item_key, feed, guid, title, link, summary, published_at, published_from, fetched_at, coins)
VALUES ($1, $2, $3, $4, $5, $6, 'epoch'::timestamptz + $7::int8 * interval '1 millisecond', $8,
    'epoch'::timestamptz + $9::int8 * interval '1 millisecond', $10)
ON CONFLICT DO NOTHING";

const SOCIAL_SQL: &str = "
INSERT INTO social_posts (platform, post_id, community, author, title, body, url, permalink, score,
    num_comments, created_at, fetched_at, coins)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'epoch'::timestamptz + $11::int8 * interval '1 millisecond',
    'epoch'::timestamptz + $12::int8 * interval '1 millisecond', $13)
ON CONFLICT DO NOTHING";

const MACRO_SQL: &str = "
INSERT INTO macro_observations (series_id, date, realtime_start, realtime_end, value, fetched_at)
VALUES ($1, $2::text::date, $3::text::date, $4::text::date, $5, now())
ON CONFLICT DO NOTHING";

const FUND_SQL: &str = "
INSERT INTO fund_navs (isin, nav_date, name, currency, nav, source, fetched_at)
VALUES ($1, $2::text::date, $3, $4, $5, $6, 'epoch'::timestamptz + $7::int8 * interval '1 millisecond')
ON CONFLICT DO NOTHING";

/// Insert-once of one indicator row (the first row of a candle is kept).
fn indicators_sql() -> String {
    let floats = FLOAT_COLUMNS.join(", ");
    let params: Vec<String> = (7..7 + FLOAT_COLUMNS.len() + 1)
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "INSERT INTO indicators (venue, symbol, interval, open_time, close_time, close, {floats}, vwap_20)
         VALUES ($1, $2, $3, 'epoch'::timestamptz + $4::int8 * interval '1 millisecond',
                 'epoch'::timestamptz + $5::int8 * interval '1 millisecond', $6, {})
         ON CONFLICT DO NOTHING",
        params.join(", ")
    )
}

/// Inserts one polled item unless its natural key is already there.
async fn insert_polled(
    tx: &deadpool_postgres::Transaction<'_>,
    item: &Polled,
) -> Result<(), SinkError> {
    let what = item.kind();
    let (sql, params): (
        &str,
        Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
    ) = match item {
        Polled::Market(m) => (
            MARKET_SQL,
            vec![
                Box::new(m.coin_id.clone()),
                Box::new(m.vs_currency.clone()),
                Box::new(m.endpoint.clone()),
                Box::new(m.last_updated),
                Box::new(m.symbol.clone()),
                Box::new(m.name.clone()),
                Box::new(m.price),
                Box::new(m.market_cap),
                Box::new(m.market_cap_rank),
                Box::new(m.total_volume),
                Box::new(m.high_24h),
                Box::new(m.low_24h),
                Box::new(m.price_change_24h),
                Box::new(m.price_change_pct_24h),
                Box::new(m.circulating_supply),
                Box::new(m.total_supply),
                Box::new(m.max_supply),
                Box::new(m.ath),
                Box::new(m.atl),
                Box::new(m.fetched_at),
                Box::new(m.raw.clone()),
            ],
        ),
        Polled::News(n) => (
            NEWS_SQL,
            vec![
                Box::new(n.item_key.clone()),
                Box::new(n.feed.clone()),
                Box::new(n.guid.clone()),
                Box::new(n.title.clone()),
                Box::new(n.link.clone()),
                Box::new(n.summary.clone()),
                Box::new(n.published_at),
                Box::new(n.published_from.clone()),
                Box::new(n.fetched_at),
                Box::new(n.coins.clone()),
            ],
        ),
        Polled::Social(p) => (
            SOCIAL_SQL,
            vec![
                Box::new(p.platform.clone()),
                Box::new(p.post_id.clone()),
                Box::new(p.community.clone()),
                Box::new(p.author.clone()),
                Box::new(p.title.clone()),
                Box::new(p.body.clone()),
                Box::new(p.url.clone()),
                Box::new(p.permalink.clone()),
                Box::new(p.score),
                Box::new(p.num_comments),
                Box::new(p.created_at),
                Box::new(p.fetched_at),
                Box::new(p.coins.clone()),
            ],
        ),
        Polled::Macro(m) => (
            MACRO_SQL,
            vec![
                Box::new(m.series_id.clone()),
                Box::new(m.date.to_string()),
                Box::new(m.realtime_start.to_string()),
                Box::new(m.realtime_end.to_string()),
                Box::new(m.value),
            ],
        ),
        Polled::FundNav(f) => (
            FUND_SQL,
            vec![
                Box::new(f.isin.clone()),
                Box::new(f.nav_date.to_string()),
                Box::new(f.name.clone()),
                Box::new(f.currency.clone()),
                Box::new(f.nav),
                Box::new(f.source.clone()),
                Box::new(f.fetched_at),
            ],
        ),
    };
    let stmt = tx
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(&e, &format!("prepare {what}")))?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    tx.execute(&stmt, &refs)
        .await
        .map_err(|e| classify(&e, &format!("insert {what}")))?;
    Ok(())
}
