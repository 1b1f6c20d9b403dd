//! Normalized market data: venues, symbols, trades, klines, candles, whales, gaps and the
//! data-quality ledger.
//!
//! Every event carries `ts_exchange` and `ts_received` in milliseconds since the Unix epoch (UTC).
//! Money and quantities are [`Decimal`]; nothing here reads the clock.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Error for values that do not fit the model (bad symbol, unknown interval, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A symbol that is empty, too long or not ASCII alphanumeric.
    Symbol(String),
    /// An interval label that is not one of Binance's fixed-length intervals.
    Interval(String),
    /// A venue name cryptoflow does not know.
    Venue(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Symbol(s) => write!(
                f,
                "invalid symbol {s:?}: expected 1 to {} ASCII letters or digits, with at most one inner `_` (BTCUSD_PERP)",
                Symbol::MAX_LEN
            ),
            ModelError::Interval(s) => write!(
                f,
                "invalid interval {s:?}: expected one of 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w"
            ),
            ModelError::Venue(s) => write!(
                f,
                "unknown venue {s:?}: expected binance, binance-usdm or binance-coinm"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

/// The trading venue an event comes from: one market per venue, so the same symbol on two venues
/// (spot and futures `BTCUSDT`) is two instruments with separate tapes, candles and state.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Venue {
    /// Binance spot (`stream.binance.com`, `api.binance.com`).
    #[serde(rename = "binance")]
    Binance,
    /// Binance USDⓈ-M futures (`fstream.binance.com`, `fapi.binance.com`): quantities in the base
    /// asset, prices in the margin asset (USDT, USDC), like spot.
    #[serde(rename = "binance-usdm")]
    BinanceUsdm,
    /// Binance COIN-M futures (`dstream.binance.com`, `dapi.binance.com`), symbols like
    /// `BTCUSD_PERP` or `BTCUSD_250627`: the quantity `q` is a number of contracts of a fixed USD
    /// value ([`Venue::contract_size`]), the price is USD per coin.
    #[serde(rename = "binance-coinm")]
    BinanceCoinm,
}

impl Venue {
    /// Every venue.
    pub const ALL: [Venue; 3] = [Venue::Binance, Venue::BinanceUsdm, Venue::BinanceCoinm];

    /// The name used in tables, topics and keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::BinanceUsdm => "binance-usdm",
            Venue::BinanceCoinm => "binance-coinm",
        }
    }

    /// The venue of a known Binance host (WebSocket or REST), if any: `stream.binance.com`,
    /// `data-stream.binance.vision`, `api.binance.com` (and `api1..4`), `data-api.binance.vision`
    /// are spot; `fstream.binance.com`, `fapi.binance.com` USDⓈ-M; `dstream.binance.com`,
    /// `dapi.binance.com` COIN-M. Any other host (a local test server, a proxy) is unknown.
    pub fn from_host(host: &str) -> Option<Venue> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match host.as_str() {
            "stream.binance.com"
            | "data-stream.binance.vision"
            | "api.binance.com"
            | "api1.binance.com"
            | "api2.binance.com"
            | "api3.binance.com"
            | "api4.binance.com"
            | "api-gcp.binance.com"
            | "data-api.binance.vision" => Some(Venue::Binance),
            "fstream.binance.com" | "fapi.binance.com" => Some(Venue::BinanceUsdm),
            "dstream.binance.com" | "dapi.binance.com" => Some(Venue::BinanceCoinm),
            _ => None,
        }
    }

    /// The venue of a base URL by its host (see [`Venue::from_host`]).
    pub fn from_url(url: &str) -> Option<Venue> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host_port,
        };
        Venue::from_host(host)
    }

    /// The USD value of one contract for COIN-M symbols (Binance: 100 USD for BTC contracts,
    /// 10 USD for every other coin); `None` on venues whose quantity is in the base asset.
    pub fn contract_size(self, symbol: &Symbol) -> Option<Decimal> {
        match self {
            Venue::BinanceCoinm => Some(if symbol.as_str().starts_with("BTCUSD_") {
                Decimal::ONE_HUNDRED
            } else {
                Decimal::TEN
            }),
            Venue::Binance | Venue::BinanceUsdm => None,
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Venue {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Venue::ALL
            .into_iter()
            .find(|v| v.as_str() == lower)
            .ok_or_else(|| ModelError::Venue(s.chars().take(64).collect()))
    }
}

/// An instrument symbol such as `BTCUSDT`, stored inline (no heap allocation per event).
///
/// Symbols are upper-case ASCII letters and digits, at most [`Symbol::MAX_LEN`] bytes, with at
/// most one `_` between two such runs: futures contracts are named `BTCUSD_PERP` (COIN-M
/// perpetual) or `BTCUSD_250627` / `BTCUSDT_250627` (quarterly delivery).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol {
    len: u8,
    bytes: [u8; Symbol::MAX_LEN],
}

impl Symbol {
    /// Longest symbol accepted.
    pub const MAX_LEN: usize = 23;

    /// Parses and upper-cases a symbol.
    pub fn new(s: &str) -> Result<Self, ModelError> {
        let b = s.as_bytes();
        let underscores = b.iter().filter(|&&c| c == b'_').count();
        if b.is_empty()
            || b.len() > Self::MAX_LEN
            || !b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
            || underscores > 1
            || b.first() == Some(&b'_')
            || b.last() == Some(&b'_')
        {
            return Err(ModelError::Symbol(s.chars().take(64).collect()));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        for (dst, src) in bytes.iter_mut().zip(b) {
            *dst = src.to_ascii_uppercase();
        }
        Ok(Symbol {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The symbol text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// A stable 64-bit hash (FNV-1a) used to shard by symbol: the same in every process.
    pub fn shard_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &self.bytes[..self.len as usize] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// The quote asset, recognized by a known suffix (`USDT`, `BTC`, …), if any. A futures
    /// contract is recognized by its pair before the `_` (`BTCUSDT_250627` → USDT); COIN-M pairs
    /// end in `USD` (`BTCUSD_PERP` → USD).
    pub fn quote_asset(&self) -> Option<&'static str> {
        const QUOTES: [&str; 14] = [
            "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
            "BRL", "JPY", "GBP",
        ];
        let s = self.as_str();
        let (pair, contract) = match s.split_once('_') {
            Some((pair, _)) => (pair, true),
            None => (s, false),
        };
        QUOTES
            .iter()
            .copied()
            .chain(contract.then_some("USD"))
            .find(|q| pair.len() > q.len() && pair.ends_with(q))
    }
}

/// One worker's share of the symbols: worker `index` of `peers` (every worker of every process,
/// numbered as timely numbers them) owns the symbols whose [`Symbol::shard_hash`] is `index`
/// modulo `peers`. The dataflow's operators exchange by the same rule, so an event that enters
/// at the worker owning its symbol stays on that worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index among all workers of the cluster.
    pub index: usize,
    /// Workers of the cluster.
    pub peers: usize,
}

impl Shard {
    /// The one shard of a single worker: it owns every symbol.
    pub const ALL: Shard = Shard { index: 0, peers: 1 };

    /// The worker that owns `symbol` among `peers`.
    pub fn owner(symbol: &Symbol, peers: usize) -> usize {
        (symbol.shard_hash() % peers.max(1) as u64) as usize
    }

    /// True when this shard owns `symbol`.
    pub fn owns(&self, symbol: &Symbol) -> bool {
        Self::owner(symbol, self.peers) == self.index
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl FromStr for Symbol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::new(s)
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Symbol::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Which side took liquidity (the aggressor).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The buyer was the taker (Binance `m = false`).
    Buy,
    /// The seller was the taker (Binance `m = true`: the buyer was the maker).
    Sell,
}

impl Side {
    /// From Binance's "buyer is maker" flag.
    pub fn from_buyer_is_maker(m: bool) -> Self {
        if m {
            Side::Sell
        } else {
            Side::Buy
        }
    }

    /// The name used in tables and topics.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// The stream kind a trade came from.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamKind {
    /// Individual trades (`<s>@trade`); `trade_id` is Binance's `t`.
    Trade,
    /// Aggregate trades (`<s>@aggTrade`); `trade_id` is Binance's `a`.
    AggTrade,
    /// Klines (`<s>@kline_<i>`).
    Kline,
}

impl StreamKind {
    /// Binance's stream name part.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Trade => "trade",
            StreamKind::AggTrade => "aggTrade",
            StreamKind::Kline => "kline",
        }
    }
}

/// Trade ids covered by one aggregate trade.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AggIds {
    /// First trade id (`f`).
    pub first_trade_id: u64,
    /// Last trade id (`l`).
    pub last_trade_id: u64,
}

/// One normalized trade.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Trade {
    /// Venue.
    pub venue: Venue,
    /// Instrument.
    pub symbol: Symbol,
    /// Trade id (`t`), or aggregate id (`a`) when `agg` is set.
    pub trade_id: u64,
    /// Price in the quote asset.
    pub price: Decimal,
    /// Quantity in the base asset (COIN-M: number of contracts, as Binance reports it).
    pub qty: Decimal,
    /// Aggressor side.
    pub side: Side,
    /// Trade time at the exchange (`T`), ms.
    pub ts_exchange: Millis,
    /// Time cryptoflow received the frame, ms.
    pub ts_received: Millis,
    /// Set when the trade is an aggregate trade.
    pub agg: Option<AggIds>,
}

impl Trade {
    /// The traded value in the quote asset: price × quantity, except on COIN-M where the
    /// quantity is a number of contracts and the value is contracts × contract size in USD
    /// ([`Venue::contract_size`]); whale thresholds compare against this.
    pub fn notional(&self) -> Decimal {
        match self.venue.contract_size(&self.symbol) {
            Some(size) => self.qty * size,
            None => self.price * self.qty,
        }
    }

    /// The stream kind this trade came from.
    pub fn kind(&self) -> StreamKind {
        if self.agg.is_some() {
            StreamKind::AggTrade
        } else {
            StreamKind::Trade
        }
    }
}

/// A fixed-length candle interval (Binance labels; the month interval is not supported).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    ms: i64,
}

const INTERVALS: [(&str, i64); 15] = [
    ("1s", 1_000),
    ("1m", 60_000),
    ("3m", 180_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("2h", 7_200_000),
    ("4h", 14_400_000),
    ("6h", 21_600_000),
    ("8h", 28_800_000),
    ("12h", 43_200_000),
    ("1d", 86_400_000),
    ("3d", 259_200_000),
    ("1w", 604_800_000),
];

impl Interval {
    /// One minute.
    pub const MINUTE: Interval = Interval { ms: 60_000 };

    /// Length in milliseconds.
    pub fn millis(self) -> i64 {
        self.ms
    }

    /// Every label accepted, shortest interval first.
    pub fn labels() -> impl Iterator<Item = &'static str> {
        INTERVALS.iter().map(|(l, _)| *l)
    }

    /// Binance's label (`1m`, `1h`, …).
    pub fn label(self) -> &'static str {
        INTERVALS
            .iter()
            .find(|(_, ms)| *ms == self.ms)
            .map(|(l, _)| *l)
            .unwrap_or("?")
    }

    /// Start of the window that contains `ts`.
    ///
    /// Weekly windows start on Monday 00:00 UTC like Binance's (the epoch was a Thursday).
    pub fn open_time(self, ts: Millis) -> Millis {
        let offset = if self.ms == 604_800_000 {
            345_600_000
        } else {
            0
        };
        (ts - offset).div_euclid(self.ms) * self.ms + offset
    }
}

impl FromStr for Interval {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        INTERVALS
            .iter()
            .find(|(l, _)| *l == s)
            .map(|(_, ms)| Interval { ms: *ms })
            .ok_or_else(|| ModelError::Interval(s.to_string()))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An exchange kline (`<s>@kline_<i>` or REST `klines`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Kline {
    /// Venue.
    pub venue: Venue,
    /// Instrument.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Window start, ms.
    pub open_time: Millis,
    /// Window end (last ms inside the window), ms.
    pub close_time: Millis,
    /// First trade id in the window (-1 when none: Binance sends -1).
    pub first_trade_id: i64,
    /// Last trade id in the window (-1 when none).
    pub last_trade_id: i64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    /// Quote-asset volume.
    pub quote_volume: Decimal,
    /// Number of trades.
    pub trade_count: u64,
    /// Taker-buy base volume.
    pub taker_buy_volume: Decimal,
    /// Taker-buy quote volume.
    pub taker_buy_quote_volume: Decimal,
    /// Whether the kline is closed (`x`).
    pub is_closed: bool,
    /// Event time at the exchange, ms.
    pub ts_exchange: Millis,
    /// Receive time, ms.
    pub ts_received: Millis,
}

/// A candle computed by cryptoflow from trades, in event time.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candle {
    /// Venue.
    pub venue: Venue,
    /// Instrument.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Window start, ms (inclusive).
    pub open_time: Millis,
    /// Window end, ms (exclusive).
    pub close_time: Millis,
    /// Price of the trade with the lowest id.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Price of the trade with the highest id.
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    /// Quote-asset volume (Σ price × qty).
    pub quote_volume: Decimal,
    /// Volume-weighted average price, quote volume / volume.
    pub vwap: Decimal,
    /// Number of trades.
    pub trade_count: u64,
    /// Base volume bought by takers.
    pub taker_buy_volume: Decimal,
    /// Lowest trade id in the window.
    pub first_trade_id: u64,
    /// Highest trade id in the window.
    pub last_trade_id: u64,
    /// False while the window is forming, true once the watermark has passed its end.
    pub is_final: bool,
}

/// A trade whose notional crossed the whale threshold.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WhaleAlert {
    /// The trade.
    pub trade: Trade,
    /// Price × quantity.
    pub notional: Decimal,
    /// The threshold it crossed (quote currency).
    pub threshold: Decimal,
}

/// Why a gap exists.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The WebSocket connection was lost and re-established.
    Reconnect,
    /// Ids jumped inside a live stream.
    IdHole,
    /// The process restarted.
    Restart,
}

impl GapReason {
    /// The name stored in tables and messages: `reconnect`, `id_hole`, `restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Reconnect => "reconnect",
            GapReason::IdHole => "id_hole",
            GapReason::Restart => "restart",
        }
    }
}

/// The `detail` of a hole's first, open row when its refill outlasted the source's hold and
/// live trades went ahead of it: the row stays open until the refill ends, so a crash before
/// that leaves it open and the next run resumes before the hole.
pub const REFILLING: &str =
    "refilling: live trades went ahead of this hole; it stays open until its refill ends";

/// An in-band marker: data for a stream may be missing between `since` and `until`.
///
/// A reconnect marker (`reason: Reconnect`) carries no id range: it says the connection was
/// down. An id hole (`reason: IdHole`/`Restart`) carries the missing ids `from_id..=to_id` and
/// whether the REST refill delivered all of them (`refilled`); an unrefilled hole says why in
/// `detail`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gap {
    /// Venue.
    pub venue: Venue,
    /// Instrument.
    pub symbol: Symbol,
    /// Stream kind affected.
    pub kind: StreamKind,
    /// Last moment data was known complete (receive time of the last frame), ms.
    pub since: Millis,
    /// When data flowed again, ms.
    pub until: Millis,
    /// Last id seen before the gap, when known.
    pub last_id: Option<u64>,
    /// Why.
    pub reason: GapReason,
    /// First missing id, for id holes.
    pub from_id: Option<u64>,
    /// Last missing id, for id holes.
    pub to_id: Option<u64>,
    /// True when every missing id was refilled from the REST API.
    pub refilled: bool,
    /// Why a hole could not be refilled (empty otherwise).
    pub detail: String,
}

/// A snapshot of the data-quality counters of one source and symbol.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataQuality {
    /// Source name: the venue for live market data (`binance`, `binance-usdm`, `binance-coinm`),
    /// else `replay`, `kafka` or a poller.
    pub source: String,
    /// Symbol (empty for source-wide counters such as undecodable frames).
    pub symbol: String,
    /// When the snapshot was taken, ms.
    pub snapshot_at: Millis,
    /// Frames received.
    pub frames: u64,
    /// Trades delivered.
    pub trades: u64,
    /// Id holes detected.
    pub gaps_detected: u64,
    /// Id holes refilled completely.
    pub gaps_refilled: u64,
    /// Trades delivered by refills.
    pub ids_refilled: u64,
    /// Ids that could not be refilled.
    pub ids_unrefillable: u64,
    /// Trades dropped as duplicates.
    pub duplicates: u64,
    /// Trades too late for their candle.
    pub late_events: u64,
    /// Reconnects of the connections carrying this symbol.
    pub reconnects: u64,
    /// Undecodable frames.
    pub decode_errors: u64,
    /// Closed exchange klines that disagree with the candle computed from trades.
    pub kline_mismatches: u64,
    /// Exchange time of the newest event, ms (0: none yet).
    pub last_event_ms: Millis,
    /// Receive time of the newest event, ms (0: none yet).
    pub last_received_ms: Millis,
    /// Milliseconds since the newest event was received (at the snapshot).
    pub last_event_age_ms: Millis,
    /// Connected but silent for longer than the configured stale time.
    pub stale: bool,
}

/// A closed exchange kline that disagrees with the candle computed from trades.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KlineMismatch {
    /// Venue.
    pub venue: Venue,
    /// Instrument.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Window start, ms.
    pub open_time: Millis,
    /// The fields that differ (`open`, `high`, `low`, `close`, `volume`, `trade_count`).
    pub fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_roundtrip_and_errors() {
        let s = Symbol::new("btcusdt").unwrap();
        assert_eq!(s.as_str(), "BTCUSDT");
        assert_eq!(s.quote_asset(), Some("USDT"));
        assert_eq!(Symbol::new("ETHBTC").unwrap().quote_asset(), Some("BTC"));
        assert!(Symbol::new("").is_err());
        assert!(Symbol::new("BTC-USDT").is_err());
        // Futures contract names (Binance COIN-M and delivery contracts).
        let perp = Symbol::new("btcusd_perp").unwrap();
        assert_eq!(perp.as_str(), "BTCUSD_PERP");
        assert_eq!(perp.quote_asset(), Some("USD"));
        assert_eq!(
            Symbol::new("BTCUSDT_250627").unwrap().quote_asset(),
            Some("USDT")
        );
        assert_eq!(
            Symbol::new("ETHUSD_250627").unwrap().as_str(),
            "ETHUSD_250627"
        );
        for bad in ["_BTCUSD", "BTCUSD_", "BTC_USD_PERP", "BTC__USD", "_"] {
            assert!(Symbol::new(bad).is_err(), "{bad}");
        }
        // A spot symbol ending in USD is not taken for a USD quote.
        assert_eq!(Symbol::new("XUSD").unwrap().quote_asset(), None);
        assert!(Symbol::new(&"A".repeat(24)).is_err());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"BTCUSDT\"");
        assert_eq!(serde_json::from_str::<Symbol>(&json).unwrap(), s);
    }

    #[test]
    fn venues_names_hosts_and_notional() {
        for v in Venue::ALL {
            assert_eq!(v.as_str().parse::<Venue>().unwrap(), v);
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
        }
        assert!("binance-options".parse::<Venue>().is_err());
        assert_eq!(
            Venue::from_url("wss://stream.binance.com:9443"),
            Some(Venue::Binance)
        );
        assert_eq!(
            Venue::from_url("wss://fstream.binance.com/market"),
            Some(Venue::BinanceUsdm)
        );
        assert_eq!(
            Venue::from_url("https://fapi.binance.com/"),
            Some(Venue::BinanceUsdm)
        );
        assert_eq!(
            Venue::from_url("wss://dstream.binance.com"),
            Some(Venue::BinanceCoinm)
        );
        assert_eq!(
            Venue::from_url("https://dapi.binance.com"),
            Some(Venue::BinanceCoinm)
        );
        assert_eq!(Venue::from_url("ws://127.0.0.1:9001"), None);
        // COIN-M: 3 BTCUSD_PERP contracts are 300 USD whatever the price; 3 ETHUSD contracts 30 USD.
        let mut t = Trade {
            venue: Venue::BinanceCoinm,
            symbol: Symbol::new("BTCUSD_PERP").unwrap(),
            trade_id: 1,
            price: Decimal::new(6_512_345, 2),
            qty: Decimal::from(3),
            side: Side::Buy,
            ts_exchange: 0,
            ts_received: 0,
            agg: None,
        };
        assert_eq!(t.notional(), Decimal::from(300));
        t.symbol = Symbol::new("ETHUSD_250627").unwrap();
        assert_eq!(t.notional(), Decimal::from(30));
        t.venue = Venue::BinanceUsdm;
        t.symbol = Symbol::new("BTCUSDT").unwrap();
        assert_eq!(t.notional(), Decimal::new(19_537_035, 2));
    }

    #[test]
    fn every_symbol_has_exactly_one_owner() {
        for name in [
            "BTCUSDT",
            "ETHUSDT",
            "BTCUSD_PERP",
            "A",
            "SOLUSDT",
            "DOGEUSDT",
        ] {
            let s = Symbol::new(name).unwrap();
            for peers in 1..=5 {
                let owners = (0..peers)
                    .filter(|&index| Shard { index, peers }.owns(&s))
                    .count();
                assert_eq!(owners, 1, "{name} among {peers}");
            }
            assert!(Shard::ALL.owns(&s));
        }
        // FNV-1a of "A" is 0xaf63fc4c860222ec: even, so worker 0 of 2 owns it.
        assert!(Shard { index: 0, peers: 2 }.owns(&Symbol::new("A").unwrap()));
    }

    #[test]
    fn shard_hash_is_fnv1a() {
        // FNV-1a 64 of "a" is a published test vector.
        assert_eq!(Symbol::new("a").unwrap().shard_hash(), {
            // upper-cased: "A"
            let mut h: u64 = 0xcbf29ce484222325;
            h ^= 0x41;
            h.wrapping_mul(0x100000001b3)
        });
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert_eq!(
            Symbol::new("BTC-USDT").unwrap_err().to_string(),
            "invalid symbol \"BTC-USDT\": expected 1 to 23 ASCII letters or digits, with at most one inner `_` (BTCUSD_PERP)"
        );
        assert_eq!(
            "1M".parse::<Interval>().unwrap_err().to_string(),
            "invalid interval \"1M\": expected one of 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w"
        );
        assert_eq!(
            "kraken".parse::<Venue>().unwrap_err().to_string(),
            "unknown venue \"kraken\": expected binance, binance-usdm or binance-coinm"
        );
    }

    #[test]
    fn interval_windows() {
        let m: Interval = "1m".parse().unwrap();
        assert_eq!(m.open_time(1_700_000_059_999), 1_700_000_040_000);
        assert_eq!(m.open_time(1_700_000_039_999), 1_699_999_980_000);
        let w: Interval = "1w".parse().unwrap();
        // 2023-11-13 is a Monday: 1699833600000.
        assert_eq!(w.open_time(1_700_000_000_000), 1_699_833_600_000);
        assert!("1M".parse::<Interval>().is_err());
        assert_eq!(m.to_string(), "1m");
    }
}

#[cfg(feature = "schema")]
mod schema {
    use std::borrow::Cow;

    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

    use super::{Interval, Symbol, INTERVALS};

    impl JsonSchema for Symbol {
        fn schema_name() -> Cow<'static, str> {
            "Symbol".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "type": "string",
                "description": "An instrument, upper case (`BTCUSDT`, `BTCUSD_PERP`).",
                "pattern": "^[A-Z0-9]+(_[A-Z0-9]+)?$",
                "maxLength": Symbol::MAX_LEN,
            })
        }
    }

    impl JsonSchema for Interval {
        fn schema_name() -> Cow<'static, str> {
            "Interval".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            let labels: Vec<&str> = INTERVALS.iter().map(|(l, _)| *l).collect();
            json_schema!({
                "type": "string",
                "description": "A candle interval, as Binance names it.",
                "enum": labels,
            })
        }
    }
}
