//! Every table the SQL sinks write, once: columns, key, conflict rule and the row of an item.
//!
//! Adding an output kind to the SQL sinks: a [`Table`] here, a migration per engine
//! (`sql/postgres/`, `sql/mysql/`) that creates it, views in `sql/*/views/`, and the table in
//! the write of `postgres.rs` and `mysql.rs` (which statement shape is used is the dialect's).

use std::borrow::Cow;

use cryptoflow_operators::dataflow::{EnrichedTrade, IndicatorRow};
use cryptoflow_operators::features::FeatureRow;
use cryptoflow_operators::math::indicators::FLOAT_COLUMNS;
use cryptoflow_operators::model::{
    Candle, DataQuality, Gap, Millis, Output, SignalRow, Symbol, Venue,
};
use cryptoflow_operators::polled::Polled;
use cryptoflow_operators::polled::{CoinMarket, FundNav, MacroObservation, NewsItem, SocialPost};
use cryptoflow_operators::sentiment::windows::SentimentWindowRow;
use cryptoflow_operators::sentiment::SentimentRow;
use rust_decimal::Decimal;

use super::{Cell, Column, Guard, Merge, OnConflict, Schema, Table, Type};
use crate::now_ms;

const fn col(name: &'static str, ty: Type) -> Column {
    Column::new(name, ty)
}

/// An id as BIGINT.
fn id(v: u64) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("id {v} does not fit BIGINT"))
}

/// A counter as BIGINT (saturating).
fn count(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Trades, once per (venue, symbol, id): a replayed or redelivered trade is dropped. The key
/// also names `ts_exchange`, the partition key of PostgreSQL's table (a partitioned table's keys
/// include it); a trade id has one exchange time, so it identifies the same rows. The writers
/// maintain [`TRADE_AGGREGATES`] (and, on PostgreSQL, [`SOURCE_OFFSETS`]) from the trades that
/// were new, in the same transaction.
pub const TRADES: Table<EnrichedTrade> = Table {
    schema: Schema {
        name: "trades",
        columns: &[
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("trade_id", Type::Int),
            col("price", Type::Decimal),
            col("qty", Type::Decimal),
            col("side", Type::Text),
            col("ts_exchange", Type::Time),
            col("ts_received", Type::Time),
            col("first_trade_id", Type::Int),
            col("last_trade_id", Type::Int),
            col("is_whale", Type::Bool),
            col("moving_average", Type::Decimal),
            col("ema", Type::Float),
        ],
        key: &["venue", "symbol", "trade_id", "ts_exchange"],
        on_conflict: OnConflict::Ignore,
    },
    row: |e, out| {
        let t = &e.trade;
        out.extend([
            Cell::text(t.venue.as_str()),
            Cell::text(t.symbol.as_str()),
            Cell::Int(id(t.trade_id)?),
            Cell::Decimal(t.price),
            Cell::Decimal(t.qty),
            Cell::text(t.side.as_str()),
            Cell::Time(t.ts_exchange),
            Cell::Time(t.ts_received),
            Cell::opt_int(t.agg.map(|a| id(a.first_trade_id)).transpose()?),
            Cell::opt_int(t.agg.map(|a| id(a.last_trade_id)).transpose()?),
            Cell::Bool(e.is_whale),
            Cell::Decimal(e.moving_average),
            Cell::opt_float(e.ema),
        ]);
        Ok(())
    },
};

/// The per-instrument counters of the trades that were new in a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeAggregate {
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: Symbol,
    /// Moving average at the highest trade id.
    pub moving_average: Decimal,
    /// New trades.
    pub trade_count: i64,
    /// Their base volume.
    pub total_volume: Decimal,
    /// Their quote volume (Σ price × qty).
    pub total_quote_volume: Decimal,
    /// The highest id among them.
    pub last_trade_id: i64,
    /// Its price.
    pub last_price: Decimal,
    /// The newest exchange time among them.
    pub updated_at: Millis,
}

/// Per-instrument counters: they grow by exactly the trades that were new, and keep the moving
/// average and price of the highest trade id.
pub const TRADE_AGGREGATES: Table<TradeAggregate> = Table {
    schema: Schema {
        name: "trade_aggregates",
        columns: &[
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("moving_average", Type::Decimal).merge(Merge::ReplaceIfGreater("last_trade_id")),
            col("trade_count", Type::Int).merge(Merge::Add),
            col("total_volume", Type::Decimal).merge(Merge::Add),
            col("total_quote_volume", Type::Decimal).merge(Merge::Add),
            col("last_trade_id", Type::Int).merge(Merge::Greatest),
            col("last_price", Type::Decimal).merge(Merge::ReplaceIfGreater("last_trade_id")),
            col("updated_at", Type::Time).merge(Merge::Greatest),
        ],
        key: &["venue", "symbol"],
        on_conflict: OnConflict::Update {
            guard: Guard::Always,
            touch: None,
        },
    },
    row: |a, out| {
        out.extend([
            Cell::text(a.venue.as_str()),
            Cell::text(a.symbol.as_str()),
            Cell::Decimal(a.moving_average),
            Cell::Int(a.trade_count),
            Cell::Decimal(a.total_volume),
            Cell::Decimal(a.total_quote_volume),
            Cell::Int(a.last_trade_id),
            Cell::Decimal(a.last_price),
            Cell::Time(a.updated_at),
        ]);
        Ok(())
    },
};

/// Stream cursors (PostgreSQL): the highest id written per (venue, symbol, kind), computed from
/// the trades of the flush inside the trades statement.
pub const SOURCE_OFFSETS: Schema = Schema {
    name: "source_offsets",
    columns: &[
        col("venue", Type::Text),
        col("symbol", Type::Text),
        col("kind", Type::Text),
        col("last_id", Type::Int).merge(Merge::Greatest),
    ],
    key: &["venue", "symbol", "kind"],
    on_conflict: OnConflict::Update {
        guard: Guard::Always,
        touch: Some("updated_at"),
    },
};

/// Candles, upserted per window: a final row wins, a forming row replaces a forming row with no
/// more trades than itself ([`Guard::FinalWins`]).
pub const CANDLES: Table<Candle> = Table {
    schema: Schema {
        name: "candles",
        columns: &[
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("interval", Type::Text),
            col("open_time", Type::Time),
            col("close_time", Type::Time),
            col("open", Type::Decimal).merge(Merge::Replace),
            col("high", Type::Decimal).merge(Merge::Replace),
            col("low", Type::Decimal).merge(Merge::Replace),
            col("close", Type::Decimal).merge(Merge::Replace),
            col("volume", Type::Decimal).merge(Merge::Replace),
            col("quote_volume", Type::Decimal).merge(Merge::Replace),
            col("vwap", Type::Decimal).merge(Merge::Replace),
            col("trade_count", Type::Int).merge(Merge::Replace),
            col("taker_buy_volume", Type::Decimal).merge(Merge::Replace),
            col("first_trade_id", Type::Int).merge(Merge::Replace),
            col("last_trade_id", Type::Int).merge(Merge::Replace),
            col("is_final", Type::Bool).merge(Merge::Replace),
        ],
        key: &["venue", "symbol", "interval", "open_time"],
        on_conflict: OnConflict::Update {
            guard: Guard::FinalWins {
                flag: "is_final",
                count: "trade_count",
            },
            touch: Some("updated_at"),
        },
    },
    row: |c, out| {
        out.extend([
            Cell::text(c.venue.as_str()),
            Cell::text(c.symbol.as_str()),
            Cell::text(c.interval.label()),
            Cell::Time(c.open_time),
            Cell::Time(c.close_time),
            Cell::Decimal(c.open),
            Cell::Decimal(c.high),
            Cell::Decimal(c.low),
            Cell::Decimal(c.close),
            Cell::Decimal(c.volume),
            Cell::Decimal(c.quote_volume),
            Cell::Decimal(c.vwap),
            Cell::Int(id(c.trade_count)?),
            Cell::Decimal(c.taker_buy_volume),
            Cell::Int(id(c.first_trade_id)?),
            Cell::Int(id(c.last_trade_id)?),
            Cell::Bool(c.is_final),
        ]);
        Ok(())
    },
};

/// The prefix of the `detail` of an open refill marker ([`REFILLING`](cryptoflow_operators::model::REFILLING)).
pub const REFILLING_PREFIX: &str = "refilling";

/// Gaps: a hole's row is written when it is answered; a hole that outlasted the source's hold
/// is written first as open ([`REFILLING`](cryptoflow_operators::model::REFILLING)) and its final row (same key) replaces it. On
/// PostgreSQL a refilled range also resolves every open marker it covers (the refill of a later
/// run; see `sql::postgres`). `resolved_at` is the time of the write for refilled holes.
pub const GAPS: Table<Gap> = Table {
    schema: Schema {
        name: "gaps",
        columns: &[
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("kind", Type::Text),
            col("reason", Type::Text),
            col("from_id", Type::Int),
            col("to_id", Type::Int),
            col("since", Type::Time),
            col("detected_at", Type::Time),
            col("resolved_at", Type::Time).merge(Merge::Replace),
            col("detail", Type::Text).merge(Merge::Replace),
        ],
        key: &[
            "venue",
            "symbol",
            "kind",
            "reason",
            "from_id",
            "to_id",
            "detected_at",
        ],
        on_conflict: OnConflict::Update {
            guard: Guard::OpenMarker {
                resolved: "resolved_at",
                detail: "detail",
                prefix: REFILLING_PREFIX,
            },
            touch: None,
        },
    },
    row: |g, out| {
        out.extend([
            Cell::text(g.venue.as_str()),
            Cell::text(g.symbol.as_str()),
            Cell::text(g.kind.as_str()),
            Cell::text(g.reason.as_str()),
            Cell::Int(g.from_id.map(id).transpose()?.unwrap_or(-1)),
            Cell::Int(g.to_id.map(id).transpose()?.unwrap_or(-1)),
            Cell::Time(g.since),
            Cell::Time(g.until),
            if g.refilled {
                Cell::Time(now_ms())
            } else {
                Cell::Null
            },
            Cell::text(&g.detail),
        ]);
        Ok(())
    },
};

/// Data-quality ledger snapshots, once per (source, symbol, time).
pub const DATA_QUALITY: Table<DataQuality> = Table {
    schema: Schema {
        name: "data_quality",
        columns: &[
            col("source", Type::Text),
            col("symbol", Type::Text),
            col("snapshot_at", Type::Time),
            col("frames", Type::Int),
            col("trades", Type::Int),
            col("gaps_detected", Type::Int),
            col("gaps_refilled", Type::Int),
            col("ids_refilled", Type::Int),
            col("ids_unrefillable", Type::Int),
            col("duplicates", Type::Int),
            col("late_events", Type::Int),
            col("reconnects", Type::Int),
            col("decode_errors", Type::Int),
            col("kline_mismatches", Type::Int),
            col("last_event_at", Type::Time),
            col("last_event_age_ms", Type::Int),
            col("stale", Type::Bool),
        ],
        key: &["source", "symbol", "snapshot_at"],
        on_conflict: OnConflict::Ignore,
    },
    row: |q, out| {
        out.extend([
            Cell::text(&q.source),
            Cell::text(&q.symbol),
            Cell::Time(q.snapshot_at),
            Cell::Int(count(q.frames)),
            Cell::Int(count(q.trades)),
            Cell::Int(count(q.gaps_detected)),
            Cell::Int(count(q.gaps_refilled)),
            Cell::Int(count(q.ids_refilled)),
            Cell::Int(count(q.ids_unrefillable)),
            Cell::Int(count(q.duplicates)),
            Cell::Int(count(q.late_events)),
            Cell::Int(count(q.reconnects)),
            Cell::Int(count(q.decode_errors)),
            Cell::Int(count(q.kline_mismatches)),
            if q.last_event_ms > 0 {
                Cell::Time(q.last_event_ms)
            } else {
                Cell::Null
            },
            Cell::Int(q.last_event_age_ms),
            Cell::Bool(q.stale),
        ]);
        Ok(())
    },
};

/// CoinGecko snapshots, once per (coin, currency, endpoint, update time); `raw` is the payload
/// as sent.
pub const COINGECKO_DATA: Table<CoinMarket> = Table {
    schema: Schema {
        name: "coingecko_data",
        columns: &[
            col("coin_id", Type::Text),
            col("vs_currency", Type::Text),
            col("endpoint", Type::Text),
            col("last_updated", Type::Time),
            col("symbol", Type::Text),
            col("name", Type::Text),
            col("price", Type::Decimal),
            col("market_cap", Type::Decimal),
            col("market_cap_rank", Type::Int),
            col("total_volume", Type::Decimal),
            col("high_24h", Type::Decimal),
            col("low_24h", Type::Decimal),
            col("price_change_24h", Type::Decimal),
            col("price_change_pct_24h", Type::Decimal),
            col("circulating_supply", Type::Decimal),
            col("total_supply", Type::Decimal),
            col("max_supply", Type::Decimal),
            col("ath", Type::Decimal),
            col("atl", Type::Decimal),
            col("fetched_at", Type::Time),
            col("raw", Type::Json),
        ],
        key: &["coin_id", "vs_currency", "endpoint", "last_updated"],
        on_conflict: OnConflict::Ignore,
    },
    row: |m, out| {
        out.extend([
            Cell::text(&m.coin_id),
            Cell::text(&m.vs_currency),
            Cell::text(&m.endpoint),
            Cell::Time(m.last_updated),
            Cell::opt_text(m.symbol.as_deref()),
            Cell::opt_text(m.name.as_deref()),
            Cell::opt_decimal(m.price),
            Cell::opt_decimal(m.market_cap),
            Cell::opt_int(m.market_cap_rank),
            Cell::opt_decimal(m.total_volume),
            Cell::opt_decimal(m.high_24h),
            Cell::opt_decimal(m.low_24h),
            Cell::opt_decimal(m.price_change_24h),
            Cell::opt_decimal(m.price_change_pct_24h),
            Cell::opt_decimal(m.circulating_supply),
            Cell::opt_decimal(m.total_supply),
            Cell::opt_decimal(m.max_supply),
            Cell::opt_decimal(m.ath),
            Cell::opt_decimal(m.atl),
            Cell::Time(m.fetched_at),
            Cell::Json(Cow::Borrowed(&m.raw)),
        ]);
        Ok(())
    },
};

/// News items, once per key.
pub const NEWS: Table<NewsItem> = Table {
    schema: Schema {
        name: "news",
        columns: &[
            col("item_key", Type::Text),
            col("feed", Type::Text),
            col("guid", Type::Text),
            col("title", Type::Text),
            col("link", Type::Text),
            col("summary", Type::Text),
            col("published_at", Type::Time),
            col("published_from", Type::Text),
            col("fetched_at", Type::Time),
            col("coins", Type::TextList),
        ],
        key: &["item_key"],
        on_conflict: OnConflict::Ignore,
    },
    row: |n, out| {
        out.extend([
            Cell::text(&n.item_key),
            Cell::text(&n.feed),
            Cell::opt_text(n.guid.as_deref()),
            Cell::text(&n.title),
            Cell::opt_text(n.link.as_deref()),
            Cell::text(&n.summary),
            Cell::Time(n.published_at),
            Cell::text(&n.published_from),
            Cell::Time(n.fetched_at),
            Cell::TextList(&n.coins),
        ]);
        Ok(())
    },
};

/// Social posts, once per (platform, id).
pub const SOCIAL_POSTS: Table<SocialPost> = Table {
    schema: Schema {
        name: "social_posts",
        columns: &[
            col("platform", Type::Text),
            col("post_id", Type::Text),
            col("community", Type::Text),
            col("author", Type::Text),
            col("title", Type::Text),
            col("body", Type::Text),
            col("url", Type::Text),
            col("permalink", Type::Text),
            col("score", Type::Int),
            col("num_comments", Type::Int),
            col("created_at", Type::Time),
            col("fetched_at", Type::Time),
            col("coins", Type::TextList),
        ],
        key: &["platform", "post_id"],
        on_conflict: OnConflict::Ignore,
    },
    row: |p, out| {
        out.extend([
            Cell::text(&p.platform),
            Cell::text(&p.post_id),
            Cell::text(&p.community),
            Cell::opt_text(p.author.as_deref()),
            Cell::text(&p.title),
            Cell::text(&p.body),
            Cell::opt_text(p.url.as_deref()),
            Cell::opt_text(p.permalink.as_deref()),
            Cell::Int(p.score),
            Cell::Int(p.num_comments),
            Cell::Time(p.created_at),
            Cell::Time(p.fetched_at),
            Cell::TextList(&p.coins),
        ]);
        Ok(())
    },
};

/// Macro observations, once per (series, date, vintage); `fetched_at` is the time of the write.
pub const MACRO_OBSERVATIONS: Table<MacroObservation> = Table {
    schema: Schema {
        name: "macro_observations",
        columns: &[
            col("series_id", Type::Text),
            col("date", Type::Date),
            col("realtime_start", Type::Date),
            col("realtime_end", Type::Date),
            col("value", Type::Decimal),
            col("fetched_at", Type::Time),
        ],
        key: &["series_id", "date", "realtime_start"],
        on_conflict: OnConflict::Ignore,
    },
    row: |m, out| {
        out.extend([
            Cell::text(&m.series_id),
            Cell::Date(m.date),
            Cell::Date(m.realtime_start),
            Cell::Date(m.realtime_end),
            Cell::opt_decimal(m.value),
            Cell::Time(now_ms()),
        ]);
        Ok(())
    },
};

/// Fund NAVs, once per (ISIN, day).
pub const FUND_NAVS: Table<FundNav> = Table {
    schema: Schema {
        name: "fund_navs",
        columns: &[
            col("isin", Type::Text),
            col("nav_date", Type::Date),
            col("name", Type::Text),
            col("currency", Type::Text),
            col("nav", Type::Decimal),
            col("source", Type::Text),
            col("fetched_at", Type::Time),
        ],
        key: &["isin", "nav_date"],
        on_conflict: OnConflict::Ignore,
    },
    row: |f, out| {
        out.extend([
            Cell::text(&f.isin),
            Cell::Date(f.nav_date),
            Cell::text(&f.name),
            Cell::text(&f.currency),
            Cell::Decimal(f.nav),
            Cell::text(&f.source),
            Cell::Time(f.fetched_at),
        ]);
        Ok(())
    },
};

/// The indicator columns: the candle, [`FLOAT_COLUMNS`], `vwap_20`.
const INDICATOR_COLUMNS: [Column; 7 + FLOAT_COLUMNS.len()] = {
    let mut c = [col("vwap_20", Type::Decimal); 7 + FLOAT_COLUMNS.len()];
    c[0] = col("venue", Type::Text);
    c[1] = col("symbol", Type::Text);
    c[2] = col("interval", Type::Text);
    c[3] = col("open_time", Type::Time);
    c[4] = col("close_time", Type::Time);
    c[5] = col("close", Type::Decimal);
    let mut i = 0;
    while i < FLOAT_COLUMNS.len() {
        c[6 + i] = col(FLOAT_COLUMNS[i], Type::Float);
        i += 1;
    }
    c
};

/// Indicators per final candle: the first row of a candle is kept (a restart re-warms from its
/// first candle and does not overwrite rows computed with more history).
pub const INDICATORS: Table<IndicatorRow> = Table {
    schema: Schema {
        name: "indicators",
        columns: &INDICATOR_COLUMNS,
        key: &["venue", "symbol", "interval", "open_time"],
        on_conflict: OnConflict::Ignore,
    },
    row: |r, out| {
        out.extend([
            Cell::text(r.venue.as_str()),
            Cell::text(r.symbol.as_str()),
            Cell::text(r.interval.label()),
            Cell::Time(r.open_time),
            Cell::Time(r.close_time),
            Cell::Decimal(r.close),
        ]);
        out.extend(r.values.floats().map(Cell::opt_float));
        out.push(Cell::opt_decimal(r.values.vwap_20));
        Ok(())
    },
};

/// Sentiment per (item, model), once.
pub const SENTIMENT: Table<SentimentRow> = Table {
    schema: Schema {
        name: "sentiment",
        columns: &[
            col("item_key", Type::Text),
            col("model", Type::Text),
            col("kind", Type::Text),
            col("published_at", Type::Time),
            col("coins", Type::TextList),
            col("neg", Type::Float),
            col("neu", Type::Float),
            col("pos", Type::Float),
            col("compound", Type::Float),
        ],
        key: &["item_key", "model"],
        on_conflict: OnConflict::Ignore,
    },
    row: |r, out| {
        let s = &r.score;
        out.extend([
            Cell::text(&r.item_key),
            Cell::text(&r.model),
            Cell::text(&r.kind),
            Cell::Time(r.published_at),
            Cell::TextList(&r.coins),
            Cell::Float(s.neg),
            Cell::Float(s.neu),
            Cell::Float(s.pos),
            Cell::Float(s.compound),
        ]);
        Ok(())
    },
};

/// Rolling sentiment windows: a window's later value replaces its earlier one, never one with
/// more items.
pub const SENTIMENT_COIN_WINDOWS: Table<SentimentWindowRow> = Table {
    schema: Schema {
        name: "sentiment_coin_windows",
        columns: &[
            col("coin", Type::Text),
            col("model", Type::Text),
            col("span", Type::Text),
            col("window_end", Type::Time),
            col("items", Type::Int).merge(Merge::Replace),
            col("mean_compound", Type::Float).merge(Merge::Replace),
            col("positive_share", Type::Float).merge(Merge::Replace),
            col("negative_share", Type::Float).merge(Merge::Replace),
        ],
        key: &["coin", "model", "span", "window_end"],
        on_conflict: OnConflict::Update {
            guard: Guard::NotFewer("items"),
            touch: Some("updated_at"),
        },
    },
    row: |w, out| {
        out.extend([
            Cell::text(&w.coin),
            Cell::text(&w.model),
            Cell::text(&w.span),
            Cell::Time(w.window_end),
            Cell::Int(count(w.items)),
            Cell::Float(w.mean_compound),
            Cell::Float(w.positive_share),
            Cell::Float(w.negative_share),
        ]);
        Ok(())
    },
};

/// The windows of a batch with one row per key, as if written one after another under
/// [`Guard::NotFewer`]: per key, the last row with the most items (a single statement may not
/// touch a row twice on PostgreSQL).
pub fn last_windows<'a>(rows: &[&'a SentimentWindowRow]) -> Vec<&'a SentimentWindowRow> {
    let mut keep: std::collections::HashMap<(&str, &str, &str, Millis), usize> =
        std::collections::HashMap::new();
    let mut out: Vec<&SentimentWindowRow> = Vec::new();
    for w in rows {
        match keep.entry((
            w.coin.as_str(),
            w.model.as_str(),
            w.span.as_str(),
            w.window_end,
        )) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let at = *e.get();
                if w.items >= out[at].items {
                    out[at] = w;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(w);
            }
        }
    }
    out
}

/// The gaps of a batch with one row per key, as if written one after another under
/// [`Guard::OpenMarker`]: a later row replaces an earlier one with the same key only while that
/// one is an open marker (a hole's marker and its final row may share a flush).
pub fn last_gaps<'a>(rows: &[&'a Gap]) -> Vec<&'a Gap> {
    type Key<'k> = (
        Venue,
        Symbol,
        &'k str,
        &'k str,
        Option<u64>,
        Option<u64>,
        Millis,
    );
    let mut keep: std::collections::HashMap<Key<'_>, usize> = std::collections::HashMap::new();
    let mut out: Vec<&Gap> = Vec::new();
    for g in rows {
        let key = (
            g.venue,
            g.symbol,
            g.kind.as_str(),
            g.reason.as_str(),
            g.from_id,
            g.to_id,
            g.until,
        );
        match keep.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let at = *e.get();
                let cur = out[at];
                if !cur.refilled && cur.detail.starts_with(REFILLING_PREFIX) {
                    out[at] = g;
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(g);
            }
        }
    }
    out
}

/// ML feature vectors: the first vector of a candle is kept.
pub const ML_FEATURES: Table<FeatureRow> = Table {
    schema: Schema {
        name: "ml_features",
        columns: &[
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("interval", Type::Text),
            col("open_time", Type::Time),
            col("close_time", Type::Time),
            col("features", Type::Json),
        ],
        key: &["venue", "symbol", "interval", "open_time"],
        on_conflict: OnConflict::Ignore,
    },
    row: |f, out| {
        out.extend([
            Cell::text(f.venue.as_str()),
            Cell::text(f.symbol.as_str()),
            Cell::text(f.interval.label()),
            Cell::Time(f.open_time),
            Cell::Time(f.close_time),
            Cell::Json(Cow::Owned(f.json())),
        ]);
        Ok(())
    },
};

/// Strategy signals, once per id (the id is derived from the signal, so a replay stores each
/// once). PostgreSQL only.
pub const SIGNALS: Table<SignalRow> = Table {
    schema: Schema {
        name: "signals",
        columns: &[
            col("id", Type::Text),
            col("strategy", Type::Text),
            col("venue", Type::Text),
            col("symbol", Type::Text),
            col("interval", Type::Text),
            col("open_time", Type::Time),
            col("close_time", Type::Time),
            col("side", Type::Text),
            col("price", Type::Decimal),
            col("reason", Type::Text),
            col("inputs", Type::Json),
        ],
        key: &["id"],
        on_conflict: OnConflict::Ignore,
    },
    row: |s, out| {
        let inputs = serde_json::to_string(&s.inputs)
            .map_err(|e| format!("signal {}: inputs: {e}", s.id))?;
        let g = &s.signal;
        out.extend([
            Cell::text(&s.id),
            Cell::text(&g.strategy),
            Cell::text(g.venue.as_str()),
            Cell::text(g.symbol.as_str()),
            Cell::text(g.interval.label()),
            Cell::Time(g.open_time),
            Cell::Time(g.close_time),
            Cell::text(g.side.as_str()),
            Cell::Decimal(g.price),
            Cell::text(&g.reason),
            Cell::Json(Cow::Owned(inputs)),
        ]);
        Ok(())
    },
};

/// The items of a batch, per table (candles aside: `model::latest_candles` picks those).
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// Rows of [`TRADES`].
    pub trades: Vec<&'a EnrichedTrade>,
    /// Rows of [`GAPS`].
    pub gaps: Vec<&'a Gap>,
    /// Rows of [`DATA_QUALITY`].
    pub quality: Vec<&'a DataQuality>,
    /// Rows of [`COINGECKO_DATA`].
    pub markets: Vec<&'a CoinMarket>,
    /// Rows of [`NEWS`].
    pub news: Vec<&'a NewsItem>,
    /// Rows of [`SOCIAL_POSTS`].
    pub social: Vec<&'a SocialPost>,
    /// Rows of [`MACRO_OBSERVATIONS`].
    pub macros: Vec<&'a MacroObservation>,
    /// Rows of [`FUND_NAVS`].
    pub funds: Vec<&'a FundNav>,
    /// Rows of [`INDICATORS`].
    pub indicators: Vec<&'a IndicatorRow>,
    /// Rows of [`SENTIMENT`].
    pub sentiment: Vec<&'a SentimentRow>,
    /// Rows of [`SENTIMENT_COIN_WINDOWS`].
    pub windows: Vec<&'a SentimentWindowRow>,
    /// Rows of [`ML_FEATURES`].
    pub features: Vec<&'a FeatureRow>,
    /// Rows of [`SIGNALS`].
    pub signals: Vec<&'a SignalRow>,
}

impl<'a> Batch<'a> {
    /// Files one record under its table.
    pub fn add(&mut self, r: &'a Output) {
        match r {
            Output::Trade(e) => self.trades.push(e),
            Output::Gap(g) => self.gaps.push(g),
            Output::Quality(q) => self.quality.push(q),
            Output::Polled(p) => match p.as_ref() {
                Polled::Market(m) => self.markets.push(m),
                Polled::News(n) => self.news.push(n),
                Polled::Social(s) => self.social.push(s),
                Polled::Macro(m) => self.macros.push(m),
                Polled::FundNav(f) => self.funds.push(f),
            },
            Output::Indicators(i) => self.indicators.push(i),
            Output::Sentiment(x) => self.sentiment.push(x),
            Output::SentimentWindow(w) => self.windows.push(w),
            Output::Features(f) => self.features.push(f),
            Output::Signal(x) => self.signals.push(x),
            Output::Candle(_) | Output::Whale(_) | Output::Late(_) | Output::Mismatch(_) => {}
        }
    }

    /// Nothing to write but candles.
    pub fn is_empty(&self) -> bool {
        self.trades.is_empty()
            && self.gaps.is_empty()
            && self.quality.is_empty()
            && self.markets.is_empty()
            && self.news.is_empty()
            && self.social.is_empty()
            && self.macros.is_empty()
            && self.funds.is_empty()
            && self.indicators.is_empty()
            && self.sentiment.is_empty()
            && self.windows.is_empty()
            && self.features.is_empty()
            && self.signals.is_empty()
    }
}

/// Every table a sink writes (the schema check and the tests go through this list).
pub const ALL: [&Schema; 16] = [
    &TRADES.schema,
    &TRADE_AGGREGATES.schema,
    &SOURCE_OFFSETS,
    &CANDLES.schema,
    &GAPS.schema,
    &DATA_QUALITY.schema,
    &COINGECKO_DATA.schema,
    &NEWS.schema,
    &SOCIAL_POSTS.schema,
    &MACRO_OBSERVATIONS.schema,
    &FUND_NAVS.schema,
    &INDICATORS.schema,
    &SENTIMENT.schema,
    &SENTIMENT_COIN_WINDOWS.schema,
    &ML_FEATURES.schema,
    &SIGNALS.schema,
];

/// The tables of [`ALL`] only PostgreSQL has: the stream cursors and the strategy signals.
pub const POSTGRES_ONLY: [&str; 2] = [SOURCE_OFFSETS.name, SIGNALS.schema.name];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_consistent() {
        assert!(cryptoflow_operators::model::REFILLING.starts_with(REFILLING_PREFIX));
        for s in ALL {
            let names: Vec<&str> = s.columns.iter().map(|c| c.name).collect();
            for k in s.key {
                assert!(names.contains(k), "{}: key {k} is a column", s.name);
                let c = s.columns.iter().find(|c| c.name == *k).map(|c| c.merge);
                assert_eq!(c, Some(Merge::Keep), "{}: key {k} is kept", s.name);
            }
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{}: unique columns", s.name);
            match s.on_conflict {
                OnConflict::Ignore => assert_eq!(s.merged().count(), 0, "{}", s.name),
                OnConflict::Update { guard, .. } => {
                    // A guard's columns are replaced (the MySQL dialect's closed forms say so).
                    for g in guard.columns() {
                        let c = s.columns.iter().find(|c| c.name == g).map(|c| c.merge);
                        assert_eq!(c, Some(Merge::Replace), "{}: guard column {g}", s.name);
                    }
                    for c in s.merged() {
                        if let Merge::ReplaceIfGreater(by) = c.merge {
                            assert!(names.contains(&by), "{}: {by}", s.name);
                        }
                    }
                }
            }
        }
        assert_eq!(INDICATOR_COLUMNS[6].name, "sma_20");
        assert_eq!(INDICATOR_COLUMNS[24].name, "vwap_20");
    }

    #[test]
    fn windows_fold_like_sequential_writes() {
        let w = |items: u64, mean: f64| SentimentWindowRow {
            coin: "BTC".into(),
            model: "m".into(),
            span: "1h".into(),
            window_end: 3_600_000,
            items,
            mean_compound: mean,
            positive_share: 0.0,
            negative_share: 0.0,
        };
        let (a, b, c) = (w(5, 0.1), w(3, 0.2), w(5, 0.3));
        let mut other = w(1, 0.4);
        other.span = "24h".into();
        let got = last_windows(&[&a, &b, &c, &other]);
        assert_eq!(got, vec![&c, &other]);
    }
}
