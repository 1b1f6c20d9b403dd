//! Binance payloads: private wire types and decoders into normalized events.
//!
//! Shapes follow Binance's WebSocket streams documentation (spot:
//! <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>; USDⓈ-M and
//! COIN-M futures: "Websocket Market Streams" under
//! <https://developers.binance.com/docs/derivatives>), the REST market-data items and the public
//! dumps at data.binance.vision. One pass of `serde_json` over borrowed strings decodes every
//! frame kind: plain payloads, the combined-stream wrapper `{"stream","data"}`, and the capture
//! format `{"ts_received","frame"}` that `cryptoflow record` writes.
//!
//! Frames are sorted three ways:
//! - processed: `trade`, `aggTrade`, `kline` (intervals of the model), `serverShutdown`, and the
//!   REST `aggTrades` / `historicalTrades` items (which carry no symbol: it must be given);
//! - ignored, counted per type ([`Control::ignored_type`]): every other documented stream or
//!   event type (book tickers, depth, tickers, mark prices, liquidations, index klines, `kline_1M`,
//!   array streams such as `!ticker@arr`, request answers and errors), and any other
//!   `{"e":<name>,"E":<ms>}` event;
//! - dead letters ([`DecodeError`]): not JSON, truncated, of the wrong shape, or a processed type
//!   with a missing or invalid field.

use std::borrow::Cow;
use std::str::FromStr;

use cryptoflow_operators::model::{
    AggIds, Event, Interval, Kline, Millis, ModelError, Side, Symbol, Trade, Venue,
};
use rust_decimal::Decimal;
use serde::Deserialize;

/// Puts `venue` on a decoded market event (the decoders know the payload, the source its venue).
pub fn set_venue(e: &mut Event, venue: Venue) {
    match e {
        Event::Trade(t) => t.venue = venue,
        Event::Kline(k) => k.venue = venue,
        Event::Gap(g) => g.venue = venue,
        Event::Polled(_) | Event::Context(_) => {}
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, truncated, or a field of the wrong JSON type.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A decimal field that does not parse (NaN, empty, garbage).
    #[error("field `{field}` is not a decimal number: {value:?}")]
    InvalidNumber {
        /// Field name.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A price or quantity that is zero or negative.
    #[error("field `{field}` must be positive, got {value}")]
    NotPositive {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// An event type cryptoflow does not decode.
    #[error("unsupported event type {0:?}")]
    UnknownEvent(String),
    /// A symbol or interval outside the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A CSV line of the wrong shape.
    #[error("CSV line: {0}")]
    Csv(String),
    /// A REST trade item (`aggTrades`, `historicalTrades`) carries no symbol and none was given.
    #[error("a REST `{0}` item carries no symbol: say whose trades these are (replay --symbol)")]
    NoSymbol(&'static str),
    /// Well-formed JSON that is no Binance frame cryptoflow knows (e.g. an array of trades).
    #[error("unsupported frame: {0}")]
    Unsupported(&'static str),
}

impl DecodeError {
    /// A short, stable name of the error kind (for counters and log-once).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "json",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::InvalidNumber { .. } => "invalid_number",
            DecodeError::NotPositive { .. } => "not_positive",
            DecodeError::UnknownEvent(_) => "unknown_event",
            DecodeError::Model(_) => "model",
            DecodeError::Csv(_) => "csv",
            DecodeError::NoSymbol(_) => "no_symbol",
            DecodeError::Unsupported(_) => "unsupported",
        }
    }
}

/// A frame that is not market data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `{"result":…,"id":…}`: answer to SUBSCRIBE and friends.
    Response {
        /// Request id.
        id: Option<i64>,
    },
    /// `{"code":…,"msg":…}`: the server rejected a request (a bad SUBSCRIBE, invalid JSON sent).
    Error {
        /// Binance's error code.
        code: i64,
        /// Binance's message (cut to 200 characters).
        msg: String,
    },
    /// `{"e":"serverShutdown","E":…}`: the server will close the connection soon.
    ServerShutdown {
        /// Event time, ms.
        at: Millis,
    },
    /// A futures `trade` that did not fill in the order book (`"X"` other than `MARKET`:
    /// `INSURANCE_FUND`, `ADL`, `NA`). It is not part of the tape (Binance leaves such trades out
    /// of `aggTrade` and of the REST trade lists too), but its id is taken, so the live source
    /// counts it as seen instead of opening a hole for it.
    OffBookTrade {
        /// Symbol.
        symbol: Symbol,
        /// Trade id (`t`).
        trade_id: u64,
        /// The `X` value.
        kind: String,
    },
    /// A Binance stream or event type cryptoflow does not turn into events, by type: the event
    /// type `e` (`24hrTicker`, `markPriceUpdate`, …), `kline_<interval>` for kline intervals
    /// outside the model, or a name for payloads without `e` (`bookTicker`, `partialDepth`,
    /// `emptyArray`). Array streams count once per frame, under the type of their first item.
    Ignored(Cow<'static, str>),
}

impl Control {
    /// The type under which this frame counts as ignored: `response`, `error`, or the
    /// [`Control::Ignored`] type; `None` for `serverShutdown`, which is acted upon.
    pub fn ignored_type(&self) -> Option<&str> {
        match self {
            Control::Response { .. } => Some("response"),
            Control::Error { .. } => Some("error"),
            Control::ServerShutdown { .. } => None,
            Control::Ignored(t) => Some(t.as_ref()),
            Control::OffBookTrade { .. } => Some("offBookTrade"),
        }
    }
}

/// Documented event types (`e`) of streams cryptoflow does not process, counted under their own
/// name even without an event time. Any other `e` with an integer `E` is ignored too (counted
/// under its name); an `e` without `E` is a dead letter.
///
/// Spot: <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>;
/// USDⓈ-M: <https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams>;
/// COIN-M: <https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams>.
const IGNORED_EVENTS: [&str; 17] = [
    "24hrTicker",
    "24hrMiniTicker",
    "1hTicker",
    "4hTicker",
    "1dTicker",
    "avgPrice",
    "bookTicker",
    "depthUpdate",
    "markPriceUpdate",
    "indexPriceUpdate",
    "forceOrder",
    "continuous_kline",
    "indexPrice_kline",
    "markPrice_kline",
    "compositeIndex",
    "contractInfo",
    "assetIndexUpdate",
];

/// Event types that are decoded into events or acted upon.
const PROCESSED_EVENTS: [&str; 4] = ["trade", "aggTrade", "kline", "serverShutdown"];

/// Every kline interval Binance documents, with the type under which a kline of an interval the
/// model lacks (`1M`: calendar months) is ignored.
const KLINE_INTERVALS: [(&str, &str); 16] = [
    ("1s", "kline_1s"),
    ("1m", "kline_1m"),
    ("3m", "kline_3m"),
    ("5m", "kline_5m"),
    ("15m", "kline_15m"),
    ("30m", "kline_30m"),
    ("1h", "kline_1h"),
    ("2h", "kline_2h"),
    ("4h", "kline_4h"),
    ("6h", "kline_6h"),
    ("8h", "kline_8h"),
    ("12h", "kline_12h"),
    ("1d", "kline_1d"),
    ("3d", "kline_3d"),
    ("1w", "kline_1w"),
    ("1M", "kline_1M"),
];

/// The ignored type of an event `e` (with `has_time`: the frame has an integer `E`), or `None`
/// when the frame is not a Binance event cryptoflow may skip.
fn ignored_event(e: &str, has_time: bool) -> Option<Cow<'static, str>> {
    if let Some(known) = IGNORED_EVENTS.iter().find(|k| **k == e) {
        return Some(Cow::Borrowed(*known));
    }
    let name_like =
        !e.is_empty() && e.len() <= 40 && e.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    (has_time && name_like && !PROCESSED_EVENTS.contains(&e)).then(|| Cow::Owned(e.to_string()))
}

/// Classifies a frame that the typed decoder rejected but that is valid JSON (an array stream, a
/// ticker whose `l` is a price, …): `Some` when it is a Binance frame to skip, `None` when the
/// typed decoder's error stands.
fn ignorable_value(v: &serde_json::Value, depth: u8) -> Option<Control> {
    use serde_json::Value;
    if depth > 4 {
        return None;
    }
    match v {
        Value::Array(items) => {
            let mut first = None;
            for item in items {
                match ignorable_value(item, depth + 1)? {
                    Control::Ignored(t) => {
                        first.get_or_insert(t);
                    }
                    _ => return None,
                }
            }
            Some(Control::Ignored(
                first.unwrap_or(Cow::Borrowed("emptyArray")),
            ))
        }
        Value::Object(o) => {
            if let Some(frame) = o.get("frame") {
                return ignorable_value(frame, depth + 1);
            }
            if let Some(data) = o.get("data") {
                return ignorable_value(data, depth + 1);
            }
            match o.get("e") {
                Some(Value::String(e)) => {
                    let has_time = o.get("E").is_some_and(|t| t.is_i64() || t.is_u64());
                    ignored_event(e, has_time).map(Control::Ignored)
                }
                Some(_) => None,
                None => {
                    let has = |k: &str| o.contains_key(k);
                    if let (Some(code), Some(msg)) = (
                        o.get("code").and_then(Value::as_i64),
                        o.get("msg").and_then(Value::as_str),
                    ) {
                        Some(Control::Error {
                            code,
                            msg: msg.chars().take(200).collect(),
                        })
                    } else if has("lastUpdateId") && has("bids") && has("asks") {
                        Some(Control::Ignored(Cow::Borrowed("partialDepth")))
                    } else if has("u") && has("s") && has("b") {
                        Some(Control::Ignored(Cow::Borrowed("bookTicker")))
                    } else {
                        None
                    }
                }
            }
        }
        _ => None,
    }
}

/// What one frame decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A market-data event.
    Event(Event),
    /// A control frame.
    Control(Control),
}

/// An unsigned integer where the same key carries other types in other payloads.
#[derive(Default)]
struct LooseU64(Option<u64>);

impl<'de> Deserialize<'de> for LooseU64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LooseU64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LooseU64, E> {
                Ok(LooseU64(Some(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LooseU64, E> {
                u64::try_from(v)
                    .map(|v| LooseU64(Some(v)))
                    .map_err(|_| E::custom(format!("negative id {v}")))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<LooseU64, E> {
                Ok(LooseU64(None))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<LooseU64, E> {
                Ok(LooseU64(None))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<LooseU64, E> {
                Ok(LooseU64(None))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LooseU64, E> {
                Ok(LooseU64(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LooseU64, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(LooseU64(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LooseU64, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(LooseU64(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Wire kline object (`k`).
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct WireKline<'a> {
    t: Option<i64>,
    T: Option<i64>,
    #[serde(borrow)]
    s: Option<Cow<'a, str>>,
    #[serde(borrow)]
    i: Option<Cow<'a, str>>,
    f: Option<i64>,
    L: Option<i64>,
    #[serde(borrow)]
    o: Option<Cow<'a, str>>,
    #[serde(borrow)]
    c: Option<Cow<'a, str>>,
    #[serde(borrow)]
    h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    l: Option<Cow<'a, str>>,
    #[serde(borrow)]
    v: Option<Cow<'a, str>>,
    n: Option<u64>,
    x: Option<bool>,
    #[serde(borrow)]
    q: Option<Cow<'a, str>>,
    #[serde(borrow)]
    V: Option<Cow<'a, str>>,
    #[serde(borrow)]
    Q: Option<Cow<'a, str>>,
}

/// Wire frame: the union of every payload's fields, so one pass decodes any of them.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Wire<'a> {
    #[serde(borrow)]
    e: Option<Cow<'a, str>>,
    E: Option<i64>,
    #[serde(borrow)]
    s: Option<Cow<'a, str>>,
    t: Option<u64>,
    // `a` is the aggregate id in aggTrade, but the ask in bookTicker and depthUpdate.
    #[serde(default)]
    a: LooseU64,
    #[serde(borrow)]
    p: Option<Cow<'a, str>>,
    #[serde(borrow)]
    q: Option<Cow<'a, str>>,
    f: Option<u64>,
    l: Option<u64>,
    T: Option<i64>,
    m: Option<bool>,
    // Futures `trade`: MARKET, INSURANCE_FUND, ADL or NA.
    #[serde(borrow)]
    X: Option<Cow<'a, str>>,
    #[serde(borrow)]
    k: Option<WireKline<'a>>,
    // Spot bookTicker has `u`, `s`, `b` and `a` but no `e`.
    u: Option<u64>,
    b: Option<serde::de::IgnoredAny>,
    // Combined-stream wrapper.
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    data: Option<Box<Wire<'a>>>,
    // Responses to SUBSCRIBE etc.
    id: Option<serde_json::Value>,
    result: Option<serde_json::Value>,
    // Error answers `{"code","msg"}`.
    code: Option<i64>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    // Spot partial book depth `{"lastUpdateId","bids","asks"}`.
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<serde::de::IgnoredAny>,
    bids: Option<serde::de::IgnoredAny>,
    asks: Option<serde::de::IgnoredAny>,
    // REST `historicalTrades` / `trades` items (with `id`).
    #[serde(borrow)]
    price: Option<Cow<'a, str>>,
    #[serde(borrow)]
    qty: Option<Cow<'a, str>>,
    time: Option<i64>,
    #[serde(rename = "isBuyerMaker")]
    is_buyer_maker: Option<bool>,
    // Capture format written by `cryptoflow record`.
    ts_received: Option<i64>,
    frame: Option<Box<Wire<'a>>>,
    #[serde(borrow)]
    raw: Option<Cow<'a, str>>,
}

fn dec(field: &'static str, v: Option<&Cow<'_, str>>) -> Result<Decimal, DecodeError> {
    let s = v.ok_or(DecodeError::MissingField(field))?;
    let d = Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|_| DecodeError::InvalidNumber {
            field,
            value: s.chars().take(40).collect(),
        })?;
    Ok(d)
}

fn positive(field: &'static str, v: Option<&Cow<'_, str>>) -> Result<Decimal, DecodeError> {
    let d = dec(field, v)?;
    if d <= Decimal::ZERO {
        return Err(DecodeError::NotPositive {
            field,
            value: d.to_string(),
        });
    }
    Ok(d)
}

fn non_negative(field: &'static str, v: Option<&Cow<'_, str>>) -> Result<Decimal, DecodeError> {
    let d = dec(field, v)?;
    if d < Decimal::ZERO {
        return Err(DecodeError::NotPositive {
            field,
            value: d.to_string(),
        });
    }
    Ok(d)
}

fn req<T>(field: &'static str, v: Option<T>) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField(field))
}

/// Decodes one WebSocket frame or capture line.
///
/// `ts_received` is the receive time to stamp on events; a capture line's own `ts_received`
/// takes precedence. REST trade items, which carry no symbol, are errors here; see
/// [`decode_frame_with_symbol`].
pub fn decode_frame(text: &str, ts_received: Millis) -> Result<Decoded, DecodeError> {
    decode_frame_with_symbol(text, ts_received, None)
}

/// [`decode_frame`], with the symbol of REST `aggTrades` / `historicalTrades` items (`{"a","p",
/// "q","f","l","T","m"}`, `{"id","price","qty","time","isBuyerMaker"}`), which carry none;
/// without it such an item is a [`DecodeError::NoSymbol`].
pub fn decode_frame_with_symbol(
    text: &str,
    ts_received: Millis,
    symbol: Option<Symbol>,
) -> Result<Decoded, DecodeError> {
    if let Some(decoded) = fast::decode(text, ts_received) {
        return decoded;
    }
    decode_serde(text, ts_received, symbol)
}

/// The reference decoder (serde), without the fast path.
pub fn decode_frame_serde(text: &str, ts_received: Millis) -> Result<Decoded, DecodeError> {
    decode_serde(text, ts_received, None)
}

fn decode_serde(
    text: &str,
    ts_received: Millis,
    symbol: Option<Symbol>,
) -> Result<Decoded, DecodeError> {
    match serde_json::from_str::<Wire<'_>>(text) {
        Ok(wire) => decode_wire(wire, ts_received, symbol),
        // Valid JSON of another shape (array streams, tickers whose `l` is a price, …) may still
        // be a frame to skip; otherwise the typed decoder's error stands.
        Err(e) => {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                return Err(DecodeError::Json(e.to_string()));
            };
            match ignorable_value(&v, 0) {
                Some(c) => Ok(Decoded::Control(c)),
                None if v
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|i| i.is_object())) =>
                {
                    Err(DecodeError::Unsupported(
                        "an array of trades, klines or REST items; one JSON object per line is expected",
                    ))
                }
                None => Err(DecodeError::Json(e.to_string())),
            }
        }
    }
}

fn decode_wire(
    wire: Wire<'_>,
    ts_received: Millis,
    symbol: Option<Symbol>,
) -> Result<Decoded, DecodeError> {
    if let Some(frame) = wire.frame {
        return decode_wire(*frame, wire.ts_received.unwrap_or(ts_received), symbol);
    }
    if let Some(raw) = wire.raw {
        // A recorded frame that was not JSON: decode it as such to reproduce the error.
        return decode_frame_with_symbol(&raw, wire.ts_received.unwrap_or(ts_received), symbol);
    }
    if let Some(data) = wire.data {
        let _ = wire.stream;
        return decode_wire(*data, ts_received, symbol);
    }
    let Some(e) = wire.e.as_deref() else {
        return decode_untyped(wire, ts_received, symbol);
    };
    match e {
        "trade" => {
            let symbol = Symbol::new(req("s", wire.s.as_deref())?)?;
            if let Some(x) = wire.X.as_deref().filter(|x| *x != "MARKET") {
                return Ok(Decoded::Control(Control::OffBookTrade {
                    symbol,
                    trade_id: req("t", wire.t)?,
                    kind: x.chars().take(32).collect(),
                }));
            }
            let trade = Trade {
                venue: Venue::Binance,
                symbol,
                trade_id: req("t", wire.t)?,
                price: positive("p", wire.p.as_ref())?,
                qty: positive("q", wire.q.as_ref())?,
                side: Side::from_buyer_is_maker(req("m", wire.m)?),
                ts_exchange: req("T", wire.T)?,
                ts_received,
                agg: None,
            };
            Ok(Decoded::Event(Event::Trade(trade)))
        }
        "aggTrade" => {
            let symbol = Symbol::new(req("s", wire.s.as_deref())?)?;
            agg_trade(&wire, symbol, ts_received)
        }
        "kline" => {
            let k = req("k", wire.k)?;
            let label = req("k.i", k.i.as_deref())?;
            let interval = match Interval::from_str(label) {
                Ok(i) => i,
                Err(err) => {
                    // A documented interval the model does not have (`1M`): skipped, counted.
                    return match KLINE_INTERVALS.iter().find(|(l, _)| *l == label) {
                        Some((_, ty)) => Ok(Decoded::Control(Control::Ignored(Cow::Borrowed(*ty)))),
                        None => Err(err.into()),
                    };
                }
            };
            let symbol = Symbol::new(req("s", wire.s.as_deref().or(k.s.as_deref()))?)?;
            let kline = Kline {
                venue: Venue::Binance,
                symbol,
                interval,
                open_time: req("k.t", k.t)?,
                close_time: req("k.T", k.T)?,
                first_trade_id: req("k.f", k.f)?,
                last_trade_id: req("k.L", k.L)?,
                open: non_negative("k.o", k.o.as_ref())?,
                high: non_negative("k.h", k.h.as_ref())?,
                low: non_negative("k.l", k.l.as_ref())?,
                close: non_negative("k.c", k.c.as_ref())?,
                volume: non_negative("k.v", k.v.as_ref())?,
                quote_volume: non_negative("k.q", k.q.as_ref())?,
                trade_count: req("k.n", k.n)?,
                taker_buy_volume: non_negative("k.V", k.V.as_ref())?,
                taker_buy_quote_volume: non_negative("k.Q", k.Q.as_ref())?,
                is_closed: req("k.x", k.x)?,
                ts_exchange: req("E", wire.E)?,
                ts_received,
            };
            Ok(Decoded::Event(Event::Kline(Box::new(kline))))
        }
        "serverShutdown" => Ok(Decoded::Control(Control::ServerShutdown {
            at: wire.E.unwrap_or(0),
        })),
        other => match ignored_event(other, wire.E.is_some()) {
            Some(ty) => Ok(Decoded::Control(Control::Ignored(ty))),
            None => Err(DecodeError::UnknownEvent(other.chars().take(40).collect())),
        },
    }
}

/// An `aggTrade` payload or REST `aggTrades` item for `symbol`.
fn agg_trade(wire: &Wire<'_>, symbol: Symbol, ts_received: Millis) -> Result<Decoded, DecodeError> {
    let trade = Trade {
        venue: Venue::Binance,
        symbol,
        trade_id: req("a", wire.a.0)?,
        price: positive("p", wire.p.as_ref())?,
        qty: positive("q", wire.q.as_ref())?,
        side: Side::from_buyer_is_maker(req("m", wire.m)?),
        ts_exchange: req("T", wire.T)?,
        ts_received,
        agg: Some(AggIds {
            first_trade_id: req("f", wire.f)?,
            last_trade_id: req("l", wire.l)?,
        }),
    };
    Ok(Decoded::Event(Event::Trade(trade)))
}

/// The symbol of a REST item: its own `s` if any (some archives add it), else the one given.
fn rest_symbol(
    own: Option<&str>,
    given: Option<Symbol>,
    item: &'static str,
) -> Result<Symbol, DecodeError> {
    match own {
        Some(s) => Ok(Symbol::new(s)?),
        None => given.ok_or(DecodeError::NoSymbol(item)),
    }
}

/// A JSON object without `e`: an answer to a request, a REST trade item, a spot book ticker or
/// partial depth snapshot (both without `e`), or a dead letter.
fn decode_untyped(
    wire: Wire<'_>,
    ts_received: Millis,
    symbol: Option<Symbol>,
) -> Result<Decoded, DecodeError> {
    if let (Some(code), Some(msg)) = (wire.code, wire.msg.as_deref()) {
        return Ok(Decoded::Control(Control::Error {
            code,
            msg: msg.chars().take(200).collect(),
        }));
    }
    // REST `historicalTrades` / `trades`: `{"id","price","qty","quoteQty","time","isBuyerMaker"
    // [,"isBestMatch"]}` (spot <https://developers.binance.com/docs/binance-spot-api-docs/rest-api>,
    // USDⓈ-M `/fapi/v1/trades` without `isBestMatch`).
    if wire.price.is_some() || wire.is_buyer_maker.is_some() {
        let symbol = rest_symbol(wire.s.as_deref(), symbol, "historicalTrades")?;
        let trade_id = match &wire.id {
            None => return Err(DecodeError::MissingField("id")),
            Some(v) => v.as_u64().ok_or_else(|| {
                DecodeError::Json(format!("field `id` is not an unsigned integer: {v}"))
            })?,
        };
        let trade = Trade {
            venue: Venue::Binance,
            symbol,
            trade_id,
            price: positive("price", wire.price.as_ref())?,
            qty: positive("qty", wire.qty.as_ref())?,
            side: Side::from_buyer_is_maker(req("isBuyerMaker", wire.is_buyer_maker)?),
            ts_exchange: req("time", wire.time)?,
            ts_received,
            agg: None,
        };
        return Ok(Decoded::Event(Event::Trade(trade)));
    }
    // REST `aggTrades`: `{"a","p","q","f","l","T","m"[,"M"]}` (spot with `M`, USDⓈ-M without).
    if wire.a.0.is_some() && wire.p.is_some() && wire.T.is_some() {
        let symbol = rest_symbol(wire.s.as_deref(), symbol, "aggTrades")?;
        return agg_trade(&wire, symbol, ts_received);
    }
    if wire.result.is_some() || wire.id.is_some() {
        return Ok(Decoded::Control(Control::Response {
            id: wire.id.and_then(|v| v.as_i64()),
        }));
    }
    if wire.last_update_id.is_some() && wire.bids.is_some() && wire.asks.is_some() {
        return Ok(Decoded::Control(Control::Ignored(Cow::Borrowed(
            "partialDepth",
        ))));
    }
    if wire.u.is_some() && wire.s.is_some() && wire.b.is_some() {
        return Ok(Decoded::Control(Control::Ignored(Cow::Borrowed(
            "bookTicker",
        ))));
    }
    Err(DecodeError::MissingField("e"))
}

/// A fast path for the hot payloads (`trade` and `aggTrade`, plain or in the combined-stream
/// wrapper or a capture line): a single scan over a flat JSON object. Anything unusual (escapes,
/// nested values, duplicate keys, other event types, numbers of the wrong shape) returns `None`
/// and the frame goes through the serde path, which is the reference behaviour; the fast path
/// only ever agrees with it (tested against it on every fixture).
mod fast {
    use super::*;

    #[derive(Default)]
    struct Fields<'a> {
        e: Option<&'a str>,
        s: Option<&'a str>,
        t: Option<&'a str>,
        a: Option<&'a str>,
        p: Option<&'a str>,
        q: Option<&'a str>,
        f: Option<&'a str>,
        l: Option<&'a str>,
        tt: Option<&'a str>,
        ee: Option<&'a str>,
        m: Option<&'a str>,
        x: Option<&'a str>,
    }

    /// Scans a flat object starting at `b[i] == '{'`; returns the fields and the index after `}`.
    fn flat_object(src: &str, mut i: usize) -> Option<(Fields<'_>, usize)> {
        let b = src.as_bytes();
        let ws = |i: &mut usize| {
            while *i < b.len() && is_json_ws(char::from(b[*i])) {
                *i += 1;
            }
        };
        ws(&mut i);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        let mut out = Fields::default();
        ws(&mut i);
        if b.get(i) == Some(&b'}') {
            return Some((out, i + 1));
        }
        loop {
            ws(&mut i);
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let ks = i + 1;
            // A raw control character is not JSON (in a key as in a value): the serde path
            // refuses it.
            let ke = ks
                + b[ks..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            if b[ke] != b'"' {
                return None;
            }
            let key = &src[ks..ke];
            i = ke + 1;
            ws(&mut i);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            ws(&mut i);
            let (val, is_str) = match *b.get(i)? {
                b'"' => {
                    let vs = i + 1;
                    let ve = vs
                        + b[vs..]
                            .iter()
                            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                    if b[ve] != b'"' {
                        return None;
                    }
                    i = ve + 1;
                    (&src[vs..ve], true)
                }
                b'{' | b'[' => return None,
                _ => {
                    let vs = i;
                    while i < b.len()
                        && !matches!(b[i], b',' | b'}')
                        && !is_json_ws(char::from(b[i]))
                    {
                        i += 1;
                    }
                    (&src[vs..i], false)
                }
            };
            let slot = match key {
                "e" if is_str => &mut out.e,
                "s" if is_str => &mut out.s,
                "p" if is_str => &mut out.p,
                "q" if is_str => &mut out.q,
                "t" if !is_str => &mut out.t,
                "a" if !is_str => &mut out.a,
                "f" if !is_str => &mut out.f,
                "l" if !is_str => &mut out.l,
                "T" if !is_str => &mut out.tt,
                "E" if !is_str => &mut out.ee,
                "m" if !is_str => &mut out.m,
                "X" if is_str => &mut out.x,
                "e" | "s" | "p" | "q" | "t" | "a" | "f" | "l" | "T" | "E" | "m" | "X" => {
                    return None
                }
                // Every other key the serde path knows (it types them, and refuses a repeated
                // one): let it decide.
                "stream" | "data" | "id" | "result" | "ts_received" | "frame" | "raw" | "k"
                | "u" | "b" | "code" | "msg" | "lastUpdateId" | "bids" | "asks" | "price"
                | "qty" | "time" | "isBuyerMaker" => return None,
                _ => {
                    // Other flat values are ignored, but must be valid JSON scalars.
                    if !is_str && !is_json_number(val) && !matches!(val, "true" | "false" | "null")
                    {
                        return None;
                    }
                    ws(&mut i);
                    match b.get(i) {
                        Some(b',') => {
                            i += 1;
                            continue;
                        }
                        Some(b'}') => return Some((out, i + 1)),
                        _ => return None,
                    }
                }
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(val);
            ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Some((out, i + 1)),
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn is_json_number(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = usize::from(b.first() == Some(&b'-'));
        let digits = |i: &mut usize| {
            let st = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - st
        };
        let st = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && b[st] == b'0') {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return false;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return false;
            }
        }
        i == b.len()
    }

    fn uint(v: Option<&str>) -> Option<Option<u64>> {
        match v {
            None => Some(None),
            Some(s)
                if !s.is_empty()
                    && s.len() <= 19
                    && s.bytes().all(|c| c.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0')) =>
            {
                s.parse().ok().map(Some)
            }
            Some(_) => None,
        }
    }

    fn int(v: Option<&str>) -> Option<Option<i64>> {
        match v {
            Some(s) if s.starts_with('-') => {
                uint(Some(&s[1..])).map(|x| x.and_then(|x| i64::try_from(x).ok().map(|x| -x)))
            }
            other => uint(other).map(|x| x.and_then(|x| i64::try_from(x).ok())),
        }
    }

    fn trailing_ws_only(src: &str, i: usize) -> bool {
        src[i..].bytes().all(|c| is_json_ws(char::from(c)))
    }

    /// JSON's whitespace: space, tab, line feed, carriage return (not Rust's wider
    /// `char::is_whitespace`, which takes a vertical tab or a no-break space too). For a byte,
    /// `char::from(b)`: no byte above 0x7f maps to one of the four.
    fn is_json_ws(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\r')
    }

    pub(super) fn decode(src: &str, ts_received: Millis) -> Option<Result<Decoded, DecodeError>> {
        // Unwrap `{"stream":"…","data":{…}}` and `{"ts_received":N,"frame":{…}}`.
        let trimmed = src.trim_start_matches(is_json_ws);
        let (inner, ts_received) = if let Some(rest) = trimmed.strip_prefix("{\"stream\":\"") {
            let end = rest.find('"')?;
            if rest[..end].bytes().any(|c| c == b'\\' || c < 0x20) {
                return None;
            }
            let rest = rest[end + 1..].strip_prefix(",\"data\":")?;
            let body = rest.trim_end_matches(is_json_ws).strip_suffix('}')?;
            (body, ts_received)
        } else if let Some(rest) = trimmed.strip_prefix("{\"ts_received\":") {
            let comma = rest.find(',')?;
            let ts = int(Some(&rest[..comma]))??;
            let rest = rest[comma..].strip_prefix(",\"frame\":")?;
            let body = rest.trim_end_matches(is_json_ws).strip_suffix('}')?;
            if body
                .trim_start_matches(is_json_ws)
                .starts_with("{\"stream\"")
            {
                return decode(body, ts);
            }
            (body, ts)
        } else {
            (src, ts_received)
        };
        let (f, end) = flat_object(inner, 0)?;
        if !trailing_ws_only(inner, end) {
            return None;
        }
        let agg = match f.e? {
            "trade" => false,
            "aggTrade" => true,
            _ => return None,
        };
        if f.x.is_some_and(|x| x != "MARKET") {
            // A futures trade outside the order book: the serde path decides.
            return None;
        }
        let t = uint(f.t)?;
        let a = uint(f.a)?;
        let fi = uint(f.f)?;
        let li = uint(f.l)?;
        let tt = int(f.tt)?;
        int(f.ee)?;
        let m = match f.m {
            Some("true") => Some(true),
            Some("false") => Some(false),
            None => None,
            Some(_) => return None,
        };
        let p = f.p.map(Cow::Borrowed);
        let q = f.q.map(Cow::Borrowed);
        let build = || -> Result<Decoded, DecodeError> {
            // Same checks in the same order as the serde path, so errors agree.
            let symbol = Symbol::new(req("s", f.s)?)?;
            let trade_id = if agg { req("a", a)? } else { req("t", t)? };
            let price = positive("p", p.as_ref())?;
            let qty = positive("q", q.as_ref())?;
            let side = Side::from_buyer_is_maker(req("m", m)?);
            let ts_exchange = req("T", tt)?;
            let agg = if agg {
                Some(AggIds {
                    first_trade_id: req("f", fi)?,
                    last_trade_id: req("l", li)?,
                })
            } else {
                None
            };
            Ok(Decoded::Event(Event::Trade(Trade {
                venue: Venue::Binance,
                symbol,
                trade_id,
                price,
                qty,
                side,
                ts_exchange,
                ts_received,
                agg,
            })))
        };
        Some(build())
    }
}

/// Kind of a data.binance.vision CSV file, recognized by its column count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvKind {
    /// `id,price,qty,quote_qty,time,is_buyer_maker,is_best_match` (7 columns).
    Trades,
    /// `agg_id,price,qty,first_id,last_id,time,is_buyer_maker,is_best_match` (8 columns).
    AggTrades,
    /// The REST kline array (12 columns).
    Klines,
}

/// Converts a dump timestamp to ms: values above 10^14 are microseconds (newer files).
pub fn dump_ts_to_ms(ts: i64) -> Millis {
    if ts.abs() >= 100_000_000_000_000 {
        ts.div_euclid(1000)
    } else {
        ts
    }
}

fn csv_bool(field: &'static str, s: &str) -> Result<bool, DecodeError> {
    match s.trim() {
        "True" | "true" | "TRUE" | "1" => Ok(true),
        "False" | "false" | "FALSE" | "0" => Ok(false),
        other => Err(DecodeError::Csv(format!(
            "field `{field}` is not a boolean: {other:?}"
        ))),
    }
}

fn csv_int<T: FromStr>(field: &'static str, s: &str) -> Result<T, DecodeError> {
    s.trim().parse().map_err(|_| DecodeError::InvalidNumber {
        field,
        value: s.chars().take(40).collect(),
    })
}

/// True when a CSV line is a header row (its first field is not a number).
pub fn csv_is_header(line: &str) -> bool {
    line.split(',')
        .next()
        .map(|f| f.trim().parse::<i64>().is_err())
        .unwrap_or(true)
}

/// Decodes one data.binance.vision CSV line for `symbol`.
///
/// The kind comes from the column count when `kind` is `None`. `ts_received` for dumps is the
/// trade time itself (no receive time exists for history).
pub fn decode_csv_line(
    line: &str,
    symbol: Symbol,
    kind: Option<CsvKind>,
) -> Result<Event, DecodeError> {
    let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(',').collect();
    let kind = match (kind, f.len()) {
        (Some(k), _) => k,
        (None, 7) => CsvKind::Trades,
        (None, 8) => CsvKind::AggTrades,
        (None, 12) => CsvKind::Klines,
        (None, n) => {
            return Err(DecodeError::Csv(format!(
                "{n} columns; expected 7 (trades), 8 (aggTrades) or 12 (klines)"
            )))
        }
    };
    let need = match kind {
        CsvKind::Trades => 7,
        CsvKind::AggTrades => 8,
        CsvKind::Klines => 12,
    };
    if f.len() < need {
        return Err(DecodeError::Csv(format!(
            "{} columns; {kind:?} needs {need}",
            f.len()
        )));
    }
    let cow = |i: usize| -> Cow<'_, str> { Cow::Borrowed(f[i].trim()) };
    match kind {
        CsvKind::Trades | CsvKind::AggTrades => {
            let (time_col, maker_col) = if kind == CsvKind::Trades {
                (4, 5)
            } else {
                (5, 6)
            };
            let ts = dump_ts_to_ms(csv_int("time", f[time_col])?);
            let agg = if kind == CsvKind::AggTrades {
                Some(AggIds {
                    first_trade_id: csv_int("first_id", f[3])?,
                    last_trade_id: csv_int("last_id", f[4])?,
                })
            } else {
                None
            };
            Ok(Event::Trade(Trade {
                venue: Venue::Binance,
                symbol,
                trade_id: csv_int("id", f[0])?,
                price: positive("price", Some(&cow(1)))?,
                qty: positive("qty", Some(&cow(2)))?,
                side: Side::from_buyer_is_maker(csv_bool("is_buyer_maker", f[maker_col])?),
                ts_exchange: ts,
                ts_received: ts,
                agg,
            }))
        }
        CsvKind::Klines => {
            let open_time = dump_ts_to_ms(csv_int("open_time", f[0])?);
            let close_time = dump_ts_to_ms(csv_int("close_time", f[6])?);
            let len = close_time + 1 - open_time;
            let interval = [
                "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d",
                "3d", "1w",
            ]
            .iter()
            .filter_map(|l| Interval::from_str(l).ok())
            .find(|i| i.millis() == len)
            .ok_or_else(|| {
                DecodeError::Csv(format!("kline length {len} ms is not a known interval"))
            })?;
            Ok(Event::Kline(Box::new(Kline {
                venue: Venue::Binance,
                symbol,
                interval,
                open_time,
                close_time,
                first_trade_id: -1,
                last_trade_id: -1,
                open: non_negative("open", Some(&cow(1)))?,
                high: non_negative("high", Some(&cow(2)))?,
                low: non_negative("low", Some(&cow(3)))?,
                close: non_negative("close", Some(&cow(4)))?,
                volume: non_negative("volume", Some(&cow(5)))?,
                quote_volume: non_negative("quote_volume", Some(&cow(7)))?,
                trade_count: csv_int("count", f[8])?,
                taker_buy_volume: non_negative("taker_buy_volume", Some(&cow(9)))?,
                taker_buy_quote_volume: non_negative("taker_buy_quote_volume", Some(&cow(10)))?,
                is_closed: true,
                ts_exchange: close_time,
                ts_received: close_time,
            })))
        }
    }
}

/// The symbol in a data.binance.vision file name (`BTCUSDT-trades-2024-01-01.csv[.gz]`).
pub fn symbol_from_dump_name(path: &std::path::Path) -> Option<Symbol> {
    let name = path.file_name()?.to_str()?;
    Symbol::new(name.split('-').next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn trade(text: &str) -> Trade {
        match decode_frame(text, 7).unwrap() {
            Decoded::Event(Event::Trade(t)) => t,
            other => panic!("expected a trade, got {other:?}"),
        }
    }

    /// `<symbol>@trade` from the Binance WebSocket streams documentation.
    const TRADE: &str = r#"{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}"#;
    /// `<symbol>@aggTrade` from the same page.
    const AGG: &str = r#"{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}"#;
    /// `<symbol>@kline_<interval>` from the same page.
    const KLINE: &str = r#"{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}"#;

    #[test]
    fn trade_payload() {
        let t = trade(TRADE);
        assert_eq!(t.symbol.as_str(), "BNBBTC");
        assert_eq!((t.trade_id, t.price, t.qty), (12345, d("0.001"), d("100")));
        assert_eq!(
            (t.side, t.ts_exchange, t.ts_received, t.agg),
            (Side::Sell, 1672515782136, 7, None)
        );
    }

    #[test]
    fn agg_trade_payload() {
        let t = trade(AGG);
        assert_eq!(t.trade_id, 12345);
        assert_eq!(
            t.agg,
            Some(AggIds {
                first_trade_id: 100,
                last_trade_id: 105
            })
        );
    }

    #[test]
    fn kline_payload() {
        let Decoded::Event(Event::Kline(k)) = decode_frame(KLINE, 7).unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.open_time, k.close_time, k.interval.label()),
            (1672515780000, 1672515839999, "1m")
        );
        assert_eq!(
            (k.open, k.high, k.low, k.close),
            (d("0.0010"), d("0.0025"), d("0.0015"), d("0.0020"))
        );
        assert_eq!(
            (k.volume, k.quote_volume, k.trade_count, k.is_closed),
            (d("1000"), d("1.0000"), 100, false)
        );
        assert_eq!(
            (k.taker_buy_volume, k.taker_buy_quote_volume),
            (d("500"), d("0.500"))
        );
        assert_eq!(
            (k.first_trade_id, k.last_trade_id, k.ts_exchange),
            (100, 200, 1672515782136)
        );
    }

    #[test]
    fn combined_wrapper_and_capture_format() {
        let wrapped = format!(r#"{{"stream":"bnbbtc@trade","data":{TRADE}}}"#);
        assert_eq!(trade(&wrapped), trade(TRADE));
        let captured = format!(r#"{{"ts_received":99,"frame":{wrapped}}}"#);
        assert_eq!(trade(&captured).ts_received, 99);
    }

    #[test]
    fn control_frames() {
        assert_eq!(
            decode_frame(r#"{"result":null,"id":1}"#, 0).unwrap(),
            Decoded::Control(Control::Response { id: Some(1) })
        );
        assert_eq!(
            decode_frame(r#"{"e":"serverShutdown","E":1700000000000}"#, 0).unwrap(),
            Decoded::Control(Control::ServerShutdown { at: 1700000000000 })
        );
        assert_eq!(
            decode_frame(r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#, 0).unwrap(),
            Decoded::Control(Control::Ignored("bookTicker".into()))
        );
        assert_eq!(
            decode_frame(r#"{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[]}"#, 0).unwrap(),
            Decoded::Control(Control::Ignored("depthUpdate".into()))
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let t = trade(
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"2","T":1,"m":false,"M":true,"X":"MARKET","zz":[1,{"a":2}]}"#,
        );
        assert_eq!((t.side, t.qty), (Side::Buy, d("2")));
    }

    #[test]
    fn bad_payloads_give_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "json"),
            ("not json", "json"),
            (&TRADE[..40], "json"),
            ("[1,2,3]", "json"),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"NaN","q":"1","T":1,"m":true}"#,
                "invalid_number",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"","q":"1","T":1,"m":true}"#,
                "invalid_number",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"-1","T":1,"m":true}"#,
                "not_positive",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"0","q":"1","T":1,"m":true}"#,
                "not_positive",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":-5,"p":"1","q":"1","T":1,"m":true}"#,
                "json",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":1.5,"q":"1","T":1,"m":true}"#,
                "json",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"1","q":"1","T":1,"m":true}"#,
                "missing_field",
            ),
            (
                r#"{"e":"trade","E":1,"s":"BTC/USDT","t":1,"p":"1","q":"1","T":1,"m":true}"#,
                "model",
            ),
            (
                r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,"p":"1","q":"1","T":1,"m":true}"#,
                "missing_field",
            ),
            // `1M` is ignored (see `ignored_frames_by_type`); an interval Binance does not have
            // is not.
            (
                r#"{"e":"kline","E":1,"s":"BTCUSDT","k":{"i":"7x"}}"#,
                "model",
            ),
            (r#"{"e":"kline","E":1,"s":"BTCUSDT"}"#, "missing_field"),
            // An unknown event type without an event time, or with a name no Binance event has.
            (r#"{"e":"outboundAccountPosition"}"#, "unknown_event"),
            (r#"{"e":"no such event!","E":1}"#, "unknown_event"),
            (r#"{"e":"","E":1}"#, "unknown_event"),
            (r#"{"E":1}"#, "missing_field"),
            (r#"{"stream":"x","data":"oops"}"#, "json"),
        ];
        for (input, kind) in cases {
            let err = decode_frame(input, 0).expect_err(input);
            assert_eq!(err.kind(), *kind, "{input}: {err}");
            assert!(!err.to_string().is_empty());
        }
    }

    /// USDⓈ-M `<symbol>@aggTrade` as documented (no `M` field).
    const FUT_AGG: &str = r#"{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;
    /// COIN-M `<symbol>@aggTrade` as documented (contract symbol, `q` in contracts).
    const COINM_AGG: &str = r#"{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSD_200626","p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;
    /// Futures `<symbol>@trade`: the `X` field says whether the fill was in the order book.
    const FUT_TRADE: &str = r#"{"e":"trade","E":1700000000101,"T":1700000000100,"s":"BTCUSDT","t":4123456789,"p":"37000.10","q":"0.005","X":"MARKET","m":false}"#;

    #[test]
    fn futures_payloads() {
        let t = trade(FUT_AGG);
        assert_eq!(
            (t.symbol.as_str(), t.trade_id, t.side, t.ts_exchange),
            ("BTCUSDT", 5933014, Side::Sell, 123456785)
        );
        assert_eq!(
            t.agg,
            Some(AggIds {
                first_trade_id: 100,
                last_trade_id: 105
            })
        );
        let t = trade(COINM_AGG);
        assert_eq!((t.symbol.as_str(), t.qty), ("BTCUSD_200626", d("100")));
        let t = trade(FUT_TRADE);
        assert_eq!(
            (t.trade_id, t.price, t.qty, t.side),
            (4123456789, d("37000.10"), d("0.005"), Side::Buy)
        );
        for kind in ["INSURANCE_FUND", "ADL", "NA"] {
            let frame = FUT_TRADE.replace("MARKET", kind);
            let wrapped = format!(r#"{{"stream":"btcusdt@trade","data":{frame}}}"#);
            for text in [frame.as_str(), wrapped.as_str()] {
                assert_eq!(
                    decode_frame(text, 7).unwrap(),
                    Decoded::Control(Control::OffBookTrade {
                        symbol: Symbol::new("BTCUSDT").unwrap(),
                        trade_id: 4123456789,
                        kind: kind.to_string(),
                    }),
                    "{text}"
                );
            }
        }
    }

    /// Spot WebSocket streams documentation.
    const SPOT: &str =
        "https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams";
    /// USDⓈ-M futures "Websocket Market Streams" pages (one per stream under this root).
    const UM: &str =
        "https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams";
    /// COIN-M futures "Websocket Market Streams" pages.
    const CM: &str =
        "https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams";

    /// Payloads of streams cryptoflow does not process, as documented (field names, value types),
    /// with the page each comes from and the type it is counted under.
    fn ignored_cases() -> Vec<(String, &'static str, &'static str)> {
        let ticker = r#"{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}"#;
        let mini = r#"{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}"#;
        let rolling = |w: &str| {
            format!(
                r#"{{"e":"{w}Ticker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010","h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,"C":1675216573749,"F":0,"L":18150,"n":18151}}"#
            )
        };
        let um_mark = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;
        let um_ticker = r#"{"e":"24hrTicker","E":123456789,"s":"BTCUSDT","p":"0.0015","P":"250.00","w":"0.0018","c":"0.0025","Q":"10","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}"#;
        let um_mini = r#"{"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT","c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}"#;
        let um_book = r#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let asset_index = r#"{"e":"assetIndexUpdate","E":1686749230000,"s":"ADAUSD","i":"0.27462452","b":"0.10000000","a":"0.10000000","B":"0.24716207","A":"0.30208698","q":"0.05000000","g":"0.05000000","Q":"0.26089330","G":"0.28835575"}"#;
        let kline_1m_month = KLINE.replace(r#""i":"1m""#, r#""i":"1M""#);
        let mut cases: Vec<(String, &'static str, &'static str)> = vec![
            // Spot.
            (r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#.into(), SPOT, "bookTicker"),
            (r#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#.into(), SPOT, "depthUpdate"),
            (r#"{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}"#.into(), SPOT, "partialDepth"),
            (ticker.into(), SPOT, "24hrTicker"),
            (mini.into(), SPOT, "24hrMiniTicker"),
            (format!("[{ticker},{ticker}]"), SPOT, "24hrTicker"),
            (format!("[{mini}]"), SPOT, "24hrMiniTicker"),
            (rolling("1h"), SPOT, "1hTicker"),
            (rolling("4h"), SPOT, "4hTicker"),
            (rolling("1d"), SPOT, "1dTicker"),
            (format!("[{}]", rolling("4h")), SPOT, "4hTicker"),
            (r#"{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m","w":"25776.86000000","T":1693907032213}"#.into(), SPOT, "avgPrice"),
            (kline_1m_month, SPOT, "kline_1M"),
            (r#"{"result":null,"id":1}"#.into(), SPOT, "response"),
            (r#"{"result":["btcusdt@aggTrade"],"id":3}"#.into(), SPOT, "response"),
            (r#"{"result":true,"id":2}"#.into(), SPOT, "response"),
            (r#"{"code":0,"msg":"Unknown property","id":5}"#.into(), SPOT, "error"),
            (r#"{"code":3,"msg":"Invalid JSON: expected value at line 1 column 1"}"#.into(), SPOT, "error"),
            // USDⓈ-M futures.
            (um_book.into(), UM, "bookTicker"),
            (r#"{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#.into(), UM, "depthUpdate"),
            // `<symbol>@depth5`: partial depth, also an `e` = "depthUpdate" payload.
            (r#"{"e":"depthUpdate","E":1571889248277,"T":1571889248276,"s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,"b":[["7403.89","0.002"],["7403.90","3.906"]],"a":[["7405.96","3.340"],["7406.63","4.525"]]}"#.into(), UM, "depthUpdate"),
            (um_mark.into(), UM, "markPriceUpdate"),
            (format!("[{um_mark},{um_mark}]"), UM, "markPriceUpdate"),
            (r#"{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}"#.into(), UM, "forceOrder"),
            (r#"{"e":"continuous_kline","E":1607443058651,"ps":"BTCUSDT","ct":"PERPETUAL","k":{"t":1607443020000,"T":1607443079999,"i":"1m","f":116467658886,"L":116468012423,"o":"18787.00","c":"18804.04","h":"18804.04","l":"18786.54","v":"197.664","n":543,"x":false,"q":"3715253.19494","V":"184.769","Q":"3472925.84746","B":"0"}}"#.into(), UM, "continuous_kline"),
            (um_ticker.into(), UM, "24hrTicker"),
            (format!("[{um_ticker}]"), UM, "24hrTicker"),
            (um_mini.into(), UM, "24hrMiniTicker"),
            (format!("[{um_mini},{um_mini}]"), UM, "24hrMiniTicker"),
            (r#"{"e":"compositeIndex","E":1602310596000,"s":"DEFIUSDT","p":"554.41604065","C":"baseAsset","c":[{"b":"BAL","q":"USDT","w":"1.04884844","W":"0.01457800","i":"24.33521021"},{"b":"BAND","q":"USDT","w":"3.53782729","W":"0.03935200","i":"7.26420084"}]}"#.into(), UM, "compositeIndex"),
            (r#"{"e":"contractInfo","E":1669356423908,"s":"IOTAUSDT","ps":"IOTAUSDT","ct":"PERPETUAL","dt":4133404800000,"ot":1569398400000,"cs":"TRADING","bks":[{"bs":1,"bnf":0,"bnc":5000,"mmr":0.01,"cf":0,"mi":21,"ma":50},{"bs":2,"bnf":5000,"bnc":25000,"mmr":0.025,"cf":75,"mi":11,"ma":20}]}"#.into(), UM, "contractInfo"),
            (asset_index.into(), UM, "assetIndexUpdate"),
            (format!("[{asset_index},{asset_index}]"), UM, "assetIndexUpdate"),
            (r#"{"e":"kline","E":1638747660000,"s":"BTCUSDT","k":{"t":1638316800000,"T":1640995199999,"s":"BTCUSDT","i":"1M","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}"#.into(), UM, "kline_1M"),
            // COIN-M futures.
            (r#"{"e":"indexPrice_kline","E":1591267070033,"ps":"BTCUSD","k":{"t":1591267020000,"T":1591267079999,"s":"0","i":"1m","f":1591267020000,"L":1591267070000,"o":"9542.21900000","c":"9542.50440000","h":"9542.71640000","l":"9542.21040000","v":"0","n":51,"x":false,"q":"0","V":"0","Q":"0","B":"0"}}"#.into(), CM, "indexPrice_kline"),
            (r#"{"e":"markPrice_kline","E":1591267398004,"ps":"BTCUSD","k":{"t":1591267380000,"T":1591267439999,"s":"BTCUSD_200626","i":"1m","f":1591267380000,"L":1591267398000,"o":"9539.67161333","c":"9540.82761333","h":"9540.82761333","l":"9539.66961333","v":"0","n":19,"x":false,"q":"0","V":"0","Q":"0","B":"0"}}"#.into(), CM, "markPrice_kline"),
            (r#"{"e":"indexPriceUpdate","E":1591261236000,"i":"BTCUSD","p":"9636.57860000"}"#.into(), CM, "indexPriceUpdate"),
            (r#"{"e":"markPriceUpdate","E":1596095725000,"s":"BTCUSD_201225","p":"10934.62615417","P":"10962.17178236","i":"10933.62615417","r":"","T":0}"#.into(), CM, "markPriceUpdate"),
            (r#"{"e":"bookTicker","u":17242169,"s":"BTCUSD_200626","ps":"BTCUSD","b":"9548.1","B":"52","a":"9548.5","A":"11","T":1591268628155,"E":1591268628166}"#.into(), CM, "bookTicker"),
            // An event type not listed above, shaped like a Binance event (a user-data event).
            (r#"{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,"B":[{"a":"ETH","f":"10000.000000","l":"0.000000"}]}"#.into(), SPOT, "outboundAccountPosition"),
            // An empty array stream (only changed tickers are sent).
            ("[]".into(), SPOT, "emptyArray"),
        ];
        // The combined-stream wrapper around each, and the capture line around that.
        let n = cases.len();
        for i in 0..n {
            let (payload, doc, ty) = cases[i].clone();
            cases.push((format!(r#"{{"stream":"x@y","data":{payload}}}"#), doc, ty));
            cases.push((
                format!(r#"{{"ts_received":5,"frame":{{"stream":"x@y","data":{payload}}}}}"#),
                doc,
                ty,
            ));
        }
        cases
    }

    #[test]
    fn ignored_frames_by_type() {
        for (payload, doc, ty) in ignored_cases() {
            for decoded in [decode_frame(&payload, 0), decode_frame_serde(&payload, 0)] {
                match decoded {
                    Ok(Decoded::Control(c)) => {
                        assert_eq!(c.ignored_type(), Some(ty), "{payload} ({doc})")
                    }
                    other => panic!("{payload} ({doc}): expected ignored {ty}, got {other:?}"),
                }
            }
        }
        assert_eq!(
            decode_frame(
                r#"{"code":2,"msg":"Invalid request: too many parameters"}"#,
                0
            )
            .unwrap(),
            Decoded::Control(Control::Error {
                code: 2,
                msg: "Invalid request: too many parameters".into()
            })
        );
    }

    /// Processed payloads of the futures streams and of every kline interval of the model.
    #[test]
    fn futures_trades_and_klines_of_every_interval_decode() {
        // USDⓈ-M `<symbol>@trade` carries the order type `X`; its aggTrade has no `M`.
        let t = trade(
            r#"{"e":"trade","E":1672515782136,"T":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","X":"MARKET","m":true}"#,
        );
        assert_eq!(
            (t.symbol.as_str(), t.trade_id, t.price, t.side, t.agg),
            ("BTCUSDT", 12345, d("0.001"), Side::Sell, None)
        );
        let t = trade(
            r#"{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#,
        );
        assert_eq!(
            (t.trade_id, t.ts_exchange, t.agg),
            (
                5933014,
                123456785,
                Some(AggIds {
                    first_trade_id: 100,
                    last_trade_id: 105
                })
            )
        );
        for (label, _) in KLINE_INTERVALS.iter().filter(|(l, _)| *l != "1M") {
            let frame = KLINE.replace(r#""i":"1m""#, &format!(r#""i":"{label}""#));
            match decode_frame(&frame, 0) {
                Ok(Decoded::Event(Event::Kline(k))) => assert_eq!(k.interval.label(), *label),
                other => panic!("kline_{label}: {other:?}"),
            }
        }
    }

    /// REST items, one per line: `GET /api/v3/aggTrades` (spot, with `M`), `/fapi/v1/aggTrades`
    /// (without), `GET /api/v3/historicalTrades` and `/fapi/v1/trades` (without `isBestMatch`),
    /// from <https://developers.binance.com/docs/binance-spot-api-docs/rest-api> and the USDⓈ-M
    /// market-data REST pages.
    #[test]
    fn rest_items_need_a_symbol() {
        let s = Symbol::new("BNBBTC").unwrap();
        let spot_agg = r#"{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true,"M":true}"#;
        let um_agg = r#"{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}"#;
        let spot_hist = r#"{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}"#;
        let um_hist = r#"{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true}"#;
        for item in [spot_agg, um_agg] {
            let Ok(Decoded::Event(Event::Trade(t))) = decode_frame_with_symbol(item, 3, Some(s))
            else {
                panic!("{item}")
            };
            assert_eq!(
                (
                    t.symbol,
                    t.trade_id,
                    t.price,
                    t.qty,
                    t.side,
                    t.ts_exchange,
                    t.ts_received
                ),
                (
                    s,
                    26129,
                    d("0.01633102"),
                    d("4.70443515"),
                    Side::Sell,
                    1498793709153,
                    3
                )
            );
            assert_eq!(
                t.agg,
                Some(AggIds {
                    first_trade_id: 27781,
                    last_trade_id: 27781
                })
            );
            // The same trade as the WebSocket frame carrying it.
            let frame = format!(
                r#"{{"e":"aggTrade","E":1498793709153,"s":"BNBBTC",{}"#,
                &item[1..]
            );
            assert_eq!(
                trade(&frame),
                Trade {
                    ts_received: 7,
                    ..t
                }
            );
        }
        for item in [spot_hist, um_hist] {
            let Ok(Decoded::Event(Event::Trade(t))) = decode_frame_with_symbol(item, 3, Some(s))
            else {
                panic!("{item}")
            };
            assert_eq!(
                (t.trade_id, t.price, t.qty, t.side, t.ts_exchange, t.agg),
                (
                    28457,
                    d("4.00000100"),
                    d("12.00000000"),
                    Side::Sell,
                    1499865549590,
                    None
                )
            );
        }
        for item in [spot_agg, um_agg, spot_hist, um_hist] {
            let err = decode_frame(item, 0).expect_err(item);
            assert_eq!(err.kind(), "no_symbol");
            assert!(err.to_string().contains("--symbol"), "{err}");
        }
        // Their own bad values are still dead letters.
        for (item, kind) in [
            (
                r#"{"a":1,"p":"-1","q":"1","f":1,"l":1,"T":1,"m":true}"#,
                "not_positive",
            ),
            (r#"{"a":1,"p":"1","q":"1","T":1,"m":true}"#, "missing_field"),
            (
                r#"{"id":-1,"price":"1","qty":"1","time":1,"isBuyerMaker":true}"#,
                "json",
            ),
            (
                r#"{"id":1,"price":"NaN","qty":"1","time":1,"isBuyerMaker":true}"#,
                "invalid_number",
            ),
            (
                r#"{"id":1,"price":"1","qty":"1","isBuyerMaker":true}"#,
                "missing_field",
            ),
        ] {
            let err = decode_frame_with_symbol(item, 0, Some(s)).expect_err(item);
            assert_eq!(err.kind(), kind, "{item}: {err}");
        }
        // A whole REST page on one line is not split into trades.
        let page = format!("[{spot_agg},{spot_agg}]");
        assert_eq!(
            decode_frame_with_symbol(&page, 0, Some(s))
                .unwrap_err()
                .kind(),
            "unsupported"
        );
    }

    #[test]
    fn malformed_frames_stay_dead_letters() {
        let ticker = ignored_cases()[3].0.clone();
        let cases: Vec<(String, &str)> = vec![
            ("\"oops\"".into(), "json"),
            ("42".into(), "json"),
            ("null".into(), "json"),
            ("[1,2]".into(), "json"),
            // Truncated frames of ignored types.
            (ticker[..ticker.len() - 5].to_string(), "json"),
            (format!("[{ticker},{}", &ticker[..30]), "json"),
            (
                format!(r#"{{"stream":"!ticker@arr","data":[{ticker}"#),
                "json",
            ),
            // A trade with a bad price in a wrapper whose other payloads are ignored types.
            (
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":true}}"#.into(),
                "invalid_number",
            ),
            // A processed type whose fields have the wrong JSON types is not an ignored frame.
            (
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true,"l":"x"}"#.into(),
                "json",
            ),
            (
                r#"{"ts_received":1,"frame":{"e":"kline","E":1,"s":"BTCUSDT","k":{"i":5}}}"#.into(),
                "json",
            ),
            // An array holding a trade, and an array of scalars in the wrapper.
            (format!("[{TRADE}]"), "unsupported"),
            (r#"{"stream":"x","data":[1]}"#.into(), "json"),
            (format!("[{ticker},{TRADE}]"), "unsupported"),
        ];
        for (input, kind) in &cases {
            let err = decode_frame(input, 0).expect_err(input);
            assert_eq!(err.kind(), *kind, "{input}: {err}");
        }
    }

    #[test]
    fn fast_path_agrees_with_serde() {
        let fixture = include_str!("../../tests/fixtures/binance/trades.jsonl");
        let mut cases: Vec<String> = fixture.lines().map(String::from).collect();
        let trade =
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.5","q":"2","T":3,"m":true,"M":true}"#;
        cases.extend(
            [
                TRADE, AGG, KLINE, trade, FUT_AGG, COINM_AGG, FUT_TRADE,
                &FUT_TRADE.replace("MARKET", "ADL"),
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.5","q":"2","T":3,"m":true,"M":true,"X":1.}"#,
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.5","q":"2","T":3,"m":true,"X":NaN}"#,
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"t":2,"p":"1.5","q":"2","T":3,"m":true}"#,
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":01,"p":"1.5","q":"2","T":3,"m":true}"#,
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1e3,"p":"1.5","q":"2","T":3,"m":true}"#,
                r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.5","q":"2","T":-3,"m":null}"#,
                r#"{"e":"trade","E":1,"s":"BTC\u0055SDT","t":1,"p":"1.5","q":"2","T":3,"m":true}"#,
                r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":"x","p":"1.5","q":"2","f":1,"l":2,"T":3,"m":false}"#,
                r#"{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"1.5","q":"2","T":3,"m":false}"#,
                r#" { "e" : "trade" , "s":"ETHBTC","t":5,"p":"-1","q":"2","T":3,"m":false } "#,
                r#"{"e":"trade","s":"ETHBTC","t":5,"p":"1","q":"2","T":3,"m":false} x"#,
                r#"{"e":"trade","s":"ETHBTC","t":5,"p":"1","q":"2","T":3,"m":false"#,
                r#"{"e":"trade","s":"ETHBTC","t":18446744073709551616,"p":"1","q":"2","T":3,"m":false}"#,
                // Found by fuzzing (tests/fuzz/regressions/binance_frame): raw control
                // characters in a key are not JSON, whatever else the frame holds.
                "{\"e\":\"trade\",\"{\r\r\rE\":1672515782136,\"s\":\"BNBBTC\",\"t\":12345,\"p\":\"0.001\",\"q\":\"100\",\"T\":1672515782136,\"m\":true,\"M\":true}",
                " { \"e\" : \"trade\" , \"s\":\"ETHBTC\",\"t\":5,\"p\":\"-1\",\"q\":\"2\",\"T\":3,\"\0\0\0m\":false } ",
                // Found by fuzzing: a key the serde path types (`msg` is a string there).
                r#"{"e":"aggTrade","E":1,"a":5,"s":"BTCUSDT","p":"1","q":"2","f":1,"l":2,"T":3,"msg":0.5,"m":true}"#,
                r#"{"e":"trade","s":"ETHBTC","t":5,"p":"1","q":"2","T":3,"m":false,"b":1,"b":2}"#,
                r#"{"e":"trade","s":"ETHBTC","t":5,"p":"1","q":"2","T":3,"m":false,"time":"x"}"#,
                // Found by fuzzing: whitespace that JSON does not know, around a wrapped frame.
                "{\"e\":\"trade\",\"s\":\"ETHBTC\",\"t\":5,\"p\":\"1\",\"q\":\"2\",\"T\":3,\"m\":false}\u{b}",
                "{\"ts_received\":99,\"frame\":{\"e\":\"trade\",\"s\":\"ETHBTC\",\"t\":5,\"p\":\"1\",\"q\":\"2\",\"T\":3,\"m\":false}}\u{b}",
                "\u{a0}{\"stream\":\"x@trade\",\"data\":{\"e\":\"trade\",\"s\":\"ETHBTC\",\"t\":5,\"p\":\"1\",\"q\":\"2\",\"T\":3,\"m\":false}}",
                "\u{a0}{\"e\":\"trade\",\"s\":\"ETHBTC\",\"t\":5,\"p\":\"1\",\"q\":\"2\",\"T\":3,\"m\":false}",
                "{\"stream\":\"x\u{1}@trade\",\"data\":{\"e\":\"trade\",\"s\":\"ETHBTC\",\"t\":5,\"p\":\"1\",\"q\":\"2\",\"T\":3,\"m\":false}}",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let n = cases.len();
        for i in 0..n {
            let c = cases[i].clone();
            cases.push(format!(r#"{{"stream":"x@trade","data":{c}}}"#));
            cases.push(format!(r#"{{"ts_received":42,"frame":{c}}}"#));
            cases.push(format!(
                r#"{{"ts_received":42,"frame":{{"stream":"x@trade","data":{c}}}}}"#
            ));
            cases.push(format!(r#"{{"stream":"x@trade","data":{c},"extra":1}}"#));
        }
        let mut fast_hits = 0;
        for c in &cases {
            if let Some(fast) = fast::decode(c, 9) {
                fast_hits += 1;
                assert_eq!(fast, decode_frame_serde(c, 9), "{c}");
            }
        }
        assert!(
            fast_hits > 3000,
            "the fast path handles plain trades ({fast_hits})"
        );
    }

    #[test]
    fn csv_lines() {
        let s = Symbol::new("BTCUSDT").unwrap();
        let Event::Trade(t) =
            decode_csv_line("100,42000.5,0.01,420.005,1700000000123,True,True", s, None).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (t.trade_id, t.price, t.qty, t.side, t.ts_exchange),
            (100, d("42000.5"), d("0.01"), Side::Sell, 1700000000123)
        );
        // Microsecond timestamps in newer dumps.
        let Event::Trade(t) = decode_csv_line(
            "101,42000.5,0.01,420.005,1700000000123456,False,True",
            s,
            None,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((t.ts_exchange, t.side), (1700000000123, Side::Buy));
        let Event::Trade(t) =
            decode_csv_line("7,1.5,2,10,12,1700000000000,false,true", s, None).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            t.agg,
            Some(AggIds {
                first_trade_id: 10,
                last_trade_id: 12
            })
        );
        let Event::Kline(k) = decode_csv_line(
            "1700000040000,1,2,0.5,1.5,10,1700000099999,12,3,4,5,0",
            s,
            None,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.interval.label(), k.trade_count, k.quote_volume),
            ("1m", 3, d("12"))
        );
        assert!(csv_is_header(
            "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
        ));
        assert!(!csv_is_header("1,2,3"));
        for bad in [
            "1,2,3",
            "x,1,1,1,1,True,True",
            "1,1,1,1,1,maybe,True",
            "1,-1,1,1,1,True,True",
            "1,1,1,1,1,1,1,1,1,1,1",
        ] {
            assert!(decode_csv_line(bad, s, None).is_err(), "{bad}");
        }
        assert_eq!(
            symbol_from_dump_name(std::path::Path::new(
                "/x/ETHUSDT-aggTrades-2024-01-01.csv.gz"
            ))
            .unwrap()
            .as_str(),
            "ETHUSDT"
        );
    }
}
