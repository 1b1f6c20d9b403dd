//! The trading engine: signals in, the risk gate, a broker, the journal out. One code path for
//! the backtest and the paper executor (the live executor swaps the broker).
//!
//! The engine is pure state: it reads no clock (the caller passes `now`, the event time of what
//! it feeds) and does no I/O. What it did comes back as [`JournalEvent`]s for the caller to
//! store, in order.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::paper::{PaperBroker, PaperConfig};
use super::portfolio::Portfolio;
use super::risk::{self, LastTrade, RiskContext, RiskLimits, Rule, SymbolFilters};
use super::signals::{intent_for, Signal, Sizing};
use super::{Fill, Intent};
use crate::model::{Millis, Symbol, Trade};

/// What the engine did, in order; the executor's journal and the backtest's report read these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JournalEvent {
    /// A signal arrived.
    Signal {
        /// The signal.
        signal: Signal,
        /// Its id (the id of the intent it makes).
        id: String,
    },
    /// A signal made no order (e.g. a sell with nothing held).
    Skipped {
        /// The signal's id.
        id: String,
        /// Why.
        reason: String,
        /// When, ms.
        at: Millis,
    },
    /// The risk gate refused an intent.
    Rejected {
        /// The intent as asked.
        intent: Intent,
        /// The rule's stable name.
        rule: String,
        /// Why, in words.
        reason: String,
        /// When, ms.
        at: Millis,
    },
    /// The risk gate let an intent through (normalized to the exchange's filters) and the broker
    /// took it.
    Accepted {
        /// The intent as sent.
        intent: Intent,
        /// When, ms.
        at: Millis,
    },
    /// An order was (partly) executed.
    Filled {
        /// The fill.
        fill: Fill,
    },
    /// An open order was cancelled.
    Cancelled {
        /// The intent id.
        id: String,
        /// Why.
        reason: String,
        /// When, ms.
        at: Millis,
    },
}

/// Settings of the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The risk limits.
    pub risk: RiskLimits,
    /// Order sizes of signals.
    pub sizing: Sizing,
    /// The paper broker's costs.
    pub paper: PaperConfig,
    /// Exchange filters for symbols without `exchangeInfo` (a backtest); `None` refuses them
    /// (`no_filters`).
    pub default_filters: Option<SymbolFilters>,
}

/// The engine's state: positions, open orders and what the risk gate reads.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    config: EngineConfig,
    portfolio: Portfolio,
    broker: PaperBroker,
    last_trade: BTreeMap<Symbol, LastTrade>,
    filters: BTreeMap<Symbol, SymbolFilters>,
    gaps: BTreeSet<Symbol>,
    recent_orders: VecDeque<Millis>,
    seen: HashSet<String>,
    paused: bool,
    killed: bool,
}

impl Engine {
    /// An engine with nothing held.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            broker: PaperBroker::new(config.paper.clone()),
            config,
            ..Engine::default()
        }
    }

    /// The positions.
    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    /// The paper broker (its orders).
    pub fn broker(&self) -> &PaperBroker {
        &self.broker
    }

    /// The last trade price of `symbol`.
    pub fn mark(&self, symbol: &Symbol) -> Option<Decimal> {
        self.last_trade.get(symbol).map(|t| t.price)
    }

    /// The last trade price of every symbol seen.
    pub fn marks(&self) -> impl Iterator<Item = (&Symbol, Decimal)> {
        self.last_trade.iter().map(|(s, t)| (s, t.price))
    }

    /// Sets the exchange filters of a symbol (from `exchangeInfo`).
    pub fn set_filters(&mut self, symbol: Symbol, filters: SymbolFilters) {
        self.filters.insert(symbol, filters);
    }

    /// Whether the exchange filters of `symbol` are known (set, or a configured default).
    pub fn has_filters(&self, symbol: &Symbol) -> bool {
        self.filters.contains_key(symbol) || self.config.default_filters.is_some()
    }

    /// Marks a symbol's tape as having an open gap (`true`) or whole again.
    pub fn set_gap(&mut self, symbol: Symbol, open: bool) {
        if open {
            self.gaps.insert(symbol);
        } else {
            self.gaps.remove(&symbol);
        }
    }

    /// Pauses (no new orders) or resumes.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The kill switch: no new orders from now on, and every open order is cancelled.
    pub fn kill(&mut self, now: Millis) -> Vec<JournalEvent> {
        self.killed = true;
        self.cancel_open(None, "kill switch", now)
    }

    /// Cancels the open paper orders of `symbol` (every symbol when `None`), e.g. for a confirmed
    /// "cancel all" text order; trading goes on.
    pub fn cancel_open(
        &mut self,
        symbol: Option<&Symbol>,
        reason: &str,
        now: Millis,
    ) -> Vec<JournalEvent> {
        self.broker
            .cancel_all(symbol)
            .into_iter()
            .map(|id| JournalEvent::Cancelled {
                id,
                reason: reason.to_string(),
                at: now,
            })
            .collect()
    }

    /// Whether the kill switch is on.
    pub fn killed(&self) -> bool {
        self.killed
    }

    /// Whether trading is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// A trade of the tape: the new mark, and the paper fills it makes.
    pub fn on_trade(&mut self, trade: &Trade) -> Vec<JournalEvent> {
        let newer = self
            .last_trade
            .get(&trade.symbol)
            .is_none_or(|l| l.ts <= trade.ts_exchange);
        if newer {
            self.last_trade.insert(trade.symbol, LastTrade::from(trade));
        }
        let fills = self.broker.on_trade(trade);
        self.record_fills(fills)
    }

    /// Applies fills (from the paper broker, or an exchange's reports) to the positions; a fill
    /// seen before is left out.
    pub fn record_fills(&mut self, fills: Vec<Fill>) -> Vec<JournalEvent> {
        fills
            .into_iter()
            .filter(|f| matches!(self.portfolio.apply(f), Ok(super::portfolio::Applied::New)))
            .map(|fill| JournalEvent::Filled { fill })
            .collect()
    }

    /// A strategy signal at `now`: its intent, through the risk gate, to the broker. A signal
    /// seen before (same id) does nothing.
    pub fn on_signal(&mut self, signal: &Signal, now: Millis) -> Vec<JournalEvent> {
        let id = signal.id();
        if self.seen.contains(&id) {
            return Vec::new();
        }
        let mut out = vec![JournalEvent::Signal {
            signal: signal.clone(),
            id: id.clone(),
        }];
        let held = self.portfolio.qty(&signal.symbol);
        match intent_for(signal, &self.config.sizing, held) {
            Some(intent) => out.extend(self.submit(intent, now)),
            None => {
                self.seen.insert(id.clone());
                out.push(JournalEvent::Skipped {
                    id,
                    reason: format!("nothing to {} of {}", signal.side.as_str(), signal.symbol),
                    at: now,
                });
            }
        }
        out
    }

    /// An intent at `now` through the risk gate to the paper broker. An intent id seen before
    /// does nothing (one order per intent).
    pub fn submit(&mut self, intent: Intent, now: Millis) -> Vec<JournalEvent> {
        match self.gate(intent, now) {
            Gate::Duplicate => Vec::new(),
            Gate::Rejected(rejected) => vec![rejected],
            Gate::Approved(intent) => match self.broker.submit(intent.clone(), now) {
                Ok(_) => vec![JournalEvent::Accepted { intent, at: now }],
                Err(e) => vec![JournalEvent::Rejected {
                    intent,
                    rule: Rule::InvalidQty.as_str().to_string(),
                    reason: e.to_string(),
                    at: now,
                }],
            },
        }
    }

    /// Places an approved intent (from [`Engine::gate`]) with the paper broker at `now`.
    pub fn paper_submit(&mut self, intent: Intent, now: Millis) -> Result<(), String> {
        self.broker
            .submit(intent, now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Remembers an intent id as handled (a restart seeds the ids of its journal), so
    /// [`Engine::gate`] calls it a duplicate.
    pub fn mark_seen(&mut self, id: &str) {
        self.seen.insert(id.to_string());
    }

    /// The risk gate alone, for a broker of the caller's (a live exchange): a new intent is
    /// remembered, checked at `now`, and when approved counted against the orders per minute
    /// and returned normalized to the exchange's filters.
    pub fn gate(&mut self, intent: Intent, now: Millis) -> Gate {
        if !self.seen.insert(intent.id.clone()) {
            return Gate::Duplicate;
        }
        while self
            .recent_orders
            .front()
            .is_some_and(|t| *t <= now - 60_000)
        {
            self.recent_orders.pop_front();
        }
        // Symbols without exchangeInfo take the configured default filters, once.
        if let Some(default) = &self.config.default_filters {
            self.filters
                .entry(intent.symbol)
                .or_insert_with(|| default.clone());
        }
        let open = self.broker.working();
        let recent: Vec<Millis> = self.recent_orders.iter().copied().collect();
        let ctx = RiskContext {
            limits: &self.config.risk,
            portfolio: &self.portfolio,
            last_trade: &self.last_trade,
            filters: &self.filters,
            gaps: &self.gaps,
            open_orders: &open,
            recent_orders: &recent,
            paused: self.paused,
            killed: self.killed,
            now,
        };
        match risk::check(&intent, &ctx) {
            Err(rejection) => Gate::Rejected(JournalEvent::Rejected {
                intent,
                rule: rejection.rule.as_str().to_string(),
                reason: rejection.reason,
                at: now,
            }),
            Ok(approved) => {
                self.recent_orders.push_back(now);
                Gate::Approved(approved.intent)
            }
        }
    }
}

/// What the risk gate made of an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Its id was handled before: nothing to do.
    Duplicate,
    /// Refused: the journal event says by which rule and why.
    Rejected(JournalEvent),
    /// Let through, normalized to the exchange's filters.
    Approved(Intent),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interval, Side, Venue};

    fn trade(id: u64, price: &str, qty: &str, ts: Millis) -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: "BTCUSDT".parse().expect("symbol"),
            trade_id: id,
            price: price.parse().expect("price"),
            qty: qty.parse().expect("qty"),
            side: Side::Buy,
            ts_exchange: ts,
            ts_received: ts,
            agg: None,
        }
    }

    fn signal(side: Side, open_time: Millis, price: &str) -> Signal {
        Signal {
            strategy: "test".into(),
            venue: Venue::Binance,
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: "1m".parse::<Interval>().expect("interval"),
            open_time,
            close_time: open_time + 60_000,
            side,
            price: price.parse().expect("price"),
            reason: String::new(),
        }
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig {
            default_filters: Some(SymbolFilters::unrestricted()),
            ..EngineConfig::default()
        })
    }

    #[test]
    fn a_buy_signal_fills_at_the_next_trade_and_a_sell_closes_it() {
        let mut e = engine();
        e.on_trade(&trade(1, "100", "10", 59_000));
        let ev = e.on_signal(&signal(Side::Buy, 0, "100"), 60_000);
        assert!(
            matches!(ev.last(), Some(JournalEvent::Accepted { .. })),
            "{ev:?}"
        );
        assert!(
            e.on_signal(&signal(Side::Buy, 0, "100"), 60_000).is_empty(),
            "once"
        );
        let fills = e.on_trade(&trade(2, "100", "10", 60_001));
        assert_eq!(fills.len(), 1);
        assert_eq!(
            e.portfolio().qty(&"BTCUSDT".parse().expect("s")),
            Decimal::ONE
        );
        e.on_trade(&trade(3, "110", "10", 119_000));
        e.on_signal(&signal(Side::Sell, 60_000, "110"), 120_000);
        e.on_trade(&trade(4, "110", "10", 120_001));
        assert!(e.portfolio().qty(&"BTCUSDT".parse().expect("s")).is_zero());
        let realised = e.portfolio().realised_total().expect("pnl");
        assert!(
            realised > Decimal::new(9, 0) && realised < Decimal::TEN,
            "{realised}"
        );
    }

    #[test]
    fn a_sell_without_a_position_is_skipped_and_the_kill_switch_blocks() {
        let mut e = engine();
        e.on_trade(&trade(1, "100", "10", 0));
        let ev = e.on_signal(&signal(Side::Sell, 0, "100"), 60_000);
        assert!(matches!(ev.last(), Some(JournalEvent::Skipped { .. })));
        e.kill(60_000);
        let ev = e.on_signal(&signal(Side::Buy, 60_000, "100"), 120_000);
        match ev.last() {
            Some(JournalEvent::Rejected { rule, .. }) => assert_eq!(rule, "kill_switch"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gap_blocks_orders_for_its_symbol() {
        let mut e = engine();
        e.on_trade(&trade(1, "100", "10", 0));
        e.set_gap("BTCUSDT".parse().expect("s"), true);
        let ev = e.on_signal(&signal(Side::Buy, 0, "100"), 1_000);
        match ev.last() {
            Some(JournalEvent::Rejected { rule, .. }) => assert_eq!(rule, "data_gap"),
            other => panic!("{other:?}"),
        }
    }
}
