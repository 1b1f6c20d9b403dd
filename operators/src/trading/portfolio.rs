//! Spot positions rebuilt from fills.
//!
//! A [`Portfolio`] is a pure fold over [`Fill`]s: the executor rebuilds it from its journal after
//! a restart, so applying the same fills in the same order always gives the same state. Fills
//! are idempotent by `(intent_id, fill_id)`: the user data stream and an order query can both
//! report one execution, and the second report is ignored.
//!
//! # Accounting
//!
//! - **Long only.** Spot positions are never negative: a sell beyond the held quantity is an
//!   error ([`PortfolioError::Oversell`]) and leaves the portfolio unchanged (the risk gate
//!   rejects such orders before they are placed).
//! - **Average cost, fees excluded.** [`Position::cost_basis`] is the quote paid for the held
//!   quantity at execution prices; [`Position::avg_price`] is `cost_basis / qty`, directly
//!   comparable with market prices. A sell realises `proceeds − avg_price × qty` (the whole
//!   cost basis when it closes the position, so a round trip is exact).
//! - **Fees are realised when paid.** Every fee (of buys and sells, in the quote asset) is
//!   subtracted from [`Position::realised_pnl`] on the fill that pays it and summed in
//!   [`Position::fees_paid`]. So `realised + unrealised` is the exact profit of the trades
//!   at the marks: `Σ sell proceeds − Σ buy costs − Σ fees + qty × mark`.
//! - **Marks.** A position is valued at its mark (the last trade price, as the caller supplies
//!   it); a position with no mark is valued at its average price (zero unrealised PnL).
//!
//! # Daily PnL
//!
//! Realised PnL is also kept per UTC day (the day of each fill's `ts`). [`Portfolio::pnl_today`]
//! is **realised PnL of the fills of `now`'s UTC day plus the current unrealised PnL of every
//! open position** (against its average cost). This needs no start-of-day snapshot, so it is a
//! pure function of the fills and the marks, and it is conservative for the loss limit: an
//! unrealised loss carried over from a previous day counts against today too, until the
//! position recovers or is sold (an unrealised gain carried over likewise counts in today's
//! favour).
//!
//! All arithmetic is checked: an overflow is an error ([`PortfolioError::Overflow`]), never a
//! panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Fill;
use crate::model::{Millis, Side, Symbol};

/// Milliseconds in a UTC day.
pub const DAY_MS: Millis = 86_400_000;

/// Start of the UTC day containing `ts` (ms since the epoch; also right before 1970).
pub fn utc_day_start(ts: Millis) -> Millis {
    ts.div_euclid(DAY_MS) * DAY_MS
}

/// Why a fill could not be applied. The portfolio is unchanged after an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum PortfolioError {
    /// A sell of more than the position holds (spot positions are long only).
    Oversell {
        /// Symbol.
        symbol: Symbol,
        /// Quantity held.
        held: Decimal,
        /// Quantity sold.
        sold: Decimal,
    },
    /// A fill with a quantity or price that is zero or negative.
    InvalidFill {
        /// The intent of the fill.
        intent_id: String,
        /// The fill's id.
        fill_id: u64,
        /// What is wrong.
        reason: String,
    },
    /// Arithmetic overflowed the decimal range.
    Overflow {
        /// What was being computed.
        what: String,
    },
}

impl fmt::Display for PortfolioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortfolioError::Oversell { symbol, held, sold } => {
                write!(f, "sell of {sold} {symbol} exceeds the position of {held}")
            }
            PortfolioError::InvalidFill {
                intent_id,
                fill_id,
                reason,
            } => write!(f, "invalid fill {fill_id} of {intent_id}: {reason}"),
            PortfolioError::Overflow { what } => write!(f, "decimal overflow computing {what}"),
        }
    }
}

impl std::error::Error for PortfolioError {}

fn overflow(what: &str) -> PortfolioError {
    PortfolioError::Overflow {
        what: what.to_string(),
    }
}

/// What [`Portfolio::apply`] did with a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The fill was new and changed the position.
    New,
    /// The fill's `(intent_id, fill_id)` was seen before: ignored.
    Duplicate,
}

/// The holding of one symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Quantity held, base asset (never negative).
    pub qty: Decimal,
    /// Average execution price of the held quantity, fees excluded (`cost_basis / qty`; zero when
    /// flat).
    pub avg_price: Decimal,
    /// Quote paid for the held quantity at execution prices, fees excluded.
    pub cost_basis: Decimal,
    /// Realised PnL, quote asset: sells' `proceeds − cost` minus every fee paid.
    pub realised_pnl: Decimal,
    /// Fees paid, quote asset.
    pub fees_paid: Decimal,
}

impl Position {
    /// True when nothing is held.
    pub fn is_flat(&self) -> bool {
        self.qty.is_zero()
    }

    /// Unrealised PnL at `mark`: `qty × mark − cost_basis`.
    pub fn unrealised(&self, mark: Decimal) -> Result<Decimal, PortfolioError> {
        self.qty
            .checked_mul(mark)
            .and_then(|v| v.checked_sub(self.cost_basis))
            .ok_or_else(|| overflow("unrealised pnl"))
    }

    /// Value at `mark`: `qty × mark`.
    pub fn value(&self, mark: Decimal) -> Result<Decimal, PortfolioError> {
        self.qty
            .checked_mul(mark)
            .map(|v| v.abs())
            .ok_or_else(|| overflow("position value"))
    }
}

/// Positions of one account on one venue, folded from fills (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Portfolio {
    positions: BTreeMap<Symbol, Position>,
    /// Realised PnL (net of fees) by UTC day start.
    realised_by_day: BTreeMap<Millis, Decimal>,
    /// `(intent_id, fill_id)` of every fill applied.
    seen: BTreeSet<(String, u64)>,
}

impl Portfolio {
    /// An empty portfolio.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one fill. A fill whose `(intent_id, fill_id)` was applied before is ignored
    /// ([`Applied::Duplicate`]). On error nothing changes and the fill is not recorded as seen.
    pub fn apply(&mut self, fill: &Fill) -> Result<Applied, PortfolioError> {
        let key = (fill.intent_id.clone(), fill.fill_id);
        if self.seen.contains(&key) {
            return Ok(Applied::Duplicate);
        }
        let invalid = |reason: &str| PortfolioError::InvalidFill {
            intent_id: fill.intent_id.clone(),
            fill_id: fill.fill_id,
            reason: reason.to_string(),
        };
        if fill.qty <= Decimal::ZERO {
            return Err(invalid("quantity must be positive"));
        }
        if fill.price <= Decimal::ZERO {
            return Err(invalid("price must be positive"));
        }
        let old = self
            .positions
            .get(&fill.symbol)
            .cloned()
            .unwrap_or_default();
        let notional = fill
            .qty
            .checked_mul(fill.price)
            .ok_or_else(|| overflow("fill notional"))?;
        let mut new = old.clone();
        new.fees_paid = old
            .fees_paid
            .checked_add(fill.fee)
            .ok_or_else(|| overflow("fees paid"))?;
        // Realised PnL of this fill, net of its fee.
        let mut realised = Decimal::ZERO
            .checked_sub(fill.fee)
            .ok_or_else(|| overflow("realised pnl"))?;
        match fill.side {
            Side::Buy => {
                new.qty = old
                    .qty
                    .checked_add(fill.qty)
                    .ok_or_else(|| overflow("position quantity"))?;
                new.cost_basis = old
                    .cost_basis
                    .checked_add(notional)
                    .ok_or_else(|| overflow("cost basis"))?;
            }
            Side::Sell => {
                if fill.qty > old.qty {
                    return Err(PortfolioError::Oversell {
                        symbol: fill.symbol,
                        held: old.qty,
                        sold: fill.qty,
                    });
                }
                new.qty = old.qty - fill.qty;
                // The cost of what was sold: all of it on a close (exact round trips), else at
                // the average price.
                let cost = if new.qty.is_zero() {
                    old.cost_basis
                } else {
                    old.avg_price
                        .checked_mul(fill.qty)
                        .ok_or_else(|| overflow("cost of sold quantity"))?
                };
                new.cost_basis = if new.qty.is_zero() {
                    Decimal::ZERO
                } else {
                    old.cost_basis
                        .checked_sub(cost)
                        .ok_or_else(|| overflow("cost basis"))?
                };
                realised = notional
                    .checked_sub(cost)
                    .and_then(|gross| gross.checked_add(realised))
                    .ok_or_else(|| overflow("realised pnl"))?;
            }
        }
        new.avg_price = if new.qty.is_zero() {
            Decimal::ZERO
        } else {
            new.cost_basis
                .checked_div(new.qty)
                .ok_or_else(|| overflow("average price"))?
        };
        new.realised_pnl = old
            .realised_pnl
            .checked_add(realised)
            .ok_or_else(|| overflow("realised pnl"))?;
        let day = utc_day_start(fill.ts);
        let day_total = self
            .realised_by_day
            .get(&day)
            .copied()
            .unwrap_or_default()
            .checked_add(realised)
            .ok_or_else(|| overflow("daily realised pnl"))?;
        // Everything computed: commit.
        self.positions.insert(fill.symbol, new);
        self.realised_by_day.insert(day, day_total);
        self.seen.insert(key);
        Ok(Applied::New)
    }

    /// Applies fills in order, stopping at the first error.
    pub fn apply_all<'a>(
        &mut self,
        fills: impl IntoIterator<Item = &'a Fill>,
    ) -> Result<(), PortfolioError> {
        for fill in fills {
            self.apply(fill)?;
        }
        Ok(())
    }

    /// True when the fill `(intent_id, fill_id)` was applied.
    pub fn has_fill(&self, intent_id: &str, fill_id: u64) -> bool {
        self.seen.contains(&(intent_id.to_string(), fill_id))
    }

    /// The position of `symbol`, if it ever traded (a closed position keeps its realised PnL).
    pub fn position(&self, symbol: &Symbol) -> Option<&Position> {
        self.positions.get(symbol)
    }

    /// Every symbol that ever traded with its position, by symbol.
    pub fn positions(&self) -> impl Iterator<Item = (&Symbol, &Position)> {
        self.positions.iter()
    }

    /// Quantity held of `symbol` (zero when none).
    pub fn qty(&self, symbol: &Symbol) -> Decimal {
        self.positions
            .get(symbol)
            .map(|p| p.qty)
            .unwrap_or_default()
    }

    /// Unrealised PnL of `symbol` at `mark` (zero when flat).
    pub fn unrealised(&self, symbol: &Symbol, mark: Decimal) -> Result<Decimal, PortfolioError> {
        match self.positions.get(symbol) {
            Some(p) => p.unrealised(mark),
            None => Ok(Decimal::ZERO),
        }
    }

    /// Unrealised PnL of every open position at `marks`; a position without a mark counts zero
    /// (valued at its average price).
    pub fn unrealised_total<F>(&self, marks: F) -> Result<Decimal, PortfolioError>
    where
        F: Fn(&Symbol) -> Option<Decimal>,
    {
        let mut total = Decimal::ZERO;
        for (symbol, p) in self.positions.iter().filter(|(_, p)| !p.is_flat()) {
            let u = match marks(symbol) {
                Some(mark) => p.unrealised(mark)?,
                None => Decimal::ZERO,
            };
            total = total
                .checked_add(u)
                .ok_or_else(|| overflow("unrealised pnl"))?;
        }
        Ok(total)
    }

    /// Gross exposure: `Σ |qty| × mark` over open positions; a position without a mark is valued
    /// at its average price.
    pub fn exposure<F>(&self, marks: F) -> Result<Decimal, PortfolioError>
    where
        F: Fn(&Symbol) -> Option<Decimal>,
    {
        let mut total = Decimal::ZERO;
        for (symbol, p) in self.positions.iter().filter(|(_, p)| !p.is_flat()) {
            let v = p.value(marks(symbol).unwrap_or(p.avg_price))?;
            total = total.checked_add(v).ok_or_else(|| overflow("exposure"))?;
        }
        Ok(total)
    }

    /// Realised PnL (net of fees) of every fill so far.
    pub fn realised_total(&self) -> Result<Decimal, PortfolioError> {
        self.realised_by_day
            .values()
            .try_fold(Decimal::ZERO, |acc, v| acc.checked_add(*v))
            .ok_or_else(|| overflow("realised pnl"))
    }

    /// Fees paid on every fill so far, quote asset.
    pub fn fees_total(&self) -> Result<Decimal, PortfolioError> {
        self.positions
            .values()
            .try_fold(Decimal::ZERO, |acc, p| acc.checked_add(p.fees_paid))
            .ok_or_else(|| overflow("fees paid"))
    }

    /// Realised PnL (net of fees) of the fills in the UTC day containing `ts`.
    pub fn realised_on_day(&self, ts: Millis) -> Decimal {
        self.realised_by_day
            .get(&utc_day_start(ts))
            .copied()
            .unwrap_or_default()
    }

    /// Today's PnL: realised PnL of the fills in `now`'s UTC day plus the current unrealised PnL
    /// of every open position at `marks` (see the [module docs](self) for why).
    pub fn pnl_today<F>(&self, now: Millis, marks: F) -> Result<Decimal, PortfolioError>
    where
        F: Fn(&Symbol) -> Option<Decimal>,
    {
        self.realised_on_day(now)
            .checked_add(self.unrealised_total(marks)?)
            .ok_or_else(|| overflow("pnl today"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn sym(s: &str) -> Symbol {
        Symbol::new(s).unwrap()
    }

    const T0: Millis = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn fill(
        intent: &str,
        id: u64,
        symbol: &str,
        side: Side,
        qty: &str,
        price: &str,
        fee: &str,
    ) -> Fill {
        Fill {
            intent_id: intent.to_string(),
            symbol: sym(symbol),
            side,
            qty: d(qty),
            price: d(price),
            fee: d(fee),
            ts: T0,
            fill_id: id,
        }
    }

    #[test]
    fn average_cost_and_realised_pnl_net_of_fees() {
        let mut p = Portfolio::new();
        p.apply(&fill("a", 1, "BTCUSDT", Side::Buy, "1", "100", "0.1"))
            .unwrap();
        p.apply(&fill("a", 2, "BTCUSDT", Side::Buy, "1", "110", "0.11"))
            .unwrap();
        let pos = p.position(&sym("BTCUSDT")).unwrap();
        assert_eq!(pos.qty, d("2"));
        assert_eq!(pos.avg_price, d("105"));
        assert_eq!(pos.cost_basis, d("210"));
        assert_eq!(pos.realised_pnl, d("-0.21"));
        // Sell half at 120: gross (120 − 105) × 1 = 15, fee 0.12.
        p.apply(&fill("b", 3, "BTCUSDT", Side::Sell, "1", "120", "0.12"))
            .unwrap();
        let pos = p.position(&sym("BTCUSDT")).unwrap();
        assert_eq!(pos.qty, d("1"));
        assert_eq!(pos.avg_price, d("105"));
        assert_eq!(pos.realised_pnl, d("14.67"));
        assert_eq!(pos.fees_paid, d("0.33"));
        assert_eq!(p.unrealised(&sym("BTCUSDT"), d("100")).unwrap(), d("-5"));
        // Close at 90.
        p.apply(&fill("c", 4, "BTCUSDT", Side::Sell, "1", "90", "0.09"))
            .unwrap();
        let pos = p.position(&sym("BTCUSDT")).unwrap();
        assert!(pos.is_flat());
        assert_eq!(pos.avg_price, Decimal::ZERO);
        assert_eq!(pos.cost_basis, Decimal::ZERO);
        // Σ proceeds − Σ costs − Σ fees = 210 − 210 − 0.42.
        assert_eq!(pos.realised_pnl, d("-0.42"));
        assert_eq!(p.realised_total().unwrap(), d("-0.42"));
        assert_eq!(p.fees_total().unwrap(), d("0.42"));
    }

    #[test]
    fn round_trip_with_repeating_average_is_exact() {
        // avg = 1/3 does not terminate; a full close still realises exactly proceeds − cost.
        let mut p = Portfolio::new();
        p.apply(&fill("a", 1, "PEPEUSDT", Side::Buy, "1", "0.00000001", "0"))
            .unwrap();
        p.apply(&fill("a", 2, "PEPEUSDT", Side::Buy, "2", "0", "0"))
            .unwrap_err();
        p.apply(&fill("a", 3, "PEPEUSDT", Side::Buy, "2", "0.00000002", "0"))
            .unwrap();
        p.apply(&fill(
            "b",
            4,
            "PEPEUSDT",
            Side::Sell,
            "1",
            "0.00000003",
            "0",
        ))
        .unwrap();
        p.apply(&fill(
            "b",
            5,
            "PEPEUSDT",
            Side::Sell,
            "2",
            "0.00000003",
            "0",
        ))
        .unwrap();
        let pos = p.position(&sym("PEPEUSDT")).unwrap();
        assert_eq!(pos.realised_pnl, d("0.00000004"));
        assert!(pos.is_flat());
    }

    #[test]
    fn duplicate_fills_are_ignored() {
        let mut p = Portfolio::new();
        let f = fill("a", 7, "BTCUSDT", Side::Buy, "1", "100", "0.1");
        assert_eq!(p.apply(&f).unwrap(), Applied::New);
        assert_eq!(p.apply(&f).unwrap(), Applied::Duplicate);
        assert_eq!(p.qty(&sym("BTCUSDT")), d("1"));
        assert!(p.has_fill("a", 7));
        // The same trade id under another intent is another fill.
        let g = fill("b", 7, "BTCUSDT", Side::Buy, "1", "100", "0.1");
        assert_eq!(p.apply(&g).unwrap(), Applied::New);
        assert_eq!(p.qty(&sym("BTCUSDT")), d("2"));
    }

    #[test]
    fn replaying_the_same_fills_gives_the_same_state() {
        let fills = vec![
            fill(
                "a",
                1,
                "BTCUSDT",
                Side::Buy,
                "0.5",
                "43000.01",
                "0.02150001",
            ),
            fill("a", 2, "BTCUSDT", Side::Buy, "0.25", "43100", "0.010775"),
            fill("x", 1, "ETHUSDT", Side::Buy, "3", "2200.5", "0.0066015"),
            fill("b", 3, "BTCUSDT", Side::Sell, "0.3", "44000", "0.0132"),
            fill("a", 2, "BTCUSDT", Side::Buy, "0.25", "43100", "0.010775"),
        ];
        let mut a = Portfolio::new();
        a.apply_all(&fills).unwrap();
        let mut b = Portfolio::new();
        // Duplicates interleaved (stream and query reporting the same fills) change nothing.
        for f in fills.iter().chain(fills.iter()) {
            b.apply(f).unwrap();
        }
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Portfolio>(&json).unwrap(), a);
    }

    #[test]
    fn oversell_is_an_error_and_changes_nothing() {
        let mut p = Portfolio::new();
        p.apply(&fill("a", 1, "BTCUSDT", Side::Buy, "1", "100", "0"))
            .unwrap();
        let before = p.clone();
        let err = p
            .apply(&fill(
                "b",
                2,
                "BTCUSDT",
                Side::Sell,
                "1.00000001",
                "100",
                "0",
            ))
            .unwrap_err();
        assert!(matches!(err, PortfolioError::Oversell { .. }), "{err}");
        assert_eq!(p, before);
        assert!(!p.has_fill("b", 2));
        // Selling a symbol never bought.
        assert!(p
            .apply(&fill("c", 3, "ETHUSDT", Side::Sell, "1", "100", "0"))
            .is_err());
        // Invalid quantities.
        assert!(p
            .apply(&fill("d", 4, "BTCUSDT", Side::Buy, "0", "100", "0"))
            .is_err());
        assert!(p
            .apply(&fill("d", 5, "BTCUSDT", Side::Buy, "-1", "100", "0"))
            .is_err());
        assert_eq!(p, before);
    }

    #[test]
    fn overflow_is_an_error() {
        let mut p = Portfolio::new();
        let mut f = fill("a", 1, "BTCUSDT", Side::Buy, "1", "1", "0");
        f.qty = Decimal::MAX;
        f.price = d("2");
        assert!(matches!(
            p.apply(&f).unwrap_err(),
            PortfolioError::Overflow { .. }
        ));
        assert_eq!(p, Portfolio::new());
        p.apply(&fill("a", 2, "BTCUSDT", Side::Buy, "1000000", "1", "0"))
            .unwrap();
        assert!(p.unrealised(&sym("BTCUSDT"), Decimal::MAX).is_err());
        assert!(p.exposure(|_| Some(Decimal::MAX)).is_err());
    }

    #[test]
    fn unrealised_and_exposure_at_marks() {
        let mut p = Portfolio::new();
        p.apply(&fill("a", 1, "BTCUSDT", Side::Buy, "0.1", "50000", "0"))
            .unwrap();
        p.apply(&fill("b", 1, "ETHUSDT", Side::Buy, "2", "2000", "0"))
            .unwrap();
        let marks: HashMap<Symbol, Decimal> = [(sym("BTCUSDT"), d("49000"))].into();
        let m = |s: &Symbol| marks.get(s).copied();
        // ETH has no mark: valued at its average price.
        assert_eq!(p.exposure(m).unwrap(), d("8900"));
        assert_eq!(p.unrealised_total(m).unwrap(), d("-100"));
        assert_eq!(
            p.unrealised(&sym("SOLUSDT"), d("1")).unwrap(),
            Decimal::ZERO
        );
        assert_eq!(p.qty(&sym("SOLUSDT")), Decimal::ZERO);
        assert_eq!(p.positions().count(), 2);
    }

    #[test]
    fn pnl_today_is_realised_today_plus_unrealised_now() {
        let day = utc_day_start(T0);
        assert_eq!(day, 1_699_920_000_000);
        assert_eq!(utc_day_start(-1), -DAY_MS);
        let mut p = Portfolio::new();
        let mut f = fill("a", 1, "BTCUSDT", Side::Buy, "2", "100", "0.2");
        f.ts = day - 1; // yesterday 23:59:59.999
        p.apply(&f).unwrap();
        let mut f = fill("b", 2, "BTCUSDT", Side::Sell, "1", "90", "0.09");
        f.ts = day; // today 00:00:00.000
        p.apply(&f).unwrap();
        assert_eq!(p.realised_on_day(day - 1), d("-0.2"));
        assert_eq!(p.realised_on_day(T0), d("-10.09"));
        let mark = |_: &Symbol| Some(d("80"));
        // Today: −10.09 realised + (80 − 100) × 1 unrealised.
        assert_eq!(p.pnl_today(T0, mark).unwrap(), d("-30.09"));
        // Tomorrow nothing is realised yet; the open position still counts.
        assert_eq!(p.pnl_today(day + DAY_MS, mark).unwrap(), d("-20"));
        assert_eq!(p.realised_total().unwrap(), d("-10.29"));
    }
}
