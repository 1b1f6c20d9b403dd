//! The MySQL / MariaDB dialect: statement text for a [`Schema`] and [`Cell`]s as values.
//!
//! Rows go in with multi-row `INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE`, [`CHUNK`] rows
//! per statement. Times are UTC `DATETIME(3)` literals (sessions run in UTC), days `YYYY-MM-DD`,
//! lists JSON arrays, decimals their exact text.
//!
//! An insert-once conflict is a no-op assignment of the first key column (unlike `INSERT IGNORE`,
//! it turns no other error into a warning). An update assigns left to right, each assignment
//! seeing the columns assigned before it: columns other expressions read go last, and the
//! guard's own columns last of all, in a closed form per [`Guard`] that reads only what is still
//! the stored value.

use mysql_async::Value;

use super::{Cell, Guard, Merge, OnConflict, Rows, Schema};

/// Rows per multi-row statement (keeps placeholders well under the 65,535 limit).
pub const CHUNK: usize = 1_000;

/// A quoted identifier (`interval` is reserved).
pub fn quote(name: &str) -> String {
    format!("`{name}`")
}

fn old(c: &str) -> String {
    quote(c)
}

fn new(c: &str) -> String {
    format!("VALUES({})", quote(c))
}

/// The `ON DUPLICATE KEY UPDATE …` clause of `schema`.
pub fn on_duplicate(schema: &Schema) -> String {
    let set: Vec<String> = match schema.on_conflict {
        OnConflict::Ignore => {
            let k = quote(schema.key.first().copied().unwrap_or("id"));
            vec![format!("{k} = {k}")]
        }
        OnConflict::Update { guard, touch } => {
            let g = guard.render(&old, &new);
            let guarded = |expr: String, c: &str| match &g {
                Some(g) => format!("CASE WHEN {g} THEN {expr} ELSE {} END", old(c)),
                None => expr,
            };
            let read: Vec<&str> = schema
                .merged()
                .filter_map(|c| match c.merge {
                    Merge::ReplaceIfGreater(by) => Some(by),
                    _ => None,
                })
                .collect();
            let guard_cols = guard.columns();
            let mut plain: Vec<String> = Vec::new();
            let mut later: Vec<String> = Vec::new();
            for c in schema.merged().filter(|c| !guard_cols.contains(&c.name)) {
                let expr = c.merge.expr(c.name, old, new);
                let a = format!("{} = {}", quote(c.name), guarded(expr, c.name));
                if read.contains(&c.name) {
                    later.push(a);
                } else {
                    plain.push(a);
                }
            }
            plain.extend(later);
            if let Some(t) = touch {
                plain.push(format!(
                    "{} = {}",
                    quote(t),
                    guarded("CURRENT_TIMESTAMP(3)".into(), t)
                ));
            }
            let g = g.unwrap_or_default();
            match guard {
                Guard::Always => {}
                Guard::NotFewer(c) => {
                    plain.push(format!("{} = GREATEST({}, {})", quote(c), new(c), old(c)))
                }
                Guard::FinalWins { flag, count } => {
                    plain.push(format!(
                        "{} = CASE WHEN {g} THEN {} ELSE {} END",
                        quote(count),
                        new(count),
                        old(count)
                    ));
                    // Equal to the guarded assignment: the guard lets a row in when the new one
                    // is final, or the stored one is not.
                    plain.push(format!("{} = {} OR {}", quote(flag), old(flag), new(flag)));
                }
                Guard::OpenMarker {
                    resolved,
                    detail,
                    prefix,
                } => {
                    plain.push(format!(
                        "{} = CASE WHEN {g} THEN {} ELSE {} END",
                        quote(resolved),
                        new(resolved),
                        old(resolved)
                    ));
                    // The marker was open, and `resolved` took the new row's value just now.
                    plain.push(format!(
                        "{d} = CASE WHEN {d} LIKE '{prefix}%' AND {r} <=> {nr} THEN {nd} ELSE {d} END",
                        d = old(detail),
                        r = old(resolved),
                        nr = new(resolved),
                        nd = new(detail)
                    ));
                }
            }
            plain
        }
    };
    format!("ON DUPLICATE KEY UPDATE {}", set.join(", "))
}

/// The insert of `rows` rows of `schema`.
pub fn insert(schema: &Schema, rows: usize) -> String {
    let cols: Vec<String> = schema.columns.iter().map(|c| quote(c.name)).collect();
    let one = format!("({})", vec!["?"; cols.len()].join(","));
    format!(
        "INSERT INTO {} ({}) VALUES {} {}",
        quote(schema.name),
        cols.join(", "),
        vec![one; rows].join(","),
        on_duplicate(schema)
    )
}

/// The statements (text and values) that write `rows`, [`CHUNK`] rows each.
pub fn inserts(schema: &Schema, rows: &Rows<'_>) -> Vec<(String, Vec<Value>)> {
    rows.cells
        .chunks(CHUNK * rows.width.max(1))
        .map(|chunk| {
            (
                insert(schema, chunk.len() / rows.width.max(1)),
                chunk.iter().map(value).collect(),
            )
        })
        .collect()
}

/// A cell as a value.
pub fn value(cell: &Cell<'_>) -> Value {
    match cell {
        Cell::Null => Value::NULL,
        Cell::Text(s) | Cell::Json(s) => Value::from(s.as_ref()),
        Cell::Int(v) => Value::from(*v),
        Cell::Float(v) => Value::from(*v),
        Cell::Decimal(v) => Value::from(*v),
        Cell::Bool(v) => Value::from(*v),
        Cell::Time(ms) => Value::from(ts(*ms)),
        Cell::Date(d) => Value::from(d.to_string()),
        Cell::TextList(l) => Value::from(serde_json::to_string(l).unwrap_or_else(|_| "[]".into())),
    }
}

/// A `DATETIME(3)` literal in UTC from milliseconds since the epoch.
pub fn ts(ms: i64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tables::{
        CANDLES, GAPS, NEWS, SENTIMENT_COIN_WINDOWS, TRADES, TRADE_AGGREGATES,
    };

    #[test]
    fn utc_datetime_literals() {
        assert_eq!(ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(ts(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(ts(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(ts(-1), "1969-12-31 23:59:59.999");
    }

    /// The whole text of one table's statement, as the server receives it.
    #[test]
    fn golden_candles() {
        let keep =
            "(VALUES(`is_final`) AND (NOT `is_final` OR VALUES(`trade_count`) >= `trade_count`)) \
                    OR (NOT `is_final` AND VALUES(`trade_count`) >= `trade_count`)";
        let set: Vec<String> = [
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
        ]
        .iter()
        .map(|c| format!("`{c}` = CASE WHEN {keep} THEN VALUES(`{c}`) ELSE `{c}` END"))
        .chain([
            format!("`updated_at` = CASE WHEN {keep} THEN CURRENT_TIMESTAMP(3) ELSE `updated_at` END"),
            format!("`trade_count` = CASE WHEN {keep} THEN VALUES(`trade_count`) ELSE `trade_count` END"),
            "`is_final` = `is_final` OR VALUES(`is_final`)".to_string(),
        ])
        .collect();
        assert_eq!(
            insert(&CANDLES.schema, 2),
            format!(
                "INSERT INTO `candles` (`venue`, `symbol`, `interval`, `open_time`, `close_time`, `open`, `high`, \
                 `low`, `close`, `volume`, `quote_volume`, `vwap`, `trade_count`, `taker_buy_volume`, \
                 `first_trade_id`, `last_trade_id`, `is_final`) VALUES \
                 (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) \
                 ON DUPLICATE KEY UPDATE {}",
                set.join(", ")
            )
        );
    }

    #[test]
    fn golden_other_conflicts() {
        assert_eq!(
            insert(&NEWS.schema, 1),
            "INSERT INTO `news` (`item_key`, `feed`, `guid`, `title`, `link`, `summary`, `published_at`, \
             `published_from`, `fetched_at`, `coins`) VALUES (?,?,?,?,?,?,?,?,?,?) \
             ON DUPLICATE KEY UPDATE `item_key` = `item_key`"
        );
        assert_eq!(
            on_duplicate(&TRADES.schema),
            "ON DUPLICATE KEY UPDATE `venue` = `venue`"
        );
        let more = "`items` <= VALUES(`items`)";
        assert_eq!(
            on_duplicate(&SENTIMENT_COIN_WINDOWS.schema),
            format!(
                "ON DUPLICATE KEY UPDATE \
                 `mean_compound` = CASE WHEN {more} THEN VALUES(`mean_compound`) ELSE `mean_compound` END, \
                 `positive_share` = CASE WHEN {more} THEN VALUES(`positive_share`) ELSE `positive_share` END, \
                 `negative_share` = CASE WHEN {more} THEN VALUES(`negative_share`) ELSE `negative_share` END, \
                 `updated_at` = CASE WHEN {more} THEN CURRENT_TIMESTAMP(3) ELSE `updated_at` END, \
                 `items` = GREATEST(VALUES(`items`), `items`)"
            )
        );
        assert_eq!(
            on_duplicate(&TRADE_AGGREGATES.schema),
            "ON DUPLICATE KEY UPDATE \
             `moving_average` = CASE WHEN VALUES(`last_trade_id`) > `last_trade_id` THEN VALUES(`moving_average`) ELSE `moving_average` END, \
             `trade_count` = `trade_count` + VALUES(`trade_count`), \
             `total_volume` = `total_volume` + VALUES(`total_volume`), \
             `total_quote_volume` = `total_quote_volume` + VALUES(`total_quote_volume`), \
             `last_price` = CASE WHEN VALUES(`last_trade_id`) > `last_trade_id` THEN VALUES(`last_price`) ELSE `last_price` END, \
             `updated_at` = GREATEST(`updated_at`, VALUES(`updated_at`)), \
             `last_trade_id` = GREATEST(`last_trade_id`, VALUES(`last_trade_id`))"
        );
        assert_eq!(
            on_duplicate(&GAPS.schema),
            "ON DUPLICATE KEY UPDATE \
             `resolved_at` = CASE WHEN `resolved_at` IS NULL AND `detail` LIKE 'refilling%' THEN VALUES(`resolved_at`) ELSE `resolved_at` END, \
             `detail` = CASE WHEN `detail` LIKE 'refilling%' AND `resolved_at` <=> VALUES(`resolved_at`) THEN VALUES(`detail`) ELSE `detail` END"
        );
    }

    #[test]
    fn chunks_and_values() {
        let cells: Vec<Cell> = (0..(CHUNK as i64 + 1) * 2).map(Cell::Int).collect();
        let rows = Rows { width: 2, cells };
        const COLUMNS: [crate::sql::Column; 2] = [
            crate::sql::Column::new("a", crate::sql::Type::Int),
            crate::sql::Column::new("b", crate::sql::Type::Int),
        ];
        let schema = Schema {
            name: "t",
            columns: &COLUMNS,
            key: &["a"],
            on_conflict: OnConflict::Ignore,
        };
        let s = inserts(&schema, &rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1.len(), CHUNK * 2);
        assert_eq!(
            s[1].0,
            "INSERT INTO `t` (`a`, `b`) VALUES (?,?) ON DUPLICATE KEY UPDATE `a` = `a`"
        );
        assert_eq!(s[1].1, vec![Value::Int(2000), Value::Int(2001)]);
        assert_eq!(
            value(&Cell::Time(1_700_000_000_123)),
            Value::from("2023-11-14 22:13:20.123")
        );
        let coins = vec!["BTC".to_string(), "ETH".to_string()];
        assert_eq!(
            value(&Cell::TextList(&coins)),
            Value::from(r#"["BTC","ETH"]"#)
        );
        assert_eq!(
            value(&Cell::Decimal(
                "0.000000000000000000000000001".parse().unwrap_or_default()
            )),
            Value::from("0.000000000000000000000000001")
        );
    }
}
