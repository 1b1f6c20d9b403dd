//! MySQL / MariaDB sink and migration runner: the same tables as PostgreSQL (`sql/mysql/`).
//!
//! Each flush is one transaction. Trades: per symbol, the ids of the batch that already exist are
//! read `FOR UPDATE` (which also locks the id range against a parallel flush), the new ones are
//! written with batched multi-row `INSERT … ON DUPLICATE KEY UPDATE`, and `trade_aggregates` grows
//! by exactly those new trades — so replays and redeliveries never double count. Candles are
//! upserted with the same rule as PostgreSQL: a final row wins, a forming row only replaces a
//! forming row with no more trades than itself. Gaps and data-quality snapshots are inserted
//! once per key (`INSERT IGNORE`); polled items (news, posts, market snapshots, macro
//! observations, fund NAVs) once per natural key. Sessions run in UTC.

use std::collections::{BTreeMap, BTreeSet};

use cryptoflow_operators::dataflow::{EnrichedTrade, IndicatorRow};
use cryptoflow_operators::features::FeatureRow;
use cryptoflow_operators::math::indicators::FLOAT_COLUMNS;
use cryptoflow_operators::model::{DataQuality, Gap, Symbol, Venue};
use cryptoflow_operators::polled::Polled;
use cryptoflow_operators::sentiment::windows::SentimentWindowRow;
use cryptoflow_operators::sentiment::SentimentRow;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, TxOpts, Value};
use rust_decimal::Decimal;

use crate::now_ms;
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

/// Rows per multi-row statement (keeps placeholders well under the 65,535 limit).
const CHUNK: usize = 1_000;

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

/// Applies pending migrations; returns the versions applied now (idempotent; a named lock
/// serializes concurrent migrators).
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
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let done: Option<i32> = conn
            .exec_first(
                "SELECT version FROM schema_migrations WHERE version = ?",
                (*version,),
            )
            .await
            .map_err(ctx("read migrations"))?;
        if done.is_some() {
            continue;
        }
        // DDL commits implicitly in MySQL; every statement is idempotent (IF NOT EXISTS / OR REPLACE).
        for stmt in statements(sql) {
            conn.query_drop(stmt)
                .await
                .map_err(|e| classify(&e, &format!("migration {version} ({name})")))?;
        }
        conn.exec_drop(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
            (*version, *name),
        )
        .await
        .map_err(ctx("record migration"))?;
        applied.push(*version);
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
        conn.query_drop(
            "SELECT 1 FROM trades, candles, trade_aggregates, gaps, data_quality, coingecko_data, news, social_posts, macro_observations, fund_navs, indicators, sentiment, sentiment_coin_windows, ml_features LIMIT 0",
        )
        .await
        .map_err(|e| classify(&e, "schema check"))?;
        Ok(MySqlSink { pool })
    }
}

fn ts(ms: i64) -> String {
    // DATETIME(3) literal in UTC from ms since the epoch.
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{milli:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn placeholders(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(","));
    vec![one; rows].join(",")
}

impl Sink for MySqlSink {
    fn name(&self) -> &'static str {
        SINK
    }

    /// Flushes commute (see the module doc), so they may run in parallel.
    fn fork(&self) -> Option<Self> {
        Some(MySqlSink {
            pool: self.pool.clone(),
        })
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let mut trades: BTreeMap<(Venue, Symbol), Vec<&EnrichedTrade>> = BTreeMap::new();
        let mut gaps: Vec<&Gap> = Vec::new();
        let mut quality: Vec<&DataQuality> = Vec::new();
        let mut polled: Vec<&Polled> = Vec::new();
        let mut indicators: Vec<&IndicatorRow> = Vec::new();
        let mut sentiment: Vec<&SentimentRow> = Vec::new();
        let mut windows: Vec<&SentimentWindowRow> = Vec::new();
        let mut features: Vec<&FeatureRow> = Vec::new();
        for r in records {
            match r {
                Output::Trade(e) => trades
                    .entry((e.trade.venue, e.trade.symbol))
                    .or_default()
                    .push(e),
                Output::Gap(g) => gaps.push(g),
                Output::Quality(q) => quality.push(q),
                Output::Polled(p) => polled.push(p),
                Output::Indicators(i) => indicators.push(i),
                Output::Sentiment(x) => sentiment.push(x),
                Output::SentimentWindow(w) => windows.push(w),
                Output::Features(f) => features.push(f),
                Output::Candle(_) | Output::Whale(_) | Output::Late(_) | Output::Mismatch(_) => {}
            }
        }
        let candles = latest_candles(records);
        if trades.is_empty()
            && candles.is_empty()
            && gaps.is_empty()
            && quality.is_empty()
            && polled.is_empty()
            && indicators.is_empty()
            && sentiment.is_empty()
            && windows.is_empty()
            && features.is_empty()
        {
            return Ok(());
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
            if new.is_empty() {
                continue;
            }
            for chunk in new.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO trades (venue, symbol, trade_id, price, qty, side, ts_exchange, ts_received, first_trade_id,
                                         last_trade_id, is_whale, moving_average, ema)
                     VALUES {} ON DUPLICATE KEY UPDATE trade_id = trade_id",
                    placeholders(chunk.len(), 13)
                );
                let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 13);
                for e in chunk {
                    let t = &e.trade;
                    params.extend([
                        Value::from(t.venue.as_str()),
                        Value::from(t.symbol.as_str()),
                        Value::from(t.trade_id),
                        Value::from(t.price),
                        Value::from(t.qty),
                        Value::from(t.side.as_str()),
                        Value::from(ts(t.ts_exchange)),
                        Value::from(ts(t.ts_received)),
                        Value::from(t.agg.map(|a| a.first_trade_id)),
                        Value::from(t.agg.map(|a| a.last_trade_id)),
                        Value::from(e.is_whale),
                        Value::from(e.moving_average),
                        Value::from(e.ema.filter(|x| x.is_finite())),
                    ]);
                }
                tx.exec_drop(sql, params)
                    .await
                    .map_err(|e| classify(&e, "insert trades"))?;
            }
            let n = new.len() as u64;
            let vol: Decimal = new.iter().map(|e| e.trade.qty).sum();
            let qvol: Decimal = new.iter().map(|e| e.trade.price * e.trade.qty).sum();
            let last = new[new.len() - 1];
            let updated = new
                .iter()
                .map(|e| e.trade.ts_exchange)
                .max()
                .unwrap_or(last.trade.ts_exchange);
            tx.exec_drop(
                "INSERT INTO trade_aggregates (venue, symbol, moving_average, trade_count, total_volume, total_quote_volume,
                                               last_trade_id, last_price, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE
                     moving_average = IF(VALUES(last_trade_id) > last_trade_id, VALUES(moving_average), moving_average),
                     last_price = IF(VALUES(last_trade_id) > last_trade_id, VALUES(last_price), last_price),
                     last_trade_id = GREATEST(last_trade_id, VALUES(last_trade_id)),
                     trade_count = trade_count + VALUES(trade_count),
                     total_volume = total_volume + VALUES(total_volume),
                     total_quote_volume = total_quote_volume + VALUES(total_quote_volume),
                     updated_at = GREATEST(updated_at, VALUES(updated_at))",
                (
                    venue.as_str(),
                    symbol.as_str(),
                    last.moving_average,
                    n,
                    vol,
                    qvol,
                    last.trade.trade_id,
                    last.trade.price,
                    ts(updated),
                ),
            )
            .await
            .map_err(|e| classify(&e, "update trade_aggregates"))?;
        }
        for chunk in candles.chunks(CHUNK) {
            // Columns are assigned left to right: the guard reads the old trade_count and
            // is_final, so those two are assigned last.
            let keep = "(VALUES(is_final) AND (NOT is_final OR VALUES(trade_count) >= trade_count)) OR (NOT is_final AND VALUES(trade_count) >= trade_count)";
            let cols = [
                "close_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "quote_volume",
                "vwap",
                "taker_buy_volume",
                "first_trade_id",
                "last_trade_id",
            ];
            let mut set: Vec<String> = cols
                .iter()
                .map(|c| format!("{c} = IF({keep}, VALUES({c}), {c})"))
                .collect();
            set.push(format!(
                "trade_count = IF({keep}, VALUES(trade_count), trade_count)"
            ));
            set.push("is_final = is_final OR VALUES(is_final)".to_string());
            set.push("updated_at = CURRENT_TIMESTAMP(3)".to_string());
            let sql = format!(
                "INSERT INTO candles (venue, symbol, `interval`, open_time, close_time, open, high, low, close, volume, quote_volume,
                                      vwap, trade_count, taker_buy_volume, first_trade_id, last_trade_id, is_final)
                 VALUES {} ON DUPLICATE KEY UPDATE {}",
                placeholders(chunk.len(), 17),
                set.join(", ")
            );
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 17);
            for c in chunk {
                params.extend([
                    Value::from(c.venue.as_str()),
                    Value::from(c.symbol.as_str()),
                    Value::from(c.interval.label()),
                    Value::from(ts(c.open_time)),
                    Value::from(ts(c.close_time)),
                    Value::from(c.open),
                    Value::from(c.high),
                    Value::from(c.low),
                    Value::from(c.close),
                    Value::from(c.volume),
                    Value::from(c.quote_volume),
                    Value::from(c.vwap),
                    Value::from(c.trade_count),
                    Value::from(c.taker_buy_volume),
                    Value::from(c.first_trade_id),
                    Value::from(c.last_trade_id),
                    Value::from(c.is_final),
                ]);
            }
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, "upsert candles"))?;
        }
        for chunk in gaps.chunks(CHUNK) {
            let sql = format!(
                "INSERT IGNORE INTO gaps (venue, symbol, kind, reason, from_id, to_id, since, detected_at, resolved_at, detail)
                 VALUES {}",
                placeholders(chunk.len(), 10)
            );
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 10);
            let now = ts(now_ms());
            for g in chunk {
                let id = |v: Option<u64>| v.map(|x| x.min(i64::MAX as u64) as i64).unwrap_or(-1);
                params.extend([
                    Value::from(g.venue.as_str()),
                    Value::from(g.symbol.as_str()),
                    Value::from(g.kind.as_str()),
                    Value::from(g.reason.as_str()),
                    Value::from(id(g.from_id)),
                    Value::from(id(g.to_id)),
                    Value::from(ts(g.since)),
                    Value::from(ts(g.until)),
                    if g.refilled {
                        Value::from(now.clone())
                    } else {
                        Value::NULL
                    },
                    Value::from(g.detail.as_str()),
                ]);
            }
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, "insert gaps"))?;
        }
        for chunk in quality.chunks(CHUNK) {
            let sql = format!(
                "INSERT IGNORE INTO data_quality (source, symbol, snapshot_at, frames, trades, gaps_detected, gaps_refilled,
                     ids_refilled, ids_unrefillable, duplicates, late_events, reconnects, decode_errors, kline_mismatches,
                     last_event_at, last_event_age_ms, stale)
                 VALUES {}",
                placeholders(chunk.len(), 17)
            );
            let n = |v: u64| Value::from(v.min(i64::MAX as u64) as i64);
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 17);
            for q in chunk {
                params.extend([
                    Value::from(q.source.as_str()),
                    Value::from(q.symbol.as_str()),
                    Value::from(ts(q.snapshot_at)),
                    n(q.frames),
                    n(q.trades),
                    n(q.gaps_detected),
                    n(q.gaps_refilled),
                    n(q.ids_refilled),
                    n(q.ids_unrefillable),
                    n(q.duplicates),
                    n(q.late_events),
                    n(q.reconnects),
                    n(q.decode_errors),
                    n(q.kline_mismatches),
                    if q.last_event_ms > 0 {
                        Value::from(ts(q.last_event_ms))
                    } else {
                        Value::NULL
                    },
                    Value::from(q.last_event_age_ms),
                    Value::from(q.stale),
                ]);
            }
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, "insert data_quality"))?;
        }
        for chunk in indicators.chunks(CHUNK) {
            let ncols = 7 + FLOAT_COLUMNS.len();
            let sql = format!(
                "INSERT INTO indicators (venue, symbol, `interval`, open_time, close_time, close, {}, vwap_20)
                 VALUES {} ON DUPLICATE KEY UPDATE venue = venue",
                FLOAT_COLUMNS.join(", "),
                placeholders(chunk.len(), ncols)
            );
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * ncols);
            for r in chunk {
                params.extend([
                    Value::from(r.venue.as_str()),
                    Value::from(r.symbol.as_str()),
                    Value::from(r.interval.label()),
                    Value::from(ts(r.open_time)),
                    Value::from(ts(r.close_time)),
                    Value::from(r.close),
                ]);
                params.extend(r.values.floats().map(Value::from));
                params.push(Value::from(r.values.vwap_20));
            }
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, "insert indicators"))?;
        }
        for chunk in features.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO ml_features (venue, symbol, `interval`, open_time, close_time, features)
                 VALUES {} ON DUPLICATE KEY UPDATE venue = venue",
                placeholders(chunk.len(), 6)
            );
            let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
            for f in chunk {
                params.extend([
                    Value::from(f.venue.as_str()),
                    Value::from(f.symbol.as_str()),
                    Value::from(f.interval.label()),
                    Value::from(ts(f.open_time)),
                    Value::from(ts(f.close_time)),
                    Value::from(f.json()),
                ]);
            }
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, "insert ml_features"))?;
        }
        for r in sentiment {
            let s = &r.score;
            tx.exec_drop(
                "INSERT INTO sentiment (item_key, model, kind, published_at, coins, neg, neu, pos, compound)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE item_key = item_key",
                vec![
                    Value::from(r.item_key.as_str()),
                    Value::from(r.model.as_str()),
                    Value::from(r.kind.as_str()),
                    Value::from(ts(r.published_at)),
                    Value::from(serde_json::to_string(&r.coins).unwrap_or_else(|_| "[]".into())),
                    Value::from(s.neg),
                    Value::from(s.neu),
                    Value::from(s.pos),
                    Value::from(s.compound),
                ],
            )
            .await
            .map_err(|e| classify(&e, "insert sentiment"))?;
        }
        // In order: a window's later value replaces its earlier one, never a larger count.
        for w in windows {
            tx.exec_drop(
                "INSERT INTO sentiment_coin_windows (coin, model, span, window_end, items, mean_compound,
                     positive_share, negative_share)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE
                     mean_compound = IF(VALUES(items) >= items, VALUES(mean_compound), mean_compound),
                     positive_share = IF(VALUES(items) >= items, VALUES(positive_share), positive_share),
                     negative_share = IF(VALUES(items) >= items, VALUES(negative_share), negative_share),
                     updated_at = IF(VALUES(items) >= items, CURRENT_TIMESTAMP(3), updated_at),
                     items = GREATEST(VALUES(items), items)",
                vec![
                    Value::from(w.coin.as_str()),
                    Value::from(w.model.as_str()),
                    Value::from(w.span.as_str()),
                    Value::from(ts(w.window_end)),
                    Value::from(w.items),
                    Value::from(w.mean_compound),
                    Value::from(w.positive_share),
                    Value::from(w.negative_share),
                ],
            )
            .await
            .map_err(|e| classify(&e, "upsert sentiment_coin_windows"))?;
        }
        for p in polled {
            let (sql, params) = polled_row(p);
            tx.exec_drop(sql, params)
                .await
                .map_err(|e| classify(&e, &format!("insert {}", p.kind())))?;
        }
        tx.commit().await.map_err(|e| classify(&e, "commit"))
    }
}

/// The insert-once statement and parameters of one polled item.
fn polled_row(item: &Polled) -> (&'static str, Vec<Value>) {
    let coins =
        |c: &[String]| Value::from(serde_json::to_string(c).unwrap_or_else(|_| "[]".into()));
    match item {
        Polled::Market(m) => (
            "INSERT INTO coingecko_data (coin_id, vs_currency, endpoint, last_updated, symbol, name, price, market_cap,
                 market_cap_rank, total_volume, high_24h, low_24h, price_change_24h, price_change_pct_24h,
                 circulating_supply, total_supply, max_supply, ath, atl, fetched_at, raw)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE coin_id = coin_id",
            vec![
                Value::from(m.coin_id.as_str()),
                Value::from(m.vs_currency.as_str()),
                Value::from(m.endpoint.as_str()),
                Value::from(ts(m.last_updated)),
                Value::from(m.symbol.as_deref()),
                Value::from(m.name.as_deref()),
                Value::from(m.price),
                Value::from(m.market_cap),
                Value::from(m.market_cap_rank),
                Value::from(m.total_volume),
                Value::from(m.high_24h),
                Value::from(m.low_24h),
                Value::from(m.price_change_24h),
                Value::from(m.price_change_pct_24h),
                Value::from(m.circulating_supply),
                Value::from(m.total_supply),
                Value::from(m.max_supply),
                Value::from(m.ath),
                Value::from(m.atl),
                Value::from(ts(m.fetched_at)),
                Value::from(m.raw.as_str()),
            ],
        ),
        Polled::News(n) => (
            "INSERT INTO news (item_key, feed, guid, title, link, summary, published_at, published_from, fetched_at, coins)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE item_key = item_key",
            vec![
                Value::from(n.item_key.as_str()),
                Value::from(n.feed.as_str()),
                Value::from(n.guid.as_deref()),
                Value::from(n.title.as_str()),
                Value::from(n.link.as_deref()),
                Value::from(n.summary.as_str()),
                Value::from(ts(n.published_at)),
                Value::from(n.published_from.as_str()),
                Value::from(ts(n.fetched_at)),
                coins(&n.coins),
            ],
        ),
        Polled::Social(p) => (
            "INSERT INTO social_posts (platform, post_id, community, author, title, body, url, permalink, score,
                 num_comments, created_at, fetched_at, coins)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE post_id = post_id",
            vec![
                Value::from(p.platform.as_str()),
                Value::from(p.post_id.as_str()),
                Value::from(p.community.as_str()),
                Value::from(p.author.as_deref()),
                Value::from(p.title.as_str()),
                Value::from(p.body.as_str()),
                Value::from(p.url.as_deref()),
                Value::from(p.permalink.as_deref()),
                Value::from(p.score),
                Value::from(p.num_comments),
                Value::from(ts(p.created_at)),
                Value::from(ts(p.fetched_at)),
                coins(&p.coins),
            ],
        ),
        Polled::Macro(m) => (
            "INSERT INTO macro_observations (series_id, date, realtime_start, realtime_end, value, fetched_at)
             VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE series_id = series_id",
            vec![
                Value::from(m.series_id.as_str()),
                Value::from(m.date.to_string()),
                Value::from(m.realtime_start.to_string()),
                Value::from(m.realtime_end.to_string()),
                Value::from(m.value),
                Value::from(ts(now_ms())),
            ],
        ),
        Polled::FundNav(f) => (
            "INSERT INTO fund_navs (isin, nav_date, name, currency, nav, source, fetched_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE isin = isin",
            vec![
                Value::from(f.isin.as_str()),
                Value::from(f.nav_date.to_string()),
                Value::from(f.name.as_str()),
                Value::from(f.currency.as_str()),
                Value::from(f.nav),
                Value::from(f.source.as_str()),
                Value::from(ts(f.fetched_at)),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_datetime_literals() {
        assert_eq!(ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(ts(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(ts(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(ts(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn migration_statements() {
        let s = statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE VIEW v AS SELECT 1;\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x INT)", "CREATE VIEW v AS SELECT 1"]
        );
        assert_eq!(statements(MIGRATIONS[0].2).len(), 5);
        assert_eq!(statements(MIGRATIONS[1].2).len(), 4);
    }
}
