//! Every row the pipeline hands to its sinks, and [`Output`], the one type that carries them.
//!
//! An [`Output`] is serialized with a `"type"` tag (`{"type":"candle",…}`): that is the shape of
//! the JSON lines, Kafka messages and golden files. [`OutputKind`] names the variants without
//! their data.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::market::{
    Candle, DataQuality, Gap, Interval, KlineMismatch, Millis, Side, Symbol, Trade, Venue,
    WhaleAlert,
};
use super::polled::Polled;

/// A trade with the per-symbol analytics computed at its arrival.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedTrade {
    /// The trade.
    pub trade: Trade,
    /// Mean price of the last `sma_window` trades of the symbol, this one included
    /// (of all trades so far during warm-up).
    pub moving_average: Decimal,
    /// EMA of the price over `ema_window` trades, once warmed up (f64 indicator math).
    pub ema: Option<f64>,
    /// Notional ≥ the whale threshold of the symbol's quote asset.
    pub is_whale: bool,
    /// The threshold that applied.
    pub whale_threshold: Decimal,
}

impl EnrichedTrade {
    /// The whale alert for this trade, if it is one.
    pub fn whale_alert(&self) -> Option<WhaleAlert> {
        self.is_whale.then(|| WhaleAlert {
            trade: self.trade.clone(),
            notional: self.trade.notional(),
            threshold: self.whale_threshold,
        })
    }
}

/// A trade that arrived after its candle was final.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LateTrade {
    /// The trade (it is still stored; only its candle is not corrected).
    pub trade: Trade,
    /// The candle interval it missed.
    pub interval: Interval,
    /// Open time of the candle it belongs to.
    pub candle_open_time: Millis,
}

/// The values of every indicator at one final candle (`None` while warming up).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IndicatorValues {
    /// SMA(20) of closes.
    pub sma_20: Option<f64>,
    /// EMA(20).
    pub ema_20: Option<f64>,
    /// WMA(20).
    pub wma_20: Option<f64>,
    /// RSI(14).
    pub rsi_14: Option<f64>,
    /// MACD(12, 26, 9) line.
    pub macd: Option<f64>,
    /// MACD signal.
    pub macd_signal: Option<f64>,
    /// MACD histogram.
    pub macd_hist: Option<f64>,
    /// Bollinger(20, 2) upper.
    pub bb_upper: Option<f64>,
    /// Bollinger middle.
    pub bb_middle: Option<f64>,
    /// Bollinger lower.
    pub bb_lower: Option<f64>,
    /// ATR(14).
    pub atr_14: Option<f64>,
    /// OBV.
    pub obv: Option<f64>,
    /// Stochastic(14, 3, 3) slow %K.
    pub stoch_k: Option<f64>,
    /// Stochastic %D.
    pub stoch_d: Option<f64>,
    /// ROC(10), percent.
    pub roc_10: Option<f64>,
    /// Momentum(10).
    pub mom_10: Option<f64>,
    /// Volatility: σ of the last 20 log returns.
    pub volatility_20: Option<f64>,
    /// Z-score of the close over 20 candles.
    pub zscore_20: Option<f64>,
    /// VWAP over 20 candles.
    pub vwap_20: Option<Decimal>,
}

/// Names of the `f64` indicator columns, in the order of [`IndicatorValues::floats`].
pub const FLOAT_COLUMNS: [&str; 18] = [
    "sma_20",
    "ema_20",
    "wma_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "obv",
    "stoch_k",
    "stoch_d",
    "roc_10",
    "mom_10",
    "volatility_20",
    "zscore_20",
];

impl IndicatorValues {
    /// The `f64` values in the order of [`FLOAT_COLUMNS`] (non-finite values as `None`).
    pub fn floats(&self) -> [Option<f64>; 18] {
        [
            self.sma_20,
            self.ema_20,
            self.wma_20,
            self.rsi_14,
            self.macd,
            self.macd_signal,
            self.macd_hist,
            self.bb_upper,
            self.bb_middle,
            self.bb_lower,
            self.atr_14,
            self.obv,
            self.stoch_k,
            self.stoch_d,
            self.roc_10,
            self.mom_10,
            self.volatility_20,
            self.zscore_20,
        ]
        .map(|v| v.filter(|x| x.is_finite()))
    }
}

/// The indicators of one final candle.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorRow {
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: Symbol,
    /// Candle interval.
    pub interval: Interval,
    /// Candle open time, ms.
    pub open_time: Millis,
    /// Candle close time, ms.
    pub close_time: Millis,
    /// Close of the candle.
    pub close: Decimal,
    /// The values.
    #[serde(flatten)]
    pub values: IndicatorValues,
}

impl IndicatorRow {
    /// The row of `candle` with `values`.
    pub fn new(candle: &Candle, values: IndicatorValues) -> Self {
        IndicatorRow {
            venue: candle.venue,
            symbol: candle.symbol,
            interval: candle.interval,
            open_time: candle.open_time,
            close_time: candle.close_time,
            close: candle.close,
            values,
        }
    }
}

/// One point-in-time ML feature vector: one per (symbol, interval) at each final candle. The
/// names of its values are the feature catalogue (`features::CATALOGUE`), which also gives the
/// row its `named()` and `json()` views.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRow {
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: Symbol,
    /// Interval.
    pub interval: Interval,
    /// Candle open time, ms.
    pub open_time: Millis,
    /// Candle close time, ms (the vector's as-of time).
    pub close_time: Millis,
    /// Values in catalogue order (`None`: not available yet; non-finite values are `None`).
    pub values: Vec<Option<f64>>,
}

/// The sentiment scores of one text.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    /// Negative share.
    pub neg: f64,
    /// Neutral share.
    pub neu: f64,
    /// Positive share.
    pub pos: f64,
    /// Normalized composite in [-1, 1].
    pub compound: f64,
}

/// The sentiment score of one news item or social post.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentRow {
    /// The item's natural key (`news|…`, `social|reddit|t3_…`).
    pub item_key: String,
    /// `news` or `social`.
    pub kind: String,
    /// Model name.
    pub model: String,
    /// When the item was published, ms.
    pub published_at: Millis,
    /// Coins the item mentions.
    pub coins: Vec<String>,
    /// The scores.
    #[serde(flatten)]
    pub score: SentimentScore,
}

/// The value of one per-coin rolling sentiment window.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentWindowRow {
    /// Coin ticker.
    pub coin: String,
    /// The sentiment model of the scores.
    pub model: String,
    /// `1h` or `24h`.
    pub span: String,
    /// The window holds items published in `(window_end − span, window_end]`, ms.
    pub window_end: Millis,
    /// Items in the window.
    pub items: u64,
    /// Mean compound.
    pub mean_compound: f64,
    /// Share of items with compound ≥ 0.05.
    pub positive_share: f64,
    /// Share of items with compound ≤ −0.05.
    pub negative_share: f64,
}

/// A strategy's decision at a final candle (the trading module's strategies make it; its
/// methods are there).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// Strategy name.
    pub strategy: String,
    /// Venue.
    pub venue: Venue,
    /// Symbol.
    pub symbol: Symbol,
    /// Candle interval.
    pub interval: Interval,
    /// Open time of the candle that fired, ms.
    pub open_time: Millis,
    /// Its close time (when the signal exists), ms.
    pub close_time: Millis,
    /// Buy or sell.
    pub side: Side,
    /// The candle's close.
    pub price: Decimal,
    /// Why, in words.
    pub reason: String,
}

/// A strategy signal at a final candle, as the pipeline stores and publishes it: the
/// [`Signal`] with its id and the indicator values the strategy compared. Flat in JSON and SQL
/// (`id`, the signal's fields, `inputs`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRow {
    /// The deterministic id (`cf` + 32 hex digits; the client order id of its intent).
    pub id: String,
    /// The signal.
    #[serde(flatten)]
    pub signal: Signal,
    /// The values the strategy compared at this candle, by indicator column name (`close` for
    /// the candle's close).
    pub inputs: BTreeMap<String, f64>,
}

/// One output row of the pipeline. Serialized with a `"type"` tag in JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// A trade with its analytics.
    Trade(EnrichedTrade),
    /// A candle update (forming or final).
    Candle(Candle),
    /// A whale alert.
    Whale(WhaleAlert),
    /// A possible hole in a stream.
    Gap(Gap),
    /// A trade that arrived after its candle was final.
    Late(LateTrade),
    /// A closed exchange kline that disagrees with the computed candle.
    Mismatch(KlineMismatch),
    /// A data-quality ledger snapshot row.
    Quality(DataQuality),
    /// An item of a poller.
    Polled(Box<Polled>),
    /// Technical indicators at a final candle.
    Indicators(Box<IndicatorRow>),
    /// The sentiment of a news item or social post.
    Sentiment(Box<SentimentRow>),
    /// The new value of a per-coin rolling sentiment window.
    SentimentWindow(Box<SentimentWindowRow>),
    /// A point-in-time ML feature vector at a final candle.
    Features(Box<FeatureRow>),
    /// A strategy signal at a final candle.
    Signal(Box<SignalRow>),
}

/// The kind of an [`Output`], without its data: one variant per variant of [`Output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum OutputKind {
    /// [`Output::Trade`].
    Trade,
    /// [`Output::Candle`].
    Candle,
    /// [`Output::Whale`].
    Whale,
    /// [`Output::Gap`].
    Gap,
    /// [`Output::Late`].
    Late,
    /// [`Output::Mismatch`].
    Mismatch,
    /// [`Output::Quality`].
    Quality,
    /// [`Output::Polled`].
    Polled,
    /// [`Output::Indicators`].
    Indicators,
    /// [`Output::Sentiment`].
    Sentiment,
    /// [`Output::SentimentWindow`].
    SentimentWindow,
    /// [`Output::Features`].
    Features,
    /// [`Output::Signal`].
    Signal,
}

impl OutputKind {
    /// Every kind, in the order of the [`Output`] variants.
    pub const ALL: [OutputKind; 13] = [
        OutputKind::Trade,
        OutputKind::Candle,
        OutputKind::Whale,
        OutputKind::Gap,
        OutputKind::Late,
        OutputKind::Mismatch,
        OutputKind::Quality,
        OutputKind::Polled,
        OutputKind::Indicators,
        OutputKind::Sentiment,
        OutputKind::SentimentWindow,
        OutputKind::Features,
        OutputKind::Signal,
    ];

    /// The `"type"` tag of the kind's rows in JSON (`trade`, `sentiment_window`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Trade => "trade",
            OutputKind::Candle => "candle",
            OutputKind::Whale => "whale",
            OutputKind::Gap => "gap",
            OutputKind::Late => "late",
            OutputKind::Mismatch => "mismatch",
            OutputKind::Quality => "quality",
            OutputKind::Polled => "polled",
            OutputKind::Indicators => "indicators",
            OutputKind::Sentiment => "sentiment",
            OutputKind::SentimentWindow => "sentiment_window",
            OutputKind::Features => "features",
            OutputKind::Signal => "signal",
        }
    }
}

/// A set of output kinds: what a sink accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputKinds(u16);

impl OutputKinds {
    /// Every kind.
    pub const ALL: OutputKinds = OutputKinds((1 << OutputKind::ALL.len()) - 1);

    /// Exactly `kinds`.
    pub const fn of(kinds: &[OutputKind]) -> OutputKinds {
        let mut bits = 0u16;
        let mut i = 0;
        while i < kinds.len() {
            bits |= 1 << kinds[i] as u16;
            i += 1;
        }
        OutputKinds(bits)
    }

    /// The set without `kind`.
    pub const fn without(self, kind: OutputKind) -> OutputKinds {
        OutputKinds(self.0 & !(1 << kind as u16))
    }

    /// True when `kind` is in the set.
    pub const fn contains(self, kind: OutputKind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }

    /// True when every kind is in the set.
    pub const fn is_all(self) -> bool {
        self.0 == Self::ALL.0
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Output {
    /// The kind of this row.
    pub fn kind(&self) -> OutputKind {
        match self {
            Output::Trade(_) => OutputKind::Trade,
            Output::Candle(_) => OutputKind::Candle,
            Output::Whale(_) => OutputKind::Whale,
            Output::Gap(_) => OutputKind::Gap,
            Output::Late(_) => OutputKind::Late,
            Output::Mismatch(_) => OutputKind::Mismatch,
            Output::Quality(_) => OutputKind::Quality,
            Output::Polled(_) => OutputKind::Polled,
            Output::Indicators(_) => OutputKind::Indicators,
            Output::Sentiment(_) => OutputKind::Sentiment,
            Output::SentimentWindow(_) => OutputKind::SentimentWindow,
            Output::Features(_) => OutputKind::Features,
            Output::Signal(_) => OutputKind::Signal,
        }
    }
}

/// The candle updates of a batch reduced to one per (venue, symbol, interval, open time): the
/// last one, except that a final candle is never replaced by a forming one. Sorted by key, so
/// that upserts lock rows in a stable order.
pub fn latest_candles(records: &[Output]) -> Vec<&Candle> {
    let mut latest: HashMap<_, &Candle> = HashMap::new();
    for r in records {
        if let Output::Candle(c) = r {
            let key = (c.venue, c.symbol, c.interval, c.open_time);
            match latest.get(&key) {
                Some(prev) if prev.is_final && !c.is_final => {}
                _ => {
                    latest.insert(key, c);
                }
            }
        }
    }
    let mut out: Vec<&Candle> = latest.into_values().collect();
    out.sort_by_key(|c| (c.venue, c.symbol, c.interval, c.open_time));
    out
}

/// A data-quality fact of the pipeline: a repeated trade it dropped, a trade too late for its
/// candle, or an exchange kline that disagrees with the computed candle. The pipeline emits
/// them on a stream of their own, beside its [`Output`] rows (late trades and mismatches are
/// rows too); the runtime counts them in the data-quality ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QualityFact {
    /// A repeat of a trade already seen (same venue, symbol, id space and id), dropped before
    /// any operator.
    Duplicate(Trade),
    /// A trade that arrived after its candle was final ([`Output::Late`]).
    Late(LateTrade),
    /// A closed exchange kline that disagrees with the computed candle ([`Output::Mismatch`]).
    Mismatch(KlineMismatch),
}

impl QualityFact {
    /// The venue of the fact.
    pub fn venue(&self) -> Venue {
        match self {
            QualityFact::Duplicate(t) => t.venue,
            QualityFact::Late(l) => l.trade.venue,
            QualityFact::Mismatch(m) => m.venue,
        }
    }

    /// The symbol of the fact (the ledger counts it under this symbol).
    pub fn symbol(&self) -> Symbol {
        match self {
            QualityFact::Duplicate(t) => t.symbol,
            QualityFact::Late(l) => l.trade.symbol,
            QualityFact::Mismatch(m) => m.symbol,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::market::{GapReason, StreamKind};
    use crate::model::polled::FundNav;

    fn trade() -> Trade {
        Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            trade_id: 7,
            price: Decimal::new(650_005, 1),
            qty: Decimal::new(2, 0),
            side: Side::Buy,
            ts_exchange: 1_700_000_000_000,
            ts_received: 1_700_000_000_010,
            agg: None,
        }
    }

    /// A flat 1 m BTCUSDT candle at `close` (shared by the crate's tests).
    pub(crate) fn candle(open_time: Millis, close: i64, is_final: bool) -> Candle {
        let p = Decimal::from(close);
        Candle {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            interval: Interval::MINUTE,
            open_time,
            close_time: open_time + 60_000,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: Decimal::ONE,
            quote_volume: p,
            vwap: p,
            trade_count: 1,
            taker_buy_volume: Decimal::ZERO,
            first_trade_id: 1,
            last_trade_id: 1,
            is_final,
        }
    }

    /// One output of each kind, in the order of [`OutputKind::ALL`].
    fn one_of_each() -> Vec<Output> {
        let c = candle(1_700_000_000_000, 100, true);
        let score = SentimentScore {
            neg: 0.0,
            neu: 0.5,
            pos: 0.5,
            compound: 0.25,
        };
        vec![
            Output::Trade(EnrichedTrade {
                trade: trade(),
                moving_average: Decimal::new(650_005, 1),
                ema: None,
                is_whale: true,
                whale_threshold: Decimal::from(100_000),
            }),
            Output::Candle(c.clone()),
            Output::Whale(WhaleAlert {
                trade: trade(),
                notional: Decimal::from(130_001),
                threshold: Decimal::from(100_000),
            }),
            Output::Gap(Gap {
                venue: Venue::Binance,
                symbol: c.symbol,
                kind: StreamKind::Trade,
                since: 1,
                until: 2,
                last_id: Some(6),
                reason: GapReason::IdHole,
                from_id: Some(7),
                to_id: Some(9),
                refilled: true,
                detail: String::new(),
            }),
            Output::Late(LateTrade {
                trade: trade(),
                interval: Interval::MINUTE,
                candle_open_time: 1_699_999_980_000,
            }),
            Output::Mismatch(KlineMismatch {
                venue: Venue::Binance,
                symbol: c.symbol,
                interval: Interval::MINUTE,
                open_time: c.open_time,
                fields: vec!["volume".into()],
            }),
            Output::Quality(DataQuality {
                source: "binance".into(),
                symbol: "BTCUSDT".into(),
                ..DataQuality::default()
            }),
            Output::Polled(Box::new(Polled::FundNav(FundNav {
                isin: "IE00B03HD191".into(),
                name: "V".into(),
                currency: "EUR".into(),
                nav: Decimal::new(456_789, 4),
                nav_date: "2026-11-20".parse().expect("date"),
                source: "myinvestor".into(),
                fetched_at: 1,
            }))),
            Output::Indicators(Box::new(IndicatorRow::new(
                &c,
                IndicatorValues {
                    sma_20: Some(100.0),
                    ..IndicatorValues::default()
                },
            ))),
            Output::Sentiment(Box::new(SentimentRow {
                item_key: "news|guid:1".into(),
                kind: "news".into(),
                model: "vader-3.3.2".into(),
                published_at: 5,
                coins: vec!["BTC".into()],
                score,
            })),
            Output::SentimentWindow(Box::new(SentimentWindowRow {
                coin: "BTC".into(),
                model: "vader-3.3.2".into(),
                span: "1h".into(),
                window_end: 300_000,
                items: 2,
                mean_compound: 0.25,
                positive_share: 0.5,
                negative_share: 0.0,
            })),
            Output::Features(Box::new(FeatureRow {
                venue: Venue::Binance,
                symbol: c.symbol,
                interval: Interval::MINUTE,
                open_time: c.open_time,
                close_time: c.close_time,
                values: vec![Some(0.5), None],
            })),
            Output::Signal(Box::new(SignalRow {
                id: "cf0123456789abcdef0123456789abcdef".into(),
                signal: Signal {
                    strategy: "rsi_bands".into(),
                    venue: Venue::Binance,
                    symbol: c.symbol,
                    interval: Interval::MINUTE,
                    open_time: c.open_time,
                    close_time: c.close_time,
                    side: Side::Buy,
                    price: Decimal::ONE_HUNDRED,
                    reason: "RSI(14) 31.00 rose through 30".into(),
                },
                inputs: BTreeMap::from([("rsi_14".to_string(), 31.0)]),
            })),
        ]
    }

    #[test]
    fn every_kind_is_the_json_type_tag_of_its_output() {
        let outputs = one_of_each();
        let kinds: Vec<OutputKind> = outputs.iter().map(Output::kind).collect();
        assert_eq!(kinds, OutputKind::ALL);
        for out in &outputs {
            let line = serde_json::to_string(out).expect("json");
            let value: serde_json::Value = serde_json::from_str(&line).expect("parse");
            assert_eq!(value["type"].as_str(), Some(out.kind().as_str()), "{line}");
            assert_eq!(out.kind().to_string(), out.kind().as_str());
            assert_eq!(&serde_json::from_str::<Output>(&line).expect("back"), out);
        }
    }

    #[test]
    fn json_lines_keep_their_shape() {
        // The tag first, then the row's own fields (flattened where the row flattens).
        let outputs = one_of_each();
        let line = |k: OutputKind| {
            let out = outputs.iter().find(|o| o.kind() == k).expect("sample");
            serde_json::to_string(out).expect("json")
        };
        assert!(line(OutputKind::Candle).starts_with(
            r#"{"type":"candle","venue":"binance","symbol":"BTCUSDT","interval":"1m","#
        ));
        assert!(line(OutputKind::SentimentWindow)
            .starts_with(r#"{"type":"sentiment_window","coin":"BTC","#));
        assert!(line(OutputKind::Sentiment)
            .ends_with(r#""coins":["BTC"],"neg":0.0,"neu":0.5,"pos":0.5,"compound":0.25}"#));
        assert!(
            line(OutputKind::Indicators).contains(r#""close":"100","sma_20":100.0,"ema_20":null"#)
        );
    }

    #[test]
    fn latest_candles_keeps_the_final_and_sorts_by_key() {
        let t = 1_700_000_040_000;
        let records = vec![
            Output::Candle(candle(t + 60_000, 3, false)),
            Output::Candle(candle(t, 1, false)),
            Output::Candle(candle(t, 2, true)),
            Output::Candle(candle(t, 9, false)),
            Output::Trade(EnrichedTrade {
                trade: trade(),
                moving_average: Decimal::ONE,
                ema: None,
                is_whale: false,
                whale_threshold: Decimal::ONE,
            }),
        ];
        let latest: Vec<(Millis, Decimal, bool)> = latest_candles(&records)
            .into_iter()
            .map(|c| (c.open_time, c.close, c.is_final))
            .collect();
        assert_eq!(
            latest,
            vec![
                (t, Decimal::from(2), true),
                (t + 60_000, Decimal::from(3), false)
            ]
        );
    }

    #[test]
    fn kind_sets_hold_exactly_their_kinds() {
        let some = OutputKinds::of(&[OutputKind::Trade, OutputKind::Features]);
        for k in OutputKind::ALL {
            assert!(OutputKinds::ALL.contains(k));
            assert_eq!(
                some.contains(k),
                matches!(k, OutputKind::Trade | OutputKind::Features),
                "{k}"
            );
        }
        assert!(OutputKinds::ALL.is_all());
        assert!(!some.is_all());
        assert!(OutputKinds::of(&OutputKind::ALL).is_all());
        let no_quality = OutputKinds::ALL.without(OutputKind::Quality);
        assert!(!no_quality.contains(OutputKind::Quality));
        assert!(no_quality.contains(OutputKind::Trade));
    }

    #[test]
    fn polled_json_line_shape() {
        let r = Output::Polled(Box::new(crate::model::Polled::FundNav(
            crate::model::FundNav {
                isin: "IE00B03HD191".into(),
                name: "V".into(),
                currency: "EUR".into(),
                nav: "45.6789".parse().expect("d"),
                nav_date: "2026-11-20".parse().expect("date"),
                source: "myinvestor".into(),
                fetched_at: 1,
            },
        )));
        let line = serde_json::to_string(&r).expect("json");
        assert!(
            line.starts_with(r#"{"type":"polled","kind":"fund_nav","isin":"IE00B03HD191""#),
            "{line}"
        );
        assert!(
            line.contains(r#""nav":"45.6789","nav_date":"2026-11-20""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Output>(&line).expect("back"), r);
    }
}
