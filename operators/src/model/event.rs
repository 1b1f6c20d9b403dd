//! What flows into the dataflow: [`Event`], and the context items the features join
//! ([`ContextItem`]), which a restart restores from storage ([`RestoredContext`]).

use serde::{Deserialize, Serialize};

use super::market::{Gap, Kline, Millis, Symbol, Trade};
use super::outputs::SentimentRow;
use super::polled::{day_ms, CoinMarket, MacroObservation, Polled};

/// Anything a source emits into the dataflow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A trade.
    Trade(Trade),
    /// An exchange kline (boxed: klines are rare and large, trades are many and small).
    Kline(Box<Kline>),
    /// A possible hole in a stream.
    Gap(Gap),
    /// An item of a poller (news, social post, market snapshot, macro observation, fund NAV).
    /// It does not move the market watermark.
    Polled(Box<Polled>),
    /// Context restored from storage at a restart (stored sentiment, macro observations): it
    /// feeds the per-coin sentiment windows and the features, and is not written again.
    Context(RestoredContext),
}

/// A context item restored from storage. Items compare, order and hash by (event time, key):
/// a stored item is identified by its key, and its scores are not part of its identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoredContext(pub Box<ContextItem>);

impl RestoredContext {
    fn identity(&self) -> (Millis, String) {
        let key = match self.0.as_ref() {
            ContextItem::Sentiment(r) => format!("sentiment|{}|{}", r.item_key, r.model),
            ContextItem::Macro(m) => Polled::Macro(m.clone()).natural_key(),
            ContextItem::Market(m) => format!(
                "market|{}|{}|{}|{}",
                m.endpoint, m.coin_id, m.vs_currency, m.last_updated
            ),
        };
        (self.0.event_time(), key)
    }
}

impl PartialEq for RestoredContext {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for RestoredContext {}

impl PartialOrd for RestoredContext {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RestoredContext {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

impl std::hash::Hash for RestoredContext {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl Event {
    /// Event time at the exchange, ms.
    pub fn ts_exchange(&self) -> Millis {
        match self {
            Event::Trade(t) => t.ts_exchange,
            Event::Kline(k) => k.ts_exchange,
            Event::Gap(g) => g.until,
            Event::Polled(p) => p.event_time(),
            Event::Context(c) => c.0.event_time(),
        }
    }

    /// The symbol the event belongs to (`None` for polled items, which are not per symbol).
    pub fn symbol(&self) -> Option<Symbol> {
        match self {
            Event::Trade(t) => Some(t.symbol),
            Event::Kline(k) => Some(k.symbol),
            Event::Gap(g) => Some(g.symbol),
            Event::Polled(_) | Event::Context(_) => None,
        }
    }

    /// Whether the event is market data (moves the watermark).
    pub fn is_market(&self) -> bool {
        !matches!(self, Event::Polled(_) | Event::Context(_))
    }
}

/// Context items a feature vector may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContextItem {
    /// A scored news item or post.
    Sentiment(SentimentRow),
    /// A macro observation (one vintage).
    Macro(MacroObservation),
    /// A CoinGecko snapshot.
    Market(Box<CoinMarket>),
}

impl ContextItem {
    /// When the item became known: publication time, a vintage's first real-time day, a
    /// snapshot's update time.
    pub fn event_time(&self) -> Millis {
        match self {
            ContextItem::Sentiment(r) => r.published_at,
            ContextItem::Macro(m) => day_ms(m.realtime_start),
            ContextItem::Market(m) => m.last_updated,
        }
    }
}
