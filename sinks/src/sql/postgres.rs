//! The PostgreSQL dialect: statement text for a [`Schema`] and [`Cell`]s as parameters.
//!
//! Two statement shapes:
//! - array-bound: one parameter per column holding that column of every row, spread by `UNNEST`
//!   into `INSERT … SELECT` (one statement per table and flush, whatever the batch size); used for
//!   every table without list columns ([`insert_unnest`], and inside the trades and gaps
//!   statements, [`trades_sql`] and [`gaps_sql`]);
//! - single-row `INSERT … VALUES` ([`insert_values`]), prepared once and run per row, for tables
//!   with `TEXT[]` columns (an array of arrays cannot be unnested).
//!
//! Every parameter is cast to its wire type (`$1::int8`, `$2::numeric[]`, …); times travel as
//! milliseconds since the epoch and become `timestamptz` in the statement, days and JSON as
//! text. Key conflicts: `ON CONFLICT (key) DO NOTHING`, or `DO UPDATE SET … WHERE guard`.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type as PgType};

use super::tables::{GAPS, REFILLING_PREFIX, SOURCE_OFFSETS, TRADES, TRADE_AGGREGATES};
use super::{Cell, OnConflict, Schema, Type};

/// The alias of the stored row in every statement's conflict clause.
pub const STORED: &str = "s";

/// The wire type of a logical type (what a parameter is cast to).
pub fn wire(ty: Type) -> &'static str {
    match ty {
        Type::Text | Type::Date | Type::Json => "text",
        Type::Int | Type::Time => "int8",
        Type::Float => "float8",
        Type::Decimal => "numeric",
        Type::Bool => "bool",
        Type::TextList => "text[]",
    }
}

/// `expr` (of the wire type) as the column's value.
pub fn convert(ty: Type, expr: &str) -> String {
    match ty {
        Type::Time => format!("'epoch'::timestamptz + {expr} * interval '1 millisecond'"),
        Type::Date => format!("{expr}::date"),
        Type::Json => format!("{expr}::json"),
        _ => expr.to_string(),
    }
}

fn names(schema: &Schema) -> String {
    schema
        .columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conflict clause of `schema`, the stored row being [`STORED`].
pub fn on_conflict(schema: &Schema) -> String {
    let key = schema.key.join(", ");
    match schema.on_conflict {
        OnConflict::Ignore => format!("ON CONFLICT ({key}) DO NOTHING"),
        OnConflict::Update { guard, touch } => {
            let old = |c: &str| format!("{STORED}.{c}");
            let new = |c: &str| format!("excluded.{c}");
            let mut set: Vec<String> = schema
                .merged()
                .map(|c| {
                    let v = c.merge.expr(c.name, old, new);
                    format!("{} = {v}", c.name)
                })
                .collect();
            if let Some(t) = touch {
                set.push(format!("{t} = now()"));
            }
            let mut sql = format!("ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "));
            if let Some(g) = guard.render(&old, &new) {
                sql.push_str(&format!(" WHERE {g}"));
            }
            sql
        }
    }
}

/// A single-row insert: `INSERT INTO t AS s (…) VALUES ($1::…, …) ON CONFLICT …`.
pub fn insert_values(schema: &Schema) -> String {
    let values: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| convert(c.ty, &format!("${}::{}", i + 1, wire(c.ty))))
        .collect();
    format!(
        "INSERT INTO {} AS {STORED} ({}) VALUES ({}) {}",
        schema.name,
        names(schema),
        values.join(", "),
        on_conflict(schema)
    )
}

/// The array parameters of `schema` as a relation named like its columns:
/// `UNNEST($1::text[], …) AS i(venue, …)`. Panics on list columns (see the module doc), which
/// the callers exclude with [`Schema::has_lists`].
pub fn unnest(schema: &Schema) -> String {
    assert!(!schema.has_lists(), "{}: list columns", schema.name);
    let arrays: Vec<String> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, wire(c.ty)))
        .collect();
    format!("UNNEST({}) AS i({})", arrays.join(", "), names(schema))
}

/// `INSERT INTO t AS s (…) SELECT <converted columns> FROM <from> ON CONFLICT …`, where `from`
/// has the wire-typed columns of `schema` under their names.
pub fn insert_select(schema: &Schema, from: &str) -> String {
    let select: Vec<String> = schema
        .columns
        .iter()
        .map(|c| convert(c.ty, c.name))
        .collect();
    format!(
        "INSERT INTO {} AS {STORED} ({}) SELECT {} FROM {from} {}",
        schema.name,
        names(schema),
        select.join(", "),
        on_conflict(schema)
    )
}

/// The array-bound insert of `schema`: one statement for every row of a flush. Rows of an
/// [`OnConflict::Update`] table must have distinct keys (a statement may not touch a row twice).
pub fn insert_unnest(schema: &Schema) -> String {
    insert_select(schema, &unnest(schema))
}

/// The trades statement: the trades of a flush go in once per key; the ones that were really
/// new (`RETURNING`) add to `trade_aggregates`, and `source_offsets` takes the highest id of
/// each stream, all in one statement so counters never double count on redelivery.
pub fn trades_sql() -> String {
    trades_statement(true)
}

/// [`trades_sql`] with a plain insert of the trades (no `ON CONFLICT`): it fails with a unique
/// violation when a trade of the flush is stored already, and otherwise does the same work
/// without the speculative insertion `ON CONFLICT` costs per row. The sink runs it first, in a
/// savepoint, and [`trades_sql`] after a unique violation.
pub fn trades_fresh_sql() -> String {
    trades_statement(false)
}

fn trades_statement(on_conflict_clause: bool) -> String {
    let insert = insert_select(&TRADES.schema, "input");
    let insert = if on_conflict_clause {
        insert
    } else {
        let clause = format!(" {}", on_conflict(&TRADES.schema));
        insert.strip_suffix(&clause).unwrap_or(&insert).to_string()
    };
    let agg = &TRADE_AGGREGATES.schema;
    format!(
        "WITH input AS (SELECT * FROM {unnest}),
ins AS ({insert} RETURNING venue, symbol, trade_id, price, qty, moving_average, ts_exchange),
cursors AS (
    INSERT INTO {offsets} AS {STORED} ({offset_cols})
    SELECT venue, symbol, CASE WHEN first_trade_id IS NULL THEN 'trade' ELSE 'aggTrade' END, max(trade_id)
    FROM input GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    {offset_conflict}
),
agg AS (
    SELECT venue, symbol, count(*) AS n, sum(qty) AS vol, sum(price * qty) AS qvol, max(trade_id) AS last_id,
           (array_agg(moving_average ORDER BY trade_id DESC))[1] AS ma,
           (array_agg(price ORDER BY trade_id DESC))[1] AS last_price,
           max(ts_exchange) AS ts
    FROM ins GROUP BY venue, symbol
)
INSERT INTO {aggregates} AS {STORED} ({agg_cols})
SELECT venue, symbol, ma, n, vol, qvol, last_id, last_price, ts FROM agg ORDER BY venue, symbol
{agg_conflict}",
        unnest = unnest(&TRADES.schema),
        offsets = SOURCE_OFFSETS.name,
        offset_cols = names(&SOURCE_OFFSETS),
        offset_conflict = on_conflict(&SOURCE_OFFSETS),
        aggregates = agg.name,
        agg_cols = names(agg),
        agg_conflict = on_conflict(agg),
    )
}

/// The gaps statement: the generic upsert of [`GAPS`] (an open marker's final row replaces it),
/// and before it, every open marker that a refilled range of the flush covers is resolved (the
/// refill of a later run).
pub fn gaps_sql() -> String {
    let resolved_at = convert(Type::Time, "i.resolved_at");
    let detected_at = convert(Type::Time, "i.detected_at");
    format!(
        "WITH input AS (SELECT * FROM {unnest}),
resolved AS (
    UPDATE gaps g SET resolved_at = {resolved_at}
    FROM input i
    WHERE i.resolved_at IS NOT NULL AND g.resolved_at IS NULL AND g.detail LIKE '{REFILLING_PREFIX}%'
      AND g.venue = i.venue AND g.symbol = i.symbol AND g.kind = i.kind
      AND g.from_id >= i.from_id AND g.to_id <= i.to_id
      AND NOT (g.reason = i.reason AND g.from_id = i.from_id AND g.to_id = i.to_id
               AND g.detected_at = {detected_at})
)
{insert}",
        unnest = unnest(&GAPS.schema),
        insert = insert_select(&GAPS.schema, "input"),
    )
}

/// The parameters of a statement: one per element of `values`.
pub fn params<T: ToSql + Sync>(values: &[T]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl ToSql for Cell<'_> {
    /// Binds the cell as the type the statement casts its parameter (or array element) to,
    /// checked against it: a description whose cells do not match its types fails loudly.
    fn to_sql(
        &self,
        ty: &PgType,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>>
    where
        Self: Sized,
    {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Text(s) | Cell::Json(s) => s.as_ref().to_sql_checked(ty, out),
            Cell::Int(v) | Cell::Time(v) => v.to_sql_checked(ty, out),
            Cell::Float(v) => v.to_sql_checked(ty, out),
            Cell::Decimal(v) => v.to_sql_checked(ty, out),
            Cell::Bool(v) => v.to_sql_checked(ty, out),
            Cell::Date(d) => d.to_string().to_sql_checked(ty, out),
            Cell::TextList(l) => l.to_sql_checked(ty, out),
        }
    }

    /// Any type: each cell checks the type it is bound as (see `to_sql`).
    fn accepts(_ty: &PgType) -> bool
    where
        Self: Sized,
    {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tables::{CANDLES, DATA_QUALITY, NEWS, SENTIMENT_COIN_WINDOWS};

    /// The whole text of one table's statements, as the server receives it.
    #[test]
    fn golden_candles() {
        assert_eq!(
            insert_unnest(&CANDLES.schema),
            "INSERT INTO candles AS s (venue, symbol, interval, open_time, close_time, open, high, low, close, \
             volume, quote_volume, vwap, trade_count, taker_buy_volume, first_trade_id, last_trade_id, is_final) \
             SELECT venue, symbol, interval, \
             'epoch'::timestamptz + open_time * interval '1 millisecond', \
             'epoch'::timestamptz + close_time * interval '1 millisecond', \
             open, high, low, close, volume, quote_volume, vwap, trade_count, taker_buy_volume, first_trade_id, \
             last_trade_id, is_final \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::numeric[], $7::numeric[], \
             $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[], $13::int8[], \
             $14::numeric[], $15::int8[], $16::int8[], $17::bool[]) \
             AS i(venue, symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, \
             vwap, trade_count, taker_buy_volume, first_trade_id, last_trade_id, is_final) \
             ON CONFLICT (venue, symbol, interval, open_time) DO UPDATE SET \
             open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, \
             volume = excluded.volume, quote_volume = excluded.quote_volume, vwap = excluded.vwap, \
             trade_count = excluded.trade_count, taker_buy_volume = excluded.taker_buy_volume, \
             first_trade_id = excluded.first_trade_id, last_trade_id = excluded.last_trade_id, \
             is_final = excluded.is_final, updated_at = now() \
             WHERE (excluded.is_final AND (NOT s.is_final OR excluded.trade_count >= s.trade_count)) \
             OR (NOT s.is_final AND excluded.trade_count >= s.trade_count)"
        );
    }

    #[test]
    fn golden_single_row_and_other_conflicts() {
        assert_eq!(
            insert_values(&NEWS.schema),
            "INSERT INTO news AS s (item_key, feed, guid, title, link, summary, published_at, published_from, \
             fetched_at, coins) VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, \
             'epoch'::timestamptz + $7::int8 * interval '1 millisecond', $8::text, \
             'epoch'::timestamptz + $9::int8 * interval '1 millisecond', $10::text[]) \
             ON CONFLICT (item_key) DO NOTHING"
        );
        assert_eq!(
            on_conflict(&SENTIMENT_COIN_WINDOWS.schema),
            "ON CONFLICT (coin, model, span, window_end) DO UPDATE SET items = excluded.items, \
             mean_compound = excluded.mean_compound, positive_share = excluded.positive_share, \
             negative_share = excluded.negative_share, updated_at = now() WHERE s.items <= excluded.items"
        );
        assert_eq!(
            on_conflict(&TRADE_AGGREGATES.schema),
            "ON CONFLICT (venue, symbol) DO UPDATE SET \
             moving_average = CASE WHEN excluded.last_trade_id > s.last_trade_id THEN excluded.moving_average ELSE s.moving_average END, \
             trade_count = s.trade_count + excluded.trade_count, \
             total_volume = s.total_volume + excluded.total_volume, \
             total_quote_volume = s.total_quote_volume + excluded.total_quote_volume, \
             last_trade_id = GREATEST(s.last_trade_id, excluded.last_trade_id), \
             last_price = CASE WHEN excluded.last_trade_id > s.last_trade_id THEN excluded.last_price ELSE s.last_price END, \
             updated_at = GREATEST(s.updated_at, excluded.updated_at)"
        );
        assert_eq!(
            on_conflict(&SOURCE_OFFSETS),
            "ON CONFLICT (venue, symbol, kind) DO UPDATE SET last_id = GREATEST(s.last_id, excluded.last_id), \
             updated_at = now()"
        );
        assert_eq!(
            on_conflict(&GAPS.schema),
            "ON CONFLICT (venue, symbol, kind, reason, from_id, to_id, detected_at) DO UPDATE SET \
             resolved_at = excluded.resolved_at, detail = excluded.detail \
             WHERE s.resolved_at IS NULL AND s.detail LIKE 'refilling%'"
        );
        assert!(insert_unnest(&DATA_QUALITY.schema).contains(
            "'epoch'::timestamptz + last_event_at * interval '1 millisecond', last_event_age_ms, stale FROM UNNEST("
        ));
        let t = trades_sql();
        assert!(t.starts_with(
            "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::numeric[]"
        ));
        assert!(t.contains("ins AS (INSERT INTO trades AS s"));
        assert!(t.contains(
            "INSERT INTO trade_aggregates AS s (venue, symbol, moving_average, trade_count, total_volume, \
             total_quote_volume, last_trade_id, last_price, updated_at)\nSELECT venue, symbol, ma, n, vol, qvol, last_id, last_price, ts"
        ));
        assert!(gaps_sql().contains("FROM input ON CONFLICT (venue, symbol, kind, reason"));
        // The fresh variant: the same statement but the trades' own conflict clause.
        let fresh = trades_fresh_sql();
        assert!(
            t.contains("ON CONFLICT (venue, symbol, trade_id, ts_exchange) DO NOTHING RETURNING")
        );
        assert!(!fresh.contains("ON CONFLICT (venue, symbol, trade_id, ts_exchange)"));
        assert_eq!(
            fresh,
            t.replace(
                " ON CONFLICT (venue, symbol, trade_id, ts_exchange) DO NOTHING RETURNING",
                " RETURNING"
            )
        );
    }

    fn quality(symbol: &str, trades: u64) -> cryptoflow_operators::model::DataQuality {
        cryptoflow_operators::model::DataQuality {
            source: "replay".into(),
            symbol: symbol.into(),
            snapshot_at: 1_700_000_000_000,
            trades,
            ..Default::default()
        }
    }

    #[test]
    fn columns_hold_each_item_once_per_column() {
        let (btc, eth) = (quality("BTCUSDT", 3), quality("ETHUSDT", 0));
        let cols = DATA_QUALITY.columns_for("test", &[&btc, &eth]).unwrap();
        assert_eq!(cols.len(), DATA_QUALITY.schema.columns.len());
        assert!(cols.iter().all(|c| c.len() == 2));
        let symbol = DATA_QUALITY
            .schema
            .columns
            .iter()
            .position(|c| c.name == "symbol")
            .unwrap();
        assert_eq!(
            cols[symbol],
            vec![Cell::text("BTCUSDT"), Cell::text("ETHUSDT")]
        );
    }
}
