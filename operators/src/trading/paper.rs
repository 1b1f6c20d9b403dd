//! The paper broker's fill model: orders filled from the tape of public trades.
//!
//! [`PaperBroker`] takes approved intents (already normalized by the risk gate) and fills them
//! from the [`Trade`]s it is shown, deterministically: the same orders and the same trades in
//! the same order always give the same [`Fill`]s.
//!
//! # The model
//!
//! - Only trades of the order's venue and symbol with `ts_exchange ≥` the order's submission
//!   time count (no look-ahead in backtests).
//! - A **limit buy** fills when a trade prints at or below its limit price, a **limit sell**
//!   when one prints at or above; the fill is at the limit price (no price improvement, the
//!   conservative choice).
//! - A **market order** fills at the next trades after its submission, at the trade price ×
//!   `(1 + slippage)` for buys and × `(1 − slippage)` for sells.
//! - A fill takes `min(remaining, trade qty)`, so a large order fills partially over several
//!   trades. One trade's quantity is shared among the orders of a side it fills, in priority
//!   order: market orders first, then limits by price (highest buy, lowest sell), then by
//!   submission; buys are matched before sells.
//! - The fee is `fee_rate × price × qty`, in the quote asset.
//! - The fill id is the tape trade's id, so it is unique per intent; a trade shown twice fills
//!   an order once.
//!
//! Submitting an intent id that is already known is idempotent: the same intent is accepted as
//! a duplicate and places nothing new (a retry never places a second order).

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::risk::OpenOrder;
use super::{Fill, Intent, OrderKind};
use crate::model::{Millis, Side, Symbol, Trade};

/// The paper broker's costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Fee as a fraction of the notional (default `0.001`, Binance spot's 0.1 %).
    pub fee_rate: Decimal,
    /// Slippage of market orders as a fraction of the trade price (default `0.0005`).
    pub slippage: Decimal,
}

impl Default for PaperConfig {
    fn default() -> Self {
        PaperConfig {
            fee_rate: Decimal::new(1, 3),
            slippage: Decimal::new(5, 4),
        }
    }
}

/// The state of a paper order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, nothing filled yet.
    New,
    /// Part of the quantity filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Canceled before it was completely filled.
    Canceled,
}

impl OrderStatus {
    /// True for orders that can still fill (`New`, `PartiallyFilled`).
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
        }
    }
}

/// One order at the paper broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperOrder {
    /// The intent placed.
    pub intent: Intent,
    /// When it was submitted, ms: only trades at or after this time fill it.
    pub submitted_at: Millis,
    /// Submission sequence number (priority among equal prices).
    pub seq: u64,
    /// Its state.
    pub status: OrderStatus,
    /// Quantity filled, base asset.
    pub filled_qty: Decimal,
    /// Σ price × quantity of its fills, quote asset.
    pub filled_notional: Decimal,
    /// Fees of its fills, quote asset.
    pub fees: Decimal,
    /// Ids of the trades that filled it.
    pub fill_ids: Vec<u64>,
}

impl PaperOrder {
    /// Quantity not yet filled.
    pub fn remaining(&self) -> Decimal {
        self.intent.qty - self.filled_qty
    }

    /// Average fill price, when anything filled.
    pub fn avg_fill_price(&self) -> Option<Decimal> {
        if self.filled_qty.is_zero() {
            None
        } else {
            self.filled_notional.checked_div(self.filled_qty)
        }
    }

    /// What is still working of it, as the risk gate counts it.
    pub fn as_open_order(&self) -> OpenOrder {
        OpenOrder {
            symbol: self.intent.symbol,
            side: self.intent.side,
            kind: self.intent.kind,
            remaining: self.remaining(),
        }
    }
}

/// Why the paper broker refused an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum PaperError {
    /// The quantity is zero or negative.
    InvalidQty {
        /// The intent.
        intent_id: String,
    },
    /// The limit price is zero or negative.
    InvalidPrice {
        /// The intent.
        intent_id: String,
    },
    /// An order with this id exists with a different intent.
    IdConflict {
        /// The intent.
        intent_id: String,
    },
}

impl fmt::Display for PaperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaperError::InvalidQty { intent_id } => {
                write!(f, "order {intent_id}: quantity is not positive")
            }
            PaperError::InvalidPrice { intent_id } => {
                write!(f, "order {intent_id}: limit price is not positive")
            }
            PaperError::IdConflict { intent_id } => write!(
                f,
                "order {intent_id}: another order with this id exists with a different intent"
            ),
        }
    }
}

impl std::error::Error for PaperError {}

/// The broker's answer to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The order's state.
    pub status: OrderStatus,
    /// True when the id was already known and nothing new was placed.
    pub duplicate: bool,
}

/// The paper broker: open orders and the fill model (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct PaperBroker {
    config: PaperConfig,
    /// Every order ever submitted, in submission order.
    orders: Vec<PaperOrder>,
    /// Index into `orders` by intent id.
    by_id: BTreeMap<String, usize>,
    /// Indexes of the open orders, in submission order.
    open: Vec<usize>,
}

impl PaperBroker {
    /// A broker with no orders.
    pub fn new(config: PaperConfig) -> Self {
        PaperBroker {
            config,
            ..PaperBroker::default()
        }
    }

    /// Its costs.
    pub fn config(&self) -> &PaperConfig {
        &self.config
    }

    /// Accepts an order at `submitted_at` (ms); only trades at or after that time fill it.
    /// The intent should be the risk gate's normalized one. A known id with the same intent is
    /// a duplicate and changes nothing.
    pub fn submit(
        &mut self,
        intent: Intent,
        submitted_at: Millis,
    ) -> Result<Submitted, PaperError> {
        if let Some(order) = self.by_id.get(&intent.id).and_then(|&i| self.orders.get(i)) {
            if order.intent != intent {
                return Err(PaperError::IdConflict {
                    intent_id: intent.id,
                });
            }
            return Ok(Submitted {
                status: order.status,
                duplicate: true,
            });
        }
        if intent.qty <= Decimal::ZERO {
            return Err(PaperError::InvalidQty {
                intent_id: intent.id,
            });
        }
        if let OrderKind::Limit { price } = intent.kind {
            if price <= Decimal::ZERO {
                return Err(PaperError::InvalidPrice {
                    intent_id: intent.id,
                });
            }
        }
        let index = self.orders.len();
        self.by_id.insert(intent.id.clone(), index);
        self.orders.push(PaperOrder {
            intent,
            submitted_at,
            seq: index as u64,
            status: OrderStatus::New,
            filled_qty: Decimal::ZERO,
            filled_notional: Decimal::ZERO,
            fees: Decimal::ZERO,
            fill_ids: Vec::new(),
        });
        self.open.push(index);
        Ok(Submitted {
            status: OrderStatus::New,
            duplicate: false,
        })
    }

    /// Cancels an open order; true when it was open (false for unknown or closed orders).
    pub fn cancel(&mut self, intent_id: &str) -> bool {
        let Some(&index) = self.by_id.get(intent_id) else {
            return false;
        };
        match self.orders.get_mut(index) {
            Some(order) if order.status.is_open() => {
                order.status = OrderStatus::Canceled;
                self.open.retain(|&i| i != index);
                true
            }
            _ => false,
        }
    }

    /// Cancels every open order, or those of `symbol`; returns the ids canceled, in submission
    /// order.
    pub fn cancel_all(&mut self, symbol: Option<&Symbol>) -> Vec<String> {
        let mut canceled = Vec::new();
        let orders = &mut self.orders;
        self.open.retain(|&i| match orders.get_mut(i) {
            Some(order) if symbol.is_none_or(|s| order.intent.symbol == *s) => {
                order.status = OrderStatus::Canceled;
                canceled.push(order.intent.id.clone());
                false
            }
            _ => true,
        });
        canceled
    }

    /// The order of `intent_id`, open or not.
    pub fn order(&self, intent_id: &str) -> Option<&PaperOrder> {
        self.by_id.get(intent_id).and_then(|&i| self.orders.get(i))
    }

    /// The state of the order of `intent_id`.
    pub fn status(&self, intent_id: &str) -> Option<OrderStatus> {
        self.order(intent_id).map(|o| o.status)
    }

    /// The open orders, in submission order.
    pub fn open_orders(&self) -> Vec<&PaperOrder> {
        self.open
            .iter()
            .filter_map(|&i| self.orders.get(i))
            .collect()
    }

    /// The open orders' unfilled remainders, for the risk gate
    /// ([`RiskContext::open_orders`](super::risk::RiskContext::open_orders)).
    pub fn working(&self) -> Vec<OpenOrder> {
        self.open_orders()
            .into_iter()
            .map(PaperOrder::as_open_order)
            .collect()
    }

    /// Every order ever submitted, in submission order.
    pub fn orders(&self) -> &[PaperOrder] {
        &self.orders
    }

    /// Fills the open orders this trade reaches; returns the fills (buys first, each side in
    /// priority order).
    pub fn on_trade(&mut self, trade: &Trade) -> Vec<Fill> {
        let mut fills = Vec::new();
        if trade.qty <= Decimal::ZERO || trade.price <= Decimal::ZERO {
            return fills;
        }
        for side in [Side::Buy, Side::Sell] {
            let mut candidates: Vec<usize> = self
                .open
                .iter()
                .copied()
                .filter(|&i| {
                    self.orders
                        .get(i)
                        .is_some_and(|o| o.intent.side == side && reaches(o, trade))
                })
                .collect();
            candidates.sort_by(|&a, &b| {
                let (a, b) = match (self.orders.get(a), self.orders.get(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return std::cmp::Ordering::Equal,
                };
                priority(a).cmp(&priority(b)).then(a.seq.cmp(&b.seq))
            });
            let mut liquidity = trade.qty;
            for index in candidates {
                if liquidity <= Decimal::ZERO {
                    break;
                }
                let Some(order) = self.orders.get_mut(index) else {
                    continue;
                };
                if let Some(fill) = fill_one(&self.config, order, trade, liquidity) {
                    liquidity -= fill.qty;
                    fills.push(fill);
                }
            }
        }
        let orders = &self.orders;
        self.open
            .retain(|&i| orders.get(i).is_some_and(|o| o.status.is_open()));
        fills
    }
}

/// True when `trade` can fill `order`: same venue and symbol, not before its submission, not
/// used by it before, and at a price the order accepts.
fn reaches(order: &PaperOrder, trade: &Trade) -> bool {
    let intent = &order.intent;
    intent.venue == trade.venue
        && intent.symbol == trade.symbol
        && trade.ts_exchange >= order.submitted_at
        && !order.fill_ids.contains(&trade.trade_id)
        && match (intent.kind, intent.side) {
            (OrderKind::Market, _) => true,
            (OrderKind::Limit { price }, Side::Buy) => trade.price <= price,
            (OrderKind::Limit { price }, Side::Sell) => trade.price >= price,
        }
}

/// Sort key among orders of one side: market first, then the most aggressive limit price.
fn priority(order: &PaperOrder) -> (u8, Decimal) {
    match (order.intent.kind, order.intent.side) {
        (OrderKind::Market, _) => (0, Decimal::ZERO),
        (OrderKind::Limit { price }, Side::Buy) => (1, -price),
        (OrderKind::Limit { price }, Side::Sell) => (1, price),
    }
}

/// Fills `order` from `trade` with at most `liquidity`, updating it; `None` when nothing can
/// fill (or the amounts overflow, which leaves the order untouched).
fn fill_one(
    config: &PaperConfig,
    order: &mut PaperOrder,
    trade: &Trade,
    liquidity: Decimal,
) -> Option<Fill> {
    let remaining = order.remaining();
    let qty = remaining.min(liquidity);
    if qty <= Decimal::ZERO {
        return None;
    }
    let price = match (order.intent.kind, order.intent.side) {
        (OrderKind::Limit { price }, _) => price,
        (OrderKind::Market, Side::Buy) => trade
            .price
            .checked_mul(Decimal::ONE.checked_add(config.slippage)?)?,
        (OrderKind::Market, Side::Sell) => trade
            .price
            .checked_mul(Decimal::ONE.checked_sub(config.slippage)?)?,
    };
    let notional = price.checked_mul(qty)?;
    let fee = config.fee_rate.checked_mul(notional)?;
    let filled_qty = order.filled_qty.checked_add(qty)?;
    let filled_notional = order.filled_notional.checked_add(notional)?;
    let fees = order.fees.checked_add(fee)?;
    order.filled_qty = filled_qty;
    order.filled_notional = filled_notional;
    order.fees = fees;
    order.fill_ids.push(trade.trade_id);
    order.status = if filled_qty >= order.intent.qty {
        OrderStatus::Filled
    } else {
        OrderStatus::PartiallyFilled
    };
    Some(Fill {
        intent_id: order.intent.id.clone(),
        symbol: order.intent.symbol,
        side: order.intent.side,
        qty,
        price,
        fee,
        ts: trade.ts_exchange,
        fill_id: trade.trade_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Venue;
    use crate::trading::portfolio::Portfolio;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    const T0: Millis = 1_700_000_000_000;

    fn intent(id: &str, side: Side, qty: &str, price: Option<&str>) -> Intent {
        Intent {
            id: id.into(),
            venue: Venue::Binance,
            symbol: sym("BTCUSDT"),
            side,
            qty: d(qty),
            kind: match price {
                Some(p) => OrderKind::Limit { price: d(p) },
                None => OrderKind::Market,
            },
            created_at: T0,
        }
    }

    fn trade(id: u64, price: &str, qty: &str, ts: Millis) -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: sym("BTCUSDT"),
            trade_id: id,
            price: d(price),
            qty: d(qty),
            side: Side::Sell,
            ts_exchange: ts,
            ts_received: ts + 5,
            agg: None,
        }
    }

    fn broker() -> PaperBroker {
        PaperBroker::new(PaperConfig::default())
    }

    #[test]
    fn limit_buy_fills_at_or_below_its_price_never_above() {
        let mut b = broker();
        b.submit(intent("b1", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        assert!(b.on_trade(&trade(1, "100.01", "5", T0)).is_empty());
        assert_eq!(b.status("b1"), Some(OrderStatus::New));
        // A print at the limit fills.
        let fills = b.on_trade(&trade(2, "100", "0.4", T0 + 1));
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].price, d("100"));
        assert_eq!(fills[0].qty, d("0.4"));
        assert_eq!(fills[0].fill_id, 2);
        assert_eq!(fills[0].fee, d("0.04"));
        assert_eq!(fills[0].ts, T0 + 1);
        // A print below fills at the limit price, not the print.
        let fills = b.on_trade(&trade(3, "99", "5", T0 + 2));
        assert_eq!(fills[0].price, d("100"));
        assert_eq!(fills[0].qty, d("0.6"));
        assert_eq!(b.status("b1"), Some(OrderStatus::Filled));
        assert!(b.open_orders().is_empty());
        let o = b.order("b1").unwrap();
        assert_eq!(o.avg_fill_price(), Some(d("100")));
        assert_eq!(o.fees, d("0.1"));
        assert_eq!(o.fill_ids, vec![2, 3]);
        // Filled: nothing more.
        assert!(b.on_trade(&trade(4, "90", "5", T0 + 3)).is_empty());
    }

    #[test]
    fn limit_sell_fills_at_or_above_its_price() {
        let mut b = broker();
        b.submit(intent("s1", Side::Sell, "2", Some("0.00001235")), T0)
            .unwrap();
        assert!(b.on_trade(&trade(1, "0.00001234", "10", T0)).is_empty());
        let fills = b.on_trade(&trade(2, "0.00001236", "10", T0));
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].price, d("0.00001235"));
        assert_eq!(fills[0].qty, d("2"));
        assert_eq!(fills[0].fee, d("0.0000000247"));
        assert_eq!(b.status("s1"), Some(OrderStatus::Filled));
    }

    #[test]
    fn partial_fills_over_several_trades() {
        let mut b = broker();
        b.submit(intent("b1", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        let mut total = Decimal::ZERO;
        for (i, q) in ["0.3", "0.3", "0.3"].into_iter().enumerate() {
            let fills = b.on_trade(&trade(10 + i as u64, "100", q, T0));
            total += fills[0].qty;
            assert_eq!(b.status("b1"), Some(OrderStatus::PartiallyFilled));
        }
        assert_eq!(total, d("0.9"));
        assert_eq!(b.open_orders()[0].remaining(), d("0.1"));
        assert_eq!(b.working()[0].remaining, d("0.1"));
        let fills = b.on_trade(&trade(13, "100", "0.3", T0));
        assert_eq!(fills[0].qty, d("0.1"));
        assert_eq!(b.status("b1"), Some(OrderStatus::Filled));
        // The same trade shown twice fills once.
        let mut b = broker();
        b.submit(intent("b2", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        assert_eq!(b.on_trade(&trade(20, "100", "0.5", T0)).len(), 1);
        assert!(b.on_trade(&trade(20, "100", "0.5", T0)).is_empty());
        assert_eq!(b.order("b2").unwrap().filled_qty, d("0.5"));
    }

    #[test]
    fn market_orders_fill_with_slippage_and_fees() {
        let mut b = broker();
        b.submit(intent("m1", Side::Buy, "0.5", None), T0).unwrap();
        b.submit(intent("m2", Side::Sell, "0.2", None), T0).unwrap();
        let fills = b.on_trade(&trade(7, "50000", "0.3", T0 + 10));
        assert_eq!(fills.len(), 2);
        // Buy up: 50000 × 1.0005 = 50025; fee 0.001 × 50025 × 0.3.
        assert_eq!(fills[0].intent_id, "m1");
        assert_eq!(fills[0].price, d("50025"));
        assert_eq!(fills[0].qty, d("0.3"));
        assert_eq!(fills[0].fee, d("15.0075"));
        // Sell down: 50000 × 0.9995 = 49975.
        assert_eq!(fills[1].intent_id, "m2");
        assert_eq!(fills[1].price, d("49975"));
        assert_eq!(fills[1].qty, d("0.2"));
        assert_eq!(fills[1].fee, d("9.995"));
        assert_eq!(b.status("m1"), Some(OrderStatus::PartiallyFilled));
        assert_eq!(b.status("m2"), Some(OrderStatus::Filled));
        // The rest at the next trade, whatever its price.
        let fills = b.on_trade(&trade(8, "51000", "1", T0 + 20));
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].price, d("51025.5"));
        assert_eq!(fills[0].qty, d("0.2"));
        assert_eq!(b.status("m1"), Some(OrderStatus::Filled));
        // Custom costs: zero fee, zero slippage.
        let mut b = PaperBroker::new(PaperConfig {
            fee_rate: Decimal::ZERO,
            slippage: Decimal::ZERO,
        });
        b.submit(intent("m3", Side::Buy, "1", None), T0).unwrap();
        let fills = b.on_trade(&trade(9, "0.00000001", "5", T0));
        assert_eq!(fills[0].price, d("0.00000001"));
        assert_eq!(fills[0].fee, Decimal::ZERO);
    }

    #[test]
    fn cancel_stops_fills() {
        let mut b = broker();
        b.submit(intent("b1", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        b.on_trade(&trade(1, "100", "0.25", T0));
        assert!(b.cancel("b1"));
        assert!(!b.cancel("b1"));
        assert!(!b.cancel("nope"));
        assert_eq!(b.status("b1"), Some(OrderStatus::Canceled));
        assert!(b.on_trade(&trade(2, "99", "5", T0)).is_empty());
        assert_eq!(b.order("b1").unwrap().filled_qty, d("0.25"));

        // cancel_all by symbol, then everything.
        let mut b = broker();
        b.submit(intent("x1", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        let mut eth = intent("e1", Side::Buy, "1", Some("100"));
        eth.symbol = sym("ETHUSDT");
        b.submit(eth, T0).unwrap();
        b.submit(intent("x2", Side::Sell, "1", Some("200")), T0)
            .unwrap();
        assert_eq!(b.cancel_all(Some(&sym("BTCUSDT"))), vec!["x1", "x2"]);
        assert_eq!(b.open_orders().len(), 1);
        assert_eq!(b.open_orders()[0].intent.id, "e1");
        assert_eq!(b.cancel_all(None), vec!["e1"]);
        assert!(b.open_orders().is_empty());
        assert!(b.cancel_all(None).is_empty());
        assert!(b.on_trade(&trade(3, "100", "5", T0)).is_empty());
    }

    #[test]
    fn no_fill_from_other_symbols_venues_or_before_submission() {
        let mut b = broker();
        b.submit(intent("b1", Side::Buy, "1", Some("100")), T0)
            .unwrap();
        b.submit(intent("m1", Side::Buy, "1", None), T0).unwrap();
        let mut other = trade(1, "90", "5", T0);
        other.symbol = sym("ETHUSDT");
        assert!(b.on_trade(&other).is_empty());
        let mut futures = trade(2, "90", "5", T0);
        futures.venue = Venue::BinanceUsdm;
        assert!(b.on_trade(&futures).is_empty());
        // A trade before the submission time (a backtest replaying the tape) never fills.
        assert!(b.on_trade(&trade(3, "90", "5", T0 - 1)).is_empty());
        assert_eq!(b.status("b1"), Some(OrderStatus::New));
        assert_eq!(b.status("m1"), Some(OrderStatus::New));
        // At the submission time it does.
        assert_eq!(b.on_trade(&trade(4, "90", "5", T0)).len(), 2);
    }

    #[test]
    fn liquidity_is_shared_by_priority() {
        let mut b = broker();
        b.submit(intent("low", Side::Buy, "1", Some("99")), T0)
            .unwrap();
        b.submit(intent("high", Side::Buy, "1", Some("101")), T0)
            .unwrap();
        b.submit(intent("mkt", Side::Buy, "1", None), T0).unwrap();
        let fills = b.on_trade(&trade(1, "98", "1.5", T0));
        let got: Vec<(&str, Decimal)> = fills
            .iter()
            .map(|f| (f.intent_id.as_str(), f.qty))
            .collect();
        assert_eq!(got, vec![("mkt", d("1")), ("high", d("0.5"))]);
        assert_eq!(b.status("low"), Some(OrderStatus::New));
    }

    #[test]
    fn submissions_are_validated_and_idempotent() {
        let mut b = broker();
        let i = intent("b1", Side::Buy, "1", Some("100"));
        assert_eq!(
            b.submit(i.clone(), T0).unwrap(),
            Submitted {
                status: OrderStatus::New,
                duplicate: false
            }
        );
        assert!(b.submit(i.clone(), T0 + 5).unwrap().duplicate);
        assert_eq!(b.open_orders().len(), 1);
        let mut changed = i.clone();
        changed.qty = d("2");
        assert!(matches!(
            b.submit(changed, T0),
            Err(PaperError::IdConflict { .. })
        ));
        assert!(matches!(
            b.submit(intent("z", Side::Buy, "0", None), T0),
            Err(PaperError::InvalidQty { .. })
        ));
        assert!(matches!(
            b.submit(intent("p", Side::Buy, "1", Some("0")), T0),
            Err(PaperError::InvalidPrice { .. })
        ));
        assert_eq!(b.orders().len(), 1);
        assert_eq!(b.working()[0].kind, OrderKind::Limit { price: d("100") });
    }

    #[test]
    fn deterministic_and_consistent_with_the_portfolio() {
        let run = || {
            let mut b = broker();
            let mut p = Portfolio::new();
            b.submit(intent("b1", Side::Buy, "1.5", Some("100")), T0)
                .unwrap();
            b.submit(intent("m1", Side::Buy, "0.7", None), T0).unwrap();
            let mut fills = Vec::new();
            let tape = [
                ("101", "0.5"),
                ("100", "0.4"),
                ("99.5", "2"),
                ("100.2", "1"),
            ];
            for (i, (price, qty)) in tape.into_iter().enumerate() {
                fills.extend(b.on_trade(&trade(i as u64 + 1, price, qty, T0 + i as i64)));
            }
            b.submit(intent("s1", Side::Sell, "2.2", Some("102")), T0 + 10)
                .unwrap();
            fills.extend(b.on_trade(&trade(9, "102.5", "3", T0 + 10)));
            for f in &fills {
                p.apply(f).unwrap();
            }
            (fills, p)
        };
        let (fills, p) = run();
        assert_eq!(run(), (fills.clone(), p.clone()));
        // Everything bought was sold.
        let pos = p.position(&sym("BTCUSDT")).unwrap();
        assert!(pos.is_flat(), "{pos:?}");
        let fees: Decimal = fills.iter().map(|f| f.fee).sum();
        assert_eq!(pos.fees_paid, fees);
        // Replaying the fills (with duplicates) gives the same portfolio.
        let mut again = Portfolio::new();
        for f in fills.iter().chain(&fills) {
            again.apply(f).unwrap();
        }
        assert_eq!(again, p);
    }

    #[test]
    fn config_serde_and_status_names() {
        let c: PaperConfig = serde_json::from_str(r#"{"fee_rate": "0.00075"}"#).unwrap();
        assert_eq!(c.fee_rate, d("0.00075"));
        assert_eq!(c.slippage, d("0.0005"));
        assert!(serde_json::from_str::<PaperConfig>(r#"{"fees": 1}"#).is_err());
        for s in [
            OrderStatus::New,
            OrderStatus::PartiallyFilled,
            OrderStatus::Filled,
            OrderStatus::Canceled,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
