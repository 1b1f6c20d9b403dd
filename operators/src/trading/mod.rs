//! The pure logic of trading: order intents, the risk gate, the paper fill model, positions and
//! the grammar of text orders. No I/O: the executor (`cryptoflow execute`) and the backtest wire
//! these to their sources, brokers and journal.
//!
//! - [`risk`]: the risk gate, a pure function of an intent and the state it is checked against.
//! - [`paper`]: the paper broker's fill model (limit and market orders filled from the tape).
//! - [`text`]: the deterministic grammar of text orders (English and Spanish).
//! - [`conditional`]: the book of text orders, from proposal and confirmation to armed
//!   conditions and the intents they fire.
//! - [`command`]: the operator's commands (control API, `cryptoflow control`, Telegram).
//!
//! Money is [`Decimal`] throughout; quantities are in the base asset, prices and notionals in the
//! quote asset.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{Millis, Side, Symbol, Venue};

pub mod command;
pub mod conditional;
pub mod engine;
pub mod paper;
pub mod portfolio;
pub mod risk;
pub mod signals;
pub mod text;

/// How an order is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderKind {
    /// At the market: fills at the next trades, with slippage in the paper broker.
    Market,
    /// Good-till-cancelled limit order at `price`.
    Limit {
        /// Limit price (quote per base).
        price: Decimal,
    },
}

/// One order someone wants placed: the unit the risk gate checks and a broker executes.
///
/// `id` is derived from what caused the intent (a signal's strategy, symbol, interval and candle;
/// a confirmed text order's id), so the same cause always gives the same id. Brokers use it as the
/// client order id: a retry or a restart never places a second order for one intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Deterministic id (at most 36 characters of `[A-Za-z0-9_-]`, Binance's `newClientOrderId`).
    pub id: String,
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Quantity in the base asset.
    pub qty: Decimal,
    /// Market or limit.
    pub kind: OrderKind,
    /// When the intent was made (event time of its cause), ms.
    pub created_at: Millis,
}

/// One execution of (part of) an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The intent (client order id) it belongs to.
    pub intent_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Executed quantity, base asset.
    pub qty: Decimal,
    /// Execution price.
    pub price: Decimal,
    /// Fee, in the quote asset.
    pub fee: Decimal,
    /// Execution time, ms.
    pub ts: Millis,
    /// Id of the fill, unique per intent (the exchange's trade id, or the paper tape's trade id).
    pub fill_id: u64,
}

impl Fill {
    /// Price × quantity.
    pub fn notional(&self) -> Decimal {
        self.price * self.qty
    }
}
