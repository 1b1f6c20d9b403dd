//! The read model of `cryptoflow serve`: the PostgreSQL tables and views the pipeline writes,
//! read in read-only transactions (`default_transaction_read_only`; give `serve` a role with
//! `SELECT` only, see the README).
//!
//! Each query builds the JSON of a model type in SQL (times as epoch milliseconds, decimals as
//! strings) and deserializes it into that type, so the API answers the same JSON from PostgreSQL
//! as from the in-process board.

use std::str::FromStr;

use cryptoflow_operators::dataflow::WhaleThresholds;
use cryptoflow_operators::model::{
    Candle, CoinMarket, EnrichedTrade, FeatureRow, IndicatorRow, Interval, MacroObservation,
    Millis, NewsItem, SentimentRow, SentimentWindowRow, Symbol, Trade, WhaleAlert,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio_postgres::types::ToSql;

use super::board::PriceNow;

/// Latest representable time the queries accept (year 3000), and the earliest (the epoch).
const MAX_MS: Millis = 32_503_680_000_000;

/// `ms(x)`: a `timestamptz` as epoch milliseconds.
const MS: &str = "(extract(epoch FROM {}) * 1000)::bigint";

fn ms(col: &str) -> String {
    MS.replace("{}", col)
}

/// A trade row of table `t` as the JSON of [`Trade`].
fn trade_json(t: &str) -> String {
    format!(
        "json_build_object('venue', {t}.venue, 'symbol', {t}.symbol, 'trade_id', {t}.trade_id, \
         'price', {t}.price::text, 'qty', {t}.qty::text, 'side', {t}.side, \
         'ts_exchange', {ex}, 'ts_received', {rx}, \
         'agg', CASE WHEN {t}.first_trade_id IS NULL THEN NULL ELSE \
                json_build_object('first_trade_id', {t}.first_trade_id, \
                                  'last_trade_id', {t}.last_trade_id) END)",
        ex = ms(&format!("{t}.ts_exchange")),
        rx = ms(&format!("{t}.ts_received")),
    )
}

/// A read-only pool on the pipeline's database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    whales: WhaleThresholds,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(String);

fn read_err(what: &str) -> impl Fn(tokio_postgres::Error) -> ReadError + '_ {
    move |e| match e.as_db_error() {
        Some(db) => ReadError(format!("{what}: {}", db.message())),
        None => ReadError(format!("{what}: {e}")),
    }
}

impl PgStore {
    /// A pool of at most `size` connections to `url`, every transaction read-only.
    pub fn connect(url: &str, size: usize, whales: WhaleThresholds) -> anyhow::Result<Self> {
        let mut cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("the PostgreSQL URL is not valid: {e}",))?;
        cfg.options("-c default_transaction_read_only=on");
        let mgr = Manager::from_config(
            cfg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(size.max(1))
            .build()
            .map_err(|e| anyhow::anyhow!("PostgreSQL pool: {e}"))?;
        Ok(PgStore { pool, whales })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadError> {
        self.pool
            .get()
            .await
            .map_err(|e| ReadError(format!("no PostgreSQL connection: {e}")))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    /// Rows of `sql`, each turned into JSON and deserialized as `T`.
    async fn rows<T: DeserializeOwned>(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, ReadError> {
        let c = self.client().await?;
        let wrapped = format!("SELECT row_to_json(q)::text FROM ({sql}) q");
        let rows = c.query(&wrapped, params).await.map_err(read_err(what))?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text).map_err(|e| ReadError(format!("{what}: {e}: {text}")))
            })
            .collect()
    }

    /// The instruments with a price.
    pub async fn symbols(&self) -> Result<Vec<Symbol>, ReadError> {
        #[derive(Deserialize)]
        struct Row {
            symbol: Symbol,
        }
        let rows: Vec<Row> = self
            .rows(
                "symbols",
                "SELECT DISTINCT symbol FROM trade_aggregates ORDER BY symbol",
                &[],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.symbol).collect())
    }

    /// Whether `symbol` has trades or candles.
    pub async fn knows(&self, symbol: &Symbol) -> Result<bool, ReadError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM trade_aggregates WHERE symbol = $1) \
                     OR EXISTS (SELECT 1 FROM candles WHERE symbol = $1)",
                &[&symbol.as_str()],
            )
            .await
            .map_err(read_err("symbol"))?;
        Ok(row.get(0))
    }

    /// The latest trade of `symbol` (of its most recently updated venue).
    pub async fn price(&self, symbol: &Symbol) -> Result<Option<PriceNow>, ReadError> {
        #[derive(Deserialize)]
        struct Row {
            trade: Trade,
            moving_average: Decimal,
            ema: Option<f64>,
            is_whale: bool,
            trades_seen: u64,
        }
        let sql = format!(
            "SELECT {trade} AS trade, t.moving_average::text AS moving_average, t.ema, \
                    t.is_whale, a.trade_count AS trades_seen \
             FROM trade_aggregates a \
             JOIN trades t ON t.venue = a.venue AND t.symbol = a.symbol \
                          AND t.trade_id = a.last_trade_id \
             WHERE a.symbol = $1 ORDER BY a.updated_at DESC LIMIT 1",
            trade = trade_json("t")
        );
        let rows: Vec<Row> = self.rows("price", &sql, &[&symbol.as_str()]).await?;
        Ok(rows.into_iter().next().map(|r| PriceNow {
            trade: EnrichedTrade {
                whale_threshold: self.whales.for_symbol(&r.trade.symbol),
                trade: r.trade,
                moving_average: r.moving_average,
                ema: r.ema,
                is_whale: r.is_whale,
            },
            trades_seen: r.trades_seen,
        }))
    }

    /// Candles of `symbol` at `interval` with `from <= open_time < to`, the newest `limit`,
    /// oldest first; final ones only unless `with_forming`.
    pub async fn candles(
        &self,
        symbol: &Symbol,
        interval: Interval,
        (from, to): (Millis, Millis),
        limit: usize,
        with_forming: bool,
    ) -> Result<Vec<Candle>, ReadError> {
        let sql = format!(
            "SELECT venue, symbol, interval, {open} AS open_time, {close} AS close_time, \
                    open::text AS open, high::text AS high, low::text AS low, \
                    close::text AS close, volume::text AS volume, \
                    quote_volume::text AS quote_volume, vwap::text AS vwap, trade_count, \
                    taker_buy_volume::text AS taker_buy_volume, first_trade_id, last_trade_id, \
                    is_final \
             FROM candles \
             WHERE symbol = $1 AND interval = $2 \
               AND open_time >= to_timestamp($3::float8 / 1000) \
               AND open_time < to_timestamp($4::float8 / 1000) \
               AND (is_final OR $5) \
             ORDER BY open_time DESC LIMIT $6",
            open = ms("open_time"),
            close = ms("close_time"),
        );
        let (from, to) = clamp(from, to);
        let mut rows: Vec<Candle> = self
            .rows(
                "candles",
                &sql,
                &[
                    &symbol.as_str(),
                    &interval.label(),
                    &from,
                    &to,
                    &with_forming,
                    &(limit as i64),
                ],
            )
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// Indicator rows of `symbol` at `interval` with `from <= open_time < to`, the newest
    /// `limit`, oldest first.
    pub async fn indicators(
        &self,
        symbol: &Symbol,
        interval: Interval,
        (from, to): (Millis, Millis),
        limit: usize,
    ) -> Result<Vec<IndicatorRow>, ReadError> {
        let sql = format!(
            "SELECT venue, symbol, interval, {open} AS open_time, {close} AS close_time, \
                    close::text AS close, sma_20, ema_20, wma_20, rsi_14, macd, macd_signal, \
                    macd_hist, bb_upper, bb_middle, bb_lower, atr_14, obv, stoch_k, stoch_d, \
                    roc_10, mom_10, volatility_20, zscore_20, vwap_20::text AS vwap_20 \
             FROM indicators \
             WHERE symbol = $1 AND interval = $2 \
               AND open_time >= to_timestamp($3::float8 / 1000) \
               AND open_time < to_timestamp($4::float8 / 1000) \
             ORDER BY open_time DESC LIMIT $5",
            open = ms("open_time"),
            close = ms("close_time"),
        );
        let (from, to) = clamp(from, to);
        let mut rows: Vec<IndicatorRow> = self
            .rows(
                "indicators",
                &sql,
                &[
                    &symbol.as_str(),
                    &interval.label(),
                    &from,
                    &to,
                    &(limit as i64),
                ],
            )
            .await?;
        rows.reverse();
        Ok(rows)
    }

    /// The feature vector of `symbol` in force at `at` (the newest whose candle closed by
    /// then), or the newest.
    pub async fn features_at(
        &self,
        symbol: &Symbol,
        interval: Interval,
        at: Option<Millis>,
    ) -> Result<Option<FeatureRow>, ReadError> {
        #[derive(Deserialize)]
        struct Row {
            venue: cryptoflow_operators::model::Venue,
            symbol: Symbol,
            interval: Interval,
            open_time: Millis,
            close_time: Millis,
            features: serde_json::Map<String, serde_json::Value>,
        }
        let sql = format!(
            "SELECT venue, symbol, interval, {open} AS open_time, {close} AS close_time, features \
             FROM ml_features \
             WHERE symbol = $1 AND interval = $2 \
               AND close_time <= to_timestamp($3::float8 / 1000) \
             ORDER BY close_time DESC LIMIT 1",
            open = ms("open_time"),
            close = ms("close_time"),
        );
        let at = at.unwrap_or(MAX_MS).clamp(0, MAX_MS) as f64;
        let rows: Vec<Row> = self
            .rows(
                "ml features",
                &sql,
                &[&symbol.as_str(), &interval.label(), &at],
            )
            .await?;
        Ok(rows.into_iter().next().map(|r| FeatureRow {
            venue: r.venue,
            symbol: r.symbol,
            interval: r.interval,
            open_time: r.open_time,
            close_time: r.close_time,
            values: cryptoflow_operators::features::CATALOGUE
                .iter()
                .map(|f| r.features.get(f.name).and_then(serde_json::Value::as_f64))
                .collect(),
        }))
    }

    /// Whale alerts of `symbol` (all when `None`) at or after `since`, the newest first.
    pub async fn whales(
        &self,
        symbol: Option<&Symbol>,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<WhaleAlert>, ReadError> {
        #[derive(Deserialize)]
        struct Row {
            trade: Trade,
            notional: Decimal,
        }
        let sql = format!(
            "SELECT {trade} AS trade, w.notional::text AS notional \
             FROM whale_trades w \
             WHERE ($1::text IS NULL OR w.symbol = $1) \
               AND w.ts_exchange >= to_timestamp($2::float8 / 1000) \
             ORDER BY w.ts_exchange DESC, w.trade_id DESC LIMIT $3",
            trade = trade_json("w")
        );
        let since = since.clamp(0, MAX_MS) as f64;
        let rows: Vec<Row> = self
            .rows(
                "whales",
                &sql,
                &[&symbol.map(Symbol::as_str), &since, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| WhaleAlert {
                threshold: self.whales.for_symbol(&r.trade.symbol),
                trade: r.trade,
                notional: r.notional,
            })
            .collect())
    }

    /// The newest sentiment window of `coin` (upper case) per span.
    pub async fn sentiment(&self, coin: &str) -> Result<Vec<SentimentWindowRow>, ReadError> {
        let sql = format!(
            "SELECT DISTINCT ON (span) coin, model, span, {end} AS window_end, items, \
                    mean_compound, positive_share, negative_share \
             FROM sentiment_coin_windows WHERE upper(coin) = $1 \
             ORDER BY span, window_end DESC, updated_at DESC",
            end = ms("window_end")
        );
        self.rows("sentiment", &sql, &[&coin]).await
    }

    /// The newest scored news items and posts about `coin` (all when `None`), newest first,
    /// with the news item when it is one.
    pub async fn news(
        &self,
        coin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Option<NewsItem>, SentimentRow)>, ReadError> {
        #[derive(Deserialize)]
        struct Row {
            item: Option<NewsItem>,
            score: SentimentRow,
        }
        let sql = format!(
            "SELECT CASE WHEN n.item_key IS NULL THEN NULL ELSE json_build_object( \
                        'item_key', n.item_key, 'feed', n.feed, 'guid', n.guid, \
                        'title', n.title, 'link', n.link, 'summary', n.summary, \
                        'published_at', {npub}, 'published_from', n.published_from, \
                        'fetched_at', {nfetch}, 'coins', n.coins) END AS item, \
                    json_build_object('item_key', s.item_key, 'kind', s.kind, 'model', s.model, \
                        'published_at', {spub}, 'coins', s.coins, \
                        'score', json_build_object('neg', s.neg, 'neu', s.neu, 'pos', s.pos, \
                                                   'compound', s.compound)) AS score \
             FROM sentiment s LEFT JOIN news n ON n.item_key = s.item_key \
             WHERE $1::text IS NULL OR EXISTS ( \
                   SELECT 1 FROM unnest(s.coins) c WHERE upper(c) = upper($1)) \
             ORDER BY s.published_at DESC, s.item_key LIMIT $2",
            npub = ms("n.published_at"),
            nfetch = ms("n.fetched_at"),
            spub = ms("s.published_at"),
        );
        let rows: Vec<Row> = self.rows("news", &sql, &[&coin, &(limit as i64)]).await?;
        Ok(rows.into_iter().map(|r| (r.item, r.score)).collect())
    }

    /// The newest data-quality snapshot per (source, symbol), and the open gaps, newest first.
    pub async fn quality(
        &self,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>), ReadError> {
        let sources = self
            .rows(
                "data quality",
                &format!(
                    "SELECT source, symbol, {snap} AS snapshot_at, frames, trades, \
                            gaps_detected, gaps_refilled, ids_refilled, ids_unrefillable, \
                            duplicates, late_events, reconnects, decode_errors, \
                            kline_mismatches, {last} AS last_event_ms, last_event_age_ms, stale \
                     FROM data_quality_latest ORDER BY source, symbol",
                    snap = ms("snapshot_at"),
                    last = ms("last_event_at"),
                ),
                &[],
            )
            .await?;
        let events = self
            .rows(
                "open gaps",
                &format!(
                    "SELECT 'gap' AS type, venue, symbol, kind, reason, \
                            NULLIF(from_id, -1) AS from_id, NULLIF(to_id, -1) AS to_id, \
                            {since} AS since, {until} AS until, false AS refilled, detail \
                     FROM open_gaps ORDER BY detected_at DESC LIMIT $1",
                    since = ms("since"),
                    until = ms("detected_at"),
                ),
                &[&(limit as i64)],
            )
            .await?;
        Ok((sources, events))
    }

    /// The newest CoinGecko market row per coin and quote currency.
    pub async fn markets(&self) -> Result<Vec<CoinMarket>, ReadError> {
        let sql = format!(
            "SELECT coin_id, vs_currency, endpoint, {upd} AS last_updated, symbol, name, \
                    price::text AS price, market_cap::text AS market_cap, market_cap_rank, \
                    total_volume::text AS total_volume, high_24h::text AS high_24h, \
                    low_24h::text AS low_24h, price_change_24h::text AS price_change_24h, \
                    price_change_pct_24h::text AS price_change_pct_24h, \
                    circulating_supply::text AS circulating_supply, \
                    total_supply::text AS total_supply, max_supply::text AS max_supply, \
                    ath::text AS ath, atl::text AS atl, {fetched} AS fetched_at, raw::text AS raw \
             FROM coingecko_latest ORDER BY coin_id, vs_currency",
            upd = ms("last_updated"),
            fetched = ms("fetched_at"),
        );
        self.rows("markets", &sql, &[]).await
    }

    /// The observations of a macro series (upper case), oldest first (the newest vintage of
    /// each date).
    pub async fn macro_series(
        &self,
        series: &str,
    ) -> Result<Option<Vec<MacroObservation>>, ReadError> {
        let rows: Vec<MacroObservation> = self
            .rows(
                "macro",
                "SELECT series_id, date, value::text AS value, realtime_start, realtime_end \
                 FROM macro_latest WHERE upper(series_id) = $1 ORDER BY date",
                &[&series],
            )
            .await?;
        Ok((!rows.is_empty()).then_some(rows))
    }
}

/// A time range as floats the queries take, inside what `to_timestamp` accepts.
fn clamp(from: Millis, to: Millis) -> (f64, f64) {
    (from.clamp(0, MAX_MS) as f64, to.clamp(0, MAX_MS) as f64)
}
