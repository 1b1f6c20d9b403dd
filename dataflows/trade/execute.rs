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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use cryptoflow_operators::model::{Millis, Trade};
use cryptoflow_operators::trading::conditional::{
    Book, BookConfig, BookState, Confirmed, OrderRecord, Origin, Outcome, STATE_VERSION,
};
use cryptoflow_operators::trading::engine::{Engine, EngineConfig, Gate, JournalEvent};
use cryptoflow_operators::trading::paper::OrderStatus as PaperStatus;
use cryptoflow_operators::trading::risk::SymbolFilters;
use cryptoflow_operators::trading::signals::Signal;
use cryptoflow_operators::trading::{Fill, Intent};
use cryptoflow_sinks::binance_orders::{BinanceOrders, OrderError, OrderOutcome, OrderStatus};
use cryptoflow_sinks::journal::{Journal, OrderState, TextOrderRow};

use super::control::{Command, Controls, Reply};
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
    /// The trading rules of `symbol` (`None`: not trading there).
    fn filters(
        &self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> impl Future<Output = Result<Option<SymbolFilters>>> + Send;
    /// Cancels the open orders of `symbol` (every symbol when `None`); returns their client
    /// order ids.
    fn cancel_open(
        &self,
        symbol: Option<&cryptoflow_operators::model::Symbol>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}

fn placed(o: OrderOutcome) -> Placed {
    Placed {
        state: state_of(&o.status),
        exchange_order_id: Some(o.exchange_order_id),
        executed_qty: o.executed_qty,
        fills: o.fills,
    }
}

/// The journal's state of an order in an exchange's status.
fn state_of(status: &OrderStatus) -> OrderState {
    match status {
        OrderStatus::New | OrderStatus::PendingNew => OrderState::Accepted,
        OrderStatus::PartiallyFilled => OrderState::PartiallyFilled,
        OrderStatus::Filled => OrderState::Filled,
        OrderStatus::Canceled | OrderStatus::PendingCancel => OrderState::Cancelled,
        OrderStatus::Rejected => OrderState::Rejected,
        OrderStatus::Expired | OrderStatus::ExpiredInMatch => OrderState::Expired,
        OrderStatus::Other(_) => OrderState::Unknown,
    }
}

/// An exchange's answer, its buys' fills net of commissions charged in the asset bought.
fn placed_net(x: &BinanceOrders, mut o: OrderOutcome) -> Placed {
    let base = base_asset(x, &o.symbol);
    net_of_commissions(&mut o.fills, &o.commissions, base.as_deref());
    placed(o)
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
            .map(|o| placed_net(self, o))
            .map_err(not_placed)
    }

    async fn reconcile(&self, intent: &Intent) -> Result<Placed, NotPlaced> {
        BinanceOrders::reconcile(self, intent)
            .await
            .map(|o| placed_net(self, o))
            .map_err(not_placed)
    }

    async fn filters(
        &self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> Result<Option<SymbolFilters>> {
        let info = self
            .exchange_info(std::slice::from_ref(symbol))
            .await
            .with_context(|| format!("exchangeInfo of {symbol}"))?;
        Ok(info.symbols.get(symbol).map(|i| i.filters.clone()))
    }

    async fn cancel_open(
        &self,
        symbol: Option<&cryptoflow_operators::model::Symbol>,
    ) -> Result<Vec<String>> {
        let symbols: Vec<cryptoflow_operators::model::Symbol> = match symbol {
            Some(s) => vec![*s],
            None => {
                let mut all: Vec<_> = self
                    .open_orders(None)
                    .await
                    .context("list the open orders")?
                    .into_iter()
                    .map(|o| o.symbol)
                    .collect();
                all.sort();
                all.dedup();
                all
            }
        };
        let mut ids = Vec::new();
        for s in symbols {
            let cancelled = self
                .cancel_all(&s)
                .await
                .with_context(|| format!("cancel the open orders of {s}"))?;
            ids.extend(cancelled.into_iter().map(|o| o.client_order_id));
        }
        Ok(ids)
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

/// The executor: the engine's risk gate, a live exchange (or the paper broker: `None`) and the
/// journal.
pub struct Executor<X> {
    engine: Engine,
    exchange: Option<X>,
    journal: Journal,
    book: Book,
    kill_flag: Arc<AtomicBool>,
    notices: Vec<String>,
}

impl<X: Exchange> Executor<X> {
    /// Starts: rebuilds the positions from the journal's fills, marks every journaled intent as
    /// handled, and resolves the ones a crash or a timeout left open (on the exchange; with the
    /// paper broker, whose book does not survive a restart, they are cancelled).
    pub async fn start(
        config: EngineConfig,
        exchange: Option<X>,
        journal: Journal,
    ) -> Result<(Self, Recovery)> {
        Self::start_with(config, BookConfig::default(), exchange, journal).await
    }

    /// [`Executor::start`] with the text orders' settings; the text orders still pending or
    /// armed in the journal go back into the book, and a kill switch pulled before the restart
    /// stays on.
    pub async fn start_with(
        config: EngineConfig,
        book_config: BookConfig,
        exchange: Option<X>,
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
        let mut records = Vec::new();
        for json in journal
            .live_text_orders()
            .await
            .context("read the journal's text orders")?
        {
            let record: OrderRecord = serde_json::from_str(&json)
                .with_context(|| format!("a stored text order does not read: {json}"))?;
            records.push(record);
        }
        let book = Book::restore(
            book_config,
            BookState {
                version: STATE_VERSION,
                records,
            },
        )
        .map_err(|e| anyhow::anyhow!("the journal's text orders: {e}"))?;
        if journal.killed().await.context("read the kill switch")? {
            tracing::warn!("The kill switch was pulled before this start: no new orders.");
            engine.kill(Millis::MIN);
        }
        let mut executor = Executor {
            engine,
            exchange,
            journal,
            book,
            kill_flag: Arc::new(AtomicBool::new(false)),
            notices: Vec::new(),
        };
        for intent in executor
            .journal
            .unresolved()
            .await
            .context("read the journal")?
        {
            let Some(exchange) = executor.exchange.as_ref() else {
                executor
                    .journal
                    .set_state(
                        &intent.id,
                        OrderState::Cancelled,
                        None,
                        Decimal::ZERO,
                        Some(("paper_restart", "the paper book does not survive a restart")),
                    )
                    .await
                    .context("journal a lost paper order")?;
                continue;
            };
            match exchange.reconcile(&intent).await {
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

    /// Reads the exchange's filters of `symbol` once (live: `exchangeInfo`); a symbol that is
    /// not trading gets none, so the risk gate refuses its orders (`no_filters`).
    pub async fn ensure_filters(
        &mut self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> Result<()> {
        if self.engine.has_filters(symbol) {
            return Ok(());
        }
        if let Some(exchange) = &self.exchange {
            if let Some(filters) = exchange.filters(symbol).await? {
                self.engine.set_filters(*symbol, filters);
            }
        }
        Ok(())
    }

    /// The engine (positions, marks, the kill switch).
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// An intent at `now`: the risk gate, the journal, the exchange. Returns the order's state
    /// (`None` for an id handled before: nothing is sent).
    pub async fn submit(&mut self, intent: Intent, now: Millis) -> Result<Option<OrderState>> {
        self.sync_kill(now).await?;
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
                self.notices.push(format!(
                    "Rejected {} {} {}: {rule}: {reason}",
                    intent.side.as_str(),
                    intent.qty,
                    intent.symbol
                ));
                return Ok(Some(OrderState::Rejected));
            }
            Gate::Rejected(_) => return Ok(Some(OrderState::Rejected)),
            Gate::Approved(intent) => intent,
        };
        // The kill switch may have been pulled while the gate ran (another task).
        if self.kill_flag.load(Ordering::SeqCst) && !self.engine.killed() {
            self.sync_kill(now).await?;
            self.journal
                .write_rejected(&intent, "kill_switch", "the kill switch is on")
                .await
                .context("journal a rejection")?;
            return Ok(Some(OrderState::Rejected));
        }
        // Written ahead: from here on the intent is never sent again, only resolved.
        if !self
            .journal
            .write_pending(&intent)
            .await
            .context("journal the intent before sending it")?
        {
            return Ok(None);
        }
        let Some(exchange) = self.exchange.as_ref() else {
            let state = match self.engine.paper_submit(intent.clone(), now) {
                Ok(()) => OrderState::Accepted,
                Err(reason) => {
                    self.refused(
                        &intent,
                        NotPlaced::Rejected {
                            rule: "paper".into(),
                            reason,
                        },
                    )
                    .await?;
                    return Ok(Some(OrderState::Rejected));
                }
            };
            self.journal
                .set_state(&intent.id, state, None, Decimal::ZERO, None)
                .await
                .context("journal a paper order")?;
            return Ok(Some(state));
        };
        match exchange.place(&intent).await {
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
        self.notice_fills(&new);
        self.journal
            .write_fills(&new, self.engine.portfolio())
            .await
            .context("journal fills")
    }

    fn notice_fills(&mut self, fills: &[Fill]) {
        for f in fills {
            self.notices.push(format!(
                "Filled {} {} {} at {} (fee {})",
                f.side.as_str(),
                f.qty,
                f.symbol,
                f.price,
                f.fee
            ));
        }
    }

    /// A trade of the tape: the new mark, and with the paper broker the fills it makes, each
    /// order's new state journaled.
    pub async fn on_trade(&mut self, trade: &Trade) -> Result<()> {
        let fills: Vec<Fill> = self
            .engine
            .on_trade(trade)
            .into_iter()
            .filter_map(|e| match e {
                JournalEvent::Filled { fill } => Some(fill),
                _ => None,
            })
            .collect();
        if fills.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = fills.iter().map(|f| f.intent_id.clone()).collect();
        ids.sort();
        ids.dedup();
        self.notice_fills(&fills);
        self.journal
            .write_fills(&fills, self.engine.portfolio())
            .await
            .context("journal paper fills")?;
        for id in ids {
            let Some(order) = self.engine.broker().order(&id) else {
                continue;
            };
            let state = match order.status {
                PaperStatus::Filled => OrderState::Filled,
                PaperStatus::PartiallyFilled => OrderState::PartiallyFilled,
                PaperStatus::Canceled => OrderState::Cancelled,
                PaperStatus::New => OrderState::Accepted,
            };
            let filled = order.filled_qty;
            self.journal
                .set_state(&id, state, None, filled, None)
                .await
                .context("journal a paper order's state")?;
        }
        Ok(())
    }

    /// Queues a notice (for Telegram and the log).
    pub fn notice(&mut self, text: String) {
        self.notices.push(text);
    }

    /// An execution report of the user data stream: the order's new state in the journal (an
    /// order the journal does not hold is left alone).
    pub async fn report(
        &mut self,
        report: &cryptoflow_sinks::binance_orders::ExecutionReport,
    ) -> Result<()> {
        let state = state_of(&report.status);
        let reason = (state == OrderState::Rejected)
            .then_some(("binance:rejected", report.reject_reason.as_str()));
        self.journal
            .set_state(
                report.intent_id(),
                state,
                Some(report.order_id),
                report.cumulative_qty,
                reason,
            )
            .await
            .context("journal an execution report")?;
        if matches!(
            state,
            OrderState::Cancelled | OrderState::Expired | OrderState::Rejected
        ) {
            self.notices.push(format!(
                "Order {} {} on {}: {}",
                report.intent_id(),
                state.as_str(),
                report.symbol,
                report.reject_reason
            ));
        }
        Ok(())
    }

    /// Shares the kill flag of the controls: once it is up, nothing more is sent.
    pub fn set_kill_flag(&mut self, flag: Arc<AtomicBool>) {
        self.kill_flag = flag;
    }

    /// The notices since the last call (fills, rejections, …), for Telegram.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// Pulls the kill switch when the shared flag is up and the engine does not know yet.
    async fn sync_kill(&mut self, now: Millis) -> Result<()> {
        if self.kill_flag.load(Ordering::SeqCst) && !self.engine.killed() {
            self.kill(now).await?;
        }
        Ok(())
    }

    /// The kill switch: stored (it stays on across restarts), no new orders, every open order
    /// cancelled (the paper book's, and the exchange's), every armed text order cancelled.
    /// Returns what was cancelled.
    pub async fn kill(&mut self, now: Millis) -> Result<Vec<String>> {
        self.kill_flag.store(true, Ordering::SeqCst);
        self.journal
            .set_killed(true)
            .await
            .context("store the kill switch")?;
        let mut cancelled = Vec::new();
        for event in self.engine.kill(now) {
            if let JournalEvent::Cancelled { id, .. } = event {
                self.journal_cancelled(&id, "kill switch").await?;
                cancelled.push(id);
            }
        }
        if let Some(exchange) = &self.exchange {
            match exchange.cancel_open(None).await {
                Ok(ids) => {
                    for id in ids {
                        self.journal_cancelled(&id, "kill switch").await?;
                        cancelled.push(id);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "The kill switch could not cancel the exchange's open orders.");
                    self.notices.push(format!(
                        "KILL: the exchange's open orders could not be cancelled: {e:#}"
                    ));
                }
            }
        }
        let armed: Vec<String> = self.book.armed().map(|r| r.id.clone()).collect();
        for id in armed {
            if self.book.cancel(&id, "kill switch", now).is_ok() {
                self.store_text_order(&id).await?;
                cancelled.push(id);
            }
        }
        self.notices.push(format!(
            "KILL switch on: no new orders; {} cancelled",
            cancelled.len()
        ));
        Ok(cancelled)
    }

    /// A cancellation in the journal (an id the journal does not hold changes nothing).
    async fn journal_cancelled(&mut self, id: &str, why: &str) -> Result<()> {
        let filled = self
            .engine
            .broker()
            .order(id)
            .map(|o| o.filled_qty)
            .unwrap_or_default();
        self.journal
            .set_state(
                id,
                OrderState::Cancelled,
                None,
                filled,
                Some(("cancelled", why)),
            )
            .await
            .context("journal a cancellation")
    }

    /// Stores the book's record `id` in the journal.
    async fn store_text_order(&self, id: &str) -> Result<()> {
        let Some(r) = self.book.record(id) else {
            return Ok(());
        };
        let row = TextOrderRow {
            id: r.id.clone(),
            status: r.status.as_str().to_string(),
            origin: format!("{}:{}", r.origin.channel, r.origin.user),
            text: r.text.clone(),
            description: r.command.describe(),
            record: serde_json::to_string(r).context("a text order as JSON")?,
            proposed_at: r.proposed_at,
        };
        self.journal
            .write_text_order(&row)
            .await
            .context("journal a text order")
    }

    /// The book of text orders.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// A text message: parsed, and when it is an order or a cancel, proposed for confirmation.
    pub async fn text(&mut self, text: &str, origin: &Origin, now: Millis) -> Result<Reply> {
        use cryptoflow_operators::trading::text::{parse, ParseOptions, Parsed};
        match parse(text, &ParseOptions::default()) {
            Parsed::Command(command) => match self.book.propose(command, text, origin, now) {
                Ok(p) => {
                    self.store_text_order(&p.id).await?;
                    let pending = p.status.as_str() == "pending";
                    let mut reply = Reply::ok(
                        if pending {
                            format!("{}\nConfirm to place it (id {}).", p.description, p.id)
                        } else {
                            format!(
                                "{} (id {}): already {}",
                                p.description,
                                p.id,
                                p.status.as_str()
                            )
                        },
                        serde_json::to_value(&p).context("a proposal as JSON")?,
                    );
                    if pending {
                        reply.confirm = Some(p.id);
                    }
                    Ok(reply)
                }
                Err(e) => Ok(Reply::refused(e.to_string())),
            },
            Parsed::Ask(q) => Ok(Reply {
                ok: false,
                data: serde_json::json!({ "question": q.text, "about": q.about }),
                message: q.text,
                confirm: None,
            }),
            Parsed::Refused(r) => Ok(Reply {
                ok: false,
                data: serde_json::json!({ "refused": r.text, "reason": r.reason }),
                message: r.text,
                confirm: None,
            }),
        }
    }

    /// Confirms a proposal: a cancel is carried out, an order placed or armed.
    pub async fn confirm(&mut self, id: &str, now: Millis) -> Result<Reply> {
        let confirmed = self.book.confirm(id, self.engine.portfolio(), now);
        // An expired proposal changed too (to `expired`).
        self.store_text_order(id).await?;
        let confirmed = match confirmed {
            Ok(c) => c,
            Err(e) => return Ok(Reply::refused(e.to_string())),
        };
        let data = serde_json::to_value(&confirmed).context("a confirmation as JSON")?;
        let message = match confirmed {
            Confirmed::Place { intent } => {
                let state = self.place_text(intent, now).await?;
                format!(
                    "Placed: {}",
                    state.map_or("already handled", OrderState::as_str)
                )
            }
            Confirmed::Armed { reference, .. } => match reference {
                Some(r) => format!("Armed (reference {}, level {}).", r.price, r.level),
                None => "Armed.".to_string(),
            },
            Confirmed::Skipped { reason, .. } => format!("Not placed: {reason}"),
            Confirmed::Cancel {
                symbol, disarmed, ..
            } => {
                for d in &disarmed {
                    self.store_text_order(d).await?;
                }
                let n = self.cancel_open(symbol.as_ref(), now).await?;
                format!(
                    "Cancelled {n} open orders and {} armed text orders.",
                    disarmed.len()
                )
            }
        };
        Ok(Reply::ok(message, data))
    }

    /// Cancels the open orders of `symbol` (all when `None`) on the paper book or the exchange.
    async fn cancel_open(
        &mut self,
        symbol: Option<&cryptoflow_operators::model::Symbol>,
        now: Millis,
    ) -> Result<usize> {
        let mut ids: Vec<String> = self
            .engine
            .cancel_open(symbol, "cancelled by a text order", now)
            .into_iter()
            .filter_map(|e| match e {
                JournalEvent::Cancelled { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        if let Some(exchange) = &self.exchange {
            ids.extend(exchange.cancel_open(symbol).await?);
        }
        for id in &ids {
            self.journal_cancelled(id, "cancelled by a text order")
                .await?;
        }
        Ok(ids.len())
    }

    /// Rejects a proposal.
    pub async fn reject(&mut self, id: &str, now: Millis) -> Result<Reply> {
        let r = self.book.reject(id, now);
        self.store_text_order(id).await?;
        Ok(match r {
            Ok(()) => Reply::ok(
                "Rejected.",
                serde_json::json!({ "id": id, "status": "rejected" }),
            ),
            Err(e) => Reply::refused(e.to_string()),
        })
    }

    /// The intent of a confirmed or fired text order: the exchange's filters, then
    /// [`Executor::submit`].
    async fn place_text(&mut self, intent: Intent, now: Millis) -> Result<Option<OrderState>> {
        self.ensure_filters(&intent.symbol).await?;
        let state = self.submit(intent, now).await?;
        Ok(state)
    }

    /// What the book's triggers did: fired intents placed, records stored.
    async fn text_outcomes(&mut self, outcomes: Vec<Outcome>, now: Millis) -> Result<()> {
        for outcome in outcomes {
            match &outcome {
                Outcome::Fired { intent, id } => {
                    let state = self.place_text(intent.clone(), now).await?;
                    self.notices.push(format!(
                        "Text order {id} fired: {} {} {}: {}",
                        intent.side.as_str(),
                        intent.qty,
                        intent.symbol,
                        state.map_or("already handled", OrderState::as_str)
                    ));
                }
                Outcome::Skipped { id, reason } => self.notices.push(format!(
                    "Text order {id} fired but placed nothing: {reason}"
                )),
                Outcome::Referenced { .. } => {}
            }
            self.store_text_order(outcome.id()).await?;
        }
        Ok(())
    }

    /// A trade for the armed text orders (price, stop loss, take profit).
    pub async fn text_orders_on_trade(&mut self, trade: &Trade, now: Millis) -> Result<()> {
        let outcomes = self.book.on_trade(trade, self.engine.portfolio());
        self.text_outcomes(outcomes, now).await
    }

    /// A final candle's indicators for the armed text orders (RSI conditions).
    pub async fn text_orders_on_indicators(
        &mut self,
        row: &cryptoflow_operators::model::IndicatorRow,
        now: Millis,
    ) -> Result<()> {
        let outcomes = self.book.on_indicators(row, self.engine.portfolio());
        self.text_outcomes(outcomes, now).await
    }

    /// Expires the proposals not confirmed in time.
    pub async fn expire(&mut self, now: Millis) -> Result<()> {
        for id in self.book.expire(now) {
            self.store_text_order(&id).await?;
        }
        Ok(())
    }

    /// A command of the controls at `now`.
    pub async fn handle(&mut self, request: Command, now: Millis) -> Result<Reply> {
        Ok(match request {
            Command::Status => self.status(now),
            Command::Help => Reply::ok(
                Command::help("", "order <text>, confirm <id>, reject <id>: text orders"),
                serde_json::json!({
                    "commands": cryptoflow_operators::trading::command::NAMED
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                }),
            ),
            Command::Positions => self.positions(),
            Command::Pnl => self.pnl(now),
            Command::Pause => {
                self.engine.set_paused(true);
                Reply::ok(
                    "Paused: no new orders until /resume.",
                    serde_json::json!({ "paused": true }),
                )
            }
            Command::Resume if self.engine.killed() => {
                Reply::refused("the kill switch is on: restart with --reset-kill to trade again")
            }
            Command::Resume => {
                self.engine.set_paused(false);
                Reply::ok("Resumed.", serde_json::json!({ "paused": false }))
            }
            Command::Kill => {
                let cancelled = self.kill(now).await?;
                Reply::ok(
                    format!(
                        "Kill switch on: no new orders; {} cancelled.",
                        cancelled.len()
                    ),
                    serde_json::json!({ "killed": true, "cancelled": cancelled }),
                )
            }
            Command::Orders => {
                let live: Vec<&OrderRecord> = self
                    .book
                    .records()
                    .filter(|r| !r.status.is_final())
                    .collect();
                let lines: Vec<String> = live
                    .iter()
                    .map(|r| format!("{} {}: {}", r.id, r.status.as_str(), r.command.describe()))
                    .collect();
                Reply::ok(
                    if lines.is_empty() {
                        "No pending or armed text orders.".to_string()
                    } else {
                        lines.join("\n")
                    },
                    serde_json::to_value(&live).context("text orders as JSON")?,
                )
            }
            Command::Text { text, origin } => self.text(&text, &origin, now).await?,
            Command::Confirm { id } => self.confirm(&id, now).await?,
            Command::Reject { id } => self.reject(&id, now).await?,
        })
    }

    fn status(&self, now: Millis) -> Reply {
        let open = self.engine.broker().open_orders().len();
        let armed = self.book.armed().count();
        let positions = self
            .engine
            .portfolio()
            .positions()
            .filter(|(_, p)| !p.is_flat())
            .count();
        let pnl = self
            .engine
            .portfolio()
            .pnl_today(now, |s| self.engine.mark(s));
        let broker = self.exchange.as_ref().map_or("paper", |x| x.name());
        let state = if self.engine.killed() {
            "KILLED"
        } else if self.engine.paused() {
            "paused"
        } else {
            "trading"
        };
        let pnl_text = pnl
            .as_ref()
            .map_or_else(|e| format!("unknown ({e})"), |p| p.to_string());
        Reply::ok(
            format!(
                "{state} ({broker}); {positions} open positions, {open} open paper orders, {armed} armed text orders; PnL today {pnl_text}"
            ),
            serde_json::json!({
                "state": state,
                "broker": broker,
                "killed": self.engine.killed(),
                "paused": self.engine.paused(),
                "open_positions": positions,
                "open_paper_orders": open,
                "armed_text_orders": armed,
                "pnl_today": pnl.ok(),
                "marks": self.engine.marks().map(|(s, p)| (s.to_string(), p.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            }),
        )
    }

    fn positions(&self) -> Reply {
        let held: Vec<_> = self
            .engine
            .portfolio()
            .positions()
            .filter(|(_, p)| !p.is_flat())
            .collect();
        let lines: Vec<String> = held
            .iter()
            .map(|(s, p)| {
                let mark = self
                    .engine
                    .mark(s)
                    .map_or_else(|| "no price yet".to_string(), |m| format!("last {m}"));
                format!("{s}: {} at {} ({mark})", p.qty, p.avg_price)
            })
            .collect();
        let data: serde_json::Map<String, serde_json::Value> = held
            .iter()
            .map(|(s, p)| {
                (
                    s.to_string(),
                    serde_json::json!({ "qty": p.qty, "avg_price": p.avg_price, "cost_basis": p.cost_basis, "realised_pnl": p.realised_pnl, "fees_paid": p.fees_paid, "mark": self.engine.mark(s) }),
                )
            })
            .collect();
        Reply::ok(
            if lines.is_empty() {
                "No open positions.".to_string()
            } else {
                lines.join("\n")
            },
            serde_json::Value::Object(data),
        )
    }

    fn pnl(&self, now: Millis) -> Reply {
        let p = self.engine.portfolio();
        let marks = |s: &cryptoflow_operators::model::Symbol| self.engine.mark(s);
        let realised = p.realised_total();
        let unrealised = p.unrealised_total(marks);
        let fees = p.fees_total();
        let today = p.pnl_today(now, marks);
        let show = |r: &Result<Decimal, _>| match r {
            Ok(v) => v.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        Reply::ok(
            format!(
                "Realised {}, unrealised {}, fees {}; today {}",
                show(&realised),
                show(&unrealised),
                show(&fees),
                show(&today)
            ),
            serde_json::json!({
                "realised": realised.ok(),
                "unrealised": unrealised.ok(),
                "fees": fees.ok(),
                "today": today.ok(),
            }),
        )
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

/// How `cryptoflow execute` runs.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// Kafka bootstrap servers of the pipeline's topics.
    pub brokers: String,
    /// Kafka consumer group (offsets are committed: a restart goes on where it stopped; messages
    /// read twice make no second order, their ids are journaled).
    pub group: String,
    /// Read the topics from their beginning when the group has no offsets (else the newest).
    pub from_beginning: bool,
    /// The journal's PostgreSQL URL (migrated first).
    pub postgres: String,
    /// `Some`: live orders on Binance with these settings; `None`: paper trading.
    pub live: Option<cryptoflow_sinks::binance_orders::BinanceOrdersConfig>,
    /// Stop when no message came for this long (batch runs over a finished pipeline; before
    /// the first message at least 30 s); `None`: run until SIGINT or SIGTERM.
    pub exit_when_idle: Option<std::time::Duration>,
    /// Turn a kill switch pulled before this start off again.
    pub reset_kill: bool,
}

/// A trade as `crypto-trades` carries it.
#[derive(serde::Deserialize)]
struct TradeIn {
    venue: cryptoflow_operators::model::Venue,
    symbol: cryptoflow_operators::model::Symbol,
    trade_id: u64,
    price: Decimal,
    qty: Decimal,
    side: cryptoflow_operators::model::Side,
    ts_exchange: Millis,
    ts_received: Millis,
}

/// A whale alert as `crypto-alerts` carries it.
#[derive(serde::Deserialize)]
struct WhaleIn {
    symbol: cryptoflow_operators::model::Symbol,
    price: Decimal,
    qty: Decimal,
    side: cryptoflow_operators::model::Side,
    notional: Decimal,
}

/// The kind of a message (`type`), and a gap's fields on `crypto-events`.
#[derive(serde::Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: Option<String>,
    symbol: Option<cryptoflow_operators::model::Symbol>,
    refilled: Option<bool>,
    open_time: Option<Millis>,
}

/// The two streams the executor reads, merged in event time: a trade at its exchange time, a
/// signal or an indicator row at its candle's close (trades before it first). The loop takes
/// them out all at once: at once with the wall clock, and with the event clock once the topics
/// are idle (or more than `MERGE_CAP` items are held).
#[derive(Default)]
struct Merge {
    /// By exchange time (then arrival): the pipeline publishes trades in the order its
    /// dataflow emits them, which is not time order across its batches.
    trades: std::collections::BTreeMap<(Millis, u64), (Trade, Pos)>,
    /// By candle close (then arrival): signals and indicator rows come on two topics read at
    /// their own paces.
    rows: std::collections::BTreeMap<(Millis, u64), (Item, Pos)>,
    /// Arrival counter (ties of one millisecond keep their order).
    seq: u64,
    /// The newest event time read (a trade's exchange time, a candle's open time; 0 before
    /// any): "now" for the controls with the event clock.
    event_time: Millis,
}

const MERGE_CAP: usize = 1_000_000;

/// What happens at a candle's close: a strategy signal of the pipeline, or the candle's
/// indicators (for the text orders' RSI conditions).
enum Item {
    Signal(Box<Signal>),
    Row(Box<cryptoflow_operators::model::IndicatorRow>),
}

impl Item {
    fn close_time(&self) -> Millis {
        match self {
            Item::Signal(s) => s.close_time,
            Item::Row(r) => r.close_time,
        }
    }
}

enum Next {
    Trade((Trade, Pos)),
    Item((Item, Pos)),
}

/// Where a message was read: topic, partition, offset.
type Pos = (String, i32, i64);

/// The offsets the executor may commit: per partition, the one before its oldest message still
/// waiting in the merge (a message is committed only once it was acted on), else the newest read.
#[derive(Default)]
struct Offsets {
    parts: std::collections::HashMap<(String, i32), (std::collections::BTreeSet<i64>, i64, i64)>,
}

impl Offsets {
    /// A message read; `waiting`: it is held in the merge.
    fn read(&mut self, pos: &Pos, waiting: bool) {
        let part = self
            .parts
            .entry((pos.0.clone(), pos.1))
            .or_insert_with(|| (Default::default(), -1, -1));
        if waiting {
            part.0.insert(pos.2);
        }
        part.1 = part.1.max(pos.2);
    }

    /// A waiting message was acted on.
    fn done(&mut self, pos: &Pos) {
        if let Some(part) = self.parts.get_mut(&(pos.0.clone(), pos.1)) {
            part.0.remove(&pos.2);
        }
    }

    /// Stores what may be committed (the consumer commits stored offsets in the background).
    fn store(&mut self, consumer: &rdkafka::consumer::StreamConsumer) {
        use rdkafka::consumer::Consumer;
        for ((topic, partition), (waiting, read, stored)) in &mut self.parts {
            let upto = waiting.first().map_or(*read, |w| w - 1);
            if upto > *stored {
                match consumer.store_offset(topic, *partition, upto) {
                    Ok(()) => *stored = upto,
                    Err(e) => {
                        tracing::warn!(topic, partition, error = %e, "Cannot store an offset.")
                    }
                }
            }
        }
    }
}

impl Merge {
    fn push_trade(&mut self, trade: Trade, pos: Pos) {
        self.seen(trade.ts_exchange);
        self.seq += 1;
        self.trades
            .insert((trade.ts_exchange, self.seq), (trade, pos));
    }

    fn push_item(&mut self, item: Item, pos: Pos) {
        self.seq += 1;
        self.rows.insert((item.close_time(), self.seq), (item, pos));
    }

    /// An event time read (a candle's open time moves the clock too).
    fn seen(&mut self, time: Millis) {
        self.event_time = self.event_time.max(time);
    }

    /// How many messages wait.
    fn held(&self) -> usize {
        self.trades.len() + self.rows.len()
    }

    /// The earliest held: a trade before a row whose candle closes after it, else the row.
    fn next(&mut self) -> Option<Next> {
        let trade_first = match (self.trades.first_key_value(), self.rows.first_key_value()) {
            (Some((_, (t, _))), Some((_, (r, _)))) => t.ts_exchange < r.close_time(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if trade_first {
            self.trades.pop_first().map(|(_, v)| Next::Trade(v))
        } else {
            self.rows.pop_first().map(|(_, v)| Next::Item(v))
        }
    }
}

/// `cryptoflow execute`: the pipeline's strategy signals from `crypto-signals`, marks and paper
/// fills from `crypto-trades`, indicators (text orders' conditions) from `crypto-prices`, open
/// gaps from `crypto-events`, whale alerts from `crypto-alerts`; orders through the risk gate to the
/// paper broker (default) or Binance, journaled in PostgreSQL. Stops at SIGINT or SIGTERM.
pub async fn run(
    opts: &ExecuteOptions,
    trading: &super::TradingSection,
    topics: &cryptoflow_sinks::kafka::Topics,
) -> Result<Recovery> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;

    trading.validate()?;
    cryptoflow_sinks::postgres::migrate(&opts.postgres)
        .await
        .context("migrate the journal's database")?;
    let broker = if opts.live.is_some() {
        "binance"
    } else {
        "paper"
    };
    let journal = Journal::connect(&opts.postgres, broker)
        .await
        .context("connect the journal")?;
    let mut engine_cfg = trading.engine.clone();
    if opts.live.is_none() && engine_cfg.default_filters.is_none() {
        // Paper trading without an exchange to ask: no lot or tick rules unless configured
        // (`[trading.engine.default_filters]`), like a backtest.
        engine_cfg.default_filters =
            Some(cryptoflow_operators::trading::risk::SymbolFilters::unrestricted());
    }
    let exchange = match &opts.live {
        Some(cfg) => {
            Some(BinanceOrders::from_env(cfg.clone()).context("live trading needs Binance keys")?)
        }
        None => None,
    };
    if opts.reset_kill {
        journal
            .set_killed(false)
            .await
            .context("reset the kill switch")?;
        tracing::warn!("Kill switch reset (--reset-kill).");
    }
    let section = &trading.execute;
    let (mut executor, recovery) = Executor::start_with(
        engine_cfg,
        section.text_orders.clone(),
        exchange.clone(),
        journal,
    )
    .await?;
    tracing::info!(broker, ?recovery, "Executor started.");

    // The controls: the API, Telegram, and (live) the task that cancels the exchange's open
    // orders the moment the kill switch is pulled, whatever the loop is waiting on.
    let (controls, mut calls) = Controls::new();
    if executor.engine().killed() {
        controls.pull_kill();
    }
    executor.set_kill_flag(controls.kill_flag());
    let control_api = match section.control.as_str() {
        "" | "off" => None,
        addr => {
            let (addr, token) = super::control::control_access(
                addr,
                std::env::var(super::control::TOKEN_ENV).ok(),
            )?;
            let (bound, task) = super::control::serve(addr, token, controls.clone()).await?;
            eprintln!("cryptoflow: execute: control API on http://{bound}");
            Some(task)
        }
    };
    let (kill_done_tx, kill_done) = tokio::sync::oneshot::channel::<Vec<String>>();
    let mut kill_done = Some(kill_done);
    let kill_watch = exchange.clone().map(|x| {
        let controls = controls.clone();
        tokio::spawn(async move {
            controls.killed_wait().await;
            let ids = match Exchange::cancel_open(&x, None).await {
                Ok(ids) => {
                    tracing::warn!(cancelled = ids.len(), "Kill switch: the exchange's open orders are cancelled.");
                    ids
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "Kill switch: cannot cancel the exchange's open orders.");
                    Vec::new()
                }
            };
            let _ = kill_done_tx.send(ids);
        })
    });
    let (bot, mut bot_inputs) = if section.telegram.allowed_chat_ids.is_empty() {
        (None, None)
    } else {
        let token = section
            .telegram
            .token()
            .context("Telegram is configured (allowed_chat_ids) but has no token")?;
        let (bot, inputs) =
            cryptoflow_sources::telegram::TelegramBot::start(&section.telegram, token, None)
                .context("start the Telegram bot")?;
        (Some(bot), Some(inputs))
    };
    let notifier = bot.as_ref().map(|b| b.notifier());
    // Live: the account's executions (fills, cancels) from the user data stream.
    let (user_tx, mut user_rx) = tokio::sync::mpsc::channel(1024);
    let user_stream = exchange.as_ref().map(|x| x.spawn_user_stream(user_tx));
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    let clock = section.clock;
    if clock == super::Clock::Event && opts.exit_when_idle.is_none() {
        anyhow::bail!(
            "--clock event reads the topics until they are idle, then acts in event order: it \
             needs --exit-when-idle (for a live pipeline, use the wall clock)"
        );
    }
    let max_signal_age = section.max_signal_age_ms;

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        // Offsets are stored by hand once their messages were acted on (see `Offsets`).
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if opts.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("client.id", "cryptoflow-execute")
        // A restart after a crash gets the partitions back once the dead member's session ends
        // (librdkafka's default, 45 s, would leave the new process idle that long).
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {}", opts.brokers))?;
    let names = [
        topics.trades.as_str(),
        topics.prices.as_str(),
        topics.events.as_str(),
        topics.alerts.as_str(),
        topics.signals.as_str(),
    ];
    consumer
        .subscribe(&names)
        .with_context(|| format!("cannot subscribe to {names:?}"))?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let mut merge = Merge::default();
    let mut offsets = Offsets::default();
    let mut signals = 0u64;
    let mut unreadable = 0u64;
    let mut got_any = false;
    let idle = opts
        .exit_when_idle
        .unwrap_or(std::time::Duration::from_secs(u64::MAX / 4));
    let mut last_message = std::time::Instant::now();
    let mut flush = false;
    let wall = || chrono_ms();
    loop {
        // Joining the group takes a while: the first message gets at least 30 s.
        let wait = if got_any {
            idle
        } else {
            idle.max(std::time::Duration::from_secs(30))
        };
        // Idle means no message for `wait` while waiting for one: time spent acting on messages
        // does not count, and a message ready is read before an expired timer. Signals and
        // controls come first, so a backlog of messages never holds up a kill.
        let message = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => { flush = true; None }
            _ = sigterm.recv() => { flush = true; None }
            Some(call) = calls.recv() => {
                let now = match clock {
                    super::Clock::Wall => wall(),
                    super::Clock::Event => merge.event_time,
                };
                let reply = match handle(&mut executor, call.request, now, &mut kill_done).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = call.reply.send(Reply::refused(format!("{e:#}")));
                        return Err(e);
                    }
                };
                let _ = call.reply.send(reply);
                None
            }
            Some(input) = async {
                match bot_inputs.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(n) = &notifier {
                    let now = match clock {
                        super::Clock::Wall => wall(),
                        super::Clock::Event => merge.event_time,
                    };
                    telegram_input(&mut executor, &controls, n, input, now, &mut kill_done).await?;
                }
                None
            }
            Some(event) = user_rx.recv() => {
                user_event(&mut executor, exchange.as_ref(), event).await?;
                None
            }
            m = consumer.recv() => Some(m),
            _ = ticks.tick() => {
                let now = match clock {
                    super::Clock::Wall => wall(),
                    super::Clock::Event => merge.event_time,
                };
                executor.expire(now).await?;
                if controls.killed() {
                    executor.sync_kill(now).await?;
                }
                None
            }
            _ = tokio::time::sleep(wait.saturating_sub(last_message.elapsed())) => {
                flush = true;
                None
            }
        };
        let had_message = matches!(message, Some(Ok(_)));
        match message {
            None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka error; going on."),
            Some(Ok(message)) => {
                got_any = true;
                last_message = std::time::Instant::now();
                let topic = message.topic();
                let pos: Pos = (topic.to_string(), message.partition(), message.offset());
                let payload = message.payload().unwrap_or_default();
                let got = read(topic, payload, topics);
                offsets.read(
                    &pos,
                    matches!(got, Read::Trade(_) | Read::Row(_) | Read::Signal(_)),
                );
                match got {
                    Read::Trade(t) => merge.push_trade(t, pos),
                    Read::Row(r) => merge.push_item(Item::Row(r), pos),
                    Read::Signal(s) => merge.push_item(Item::Signal(s), pos),
                    Read::Candle { open_time } => merge.seen(open_time),
                    Read::Gap { symbol, open } => {
                        executor.engine().set_gap(symbol, open);
                        executor.notice(if open {
                            format!("Gap opened on the {symbol} tape: no orders for {symbol} until it is refilled")
                        } else {
                            format!("The {symbol} tape is whole again")
                        });
                    }
                    Read::Whale(text) => executor.notice(text),
                    Read::Other => {}
                    Read::Unreadable => {
                        unreadable += 1;
                        metrics::counter!("cryptoflow_execute_unreadable_total").increment(1);
                    }
                }
            }
        }
        // With the wall clock, everything is acted on as it arrives. With the event clock (a
        // finished pipeline's topics), everything is read first and acted on in event order once
        // the topics are idle: topics read at their own paces give no watermark that would let
        // a trade go before every signal of its time was read (a held side over `MERGE_CAP`
        // items goes on regardless).
        let acting = flush || clock == super::Clock::Wall || merge.held() > MERGE_CAP;
        while let Some(next) = if acting { merge.next() } else { None } {
            match next {
                Next::Trade((t, pos)) => {
                    let now = match clock {
                        super::Clock::Wall => wall(),
                        super::Clock::Event => t.ts_exchange,
                    };
                    executor.on_trade(&t).await?;
                    executor.text_orders_on_trade(&t, now).await?;
                    offsets.done(&pos);
                }
                Next::Item((item, pos)) => {
                    let now = match clock {
                        super::Clock::Wall => wall(),
                        super::Clock::Event => item.close_time(),
                    };
                    match item {
                        Item::Signal(signal) => {
                            signals += 1;
                            metrics::counter!("cryptoflow_execute_signals_total").increment(1);
                            let age = now.saturating_sub(signal.close_time);
                            if max_signal_age > 0 && age > max_signal_age {
                                metrics::counter!("cryptoflow_execute_stale_signals_total")
                                    .increment(1);
                                tracing::info!(strategy = %signal.strategy, symbol = %signal.symbol, age_ms = age, "Signal too old to trade; skipped.");
                            } else {
                                act(&mut executor, &signal, trading, now).await?;
                            }
                        }
                        Item::Row(row) => executor.text_orders_on_indicators(&row, now).await?,
                    }
                    offsets.done(&pos);
                }
            }
        }
        offsets.store(&consumer);
        if had_message {
            last_message = std::time::Instant::now();
        }
        for text in executor.take_notices() {
            tracing::info!(notice = %text, "Notice.");
            if let Some(n) = &notifier {
                if let Err(e) = n.notify(text) {
                    tracing::warn!(error = %e, "Cannot queue a Telegram notification.");
                }
            }
        }
        if flush {
            if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                tracing::warn!(error = %e, "Cannot commit the offsets at the end.");
            }
            break;
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "Messages that did not read as the topics' schemas were left out."
        );
    }
    if let Some(task) = control_api {
        task.abort();
    }
    if let Some(task) = kill_watch {
        task.abort();
    }
    if let Some(stream) = user_stream {
        stream.stop().await;
    }
    if let Some(bot) = bot {
        if let Err(e) = bot.shutdown(std::time::Duration::from_secs(5)).await {
            tracing::warn!(error = %e, "Telegram stopped with an error.");
        }
    }
    tracing::info!(signals, "Executor stopped.");
    Ok(recovery)
}

/// Runs `future` as a task of `rt` (on one of its worker threads, not the calling one) and
/// waits for it. `cryptoflow execute` runs its loop so: the tasks that drive its connections
/// (the journal's, the exchange's) are woken on the loop's own worker, with no hand-off to
/// another thread on the path of an order to the wire.
pub fn run_on_worker<F>(rt: &tokio::runtime::Runtime, future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = rt.spawn(future);
    rt.block_on(task)
        .context("the executor's task ended abnormally")
}

/// A request of the controls; after a kill, the orders the kill task cancelled on the exchange
/// are journaled (waiting for it at most 5 s).
async fn handle<X: Exchange>(
    executor: &mut Executor<X>,
    request: Command,
    now: Millis,
    kill_done: &mut Option<tokio::sync::oneshot::Receiver<Vec<String>>>,
) -> Result<Reply> {
    let kill = request == Command::Kill;
    let mut reply = executor.handle(request, now).await?;
    if kill && executor.exchange.is_some() {
        if let Some(done) = kill_done.take() {
            let ids = tokio::time::timeout(std::time::Duration::from_secs(5), done)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for id in &ids {
                executor.journal_cancelled(id, "kill switch").await?;
            }
            if let Some(list) = reply
                .data
                .get_mut("cancelled")
                .and_then(|v| v.as_array_mut())
            {
                list.extend(ids.into_iter().map(serde_json::Value::String));
            }
        }
    }
    Ok(reply)
}

/// The wall clock, ms since the epoch.
fn chrono_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
        })
}

/// A Telegram command: the same requests as the control API, answered in the chat (a proposal
/// with confirm / reject buttons).
async fn telegram_input<X: Exchange>(
    executor: &mut Executor<X>,
    controls: &Controls,
    notifier: &cryptoflow_sources::telegram::Notifier,
    input: cryptoflow_sources::telegram::BotInput,
    now: Millis,
    kill_done: &mut Option<tokio::sync::oneshot::Receiver<Vec<String>>>,
) -> Result<()> {
    use cryptoflow_sources::telegram::{confirm_buttons, help_text, BotInput};
    let BotInput::Command {
        chat_id,
        command: request,
        ..
    } = input;
    match request {
        Command::Help => {
            if let Err(e) = notifier.send(chat_id, help_text()) {
                tracing::warn!(error = %e, "Cannot answer on Telegram.");
            }
            return Ok(());
        }
        Command::Kill => controls.pull_kill(),
        _ => {}
    }
    let reply = handle(executor, request, now, kill_done).await?;
    let sent = match &reply.confirm {
        Some(id) => notifier.send_with_buttons(chat_id, reply.message.clone(), confirm_buttons(id)),
        None => notifier.send(chat_id, reply.message.clone()),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "Cannot answer on Telegram.");
    }
    Ok(())
}

/// An event of the user data stream: fills to the positions and the journal, an order's new
/// state to the journal.
async fn user_event<X: Exchange>(
    executor: &mut Executor<X>,
    exchange: Option<&BinanceOrders>,
    event: cryptoflow_sinks::binance_orders::UserEvent,
) -> Result<()> {
    use cryptoflow_sinks::binance_orders::UserEvent;
    match event {
        UserEvent::Fill {
            mut fill,
            commission,
            report,
        } => {
            if let Some(x) = exchange {
                net_of_commissions(
                    std::slice::from_mut(&mut fill),
                    std::slice::from_ref(&commission),
                    base_asset(x, &report.symbol).as_deref(),
                );
            }
            executor.record_fills(vec![fill]).await?;
            executor.report(&report).await
        }
        UserEvent::Order(report) => executor.report(&report).await,
        UserEvent::Connected => {
            tracing::info!("User data stream connected.");
            Ok(())
        }
        UserEvent::Other { .. } => Ok(()),
    }
}

/// The base asset of a symbol, from the exchange's quote asset (`BTCUSDT` − `USDT`).
fn base_asset(x: &BinanceOrders, symbol: &cryptoflow_operators::model::Symbol) -> Option<String> {
    let quote = x.quote_asset(symbol)?;
    symbol
        .as_str()
        .strip_suffix(quote.as_str())
        .map(str::to_string)
}

/// Binance charges the commission of a buy in the asset bought (unless BNB pays it): the
/// position grows by the executed quantity less that commission. A fill's quantity is made net
/// of a commission charged in `base`; a sell's commission is charged in the quote asset (its
/// `fee`).
pub fn net_of_commissions(
    fills: &mut [Fill],
    commissions: &[cryptoflow_sinks::binance_orders::Commission],
    base: Option<&str>,
) {
    let Some(base) = base else {
        return;
    };
    for f in fills.iter_mut() {
        if f.side != cryptoflow_operators::model::Side::Buy {
            continue;
        }
        if let Some(c) = commissions
            .iter()
            .find(|c| c.fill_id == f.fill_id && c.asset == base)
        {
            f.qty = f
                .qty
                .checked_sub(c.amount)
                .unwrap_or(f.qty)
                .max(Decimal::ZERO);
        }
    }
}

/// A strategy signal: its intent (sized by the position), the exchange's filters, and the order.
async fn act<X: Exchange>(
    executor: &mut Executor<X>,
    signal: &Signal,
    trading: &super::TradingSection,
    now: Millis,
) -> Result<()> {
    use cryptoflow_operators::trading::signals::intent_for;
    let held = executor.engine().portfolio().qty(&signal.symbol);
    match intent_for(signal, &trading.engine.sizing, held) {
        Some(intent) => {
            executor.ensure_filters(&intent.symbol).await?;
            let state = executor.submit(intent, now).await?;
            tracing::info!(strategy = %signal.strategy, symbol = %signal.symbol, side = signal.side.as_str(), ?state, "Signal.");
        }
        None => {
            tracing::info!(strategy = %signal.strategy, symbol = %signal.symbol, "Signal with nothing to sell.")
        }
    }
    Ok(())
}

/// A message of the executor's topics, read.
enum Read {
    Trade(Trade),
    Row(Box<cryptoflow_operators::model::IndicatorRow>),
    Signal(Box<Signal>),
    Candle {
        open_time: Millis,
    },
    Gap {
        symbol: cryptoflow_operators::model::Symbol,
        open: bool,
    },
    /// A whale alert, in words.
    Whale(String),
    Other,
    Unreadable,
}

fn read(topic: &str, payload: &[u8], topics: &cryptoflow_sinks::kafka::Topics) -> Read {
    let Ok(tagged) = serde_json::from_slice::<Tagged>(payload) else {
        return Read::Unreadable;
    };
    if topic == topics.trades {
        return match serde_json::from_slice::<TradeIn>(payload) {
            Ok(t) => Read::Trade(Trade {
                venue: t.venue,
                symbol: t.symbol,
                trade_id: t.trade_id,
                price: t.price,
                qty: t.qty,
                side: t.side,
                ts_exchange: t.ts_exchange,
                ts_received: t.ts_received,
                agg: None,
            }),
            Err(_) => Read::Unreadable,
        };
    }
    match (tagged.kind.as_deref(), topic == topics.events) {
        (Some("gap"), true) => match (tagged.symbol, tagged.refilled) {
            (Some(symbol), Some(refilled)) => Read::Gap {
                symbol,
                open: !refilled,
            },
            _ => Read::Unreadable,
        },
        (Some("indicators"), false) => match serde_json::from_slice(payload) {
            Ok(row) => Read::Row(Box::new(row)),
            Err(_) => Read::Unreadable,
        },
        (Some("signal"), false) if topic == topics.signals => {
            match serde_json::from_slice::<cryptoflow_operators::model::SignalRow>(payload) {
                Ok(row) => {
                    // The id is the client order id: it must be the one its fields give.
                    if row.signal.id() == row.id {
                        Read::Signal(Box::new(row.signal))
                    } else {
                        Read::Unreadable
                    }
                }
                Err(_) => Read::Unreadable,
            }
        }
        (Some("whale"), false) if topic == topics.alerts => {
            match serde_json::from_slice::<WhaleIn>(payload) {
                Ok(w) => Read::Whale(format!(
                    "Whale on {}: {} {} at {} ({} quote)",
                    w.symbol,
                    w.side.as_str(),
                    w.qty,
                    w.price,
                    w.notional
                )),
                Err(_) => Read::Unreadable,
            }
        }
        (Some("candle"), false) => match tagged.open_time {
            Some(open_time) => Read::Candle { open_time },
            None => Read::Unreadable,
        },
        _ => Read::Other,
    }
}
