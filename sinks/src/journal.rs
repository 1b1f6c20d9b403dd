//! The order executor's journal in PostgreSQL (`orders`, `fills`, `positions`, `pnl_daily`;
//! migration `0011_executor.sql`; the text orders' `text_orders`, `0013_text_orders.sql`).
//!
//! The executor is its only writer. An approved intent is written `pending` **before** it goes to
//! the exchange, so after a crash at any point the journal knows every intent that may have
//! reached the exchange; [`Journal::unresolved`] lists them for the executor to resolve by
//! querying the exchange. Fills are written once per `(intent_id, fill_id)`, with the positions
//! and the day's PnL they lead to, in one transaction.

use std::collections::BTreeSet;

use cryptoflow_operators::model::{Millis, Side, Symbol, Venue};
use cryptoflow_operators::trading::portfolio::{utc_day_start, Portfolio};
use cryptoflow_operators::trading::{Fill, Intent, OrderKind};
use rust_decimal::Decimal;
use tokio_postgres::{Client, NoTls};

/// A journal error.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// PostgreSQL refused or failed.
    #[error("journal: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A stored row does not read back (edited by hand?).
    #[error("journal: order {intent_id}: {what}")]
    BadRow {
        /// The row's intent id.
        intent_id: String,
        /// What is wrong.
        what: String,
    },
}

/// The state of an order in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Approved and written; it may or may not have reached the exchange.
    Pending,
    /// Sent; the outcome is not known (timeout, 5xx): resolved by a query.
    Unknown,
    /// Open on the exchange (or the paper book).
    Accepted,
    /// Partly executed and still open.
    PartiallyFilled,
    /// Executed in full.
    Filled,
    /// Cancelled (by us or the exchange), possibly after partial fills.
    Cancelled,
    /// Expired by the exchange.
    Expired,
    /// Refused by the risk gate or the exchange (`rule`, `reason`).
    Rejected,
}

impl OrderState {
    /// The name stored in `orders.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Unknown => "unknown",
            OrderState::Accepted => "accepted",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::Filled => "filled",
            OrderState::Cancelled => "cancelled",
            OrderState::Expired => "expired",
            OrderState::Rejected => "rejected",
        }
    }
}

/// The journal: one connection, one writer.
pub struct Journal {
    client: Client,
    broker: String,
    /// The statements the executor runs again and again, prepared once at the start: an
    /// unprepared statement costs a second round trip (parse and describe) each time, and the
    /// order insert is on the path of every order to the wire.
    statements: Statements,
}

/// The prepared statements of [`Journal`].
struct Statements {
    insert_order: tokio_postgres::Statement,
    set_state: tokio_postgres::Statement,
    insert_fill: tokio_postgres::Statement,
    upsert_position: tokio_postgres::Statement,
    upsert_pnl_day: tokio_postgres::Statement,
    write_text_order: tokio_postgres::Statement,
}

const INSERT_ORDER: &str = "INSERT INTO orders (intent_id, venue, symbol, side, order_type, qty, \
     limit_price, created_at, state, rule, reason, broker) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (intent_id) DO NOTHING";

const SET_STATE: &str = "UPDATE orders SET state = $2, \
     exchange_order_id = COALESCE($3, exchange_order_id), \
     executed_qty = GREATEST(executed_qty, $4), rule = COALESCE($5, rule), \
     reason = COALESCE($6, reason), updated_at = now() WHERE intent_id = $1";

const INSERT_FILL: &str =
    "INSERT INTO fills (intent_id, fill_id, symbol, side, qty, price, fee, ts) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";

const UPSERT_POSITION: &str = "INSERT INTO positions \
     (symbol, qty, avg_price, cost_basis, realised_pnl, fees_paid) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (symbol) DO UPDATE SET \
     qty = EXCLUDED.qty, avg_price = EXCLUDED.avg_price, cost_basis = EXCLUDED.cost_basis, \
     realised_pnl = EXCLUDED.realised_pnl, fees_paid = EXCLUDED.fees_paid, updated_at = now()";

const UPSERT_PNL_DAY: &str = "INSERT INTO pnl_daily (day, realised, fees, fills) \
     SELECT to_timestamp($1::bigint / 1000.0)::date, $2, COALESCE(sum(fee), 0), count(*) \
     FROM fills WHERE ts >= $1 AND ts < $1 + 86400000 \
     ON CONFLICT (day) DO UPDATE SET realised = EXCLUDED.realised, \
     fees = EXCLUDED.fees, fills = EXCLUDED.fills";

const WRITE_TEXT_ORDER: &str = "INSERT INTO text_orders \
     (id, status, origin, text, description, record, proposed_at) \
     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7) \
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
     record = EXCLUDED.record, updated_at = now() \
     WHERE text_orders.status IN ('pending', 'armed')";

impl Journal {
    /// Connects to `url` (run the migrations first: `cryptoflow migrate`; the statements are
    /// prepared here, in one pipelined exchange); `broker` names who executes (`paper`,
    /// `binance`) in every order row.
    pub async fn connect(url: &str, broker: &str) -> Result<Self, JournalError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "Journal connection closed.");
            }
        });
        let (
            insert_order,
            set_state,
            insert_fill,
            upsert_position,
            upsert_pnl_day,
            write_text_order,
        ) = tokio::try_join!(
            client.prepare(INSERT_ORDER),
            client.prepare(SET_STATE),
            client.prepare(INSERT_FILL),
            client.prepare(UPSERT_POSITION),
            client.prepare(UPSERT_PNL_DAY),
            client.prepare(WRITE_TEXT_ORDER),
        )?;
        Ok(Journal {
            client,
            broker: broker.to_string(),
            statements: Statements {
                insert_order,
                set_state,
                insert_fill,
                upsert_position,
                upsert_pnl_day,
                write_text_order,
            },
        })
    }

    async fn insert(
        &self,
        intent: &Intent,
        state: OrderState,
        rule: Option<&str>,
        reason: Option<&str>,
    ) -> Result<bool, JournalError> {
        let (order_type, limit_price) = match intent.kind {
            OrderKind::Market => ("market", None),
            OrderKind::Limit { price } => ("limit", Some(price)),
        };
        let n = self
            .client
            .execute(
                &self.statements.insert_order,
                &[
                    &intent.id,
                    &intent.venue.as_str(),
                    &intent.symbol.as_str(),
                    &intent.side.as_str(),
                    &order_type,
                    &intent.qty,
                    &limit_price,
                    &intent.created_at,
                    &state.as_str(),
                    &rule,
                    &reason,
                    &self.broker,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Writes an approved intent as `pending`, before it is sent; false when its id is in the
    /// journal already (it must not be sent again: resolve it instead).
    pub async fn write_pending(&self, intent: &Intent) -> Result<bool, JournalError> {
        self.insert(intent, OrderState::Pending, None, None).await
    }

    /// Writes a refused intent with the rule (`risk` rule name or the exchange's code) and reason.
    pub async fn write_rejected(
        &self,
        intent: &Intent,
        rule: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        self.insert(intent, OrderState::Rejected, Some(rule), Some(reason))
            .await?;
        Ok(())
    }

    /// Moves an order to `state`, with what the exchange said.
    pub async fn set_state(
        &self,
        intent_id: &str,
        state: OrderState,
        exchange_order_id: Option<u64>,
        executed_qty: Decimal,
        rule_reason: Option<(&str, &str)>,
    ) -> Result<(), JournalError> {
        let order_id = exchange_order_id.and_then(|i| i64::try_from(i).ok());
        let (rule, reason) = rule_reason.unzip();
        self.client
            .execute(
                &self.statements.set_state,
                &[
                    &intent_id,
                    &state.as_str(),
                    &order_id,
                    &executed_qty,
                    &rule,
                    &reason,
                ],
            )
            .await?;
        Ok(())
    }

    /// Writes new fills once each, and the positions and daily PnL after them (`portfolio` has
    /// them applied already), in one transaction.
    pub async fn write_fills(
        &mut self,
        fills: &[Fill],
        portfolio: &Portfolio,
    ) -> Result<(), JournalError> {
        if fills.is_empty() {
            return Ok(());
        }
        let tx = self.client.transaction().await?;
        let mut symbols = BTreeSet::new();
        let mut days = BTreeSet::new();
        for f in fills {
            let fill_id = i64::try_from(f.fill_id).map_err(|_| JournalError::BadRow {
                intent_id: f.intent_id.clone(),
                what: format!("fill id {} does not fit a bigint", f.fill_id),
            })?;
            tx.execute(
                &self.statements.insert_fill,
                &[
                    &f.intent_id,
                    &fill_id,
                    &f.symbol.as_str(),
                    &f.side.as_str(),
                    &f.qty,
                    &f.price,
                    &f.fee,
                    &f.ts,
                ],
            )
            .await?;
            symbols.insert(f.symbol);
            days.insert(utc_day_start(f.ts));
        }
        for symbol in symbols {
            let p = portfolio.position(&symbol).cloned().unwrap_or_default();
            tx.execute(
                &self.statements.upsert_position,
                &[
                    &symbol.as_str(),
                    &p.qty,
                    &p.avg_price,
                    &p.cost_basis,
                    &p.realised_pnl,
                    &p.fees_paid,
                ],
            )
            .await?;
        }
        for day in days {
            let realised = portfolio.realised_on_day(day);
            tx.execute(&self.statements.upsert_pnl_day, &[&day, &realised])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every fill, in the order written (to rebuild the positions at a start).
    pub async fn fills(&self) -> Result<Vec<Fill>, JournalError> {
        let rows = self
            .client
            .query(
                "SELECT intent_id, fill_id, symbol, side, qty, price, fee, ts FROM fills ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let intent_id: String = r.get(0);
                let bad = |what: String| JournalError::BadRow {
                    intent_id: intent_id.clone(),
                    what,
                };
                let fill_id: i64 = r.get(1);
                Ok(Fill {
                    symbol: r
                        .get::<_, String>(2)
                        .parse()
                        .map_err(|e| bad(format!("{e}")))?,
                    side: side(r.get(3)).ok_or_else(|| bad("side".into()))?,
                    qty: r.get(4),
                    price: r.get(5),
                    fee: r.get(6),
                    ts: r.get(7),
                    fill_id: u64::try_from(fill_id).map_err(|e| bad(format!("{e}")))?,
                    intent_id: intent_id.clone(),
                })
            })
            .collect()
    }

    /// Every intent id in the journal (none of them may be sent again).
    pub async fn intent_ids(&self) -> Result<Vec<String>, JournalError> {
        let rows = self
            .client
            .query("SELECT intent_id FROM orders", &[])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The intents left `pending` or `unknown` (by a crash or a timeout), oldest first.
    pub async fn unresolved(&self) -> Result<Vec<Intent>, JournalError> {
        let rows = self
            .client
            .query(
                "SELECT intent_id, venue, symbol, side, order_type, qty, limit_price, created_at \
                 FROM orders WHERE state IN ('pending', 'unknown') ORDER BY created_at, intent_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let bad = |what: String| JournalError::BadRow {
                    intent_id: id.clone(),
                    what,
                };
                let venue: Venue = r
                    .get::<_, String>(1)
                    .parse()
                    .map_err(|e| bad(format!("{e}")))?;
                let symbol: Symbol = r
                    .get::<_, String>(2)
                    .parse()
                    .map_err(|e| bad(format!("{e}")))?;
                let kind = match (
                    r.get::<_, String>(4).as_str(),
                    r.get::<_, Option<Decimal>>(6),
                ) {
                    ("market", _) => OrderKind::Market,
                    ("limit", Some(price)) => OrderKind::Limit { price },
                    (other, _) => return Err(bad(format!("order type {other:?}"))),
                };
                Ok(Intent {
                    venue,
                    symbol,
                    side: side(r.get(3)).ok_or_else(|| bad("side".into()))?,
                    qty: r.get(5),
                    kind,
                    created_at: r.get::<_, Millis>(7),
                    id: id.clone(),
                })
            })
            .collect()
    }
}

/// A text order as the journal keeps it (`text_orders`, migration `0013_text_orders.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOrderRow {
    /// The proposal's id.
    pub id: String,
    /// Its status (`pending`, `armed`, `fired`, …).
    pub status: String,
    /// Where it came from (`telegram:<chat>`, `api`, `cli`).
    pub origin: String,
    /// The message as sent.
    pub text: String,
    /// The command in words, as shown for confirmation.
    pub description: String,
    /// The whole record, JSON.
    pub record: String,
    /// When it was proposed, ms.
    pub proposed_at: Millis,
}

impl Journal {
    /// Writes a text order's record (inserted, or replacing the stored one while that is still
    /// `pending` or `armed`: a final record is never overwritten).
    pub async fn write_text_order(&self, row: &TextOrderRow) -> Result<(), JournalError> {
        self.client
            .execute(
                &self.statements.write_text_order,
                &[
                    &row.id,
                    &row.status,
                    &row.origin,
                    &row.text,
                    &row.description,
                    &row.record,
                    &row.proposed_at,
                ],
            )
            .await?;
        Ok(())
    }

    /// Whether the kill switch was pulled (and not reset since).
    pub async fn killed(&self) -> Result<bool, JournalError> {
        let row = self
            .client
            .query_opt(
                "SELECT value FROM executor_switches WHERE name = 'killed'",
                &[],
            )
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    /// Stores the kill switch (on: pulled; off: reset).
    pub async fn set_killed(&self, on: bool) -> Result<(), JournalError> {
        self.client
            .execute(
                "INSERT INTO executor_switches (name, value) VALUES ('killed', $1) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                &[&on],
            )
            .await?;
        Ok(())
    }

    /// The records (JSON) of the text orders still `pending` or `armed`, oldest first: what a
    /// restart puts back in the book. Final ones stay in the table as history.
    pub async fn live_text_orders(&self) -> Result<Vec<String>, JournalError> {
        let rows = self
            .client
            .query(
                "SELECT record::text FROM text_orders WHERE status IN ('pending', 'armed') \
                 ORDER BY proposed_at, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

fn side(s: &str) -> Option<Side> {
    match s {
        "buy" => Some(Side::Buy),
        "sell" => Some(Side::Sell),
        _ => None,
    }
}
