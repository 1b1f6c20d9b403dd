//! The SQL tables, described once, and the two dialects that render and bind them.
//!
//! A [`Table`] names its columns with a logical [`Type`] and a [`Merge`] rule, its key columns
//! and what happens when a written row's key is stored already ([`OnConflict`]), and how one
//! row's [`Cell`]s are taken from the item it stores ([`tables`]). The dialects only turn that
//! into statement text and bound values:
//!
//! - [`postgres`]: single-row `INSERT … VALUES` and array-bound `INSERT … SELECT FROM UNNEST`
//!   (one statement per table and flush), `ON CONFLICT (key) DO NOTHING | DO UPDATE … WHERE`;
//!   cells bind as `tokio_postgres` parameters.
//! - [`mysql`]: multi-row `INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE`; cells bind as
//!   `mysql_async` values (times as UTC `DATETIME(3)` literals, lists as JSON arrays).
//!
//! The schema itself (types, constraints, indexes) is in the migrations, `sql/postgres/` and
//! `sql/mysql/`; the dashboard views are in `sql/*/views/` and every `migrate` re-applies them.

use std::borrow::Cow;

use chrono::NaiveDate;
use rust_decimal::Decimal;

pub mod mysql;
pub mod postgres;
pub mod tables;

/// The logical type of a column: what a value is, not how an engine spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Text.
    Text,
    /// A 64-bit integer (ids, counts).
    Int,
    /// A double (indicator and sentiment math).
    Float,
    /// An exact decimal (money, quantities).
    Decimal,
    /// A boolean.
    Bool,
    /// An instant, bound as milliseconds since the Unix epoch (UTC).
    Time,
    /// A calendar day.
    Date,
    /// A JSON document, bound as its text (kept byte for byte where the column allows).
    Json,
    /// A list of texts (PostgreSQL `TEXT[]`, MySQL a JSON array).
    TextList,
}

/// How a stored column changes when a row with the same key is written again (see
/// [`OnConflict::Update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The stored value stays (key columns, values that never change for a key).
    Keep,
    /// The new value replaces the stored one.
    Replace,
    /// Stored plus new (counters).
    Add,
    /// The greater of stored and new.
    Greatest,
    /// The new value when the new row's value of the named column is greater than the stored
    /// one's (the values of the highest id).
    ReplaceIfGreater(&'static str),
}

impl Merge {
    /// The new value of `column` as SQL, with `old` and `new` naming a column of the stored row
    /// and of the row written again (each dialect spells those its own way).
    pub fn expr(
        &self,
        column: &str,
        old: impl Fn(&str) -> String,
        new: impl Fn(&str) -> String,
    ) -> String {
        match self {
            Merge::Keep | Merge::Replace => new(column),
            Merge::Add => format!("{} + {}", old(column), new(column)),
            Merge::Greatest => format!("GREATEST({}, {})", old(column), new(column)),
            Merge::ReplaceIfGreater(by) => format!(
                "CASE WHEN {} > {} THEN {} ELSE {} END",
                new(by),
                old(by),
                new(column),
                old(column)
            ),
        }
    }
}

/// When a conflicting row may change the stored one (evaluated on the stored row and the new
/// one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Always.
    Always,
    /// Only with at least as many of the named count as the stored row: a window never shrinks.
    NotFewer(&'static str),
    /// A final row (`flag`) replaces a forming one, or a final one with no more of `count`; a
    /// forming row replaces a forming one with no more of `count`; a forming row never replaces
    /// a final one. A restart that re-reads the tail of a closed window cannot shrink it.
    FinalWins {
        /// The "final" flag column.
        flag: &'static str,
        /// The count column.
        count: &'static str,
    },
    /// Only a stored open marker: `resolved` is NULL and `detail` starts with `prefix`.
    OpenMarker {
        /// The column set when the marker is resolved.
        resolved: &'static str,
        /// The text column that marks it.
        detail: &'static str,
        /// The prefix of the marking text.
        prefix: &'static str,
    },
}

impl Guard {
    /// The columns the guard reads (a dialect that assigns left to right assigns them last).
    pub fn columns(&self) -> Vec<&'static str> {
        match *self {
            Guard::Always => Vec::new(),
            Guard::NotFewer(c) => vec![c],
            Guard::FinalWins { flag, count } => vec![count, flag],
            Guard::OpenMarker {
                resolved, detail, ..
            } => vec![resolved, detail],
        }
    }

    /// The condition as SQL, given how a dialect spells a stored column (`old`) and the new
    /// row's value of a column (`new`). `None` for [`Guard::Always`].
    pub fn render(
        &self,
        old: &dyn Fn(&str) -> String,
        new: &dyn Fn(&str) -> String,
    ) -> Option<String> {
        match *self {
            Guard::Always => None,
            Guard::NotFewer(c) => Some(format!("{} <= {}", old(c), new(c))),
            Guard::FinalWins { flag, count } => Some(format!(
                "({nf} AND (NOT {of} OR {nc} >= {oc})) OR (NOT {of} AND {nc} >= {oc})",
                nf = new(flag),
                of = old(flag),
                nc = new(count),
                oc = old(count)
            )),
            Guard::OpenMarker {
                resolved,
                detail,
                prefix,
            } => Some(format!(
                "{} IS NULL AND {} LIKE '{prefix}%'",
                old(resolved),
                old(detail)
            )),
        }
    }
}

/// What a write does when the row's key is stored already: both dialects implement each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Insert once: the stored row stays as it is (idempotent re-writes after a replay).
    Ignore,
    /// Every column whose [`Merge`] is not `Keep` is merged into the stored row when `guard`
    /// holds; `touch`, a time column the writes leave to its default, is then set to the
    /// current time.
    Update {
        /// When the stored row changes.
        guard: Guard,
        /// The "last changed" column.
        touch: Option<&'static str>,
    },
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Name.
    pub name: &'static str,
    /// Logical type.
    pub ty: Type,
    /// Its rule on conflict ([`OnConflict::Update`]).
    pub merge: Merge,
}

impl Column {
    /// A column with the rule [`Merge::Keep`].
    pub const fn new(name: &'static str, ty: Type) -> Self {
        Column {
            name,
            ty,
            merge: Merge::Keep,
        }
    }

    /// The same column with the rule `merge`.
    pub const fn merge(self, merge: Merge) -> Self {
        Column { merge, ..self }
    }
}

/// A table as the writers see it: the columns a write binds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Table name.
    pub name: &'static str,
    /// The written columns, in bind order.
    pub columns: &'static [Column],
    /// The key columns (the primary key: the conflict target).
    pub key: &'static [&'static str],
    /// What a conflicting write does.
    pub on_conflict: OnConflict,
}

impl Schema {
    /// The columns a conflicting write changes (merge rule other than `Keep`).
    pub fn merged(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.merge != Merge::Keep)
    }

    /// Whether a column holds a list (PostgreSQL cannot bind those through `UNNEST`).
    pub fn has_lists(&self) -> bool {
        self.columns.iter().any(|c| c.ty == Type::TextList)
    }
}

/// A table and how a row is taken from the item `T` it stores.
pub struct Table<T: ?Sized + 'static> {
    /// The table.
    pub schema: Schema,
    /// Appends one cell per column of `schema`, in order; an error says why the item cannot be
    /// stored (e.g. an id beyond BIGINT).
    pub row: for<'a> fn(&'a T, &mut Vec<Cell<'a>>) -> Result<(), String>,
}

impl<T: ?Sized + 'static> Table<T> {
    /// The cells of `items` column by column (one array per column, as PostgreSQL binds them),
    /// built without a row-major copy first: a flush holds its cells once. An item that cannot
    /// be stored is a permanent error naming the table.
    pub fn columns_for<'a>(
        &self,
        sink: &'static str,
        items: &[&'a T],
    ) -> Result<Vec<Vec<Cell<'a>>>, crate::SinkError> {
        let width = self.schema.columns.len();
        let mut columns: Vec<Vec<Cell<'a>>> = (0..width)
            .map(|_| Vec::with_capacity(items.len()))
            .collect();
        let mut row = Vec::with_capacity(width);
        for item in items {
            (self.row)(item, &mut row).map_err(|message| crate::SinkError::Permanent {
                sink,
                message: format!("{}: {message}", self.schema.name),
            })?;
            debug_assert_eq!(row.len(), width);
            for (column, cell) in columns.iter_mut().zip(row.drain(..)) {
                column.push(cell);
            }
        }
        Ok(columns)
    }

    /// The cells of `items` as `sink` writes them: an item that cannot be stored is a permanent
    /// error naming the table.
    pub fn rows_for<'a>(
        &self,
        sink: &'static str,
        items: &[&'a T],
    ) -> Result<Rows<'a>, crate::SinkError> {
        self.rows(items.iter().copied())
            .map_err(|message| crate::SinkError::Permanent {
                sink,
                message: format!("{}: {message}", self.schema.name),
            })
    }

    /// The cells of `items`, row after row.
    pub fn rows<'a, I>(&self, items: I) -> Result<Rows<'a>, String>
    where
        I: IntoIterator<Item = &'a T>,
    {
        let mut cells = Vec::new();
        let mut n = 0;
        for item in items {
            (self.row)(item, &mut cells)?;
            n += 1;
            debug_assert_eq!(cells.len(), n * self.schema.columns.len());
        }
        Ok(Rows {
            width: self.schema.columns.len(),
            cells,
        })
    }
}

/// Rows of cells, row-major, `width` cells each.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<'a> {
    /// Cells per row.
    pub width: usize,
    /// The cells.
    pub cells: Vec<Cell<'a>>,
}

impl<'a> Rows<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The rows, one slice each.
    pub fn iter(&self) -> std::slice::Chunks<'_, Cell<'a>> {
        self.cells.chunks(self.width.max(1))
    }
}

/// One bound value; its variant follows the column's [`Type`] (`Null` for any).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// [`Type::Text`].
    Text(Cow<'a, str>),
    /// [`Type::Int`].
    Int(i64),
    /// [`Type::Float`].
    Float(f64),
    /// [`Type::Decimal`].
    Decimal(Decimal),
    /// [`Type::Bool`].
    Bool(bool),
    /// [`Type::Time`]: milliseconds since the Unix epoch.
    Time(i64),
    /// [`Type::Date`].
    Date(NaiveDate),
    /// [`Type::Json`]: the document's text.
    Json(Cow<'a, str>),
    /// [`Type::TextList`].
    TextList(&'a [String]),
}

impl<'a> Cell<'a> {
    /// A borrowed text.
    pub fn text(s: &'a str) -> Self {
        Cell::Text(Cow::Borrowed(s))
    }

    /// A text or NULL.
    pub fn opt_text(s: Option<&'a str>) -> Self {
        s.map_or(Cell::Null, Cell::text)
    }

    /// A decimal or NULL.
    pub fn opt_decimal(v: Option<Decimal>) -> Self {
        v.map_or(Cell::Null, Cell::Decimal)
    }

    /// A double or NULL (non-finite values are NULL).
    pub fn opt_float(v: Option<f64>) -> Self {
        v.filter(|x| x.is_finite()).map_or(Cell::Null, Cell::Float)
    }

    /// An integer or NULL.
    pub fn opt_int(v: Option<i64>) -> Self {
        v.map_or(Cell::Null, Cell::Int)
    }
}

/// The stored rows of one table, read back in the server's own bulk-load format (PostgreSQL
/// `COPY` text, MySQL `LOAD DATA` tab-separated text), for `cryptoflow bench --bulk-reference`.
#[derive(Debug, Clone)]
pub struct TableDump {
    /// The table.
    pub table: &'static str,
    /// Rows in `data`.
    pub rows: u64,
    /// The rows, whole lines, in chunks of about [`DUMP_CHUNK`] bytes.
    pub data: Vec<bytes::Bytes>,
}

impl TableDump {
    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.data.iter().map(bytes::Bytes::len).sum()
    }

    /// No data.
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(bytes::Bytes::is_empty)
    }
}

/// Size of the chunks a [`TableDump`] is cut into (whole lines, so a little more).
pub const DUMP_CHUNK: usize = 256 * 1024;

/// Collects whole lines into [`TableDump`] chunks of about [`DUMP_CHUNK`] bytes.
#[derive(Debug, Default)]
pub struct DumpBuilder {
    current: bytes::BytesMut,
    chunks: Vec<bytes::Bytes>,
    rows: u64,
}

impl DumpBuilder {
    /// The buffer the next line goes into; call [`DumpBuilder::end_line`] after each line.
    pub fn buf(&mut self) -> &mut bytes::BytesMut {
        &mut self.current
    }

    /// Ends one line (the caller wrote it, newline included).
    pub fn end_line(&mut self) {
        self.rows += 1;
        if self.current.len() >= DUMP_CHUNK {
            self.chunks.push(self.current.split().freeze());
        }
    }

    /// Appends data holding `rows` whole lines.
    pub fn extend(&mut self, data: &[u8], rows: u64) {
        self.current.extend_from_slice(data);
        self.rows += rows;
        if self.current.len() >= DUMP_CHUNK {
            self.chunks.push(self.current.split().freeze());
        }
    }

    /// The dump of `table`.
    pub fn finish(mut self, table: &'static str) -> TableDump {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
        TableDump {
            table,
            rows: self.rows,
            data: self.chunks,
        }
    }
}

/// Row count and a digest of one table's stored rows (equal digests: the same rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    /// The table.
    pub table: &'static str,
    /// Rows stored.
    pub rows: u64,
    /// A digest of every stored row, independent of storage order.
    pub digest: String,
}

/// `url` with its database replaced by `name` (`scheme://user@host:port/NAME?query`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    let mut out = if scheme.is_empty() {
        format!("{host}/{name}")
    } else {
        format!("{scheme}://{host}/{name}")
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// `name` as a database name of `sink` for `cryptoflow bench --bulk-reference`: it must be
/// plain, since it is not quoted ([`plain_name`]).
pub fn check_database_name(sink: &'static str, name: &str) -> Result<(), crate::SinkError> {
    if plain_name(name) {
        Ok(())
    } else {
        Err(crate::SinkError::Permanent {
            sink,
            message: format!(
                "database name {name:?}: use lower-case letters, digits and `_` (at most 63)"
            ),
        })
    }
}

/// Whether `name` is safe as an unquoted database name (lower-case letters, digits, `_`).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x_1"),
            "postgres://postgres@127.0.0.1:5432/x_1"
        );
        assert_eq!(
            with_database("mysql://root:pw@h:3306/test?ssl=false", "x"),
            "mysql://root:pw@h:3306/x?ssl=false"
        );
        assert_eq!(with_database("mysql://root@h", "x"), "mysql://root@h/x");
        assert!(plain_name("cfbulk_12_sink"));
        assert!(!plain_name("a-b") && !plain_name("A") && !plain_name("1a") && !plain_name(""));
    }

    #[test]
    fn dumps_cut_at_line_ends() {
        let mut b = DumpBuilder::default();
        let line = vec![b'x'; 1000];
        for _ in 0..600 {
            b.buf().extend_from_slice(&line);
            b.buf().extend_from_slice(b"\n");
            b.end_line();
        }
        let d = b.finish("t");
        assert_eq!(d.rows, 600);
        assert_eq!(d.len(), 600 * 1001);
        assert!(d.data.len() >= 2);
        assert!(d
            .data
            .iter()
            .all(|c| c.ends_with(b"\n") && c.len() % 1001 == 0));
    }

    #[test]
    fn guards_render_with_the_dialects_spelling() {
        let old = |c: &str| format!("s.{c}");
        let new = |c: &str| format!("excluded.{c}");
        assert_eq!(Guard::Always.render(&old, &new), None);
        assert_eq!(
            Guard::NotFewer("items").render(&old, &new).as_deref(),
            Some("s.items <= excluded.items")
        );
        assert_eq!(
            Guard::OpenMarker {
                resolved: "resolved_at",
                detail: "detail",
                prefix: "refilling"
            }
            .render(&old, &new)
            .as_deref(),
            Some("s.resolved_at IS NULL AND s.detail LIKE 'refilling%'")
        );
    }

    #[test]
    fn rows_are_row_major() {
        let r = Rows {
            width: 2,
            cells: vec![Cell::Int(1), Cell::Null, Cell::Int(2), Cell::Bool(true)],
        };
        assert_eq!(r.len(), 2);
        let rows: Vec<_> = r.iter().collect();
        assert_eq!(rows[1], &[Cell::Int(2), Cell::Bool(true)]);
        assert!(Rows {
            width: 3,
            cells: vec![]
        }
        .is_empty());
    }
}
