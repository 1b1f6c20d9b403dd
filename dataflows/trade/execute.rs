//! The order executor's core: an intent through the risk gate, written ahead to the journal,
//! placed on an exchange, its outcome and fills journaled; and the recovery at a start.
//!
//! One order per intent, across crashes:
//! 1. the risk gate approves (or the rejection is journaled with its rule and reason);
//! 2. the intent is written `pending` **before** anything is sent, and an id already in the
//!    journal is never sent again;
//! 3. the exchange's answer moves the row on (`accepted`, `filled`, …; `unknown` when the
//!    outcome could not be learnt) and its fills go to `fills` and `positions`;
//! 4. at a start, positions are rebuilt from `fills`, every journaled id is marked handled, and
//!    every `pending` or `unknown` row is resolved with [`Exchange::reconcile`]: a query by
//!    client order id first, a placement only once the exchange confirms there is no such order.
//!
//! A kill between 2 and 3 (the process dies while the request is on the wire) leaves a `pending`
//! row; the next start finds the order on the exchange by its id and journals it, so the
//! exchange holds exactly one order for the intent.

use std::future::Future;

use anyhow::{Context, Result};
use cryptoflow_operators::model::Millis;
use cryptoflow_operators::trading::engine::{Engine, EngineConfig, Gate, JournalEvent};
use cryptoflow_operators::trading::{Fill, Intent};
use cryptoflow_sinks::binance_orders::{BinanceOrders, OrderError, OrderOutcome, OrderStatus};
use cryptoflow_sinks::journal::{Journal, OrderState};
use rust_decimal::Decimal;

/// What an exchange said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The order's state.
    pub state: OrderState,
    /// The exchange's order id.
    pub exchange_order_id: Option<u64>,
    /// Quantity executed so far.
    pub executed_qty: Decimal,
    /// The fills known.
    pub fills: Vec<Fill>,
}

/// Why an exchange did not place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPlaced {
    /// Refused: not placed (`rule` is the exchange's code, e.g. `binance:-2010`).
    Rejected {
        /// Who refused and the code.
        rule: String,
        /// The exchange's message.
        reason: String,
    },
    /// It may or may not be on the exchange: resolve with [`Exchange::reconcile`].
    Unknown(String),
}

/// A live exchange, as the executor uses it.
pub trait Exchange {
    /// Its name in the journal (`binance`).
    fn name(&self) -> &'static str;
    /// Places an order with the intent's id as the client order id.
    fn place(&self, intent: &Intent) -> impl Future<Output = Result<Placed, NotPlaced>> + Send;
    /// Finds the order of an intent that may have been sent; places it only once the exchange
    /// confirms that it does not exist.
    fn reconcile(&self, intent: &Intent) -> impl Future<Output = Result<Placed, NotPlaced>> + Send;
}

fn placed(o: OrderOutcome) -> Placed {
    let state = match o.status {
        OrderStatus::New | OrderStatus::PendingNew => OrderState::Accepted,
        OrderStatus::PartiallyFilled => OrderState::PartiallyFilled,
        OrderStatus::Filled => OrderState::Filled,
        OrderStatus::Canceled | OrderStatus::PendingCancel => OrderState::Cancelled,
        OrderStatus::Rejected => OrderState::Rejected,
        OrderStatus::Expired | OrderStatus::ExpiredInMatch => OrderState::Expired,
        OrderStatus::Other(_) => OrderState::Unknown,
    };
    Placed {
        state,
        exchange_order_id: Some(o.exchange_order_id),
        executed_qty: o.executed_qty,
        fills: o.fills,
    }
}

fn not_placed(e: OrderError) -> NotPlaced {
    match e {
        OrderError::Rejected { code, msg, .. } => NotPlaced::Rejected {
            rule: format!("binance:{code}"),
            reason: msg,
        },
        OrderError::NotTrading { .. } => NotPlaced::Rejected {
            rule: "binance:not_trading".into(),
            reason: e.to_string(),
        },
        // Anything else may have reached the exchange, or not: never guess.
        other => NotPlaced::Unknown(other.to_string()),
    }
}

impl Exchange for BinanceOrders {
    fn name(&self) -> &'static str {
        "binance"
    }

    async fn place(&self, intent: &Intent) -> Result<Placed, NotPlaced> {
        BinanceOrders::place(self, intent)
            .await
            .map(placed)
            .map_err(not_placed)
    }

    async fn reconcile(&self, intent: &Intent) -> Result<Placed, NotPlaced> {
        BinanceOrders::reconcile(self, intent)
            .await
            .map(placed)
            .map_err(not_placed)
    }
}

/// What a start's recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Fills read back from the journal.
    pub fills: usize,
    /// Pending or unknown intents found on (or placed on) the exchange.
    pub resolved: usize,
    /// Refused by the exchange after all.
    pub rejected: usize,
    /// Still unknown: left `unknown` for the next attempt.
    pub unknown: usize,
}

/// The executor: the engine's risk gate, a live exchange and the journal.
pub struct Executor<X> {
    engine: Engine,
    exchange: X,
    journal: Journal,
}

impl<X: Exchange> Executor<X> {
    /// Starts: rebuilds the positions from the journal's fills, marks every journaled intent as
    /// handled, and resolves the ones a crash or a timeout left open.
    pub async fn start(
        config: EngineConfig,
        exchange: X,
        journal: Journal,
    ) -> Result<(Self, Recovery)> {
        let mut engine = Engine::new(config);
        let fills = journal.fills().await.context("read the journal's fills")?;
        let mut recovery = Recovery {
            fills: fills.len(),
            ..Recovery::default()
        };
        engine.record_fills(fills);
        for id in journal.intent_ids().await.context("read the journal")? {
            engine.mark_seen(&id);
        }
        let mut executor = Executor {
            engine,
            exchange,
            journal,
        };
        for intent in executor
            .journal
            .unresolved()
            .await
            .context("read the journal")?
        {
            match executor.exchange.reconcile(&intent).await {
                Ok(p) => {
                    recovery.resolved += 1;
                    executor.settle(&intent, p).await?;
                }
                Err(e) => {
                    match &e {
                        NotPlaced::Rejected { .. } => recovery.rejected += 1,
                        NotPlaced::Unknown(_) => recovery.unknown += 1,
                    }
                    executor.refused(&intent, e).await?;
                }
            }
        }
        Ok((executor, recovery))
    }

    /// The engine (positions, marks, the kill switch).
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// An intent at `now`: the risk gate, the journal, the exchange. Returns the order's state
    /// (`None` for an id handled before: nothing is sent).
    pub async fn submit(&mut self, intent: Intent, now: Millis) -> Result<Option<OrderState>> {
        let intent = match self.engine.gate(intent, now) {
            Gate::Duplicate => return Ok(None),
            Gate::Rejected(JournalEvent::Rejected {
                intent,
                rule,
                reason,
                ..
            }) => {
                self.journal
                    .write_rejected(&intent, &rule, &reason)
                    .await
                    .context("journal a rejection")?;
                return Ok(Some(OrderState::Rejected));
            }
            Gate::Rejected(_) => return Ok(Some(OrderState::Rejected)),
            Gate::Approved(intent) => intent,
        };
        // Written ahead: from here on the intent is never sent again, only resolved.
        if !self
            .journal
            .write_pending(&intent)
            .await
            .context("journal the intent before sending it")?
        {
            return Ok(None);
        }
        match self.exchange.place(&intent).await {
            Ok(p) => {
                let state = p.state;
                self.settle(&intent, p).await?;
                Ok(Some(state))
            }
            Err(e) => {
                let state = match &e {
                    NotPlaced::Rejected { .. } => OrderState::Rejected,
                    NotPlaced::Unknown(_) => OrderState::Unknown,
                };
                self.refused(&intent, e).await?;
                Ok(Some(state))
            }
        }
    }

    async fn settle(&mut self, intent: &Intent, p: Placed) -> Result<()> {
        self.journal
            .set_state(
                &intent.id,
                p.state,
                p.exchange_order_id,
                p.executed_qty,
                None,
            )
            .await
            .context("journal the exchange's answer")?;
        self.record_fills(p.fills).await
    }

    /// Applies fills (from an answer or the user data stream) to the positions and journals
    /// the new ones.
    pub async fn record_fills(&mut self, fills: Vec<Fill>) -> Result<()> {
        let new: Vec<Fill> = self
            .engine
            .record_fills(fills)
            .into_iter()
            .filter_map(|e| match e {
                JournalEvent::Filled { fill } => Some(fill),
                _ => None,
            })
            .collect();
        self.journal
            .write_fills(&new, self.engine.portfolio())
            .await
            .context("journal fills")
    }

    async fn refused(&mut self, intent: &Intent, e: NotPlaced) -> Result<()> {
        let (state, rule, reason) = match &e {
            NotPlaced::Rejected { rule, reason } => (OrderState::Rejected, rule.as_str(), reason),
            NotPlaced::Unknown(reason) => (OrderState::Unknown, "unknown_outcome", reason),
        };
        self.journal
            .set_state(&intent.id, state, None, Decimal::ZERO, Some((rule, reason)))
            .await
            .context("journal the exchange's refusal")
    }
}
