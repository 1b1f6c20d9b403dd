//! The book of text orders, from the moment a message is parsed ([`super::text::parse`]) to the
//! moment it becomes an [`Intent`]. Pure state: no clock (the caller passes `now`), no I/O. The
//! order executor journals the book's records, feeds it trades, indicator rows and confirmations
//! (Telegram, API, CLI), and places the intents it returns.
//!
//! # Life of a text command
//!
//! ```text
//!  propose ──► pending ──confirm──► armed ──trigger──► fired {intent_id}
//!                │   │      │          │        └────► skipped {reason}   (nothing to size)
//!                │   │      │          └─cancel──────► cancelled {reason}
//!                │   │      ├─(no trigger)──────────► fired | skipped
//!                │   │      └─(a cancel command)────► done
//!                │   └─reject──────────────────────► rejected
//!                └─ttl elapsed (confirm or expire)──► expired
//! ```
//!
//! Every state but `pending` and `armed` is final: a record never leaves it.
//!
//! - **Ids.** [`Book::propose`] names each command `tx` + 32 lowercase hex digits of the 128-bit
//!   FNV-1a hash ([`fnv1a_128`]) of the UTF-8 bytes of
//!   `"{channel byte length}:{channel}|{user byte length}:{user}|{now}|{text}"` (see
//!   [`proposal_id`]): the same message from the same chat user at the same millisecond has the
//!   same id in any process, so a redelivered message is the same proposal, not a second one.
//!   The id is 34 characters of `[a-z0-9]`, a valid Binance client order id.
//! - **Intent ids.** The intent of a fired order has the order's own id as its id. An order fires
//!   at most once, so the id is never reused; a restart that re-arms an order from a journal
//!   written before the firing was stored, and sees the same trade again, makes the same intent
//!   with the same id, which the risk gate and the broker recognise as a duplicate.
//! - **Confirmation.** A proposal waits for [`Book::confirm`] or [`Book::reject`]. It expires
//!   [`BookConfig::ttl_ms`] after it was proposed (5 minutes by default): it may be confirmed
//!   while `now < proposed_at + ttl_ms`; at or after that instant the confirmation is refused
//!   ([`BookError::Expired`]) and the record becomes `expired`. A second confirmation, or one
//!   after a rejection, is refused ([`BookError::NotPending`]) and changes nothing.
//! - **Checked when proposed.** Besides what the grammar checks, an RSI condition must read a
//!   period the indicator rows carry ([`RSI_PERIODS`]: only RSI(14)) and, when
//!   [`BookConfig::indicator_intervals`] lists intervals, one of them: a condition that could
//!   never be evaluated is refused up front ([`BookError::Unsupported`]) rather than armed
//!   forever. Amounts, prices and levels must be in range ([`BookError::Invalid`]).
//! - **Cancel commands.** A confirmed `cancel` becomes [`Confirmed::Cancel`]: the executor
//!   cancels the open exchange orders of the symbol (every symbol for "cancel all"), and the book
//!   has already cancelled its own armed orders of that symbol (all of them for "cancel all"),
//!   which are listed. Pending proposals are left alone: they are not orders until confirmed,
//!   and they expire on their own.
//! - **Orders without a trigger** become their intent at confirmation ([`Confirmed::Place`]).
//! - **Price triggers** are evaluated on every trade of the book's venue and the order's symbol,
//!   inclusively: `PriceAtOrBelow` fires when `trade.price <= price`, `PriceAtOrAbove` when
//!   `trade.price >= price`.
//! - **Stop loss / take profit in percent** watch a level derived from a reference price fixed
//!   at confirmation: the position's average entry price when the holdings know one (something
//!   is held at a positive average price), else the last trade price the book has seen. When
//!   neither is known yet (no trade of the symbol seen since the book started), the order is
//!   armed without a reference and the first trade of its symbol at or after the confirmation
//!   sets it ([`Outcome::Referenced`]); that trade cannot fire it, since the level is strictly
//!   on the other side of it. The stop loss level is `reference × (100 − pct) / 100` and fires
//!   when `trade.price <= level`; the take profit level is `reference × (100 + pct) / 100` and
//!   fires when `trade.price >= level` (inclusive, like price triggers).
//! - **RSI triggers** are evaluated on the indicator rows (rows are of final candles) of the
//!   order's symbol and interval, strictly: `Below` fires when `RSI < value`, `Above` when
//!   `RSI > value`. The RSI is read as a `Decimal` from its `f64` with the float's excess binary
//!   digits removed (`70.1_f64` reads as `70.1`), then compared exactly. A row without a value
//!   (warming up) fires nothing.
//! - **Only what happened after the confirmation counts**: trades with `ts_exchange` before the
//!   confirmation time and rows of candles closed before it are ignored. A condition already
//!   true at confirmation fires on the next trade (or row).
//! - **Amounts** are resolved when an order fires: a base quantity as is; a quote amount divided
//!   by the limit price for a limit order, else by the firing price (the trade's price, the
//!   candle's close for an RSI trigger, the last trade price for an order without a trigger); a
//!   fraction of the position times the quantity held then. When nothing can be sized (nothing
//!   held, no price known yet) the order is `skipped` with the reason, reported as
//!   [`Outcome::Skipped`] or [`Confirmed::Skipped`], never silently.
//! - **Restart.** [`Book::snapshot`] and [`Book::restore`] carry every record (serde); each
//!   [`OrderRecord`] can also be stored on its own. Every call that changes records names them
//!   (in its outcomes, or the ids it returns) so the caller can write exactly those. A record
//!   changed by a refused confirmation (it expired) is named in the error.
//!
//! The book must see every trade of its venue (for the last prices) and every indicator row.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::portfolio::Portfolio;
use super::signals::fnv1a_128;
use super::text::{Amount, Command, Comparison, IndicatorRef, TextOrder, Trigger};
use super::{Intent, OrderKind};
use crate::model::{IndicatorRow, IndicatorValues, Interval, Millis, Side, Symbol, Trade, Venue};

/// How long a proposal may be confirmed by default, ms (5 minutes).
pub const DEFAULT_TTL_MS: Millis = 300_000;

/// The RSI periods the indicator rows carry ([`IndicatorValues::rsi_14`]).
pub const RSI_PERIODS: [u32; 1] = [14];

/// Version of [`BookState`] written by [`Book::snapshot`].
pub const STATE_VERSION: u32 = 1;

/// The RSI of `period` in `values`, when the rows carry that period and it has a finite value.
pub fn rsi_of(values: &IndicatorValues, period: u32) -> Option<f64> {
    match period {
        14 => values.rsi_14,
        _ => None,
    }
    .filter(|x| x.is_finite())
}

/// The deterministic id of a proposal (see the [module docs](self)): `tx` + 32 hex digits of
/// FNV-1a-128 of `"{channel.len()}:{channel}|{user.len()}:{user}|{now}|{text}"`.
pub fn proposal_id(origin: &Origin, text: &str, now: Millis) -> String {
    let key = format!(
        "{}:{}|{}:{}|{}|{}",
        origin.channel.len(),
        origin.channel,
        origin.user.len(),
        origin.user,
        now,
        text
    );
    format!("tx{:032x}", fnv1a_128(key.as_bytes()))
}

/// Where a message came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The channel and conversation, e.g. `telegram:123456789`, `api`, `cli`.
    pub channel: String,
    /// The user within it, e.g. a Telegram user id or an API key's name.
    pub user: String,
}

/// Settings of the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookConfig {
    /// The venue of the intents, and of the trades and rows the book reads (others are ignored).
    pub venue: Venue,
    /// How long a proposal may be confirmed, ms (positive).
    pub ttl_ms: Millis,
    /// The candle intervals indicator rows are computed on; an RSI condition on another interval
    /// is refused when proposed. Empty: not checked.
    pub indicator_intervals: Vec<Interval>,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig {
            venue: Venue::Binance,
            ttl_ms: DEFAULT_TTL_MS,
            indicator_intervals: Vec::new(),
        }
    }
}

impl BookConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_ms <= 0 {
            return Err(format!(
                "the confirmation time of text orders must be positive (got {} ms)",
                self.ttl_ms
            ));
        }
        Ok(())
    }
}

/// What the book knows of positions, read when an order is confirmed and when it fires.
pub trait Holdings {
    /// Quantity held of `symbol`, base asset (zero when none).
    fn held(&self, symbol: &Symbol) -> Decimal;
    /// Average entry price of the position in `symbol`, when something is held.
    fn entry_price(&self, symbol: &Symbol) -> Option<Decimal>;
}

impl Holdings for Portfolio {
    fn held(&self, symbol: &Symbol) -> Decimal {
        self.qty(symbol)
    }

    fn entry_price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.position(symbol)
            .filter(|p| p.qty > Decimal::ZERO && p.avg_price > Decimal::ZERO)
            .map(|p| p.avg_price)
    }
}

/// Where the reference price of a stop loss or take profit in percent came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The position's average entry price at confirmation.
    Entry,
    /// The last trade price at confirmation.
    LastPrice,
    /// The first trade after the confirmation (no price was known at confirmation).
    FirstTrade,
}

/// The reference of a stop loss or take profit in percent, and the level it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The reference price.
    pub price: Decimal,
    /// Where it came from.
    pub source: ReferenceSource,
    /// The price level that fires the order: below the reference for a stop loss, above it for
    /// a take profit.
    pub level: Decimal,
}

/// Where a record is in its life (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Proposed, waiting for confirmation.
    Pending,
    /// Confirmed, waiting for its trigger.
    Armed,
    /// Became the intent `intent_id`.
    Fired {
        /// The intent's id (the record's id).
        intent_id: String,
        /// When, ms (the event time of what fired it, or the confirmation).
        at: Millis,
    },
    /// Confirmed or triggered, but nothing could be placed.
    Skipped {
        /// Why.
        reason: String,
        /// When, ms.
        at: Millis,
    },
    /// A cancel command, confirmed and carried out.
    Done {
        /// When, ms.
        at: Millis,
    },
    /// Withdrawn before it fired (by a cancel command or [`Book::cancel`]).
    Cancelled {
        /// Why.
        reason: String,
        /// When, ms.
        at: Millis,
    },
    /// Not confirmed in time.
    Expired {
        /// When it expired (`proposed_at + ttl_ms`), ms.
        at: Millis,
    },
    /// Rejected by the user.
    Rejected {
        /// When, ms.
        at: Millis,
    },
}

impl Status {
    /// The state's name (`pending`, `armed`, `fired`, …), e.g. for a table column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Armed => "armed",
            Status::Fired { .. } => "fired",
            Status::Skipped { .. } => "skipped",
            Status::Done { .. } => "done",
            Status::Cancelled { .. } => "cancelled",
            Status::Expired { .. } => "expired",
            Status::Rejected { .. } => "rejected",
        }
    }

    /// True when the record can no longer change.
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::Pending | Status::Armed)
    }
}

/// One text command in the book: what the executor journals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Deterministic id ([`proposal_id`]); also the id of its intent.
    pub id: String,
    /// Who sent it.
    pub origin: Origin,
    /// The message as received.
    pub text: String,
    /// The parsed command.
    pub command: Command,
    /// When proposed, ms.
    pub proposed_at: Millis,
    /// When the proposal expires, ms (`proposed_at + ttl_ms`).
    pub expires_at: Millis,
    /// When confirmed, ms.
    pub confirmed_at: Option<Millis>,
    /// Stop loss / take profit in percent: the reference and level, once known.
    pub reference: Option<Reference>,
    /// Where it is in its life.
    pub status: Status,
    /// When the record last changed, ms.
    pub updated_at: Millis,
}

impl OrderRecord {
    /// The order, for an order command.
    pub fn order(&self) -> Option<&TextOrder> {
        match &self.command {
            Command::Order(o) => Some(o),
            Command::Cancel { .. } => None,
        }
    }
}

/// What [`Book::propose`] gives back, to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The id to confirm or reject.
    pub id: String,
    /// The command in words ([`Command::describe`]).
    pub description: String,
    /// Confirm before this time, ms.
    pub expires_at: Millis,
    /// The record's state: `pending`, or where an earlier copy of the same message got to.
    pub status: Status,
}

/// What a confirmation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Confirmed {
    /// An order without a trigger: place this intent now.
    Place {
        /// The intent (its id is the record's id).
        intent: Intent,
    },
    /// An order with a trigger, now armed.
    Armed {
        /// The record's id.
        id: String,
        /// For a stop loss or take profit in percent: the reference and level, when a price was
        /// known (otherwise set by the next trade).
        reference: Option<Reference>,
    },
    /// An order without a trigger that could not be sized.
    Skipped {
        /// The record's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A cancel command: cancel the open orders of `symbol` (all when `None`) at the broker.
    Cancel {
        /// The record's id.
        id: String,
        /// The symbol, or `None` for every symbol.
        symbol: Option<Symbol>,
        /// The armed orders of the book it cancelled (their records changed).
        disarmed: Vec<String>,
    },
}

/// What a trade or an indicator row did to an armed order; each names the record it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The trigger fired: place this intent.
    Fired {
        /// The record's id (also the intent's id).
        id: String,
        /// The intent.
        intent: Intent,
    },
    /// The trigger fired but nothing could be placed; the order is done.
    Skipped {
        /// The record's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// A stop loss or take profit armed without a price got its reference from this trade.
    Referenced {
        /// The record's id.
        id: String,
        /// The reference and level.
        reference: Reference,
    },
}

impl Outcome {
    /// The id of the record that changed.
    pub fn id(&self) -> &str {
        match self {
            Outcome::Fired { id, .. } | Outcome::Skipped { id, .. } => id,
            Outcome::Referenced { id, .. } => id,
        }
    }
}

/// Why the book refused a call. Nothing changed, except for [`BookError::Expired`], which
/// marks the record `expired` (to be stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum BookError {
    /// A condition the pipeline cannot evaluate (an RSI period or candle interval it does not
    /// compute).
    Unsupported {
        /// Why, in words.
        reason: String,
    },
    /// An amount, price or level out of range.
    Invalid {
        /// Why, in words.
        reason: String,
    },
    /// No record has this id.
    Unknown {
        /// The id.
        id: String,
    },
    /// The proposal was not confirmed in time (its record is now `expired`).
    Expired {
        /// The id.
        id: String,
        /// When it expired, ms.
        at: Millis,
    },
    /// The record is no longer pending (or, for [`Book::cancel`], no longer pending or armed).
    NotPending {
        /// The id.
        id: String,
        /// Its state (`armed`, `fired`, `rejected`, …).
        status: String,
    },
    /// The same id was proposed before with another command.
    Conflict {
        /// The id.
        id: String,
    },
    /// A restored state is not usable.
    State {
        /// Why, in words.
        reason: String,
    },
}

impl fmt::Display for BookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookError::Unsupported { reason } | BookError::Invalid { reason } => {
                f.write_str(reason)
            }
            BookError::Unknown { id } => write!(f, "no order {id}"),
            BookError::Expired { id, at } => write!(
                f,
                "order {id} expired at {at} before it was confirmed; send it again"
            ),
            BookError::NotPending { id, status } => {
                let what = match status.as_str() {
                    "armed" | "fired" | "skipped" | "done" => "was already confirmed",
                    "rejected" => "was rejected",
                    "expired" => "has expired",
                    "cancelled" => "was cancelled",
                    _ => "is not pending",
                };
                write!(f, "order {id} {what} ({status})")
            }
            BookError::Conflict { id } => {
                write!(f, "order {id} was proposed before with another command")
            }
            BookError::State { reason } => write!(f, "text order state: {reason}"),
        }
    }
}

impl std::error::Error for BookError {}

/// Every record of a book, as [`Book::snapshot`] writes it and [`Book::restore`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The records, by id.
    pub records: Vec<OrderRecord>,
}

/// The book of text orders (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct Book {
    config: BookConfig,
    records: BTreeMap<String, OrderRecord>,
    /// Last trade (time, price) of each symbol of the venue.
    last: BTreeMap<Symbol, (Millis, Decimal)>,
}

impl Book {
    /// An empty book (validate the config first).
    pub fn new(config: BookConfig) -> Self {
        Book {
            config,
            records: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// A book holding the records of `state` (last prices start unknown).
    pub fn restore(config: BookConfig, state: BookState) -> Result<Self, BookError> {
        if state.version != STATE_VERSION {
            return Err(BookError::State {
                reason: format!(
                    "version {} (this build reads version {STATE_VERSION})",
                    state.version
                ),
            });
        }
        let mut book = Book::new(config);
        for record in state.records {
            let id = record.id.clone();
            if book.records.insert(id.clone(), record).is_some() {
                return Err(BookError::State {
                    reason: format!("order {id} appears twice"),
                });
            }
        }
        Ok(book)
    }

    /// Every record, by id.
    pub fn snapshot(&self) -> BookState {
        BookState {
            version: STATE_VERSION,
            records: self.records.values().cloned().collect(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BookConfig {
        &self.config
    }

    /// The record `id`.
    pub fn record(&self, id: &str) -> Option<&OrderRecord> {
        self.records.get(id)
    }

    /// Every record, by id.
    pub fn records(&self) -> impl Iterator<Item = &OrderRecord> {
        self.records.values()
    }

    /// The armed orders, by id.
    pub fn armed(&self) -> impl Iterator<Item = &OrderRecord> {
        self.records
            .values()
            .filter(|r| matches!(r.status, Status::Armed))
    }

    /// The last trade price seen of `symbol`.
    pub fn last_price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.last.get(symbol).map(|(_, p)| *p)
    }

    /// Records a parsed command as a pending proposal at `now`. The same message from the same
    /// origin at the same time is the same proposal: it is returned as it stands (possibly no
    /// longer pending). Refused, with nothing recorded, when the order's values are out of range
    /// or its condition could never be evaluated.
    pub fn propose(
        &mut self,
        command: Command,
        text: &str,
        origin: &Origin,
        now: Millis,
    ) -> Result<Proposal, BookError> {
        if let Command::Order(order) = &command {
            self.check(order)?;
        }
        let id = proposal_id(origin, text, now);
        if let Some(existing) = self.records.get(&id) {
            if existing.command != command {
                return Err(BookError::Conflict { id });
            }
            return Ok(proposal_of(existing));
        }
        let record = OrderRecord {
            id: id.clone(),
            origin: origin.clone(),
            text: text.to_string(),
            command,
            proposed_at: now,
            expires_at: now.saturating_add(self.config.ttl_ms.max(0)),
            confirmed_at: None,
            reference: None,
            status: Status::Pending,
            updated_at: now,
        };
        let proposal = proposal_of(&record);
        self.records.insert(id, record);
        Ok(proposal)
    }

    /// Confirms the pending proposal `id` at `now`: a cancel command is carried out, an order
    /// without a trigger becomes its intent, an order with one is armed (see the
    /// [module docs](self)).
    pub fn confirm<H: Holdings + ?Sized>(
        &mut self,
        id: &str,
        holdings: &H,
        now: Millis,
    ) -> Result<Confirmed, BookError> {
        let record = self.pending_mut(id, now)?;
        let command = record.command.clone();
        let order = match command {
            Command::Cancel { symbol } => {
                record.status = Status::Done { at: now };
                record.confirmed_at = Some(now);
                record.updated_at = now;
                let disarmed = self.disarm(symbol.as_ref(), id, now);
                return Ok(Confirmed::Cancel {
                    id: id.to_string(),
                    symbol,
                    disarmed,
                });
            }
            Command::Order(order) => order,
        };
        let last = self.last_price(&order.symbol);
        let (status, confirmed, reference) = match order.trigger {
            None => {
                let fired = resolve(&self.config, id, &order, last, holdings, now);
                let confirmed = match &fired {
                    Ok(intent) => Confirmed::Place {
                        intent: intent.clone(),
                    },
                    Err(reason) => Confirmed::Skipped {
                        id: id.to_string(),
                        reason: reason.clone(),
                    },
                };
                (fired_status(fired, now), confirmed, None)
            }
            Some(trigger) => {
                let reference = match protect_of(trigger) {
                    None => None,
                    Some(protect) => {
                        let known = holdings
                            .entry_price(&order.symbol)
                            .filter(|p| *p > Decimal::ZERO)
                            .map(|p| (p, ReferenceSource::Entry))
                            .or_else(|| last.map(|p| (p, ReferenceSource::LastPrice)));
                        match known {
                            None => None,
                            Some((price, source)) => Some(
                                reference(protect, price, source)
                                    .map_err(|reason| BookError::Invalid { reason })?,
                            ),
                        }
                    }
                };
                let confirmed = Confirmed::Armed {
                    id: id.to_string(),
                    reference,
                };
                (Status::Armed, confirmed, reference)
            }
        };
        if let Some(record) = self.records.get_mut(id) {
            record.status = status;
            record.confirmed_at = Some(now);
            record.reference = reference;
            record.updated_at = now;
        }
        Ok(confirmed)
    }

    /// Rejects the pending proposal `id` at `now`.
    pub fn reject(&mut self, id: &str, now: Millis) -> Result<(), BookError> {
        let record = self.pending_mut(id, now)?;
        record.status = Status::Rejected { at: now };
        record.updated_at = now;
        Ok(())
    }

    /// Withdraws one pending or armed order at `now` (e.g. from the API's order list).
    pub fn cancel(&mut self, id: &str, reason: &str, now: Millis) -> Result<(), BookError> {
        let record = self
            .records
            .get_mut(id)
            .ok_or_else(|| BookError::Unknown { id: id.to_string() })?;
        if record.status.is_final() {
            return Err(BookError::NotPending {
                id: id.to_string(),
                status: record.status.as_str().to_string(),
            });
        }
        record.status = Status::Cancelled {
            reason: reason.to_string(),
            at: now,
        };
        record.updated_at = now;
        Ok(())
    }

    /// Marks every proposal whose time ran out by `now` as expired; returns their ids.
    pub fn expire(&mut self, now: Millis) -> Vec<String> {
        let mut out = Vec::new();
        for record in self.records.values_mut() {
            if matches!(record.status, Status::Pending) && now >= record.expires_at {
                record.status = Status::Expired {
                    at: record.expires_at,
                };
                record.updated_at = now;
                out.push(record.id.clone());
            }
        }
        out
    }

    /// Forgets the final records last changed before `before`; returns their ids.
    pub fn prune(&mut self, before: Millis) -> Vec<String> {
        let gone: Vec<String> = self
            .records
            .values()
            .filter(|r| r.status.is_final() && r.updated_at < before)
            .map(|r| r.id.clone())
            .collect();
        for id in &gone {
            self.records.remove(id);
        }
        gone
    }

    /// A trade of the tape: the new last price of its symbol, and the armed price, stop loss and
    /// take profit orders it fires (each at most once), oldest confirmation first. Trades of
    /// another venue are ignored.
    pub fn on_trade<H: Holdings + ?Sized>(&mut self, trade: &Trade, holdings: &H) -> Vec<Outcome> {
        if trade.venue != self.config.venue {
            return Vec::new();
        }
        let newer = self
            .last
            .get(&trade.symbol)
            .is_none_or(|(ts, _)| *ts <= trade.ts_exchange);
        if newer {
            self.last
                .insert(trade.symbol, (trade.ts_exchange, trade.price));
        }
        let ids = self.watching(|r, o| {
            o.symbol == trade.symbol
                && r.confirmed_at.is_some_and(|t| t <= trade.ts_exchange)
                && !matches!(o.trigger, Some(Trigger::Indicator { .. }) | None)
        });
        let mut out = Vec::new();
        for id in ids {
            let Some(record) = self.records.get(&id) else {
                continue;
            };
            let Some(order) = record.order().cloned() else {
                continue;
            };
            let Some(trigger) = order.trigger else {
                continue;
            };
            let price = trade.price;
            let hit = match trigger {
                Trigger::PriceAtOrBelow { price: level } => price <= level,
                Trigger::PriceAtOrAbove { price: level } => price >= level,
                Trigger::StopLossPct { .. } | Trigger::TakeProfitPct { .. } => {
                    match (record.reference, protect_of(trigger)) {
                        (Some(r), Some(Protect::StopLoss(_))) => price <= r.level,
                        (Some(r), Some(Protect::TakeProfit(_))) => price >= r.level,
                        (None, Some(protect)) => {
                            let set = reference(protect, price, ReferenceSource::FirstTrade);
                            out.push(self.set_reference(&id, set, trade.ts_exchange));
                            false
                        }
                        (_, None) => false,
                    }
                }
                Trigger::Indicator { .. } => false,
            };
            if hit {
                let fired = resolve(
                    &self.config,
                    &id,
                    &order,
                    Some(price),
                    holdings,
                    trade.ts_exchange,
                );
                out.push(self.fire(&id, fired, trade.ts_exchange));
            }
        }
        out
    }

    /// The indicators of a final candle: the armed RSI orders of its symbol and interval it
    /// fires (each at most once), oldest confirmation first. Rows of another venue, and of
    /// candles closed before an order's confirmation, are ignored.
    pub fn on_indicators<H: Holdings + ?Sized>(
        &mut self,
        row: &IndicatorRow,
        holdings: &H,
    ) -> Vec<Outcome> {
        if row.venue != self.config.venue {
            return Vec::new();
        }
        let ids = self.watching(|r, o| {
            o.symbol == row.symbol
                && r.confirmed_at.is_some_and(|t| t <= row.close_time)
                && matches!(o.trigger, Some(Trigger::Indicator { interval, .. }) if interval == row.interval)
        });
        let mut out = Vec::new();
        for id in ids {
            let Some(order) = self.records.get(&id).and_then(|r| r.order().cloned()) else {
                continue;
            };
            let Some(Trigger::Indicator {
                indicator: IndicatorRef::Rsi { period },
                op,
                value,
                ..
            }) = order.trigger
            else {
                continue;
            };
            let Some(rsi) = rsi_of(&row.values, period).and_then(Decimal::from_f64) else {
                continue;
            };
            let hit = match op {
                Comparison::Below => rsi < value,
                Comparison::Above => rsi > value,
            };
            if hit {
                let fired = resolve(
                    &self.config,
                    &id,
                    &order,
                    Some(row.close),
                    holdings,
                    row.close_time,
                );
                out.push(self.fire(&id, fired, row.close_time));
            }
        }
        out
    }

    /// The ids of the armed orders for which `watch` holds, oldest confirmation first.
    fn watching(&self, watch: impl Fn(&OrderRecord, &TextOrder) -> bool) -> Vec<String> {
        let mut ids: Vec<(Millis, String)> = self
            .records
            .values()
            .filter(|r| matches!(r.status, Status::Armed))
            .filter(|r| r.order().is_some_and(|o| watch(r, o)))
            .map(|r| (r.confirmed_at.unwrap_or(Millis::MIN), r.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Sets the final state of an order that fired, and says what it did.
    fn fire(&mut self, id: &str, fired: Result<Intent, String>, at: Millis) -> Outcome {
        let outcome = match &fired {
            Ok(intent) => Outcome::Fired {
                id: id.to_string(),
                intent: intent.clone(),
            },
            Err(reason) => Outcome::Skipped {
                id: id.to_string(),
                reason: reason.clone(),
            },
        };
        if let Some(record) = self.records.get_mut(id) {
            record.status = fired_status(fired, at);
            record.updated_at = at;
        }
        outcome
    }

    /// Sets the reference of a stop loss or take profit armed without one (or skips it when the
    /// trade's price gives no usable level), and says what it did.
    fn set_reference(&mut self, id: &str, set: Result<Reference, String>, at: Millis) -> Outcome {
        let Some(record) = self.records.get_mut(id) else {
            return Outcome::Skipped {
                id: id.to_string(),
                reason: "no such order".to_string(),
            };
        };
        record.updated_at = at;
        match set {
            Ok(reference) => {
                record.reference = Some(reference);
                Outcome::Referenced {
                    id: id.to_string(),
                    reference,
                }
            }
            Err(reason) => {
                record.status = Status::Skipped {
                    reason: reason.clone(),
                    at,
                };
                Outcome::Skipped {
                    id: id.to_string(),
                    reason,
                }
            }
        }
    }

    /// Cancels the armed orders of `symbol` (all when `None`) for the cancel command `by`.
    fn disarm(&mut self, symbol: Option<&Symbol>, by: &str, now: Millis) -> Vec<String> {
        let mut out = Vec::new();
        for record in self.records.values_mut() {
            let matches = matches!(record.status, Status::Armed)
                && record
                    .order()
                    .is_some_and(|o| symbol.is_none_or(|s| *s == o.symbol));
            if matches {
                record.status = Status::Cancelled {
                    reason: format!("cancelled by {by}"),
                    at: now,
                };
                record.updated_at = now;
                out.push(record.id.clone());
            }
        }
        out
    }

    /// The pending record `id`, expiring it when its time ran out by `now`.
    fn pending_mut(&mut self, id: &str, now: Millis) -> Result<&mut OrderRecord, BookError> {
        let record = self
            .records
            .get_mut(id)
            .ok_or_else(|| BookError::Unknown { id: id.to_string() })?;
        if !matches!(record.status, Status::Pending) {
            return Err(BookError::NotPending {
                id: id.to_string(),
                status: record.status.as_str().to_string(),
            });
        }
        if now >= record.expires_at {
            record.status = Status::Expired {
                at: record.expires_at,
            };
            record.updated_at = now;
            return Err(BookError::Expired {
                id: id.to_string(),
                at: record.expires_at,
            });
        }
        Ok(record)
    }

    /// Refuses an order whose values are out of range or whose condition cannot be evaluated.
    fn check(&self, order: &TextOrder) -> Result<(), BookError> {
        let invalid = |reason: String| Err(BookError::Invalid { reason });
        let positive = |d: Decimal| d > Decimal::ZERO;
        match order.amount {
            Amount::Base { qty } if !positive(qty) => {
                return invalid(format!("the quantity must be positive (got {qty})"))
            }
            Amount::Quote { notional } if !positive(notional) => {
                return invalid(format!("the amount must be positive (got {notional})"))
            }
            Amount::FractionOfPosition { fraction }
                if !positive(fraction) || fraction > Decimal::ONE =>
            {
                return invalid(format!(
                    "the part of the position must be in (0, 1] (got {fraction})"
                ))
            }
            Amount::FractionOfPosition { .. } if order.side == Side::Buy => {
                return invalid("a part of the position can only be sold".to_string())
            }
            _ => {}
        }
        match order.kind {
            OrderKind::Limit { price } if !positive(price) => {
                return invalid(format!("the limit price must be positive (got {price})"));
            }
            _ => {}
        }
        match order.trigger {
            Some(Trigger::PriceAtOrBelow { price } | Trigger::PriceAtOrAbove { price })
                if !positive(price) =>
            {
                invalid(format!("the trigger price must be positive (got {price})"))
            }
            Some(Trigger::StopLossPct { pct }) if !positive(pct) || pct >= Decimal::ONE_HUNDRED => {
                invalid(format!(
                    "a stop loss must be more than 0% and less than 100% (got {pct}%)"
                ))
            }
            Some(Trigger::TakeProfitPct { pct }) if !positive(pct) => {
                invalid(format!("a take profit must be above 0% (got {pct}%)"))
            }
            Some(Trigger::Indicator {
                indicator: IndicatorRef::Rsi { period },
                interval,
                value,
                ..
            }) => {
                if !RSI_PERIODS.contains(&period) {
                    let available: Vec<String> =
                        RSI_PERIODS.iter().map(|p| format!("RSI({p})")).collect();
                    return Err(BookError::Unsupported {
                        reason: format!(
                            "RSI({period}) is not computed, so that condition would never be \
                             checked; available: {}",
                            available.join(", ")
                        ),
                    });
                }
                let intervals = &self.config.indicator_intervals;
                if !intervals.is_empty() && !intervals.contains(&interval) {
                    let known: BTreeSet<Interval> = intervals.iter().copied().collect();
                    let labels: Vec<&str> = known.into_iter().map(Interval::label).collect();
                    return Err(BookError::Unsupported {
                        reason: format!(
                            "indicators are not computed on {} candles, so that condition would \
                             never be checked; available: {}",
                            interval.label(),
                            labels.join(", ")
                        ),
                    });
                }
                if !positive(value) || value >= Decimal::ONE_HUNDRED {
                    return invalid(format!(
                        "an RSI level must be between 0 and 100 (got {value})"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn proposal_of(record: &OrderRecord) -> Proposal {
    Proposal {
        id: record.id.clone(),
        description: record.command.describe(),
        expires_at: record.expires_at,
        status: record.status.clone(),
    }
}

fn fired_status(fired: Result<Intent, String>, at: Millis) -> Status {
    match fired {
        Ok(intent) => Status::Fired {
            intent_id: intent.id,
            at,
        },
        Err(reason) => Status::Skipped { reason, at },
    }
}

/// A stop loss or take profit in percent.
#[derive(Debug, Clone, Copy)]
enum Protect {
    StopLoss(Decimal),
    TakeProfit(Decimal),
}

fn protect_of(trigger: Trigger) -> Option<Protect> {
    match trigger {
        Trigger::StopLossPct { pct } => Some(Protect::StopLoss(pct)),
        Trigger::TakeProfitPct { pct } => Some(Protect::TakeProfit(pct)),
        _ => None,
    }
}

/// The reference `price` and the level it gives: `price × (100 ∓ pct) / 100`.
fn reference(
    protect: Protect,
    price: Decimal,
    source: ReferenceSource,
) -> Result<Reference, String> {
    let factor = match protect {
        Protect::StopLoss(pct) => Decimal::ONE_HUNDRED.checked_sub(pct),
        Protect::TakeProfit(pct) => Decimal::ONE_HUNDRED.checked_add(pct),
    };
    let level = factor
        .and_then(|f| price.checked_mul(f))
        .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
        .filter(|l| *l > Decimal::ZERO)
        .ok_or_else(|| format!("no usable level from the reference price {price}"))?;
    Ok(Reference {
        price,
        source,
        level: level.normalize(),
    })
}

/// The intent of `order` fired at `at`, with `price` the firing price (when known); the reason
/// when nothing can be placed.
fn resolve<H: Holdings + ?Sized>(
    config: &BookConfig,
    id: &str,
    order: &TextOrder,
    price: Option<Decimal>,
    holdings: &H,
    at: Millis,
) -> Result<Intent, String> {
    let qty = match order.amount {
        Amount::Base { qty } => qty,
        Amount::Quote { notional } => {
            let (by, what) = match order.kind {
                OrderKind::Limit { price } => (Some(price), "limit price"),
                OrderKind::Market => (price, "price"),
            };
            let by = by.filter(|p| *p > Decimal::ZERO).ok_or_else(|| {
                format!(
                    "no price of {} known yet to size {notional} {}",
                    order.symbol, order.quote
                )
            })?;
            notional.checked_div(by).ok_or_else(|| {
                format!(
                    "{notional} {} at the {what} {by} is not a usable quantity",
                    order.quote
                )
            })?
        }
        Amount::FractionOfPosition { fraction } => {
            let held = holdings.held(&order.symbol);
            if held <= Decimal::ZERO {
                return Err(format!("nothing held of {} to sell", order.symbol));
            }
            held.checked_mul(fraction).ok_or_else(|| {
                format!(
                    "{fraction} of {held} {} is not a usable quantity",
                    order.base
                )
            })?
        }
    };
    if qty <= Decimal::ZERO {
        return Err(format!(
            "a quantity of {qty} {} is nothing to place",
            order.base
        ));
    }
    Ok(Intent {
        id: id.to_string(),
        venue: config.venue,
        symbol: order.symbol,
        side: order.side,
        qty: qty.normalize(),
        kind: order.kind,
        created_at: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::text::{parse, ParseOptions, Parsed};
    use crate::trading::Fill;
    use std::str::FromStr;

    const T0: Millis = 1_700_000_000_000;
    /// Confirmation time in most tests.
    const T1: Millis = T0 + 1_000;
    /// A trade or row after the confirmation.
    const T2: Millis = T0 + 2_000;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    fn origin() -> Origin {
        Origin {
            channel: "telegram:42".into(),
            user: "7".into(),
        }
    }

    fn order(side: Side, base: &str, amount: Amount, trigger: Option<Trigger>) -> TextOrder {
        TextOrder {
            side,
            symbol: sym(&format!("{base}USDT")),
            base: base.into(),
            quote: "USDT".into(),
            amount,
            kind: OrderKind::Market,
            trigger,
        }
    }

    fn qty(s: &str) -> Amount {
        Amount::Base { qty: d(s) }
    }

    fn frac(s: &str) -> Amount {
        Amount::FractionOfPosition { fraction: d(s) }
    }

    fn notional(s: &str) -> Amount {
        Amount::Quote { notional: d(s) }
    }

    fn rsi(period: u32, interval: &str, op: Comparison, value: &str) -> Trigger {
        Trigger::Indicator {
            indicator: IndicatorRef::Rsi { period },
            interval: interval.parse().unwrap(),
            op,
            value: d(value),
        }
    }

    fn parsed(text: &str) -> Command {
        match parse(text, &ParseOptions::default()) {
            Parsed::Command(c) => c,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn trade(symbol: &str, price: &str, ts: Millis) -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: sym(symbol),
            trade_id: ts as u64,
            price: d(price),
            qty: Decimal::ONE,
            side: Side::Buy,
            ts_exchange: ts,
            ts_received: ts,
            agg: None,
        }
    }

    fn row(symbol: &str, interval: &str, close_time: Millis, rsi: Option<f64>) -> IndicatorRow {
        let interval: Interval = interval.parse().unwrap();
        IndicatorRow {
            venue: Venue::Binance,
            symbol: sym(symbol),
            interval,
            open_time: close_time - interval.millis() + 1,
            close_time,
            close: d("45000"),
            values: IndicatorValues {
                rsi_14: rsi,
                ..IndicatorValues::default()
            },
        }
    }

    /// A portfolio holding `qty` of `symbol` bought at `price`.
    fn holding(symbol: &str, qty: &str, price: &str) -> Portfolio {
        let mut p = Portfolio::new();
        p.apply(&Fill {
            intent_id: "seed".into(),
            symbol: sym(symbol),
            side: Side::Buy,
            qty: d(qty),
            price: d(price),
            fee: Decimal::ZERO,
            ts: 0,
            fill_id: 1,
        })
        .unwrap();
        p
    }

    /// A balance whose entry price is not known (e.g. an exchange balance without fills).
    struct Balance(Decimal);

    impl Holdings for Balance {
        fn held(&self, _: &Symbol) -> Decimal {
            self.0
        }

        fn entry_price(&self, _: &Symbol) -> Option<Decimal> {
            None
        }
    }

    fn book() -> Book {
        Book::new(BookConfig::default())
    }

    /// Proposes `command` at `T0` and confirms it at `T1`.
    fn confirmed(book: &mut Book, command: Command, h: &impl Holdings) -> (String, Confirmed) {
        let p = book.propose(command, "text", &origin(), T0).unwrap();
        let c = book.confirm(&p.id, h, T1).unwrap();
        (p.id, c)
    }

    fn fired(out: &[Outcome]) -> Vec<&Intent> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::Fired { intent, .. } => Some(intent),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ids_are_deterministic() {
        let text = "buy 0.1 BTC when price drops below 45000";
        let id = proposal_id(&origin(), text, 1_700_000_000_000);
        // FNV-1a-128 of "11:telegram:42|1:7|1700000000000|buy 0.1 BTC when price drops below
        // 45000", computed with an independent implementation in Python.
        assert_eq!(id, "tx32b9e24c1224beea6a27a9b5ede96051");
        assert_eq!(id.len(), 34);
        assert_eq!(id, proposal_id(&origin(), text, 1_700_000_000_000));
        assert_ne!(id, proposal_id(&origin(), text, 1_700_000_000_001));
        assert_ne!(id, proposal_id(&origin(), "buy 0.2 BTC", 1_700_000_000_000));
        let other = Origin {
            user: "8".into(),
            ..origin()
        };
        assert_ne!(id, proposal_id(&other, text, 1_700_000_000_000));
        // The lengths keep the channel and the user apart.
        let a = Origin {
            channel: "a|b".into(),
            user: "c".into(),
        };
        let b = Origin {
            channel: "a".into(),
            user: "b|c".into(),
        };
        assert_ne!(proposal_id(&a, "x", 0), proposal_id(&b, "x", 0));

        // The same message proposed twice is one proposal; its intent carries its id.
        let mut bk = book();
        let cmd = parsed("buy 0.1 BTC");
        let p1 = bk.propose(cmd.clone(), text, &origin(), T0).unwrap();
        let p2 = bk.propose(cmd, text, &origin(), T0).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(bk.records().count(), 1);
        assert_eq!(
            bk.propose(parsed("buy 0.2 BTC"), text, &origin(), T0),
            Err(BookError::Conflict { id: p1.id.clone() })
        );
        bk.on_trade(&trade("BTCUSDT", "45000", T0), &Portfolio::new());
        match bk.confirm(&p1.id, &Portfolio::new(), T1).unwrap() {
            Confirmed::Place { intent } => {
                assert_eq!(intent.id, p1.id);
                assert_eq!(intent.qty, d("0.1"));
                assert_eq!(intent.created_at, T1);
            }
            other => panic!("{other:?}"),
        }
        // Proposing it again reports where it got to.
        let p3 = bk
            .propose(parsed("buy 0.1 BTC"), text, &origin(), T0)
            .unwrap();
        assert_eq!(p3.status.as_str(), "fired");
    }

    #[test]
    fn price_triggers_are_inclusive_at_both_scales() {
        use Trigger::{PriceAtOrAbove as Above, PriceAtOrBelow as Below};
        // (base, trigger level, below?, trade price, fires)
        let table = [
            ("BTC", "45000", true, "45000", true),
            ("BTC", "45000", true, "44999.99", true),
            ("BTC", "45000", true, "45000.01", false),
            ("BTC", "45000", false, "45000", true),
            ("BTC", "45000", false, "45000.01", true),
            ("BTC", "45000", false, "44999.99", false),
            ("PEPE", "0.00000123", true, "0.00000123", true),
            ("PEPE", "0.00000123", true, "0.0000012299999999", true),
            ("PEPE", "0.00000123", true, "0.0000012300000001", false),
            ("PEPE", "0.00000123", false, "0.00000123", true),
            ("PEPE", "0.00000123", false, "0.0000012300000001", true),
            ("PEPE", "0.00000123", false, "0.0000012299999999", false),
        ];
        for (base, level, below, price, fires) in table {
            let trigger = if below {
                Below { price: d(level) }
            } else {
                Above { price: d(level) }
            };
            let mut bk = book();
            let cmd = Command::Order(order(Side::Buy, base, qty("1"), Some(trigger)));
            let (id, c) = confirmed(&mut bk, cmd, &Portfolio::new());
            assert!(matches!(c, Confirmed::Armed { .. }));
            let out = bk.on_trade(&trade(&format!("{base}USDT"), price, T2), &Portfolio::new());
            assert_eq!(
                fired(&out).len(),
                usize::from(fires),
                "{base} {trigger:?} at {price}"
            );
            let status = bk.record(&id).unwrap().status.as_str();
            assert_eq!(status, if fires { "fired" } else { "armed" });
        }
    }

    #[test]
    fn stop_loss_and_take_profit_levels_at_both_scales() {
        // Levels by Python decimal: 45000 × 95 / 100 = 42750; 0.00000123 × 95 / 100 =
        // 0.0000011685; 45000 × 110 / 100 = 49500; 0.00000123 × 110 / 100 = 0.000001353.
        // (base, reference (last price), stop?, pct, level, trade price, fires)
        let table = [
            ("BTC", "45000", true, "5", "42750", "42750", true),
            ("BTC", "45000", true, "5", "42750", "42750.01", false),
            (
                "PEPE",
                "0.00000123",
                true,
                "5",
                "0.0000011685",
                "0.0000011685",
                true,
            ),
            (
                "PEPE",
                "0.00000123",
                true,
                "5",
                "0.0000011685",
                "0.0000011686",
                false,
            ),
            ("BTC", "45000", false, "10", "49500", "49500", true),
            ("BTC", "45000", false, "10", "49500", "49499.99", false),
            (
                "PEPE",
                "0.00000123",
                false,
                "10",
                "0.000001353",
                "0.000001353",
                true,
            ),
            (
                "PEPE",
                "0.00000123",
                false,
                "10",
                "0.000001353",
                "0.000001352",
                false,
            ),
        ];
        for (base, reference, stop, pct, level, price, fires) in table {
            let symbol = format!("{base}USDT");
            let trigger = if stop {
                Trigger::StopLossPct { pct: d(pct) }
            } else {
                Trigger::TakeProfitPct { pct: d(pct) }
            };
            let mut bk = book();
            bk.on_trade(&trade(&symbol, reference, T0), &Portfolio::new());
            // Nothing held: the reference is the last price.
            let h = Portfolio::new();
            let cmd = Command::Order(order(Side::Sell, base, qty("1"), Some(trigger)));
            let (id, c) = confirmed(&mut bk, cmd, &h);
            let expected = Reference {
                price: d(reference),
                source: ReferenceSource::LastPrice,
                level: d(level),
            };
            assert_eq!(
                c,
                Confirmed::Armed {
                    id: id.clone(),
                    reference: Some(expected)
                }
            );
            // A trade from before the confirmation never fires it, even at the level.
            let mut early = bk.clone();
            assert!(early
                .on_trade(&trade(&symbol, level, T1 - 1), &h)
                .is_empty());
            let out = bk.on_trade(&trade(&symbol, price, T2), &h);
            assert_eq!(
                fired(&out).len(),
                usize::from(fires),
                "{base} {trigger:?} at {price}"
            );
        }
    }

    #[test]
    fn the_reference_is_the_entry_price_when_held() {
        let mut bk = book();
        bk.on_trade(&trade("BTCUSDT", "45000", T0), &Portfolio::new());
        let h = holding("BTCUSDT", "0.5", "44000");
        let (id, c) = confirmed(&mut bk, parsed("stop loss 5% on BTC"), &h);
        // 44000 × 95 / 100 = 41800 (by hand).
        let expected = Reference {
            price: d("44000"),
            source: ReferenceSource::Entry,
            level: d("41800"),
        };
        assert_eq!(
            c,
            Confirmed::Armed {
                id: id.clone(),
                reference: Some(expected)
            }
        );
        assert!(bk
            .on_trade(&trade("BTCUSDT", "41800.01", T2), &h)
            .is_empty());
        let out = bk.on_trade(&trade("BTCUSDT", "41800", T2 + 1), &h);
        let intents = fired(&out);
        assert_eq!(intents.len(), 1);
        assert_eq!(intents[0].side, Side::Sell);
        assert_eq!(intents[0].qty, d("0.5"), "all of the position");
        assert_eq!(intents[0].kind, OrderKind::Market);
        assert_eq!(intents[0].id, id);
        assert_eq!(intents[0].created_at, T2 + 1);
    }

    #[test]
    fn without_a_known_price_the_first_trade_sets_the_reference() {
        let mut bk = book();
        let h = Balance(d("1000000"));
        let (id, c) = confirmed(&mut bk, parsed("take profit 10% on PEPE"), &h);
        assert_eq!(
            c,
            Confirmed::Armed {
                id: id.clone(),
                reference: None
            }
        );
        // A trade from before the confirmation sets nothing.
        assert!(bk
            .on_trade(&trade("PEPEUSDT", "0.000001", T0), &h)
            .is_empty());
        let out = bk.on_trade(&trade("PEPEUSDT", "0.00000123", T2), &h);
        let expected = Reference {
            price: d("0.00000123"),
            source: ReferenceSource::FirstTrade,
            level: d("0.000001353"),
        };
        assert_eq!(
            out,
            vec![Outcome::Referenced {
                id: id.clone(),
                reference: expected
            }]
        );
        assert_eq!(bk.record(&id).unwrap().reference, Some(expected));
        assert!(bk
            .on_trade(&trade("PEPEUSDT", "0.000001352", T2 + 1), &h)
            .is_empty());
        let out = bk.on_trade(&trade("PEPEUSDT", "0.000001353", T2 + 2), &h);
        assert_eq!(fired(&out)[0].qty, d("1000000"));
    }

    #[test]
    fn rsi_triggers_are_strict() {
        use Comparison::{Above, Below};
        // (op, level, rsi of the row, fires)
        let table = [
            (Below, "30", Some(30.0), false),
            (Below, "30", Some(29.99), true),
            (Below, "30", Some(30.01), false),
            (Above, "70", Some(70.0), false),
            (Above, "70", Some(70.01), true),
            (Above, "70", Some(69.99), false),
            // 70.1_f64 reads as 70.1: equal, so neither strictly above nor below.
            (Above, "70.1", Some(70.1), false),
            (Below, "70.1", Some(70.1), false),
            (Below, "80.5", Some(80.499_999_999), true),
            // Warming up or broken values fire nothing.
            (Below, "30", None, false),
            (Below, "30", Some(f64::NAN), false),
            (Below, "30", Some(f64::NEG_INFINITY), false),
        ];
        for (op, level, value, fires) in table {
            let mut bk = book();
            let cmd = Command::Order(order(
                Side::Buy,
                "BTC",
                qty("0.1"),
                Some(rsi(14, "1h", op, level)),
            ));
            let (id, _) = confirmed(&mut bk, cmd, &Portfolio::new());
            let out = bk.on_indicators(&row("BTCUSDT", "1h", T2, value), &Portfolio::new());
            assert_eq!(
                fired(&out).len(),
                usize::from(fires),
                "{op:?} {level} at {value:?}"
            );
            if fires {
                assert_eq!(fired(&out)[0].id, id);
                assert_eq!(fired(&out)[0].created_at, T2);
            }
        }

        // Another interval, another symbol, or a candle closed before the confirmation: nothing.
        let mut bk = book();
        let cmd = parsed("buy 0.1 BTC if the 4h RSI is below 30");
        let (_, _) = confirmed(&mut bk, cmd, &Portfolio::new());
        let h = Portfolio::new();
        assert!(bk
            .on_indicators(&row("BTCUSDT", "1h", T2, Some(10.0)), &h)
            .is_empty());
        assert!(bk
            .on_indicators(&row("ETHUSDT", "4h", T2, Some(10.0)), &h)
            .is_empty());
        assert!(bk
            .on_indicators(&row("BTCUSDT", "4h", T0, Some(10.0)), &h)
            .is_empty());
        assert!(bk.on_trade(&trade("BTCUSDT", "1", T2), &h).is_empty());
        assert_eq!(
            bk.on_indicators(&row("BTCUSDT", "4h", T2, Some(10.0)), &h)
                .len(),
            1
        );
        assert!(bk
            .on_indicators(&row("BTCUSDT", "4h", T2 + 1, Some(10.0)), &h)
            .is_empty());
    }

    #[test]
    fn rsi_conditions_that_cannot_be_evaluated_are_refused_when_proposed() {
        let mut bk = book();
        let cmd = parsed("compra 0,01 BTC si el RSI(7) de 15m es menor que 20");
        match bk.propose(cmd, "x", &origin(), T0) {
            Err(e @ BookError::Unsupported { .. }) => {
                assert!(e.to_string().contains("RSI(7) is not computed"), "{e}");
                assert!(e.to_string().contains("RSI(14)"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bk.records().count(), 0, "nothing recorded");

        let mut bk = Book::new(BookConfig {
            indicator_intervals: vec!["1m".parse().unwrap(), "1h".parse().unwrap()],
            ..BookConfig::default()
        });
        let cmd = parsed("buy 0.1 BTC if the 4h RSI is below 30");
        match bk.propose(cmd, "x", &origin(), T0) {
            Err(e @ BookError::Unsupported { .. }) => {
                assert!(e.to_string().contains("not computed on 4h candles"), "{e}");
                assert!(e.to_string().contains("1m, 1h"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let cmd = parsed("buy 0.1 BTC if the 1h RSI is below 30");
        assert!(bk.propose(cmd, "x", &origin(), T0).is_ok());
    }

    #[test]
    fn proposals_expire() {
        let ttl = DEFAULT_TTL_MS;
        assert_eq!(ttl, 5 * 60 * 1000);
        let mut bk = book();
        let h = Portfolio::new();
        let a = bk
            .propose(
                parsed("buy 0.1 BTC when it drops below 45000"),
                "a",
                &origin(),
                T0,
            )
            .unwrap();
        assert_eq!(a.expires_at, T0 + ttl);
        assert_eq!(a.status, Status::Pending);
        // The last millisecond still confirms.
        assert!(bk.confirm(&a.id, &h, T0 + ttl - 1).is_ok());

        let b = bk
            .propose(
                parsed("buy 0.1 BTC when it drops below 45000"),
                "b",
                &origin(),
                T0,
            )
            .unwrap();
        let err = bk.confirm(&b.id, &h, T0 + ttl).unwrap_err();
        assert_eq!(
            err,
            BookError::Expired {
                id: b.id.clone(),
                at: T0 + ttl
            }
        );
        assert!(err.to_string().contains("expired"), "{err}");
        assert_eq!(
            bk.record(&b.id).unwrap().status,
            Status::Expired { at: T0 + ttl }
        );
        // Still expired afterwards; a rejection changes nothing either.
        let again = bk.confirm(&b.id, &h, T0 + 1).unwrap_err();
        assert!(again.to_string().contains("has expired"), "{again}");
        assert!(bk.reject(&b.id, T0 + 1).is_err());

        // The sweep expires what is due and nothing else.
        let c = bk
            .propose(parsed("sell 1 ETH"), "c", &origin(), T0)
            .unwrap();
        let e = bk
            .propose(parsed("sell 1 ETH"), "e", &origin(), T0 + 10)
            .unwrap();
        assert!(bk.expire(T0 + ttl - 1).is_empty());
        assert_eq!(bk.expire(T0 + ttl), vec![c.id.clone()]);
        assert_eq!(bk.expire(T0 + ttl + 10), vec![e.id.clone()]);
        assert!(bk.expire(T0 + 10 * ttl).is_empty());

        // A shorter time to live from the config.
        let mut short = Book::new(BookConfig {
            ttl_ms: 1_000,
            ..BookConfig::default()
        });
        let p = short
            .propose(parsed("sell 1 ETH"), "s", &origin(), T0)
            .unwrap();
        assert!(matches!(
            short.confirm(&p.id, &h, T0 + 1_000),
            Err(BookError::Expired { .. })
        ));
        assert!(BookConfig {
            ttl_ms: 0,
            ..BookConfig::default()
        }
        .validate()
        .is_err());
        assert!(BookConfig::default().validate().is_ok());
    }

    #[test]
    fn confirm_twice_and_after_a_rejection_are_refused() {
        let mut bk = book();
        let h = Portfolio::new();
        let cmd = parsed("buy 0.1 BTC when it drops below 45000");
        let p = bk.propose(cmd.clone(), "a", &origin(), T0).unwrap();
        assert!(matches!(
            bk.confirm(&p.id, &h, T1),
            Ok(Confirmed::Armed { .. })
        ));
        let err = bk.confirm(&p.id, &h, T1 + 1).unwrap_err();
        assert_eq!(
            err,
            BookError::NotPending {
                id: p.id.clone(),
                status: "armed".into()
            }
        );
        assert!(err.to_string().contains("already confirmed"), "{err}");
        assert_eq!(bk.armed().count(), 1);

        let q = bk.propose(cmd, "b", &origin(), T0).unwrap();
        bk.reject(&q.id, T1).unwrap();
        assert_eq!(
            bk.record(&q.id).unwrap().status,
            Status::Rejected { at: T1 }
        );
        let err = bk.confirm(&q.id, &h, T1 + 1).unwrap_err();
        assert!(err.to_string().contains("was rejected"), "{err}");
        assert_eq!(bk.armed().count(), 1, "the rejected one is not armed");
        assert!(bk.reject(&q.id, T1 + 1).is_err());

        assert_eq!(
            bk.confirm("tx0", &h, T1),
            Err(BookError::Unknown { id: "tx0".into() })
        );
    }

    #[test]
    fn an_armed_order_fires_once_across_snapshot_and_restore() {
        let mut bk = book();
        let h = Portfolio::new();
        let cmd = parsed("buy 0.1 BTC when it drops below 45000");
        let (id, _) = confirmed(&mut bk, cmd, &h);
        let before = serde_json::to_string(&bk.snapshot()).unwrap();

        let t = trade("BTCUSDT", "44000", T2);
        let out = bk.on_trade(&t, &h);
        assert_eq!(fired(&out).len(), 1);
        let intent = fired(&out)[0].clone();
        assert_eq!(intent.id, id);
        assert_eq!(
            bk.record(&id).unwrap().status,
            Status::Fired {
                intent_id: id.clone(),
                at: T2
            }
        );
        assert!(bk.on_trade(&t, &h).is_empty(), "the same trade again");
        assert!(bk
            .on_trade(&trade("BTCUSDT", "43000", T2 + 1), &h)
            .is_empty());

        // Restored after the firing was stored: it never fires again.
        let after: BookState =
            serde_json::from_str(&serde_json::to_string(&bk.snapshot()).unwrap()).unwrap();
        let mut restored = Book::restore(BookConfig::default(), after).unwrap();
        assert!(restored.on_trade(&t, &h).is_empty());
        assert_eq!(restored.armed().count(), 0);

        // Restored from before the firing was stored: the same trade gives the same intent id,
        // which the risk gate and the broker know as a duplicate.
        let before: BookState = serde_json::from_str(&before).unwrap();
        let mut replay = Book::restore(BookConfig::default(), before).unwrap();
        let again = replay.on_trade(&t, &h);
        assert_eq!(fired(&again), vec![&intent]);
    }

    #[test]
    fn fractions_of_the_position_are_sized_when_fired() {
        // 0.5 × 12345678.9 = 6172839.45 (Python decimal).
        let cmd = parsed("sell half my PEPE when it rises above 0.00000123");
        let held = holding("PEPEUSDT", "12345678.9", "0.000001");
        let mut bk = book();
        let (id, _) = confirmed(&mut bk, cmd.clone(), &held);
        let out = bk.on_trade(&trade("PEPEUSDT", "0.00000123", T2), &held);
        assert_eq!(fired(&out)[0].qty, d("6172839.45"));
        assert_eq!(fired(&out)[0].id, id);

        // Nothing held: skipped with a reason, and done for good.
        let mut bk = book();
        let empty = Portfolio::new();
        let (id, _) = confirmed(&mut bk, cmd, &empty);
        let out = bk.on_trade(&trade("PEPEUSDT", "0.00000124", T2), &empty);
        assert_eq!(
            out,
            vec![Outcome::Skipped {
                id: id.clone(),
                reason: "nothing held of PEPEUSDT to sell".into()
            }]
        );
        assert_eq!(bk.record(&id).unwrap().status.as_str(), "skipped");
        assert!(bk
            .on_trade(&trade("PEPEUSDT", "0.00000125", T2 + 1), &held)
            .is_empty());

        // Without a trigger, at confirmation.
        let mut bk = book();
        let (id, c) = confirmed(&mut bk, parsed("sell all my ETH"), &empty);
        assert_eq!(
            c,
            Confirmed::Skipped {
                id,
                reason: "nothing held of ETHUSDT to sell".into()
            }
        );
        let (_, c) = confirmed(
            &mut book(),
            parsed("sell all my ETH"),
            &holding("ETHUSDT", "2.5", "3000"),
        );
        match c {
            Confirmed::Place { intent } => assert_eq!(intent.qty, d("2.5")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quote_amounts_divide_by_the_firing_or_limit_price() {
        // 90 / 45000 = 0.002 and 123 / 0.00000123 = 100000000 (Python decimal).
        let h = Portfolio::new();
        let mut bk = book();
        let cmd = Command::Order(order(
            Side::Buy,
            "BTC",
            notional("90"),
            Some(Trigger::PriceAtOrBelow { price: d("46000") }),
        ));
        confirmed(&mut bk, cmd, &h);
        let out = bk.on_trade(&trade("BTCUSDT", "45000", T2), &h);
        assert_eq!(fired(&out)[0].qty, d("0.002"));

        let mut bk = book();
        let cmd = Command::Order(order(
            Side::Buy,
            "PEPE",
            notional("123"),
            Some(Trigger::PriceAtOrBelow {
                price: d("0.00000123"),
            }),
        ));
        confirmed(&mut bk, cmd, &h);
        let out = bk.on_trade(&trade("PEPEUSDT", "0.00000123", T2), &h);
        assert_eq!(fired(&out)[0].qty, d("100000000"));

        // A limit order is sized at its limit price, and keeps it.
        let mut bk = book();
        let mut o = order(
            Side::Buy,
            "BTC",
            notional("90"),
            Some(rsi(14, "1h", Comparison::Below, "30")),
        );
        o.kind = OrderKind::Limit { price: d("45000") };
        confirmed(&mut bk, Command::Order(o), &h);
        let out = bk.on_indicators(&row("BTCUSDT", "1h", T2, Some(25.0)), &h);
        assert_eq!(fired(&out)[0].qty, d("0.002"));
        assert_eq!(fired(&out)[0].kind, OrderKind::Limit { price: d("45000") });

        // Without a trigger: the last price, or skipped when none is known yet.
        let cmd = Command::Order(order(Side::Buy, "BTC", notional("90"), None));
        let mut bk = book();
        let (id, c) = confirmed(&mut bk, cmd.clone(), &h);
        assert_eq!(
            c,
            Confirmed::Skipped {
                id,
                reason: "no price of BTCUSDT known yet to size 90 USDT".into()
            }
        );
        let mut bk = book();
        bk.on_trade(&trade("BTCUSDT", "45000", T0), &h);
        match confirmed(&mut bk, cmd, &h).1 {
            Confirmed::Place { intent } => assert_eq!(intent.qty, d("0.002")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_confirmed_cancel_removes_the_armed_orders_of_its_symbol() {
        let h = Portfolio::new();
        let mut bk = book();
        let (btc, _) = confirmed(&mut bk, parsed("buy 0.1 BTC when it drops below 45000"), &h);
        let p = bk
            .propose(
                parsed("sell 1 ETH when it rises above 4000"),
                "eth",
                &origin(),
                T0,
            )
            .unwrap();
        bk.confirm(&p.id, &h, T1).unwrap();
        let eth = p.id;
        let pending = bk
            .propose(
                parsed("buy 0.2 BTC when it drops below 40000"),
                "p",
                &origin(),
                T0,
            )
            .unwrap()
            .id;

        let c = bk
            .propose(parsed("cancel all BTC orders"), "cancel", &origin(), T1)
            .unwrap();
        assert_eq!(c.description, "CANCEL all BTCUSDT orders");
        let done = bk.confirm(&c.id, &h, T2).unwrap();
        assert_eq!(
            done,
            Confirmed::Cancel {
                id: c.id.clone(),
                symbol: Some(sym("BTCUSDT")),
                disarmed: vec![btc.clone()]
            }
        );
        assert_eq!(bk.record(&c.id).unwrap().status, Status::Done { at: T2 });
        assert_eq!(
            bk.record(&btc).unwrap().status,
            Status::Cancelled {
                reason: format!("cancelled by {}", c.id),
                at: T2
            }
        );
        assert_eq!(bk.record(&eth).unwrap().status, Status::Armed);
        assert_eq!(bk.record(&pending).unwrap().status, Status::Pending);
        assert!(bk.on_trade(&trade("BTCUSDT", "1", T2 + 1), &h).is_empty());

        // "cancel all" takes every armed order.
        let all = bk
            .propose(parsed("cancel all"), "all", &origin(), T2)
            .unwrap();
        match bk.confirm(&all.id, &h, T2 + 1).unwrap() {
            Confirmed::Cancel {
                symbol, disarmed, ..
            } => {
                assert_eq!(symbol, None);
                assert_eq!(disarmed, vec![eth.clone()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bk.armed().count(), 0);
        assert!(bk
            .on_trade(&trade("ETHUSDT", "5000", T2 + 2), &h)
            .is_empty());

        // One order withdrawn by id.
        bk.cancel(&pending, "withdrawn", T2).unwrap();
        assert!(bk.cancel(&pending, "again", T2).is_err());
    }

    #[test]
    fn trades_of_another_venue_or_from_before_the_confirmation_are_ignored() {
        let h = Portfolio::new();
        let mut bk = book();
        let (id, _) = confirmed(&mut bk, parsed("buy 0.1 BTC when it drops below 45000"), &h);
        let mut other = trade("BTCUSDT", "1", T2);
        other.venue = Venue::BinanceUsdm;
        assert!(bk.on_trade(&other, &h).is_empty());
        assert_eq!(bk.last_price(&sym("BTCUSDT")), None);
        assert!(bk.on_trade(&trade("BTCUSDT", "1", T1 - 1), &h).is_empty());
        assert_eq!(bk.last_price(&sym("BTCUSDT")), Some(d("1")));
        // An older trade does not move the last price back.
        bk.on_trade(&trade("BTCUSDT", "2", T0), &h);
        assert_eq!(bk.last_price(&sym("BTCUSDT")), Some(d("1")));
        // The confirmation's own millisecond counts.
        assert_eq!(
            fired(&bk.on_trade(&trade("BTCUSDT", "1", T1), &h))[0].id,
            id
        );
    }

    #[test]
    fn out_of_range_orders_are_refused_when_proposed() {
        let mut bk = book();
        let zero = Decimal::ZERO;
        let cases = [
            order(Side::Buy, "BTC", qty("0"), None),
            order(Side::Buy, "BTC", notional("-1"), None),
            order(Side::Sell, "BTC", frac("1.5"), None),
            order(Side::Buy, "BTC", frac("0.5"), None),
            order(
                Side::Sell,
                "BTC",
                qty("1"),
                Some(Trigger::PriceAtOrBelow { price: zero }),
            ),
            order(
                Side::Sell,
                "BTC",
                qty("1"),
                Some(Trigger::StopLossPct { pct: d("100") }),
            ),
            order(
                Side::Sell,
                "BTC",
                qty("1"),
                Some(Trigger::TakeProfitPct { pct: zero }),
            ),
            order(
                Side::Buy,
                "BTC",
                qty("1"),
                Some(rsi(14, "1h", Comparison::Below, "100")),
            ),
            TextOrder {
                kind: OrderKind::Limit { price: zero },
                ..order(Side::Buy, "BTC", qty("1"), None)
            },
        ];
        for o in cases {
            let r = bk.propose(Command::Order(o.clone()), "x", &origin(), T0);
            assert!(matches!(r, Err(BookError::Invalid { .. })), "{o:?}: {r:?}");
        }
        assert_eq!(bk.records().count(), 0);
    }

    #[test]
    fn records_serialize_with_their_status() {
        let mut bk = book();
        let h = Portfolio::new();
        let (id, _) = confirmed(&mut bk, parsed("buy 0.1 BTC when it drops below 45000"), &h);
        bk.on_trade(&trade("BTCUSDT", "45000", T2), &h);
        let json = serde_json::to_value(bk.record(&id).unwrap()).unwrap();
        assert_eq!(json["status"]["status"], "fired");
        assert_eq!(json["status"]["intent_id"], id.as_str());
        assert_eq!(json["command"]["trigger"]["price"], "45000");
        let state = bk.snapshot();
        assert_eq!(state.version, STATE_VERSION);
        let mut twice = state.clone();
        twice.records.extend(state.records.clone());
        assert!(matches!(
            Book::restore(BookConfig::default(), twice),
            Err(BookError::State { .. })
        ));
        let future = BookState {
            version: STATE_VERSION + 1,
            records: Vec::new(),
        };
        assert!(Book::restore(BookConfig::default(), future).is_err());
        // Final records can be forgotten once stored.
        assert!(bk.prune(T2).is_empty());
        assert_eq!(bk.prune(T2 + 1), vec![id]);
    }

    mod no_panics {
        use super::*;
        use proptest::prelude::*;

        fn dec() -> impl Strategy<Value = Decimal> {
            prop_oneof![
                (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
                Just(Decimal::MAX),
                Just(Decimal::MIN),
                Just(Decimal::ZERO),
                Just(Decimal::new(1, 28)),
            ]
        }

        fn trigger() -> impl Strategy<Value = Option<Trigger>> {
            prop_oneof![
                Just(None),
                dec().prop_map(|price| Some(Trigger::PriceAtOrBelow { price })),
                dec().prop_map(|price| Some(Trigger::PriceAtOrAbove { price })),
                dec().prop_map(|pct| Some(Trigger::StopLossPct { pct })),
                dec().prop_map(|pct| Some(Trigger::TakeProfitPct { pct })),
                (0u32..30, any::<bool>(), dec()).prop_map(|(period, above, value)| {
                    let op = if above {
                        Comparison::Above
                    } else {
                        Comparison::Below
                    };
                    Some(rsi(period, "1h", op, &value.to_string()))
                }),
            ]
        }

        fn amount() -> impl Strategy<Value = Amount> {
            prop_oneof![
                dec().prop_map(|qty| Amount::Base { qty }),
                dec().prop_map(|notional| Amount::Quote { notional }),
                dec().prop_map(|fraction| Amount::FractionOfPosition { fraction }),
            ]
        }

        proptest! {
            #[test]
            fn any_orders_and_prices_never_panic_and_fire_once(
                orders in proptest::collection::vec((any::<bool>(), amount(), trigger(), proptest::option::of(dec())), 1..6),
                entry in proptest::option::of(dec()),
                held in dec(),
                prices in proptest::collection::vec(dec(), 0..8),
                rsis in proptest::collection::vec(any::<f64>(), 0..4),
            ) {
                struct H(Decimal, Option<Decimal>);
                impl Holdings for H {
                    fn held(&self, _: &Symbol) -> Decimal { self.0 }
                    fn entry_price(&self, _: &Symbol) -> Option<Decimal> { self.1 }
                }
                let h = H(held, entry);
                let mut bk = book();
                if let Some(p) = prices.first() {
                    bk.on_trade(&trade("BTCUSDT", &p.to_string(), T0), &h);
                }
                for (i, (buy, amount, trigger, limit)) in orders.into_iter().enumerate() {
                    let side = if buy { Side::Buy } else { Side::Sell };
                    let mut o = order(side, "BTC", amount, trigger);
                    if let Some(price) = limit {
                        o.kind = OrderKind::Limit { price };
                    }
                    if let Ok(p) = bk.propose(Command::Order(o), &i.to_string(), &origin(), T0) {
                        let _ = bk.confirm(&p.id, &h, T1);
                    }
                }
                let mut fired_ids = Vec::new();
                for (k, p) in prices.iter().enumerate() {
                    for out in bk.on_trade(&trade("BTCUSDT", &p.to_string(), T2 + k as i64), &h) {
                        if let Outcome::Fired { id, intent } = out {
                            prop_assert!(intent.qty > Decimal::ZERO);
                            fired_ids.push(id);
                        }
                    }
                }
                for (k, r) in rsis.iter().enumerate() {
                    for out in bk.on_indicators(&row("BTCUSDT", "1h", T2 + k as i64, Some(*r)), &h) {
                        if let Outcome::Fired { id, .. } = out {
                            fired_ids.push(id);
                        }
                    }
                }
                let n = fired_ids.len();
                fired_ids.sort();
                fired_ids.dedup();
                prop_assert_eq!(n, fired_ids.len(), "an order fired twice");
            }
        }
    }
}
