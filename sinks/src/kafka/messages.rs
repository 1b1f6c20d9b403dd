//! The messages of the Kafka topics, and the mapping from a record to its message.
//!
//! Every field is typed with the model's own types (venues, symbols, sides, intervals, gap
//! reasons) and the constant fields (`version`, `type`) with zero-sized tags, so the JSON Schemas
//! in `schemas/kafka/` are generated from these types ([`topic_schemas`], feature `schema`) and a
//! test keeps the checked-in files equal to what the code produces.

use std::collections::BTreeMap;

use cryptoflow_operators::math::indicators::IndicatorValues;
use cryptoflow_operators::model::{
    Candle, Gap, GapReason, Interval, KlineMismatch, Millis, Output, SentimentRow,
    SentimentWindowRow, Side, SignalRow, StreamKind, Symbol, Venue, WhaleAlert,
};
use rust_decimal::Decimal;
use serde::Serialize;

use super::Topics;

/// Defines a zero-sized field that always serializes to one constant, described in the JSON
/// Schema as that constant.
macro_rules! constant {
    ($(#[$doc:meta])* $name:ident = str $value:literal) => {
        constant!(@def $(#[$doc])* $name, &'static str, $value, serialize_str, "string");
    };
    ($(#[$doc:meta])* $name:ident = u32 $value:literal) => {
        constant!(@def $(#[$doc])* $name, u32, $value, serialize_u32, "integer");
    };
    (@def $(#[$doc:meta])* $name:ident, $ty:ty, $value:literal, $ser:ident, $json:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;
        impl $name {
            /// The constant.
            pub const VALUE: $ty = $value;
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.$ser($value)
            }
        }
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": $json, "const": $value })
            }
        }
    };
}

constant!(
    /// The schema's major version, `1`, in every message's `version`.
    V1 = u32 1
);
constant!(
    /// `type: candle`.
    CandleType = str "candle"
);
constant!(
    /// `type: indicators`.
    IndicatorsType = str "indicators"
);
constant!(
    /// `type: features`.
    FeaturesType = str "features"
);
constant!(
    /// `type: item`: the score of one news item or post.
    ItemType = str "item"
);
constant!(
    /// `type: window`: a per-coin rolling window's new value.
    WindowType = str "window"
);
constant!(
    /// `type: signal`: a strategy signal.
    SignalType = str "signal"
);

/// Version of every message schema (the `version` field).
pub const SCHEMA_VERSION: u32 = V1::VALUE;

/// A trade with its analytics, on `crypto-trades`. Key: the symbol. Consumers deduplicate by
/// (venue, symbol, trade_id): after a crash a trade may be published again.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow trade v1"))]
pub struct TradeMsg<'a> {
    /// Schema version.
    pub version: V1,
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: &'a Symbol,
    /// Trade id (aggregate id for aggTrades), consecutive per symbol.
    pub trade_id: u64,
    /// Price, exact decimal as a string.
    pub price: Decimal,
    /// Quantity, exact decimal as a string.
    pub qty: Decimal,
    /// Taker side.
    pub side: Side,
    /// Exchange trade time, ms since the epoch.
    pub ts_exchange: Millis,
    /// Receive time, ms since the epoch.
    pub ts_received: Millis,
    /// First trade id of an aggTrade, else null.
    pub first_trade_id: Option<u64>,
    /// Last trade id of an aggTrade, else null.
    pub last_trade_id: Option<u64>,
    /// Simple moving average of the price (decimal string).
    pub moving_average: Decimal,
    /// EMA of the price once warmed up, else null.
    pub ema: Option<f64>,
    /// Notional at or above the whale threshold.
    pub is_whale: bool,
}

/// A candle update on `crypto-prices` (`type: candle`). Key: the symbol. The last message of an
/// (interval, open_time) wins; a final candle is never followed by a forming one.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CandleMsg<'a> {
    /// Schema version.
    pub version: V1,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: CandleType,
    /// The candle: venue, symbol, interval, open and close time, OHLC, volumes, VWAP, trade
    /// count and ids, and whether it is final.
    #[serde(flatten)]
    pub candle: &'a Candle,
}

/// An alert on `crypto-alerts`. Key: the symbol.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow alert v1"))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertMsg<'a> {
    /// A trade whose notional reached the whale threshold.
    Whale {
        /// Schema version.
        version: V1,
        /// Venue.
        venue: Venue,
        /// Symbol.
        symbol: &'a Symbol,
        /// Trade id.
        trade_id: u64,
        /// Price.
        price: Decimal,
        /// Quantity.
        qty: Decimal,
        /// Taker side.
        side: Side,
        /// The traded value in the quote asset (COIN-M: contracts × contract size).
        notional: Decimal,
        /// Threshold that applied (quote currency).
        threshold: Decimal,
        /// Exchange time, ms.
        ts_exchange: Millis,
    },
    /// A closed exchange kline that disagrees with the candle computed from trades.
    KlineMismatch {
        /// Schema version.
        version: V1,
        /// Venue.
        venue: Venue,
        /// Symbol.
        symbol: &'a Symbol,
        /// Interval.
        interval: Interval,
        /// Open time, ms.
        open_time: Millis,
        /// Fields that differ.
        fields: &'a [String],
    },
}

/// Whether the Kafka sink started or stopped.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// The sink connected.
    Started,
    /// The sink shut down after its last flush.
    Stopped,
}

/// An event on `crypto-events`. Key: the symbol (`cryptoflow` for lifecycle events).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow event v1"))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventMsg<'a> {
    /// A possible hole in a stream (a reconnect, an id hole, a restart).
    Gap {
        /// Schema version.
        version: V1,
        /// Venue.
        venue: Venue,
        /// Symbol.
        symbol: &'a Symbol,
        /// Stream kind.
        stream: StreamKind,
        /// Why the gap exists.
        reason: GapReason,
        /// Data may be missing from this time, ms.
        since: Millis,
        /// … until this time, ms.
        until: Millis,
        /// First missing id, for id holes.
        from_id: Option<u64>,
        /// Last missing id, for id holes.
        to_id: Option<u64>,
        /// True when the REST refill delivered every missing id.
        refilled: bool,
        /// Why a hole stayed open.
        detail: &'a str,
    },
    /// A trade that arrived after its candle was final.
    LateTrade {
        /// Schema version.
        version: V1,
        /// Venue.
        venue: Venue,
        /// Symbol.
        symbol: &'a Symbol,
        /// Trade id.
        trade_id: u64,
        /// Interval of the candle it missed.
        interval: Interval,
        /// Open time of that candle, ms.
        candle_open_time: Millis,
        /// Exchange time of the trade, ms.
        ts_exchange: Millis,
    },
    /// The sink started or stopped.
    Lifecycle {
        /// Schema version.
        version: V1,
        /// What happened.
        event: Lifecycle,
        /// Process id.
        pid: u32,
        /// Wall-clock time, ms.
        at: Millis,
    },
}

/// The fields that open every per-candle message after the candle itself (indicators,
/// features); `T` is the message's `type` tag.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "CandleHeader_{T}"))]
pub struct CandleHeader<'a, T> {
    /// Schema version.
    pub version: V1,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: T,
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: &'a Symbol,
    /// Interval.
    pub interval: Interval,
    /// Candle open time, ms.
    pub open_time: Millis,
    /// Candle close time, ms (the as-of time).
    pub close_time: Millis,
}

impl<'a, T: Default> CandleHeader<'a, T> {
    fn new(
        venue: Venue,
        symbol: &'a Symbol,
        interval: Interval,
        open_time: Millis,
        close_time: Millis,
    ) -> Self {
        CandleHeader {
            version: V1,
            kind: T::default(),
            venue,
            symbol,
            interval,
            open_time,
            close_time,
        }
    }
}

/// The indicators of a final candle on `crypto-prices` (`type: indicators`). Key: the symbol.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IndicatorsMsg<'a> {
    /// Version, type, candle key and times.
    #[serde(flatten)]
    pub header: CandleHeader<'a, IndicatorsType>,
    /// Close price.
    pub close: Decimal,
    /// The values (null while warming up).
    #[serde(flatten)]
    pub values: &'a IndicatorValues,
}

/// A message on `crypto-prices`: a candle update or the indicators of a final candle.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow crypto-prices v1"))]
#[serde(untagged)]
pub enum PricesMsg<'a> {
    /// `type: candle`.
    Candle(CandleMsg<'a>),
    /// `type: indicators`.
    Indicators(IndicatorsMsg<'a>),
}

/// A point-in-time ML feature vector at a final candle on `crypto-features` (`type: features`;
/// catalogue: docs/FEATURES.md). Key: the symbol. One message per (symbol, interval, open_time).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow features v1"))]
pub struct FeaturesMsg<'a> {
    /// Version, type, candle key and times.
    #[serde(flatten)]
    pub header: CandleHeader<'a, FeaturesType>,
    /// Feature name → value (null: not available yet).
    #[cfg_attr(feature = "schema", schemars(extend("minProperties" = 80)))]
    pub features: BTreeMap<&'static str, Option<f64>>,
}

/// A message on `crypto-sentiment` with the fields of its row; `T` is its `type` tag.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "SentimentMsg_{T}"))]
pub struct SentimentMsg<'a, T, R> {
    /// Schema version.
    pub version: V1,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: T,
    /// The row's fields.
    #[serde(flatten)]
    pub row: &'a R,
}

/// A message on `crypto-sentiment`. `type: item`: the score of one news item or Reddit post (key:
/// its first coin, else its item key; one message per item and model). `type: window`: the new
/// value of a per-coin rolling window (key: the coin); a window's later message replaces its
/// earlier one.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow sentiment v1"))]
#[serde(untagged)]
pub enum SentimentTopicMsg<'a> {
    /// `type: item`.
    Item(SentimentMsg<'a, ItemType, SentimentRow>),
    /// `type: window`.
    Window(SentimentMsg<'a, WindowType, SentimentWindowRow>),
}

/// A strategy signal at a final candle on `crypto-signals` (`type: signal`). Key: the symbol.
/// One message per signal id; after a crash a signal may be published again (same id).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "cryptoflow signal v1"))]
pub struct SignalMsg<'a> {
    /// Schema version.
    pub version: V1,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: SignalType,
    /// The signal: id (deterministic, `cf` + 32 hex digits), strategy, venue, symbol, interval,
    /// candle open and close time, side, price (the candle's close, a decimal string), reason
    /// and the indicator values the strategy compared.
    #[serde(flatten)]
    pub signal: &'a SignalRow,
}

/// One message ready to send.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Key (the symbol).
    pub key: &'a str,
    /// JSON value.
    pub payload: String,
    /// Message timestamp, ms (exchange time where there is one).
    pub timestamp: Option<i64>,
}

pub(super) fn json<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_string(v).unwrap_or_default()
}

fn candle_msg(c: &Candle) -> String {
    json(&CandleMsg {
        version: V1,
        kind: CandleType,
        candle: c,
    })
}

fn whale_msg(w: &WhaleAlert) -> String {
    let t = &w.trade;
    json(&AlertMsg::Whale {
        version: V1,
        venue: t.venue,
        symbol: &t.symbol,
        trade_id: t.trade_id,
        price: t.price,
        qty: t.qty,
        side: t.side,
        notional: w.notional,
        threshold: w.threshold,
        ts_exchange: t.ts_exchange,
    })
}

fn mismatch_msg(m: &KlineMismatch) -> String {
    json(&AlertMsg::KlineMismatch {
        version: V1,
        venue: m.venue,
        symbol: &m.symbol,
        interval: m.interval,
        open_time: m.open_time,
        fields: &m.fields,
    })
}

fn gap_msg(g: &Gap) -> String {
    json(&EventMsg::Gap {
        version: V1,
        venue: g.venue,
        symbol: &g.symbol,
        stream: g.kind,
        reason: g.reason,
        since: g.since,
        until: g.until,
        from_id: g.from_id,
        to_id: g.to_id,
        refilled: g.refilled,
        detail: &g.detail,
    })
}

/// The message of a lifecycle event.
pub(super) fn lifecycle_msg(event: Lifecycle, pid: u32, at: Millis) -> String {
    json(&EventMsg::Lifecycle {
        version: V1,
        event,
        pid,
        at,
    })
}

/// The key of a record's topic message: the symbol; for sentiment, the coin (an item: its first
/// coin, else its item key). `None`: the record has no topic.
pub fn topic_key(record: &Output) -> Option<&str> {
    Some(match record {
        Output::Trade(e) => e.trade.symbol.as_str(),
        Output::Candle(c) => c.symbol.as_str(),
        Output::Whale(w) => w.trade.symbol.as_str(),
        Output::Mismatch(m) => m.symbol.as_str(),
        Output::Gap(g) => g.symbol.as_str(),
        Output::Late(l) => l.trade.symbol.as_str(),
        Output::Indicators(r) => r.symbol.as_str(),
        Output::Features(f) => f.symbol.as_str(),
        Output::Sentiment(s) => s.coins.first().unwrap_or(&s.item_key).as_str(),
        Output::SentimentWindow(w) => w.coin.as_str(),
        Output::Signal(s) => s.signal.symbol.as_str(),
        Output::Quality(_) | Output::Polled(_) => return None,
    })
}

/// Maps a record to its topic message (`None`: the record has no topic, e.g. ledger rows).
pub fn outgoing<'a>(topics: &'a Topics, record: &'a Output) -> Option<Outgoing<'a>> {
    let key = topic_key(record)?;
    let (topic, payload, timestamp) = match record {
        Output::Trade(e) => {
            let t = &e.trade;
            let agg = t.agg;
            let payload = json(&TradeMsg {
                version: V1,
                venue: t.venue,
                symbol: &t.symbol,
                trade_id: t.trade_id,
                price: t.price,
                qty: t.qty,
                side: t.side,
                ts_exchange: t.ts_exchange,
                ts_received: t.ts_received,
                first_trade_id: agg.map(|a| a.first_trade_id),
                last_trade_id: agg.map(|a| a.last_trade_id),
                moving_average: e.moving_average,
                ema: e.ema.filter(|x| x.is_finite()),
                is_whale: e.is_whale,
            });
            (&topics.trades, payload, t.ts_exchange)
        }
        Output::Candle(c) => (&topics.prices, candle_msg(c), c.open_time),
        Output::Whale(w) => (&topics.alerts, whale_msg(w), w.trade.ts_exchange),
        Output::Mismatch(m) => (&topics.alerts, mismatch_msg(m), m.open_time),
        Output::Gap(g) => (&topics.events, gap_msg(g), g.until),
        Output::Late(l) => (
            &topics.events,
            json(&EventMsg::LateTrade {
                version: V1,
                venue: l.trade.venue,
                symbol: &l.trade.symbol,
                trade_id: l.trade.trade_id,
                interval: l.interval,
                candle_open_time: l.candle_open_time,
                ts_exchange: l.trade.ts_exchange,
            }),
            l.trade.ts_exchange,
        ),
        Output::Indicators(r) => (
            &topics.prices,
            json(&IndicatorsMsg {
                header: CandleHeader::new(
                    r.venue,
                    &r.symbol,
                    r.interval,
                    r.open_time,
                    r.close_time,
                ),
                close: r.close,
                values: &r.values,
            }),
            r.open_time,
        ),
        Output::Features(f) => (
            &topics.features,
            json(&FeaturesMsg {
                header: CandleHeader::new(
                    f.venue,
                    &f.symbol,
                    f.interval,
                    f.open_time,
                    f.close_time,
                ),
                features: f.named().collect(),
            }),
            f.open_time,
        ),
        Output::Sentiment(s) => (
            &topics.sentiment,
            json(&SentimentMsg {
                version: V1,
                kind: ItemType,
                row: s.as_ref(),
            }),
            s.published_at,
        ),
        Output::SentimentWindow(w) => (
            &topics.sentiment,
            json(&SentimentMsg {
                version: V1,
                kind: WindowType,
                row: w.as_ref(),
            }),
            w.window_end,
        ),
        Output::Signal(sig) => (
            &topics.signals,
            json(&SignalMsg {
                version: V1,
                kind: SignalType,
                signal: sig.as_ref(),
            }),
            sig.signal.close_time,
        ),
        // Polled items are stored by the SQL and JSON-lines sinks; no topic.
        Output::Quality(_) | Output::Polled(_) => return None,
    };
    Some(Outgoing {
        topic,
        key,
        payload,
        timestamp: Some(timestamp),
    })
}

/// The JSON Schema (draft 2020-12) of each topic's messages, generated from the message types, as
/// (file name in `schemas/kafka/`, schema). Every object is closed (`additionalProperties:
/// false`): a field is added only with a new schema version.
#[cfg(feature = "schema")]
pub fn topic_schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("crypto-trades.v1.json", topic_schema::<TradeMsg<'static>>()),
        (
            "crypto-prices.v1.json",
            topic_schema::<PricesMsg<'static>>(),
        ),
        ("crypto-alerts.v1.json", topic_schema::<AlertMsg<'static>>()),
        ("crypto-events.v1.json", topic_schema::<EventMsg<'static>>()),
        (
            "crypto-features.v1.json",
            topic_schema::<FeaturesMsg<'static>>(),
        ),
        (
            "crypto-sentiment.v1.json",
            topic_schema::<SentimentTopicMsg<'static>>(),
        ),
        (
            "crypto-signals.v1.json",
            topic_schema::<SignalMsg<'static>>(),
        ),
    ]
}

#[cfg(feature = "schema")]
fn topic_schema<T: schemars::JsonSchema>() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    close_objects(&mut schema);
    schema
}

/// Adds `additionalProperties: false` to every object schema that lists its properties and says
/// nothing about others.
#[cfg(feature = "schema")]
fn close_objects(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert(
                    "additionalProperties".into(),
                    serde_json::Value::Bool(false),
                );
            }
            for (key, child) in map.iter_mut() {
                // Property names are data, not schemas.
                if key != "required" && key != "enum" && key != "const" {
                    close_objects(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
