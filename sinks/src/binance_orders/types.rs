//! What the order client returns: order outcomes, fills with their commissions, symbol rules;
//! and the decoding of Binance's JSON into them.

use std::fmt;
use std::str::FromStr;

use cryptoflow_operators::model::{Millis, Side, Symbol};
use cryptoflow_operators::trading::risk::SymbolFilters;
use cryptoflow_operators::trading::Fill;
use rust_decimal::Decimal;
use serde_json::Value;

use super::error::OrderError;

/// An order's status (Binance `status` / `X`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted by the engine.
    New,
    /// Accepted, not yet in the book (order lists).
    PendingNew,
    /// Partly filled, the rest in the book.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled by the user.
    Canceled,
    /// Being cancelled (unused by Binance spot today).
    PendingCancel,
    /// Rejected by the engine (rare: most rejections are errors of the request).
    Rejected,
    /// Expired by the order's rules (a market order without enough liquidity, FOK/IOC).
    Expired,
    /// Expired by self-trade prevention.
    ExpiredInMatch,
    /// A status this client does not know, verbatim.
    Other(String),
}

impl OrderStatus {
    /// From Binance's text.
    pub fn parse(s: &str) -> OrderStatus {
        match s {
            "NEW" => OrderStatus::New,
            "PENDING_NEW" => OrderStatus::PendingNew,
            "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            "FILLED" => OrderStatus::Filled,
            "CANCELED" => OrderStatus::Canceled,
            "PENDING_CANCEL" => OrderStatus::PendingCancel,
            "REJECTED" => OrderStatus::Rejected,
            "EXPIRED" => OrderStatus::Expired,
            "EXPIRED_IN_MATCH" => OrderStatus::ExpiredInMatch,
            other => OrderStatus::Other(other.to_string()),
        }
    }

    /// Binance's text.
    pub fn as_str(&self) -> &str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::PendingNew => "PENDING_NEW",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::PendingCancel => "PENDING_CANCEL",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::ExpiredInMatch => "EXPIRED_IN_MATCH",
            OrderStatus::Other(s) => s,
        }
    }

    /// True when the order can still trade (`NEW`, `PENDING_NEW`, `PARTIALLY_FILLED`,
    /// `PENDING_CANCEL`).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            OrderStatus::New
                | OrderStatus::PendingNew
                | OrderStatus::PartiallyFilled
                | OrderStatus::PendingCancel
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The commission Binance charged for one fill, as charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commission {
    /// The fill (trade id) it belongs to: [`Fill::fill_id`].
    pub fill_id: u64,
    /// Amount, in `asset`.
    pub amount: Decimal,
    /// The asset it was charged in (`commissionAsset` / `N`): the quote asset, the base asset
    /// (a buy pays in what it receives) or BNB (the fee discount). Empty when Binance gave none.
    pub asset: String,
}

/// Where an [`OrderOutcome`] was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeSource {
    /// The answer to the order's own request (`newOrderRespType=FULL`, or a cancel).
    Response,
    /// A query of the order by client id after an unknown outcome, a duplicate or a restart
    /// (`GET /api/v3/order`, fills from `GET /api/v3/myTrades`).
    Query,
}

/// What Binance holds for one order.
///
/// # Fees
///
/// Each fill's commission is kept as charged in [`commissions`](Self::commissions) (same order
/// and `fill_id` as [`fills`](Self::fills)). [`Fill::fee`] is in the quote asset, so it is the
/// commission only when `commissionAsset` is the symbol's quote asset; a commission in the
/// base asset (a buy pays in what it receives) or in BNB is **not** converted: the fill
/// carries `fee = 0` and the executor values the raw commission itself (for the base asset,
/// `amount × price`; the position received is then `qty − amount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderOutcome {
    /// Binance's `orderId`.
    pub exchange_order_id: u64,
    /// The client order id (the intent's id).
    pub client_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Status.
    pub status: OrderStatus,
    /// Ordered quantity (`origQty`).
    pub orig_qty: Decimal,
    /// Executed quantity so far (`executedQty`).
    pub executed_qty: Decimal,
    /// Quote quantity executed so far (`cummulativeQuoteQty`, Binance's spelling).
    pub cummulative_quote_qty: Decimal,
    /// The fills known (all of them when [`fills_complete`](Self::fills_complete)).
    pub fills: Vec<Fill>,
    /// The commission of each fill, as charged.
    pub commissions: Vec<Commission>,
    /// `transactTime` (or `updateTime` of a queried order), ms.
    pub transact_time: Millis,
    /// Where this was learnt.
    pub source: OutcomeSource,
}

impl OrderOutcome {
    /// True when the fills add up to the executed quantity (a recovered outcome whose trades
    /// could not be read has none; they still arrive on the user data stream).
    pub fn fills_complete(&self) -> bool {
        self.fills.iter().map(|f| f.qty).sum::<Decimal>() == self.executed_qty
    }
}

/// What `exchangeInfo` says about one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolInfo {
    /// Symbol.
    pub symbol: Symbol,
    /// `status` (`TRADING`, `BREAK`, `HALT`, …).
    pub status: String,
    /// `baseAsset`.
    pub base_asset: String,
    /// `quoteAsset`.
    pub quote_asset: String,
    /// The trading rules.
    pub filters: SymbolFilters,
}

impl SymbolInfo {
    /// True when orders are accepted (`status == "TRADING"`).
    pub fn is_trading(&self) -> bool {
        self.status == "TRADING"
    }

    /// Reads one element of `exchangeInfo`'s `symbols`.
    pub fn from_json(v: &Value) -> Result<Self, OrderError> {
        let symbol = symbol_field(v, "symbol")?;
        let filters =
            SymbolFilters::from_exchange_info(v).map_err(|e| OrderError::Decode(e.to_string()))?;
        Ok(SymbolInfo {
            symbol,
            status: str_field(v, "status")?.to_string(),
            base_asset: str_field(v, "baseAsset")?.to_string(),
            quote_asset: str_field(v, "quoteAsset")?.to_string(),
            filters,
        })
    }
}

/// The decoded `exchangeInfo` of the symbols asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeInfo {
    /// The symbols that are `TRADING`.
    pub symbols: std::collections::BTreeMap<Symbol, SymbolInfo>,
    /// The symbols refused because their status is not `TRADING` (orders on them are refused
    /// before sending).
    pub refused: std::collections::BTreeMap<Symbol, SymbolInfo>,
}

pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, OrderError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| OrderError::Decode(format!("no string field {name} in {}", short(v))))
}

pub(crate) fn u64_field(v: &Value, name: &str) -> Result<u64, OrderError> {
    v.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| OrderError::Decode(format!("no id field {name} in {}", short(v))))
}

pub(crate) fn i64_field(v: &Value, name: &str) -> Result<i64, OrderError> {
    v.get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| OrderError::Decode(format!("no integer field {name} in {}", short(v))))
}

/// A decimal written as a string (or a number) by Binance, normalized.
pub(crate) fn dec_field(v: &Value, name: &str) -> Result<Decimal, OrderError> {
    let parsed = match v.get(name) {
        Some(Value::String(s)) => Decimal::from_str(s.trim())
            .or_else(|_| Decimal::from_scientific(s.trim()))
            .ok(),
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    };
    parsed
        .map(|d| d.normalize())
        .ok_or_else(|| OrderError::Decode(format!("no decimal field {name} in {}", short(v))))
}

pub(crate) fn symbol_field(v: &Value, name: &str) -> Result<Symbol, OrderError> {
    let s = str_field(v, name)?;
    Symbol::new(s).map_err(|e| OrderError::Decode(e.to_string()))
}

pub(crate) fn side_field(v: &Value, name: &str) -> Result<Side, OrderError> {
    match str_field(v, name)? {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        other => Err(OrderError::Decode(format!("unknown side {other:?}"))),
    }
}

/// At most 300 characters of a JSON value, for error messages.
pub(crate) fn short(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

/// The fee in the quote asset of a commission: the commission itself when charged in
/// `quote_asset`, else zero (see [`OrderOutcome`]).
pub(crate) fn quote_fee(amount: Decimal, asset: &str, quote_asset: Option<&str>) -> Decimal {
    match quote_asset {
        Some(q) if !asset.is_empty() && q == asset => amount,
        _ => Decimal::ZERO,
    }
}

/// Decodes an order object: the FULL answer of `POST /api/v3/order`, `GET /api/v3/order`, an
/// element of `openOrders`, or a cancel answer (whose `origClientOrderId` is the order's).
/// `quote_asset` decides the fills' [`Fill::fee`].
pub(crate) fn decode_order(
    v: &Value,
    quote_asset: Option<&str>,
    source: OutcomeSource,
) -> Result<OrderOutcome, OrderError> {
    let symbol = symbol_field(v, "symbol")?;
    let side = side_field(v, "side")?;
    let client_order_id = match v.get("origClientOrderId").and_then(Value::as_str) {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => str_field(v, "clientOrderId")?.to_string(),
    };
    let transact_time = ["transactTime", "updateTime", "time"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_i64))
        .unwrap_or(0);
    let mut out = OrderOutcome {
        exchange_order_id: u64_field(v, "orderId")?,
        client_order_id,
        symbol,
        side,
        status: OrderStatus::parse(str_field(v, "status")?),
        orig_qty: dec_field(v, "origQty")?,
        executed_qty: dec_field(v, "executedQty")?,
        // Negative for some very old orders (Binance's note): kept as given.
        cummulative_quote_qty: dec_field(v, "cummulativeQuoteQty")?,
        fills: Vec::new(),
        commissions: Vec::new(),
        transact_time,
        source,
    };
    if let Some(fills) = v.get("fills").and_then(Value::as_array) {
        for f in fills {
            let fill_id = u64_field(f, "tradeId")?;
            let amount = dec_field(f, "commission")?;
            let asset = f
                .get("commissionAsset")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            out.fills.push(Fill {
                intent_id: out.client_order_id.clone(),
                symbol,
                side,
                qty: dec_field(f, "qty")?,
                price: dec_field(f, "price")?,
                fee: quote_fee(amount, &asset, quote_asset),
                ts: transact_time,
                fill_id,
            });
            out.commissions.push(Commission {
                fill_id,
                amount,
                asset,
            });
        }
    }
    Ok(out)
}

/// Adds the trades of `GET /api/v3/myTrades` (of this order only) to a queried outcome.
pub(crate) fn add_my_trades(
    out: &mut OrderOutcome,
    trades: &Value,
    quote_asset: Option<&str>,
) -> Result<(), OrderError> {
    let trades = trades.as_array().ok_or_else(|| {
        OrderError::Decode(format!("myTrades is not an array: {}", short(trades)))
    })?;
    for t in trades {
        if t.get("orderId").and_then(Value::as_u64) != Some(out.exchange_order_id) {
            continue;
        }
        let fill_id = u64_field(t, "id")?;
        if out.fills.iter().any(|f| f.fill_id == fill_id) {
            continue;
        }
        let amount = dec_field(t, "commission")?;
        let asset = t
            .get("commissionAsset")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        out.fills.push(Fill {
            intent_id: out.client_order_id.clone(),
            symbol: out.symbol,
            side: out.side,
            qty: dec_field(t, "qty")?,
            price: dec_field(t, "price")?,
            fee: quote_fee(amount, &asset, quote_asset),
            ts: i64_field(t, "time").unwrap_or(out.transact_time),
            fill_id,
        });
        out.commissions.push(Commission {
            fill_id,
            amount,
            asset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decodes_binance_full_response() {
        // The FULL response example of Binance's docs (SELL, commission in USDT), plus a fill
        // whose commission is in BNB.
        let v: Value = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",
            "transactTime":1507725176595,"price":"0.00000000","origQty":"10.00000000",
            "executedQty":"10.00000000","origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"10.00000000",
            "status":"FILLED","timeInForce":"GTC","type":"MARKET","side":"SELL","workingTime":1507725176595,
            "selfTradePreventionMode":"NONE","fills":[
              {"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56},
              {"price":"3999.00000000","qty":"5.00000000","commission":"0.00190000","commissionAsset":"BNB","tradeId":57}]}"#,
        )
        .unwrap();
        let o = decode_order(&v, Some("USDT"), OutcomeSource::Response).unwrap();
        assert_eq!(o.exchange_order_id, 28);
        assert_eq!(o.client_order_id, "6gCrw2kRUAF9CvJDGP16IP");
        assert_eq!(o.status, OrderStatus::Filled);
        assert_eq!(o.side, Side::Sell);
        assert_eq!(o.executed_qty, d("10"));
        assert_eq!(o.fills.len(), 2);
        assert_eq!(o.fills[0].fee, d("4"));
        assert_eq!(o.fills[0].price, d("4000"));
        assert_eq!(o.fills[0].fill_id, 56);
        assert_eq!(o.fills[0].ts, 1507725176595);
        assert_eq!(o.fills[1].fee, Decimal::ZERO);
        assert_eq!(o.commissions[1].amount, d("0.0019"));
        assert_eq!(o.commissions[1].asset, "BNB");
        assert!(!o.fills_complete());
    }

    #[test]
    fn a_cancel_answer_names_the_original_client_id() {
        let v: Value = serde_json::from_str(
            r#"{"symbol":"LTCBTC","origClientOrderId":"myOrder1","orderId":4,"orderListId":-1,
            "clientOrderId":"cancelMyOrder1","transactTime":1684804350068,"price":"2.00000000",
            "origQty":"1.00000000","executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000",
            "status":"CANCELED","timeInForce":"GTC","type":"LIMIT","side":"BUY"}"#,
        )
        .unwrap();
        let o = decode_order(&v, None, OutcomeSource::Response).unwrap();
        assert_eq!(o.client_order_id, "myOrder1");
        assert_eq!(o.status, OrderStatus::Canceled);
        assert!(o.fills_complete());
    }

    #[test]
    fn unknown_status_is_kept() {
        assert_eq!(
            OrderStatus::parse("SOMETHING_NEW"),
            OrderStatus::Other("SOMETHING_NEW".into())
        );
        assert!(OrderStatus::parse("PARTIALLY_FILLED").is_open());
        assert!(!OrderStatus::parse("EXPIRED_IN_MATCH").is_open());
    }
}
