//! Point-in-time ML feature vectors: one per (symbol, interval) at each final candle.
//!
//! [`FeatureEngine`] is pure state (no I/O): it is fed final candles with their indicators, whale
//! trades, and context items (sentiment of news and posts, macro observations, CoinGecko
//! snapshots), and computes the vector of a candle from data whose event time is at or before the
//! candle's close — and, for macro series, only vintages published by then — whatever order things
//! arrived in. Every feature is listed in [`CATALOGUE`] (name, definition, window, source), from
//! which the feature catalogue in the docs is generated.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use rust_decimal::Decimal;

use crate::math::indicators::Volatility;
use crate::math::to_f64;
use crate::model::{Candle, CoinMarket, IndicatorValues, Interval, Millis, Symbol, Venue};
pub use crate::model::{ContextItem, FeatureRow};

/// One entry of the feature catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureDef {
    /// Column name.
    pub name: &'static str,
    /// What it is.
    pub definition: &'static str,
    /// The window it covers.
    pub window: &'static str,
    /// Where its data comes from.
    pub source: &'static str,
}

macro_rules! catalogue {
    ($(($n:literal, $d:literal, $w:literal, $s:literal)),* $(,)?) => {
        /// Every feature, in vector order.
        pub const CATALOGUE: &[FeatureDef] = &[$(FeatureDef { name: $n, definition: $d, window: $w, source: $s }),*];
    };
}

/// The macro series with their own features.
pub const MACRO_SERIES: [&str; 8] = [
    "FEDFUNDS", "CPIAUCSL", "DGS10", "DTWEXBGS", "M2SL", "UNRATE", "VIXCLS", "GDP",
];

catalogue![
    ("ret_1", "simple return of the close", "1 bar", "candles"),
    ("ret_5", "simple return of the close", "5 bars", "candles"),
    ("ret_15", "simple return of the close", "15 bars", "candles"),
    ("ret_60", "simple return of the close", "60 bars", "candles"),
    ("logret_1", "log return of the close", "1 bar", "candles"),
    ("logret_5", "log return of the close", "5 bars", "candles"),
    ("logret_15", "log return of the close", "15 bars", "candles"),
    ("logret_60", "log return of the close", "60 bars", "candles"),
    (
        "volatility_5",
        "population σ of log returns",
        "5 bars",
        "candles"
    ),
    (
        "volatility_20",
        "population σ of log returns",
        "20 bars",
        "candles"
    ),
    (
        "volatility_60",
        "population σ of log returns",
        "60 bars",
        "candles"
    ),
    (
        "sma_20",
        "SMA of the close (TA-Lib SMA)",
        "20 bars",
        "indicators"
    ),
    (
        "ema_20",
        "EMA of the close (TA-Lib EMA)",
        "20 bars",
        "indicators"
    ),
    (
        "wma_20",
        "WMA of the close (TA-Lib WMA)",
        "20 bars",
        "indicators"
    ),
    (
        "rsi_14",
        "RSI, Wilder (TA-Lib RSI)",
        "14 bars",
        "indicators"
    ),
    (
        "macd",
        "MACD line 12/26 (TA-Lib MACD)",
        "26 bars",
        "indicators"
    ),
    (
        "macd_signal",
        "MACD signal, EMA 9 of the line",
        "34 bars",
        "indicators"
    ),
    ("macd_hist", "MACD − signal", "34 bars", "indicators"),
    (
        "bb_upper",
        "Bollinger upper, SMA + 2σ (TA-Lib BBANDS)",
        "20 bars",
        "indicators"
    ),
    (
        "bb_middle",
        "Bollinger middle (SMA)",
        "20 bars",
        "indicators"
    ),
    (
        "bb_lower",
        "Bollinger lower, SMA − 2σ",
        "20 bars",
        "indicators"
    ),
    (
        "atr_14",
        "average true range, Wilder (TA-Lib ATR)",
        "14 bars",
        "indicators"
    ),
    (
        "obv",
        "on-balance volume (TA-Lib OBV)",
        "since start",
        "indicators"
    ),
    (
        "stoch_k",
        "slow stochastic %K 14/3 (TA-Lib STOCH)",
        "16 bars",
        "indicators"
    ),
    (
        "stoch_d",
        "stochastic %D, SMA 3 of slow %K",
        "18 bars",
        "indicators"
    ),
    (
        "roc_10",
        "rate of change, percent (TA-Lib ROC)",
        "10 bars",
        "indicators"
    ),
    ("mom_10", "momentum (TA-Lib MOM)", "10 bars", "indicators"),
    ("zscore_20", "z-score of the close", "20 bars", "indicators"),
    (
        "vwap_20",
        "Σ quote volume / Σ volume",
        "20 bars",
        "indicators"
    ),
    (
        "close_to_sma_20",
        "close / SMA 20 − 1",
        "20 bars",
        "indicators"
    ),
    (
        "close_to_ema_20",
        "close / EMA 20 − 1",
        "20 bars",
        "indicators"
    ),
    (
        "close_to_vwap_20",
        "close / VWAP 20 − 1",
        "20 bars",
        "indicators"
    ),
    (
        "bb_percent_b",
        "(close − lower) / (upper − lower)",
        "20 bars",
        "indicators"
    ),
    (
        "bb_width",
        "(upper − lower) / middle",
        "20 bars",
        "indicators"
    ),
    ("macd_norm", "MACD line / close", "26 bars", "indicators"),
    ("atr_norm", "ATR 14 / close", "14 bars", "indicators"),
    ("range", "(high − low) / close", "1 bar", "candles"),
    ("body", "(close − open) / open", "1 bar", "candles"),
    (
        "upper_wick",
        "(high − max(open, close)) / close",
        "1 bar",
        "candles"
    ),
    (
        "lower_wick",
        "(min(open, close) − low) / close",
        "1 bar",
        "candles"
    ),
    ("log_volume", "ln(1 + volume)", "1 bar", "candles"),
    (
        "log_quote_volume",
        "ln(1 + quote volume)",
        "1 bar",
        "candles"
    ),
    ("trade_count", "trades in the candle", "1 bar", "candles"),
    (
        "taker_buy_ratio",
        "taker buy volume / volume",
        "1 bar",
        "candles"
    ),
    (
        "buy_sell_imbalance",
        "(taker buy − taker sell volume) / volume",
        "1 bar",
        "candles"
    ),
    (
        "vwap_to_close",
        "candle VWAP / close − 1",
        "1 bar",
        "candles"
    ),
    (
        "volume_zscore_20",
        "z-score of the volume",
        "20 bars",
        "candles"
    ),
    (
        "volume_ratio_20",
        "volume / mean volume − 1",
        "20 bars",
        "candles"
    ),
    (
        "trade_count_zscore_20",
        "z-score of the trade count",
        "20 bars",
        "candles"
    ),
    (
        "whale_count",
        "whale trades in the candle",
        "1 bar",
        "trades"
    ),
    (
        "whale_volume",
        "base volume of whale trades in the candle",
        "1 bar",
        "trades"
    ),
    (
        "whale_volume_share",
        "whale volume / volume",
        "1 bar",
        "trades"
    ),
    (
        "news_count_1h",
        "news items mentioning the base asset",
        "1 h",
        "sentiment (news)"
    ),
    (
        "news_compound_1h",
        "mean sentiment compound of those items",
        "1 h",
        "sentiment (news)"
    ),
    (
        "news_pos_share_1h",
        "share with compound ≥ 0.05",
        "1 h",
        "sentiment (news)"
    ),
    (
        "news_neg_share_1h",
        "share with compound ≤ −0.05",
        "1 h",
        "sentiment (news)"
    ),
    (
        "news_count_24h",
        "news items mentioning the base asset",
        "24 h",
        "sentiment (news)"
    ),
    (
        "news_compound_24h",
        "mean sentiment compound of those items",
        "24 h",
        "sentiment (news)"
    ),
    (
        "news_pos_share_24h",
        "share with compound ≥ 0.05",
        "24 h",
        "sentiment (news)"
    ),
    (
        "news_neg_share_24h",
        "share with compound ≤ −0.05",
        "24 h",
        "sentiment (news)"
    ),
    (
        "social_count_1h",
        "Reddit posts mentioning the base asset",
        "1 h",
        "sentiment (Reddit)"
    ),
    (
        "social_compound_1h",
        "mean sentiment compound of those posts",
        "1 h",
        "sentiment (Reddit)"
    ),
    (
        "social_pos_share_1h",
        "share with compound ≥ 0.05",
        "1 h",
        "sentiment (Reddit)"
    ),
    (
        "social_neg_share_1h",
        "share with compound ≤ −0.05",
        "1 h",
        "sentiment (Reddit)"
    ),
    (
        "social_count_24h",
        "Reddit posts mentioning the base asset",
        "24 h",
        "sentiment (Reddit)"
    ),
    (
        "social_compound_24h",
        "mean sentiment compound of those posts",
        "24 h",
        "sentiment (Reddit)"
    ),
    (
        "social_pos_share_24h",
        "share with compound ≥ 0.05",
        "24 h",
        "sentiment (Reddit)"
    ),
    (
        "social_neg_share_24h",
        "share with compound ≤ −0.05",
        "24 h",
        "sentiment (Reddit)"
    ),
    (
        "macro_fedfunds",
        "latest FEDFUNDS value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_fedfunds_change",
        "change from the previous FEDFUNDS observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_cpiaucsl",
        "latest CPIAUCSL value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_cpiaucsl_change",
        "change from the previous CPIAUCSL observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_dgs10",
        "latest DGS10 value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_dgs10_change",
        "change from the previous DGS10 observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_dtwexbgs",
        "latest DTWEXBGS value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_dtwexbgs_change",
        "change from the previous DTWEXBGS observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_m2sl",
        "latest M2SL value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_m2sl_change",
        "change from the previous M2SL observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_unrate",
        "latest UNRATE value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_unrate_change",
        "change from the previous UNRATE observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_vixcls",
        "latest VIXCLS value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_vixcls_change",
        "change from the previous VIXCLS observation",
        "as of close",
        "FRED"
    ),
    (
        "macro_gdp",
        "latest GDP value published by the close",
        "as of close",
        "FRED"
    ),
    (
        "macro_gdp_change",
        "change from the previous GDP observation",
        "as of close",
        "FRED"
    ),
    (
        "cg_market_cap",
        "market capitalization (USD)",
        "as of close",
        "CoinGecko"
    ),
    (
        "cg_market_cap_rank",
        "rank by market capitalization",
        "as of close",
        "CoinGecko"
    ),
    (
        "cg_total_volume",
        "24 h volume (USD)",
        "as of close",
        "CoinGecko"
    ),
    (
        "cg_price_change_pct_24h",
        "24 h price change, percent",
        "as of close",
        "CoinGecko"
    ),
    (
        "cg_supply_ratio",
        "circulating / max supply",
        "as of close",
        "CoinGecko"
    ),
    (
        "hour_sin",
        "sin(2π · UTC hour of the close / 24)",
        "1 bar",
        "clock"
    ),
    (
        "hour_cos",
        "cos(2π · UTC hour of the close / 24)",
        "1 bar",
        "clock"
    ),
    (
        "weekday_sin",
        "sin(2π · weekday of the close / 7)",
        "1 bar",
        "clock"
    ),
    (
        "weekday_cos",
        "cos(2π · weekday of the close / 7)",
        "1 bar",
        "clock"
    ),
];

/// The catalogue as a Markdown table (the docs' feature catalogue is this text).
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "# ML feature catalogue\n\nGenerated from `operators/src/features.rs` by `cryptoflow features`; one vector per (symbol, interval) at each final candle, stored in `ml_features`. A feature is NULL until its window has data. Point in time: a vector uses only data with event time at or before the candle's close, and only FRED vintages published by then.\n\n| # | name | definition | window | source |\n| --- | --- | --- | --- | --- |\n",
    );
    for (i, f) in CATALOGUE.iter().enumerate() {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            i + 1,
            f.name,
            f.definition,
            f.window,
            f.source
        ));
    }
    out
}

/// The catalogue's views of a feature vector.
impl FeatureRow {
    /// The values as a JSON object `{name: value or null}`.
    pub fn json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .named()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.map_or(serde_json::Value::Null, serde_json::Value::from),
                )
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// `name → value` pairs.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, Option<f64>)> + '_ {
        CATALOGUE
            .iter()
            .map(|f| f.name)
            .zip(self.values.iter().copied())
    }
}

/// A feature vector being filled in catalogue order; debug builds check every name against
/// [`CATALOGUE`] at its position, so the vector and the catalogue cannot drift apart.
struct Vector(Vec<Option<f64>>);

impl Vector {
    fn new() -> Self {
        Vector(Vec::with_capacity(CATALOGUE.len()))
    }

    fn check(&self, name: &str) {
        debug_assert_eq!(
            CATALOGUE.get(self.0.len()).map(|f| f.name),
            Some(name),
            "feature {} is not the catalogue's entry at position {}",
            name,
            self.0.len()
        );
    }

    fn put(&mut self, name: &str, value: Option<f64>) {
        self.check(name);
        self.0.push(value);
    }

    /// [`put`](Self::put) for a name built from parts (built in debug builds only).
    fn put_generated(&mut self, name: impl FnOnce() -> String, value: Option<f64>) {
        #[cfg(debug_assertions)]
        self.check(&name());
        #[cfg(not(debug_assertions))]
        let _ = name;
        self.0.push(value);
    }

    fn finish(self) -> Vec<Option<f64>> {
        debug_assert_eq!(
            self.0.len(),
            CATALOGUE.len(),
            "every catalogue feature has a value"
        );
        self.0
    }
}

#[derive(Debug, Clone)]
struct Window {
    vals: VecDeque<f64>,
    n: usize,
}

impl Window {
    fn new(n: usize) -> Self {
        Window {
            vals: VecDeque::with_capacity(n + 1),
            n,
        }
    }
    fn push(&mut self, x: f64) {
        self.vals.push_back(x);
        if self.vals.len() > self.n {
            self.vals.pop_front();
        }
    }
    /// The value `k` pushes before the newest.
    fn back(&self, k: usize) -> Option<f64> {
        let len = self.vals.len();
        (k < len).then(|| self.vals[len - 1 - k])
    }
    fn zscore_and_mean(&self) -> Option<(f64, f64)> {
        if self.vals.len() < self.n {
            return None;
        }
        let n = self.n as f64;
        let mean = self.vals.iter().sum::<f64>() / n;
        let var = self
            .vals
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / n;
        let last = self.back(0)?;
        // A window of equal values has σ = 0 exactly; its computed mean may be an ulp off (e.g.
        // twenty 0.1s), and the resulting rounding noise must not read as a ±1 z-score.
        let flat = self.vals.iter().all(|v| *v == last);
        let z = if var > 0.0 && !flat {
            (last - mean) / var.sqrt()
        } else {
            0.0
        };
        Some((z, mean))
    }
}

#[derive(Debug, Clone)]
struct KeyState {
    last_open: Millis,
    closes: Window,
    volumes: Window,
    counts: Window,
    vol5: Volatility,
    vol20: Volatility,
    vol60: Volatility,
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            last_open: Millis::MIN,
            closes: Window::new(61),
            volumes: Window::new(20),
            counts: Window::new(20),
            vol5: Volatility::new(5),
            vol20: Volatility::new(20),
            vol60: Volatility::new(60),
        }
    }
}

/// (series, day) → (value, change) as known that day.
type MacroCache = HashMap<(String, NaiveDate), [Option<f64>; 2]>;

/// Point-in-time feature state of one worker.
#[derive(Debug, Default)]
pub struct FeatureEngine {
    keys: HashMap<(Venue, Symbol, Interval), KeyState>,
    /// (coin, kind) → event time → compounds.
    sentiment: HashMap<(String, String), BTreeMap<Millis, Vec<f64>>>,
    /// series → (realtime_start, date) → value.
    macro_obs: HashMap<String, BTreeMap<(NaiveDate, NaiveDate), Option<Decimal>>>,
    /// (series, day) → features, valid until the series gets a new observation.
    macro_cache: std::cell::RefCell<MacroCache>,
    /// ticker (upper case) → last_updated → snapshot.
    market: HashMap<String, BTreeMap<Millis, CoinMarket>>,
    /// symbol → (trade time, qty) of whale trades not yet used.
    whales: HashMap<(Venue, Symbol), BTreeMap<(Millis, u64), f64>>,
    newest_close: Millis,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn day(ms: Millis) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.date_naive())
}

impl FeatureEngine {
    /// An empty engine.
    pub fn new() -> Self {
        FeatureEngine::default()
    }

    /// Adds a context item.
    pub fn add_context(&mut self, item: ContextItem) {
        match item {
            ContextItem::Sentiment(r) => {
                for coin in &r.coins {
                    self.sentiment
                        .entry((coin.clone(), r.kind.clone()))
                        .or_default()
                        .entry(r.published_at)
                        .or_default()
                        .push(r.score.compound);
                }
            }
            ContextItem::Macro(m) => {
                self.macro_cache
                    .get_mut()
                    .retain(|(series, _), _| *series != m.series_id);
                self.macro_obs
                    .entry(m.series_id.clone())
                    .or_default()
                    .insert((m.realtime_start, m.date), m.value);
            }
            ContextItem::Market(m) => {
                if let Some(t) = m.symbol.as_deref().filter(|_| m.endpoint == "markets") {
                    self.market
                        .entry(t.to_uppercase())
                        .or_default()
                        .insert(m.last_updated, *m);
                }
            }
        }
    }

    /// Adds a whale trade of `symbol` on `venue` (exchange time, trade id, quantity).
    pub fn add_whale(&mut self, venue: Venue, symbol: Symbol, ts: Millis, trade_id: u64, qty: f64) {
        self.whales
            .entry((venue, symbol))
            .or_default()
            .insert((ts, trade_id), qty);
    }

    fn sentiment_features(
        &self,
        coin: &str,
        kind: &str,
        t: Millis,
        span: Millis,
    ) -> [Option<f64>; 4] {
        let Some(items) = self.sentiment.get(&(coin.to_string(), kind.to_string())) else {
            return [Some(0.0), None, None, None];
        };
        let (mut n, mut sum, mut pos, mut neg) = (0usize, 0.0, 0usize, 0usize);
        for (_, cs) in items.range(t - span + 1..=t) {
            for c in cs {
                n += 1;
                sum += c;
                pos += usize::from(*c >= 0.05);
                neg += usize::from(*c <= -0.05);
            }
        }
        if n == 0 {
            return [Some(0.0), None, None, None];
        }
        let nf = n as f64;
        [
            Some(nf),
            Some(sum / nf),
            Some(pos as f64 / nf),
            Some(neg as f64 / nf),
        ]
    }

    fn macro_features(&self, series: &str, t: Millis) -> [Option<f64>; 2] {
        let (Some(obs), Some(today)) = (self.macro_obs.get(series), day(t)) else {
            return [None, None];
        };
        let key = (series.to_string(), today);
        if let Some(v) = self.macro_cache.borrow().get(&key) {
            return *v;
        }
        // Per observation date, the newest vintage published by `today`.
        let mut known: BTreeMap<NaiveDate, Option<Decimal>> = BTreeMap::new();
        for ((rt_start, date), v) in obs {
            if *rt_start <= today && *date <= today {
                known.insert(*date, *v);
            }
        }
        let mut it = known.values().rev().filter_map(|v| v.map(to_f64));
        let last = it.next();
        let prev = it.next();
        let out = [last, last.zip(prev).map(|(a, b)| a - b)];
        let mut cache = self.macro_cache.borrow_mut();
        if cache.len() > 4_096 {
            cache.clear();
        }
        cache.insert(key, out);
        out
    }

    fn market_features(&self, base: &str, t: Millis) -> [Option<f64>; 5] {
        let Some(m) = self
            .market
            .get(base)
            .and_then(|s| s.range(..=t).next_back())
            .map(|(_, m)| m)
        else {
            return [None; 5];
        };
        let f = |d: Option<Decimal>| d.map(to_f64);
        [
            f(m.market_cap),
            m.market_cap_rank.map(|r| r as f64),
            f(m.total_volume),
            f(m.price_change_pct_24h),
            ratio(f(m.circulating_supply), f(m.max_supply)),
        ]
    }

    /// The vector of a final candle (fed in open-time order per key; a repeat gives `None`).
    pub fn on_candle(&mut self, c: &Candle, ind: &IndicatorValues) -> Option<FeatureRow> {
        let st = self
            .keys
            .entry((c.venue, c.symbol, c.interval))
            .or_insert_with(KeyState::new);
        if c.open_time <= st.last_open {
            return None;
        }
        st.last_open = c.open_time;
        let (o, h, l, close) = (
            to_f64(c.open),
            to_f64(c.high),
            to_f64(c.low),
            to_f64(c.close),
        );
        let volume = to_f64(c.volume);
        st.closes.push(close);
        st.volumes.push(volume);
        st.counts.push(c.trade_count as f64);
        let vol5 = st.vol5.update(close);
        let vol20 = st.vol20.update(close);
        let vol60 = st.vol60.update(close);
        let ret = |k: usize| st.closes.back(k).map(|p| close / p - 1.0);
        let logret = |k: usize| {
            st.closes
                .back(k)
                .filter(|p| *p > 0.0 && close > 0.0)
                .map(|p| (close / p).ln())
        };
        // Every value is put under its catalogue name: a debug build checks each position.
        let mut v = Vector::new();
        for (name, k) in [("ret_1", 1), ("ret_5", 5), ("ret_15", 15), ("ret_60", 60)] {
            v.put(name, ret(k));
        }
        for (name, k) in [
            ("logret_1", 1),
            ("logret_5", 5),
            ("logret_15", 15),
            ("logret_60", 60),
        ] {
            v.put(name, logret(k));
        }
        v.put("volatility_5", vol5);
        v.put("volatility_20", vol20);
        v.put("volatility_60", vol60);
        let vwap = ind.vwap_20.map(to_f64);
        for (name, x) in [
            ("sma_20", ind.sma_20),
            ("ema_20", ind.ema_20),
            ("wma_20", ind.wma_20),
            ("rsi_14", ind.rsi_14),
            ("macd", ind.macd),
            ("macd_signal", ind.macd_signal),
            ("macd_hist", ind.macd_hist),
            ("bb_upper", ind.bb_upper),
            ("bb_middle", ind.bb_middle),
            ("bb_lower", ind.bb_lower),
            ("atr_14", ind.atr_14),
            ("obv", ind.obv),
            ("stoch_k", ind.stoch_k),
            ("stoch_d", ind.stoch_d),
            ("roc_10", ind.roc_10),
            ("mom_10", ind.mom_10),
            ("zscore_20", ind.zscore_20),
            ("vwap_20", vwap),
        ] {
            v.put(name, x);
        }
        let c1 = |x: Option<f64>| ratio(Some(close), x).map(|r| r - 1.0);
        v.put("close_to_sma_20", c1(ind.sma_20));
        v.put("close_to_ema_20", c1(ind.ema_20));
        v.put("close_to_vwap_20", c1(vwap));
        v.put(
            "bb_percent_b",
            match (ind.bb_upper, ind.bb_lower) {
                (Some(u), Some(lo)) if u > lo => Some((close - lo) / (u - lo)),
                _ => None,
            },
        );
        v.put(
            "bb_width",
            match (ind.bb_upper, ind.bb_lower, ind.bb_middle) {
                (Some(u), Some(lo), Some(m)) if m != 0.0 => Some((u - lo) / m),
                _ => None,
            },
        );
        v.put("macd_norm", ratio(ind.macd, Some(close)));
        v.put("atr_norm", ratio(ind.atr_14, Some(close)));
        let tbv = to_f64(c.taker_buy_volume);
        v.put("range", ratio(Some(h - l), Some(close)));
        v.put("body", ratio(Some(close - o), Some(o)));
        v.put("upper_wick", ratio(Some(h - o.max(close)), Some(close)));
        v.put("lower_wick", ratio(Some(o.min(close) - l), Some(close)));
        v.put("log_volume", Some(volume.ln_1p()));
        v.put("log_quote_volume", Some(to_f64(c.quote_volume).ln_1p()));
        v.put("trade_count", Some(c.trade_count as f64));
        v.put("taker_buy_ratio", ratio(Some(tbv), Some(volume)));
        v.put(
            "buy_sell_imbalance",
            ratio(Some(tbv - (volume - tbv)), Some(volume)),
        );
        v.put(
            "vwap_to_close",
            ratio(Some(to_f64(c.vwap)), Some(close)).map(|r| r - 1.0),
        );
        let vz = st.volumes.zscore_and_mean();
        v.put("volume_zscore_20", vz.map(|(z, _)| z));
        v.put(
            "volume_ratio_20",
            vz.and_then(|(_, m)| ratio(Some(volume), Some(m)))
                .map(|r| r - 1.0),
        );
        v.put(
            "trade_count_zscore_20",
            st.counts.zscore_and_mean().map(|(z, _)| z),
        );
        // Whale trades of this window; older ones are dropped.
        let (mut wc, mut wv) = (0usize, 0.0);
        if let Some(w) = self.whales.get_mut(&(c.venue, c.symbol)) {
            for (_, q) in w.range((c.open_time, 0)..=(c.close_time, u64::MAX)) {
                wc += 1;
                wv += q;
            }
            let keep_from = c.open_time - 7 * 86_400_000;
            w.retain(|(ts, _), _| *ts >= keep_from);
        }
        v.put("whale_count", Some(wc as f64));
        v.put("whale_volume", Some(wv));
        v.put("whale_volume_share", ratio(Some(wv), Some(volume)));
        let t = c.close_time;
        let base = c
            .symbol
            .quote_asset()
            .map(|q| &c.symbol.as_str()[..c.symbol.as_str().len() - q.len()])
            .unwrap_or(c.symbol.as_str())
            .to_string();
        for kind in ["news", "social"] {
            for (label, span) in [("1h", 3_600_000), ("24h", 86_400_000)] {
                let values = self.sentiment_features(&base, kind, t, span);
                for (stat, x) in ["count", "compound", "pos_share", "neg_share"]
                    .iter()
                    .zip(values)
                {
                    v.put_generated(|| format!("{kind}_{stat}_{label}"), x);
                }
            }
        }
        for s in MACRO_SERIES {
            let [value, change] = self.macro_features(s, t);
            v.put_generated(|| format!("macro_{}", s.to_lowercase()), value);
            v.put_generated(|| format!("macro_{}_change", s.to_lowercase()), change);
        }
        let market = self.market_features(&base, t);
        for (name, x) in [
            "cg_market_cap",
            "cg_market_cap_rank",
            "cg_total_volume",
            "cg_price_change_pct_24h",
            "cg_supply_ratio",
        ]
        .iter()
        .zip(market)
        {
            v.put(name, x);
        }
        let when = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
        let tau = std::f64::consts::TAU;
        let hour = f64::from(when.hour()) + f64::from(when.minute()) / 60.0;
        let wd = f64::from(when.weekday().num_days_from_monday());
        v.put("hour_sin", Some((tau * hour / 24.0).sin()));
        v.put("hour_cos", Some((tau * hour / 24.0).cos()));
        v.put("weekday_sin", Some((tau * wd / 7.0).sin()));
        v.put("weekday_cos", Some((tau * wd / 7.0).cos()));
        let mut v = v.finish();
        for x in &mut v {
            *x = x.filter(|f| f.is_finite());
        }
        self.newest_close = self.newest_close.max(t);
        self.prune();
        Some(FeatureRow {
            venue: c.venue,
            symbol: c.symbol,
            interval: c.interval,
            open_time: c.open_time,
            close_time: t,
            values: v,
        })
    }

    /// Forgets sentiment older than two days before the newest close (the widest window is 24 h).
    fn prune(&mut self) {
        let cut = self.newest_close - 2 * 86_400_000;
        for m in self.sentiment.values_mut() {
            while m.first_key_value().is_some_and(|(k, _)| *k < cut) {
                m.pop_first();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MacroObservation, SentimentRow, SentimentScore};

    fn candle(i: i64) -> Candle {
        let p = Decimal::from(100 + (i * 7) % 13);
        Candle {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            interval: "1m".parse().expect("interval"),
            open_time: 1_795_300_000_000 + i * 60_000,
            close_time: 1_795_300_000_000 + i * 60_000 + 59_999,
            open: p,
            high: p + Decimal::ONE,
            low: p - Decimal::ONE,
            close: p,
            volume: Decimal::from(10 + i % 5),
            quote_volume: p * Decimal::from(10 + i % 5),
            vwap: p,
            trade_count: 5,
            taker_buy_volume: Decimal::from(3),
            first_trade_id: 1,
            last_trade_id: 5,
            is_final: true,
        }
    }

    fn news(at: Millis, compound: f64) -> ContextItem {
        ContextItem::Sentiment(SentimentRow {
            item_key: format!("news|{at}"),
            kind: "news".into(),
            model: "vader-3.3.2".into(),
            published_at: at,
            coins: vec!["BTC".into()],
            score: SentimentScore {
                neg: 0.0,
                neu: 0.5,
                pos: 0.5,
                compound,
            },
        })
    }

    fn fed(date: &str, rt: &str, v: &str) -> ContextItem {
        ContextItem::Macro(MacroObservation {
            series_id: "FEDFUNDS".into(),
            date: date.parse().expect("date"),
            value: Some(v.parse().expect("value")),
            realtime_start: rt.parse().expect("date"),
            realtime_end: "9999-12-31".parse().expect("date"),
        })
    }

    fn value(row: &FeatureRow, name: &str) -> Option<f64> {
        row.named().find(|(n, _)| *n == name).and_then(|(_, v)| v)
    }

    #[test]
    fn zscore_of_a_flat_window_is_zero_at_any_scale() {
        for x in [0.1, 7.123e-6, 100.37, 1e5 + 0.1, 1e11 + 0.3] {
            let mut w = Window::new(20);
            for _ in 0..20 {
                w.push(x);
            }
            assert_eq!(w.zscore_and_mean().map(|(z, _)| z), Some(0.0), "{x}");
            // One tick away at the same scale: a real deviation.
            w.push(x * (1.0 + 1e-6));
            let z = w.zscore_and_mean().map(|(z, _)| z).unwrap_or(0.0);
            assert!((z - 19f64.sqrt()).abs() < 1e-6 * 19f64.sqrt(), "{x}: {z}");
        }
    }

    #[test]
    fn catalogue_has_80_plus_unique_names() {
        assert!(CATALOGUE.len() >= 80, "{}", CATALOGUE.len());
        let names: std::collections::BTreeSet<_> = CATALOGUE.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), CATALOGUE.len());
    }

    /// Future-dated news, a macro revision published later, a later CoinGecko snapshot and a
    /// whale trade after the close, all arriving early, change no vector; past data counts.
    #[test]
    fn no_look_ahead() {
        let ind = IndicatorValues::default();
        let mut clean = FeatureEngine::new();
        let mut dirty = FeatureEngine::new();
        let t0 = candle(0).close_time;
        for e in [&mut clean, &mut dirty] {
            e.add_context(news(t0 - 30 * 60_000, 0.5));
            e.add_context(fed("2026-10-01", "2026-11-01", "4.09"));
        }
        // Known only later: published after the candles close.
        let last_close = candle(29).close_time;
        dirty.add_context(news(last_close + 1, -0.9));
        dirty.add_context(news(t0 + 3_600_000 * 5, 0.9));
        dirty.add_context(fed("2026-10-01", "2026-12-01", "9.99"));
        dirty.add_context(fed("2026-11-01", "2026-12-01", "5.00"));
        dirty.add_whale(
            Venue::Binance,
            Symbol::new("BTCUSDT").expect("s"),
            last_close + 5,
            99,
            50.0,
        );
        let mut m = CoinMarket {
            coin_id: "bitcoin".into(),
            vs_currency: "usd".into(),
            endpoint: "markets".into(),
            last_updated: last_close + 10,
            symbol: Some("btc".into()),
            name: None,
            price: None,
            market_cap: Some(Decimal::from(1)),
            market_cap_rank: Some(1),
            total_volume: None,
            high_24h: None,
            low_24h: None,
            price_change_24h: None,
            price_change_pct_24h: None,
            circulating_supply: None,
            total_supply: None,
            max_supply: None,
            ath: None,
            atl: None,
            fetched_at: 0,
            raw: "{}".into(),
        };
        dirty.add_context(ContextItem::Market(Box::new(m.clone())));
        for i in 0..30 {
            let a = clean.on_candle(&candle(i), &ind).expect("row");
            let b = dirty.on_candle(&candle(i), &ind).expect("row");
            assert_eq!(a, b, "candle {i}");
        }
        let first = clean.on_candle(&candle(30), &ind).expect("row");
        // The past news item is in the 24 h window; FEDFUNDS as published on 2026-11-01.
        assert_eq!(value(&first, "news_count_24h"), Some(1.0));
        assert_eq!(value(&first, "news_compound_24h"), Some(0.5));
        assert_eq!(value(&first, "macro_fedfunds"), Some(4.09));
        assert_eq!(value(&first, "cg_market_cap"), None);
        // A newer observation published before the close counts from the next candle on.
        clean.add_context(fed("2026-11-01", "2026-11-02", "4.20"));
        // Once its time has come, the snapshot counts.
        m.last_updated = candle(31).close_time - 1;
        clean.add_context(ContextItem::Market(Box::new(m)));
        let next = clean.on_candle(&candle(31), &ind).expect("row");
        assert_eq!(value(&next, "cg_market_cap"), Some(1.0));
        assert_eq!(value(&next, "cg_market_cap_rank"), Some(1.0));
        assert_eq!(value(&next, "macro_fedfunds"), Some(4.2));
        let change = value(&next, "macro_fedfunds_change").expect("change");
        assert!((change - 0.11).abs() < 1e-12, "{change}");
        // A repeat of a candle gives nothing.
        assert!(clean.on_candle(&candle(31), &ind).is_none());
    }

    #[test]
    fn returns_and_candle_features() {
        let ind = IndicatorValues::default();
        let mut e = FeatureEngine::new();
        let rows: Vec<FeatureRow> = (0..70)
            .filter_map(|i| e.on_candle(&candle(i), &ind))
            .collect();
        let closes: Vec<f64> = (0..70).map(|i| to_f64(candle(i).close)).collect();
        assert_eq!(value(&rows[0], "ret_1"), None);
        assert_eq!(value(&rows[1], "ret_1"), Some(closes[1] / closes[0] - 1.0));
        assert_eq!(
            value(&rows[65], "ret_60"),
            Some(closes[65] / closes[5] - 1.0)
        );
        assert_eq!(
            value(&rows[65], "logret_5"),
            Some((closes[65] / closes[60]).ln())
        );
        assert_eq!(value(&rows[0], "taker_buy_ratio"), Some(0.3));
        assert_eq!(value(&rows[0], "whale_count"), Some(0.0));
        assert!(rows.iter().all(|r| r.values.len() == CATALOGUE.len()));
    }
}
