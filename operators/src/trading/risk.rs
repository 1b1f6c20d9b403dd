//! The risk gate: a pure function of an [`Intent`] and the state it is checked against.
//!
//! [`check`] either approves an intent — returning it normalized to the exchange's filters — or
//! rejects it naming the [`Rule`] that failed. It reads everything from a [`RiskContext`] and
//! reads no clock, so the executor, the backtest and the tests all get the same answer for the
//! same inputs.
//!
//! # Order of the checks
//!
//! The first failing rule is reported:
//!
//! 1. **Switches**: [`Rule::KillSwitch`], then [`Rule::Paused`]. Both block every order, sells
//!    included.
//! 2. **The intent itself**: [`Rule::InvalidQty`] (quantity ≤ 0), [`Rule::InvalidPrice`] (limit
//!    price ≤ 0).
//! 3. **Data health** of the intent's symbol: [`Rule::DataGap`] (an open gap in its trades),
//!    [`Rule::NoPrice`] (no last trade), [`Rule::StaleFeed`] (last trade older than
//!    [`RiskLimits::max_data_age_ms`]). These block sells too: nothing is priced blind.
//! 4. **Exchange filters** ([`SymbolFilters`]): [`Rule::NoFilters`], [`Rule::PriceFilter`],
//!    [`Rule::LotSize`], then — after rounding — [`Rule::MinNotional`] and
//!    [`Rule::MaxNotional`]; then [`Rule::PriceBand`] on the rounded limit price.
//! 5. **Limits**: [`Rule::OrdersPerMinute`] and [`Rule::SellExceedsPosition`] (sells),
//!    [`Rule::DailyLoss`] (buys), [`Rule::MaxOrderNotional`], then [`Rule::MaxPosition`] and
//!    [`Rule::MaxExposure`] (buys).
//!
//! [`Rule::Overflow`] can come from any step that multiplies or adds money.
//!
//! # Risk-reducing sells
//!
//! Spot is long only, and a sell must fit in the position not already offered by open sells
//! ([`Rule::SellExceedsPosition`]), so every sell that passes reduces the position. Sells
//! therefore skip [`Rule::MaxPosition`], [`Rule::MaxExposure`] and the daily loss halt
//! ([`Rule::DailyLoss`]): a book over its limits, or a day past its loss limit, can still be
//! unwound. Sells are still stopped by the kill switch and the pause, by bad data, by the
//! exchange's filters, by the price band, by the order rate and by the per-order notional cap (a
//! large position is unwound in several orders).
//!
//! # Valuation
//!
//! - The reference price of a symbol is its last trade ([`RiskContext::last_trade`]).
//! - A limit order is valued at its (rounded) limit price, a market order at the reference.
//! - The price band applies to limit orders: `|price − reference| ≤ price_band × reference`
//!   (a market order's valuation *is* the reference).
//! - Positions are valued at their symbol's reference price (at their average price when none
//!   is known, see [`Portfolio::exposure`]). Open buy orders ([`RiskContext::open_orders`])
//!   count towards the position and the exposure at their limit price, or the reference price
//!   for market orders.
//! - The day's PnL is [`Portfolio::pnl_today`] at the reference prices; buying halts when it is
//!   `≤ −daily_loss_limit`.
//!
//! # Rounding
//!
//! Quantities are rounded **down** to the lot grid `min_qty + k × step_size` (never more than
//! asked). Limit prices are rounded onto the grid `min_price + k × tick_size` **down for buys
//! and up for sells**, so the order never trades at a worse price than asked. A market order's
//! quantity is rounded to `LOT_SIZE` and then to `MARKET_LOT_SIZE` when present. The minimum
//! quantity, maximum price and notional filters are checked on the rounded values. Rounding is
//! exact decimal arithmetic on the grid (no fixed number of decimals), so it is exact from
//! `0.00000001` to `1000000`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::portfolio::Portfolio;
use super::{Intent, OrderKind};
use crate::model::{Millis, Side, Symbol, Trade};

/// The configured limits of the gate. Money is in the quote asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest notional of one order (sells included).
    pub max_order_notional: Decimal,
    /// Largest notional of one symbol's position, open buy orders and the new buy included.
    pub max_position_notional: Decimal,
    /// Largest gross exposure over every symbol, open buy orders and the new buy included.
    pub max_total_exposure: Decimal,
    /// Daily loss limit, a positive amount: buying halts when today's PnL `≤ −daily_loss_limit`.
    pub daily_loss_limit: Decimal,
    /// Most orders approved in the last 60 seconds (the new one excluded).
    pub max_orders_per_minute: u32,
    /// Largest distance of a limit price from the last trade, as a fraction (`0.05` = ±5 %).
    pub price_band: Decimal,
    /// Oldest last trade the gate trusts, ms: older means the feed is stale.
    pub max_data_age_ms: Millis,
}

impl Default for RiskLimits {
    /// Conservative paper-trading limits: 1 000 per order, 5 000 per symbol, 20 000 in all,
    /// 500 of daily loss, 10 orders a minute, a ±5 % band and 30 s of data age.
    fn default() -> Self {
        RiskLimits {
            max_order_notional: Decimal::from(1_000),
            max_position_notional: Decimal::from(5_000),
            max_total_exposure: Decimal::from(20_000),
            daily_loss_limit: Decimal::from(500),
            max_orders_per_minute: 10,
            price_band: Decimal::new(5, 2),
            max_data_age_ms: 30_000,
        }
    }
}

/// A quantity filter: Binance `LOT_SIZE` or `MARKET_LOT_SIZE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotSize {
    /// Smallest quantity (0: no minimum).
    pub min_qty: Decimal,
    /// Largest quantity (0: no maximum).
    pub max_qty: Decimal,
    /// Quantity grid from `min_qty` (0: any quantity).
    pub step_size: Decimal,
}

/// The exchange's trading rules of one symbol (Binance spot `exchangeInfo` filters).
///
/// A zero tick, step, minimum or maximum disables that check, as on Binance. The
/// [`Default`] value restricts nothing (for backtests without exchange info).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolFilters {
    /// `PRICE_FILTER.tickSize`: price grid from `min_price`.
    pub tick_size: Decimal,
    /// `PRICE_FILTER.minPrice`.
    pub min_price: Decimal,
    /// `PRICE_FILTER.maxPrice`.
    pub max_price: Decimal,
    /// `LOT_SIZE.stepSize`: quantity grid from `min_qty`.
    pub step_size: Decimal,
    /// `LOT_SIZE.minQty`.
    pub min_qty: Decimal,
    /// `LOT_SIZE.maxQty`.
    pub max_qty: Decimal,
    /// `MARKET_LOT_SIZE`, which market orders must also satisfy, when the symbol has it.
    pub market_lot: Option<LotSize>,
    /// `NOTIONAL.minNotional` (or legacy `MIN_NOTIONAL.minNotional`); 0 when absent.
    pub min_notional: Decimal,
    /// `NOTIONAL.applyMinToMarket` (legacy `MIN_NOTIONAL.applyToMarket`).
    pub apply_min_to_market: bool,
    /// `NOTIONAL.maxNotional`, when the symbol has one.
    pub max_notional: Option<Decimal>,
    /// `NOTIONAL.applyMaxToMarket`.
    pub apply_max_to_market: bool,
}

impl Default for SymbolFilters {
    fn default() -> Self {
        SymbolFilters {
            tick_size: Decimal::ZERO,
            min_price: Decimal::ZERO,
            max_price: Decimal::ZERO,
            step_size: Decimal::ZERO,
            min_qty: Decimal::ZERO,
            max_qty: Decimal::ZERO,
            market_lot: None,
            min_notional: Decimal::ZERO,
            apply_min_to_market: true,
            max_notional: None,
            apply_max_to_market: false,
        }
    }
}

/// Why exchange info could not be read into [`SymbolFilters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad exchange info: {}", self.reason)
    }
}

impl std::error::Error for FilterError {}

fn filter_error(reason: String) -> FilterError {
    FilterError { reason }
}

/// A non-negative decimal field of a filter, as Binance writes them (`"0.01000000"`); a JSON
/// number is accepted too.
fn field_decimal(filter: &Value, kind: &str, field: &str) -> Result<Decimal, FilterError> {
    let parsed = match filter.get(field) {
        Some(Value::String(s)) => s.trim().parse::<Decimal>().ok(),
        Some(Value::Number(n)) => n.to_string().parse::<Decimal>().ok(),
        Some(_) => None,
        None => return Err(filter_error(format!("{kind} has no {field}"))),
    };
    match parsed {
        Some(v) if v >= Decimal::ZERO => Ok(v.normalize()),
        _ => Err(filter_error(format!(
            "{kind}.{field} is not a non-negative decimal: {}",
            filter.get(field).map(Value::to_string).unwrap_or_default()
        ))),
    }
}

/// A boolean field of a filter; `default` when absent.
fn field_bool(filter: &Value, kind: &str, field: &str, default: bool) -> Result<bool, FilterError> {
    match filter.get(field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(filter_error(format!(
            "{kind}.{field} is not a boolean: {other}"
        ))),
    }
}

fn lot_from(filter: &Value, kind: &str) -> Result<LotSize, FilterError> {
    Ok(LotSize {
        min_qty: field_decimal(filter, kind, "minQty")?,
        max_qty: field_decimal(filter, kind, "maxQty")?,
        step_size: field_decimal(filter, kind, "stepSize")?,
    })
}

impl SymbolFilters {
    /// Filters that restrict nothing (the same as [`Default`]).
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// Reads one element of the `symbols` array of Binance spot `GET /api/v3/exchangeInfo`.
    ///
    /// `PRICE_FILTER` and `LOT_SIZE` are required; `MARKET_LOT_SIZE`, `NOTIONAL` and the legacy
    /// `MIN_NOTIONAL` are optional (`NOTIONAL` wins when both are present); other filters are
    /// ignored. A missing `applyMinToMarket`/`applyMaxToMarket` flag is taken as `true` (the
    /// stricter reading).
    pub fn from_exchange_info(symbol: &Value) -> Result<Self, FilterError> {
        let name = symbol
            .get("symbol")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let filters = symbol
            .get("filters")
            .and_then(Value::as_array)
            .ok_or_else(|| filter_error(format!("{name}: no filters array")))?;
        let find = |kind: &str| {
            filters
                .iter()
                .find(|f| f.get("filterType").and_then(Value::as_str) == Some(kind))
        };
        let price =
            find("PRICE_FILTER").ok_or_else(|| filter_error(format!("{name}: no PRICE_FILTER")))?;
        let lot = find("LOT_SIZE").ok_or_else(|| filter_error(format!("{name}: no LOT_SIZE")))?;
        let lot = lot_from(lot, "LOT_SIZE")?;
        let market_lot = match find("MARKET_LOT_SIZE") {
            Some(f) => Some(lot_from(f, "MARKET_LOT_SIZE")?),
            None => None,
        };
        let mut out = SymbolFilters {
            tick_size: field_decimal(price, "PRICE_FILTER", "tickSize")?,
            min_price: field_decimal(price, "PRICE_FILTER", "minPrice")?,
            max_price: field_decimal(price, "PRICE_FILTER", "maxPrice")?,
            step_size: lot.step_size,
            min_qty: lot.min_qty,
            max_qty: lot.max_qty,
            market_lot,
            ..SymbolFilters::default()
        };
        if let Some(f) = find("NOTIONAL") {
            out.min_notional = field_decimal(f, "NOTIONAL", "minNotional")?;
            out.apply_min_to_market = field_bool(f, "NOTIONAL", "applyMinToMarket", true)?;
            if f.get("maxNotional").is_some() {
                let max = field_decimal(f, "NOTIONAL", "maxNotional")?;
                out.max_notional = (!max.is_zero()).then_some(max);
            }
            out.apply_max_to_market = field_bool(f, "NOTIONAL", "applyMaxToMarket", true)?;
        } else if let Some(f) = find("MIN_NOTIONAL") {
            out.min_notional = field_decimal(f, "MIN_NOTIONAL", "minNotional")?;
            out.apply_min_to_market = field_bool(f, "MIN_NOTIONAL", "applyToMarket", true)?;
        }
        Ok(out)
    }

    fn lot(&self) -> LotSize {
        LotSize {
            min_qty: self.min_qty,
            max_qty: self.max_qty,
            step_size: self.step_size,
        }
    }
}

/// Rounds `value` down onto the grid `base + k × step` (`k` a whole number); a zero step leaves
/// it unchanged. `None` when `value < base` or on overflow.
pub fn floor_to_step(value: Decimal, base: Decimal, step: Decimal) -> Option<Decimal> {
    if value < base {
        return None;
    }
    if step <= Decimal::ZERO {
        return Some(value);
    }
    let off = value.checked_sub(base)?.checked_rem(step)?;
    value.checked_sub(off).map(|v| v.normalize())
}

/// Rounds `value` up onto the grid `base + k × step`; a zero step leaves it unchanged. `None`
/// when `value < base` or on overflow.
pub fn ceil_to_step(value: Decimal, base: Decimal, step: Decimal) -> Option<Decimal> {
    let down = floor_to_step(value, base, step)?;
    if down == value {
        Some(down)
    } else {
        down.checked_add(step).map(|v| v.normalize())
    }
}

/// The last trade of a symbol: the gate's reference price and the feed's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTrade {
    /// Price.
    pub price: Decimal,
    /// Exchange time, ms.
    pub ts: Millis,
}

impl From<&Trade> for LastTrade {
    fn from(t: &Trade) -> Self {
        LastTrade {
            price: t.price,
            ts: t.ts_exchange,
        }
    }
}

/// The unfilled remainder of an order already working at the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    /// Symbol.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Market or limit.
    pub kind: OrderKind,
    /// Quantity not yet filled, base asset.
    pub remaining: Decimal,
}

/// Everything the gate reads. The caller owns the state; the gate only borrows it. It describes
/// one venue (the portfolio's).
#[derive(Debug, Clone, Copy)]
pub struct RiskContext<'a> {
    /// The limits.
    pub limits: &'a RiskLimits,
    /// Positions and the day's realised PnL.
    pub portfolio: &'a Portfolio,
    /// Last trade per symbol: reference prices and feed freshness.
    pub last_trade: &'a BTreeMap<Symbol, LastTrade>,
    /// Exchange filters per symbol; a symbol without filters cannot be traded (use
    /// [`SymbolFilters::unrestricted`] to trade without rules).
    pub filters: &'a BTreeMap<Symbol, SymbolFilters>,
    /// Symbols with an open gap in their trade feed.
    pub gaps: &'a BTreeSet<Symbol>,
    /// Orders working at the broker (their unfilled remainders).
    pub open_orders: &'a [OpenOrder],
    /// When recent orders were approved, ms (older than a minute are ignored).
    pub recent_orders: &'a [Millis],
    /// Trading paused by the operator: no new orders.
    pub paused: bool,
    /// Kill switch engaged: no new orders.
    pub killed: bool,
    /// The time of the check, ms.
    pub now: Millis,
}

/// A named rule of the gate. The snake_case name ([`Rule::as_str`]) is stored in the journal
/// and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The kill switch is engaged.
    KillSwitch,
    /// Trading is paused.
    Paused,
    /// The quantity is zero or negative.
    InvalidQty,
    /// The limit price is zero or negative.
    InvalidPrice,
    /// The symbol's trade feed has an open gap.
    DataGap,
    /// No last trade price for the symbol (or for an open market buy being valued).
    NoPrice,
    /// The last trade is older than `max_data_age_ms`.
    StaleFeed,
    /// No exchange filters for the symbol.
    NoFilters,
    /// The price is outside `PRICE_FILTER` (below the minimum, above the maximum).
    PriceFilter,
    /// The quantity is outside `LOT_SIZE` / `MARKET_LOT_SIZE`.
    LotSize,
    /// The notional is below the exchange minimum.
    MinNotional,
    /// The notional is above the exchange maximum.
    MaxNotional,
    /// The limit price is too far from the last trade.
    PriceBand,
    /// Too many orders in the last minute.
    OrdersPerMinute,
    /// A sell of more than the position (minus open sells).
    SellExceedsPosition,
    /// The day's loss limit is reached: buys halted.
    DailyLoss,
    /// The order's notional is above `max_order_notional`.
    MaxOrderNotional,
    /// The symbol's position would exceed `max_position_notional`.
    MaxPosition,
    /// The total exposure would exceed `max_total_exposure`.
    MaxExposure,
    /// The amounts overflow decimal arithmetic.
    Overflow,
}

impl Rule {
    /// Every rule, in the order the gate checks them.
    pub const ALL: [Rule; 20] = [
        Rule::KillSwitch,
        Rule::Paused,
        Rule::InvalidQty,
        Rule::InvalidPrice,
        Rule::DataGap,
        Rule::NoPrice,
        Rule::StaleFeed,
        Rule::NoFilters,
        Rule::PriceFilter,
        Rule::LotSize,
        Rule::MinNotional,
        Rule::MaxNotional,
        Rule::PriceBand,
        Rule::OrdersPerMinute,
        Rule::SellExceedsPosition,
        Rule::DailyLoss,
        Rule::MaxOrderNotional,
        Rule::MaxPosition,
        Rule::MaxExposure,
        Rule::Overflow,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::KillSwitch => "kill_switch",
            Rule::Paused => "paused",
            Rule::InvalidQty => "invalid_qty",
            Rule::InvalidPrice => "invalid_price",
            Rule::DataGap => "data_gap",
            Rule::NoPrice => "no_price",
            Rule::StaleFeed => "stale_feed",
            Rule::NoFilters => "no_filters",
            Rule::PriceFilter => "price_filter",
            Rule::LotSize => "lot_size",
            Rule::MinNotional => "min_notional",
            Rule::MaxNotional => "max_notional",
            Rule::PriceBand => "price_band",
            Rule::OrdersPerMinute => "orders_per_minute",
            Rule::SellExceedsPosition => "sell_exceeds_position",
            Rule::DailyLoss => "daily_loss",
            Rule::MaxOrderNotional => "max_order_notional",
            Rule::MaxPosition => "max_position",
            Rule::MaxExposure => "max_exposure",
            Rule::Overflow => "overflow",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the gate refused an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The rule that failed.
    pub rule: Rule,
    /// A human-readable explanation with the numbers involved.
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.reason)
    }
}

impl std::error::Error for Rejection {}

fn reject<T>(rule: Rule, reason: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        rule,
        reason: reason.into(),
    })
}

fn overflowed(what: &str) -> Rejection {
    Rejection {
        rule: Rule::Overflow,
        reason: format!("decimal overflow computing {what}"),
    }
}

/// An approved intent, normalized to the exchange's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approved {
    /// The intent to place: the quantity rounded down to the lot grid and a limit price rounded
    /// to the tick (down for buys, up for sells). Id, venue, symbol, side and time unchanged.
    pub intent: Intent,
    /// The notional the gate valued the order at: quantity × limit price, or × the reference
    /// price for market orders.
    pub notional: Decimal,
    /// The reference price (the symbol's last trade) the order was checked against.
    pub reference_price: Decimal,
}

impl Approved {
    /// The normalized quantity.
    pub fn qty(&self) -> Decimal {
        self.intent.qty
    }

    /// The normalized limit price (`None` for market orders).
    pub fn price(&self) -> Option<Decimal> {
        match self.intent.kind {
            OrderKind::Limit { price } => Some(price),
            OrderKind::Market => None,
        }
    }
}

/// Checks a quantity against one lot filter.
fn check_lot(qty: Decimal, lot: &LotSize, name: &str) -> Result<(), Rejection> {
    if qty <= Decimal::ZERO {
        return reject(
            Rule::LotSize,
            format!(
                "quantity rounds to {qty} on the {name} step {}",
                lot.step_size
            ),
        );
    }
    if qty < lot.min_qty {
        return reject(
            Rule::LotSize,
            format!("quantity {qty} is below the {name} minimum {}", lot.min_qty),
        );
    }
    if !lot.max_qty.is_zero() && qty > lot.max_qty {
        return reject(
            Rule::LotSize,
            format!("quantity {qty} is above the {name} maximum {}", lot.max_qty),
        );
    }
    if floor_to_step(qty, lot.min_qty, lot.step_size) != Some(qty) {
        return reject(
            Rule::LotSize,
            format!(
                "quantity {qty} is not on the {name} grid {} + k × {}",
                lot.min_qty, lot.step_size
            ),
        );
    }
    Ok(())
}

/// Rounds a quantity down onto a lot grid (unchanged when below the minimum: the check
/// reports it).
fn round_lot(qty: Decimal, lot: &LotSize) -> Decimal {
    floor_to_step(qty, lot.min_qty, lot.step_size).unwrap_or(qty)
}

/// Checks an intent against the state in `ctx`; see the [module docs](self) for the rules,
/// their order and the rounding.
pub fn check(intent: &Intent, ctx: &RiskContext<'_>) -> Result<Approved, Rejection> {
    let limits = ctx.limits;
    let symbol = &intent.symbol;
    let side = intent.side;

    // 1. Switches.
    if ctx.killed {
        return reject(Rule::KillSwitch, "the kill switch is engaged");
    }
    if ctx.paused {
        return reject(Rule::Paused, "trading is paused");
    }

    // 2. The intent itself.
    if intent.qty <= Decimal::ZERO {
        return reject(
            Rule::InvalidQty,
            format!("quantity {} is not positive", intent.qty),
        );
    }
    let limit_price = match intent.kind {
        OrderKind::Limit { price } if price <= Decimal::ZERO => {
            return reject(
                Rule::InvalidPrice,
                format!("limit price {price} is not positive"),
            );
        }
        OrderKind::Limit { price } => Some(price),
        OrderKind::Market => None,
    };

    // 3. Data health.
    if ctx.gaps.contains(symbol) {
        return reject(
            Rule::DataGap,
            format!("the trade feed of {symbol} has an open gap"),
        );
    }
    let last = match ctx.last_trade.get(symbol) {
        Some(t) if t.price > Decimal::ZERO => *t,
        _ => return reject(Rule::NoPrice, format!("no last trade price for {symbol}")),
    };
    let age = ctx.now.saturating_sub(last.ts);
    if age > limits.max_data_age_ms {
        return reject(
            Rule::StaleFeed,
            format!(
                "the last trade of {symbol} is {age} ms old (max {} ms)",
                limits.max_data_age_ms
            ),
        );
    }

    // 4. Exchange filters, with rounding.
    let Some(filters) = ctx.filters.get(symbol) else {
        return reject(Rule::NoFilters, format!("no exchange filters for {symbol}"));
    };
    let price = match limit_price {
        None => None,
        Some(p) => {
            if p < filters.min_price {
                return reject(
                    Rule::PriceFilter,
                    format!("price {p} is below the minimum {}", filters.min_price),
                );
            }
            let rounded = match side {
                Side::Buy => floor_to_step(p, filters.min_price, filters.tick_size),
                Side::Sell => ceil_to_step(p, filters.min_price, filters.tick_size),
            }
            .ok_or_else(|| overflowed("the rounded price"))?;
            if !filters.max_price.is_zero() && rounded > filters.max_price {
                return reject(
                    Rule::PriceFilter,
                    format!("price {rounded} is above the maximum {}", filters.max_price),
                );
            }
            if rounded <= Decimal::ZERO {
                return reject(
                    Rule::PriceFilter,
                    format!(
                        "price {p} rounds to {rounded} on the tick {}",
                        filters.tick_size
                    ),
                );
            }
            Some(rounded)
        }
    };
    let lot = filters.lot();
    let mut qty = round_lot(intent.qty, &lot);
    let market_lot = if price.is_none() {
        filters.market_lot
    } else {
        None
    };
    if let Some(ml) = &market_lot {
        qty = round_lot(qty, ml);
    }
    check_lot(qty, &lot, "LOT_SIZE")?;
    if let Some(ml) = &market_lot {
        check_lot(qty, ml, "MARKET_LOT_SIZE")?;
    }
    let qty = qty.normalize();
    let is_market = price.is_none();
    let valued_at = price.unwrap_or(last.price);
    let notional = qty
        .checked_mul(valued_at)
        .ok_or_else(|| overflowed("the order notional"))?;
    if (!is_market || filters.apply_min_to_market) && notional < filters.min_notional {
        return reject(
            Rule::MinNotional,
            format!(
                "notional {notional} ({qty} × {valued_at}) is below the minimum {}",
                filters.min_notional
            ),
        );
    }
    if let Some(max) = filters.max_notional {
        if (!is_market || filters.apply_max_to_market) && notional > max {
            return reject(
                Rule::MaxNotional,
                format!("notional {notional} ({qty} × {valued_at}) is above the maximum {max}"),
            );
        }
    }
    if let Some(p) = price {
        let distance = p
            .checked_sub(last.price)
            .map(|d| d.abs())
            .ok_or_else(|| overflowed("the price band"))?;
        let allowed = limits
            .price_band
            .checked_mul(last.price)
            .ok_or_else(|| overflowed("the price band"))?;
        if distance > allowed {
            return reject(
                Rule::PriceBand,
                format!(
                    "limit price {p} is more than {} from the last trade {}",
                    limits.price_band, last.price
                ),
            );
        }
    }

    // 5. Limits.
    let window_start = ctx.now.saturating_sub(60_000);
    let recent = ctx
        .recent_orders
        .iter()
        .filter(|&&t| t > window_start && t <= ctx.now)
        .count();
    if recent >= limits.max_orders_per_minute as usize {
        return reject(
            Rule::OrdersPerMinute,
            format!(
                "{recent} orders in the last minute (max {})",
                limits.max_orders_per_minute
            ),
        );
    }
    let mark = |s: &Symbol| ctx.last_trade.get(s).map(|t| t.price);
    let held = ctx.portfolio.qty(symbol);
    if side == Side::Sell {
        let offered = ctx
            .open_orders
            .iter()
            .filter(|o| o.symbol == *symbol && o.side == Side::Sell)
            .try_fold(Decimal::ZERO, |acc, o| acc.checked_add(o.remaining))
            .ok_or_else(|| overflowed("open sells"))?;
        let available = held
            .checked_sub(offered)
            .ok_or_else(|| overflowed("the available position"))?;
        if qty > available {
            return reject(
                Rule::SellExceedsPosition,
                format!(
                    "sell of {qty} {symbol} exceeds the position {held} less open sells {offered}"
                ),
            );
        }
    } else {
        let pnl = ctx
            .portfolio
            .pnl_today(ctx.now, mark)
            .map_err(|_| overflowed("today's pnl"))?;
        if pnl <= -limits.daily_loss_limit {
            return reject(
                Rule::DailyLoss,
                format!(
                    "today's pnl {pnl} is at or below −{}: buying is halted",
                    limits.daily_loss_limit
                ),
            );
        }
    }
    if notional > limits.max_order_notional {
        return reject(
            Rule::MaxOrderNotional,
            format!(
                "notional {notional} is above the order limit {}",
                limits.max_order_notional
            ),
        );
    }
    if side == Side::Buy {
        // Value of the open buys, per symbol and in all.
        let mut open_buys_symbol = Decimal::ZERO;
        let mut open_buys_total = Decimal::ZERO;
        for o in ctx.open_orders.iter().filter(|o| o.side == Side::Buy) {
            let p = match o.kind {
                OrderKind::Limit { price } => price,
                OrderKind::Market => match mark(&o.symbol) {
                    Some(p) => p,
                    None => {
                        return reject(
                            Rule::NoPrice,
                            format!("no last trade price to value the open buy of {}", o.symbol),
                        )
                    }
                },
            };
            let v = o
                .remaining
                .checked_mul(p)
                .ok_or_else(|| overflowed("open buys"))?;
            open_buys_total = open_buys_total
                .checked_add(v)
                .ok_or_else(|| overflowed("open buys"))?;
            if o.symbol == *symbol {
                open_buys_symbol = open_buys_symbol
                    .checked_add(v)
                    .ok_or_else(|| overflowed("open buys"))?;
            }
        }
        let position = held
            .checked_mul(last.price)
            .and_then(|v| v.checked_add(open_buys_symbol))
            .and_then(|v| v.checked_add(notional))
            .ok_or_else(|| overflowed("the position notional"))?;
        if position > limits.max_position_notional {
            return reject(
                Rule::MaxPosition,
                format!(
                    "{symbol} position would be {position} (limit {})",
                    limits.max_position_notional
                ),
            );
        }
        let exposure = ctx
            .portfolio
            .exposure(mark)
            .map_err(|_| overflowed("the exposure"))?
            .checked_add(open_buys_total)
            .and_then(|v| v.checked_add(notional))
            .ok_or_else(|| overflowed("the exposure"))?;
        if exposure > limits.max_total_exposure {
            return reject(
                Rule::MaxExposure,
                format!(
                    "exposure would be {exposure} (limit {})",
                    limits.max_total_exposure
                ),
            );
        }
    }

    let mut normalized = intent.clone();
    normalized.qty = qty;
    if let Some(p) = price {
        normalized.kind = OrderKind::Limit { price: p };
    }
    Ok(Approved {
        intent: normalized,
        notional,
        reference_price: last.price,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Venue;
    use crate::trading::Fill;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    const NOW: Millis = 1_700_000_000_000; // 22:13:20 UTC

    /// BTCUSDT as `exchangeInfo` returns it (filters from Binance's documentation).
    fn btcusdt_info() -> Value {
        json!({
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": true,
            "ocoAllowed": true,
            "isSpotTradingAllowed": true,
            "isMarginTradingAllowed": true,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                 "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                 "stepSize": "0.00001000"},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
                 "maxQty": "83.17893542", "stepSize": "0.00000000"},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
                 "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
                 "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
                 "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
                 "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": true,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": false,
                 "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}
            ],
            "permissions": [],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
        })
    }

    /// A low-priced coin: eight-decimal ticks, whole-unit lots.
    fn pepeusdt_info() -> Value {
        json!({
            "symbol": "PEPEUSDT",
            "status": "TRADING",
            "baseAsset": "PEPE",
            "quoteAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.00000001",
                 "maxPrice": "1.00000000", "tickSize": "0.00000001"},
                {"filterType": "LOT_SIZE", "minQty": "1.00", "maxQty": "92141578.00",
                 "stepSize": "1.00"},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00",
                 "maxQty": "4021826088.86", "stepSize": "0.00"},
                {"filterType": "NOTIONAL", "minNotional": "1.00000000", "applyMinToMarket": true,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": false,
                 "avgPriceMins": 5}
            ]
        })
    }

    #[test]
    fn parses_btcusdt_exchange_info() {
        let f = SymbolFilters::from_exchange_info(&btcusdt_info()).unwrap();
        assert_eq!(f.tick_size, d("0.01"));
        assert_eq!(f.min_price, d("0.01"));
        assert_eq!(f.max_price, d("1000000"));
        assert_eq!(f.step_size, d("0.00001"));
        assert_eq!(f.min_qty, d("0.00001"));
        assert_eq!(f.max_qty, d("9000"));
        assert_eq!(
            f.market_lot,
            Some(LotSize {
                min_qty: Decimal::ZERO,
                max_qty: d("83.17893542"),
                step_size: Decimal::ZERO,
            })
        );
        assert_eq!(f.min_notional, d("5"));
        assert!(f.apply_min_to_market);
        assert_eq!(f.max_notional, Some(d("9000000")));
        assert!(!f.apply_max_to_market);
        // Normalized: no trailing zeros from the wire format.
        assert_eq!(f.tick_size.to_string(), "0.01");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<SymbolFilters>(&json).unwrap(), f);
    }

    #[test]
    fn parses_low_priced_and_legacy_exchange_info() {
        let f = SymbolFilters::from_exchange_info(&pepeusdt_info()).unwrap();
        assert_eq!(f.tick_size, d("0.00000001"));
        assert_eq!(f.step_size, Decimal::ONE);
        assert_eq!(f.min_qty, Decimal::ONE);
        assert_eq!(f.min_notional, Decimal::ONE);

        // Legacy MIN_NOTIONAL, numbers instead of strings, no MARKET_LOT_SIZE.
        let legacy = json!({"symbol": "ETHBTC", "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "100000.00000000",
             "tickSize": "0.00000100"},
            {"filterType": "LOT_SIZE", "minQty": 0.001, "maxQty": "100000.00000000",
             "stepSize": "0.00100000"},
            {"filterType": "MIN_NOTIONAL", "minNotional": "0.00100000", "applyToMarket": false,
             "avgPriceMins": 5}
        ]});
        let f = SymbolFilters::from_exchange_info(&legacy).unwrap();
        assert_eq!(f.min_qty, d("0.001"));
        assert_eq!(f.min_notional, d("0.001"));
        assert!(!f.apply_min_to_market);
        assert_eq!(f.max_notional, None);
        assert_eq!(f.market_lot, None);

        // Errors: a missing required filter, a bad number, no filters at all.
        let mut bad = btcusdt_info();
        bad["filters"].as_array_mut().unwrap().remove(0);
        let e = SymbolFilters::from_exchange_info(&bad).unwrap_err();
        assert!(e.to_string().contains("BTCUSDT: no PRICE_FILTER"), "{e}");
        let mut bad = btcusdt_info();
        bad["filters"][1]["stepSize"] = json!("abc");
        let e = SymbolFilters::from_exchange_info(&bad).unwrap_err();
        assert!(e.to_string().contains("LOT_SIZE.stepSize"), "{e}");
        let mut bad = btcusdt_info();
        bad["filters"][0]["tickSize"] = json!("-0.01");
        assert!(SymbolFilters::from_exchange_info(&bad).is_err());
        assert!(SymbolFilters::from_exchange_info(&json!({"symbol": "X"})).is_err());
    }

    #[test]
    fn grid_rounding_at_every_scale() {
        let cases = [
            // value, base, step, floor, ceil
            (
                "0.000012345",
                "0.00000001",
                "0.00000001",
                "0.00001234",
                "0.00001235",
            ),
            (
                "0.00001234",
                "0.00000001",
                "0.00000001",
                "0.00001234",
                "0.00001234",
            ),
            (
                "0.000000015",
                "0.00000001",
                "0.00000001",
                "0.00000001",
                "0.00000002",
            ),
            // Grid offset by the minimum: 0.00000003 + k × 0.00000002.
            (
                "0.00000006",
                "0.00000003",
                "0.00000002",
                "0.00000005",
                "0.00000007",
            ),
            ("99999.999", "0.01", "0.01", "99999.99", "100000"),
            ("50000.005", "0", "0.01", "50000", "50000.01"),
            ("1000000.7", "1", "1", "1000000", "1000001"),
            ("0.123456789", "0", "0", "0.123456789", "0.123456789"),
            ("1.5", "0.1", "0.25", "1.35", "1.6"),
        ];
        for (v, b, s, fl, ce) in cases {
            assert_eq!(floor_to_step(d(v), d(b), d(s)), Some(d(fl)), "floor {v}");
            assert_eq!(ceil_to_step(d(v), d(b), d(s)), Some(d(ce)), "ceil {v}");
        }
        assert_eq!(floor_to_step(d("0.5"), d("1"), d("1")), None);
        assert_eq!(ceil_to_step(Decimal::MAX, Decimal::ZERO, d("2")), None);
    }

    struct Fx {
        limits: RiskLimits,
        portfolio: Portfolio,
        last_trade: BTreeMap<Symbol, LastTrade>,
        filters: BTreeMap<Symbol, SymbolFilters>,
        gaps: BTreeSet<Symbol>,
        open_orders: Vec<OpenOrder>,
        recent: Vec<Millis>,
        paused: bool,
        killed: bool,
        now: Millis,
        fills: u64,
    }

    impl Fx {
        /// BTCUSDT at 50 000 with Binance's filters, ETHUSDT at 2 000 unrestricted, 0.01 BTC
        /// held (500 USDT).
        fn new() -> Fx {
            let mut fx = Fx {
                limits: RiskLimits {
                    max_order_notional: d("1000"),
                    max_position_notional: d("2000"),
                    max_total_exposure: d("3000"),
                    daily_loss_limit: d("100"),
                    max_orders_per_minute: 3,
                    price_band: d("0.05"),
                    max_data_age_ms: 5_000,
                },
                portfolio: Portfolio::new(),
                last_trade: BTreeMap::new(),
                filters: BTreeMap::new(),
                gaps: BTreeSet::new(),
                open_orders: Vec::new(),
                recent: vec![NOW - 30_000],
                paused: false,
                killed: false,
                now: NOW,
                fills: 0,
            };
            fx.mark("BTCUSDT", "50000");
            fx.mark("ETHUSDT", "2000");
            fx.filters.insert(
                sym("BTCUSDT"),
                SymbolFilters::from_exchange_info(&btcusdt_info()).unwrap(),
            );
            fx.filters
                .insert(sym("ETHUSDT"), SymbolFilters::unrestricted());
            fx.hold("BTCUSDT", "0.01", "50000");
            fx
        }

        fn mark(&mut self, s: &str, price: &str) {
            self.last_trade.insert(
                sym(s),
                LastTrade {
                    price: d(price),
                    ts: NOW - 1_000,
                },
            );
        }

        /// Replaces the holding of `s` by `qty` bought at `price`.
        fn hold(&mut self, s: &str, qty: &str, price: &str) {
            let held = self.portfolio.qty(&sym(s));
            if !held.is_zero() {
                self.fill(s, Side::Sell, held, d(price));
            }
            self.fill(s, Side::Buy, d(qty), d(price));
        }

        fn fill(&mut self, s: &str, side: Side, qty: Decimal, price: Decimal) {
            self.fills += 1;
            self.portfolio
                .apply(&Fill {
                    intent_id: "fx".into(),
                    symbol: sym(s),
                    side,
                    qty,
                    price,
                    fee: Decimal::ZERO,
                    ts: NOW - 3_600_000,
                    fill_id: self.fills,
                })
                .unwrap();
        }

        fn open(&mut self, s: &str, side: Side, kind: OrderKind, remaining: &str) {
            self.open_orders.push(OpenOrder {
                symbol: sym(s),
                side,
                kind,
                remaining: d(remaining),
            });
        }

        fn ctx(&self) -> RiskContext<'_> {
            RiskContext {
                limits: &self.limits,
                portfolio: &self.portfolio,
                last_trade: &self.last_trade,
                filters: &self.filters,
                gaps: &self.gaps,
                open_orders: &self.open_orders,
                recent_orders: &self.recent,
                paused: self.paused,
                killed: self.killed,
                now: self.now,
            }
        }

        fn check(&self, intent: &Intent) -> Result<Approved, Rejection> {
            check(intent, &self.ctx())
        }
    }

    fn intent(symbol: &str, side: Side, qty: &str, price: Option<&str>) -> Intent {
        Intent {
            id: "t-1".into(),
            venue: Venue::Binance,
            symbol: sym(symbol),
            side,
            qty: d(qty),
            kind: match price {
                Some(p) => OrderKind::Limit { price: d(p) },
                None => OrderKind::Market,
            },
            created_at: NOW,
        }
    }

    fn buy(qty: &str, price: &str) -> Intent {
        intent("BTCUSDT", Side::Buy, qty, Some(price))
    }

    fn sell(qty: &str, price: &str) -> Intent {
        intent("BTCUSDT", Side::Sell, qty, Some(price))
    }

    fn buy_market(qty: &str) -> Intent {
        intent("BTCUSDT", Side::Buy, qty, None)
    }

    struct Case {
        /// The rule the case exercises.
        rule: Rule,
        /// True: the case must be rejected by `rule`; false: it must pass.
        rejects: bool,
        name: &'static str,
        setup: fn(&mut Fx) -> Intent,
    }

    const fn case(
        rule: Rule,
        rejects: bool,
        name: &'static str,
        setup: fn(&mut Fx) -> Intent,
    ) -> Case {
        Case {
            rule,
            rejects,
            name,
            setup,
        }
    }

    const REJECT: bool = true;
    const PASS: bool = false;

    fn cases() -> Vec<Case> {
        use Rule::*;
        vec![
            case(KillSwitch, REJECT, "killed blocks a reducing sell", |fx| {
                fx.killed = true;
                sell("0.005", "50000")
            }),
            case(
                KillSwitch,
                REJECT,
                "killed wins over every other failure",
                |fx| {
                    fx.killed = true;
                    fx.paused = true;
                    fx.gaps.insert(sym("BTCUSDT"));
                    buy("0", "-1")
                },
            ),
            case(KillSwitch, PASS, "not killed", |_| sell("0.005", "50000")),
            case(Paused, REJECT, "paused blocks buys", |fx| {
                fx.paused = true;
                buy("0.001", "50000")
            }),
            case(Paused, REJECT, "paused blocks sells", |fx| {
                fx.paused = true;
                sell("0.001", "50000")
            }),
            case(Paused, PASS, "not paused", |_| buy("0.001", "50000")),
            case(InvalidQty, REJECT, "zero quantity", |_| buy("0", "50000")),
            case(InvalidQty, REJECT, "negative quantity", |_| {
                buy("-0.01", "50000")
            }),
            case(InvalidQty, PASS, "positive quantity", |_| {
                buy("0.001", "50000")
            }),
            case(InvalidPrice, REJECT, "zero limit price", |_| {
                buy("0.001", "0")
            }),
            case(InvalidPrice, REJECT, "negative limit price", |_| {
                sell("0.001", "-5")
            }),
            case(InvalidPrice, PASS, "positive limit price", |_| {
                buy("0.001", "49999.99")
            }),
            case(DataGap, REJECT, "open gap on the symbol", |fx| {
                fx.gaps.insert(sym("BTCUSDT"));
                sell("0.001", "50000")
            }),
            case(DataGap, PASS, "a gap on another symbol", |fx| {
                fx.gaps.insert(sym("ETHUSDT"));
                buy("0.001", "50000")
            }),
            case(NoPrice, REJECT, "no last trade", |fx| {
                fx.last_trade.remove(&sym("BTCUSDT"));
                buy_market("0.001")
            }),
            case(
                NoPrice,
                REJECT,
                "an open market buy that cannot be valued",
                |fx| {
                    fx.open("SOLUSDT", Side::Buy, OrderKind::Market, "1");
                    buy("0.001", "50000")
                },
            ),
            case(NoPrice, PASS, "another symbol without price", |fx| {
                fx.last_trade.remove(&sym("ETHUSDT"));
                buy_market("0.001")
            }),
            case(StaleFeed, REJECT, "last trade 5001 ms old", |fx| {
                fx.last_trade.get_mut(&sym("BTCUSDT")).unwrap().ts = NOW - 5_001;
                buy("0.001", "50000")
            }),
            case(StaleFeed, PASS, "last trade exactly 5000 ms old", |fx| {
                fx.last_trade.get_mut(&sym("BTCUSDT")).unwrap().ts = NOW - 5_000;
                buy("0.001", "50000")
            }),
            case(NoFilters, REJECT, "no filters for the symbol", |fx| {
                fx.filters.remove(&sym("BTCUSDT"));
                buy("0.001", "50000")
            }),
            case(NoFilters, PASS, "unrestricted filters", |fx| {
                fx.filters
                    .insert(sym("BTCUSDT"), SymbolFilters::unrestricted());
                buy("0.0012345678", "50000.123456")
            }),
            case(PriceFilter, REJECT, "below the minimum price", |_| {
                buy("0.001", "0.009")
            }),
            case(
                PriceFilter,
                REJECT,
                "a sell rounded up above the maximum",
                |fx| {
                    fx.filters.get_mut(&sym("BTCUSDT")).unwrap().max_price = d("50000");
                    sell("0.001", "50000.001")
                },
            ),
            case(PriceFilter, REJECT, "a buy rounding to zero", |fx| {
                let f = fx.filters.get_mut(&sym("BTCUSDT")).unwrap();
                f.min_price = Decimal::ZERO;
                buy("0.001", "0.005")
            }),
            case(PriceFilter, PASS, "off-tick buy rounded down", |_| {
                buy("0.001", "50000.009")
            }),
            case(LotSize, REJECT, "below the minimum quantity", |_| {
                buy("0.000009", "50000")
            }),
            case(LotSize, REJECT, "above the maximum quantity", |fx| {
                fx.filters
                    .get_mut(&sym("BTCUSDT"))
                    .unwrap()
                    .apply_min_to_market = false;
                intent("BTCUSDT", Side::Buy, "9000.00001", Some("50000"))
            }),
            case(LotSize, REJECT, "market above MARKET_LOT_SIZE", |fx| {
                fx.filters.get_mut(&sym("BTCUSDT")).unwrap().market_lot = Some(super::LotSize {
                    min_qty: Decimal::ZERO,
                    max_qty: d("0.005"),
                    step_size: Decimal::ZERO,
                });
                buy_market("0.006")
            }),
            case(LotSize, PASS, "off-step quantity rounded down", |_| {
                buy("0.0100099", "50000")
            }),
            case(MinNotional, REJECT, "below 5 after rounding down", |_| {
                // 0.0000999 rounds to 0.00009: 4.5 USDT.
                buy("0.0000999", "50000")
            }),
            case(
                MinNotional,
                REJECT,
                "market below 5 (applyMinToMarket)",
                |_| buy_market("0.00009"),
            ),
            case(MinNotional, PASS, "exactly 5 after rounding", |_| {
                buy("0.000109", "50000")
            }),
            case(MinNotional, PASS, "market not bound by the minimum", |fx| {
                fx.filters
                    .get_mut(&sym("BTCUSDT"))
                    .unwrap()
                    .apply_min_to_market = false;
                buy_market("0.00009")
            }),
            case(MaxNotional, REJECT, "limit above the maximum", |fx| {
                fx.filters.get_mut(&sym("BTCUSDT")).unwrap().max_notional = Some(d("400"));
                buy("0.01", "50000")
            }),
            case(MaxNotional, PASS, "market not bound by the maximum", |fx| {
                fx.filters.get_mut(&sym("BTCUSDT")).unwrap().max_notional = Some(d("400"));
                buy_market("0.01")
            }),
            case(PriceBand, REJECT, "buy more than 5 % below", |_| {
                buy("0.001", "47499.99")
            }),
            case(PriceBand, REJECT, "sell more than 5 % above", |_| {
                sell("0.001", "52500.01")
            }),
            case(PriceBand, PASS, "buy exactly 5 % below", |_| {
                buy("0.001", "47500")
            }),
            case(PriceBand, PASS, "sell exactly 5 % above", |_| {
                sell("0.001", "52500")
            }),
            case(
                OrdersPerMinute,
                REJECT,
                "three orders in the last minute",
                |fx| {
                    fx.recent = vec![NOW - 59_999, NOW - 1_000, NOW];
                    sell("0.001", "50000")
                },
            ),
            case(OrdersPerMinute, PASS, "the oldest is a minute old", |fx| {
                fx.recent = vec![NOW - 60_000, NOW - 1_000, NOW];
                buy("0.001", "50000")
            }),
            case(SellExceedsPosition, REJECT, "sell more than held", |_| {
                sell("0.01001", "50000")
            }),
            case(
                SellExceedsPosition,
                REJECT,
                "held, but offered by an open sell",
                |fx| {
                    fx.open(
                        "BTCUSDT",
                        Side::Sell,
                        OrderKind::Limit { price: d("51000") },
                        "0.005",
                    );
                    sell("0.006", "50000")
                },
            ),
            case(
                SellExceedsPosition,
                REJECT,
                "sell of a symbol not held",
                |_| intent("ETHUSDT", Side::Sell, "0.1", None),
            ),
            case(SellExceedsPosition, PASS, "sell the whole position", |_| {
                sell("0.01", "50000")
            }),
            case(DailyLoss, REJECT, "unrealised −100 halts buys", |fx| {
                fx.mark("BTCUSDT", "40000");
                buy("0.001", "40000")
            }),
            case(DailyLoss, REJECT, "realised −100 today halts buys", |fx| {
                fx.fill("BTCUSDT", Side::Sell, d("0.01"), d("40000"));
                buy("0.001", "50000")
            }),
            case(DailyLoss, PASS, "−99.99 does not", |fx| {
                fx.mark("BTCUSDT", "40001");
                buy("0.001", "40001")
            }),
            case(DailyLoss, PASS, "a reducing sell passes the halt", |fx| {
                fx.mark("BTCUSDT", "40000");
                sell("0.01", "40000")
            }),
            case(MaxOrderNotional, REJECT, "buy of 1000.5", |_| {
                buy("0.02001", "50000")
            }),
            case(MaxOrderNotional, REJECT, "sell of 1500", |fx| {
                fx.hold("BTCUSDT", "1", "50000");
                sell("0.03", "50000")
            }),
            case(MaxOrderNotional, PASS, "buy of exactly 1000", |_| {
                buy("0.02", "50000")
            }),
            case(MaxPosition, REJECT, "1500 held + 505", |fx| {
                fx.hold("BTCUSDT", "0.03", "50000");
                buy("0.0101", "50000")
            }),
            case(MaxPosition, REJECT, "500 held + 1000 open + 505", |fx| {
                fx.open(
                    "BTCUSDT",
                    Side::Buy,
                    OrderKind::Limit { price: d("50000") },
                    "0.02",
                );
                buy("0.0101", "50000")
            }),
            case(MaxPosition, PASS, "1500 held + 500", |fx| {
                fx.hold("BTCUSDT", "0.03", "50000");
                buy("0.01", "50000")
            }),
            case(
                MaxPosition,
                PASS,
                "a sell from a position over the limit",
                |fx| {
                    fx.hold("BTCUSDT", "0.05", "50000");
                    sell("0.01", "50000")
                },
            ),
            case(MaxExposure, REJECT, "2100.2 held + 900", |fx| {
                fx.hold("ETHUSDT", "0.8001", "2000");
                buy("0.018", "50000")
            }),
            case(MaxExposure, REJECT, "an open ETH market buy counts", |fx| {
                fx.hold("ETHUSDT", "0.7", "2000");
                fx.open("ETHUSDT", Side::Buy, OrderKind::Market, "0.1001");
                buy("0.018", "50000")
            }),
            case(MaxExposure, PASS, "2100 held + 900 = 3000", |fx| {
                fx.hold("ETHUSDT", "0.8", "2000");
                buy("0.018", "50000")
            }),
            case(
                MaxExposure,
                PASS,
                "a sell from exposure over the limit",
                |fx| {
                    fx.hold("ETHUSDT", "5", "2000");
                    sell("0.01", "50000")
                },
            ),
            case(
                Overflow,
                REJECT,
                "a notional beyond the decimal range",
                |fx| {
                    fx.filters
                        .insert(sym("BTCUSDT"), SymbolFilters::unrestricted());
                    let mut i = buy_market("1");
                    i.qty = Decimal::MAX;
                    i
                },
            ),
            case(Overflow, PASS, "an ordinary notional", |_| {
                buy_market("0.001")
            }),
        ]
    }

    #[test]
    fn every_rule_rejects_and_passes() {
        let cases = cases();
        for rule in Rule::ALL {
            for rejects in [true, false] {
                assert!(
                    cases.iter().any(|c| c.rule == rule && c.rejects == rejects),
                    "no case where {rule} {}",
                    if rejects { "rejects" } else { "passes" }
                );
            }
        }
        for c in &cases {
            let mut fx = Fx::new();
            let intent = (c.setup)(&mut fx);
            let got = fx.check(&intent);
            if c.rejects {
                match got {
                    Err(r) => assert_eq!(r.rule, c.rule, "{}: {r}", c.name),
                    Ok(a) => panic!("{} ({}): approved {a:?}", c.name, c.rule),
                }
            } else if let Err(r) = got {
                panic!("{} ({}): rejected {r}", c.name, c.rule);
            }
        }
    }

    #[test]
    fn approval_normalizes_quantity_and_price() {
        let fx = Fx::new();
        let a = fx.check(&buy("0.0100099", "50000.009")).unwrap();
        assert_eq!(a.qty(), d("0.01"));
        assert_eq!(a.price(), Some(d("50000")));
        assert_eq!(a.notional, d("500"));
        assert_eq!(a.reference_price, d("50000"));
        assert_eq!(a.intent.id, "t-1");
        // Sells round the price up.
        let a = fx.check(&sell("0.005", "50000.001")).unwrap();
        assert_eq!(a.price(), Some(d("50000.01")));
        // Market orders keep no price and are valued at the last trade.
        let a = fx.check(&buy_market("0.00123456")).unwrap();
        assert_eq!(a.qty(), d("0.00123"));
        assert_eq!(a.price(), None);
        assert_eq!(a.notional, d("61.5"));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["intent"]["kind"]["type"], "market");
    }

    #[test]
    fn rounding_at_tiny_prices() {
        let mut fx = Fx::new();
        fx.filters.insert(
            sym("PEPEUSDT"),
            SymbolFilters::from_exchange_info(&pepeusdt_info()).unwrap(),
        );
        fx.mark("PEPEUSDT", "0.00001234");
        let buy = intent("PEPEUSDT", Side::Buy, "1000000.7", Some("0.000012345"));
        let a = fx.check(&buy).unwrap();
        assert_eq!(a.qty(), d("1000000"));
        assert_eq!(a.price(), Some(d("0.00001234")));
        assert_eq!(a.notional, d("12.34"));
        assert_eq!(a.price().unwrap().to_string(), "0.00001234");
        // A sell rounds up to the next tick.
        fx.hold("PEPEUSDT", "2000000", "0.00001");
        let s = intent("PEPEUSDT", Side::Sell, "1000000", Some("0.000012341"));
        assert_eq!(fx.check(&s).unwrap().price(), Some(d("0.00001235")));
        // The min notional (1 USDT) is checked on the rounded values:
        // 81040 × 0.00001234 = 1.0000336 passes, 81036 × 0.00001233 = 0.99917388 does not.
        let small = intent("PEPEUSDT", Side::Buy, "81040.9", Some("0.0000123499"));
        assert_eq!(fx.check(&small).unwrap().qty(), d("81040"));
        let smaller = intent("PEPEUSDT", Side::Buy, "81036.99", Some("0.0000123399"));
        assert_eq!(fx.check(&smaller).unwrap_err().rule, Rule::MinNotional);
        // Below one whole token.
        let dust = intent("PEPEUSDT", Side::Buy, "0.9", None);
        assert_eq!(fx.check(&dust).unwrap_err().rule, Rule::LotSize);
        // Below the minimum price.
        fx.mark("PEPEUSDT", "0.00000001");
        let low = intent("PEPEUSDT", Side::Buy, "1000000000", Some("0.000000009"));
        assert_eq!(fx.check(&low).unwrap_err().rule, Rule::PriceFilter);
        let low = intent("PEPEUSDT", Side::Buy, "1000", Some("0.000000019"));
        // Rounded to 0.00000001: 1000 × 1e-8 = 0.00001 < 1.
        assert_eq!(fx.check(&low).unwrap_err().rule, Rule::MinNotional);
    }

    #[test]
    fn rule_names_are_stable_and_unique() {
        let mut seen = BTreeSet::new();
        for rule in Rule::ALL {
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
            assert!(seen.insert(rule.as_str()), "{rule} twice");
        }
        assert_eq!(Rule::KillSwitch.as_str(), "kill_switch");
        assert_eq!(Rule::SellExceedsPosition.as_str(), "sell_exceeds_position");
        let r = Rejection {
            rule: Rule::StaleFeed,
            reason: "x".into(),
        };
        assert_eq!(r.to_string(), "stale_feed: x");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"rule": "stale_feed", "reason": "x"})
        );
    }

    #[test]
    fn limits_config_defaults_and_serde() {
        let l = RiskLimits::default();
        assert_eq!(l.price_band, d("0.05"));
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<RiskLimits>(&json).unwrap(), l);
        let partial: RiskLimits =
            serde_json::from_str(r#"{"max_order_notional": "250", "max_orders_per_minute": 2}"#)
                .unwrap();
        assert_eq!(partial.max_order_notional, d("250"));
        assert_eq!(partial.max_orders_per_minute, 2);
        assert_eq!(partial.daily_loss_limit, l.daily_loss_limit);
        assert!(serde_json::from_str::<RiskLimits>(r#"{"max_order": 1}"#).is_err());
    }
}
