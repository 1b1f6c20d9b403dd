//! Layered configuration.
//!
//! Precedence, lowest first: the embedded defaults (`dataflows/default.toml`) < the config file
//! < environment variables `CRYPTOFLOW__<SECTION>__<KEY>` (nested tables with more `__`) <
//! command-line flags (applied by the CLI). Environment values are read as TOML values when they
//! parse as such (numbers, booleans, arrays) and as strings otherwise. Secrets (database
//! passwords, tokens, API keys, `sasl.password`, in any form: see [`crate::secrets`]) come only
//! from the environment: a config file holding one is rejected.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use cryptoflow_operators::dataflow::{AnalyticsConfig, CandleConfig, WhaleThresholds};
use cryptoflow_operators::model::{Interval, Venue};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The embedded defaults.
pub const DEFAULTS: &str = include_str!("default.toml");

/// [`DEFAULTS`] parsed, once per process (every config load starts from a copy).
fn default_value() -> Result<toml::Value> {
    static PARSED: std::sync::OnceLock<Result<toml::Value, String>> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| toml::from_str(DEFAULTS).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow!("embedded defaults: {e}"))
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Dataflow settings.
    pub pipeline: PipelineConfig,
    /// Whale thresholds.
    pub whales: WhalesConfig,
    /// Binance endpoints and subscriptions.
    pub binance: BinanceConfig,
    /// Sinks.
    pub sinks: SinksConfig,
    /// The Kafka source (`cryptoflow consume`).
    pub kafka: KafkaSourceSection,
    /// The pollers.
    pub poll: crate::poll::PollSection,
    /// How news items and posts are scored.
    pub sentiment: SentimentSection,
    /// The HTTP API and WebSocket push (`[serve]`).
    pub serve: crate::serve::ServeSection,
    /// Strategies, risk limits and paper costs (`[trading]`; `backtest`, `execute`).
    pub trading: crate::trade::TradingSection,
}

/// `[sentiment]`: the model that scores news items and posts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentSection {
    /// `vader` (vaderSentiment 3.3.2 exactly), `vader-crypto` (VADER plus the built-in
    /// crypto/finance overlay; the default) or `onnx` (a transformer; needs a build with the cargo feature
    /// `sentiment-onnx`).
    pub model: String,
    /// Extra overlay words (`word<TAB>valence` per line) on top of a VADER model; empty for none.
    pub overlay_file: String,
    /// The transformer model (`model = "onnx"`).
    pub onnx: OnnxSentimentSection,
}

/// `[sentiment.onnx]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSentimentSection {
    /// Directory with `model.onnx`, `tokenizer.json` and `cryptoflow-sentiment.json`.
    pub model_dir: String,
    /// ONNX Runtime's shared library (`libonnxruntime.so`); empty: the `ORT_DYLIB_PATH`
    /// environment variable, else the system's library search path.
    pub runtime_library: String,
    /// Threads per inference.
    pub threads: usize,
}

/// `[kafka]`: the Kafka source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSection {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group.
    pub group_id: String,
    /// Dead-letter topic ("" disables).
    pub dead_letter_topic: String,
    /// Larger messages are dead letters.
    pub max_message_bytes: usize,
    /// Most messages per batch.
    pub batch_max: usize,
    /// A partition silent this long stops holding the watermark back (one read to its end stops
    /// at once), ms.
    pub partition_idle_ms: u64,
    /// Brokers silent this long at start-up fail the run; once running, a loss (or no partition
    /// assignment) this long is a warning and makes the source not ready, ms.
    pub connect_timeout_ms: u64,
    /// Extra librdkafka consumer settings.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

/// `[pipeline]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Worker threads.
    pub workers: usize,
    /// Tick length, ms.
    pub tick_ms: i64,
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: i64,
    /// SMA window in trades.
    pub sma_window: usize,
    /// EMA period in trades.
    pub ema_window: usize,
    /// Candle intervals.
    pub candle_intervals: Vec<Interval>,
    /// Emit forming candle updates.
    pub emit_forming_candles: bool,
    /// Backpressure bound in trades.
    pub max_in_flight: i64,
    /// Idle watermark advance for live sources, ms.
    pub idle_watermark_ms: i64,
    /// After SIGTERM or Ctrl-C, how long a live run may take to write, acknowledge and commit
    /// what it has before it gives up and exits 1, s (a second signal exits at once).
    pub shutdown_deadline_s: u64,
    /// How often the data-quality ledger is snapshotted into PostgreSQL, ms.
    pub quality_snapshot_ms: u64,
    /// At a start with a PostgreSQL sink, the indicators and strategies of each (symbol,
    /// interval) are warmed with up to this many of its newest stored final candles before the
    /// run's first candle (0: start cold).
    #[serde(default = "default_restore_candles")]
    pub restore_candles: usize,
}

fn default_restore_candles() -> usize {
    1000
}

/// `[whales]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhalesConfig {
    /// Default threshold in the quote currency.
    pub default_threshold: Decimal,
    /// Quote asset → threshold.
    #[serde(default)]
    pub per_quote: BTreeMap<String, Decimal>,
}

/// `[binance]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceConfig {
    /// The market: `binance` (spot), `binance-usdm` (USDⓈ-M futures) or `binance-coinm` (COIN-M
    /// futures); "" infers it from the base URLs' host (spot when no host is a known Binance one).
    #[serde(default)]
    pub venue: String,
    /// WebSocket base URL ("" = the venue's public endpoint).
    pub ws_base_url: String,
    /// REST base URL ("" = the venue's public endpoint).
    pub rest_base_url: String,
    /// Symbols.
    pub symbols: Vec<String>,
    /// Stream kinds per symbol.
    pub streams: Vec<String>,
    /// Streams per connection.
    pub max_streams_per_connection: usize,
    /// First reconnect delay, ms.
    pub reconnect_initial_ms: u64,
    /// Largest reconnect delay, ms.
    pub reconnect_max_ms: u64,
    /// Reconnect after this long without a frame, ms.
    pub idle_timeout_ms: u64,
    /// Roll over to a fresh connection after this many seconds (make-before-break).
    pub max_connection_age_s: u64,
    /// Connection attempts allowed per 5 minutes.
    pub max_connection_attempts_per_5min: usize,
    /// A symbol silent for longer than this is flagged stale in the ledger, ms.
    pub stale_after_ms: i64,
    /// Per-symbol stale times (symbol → ms), overriding `stale_after_ms`.
    #[serde(default)]
    pub stale_after_ms_per_symbol: BTreeMap<String, i64>,
    /// Refill id gaps from the REST API.
    pub refill: bool,
    /// Request weight the refill may spend per minute (Binance allows 6000 per IP).
    pub rest_weight_budget_per_minute: u32,
    /// A hole holds the live trades after it (to deliver them in id order) at most this long,
    /// ms; a longer refill lets live trades go on and its pages follow.
    pub refill_hold_ms: u64,
    /// … and at most this many trades per stream.
    pub refill_hold_trades: usize,
    /// Events the live source queues in memory while the pipeline pushes back; more go to a
    /// spill file, so the WebSocket readers never stop reading.
    pub queue_memory_events: usize,
    /// Directory of the spill file ("" = the system's temporary directory).
    pub spill_dir: String,
}

impl BinanceConfig {
    /// The live source's hold and queue limits.
    pub fn live_limits(&self) -> cryptoflow_sources::ws::LiveLimits {
        cryptoflow_sources::ws::LiveLimits {
            hold: std::time::Duration::from_millis(self.refill_hold_ms),
            hold_trades: self.refill_hold_trades.max(1),
            queue_events: self.queue_memory_events.max(1),
            spill_dir: if self.spill_dir.is_empty() {
                std::env::temp_dir()
            } else {
                std::path::PathBuf::from(&self.spill_dir)
            },
        }
    }
}

/// `[sinks]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Console sink on/off.
    pub console: bool,
    /// JSON-lines path ("" disables).
    pub jsonl: String,
    /// Dead-letter path ("" disables).
    pub dead_letters: String,
    /// Most records per flush.
    pub max_batch: usize,
    /// Linger before a flush, ms.
    pub linger_ms: u64,
    /// Sink queue capacity (messages).
    pub queue_capacity: usize,
    /// PostgreSQL.
    pub postgres: cryptoflow_sinks::postgres::PostgresConfig,
    /// MySQL / MariaDB.
    pub mysql: cryptoflow_sinks::mysql::MySqlConfig,
    /// InfluxDB.
    pub influx: cryptoflow_sinks::influx::InfluxSinkConfig,
    /// Kafka.
    pub kafka: cryptoflow_sinks::kafka::KafkaSinkConfig,
    /// Redis.
    pub redis: cryptoflow_sinks::redis::RedisConfig,
    /// When no other sink is on, count the records without keeping them (`replay --quiet`);
    /// set by the command line, not a configuration key.
    #[serde(skip)]
    pub count_only: bool,
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

impl Config {
    /// Loads defaults, then `file`, then the environment `env` (pass `std::env::vars()`).
    ///
    /// A file that holds a credential in any form (see [`crate::secrets`]) is refused with the
    /// environment variable to use instead. A value of the wrong type names its key and where
    /// it came from. Every secret of the result is remembered for redaction.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?,
            ),
            None => None,
        };
        Config::load_text(file.zip(text.as_deref()), env)
    }

    /// [`Config::load`] with the config file already read: `file` is its path (named in
    /// messages) and its text. The decoder of the config file, without the file system.
    pub fn load_text(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut value = default_value()?;
        let mut file_value = None;
        let (file, text) = file.unzip();
        if let (Some(path), Some(text)) = (file, text) {
            let over: toml::Value = toml::from_str(text)
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            if let Some(key) = first_secret(&over, &mut Vec::new()) {
                bail!(
                    "config file {} holds a credential at `{}`; secrets come from the environment only: \
                     remove it from the file and set {} instead",
                    path.display(),
                    key.join("."),
                    env_name(&key)
                );
            }
            merge(&mut value, over.clone());
            file_value = Some(over);
        }
        let mut from_env: Vec<(Vec<String>, String)> = Vec::new();
        for (key, raw) in env {
            let Some(rest) = key.strip_prefix("CRYPTOFLOW__") else {
                continue;
            };
            let mut path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // librdkafka settings are dotted (`sasl.password`), which an environment variable
            // name cannot be: `…__PRODUCER__SASL_PASSWORD` sets `sasl.password`.
            if is_rdkafka_map(&path[..path.len().saturating_sub(1)]) {
                if let Some(last) = path.last_mut() {
                    *last = last.replace('_', ".");
                }
            }
            let mut over = env_value(&raw);
            for part in path.iter().rev() {
                let mut t = toml::Table::new();
                t.insert(part.clone(), over);
                over = toml::Value::Table(t);
            }
            merge(&mut value, over);
            from_env.push((path, key));
        }
        remember_secrets(&value, &mut Vec::new());
        let cfg: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let origin = origin_of(&path, &from_env, file, file_value.as_ref());
            anyhow::anyhow!(
                "invalid configuration: `{path}`{origin}: {}",
                // The first line: the parser's next ones repeat the key (`in \`pipeline.workers\``).
                crate::secrets::redact(e.inner().to_string().lines().next().unwrap_or_default())
            )
        })?;
        cfg.validate().map_err(|e| {
            // A value of the right type but out of range: say where the named key was set.
            let text = format!("{e:#}");
            let origins: Vec<String> = from_env
                .iter()
                .filter(|(path, _)| text.contains(&path.join(".")))
                .map(|(path, var)| {
                    format!("`{}` from the environment variable {var}", path.join("."))
                })
                .collect();
            if origins.is_empty() {
                e
            } else {
                anyhow::anyhow!("{text} ({})", origins.join(", "))
            }
        })?;
        Ok(cfg)
    }

    /// Checks values that types alone do not.
    pub fn validate(&self) -> Result<()> {
        self.serve.validate()?;
        self.trading.validate()?;
        let pg = &self.sinks.postgres;
        if pg.candle_retention_days > 0
            && (pg.retention_days == 0 || pg.candle_retention_days < pg.retention_days)
        {
            bail!(
                "sinks.postgres.candle_retention_days = {} would drop candles before the trades they \
                 summarize (retention_days = {}; 0 keeps every day): keep candles at least as long",
                pg.candle_retention_days,
                pg.retention_days
            );
        }
        let p = &self.pipeline;
        if p.workers == 0 {
            bail!("pipeline.workers must be at least 1");
        }
        if p.tick_ms <= 0 {
            bail!("pipeline.tick_ms must be positive");
        }
        for i in &p.candle_intervals {
            if i.millis() % p.tick_ms != 0 {
                bail!(
                    "candle interval {i} is not a multiple of pipeline.tick_ms = {}",
                    p.tick_ms
                );
            }
        }
        if p.allowed_lateness_ms < 0 {
            bail!("pipeline.allowed_lateness_ms must not be negative");
        }
        if p.sma_window == 0 || p.ema_window == 0 {
            bail!("pipeline.sma_window and ema_window must be at least 1");
        }
        let warmup = cryptoflow_operators::math::indicators::WARMUP_CANDLES + 1;
        if p.restore_candles != 0 && p.restore_candles < warmup {
            bail!(
                "pipeline.restore_candles must be 0 (start cold) or at least {warmup} (the longest \
                 indicator warm-up, MACD's 34 candles, and one more row for the strategies); got {}",
                p.restore_candles
            );
        }
        if self.whales.default_threshold <= Decimal::ZERO {
            bail!("whales.default_threshold must be positive");
        }
        for s in &self.binance.streams {
            let ok = s == "trade"
                || s == "aggTrade"
                || s.strip_prefix("kline_")
                    .is_some_and(|i| i.parse::<Interval>().is_ok());
            if !ok {
                bail!("binance.streams: unknown stream kind {s:?} (expected trade, aggTrade or kline_<interval>)");
            }
        }
        if self.binance.streams.iter().any(|s| s == "trade")
            && self.binance.streams.iter().any(|s| s == "aggTrade")
        {
            bail!("binance.streams: subscribe either trade or aggTrade per run; both share the trades table key");
        }
        for s in &self.binance.symbols {
            cryptoflow_operators::model::Symbol::new(s)
                .with_context(|| format!("binance.symbols: {s:?}"))?;
        }
        self.binance_venue()?;
        if self.kafka.topics.is_empty() || self.kafka.group_id.is_empty() {
            bail!("kafka.topics and kafka.group_id must not be empty");
        }
        if self.kafka.batch_max == 0 || self.kafka.max_message_bytes == 0 {
            bail!("kafka.batch_max and kafka.max_message_bytes must be at least 1");
        }
        if self.sinks.max_batch == 0 || self.sinks.queue_capacity == 0 {
            bail!("sinks.max_batch and sinks.queue_capacity must be at least 1");
        }
        self.poll.validate()?;
        // The model's words are checked without building the model (the VADER lexicon is
        // parsed when the pipeline starts); the ONNX model is opened.
        match self.vader_overlay()? {
            None => onnx_model(&self.sentiment.onnx).map(|_| ()),
            Some(_) => Ok(()),
        }
    }

    /// The sentiment model `[sentiment]` names, loaded (lexicons parsed, ONNX model opened).
    pub fn sentiment_model(
        &self,
    ) -> Result<std::sync::Arc<dyn cryptoflow_operators::sentiment::SentimentModel>> {
        use cryptoflow_operators::sentiment::Vader;
        Ok(match self.vader_overlay()? {
            None => return onnx_model(&self.sentiment.onnx),
            Some((_, name)) if name.is_empty() => std::sync::Arc::new(Vader::new()),
            Some((overlay, name)) => std::sync::Arc::new(Vader::with_overlay(&overlay, &name)),
        })
    }

    /// For the VADER models, the words laid over the lexicon and the overlay's name (empty for
    /// plain VADER), the overlay file read and checked; `None` for the ONNX model.
    fn vader_overlay(
        &self,
    ) -> Result<Option<(cryptoflow_operators::sentiment::LexiconOverlay, String)>> {
        use cryptoflow_operators::sentiment::LexiconOverlay;
        use sha2::{Digest, Sha256};
        let s = &self.sentiment;
        let mut overlay = LexiconOverlay::default();
        let mut name = String::new();
        match s.model.as_str() {
            "vader" => {}
            "vader-crypto" => {
                overlay = LexiconOverlay::crypto();
                name.push_str("crypto");
            }
            "onnx" => {
                if !s.overlay_file.is_empty() {
                    bail!("sentiment.overlay_file applies to the VADER models, not to onnx");
                }
                return Ok(None);
            }
            other => bail!(
                "sentiment.model: unknown model {other:?} (expected vader, vader-crypto or onnx)"
            ),
        }
        if !s.overlay_file.is_empty() {
            let text = std::fs::read_to_string(&s.overlay_file)
                .with_context(|| format!("sentiment.overlay_file {:?}", s.overlay_file))?;
            let extra = LexiconOverlay::parse(&text)
                .with_context(|| format!("sentiment.overlay_file {:?}", s.overlay_file))?;
            for (word, valence) in extra.entries() {
                overlay.insert(word, *valence);
            }
            // The stored model name tells scores of different word lists apart.
            let digest = Sha256::digest(text.as_bytes());
            let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            if !name.is_empty() {
                name.push('+');
            }
            name.push_str(&format!("custom-{hex}"));
        }
        Ok(Some((overlay, name)))
    }

    /// Settings of the analytics operator.
    pub fn analytics(&self) -> AnalyticsConfig {
        AnalyticsConfig {
            sma_window: self.pipeline.sma_window,
            ema_window: self.pipeline.ema_window,
            whales: WhaleThresholds {
                default: self.whales.default_threshold,
                per_quote: self.whales.per_quote.clone(),
            },
        }
    }

    /// Settings of the Kafka source.
    pub fn kafka_source(&self) -> cryptoflow_sources::kafka::KafkaSourceConfig {
        let k = &self.kafka;
        cryptoflow_sources::kafka::KafkaSourceConfig {
            brokers: k.brokers.clone(),
            topics: k.topics.clone(),
            group_id: k.group_id.clone(),
            dead_letter_topic: k.dead_letter_topic.clone(),
            max_message_bytes: k.max_message_bytes,
            batch_max: k.batch_max,
            consumer: k.consumer.clone(),
            candle_intervals_ms: self
                .pipeline
                .candle_intervals
                .iter()
                .map(|i| i.millis())
                .collect(),
            tick_ms: self.pipeline.tick_ms,
            partition_idle_ms: k.partition_idle_ms,
            connect_timeout_ms: k.connect_timeout_ms,
        }
    }

    /// Settings of the Kafka sink (`None`: disabled).
    pub fn kafka_sink(&self) -> Option<cryptoflow_sinks::kafka::KafkaSinkConfig> {
        (!self.sinks.kafka.brokers.is_empty()).then(|| self.sinks.kafka.clone())
    }

    /// Settings of the candle operator.
    pub fn candles(&self) -> CandleConfig {
        CandleConfig {
            intervals: self.pipeline.candle_intervals.clone(),
            tick_ms: self.pipeline.tick_ms,
            emit_forming: self.pipeline.emit_forming_candles,
        }
    }

    /// The venue of `[binance]`: `binance.venue` when set, else the venue of the base URLs' host
    /// ([`Venue::from_url`]), else spot. An explicit venue that contradicts a known Binance host,
    /// or two base URLs of different venues, is an error (a local or proxy host is never one).
    pub fn binance_venue(&self) -> Result<Venue> {
        let b = &self.binance;
        let explicit = match b.venue.trim() {
            "" => None,
            v => Some(
                v.parse::<Venue>()
                    .map_err(|e| anyhow::anyhow!("binance.venue: {e}"))?,
            ),
        };
        let mut inferred: Option<(Venue, &str, &str)> = None;
        for (key, url) in [
            ("binance.ws_base_url", &b.ws_base_url),
            ("binance.rest_base_url", &b.rest_base_url),
        ] {
            let Some(v) = Venue::from_url(url) else {
                continue;
            };
            if let Some(e) = explicit.filter(|e| *e != v) {
                bail!("binance.venue = {e:?} but {key} = {url:?} is a {v} endpoint");
            }
            match inferred {
                Some((w, k0, u0)) if w != v => {
                    bail!("{k0} = {u0:?} is a {w} endpoint but {key} = {url:?} is a {v} endpoint; set both for one venue")
                }
                _ => inferred = Some((v, key, url)),
            }
        }
        Ok(explicit
            .or(inferred.map(|(v, _, _)| v))
            .unwrap_or(Venue::Binance))
    }

    /// The WebSocket base URL: `binance.ws_base_url`, or the venue's public endpoint when empty.
    pub fn binance_ws_base_url(&self) -> Result<String> {
        Ok(match self.binance.ws_base_url.trim() {
            "" => default_ws_base_url(self.binance_venue()?).to_string(),
            url => url.to_string(),
        })
    }

    /// The REST base URL: `binance.rest_base_url`, or the venue's public endpoint when empty.
    pub fn binance_rest_base_url(&self) -> Result<String> {
        Ok(match self.binance.rest_base_url.trim() {
            "" => default_rest_base_url(self.binance_venue()?).to_string(),
            url => url.to_string(),
        })
    }

    /// Binance stream names for the configured symbols and kinds.
    pub fn stream_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.binance.symbols {
            for k in &self.binance.streams {
                out.push(format!("{}@{k}", s.to_ascii_lowercase()));
            }
        }
        out
    }

    /// The resolved configuration as TOML, with secrets redacted: settings whose name says
    /// secret are masked, and credentials inside any other value (URL passwords, secret query
    /// or key=value parameters) too.
    pub fn to_redacted_toml(&self) -> Result<String> {
        let mut v = toml::Value::try_from(self)?;
        redact_value(&mut v, None);
        Ok(toml::to_string_pretty(&v)?)
    }
}

/// The public WebSocket endpoint of a venue (USDⓈ-M routes `aggTrade`/`trade`/`kline` streams
/// under `/market`).
pub fn default_ws_base_url(venue: Venue) -> &'static str {
    match venue {
        Venue::Binance => "wss://stream.binance.com:9443",
        Venue::BinanceUsdm => "wss://fstream.binance.com/market",
        Venue::BinanceCoinm => "wss://dstream.binance.com",
    }
}

/// The public REST endpoint of a venue.
pub fn default_rest_base_url(venue: Venue) -> &'static str {
    match venue {
        Venue::Binance => "https://api.binance.com",
        Venue::BinanceUsdm => "https://fapi.binance.com",
        Venue::BinanceCoinm => "https://dapi.binance.com",
    }
}

/// Whether `path` is a table of librdkafka settings.
fn is_rdkafka_map(path: &[String]) -> bool {
    matches!(
        path.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["sinks", "kafka", "producer"] | ["kafka", "consumer"]
    )
}

/// The environment variable that sets the value at `path`.
fn env_name(path: &[String]) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|p| p.to_ascii_uppercase().replace(['.', '-'], "_"))
        .collect();
    format!("CRYPTOFLOW__{}", parts.join("__"))
}

/// The path of the first credential in `v` (a secret-named setting with a value, or a string
/// that carries a credential).
fn first_secret(v: &toml::Value, path: &mut Vec<String>) -> Option<Vec<String>> {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                path.push(k.clone());
                let secret_setting = crate::secrets::is_secret_name(k)
                    && v.as_str().is_some_and(|s| !s.trim().is_empty());
                if secret_setting {
                    return Some(path.clone());
                }
                if let Some(p) = first_secret(v, path) {
                    return Some(p);
                }
                path.pop();
            }
            None
        }
        toml::Value::Array(a) => a.iter().find_map(|v| first_secret(v, path)),
        toml::Value::String(s) if !crate::secrets::secrets_in(s).is_empty() => Some(path.clone()),
        _ => None,
    }
}

/// Remembers every secret in the resolved configuration value for redaction.
fn remember_secrets(v: &toml::Value, path: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                if crate::secrets::is_secret_name(k) {
                    if let Some(s) = v.as_str() {
                        crate::secrets::remember(s);
                    }
                }
                path.push(k.clone());
                remember_secrets(v, path);
                path.pop();
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| remember_secrets(v, path)),
        toml::Value::String(s) => crate::secrets::secrets_in(s)
            .iter()
            .for_each(|s| crate::secrets::remember(s)),
        _ => {}
    }
}

/// Masks secret-named settings and the credentials inside every string of `v`.
fn redact_value(v: &mut toml::Value, key: Option<&str>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                redact_value(v, Some(k));
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|v| redact_value(v, key)),
        toml::Value::String(s) => {
            if key.is_some_and(crate::secrets::is_secret_name) && !s.is_empty() {
                *s = crate::secrets::MASK.to_string();
            } else {
                *s = crate::secrets::redact(s);
            }
        }
        _ => {}
    }
}

/// Where the value at `path` (dotted, from the deserializer) came from, for error messages.
fn origin_of(
    path: &str,
    from_env: &[(Vec<String>, String)],
    file: Option<&Path>,
    file_value: Option<&toml::Value>,
) -> String {
    let want: Vec<&str> = path.split('.').collect();
    if let Some((_, var)) = from_env.iter().rev().find(|(p, _)| {
        p.iter().map(String::as_str).eq(want.iter().copied())
            || want.starts_with(&p.iter().map(String::as_str).collect::<Vec<_>>())
    }) {
        return format!(" (from the environment variable {var})");
    }
    if let (Some(f), Some(v)) = (file, file_value) {
        let mut cur = Some(v);
        for part in &want {
            cur = cur.and_then(|c| c.get(*part));
        }
        if cur.is_some() {
            return format!(" (from the config file {})", f.display());
        }
    }
    String::new()
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub fn redact_url(url: &str) -> String {
    crate::secrets::redact(url)
}

#[cfg(feature = "sentiment-onnx")]
fn onnx_model(
    s: &OnnxSentimentSection,
) -> Result<std::sync::Arc<dyn cryptoflow_operators::sentiment::SentimentModel>> {
    use cryptoflow_operators::sentiment::onnx::{OnnxOptions, OnnxSentiment};
    if s.model_dir.is_empty() {
        bail!("sentiment.onnx.model_dir is required with sentiment.model = \"onnx\"");
    }
    let options = OnnxOptions {
        runtime_library: (!s.runtime_library.is_empty()).then(|| s.runtime_library.clone().into()),
        threads: s.threads.max(1),
    };
    let model = OnnxSentiment::load(Path::new(&s.model_dir), &options)
        .with_context(|| format!("sentiment.onnx.model_dir {:?}", s.model_dir))?;
    Ok(std::sync::Arc::new(model))
}

#[cfg(not(feature = "sentiment-onnx"))]
fn onnx_model(
    _: &OnnxSentimentSection,
) -> Result<std::sync::Arc<dyn cryptoflow_operators::sentiment::SentimentModel>> {
    bail!("sentiment.model = \"onnx\" needs a build with the cargo feature sentiment-onnx (cargo build --release --features sentiment-onnx)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_env_precedence() {
        let dir = std::env::temp_dir().join(format!("cf-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[pipeline]\nworkers = 3\nsma_window = 5\n").unwrap();
        let env = vec![
            ("CRYPTOFLOW__PIPELINE__WORKERS".to_string(), "2".to_string()),
            (
                "CRYPTOFLOW__SINKS__POSTGRES__URL".to_string(),
                "postgres://u:secret@h/db".to_string(),
            ),
            (
                "CRYPTOFLOW__PIPELINE__CANDLE_INTERVALS".to_string(),
                "[\"1m\", \"5m\"]".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.pipeline.workers, 2);
        assert_eq!(c.pipeline.sma_window, 5);
        assert_eq!(c.pipeline.ema_window, 20);
        assert_eq!(c.pipeline.candle_intervals.len(), 2);
        assert!(c
            .to_redacted_toml()
            .unwrap()
            .contains("postgres://u:***@h/db"));
    }

    #[test]
    fn postgres_defaults_match_the_sinks_default_and_candles_outlive_trades() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(
            c.sinks.postgres,
            cryptoflow_sinks::postgres::PostgresConfig::default()
        );
        c.validate().unwrap();
        let env = |trades: &str, candles: &str| {
            vec![
                (
                    "CRYPTOFLOW__SINKS__POSTGRES__RETENTION_DAYS".to_string(),
                    trades.to_string(),
                ),
                (
                    "CRYPTOFLOW__SINKS__POSTGRES__CANDLE_RETENTION_DAYS".to_string(),
                    candles.to_string(),
                ),
            ]
        };
        let c = Config::load(None, env("30", "365")).unwrap();
        assert_eq!(c.sinks.postgres.retention().retention_days, 30);
        c.validate().unwrap();
        // Refused when loaded (which names the variable) or at the latest when validated.
        let err = Config::load(None, env("30", "7"))
            .and_then(|c| c.validate())
            .unwrap_err();
        assert!(
            err.to_string().contains("candle_retention_days = 7"),
            "{err}"
        );
        assert!(Config::load(None, env("0", "7"))
            .and_then(|c| c.validate())
            .is_err());
    }

    #[test]
    fn venue_is_explicit_or_inferred_and_never_contradicts_a_known_host() {
        let load = |pairs: &[(&str, &str)]| {
            let env: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (format!("CRYPTOFLOW__BINANCE__{k}"), v.to_string()))
                .collect();
            Config::load(None, env)
        };
        let c = load(&[]).unwrap();
        assert_eq!(c.binance_venue().unwrap(), Venue::Binance);
        assert_eq!(
            c.binance_ws_base_url().unwrap(),
            "wss://stream.binance.com:9443"
        );
        let c = load(&[("VENUE", "binance-usdm")]).unwrap();
        assert_eq!(
            (
                c.binance_ws_base_url().unwrap(),
                c.binance_rest_base_url().unwrap()
            ),
            (
                "wss://fstream.binance.com/market".to_string(),
                "https://fapi.binance.com".to_string()
            )
        );
        let c = load(&[("REST_BASE_URL", "https://dapi.binance.com")]).unwrap();
        assert_eq!(c.binance_venue().unwrap(), Venue::BinanceCoinm);
        assert_eq!(
            c.binance_ws_base_url().unwrap(),
            "wss://dstream.binance.com"
        );
        // A local server is whatever venue is named (spot when none is).
        let c = load(&[
            ("VENUE", "binance-coinm"),
            ("WS_BASE_URL", "ws://127.0.0.1:9"),
        ])
        .unwrap();
        assert_eq!(c.binance_venue().unwrap(), Venue::BinanceCoinm);
        let c = load(&[("WS_BASE_URL", "ws://127.0.0.1:9")]).unwrap();
        assert_eq!(c.binance_venue().unwrap(), Venue::Binance);
        // Contradictions are errors, at load time.
        let err = load(&[
            ("VENUE", "binance-usdm"),
            ("WS_BASE_URL", "wss://stream.binance.com:9443"),
        ])
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("is a binance endpoint"),
            "{err:#}"
        );
        let err = load(&[
            ("WS_BASE_URL", "wss://fstream.binance.com"),
            ("REST_BASE_URL", "https://dapi.binance.com"),
        ])
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("binance-coinm endpoint"),
            "{err:#}"
        );
        assert!(load(&[("VENUE", "okx")]).is_err());
    }

    #[test]
    fn sentiment_models_are_named_by_their_word_lists() {
        let dir = std::env::temp_dir().join(format!("cf-config-sent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let words = dir.join("words.tsv");
        std::fs::write(&words, "wagmi\t2.0\nngmi\t-2.0\n").unwrap();
        let load = |model: &str, overlay: &str| {
            let env = vec![
                (
                    "CRYPTOFLOW__SENTIMENT__MODEL".to_string(),
                    model.to_string(),
                ),
                (
                    "CRYPTOFLOW__SENTIMENT__OVERLAY_FILE".to_string(),
                    overlay.to_string(),
                ),
            ];
            Config::load(None, env).and_then(|c| c.sentiment_model())
        };
        let words = words.display().to_string();
        // The built-in default is the crypto overlay; plain VADER stays selectable.
        let default = Config::load(None, Vec::new())
            .and_then(|c| c.sentiment_model())
            .unwrap();
        assert_eq!(default.name(), "vader-3.3.2+crypto");
        assert_eq!(load("vader", "").unwrap().name(), "vader-3.3.2");
        assert_eq!(
            load("vader-crypto", "").unwrap().name(),
            "vader-3.3.2+crypto"
        );
        let custom = load("vader-crypto", &words).unwrap();
        assert!(
            custom.name().starts_with("vader-3.3.2+crypto+custom-"),
            "{}",
            custom.name()
        );
        assert!(custom.score("wagmi").compound > 0.3);
        assert!(load("vader", &words).unwrap().score("ngmi").compound < -0.3);
        let err = format!("{:#}", load("bert", "").err().unwrap());
        assert!(err.contains("unknown model \"bert\""), "{err}");
        let err = format!(
            "{:#}",
            load("vader", "/nonexistent/words.tsv").err().unwrap()
        );
        assert!(err.contains("sentiment.overlay_file"), "{err}");
        std::fs::write(dir.join("bad.tsv"), "moon\n").unwrap();
        let bad = dir.join("bad.tsv").display().to_string();
        let err = format!("{:#}", load("vader", &bad).err().unwrap());
        assert!(err.contains("line 1"), "{err}");
        #[cfg(not(feature = "sentiment-onnx"))]
        {
            let err = format!("{:#}", load("onnx", "").err().unwrap());
            assert!(err.contains("--features sentiment-onnx"), "{err}");
        }
    }

    #[test]
    fn bad_configs_are_explained() {
        let dir = std::env::temp_dir().join(format!("cf-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("[pipeline]\nworkerz = 1\n", "invalid configuration"),
            (
                "[sinks.postgres]\nurl = \"postgres://a:b@h/d\"\n",
                "credential at `sinks.postgres.url`",
            ),
            ("[binance]\nstreams = [\"depth\"]\n", "unknown stream kind"),
            (
                "[pipeline]\ncandle_intervals = [\"1M\"]\n",
                "invalid configuration",
            ),
            ("[pipeline]\ntick_ms = 7000\n", "multiple"),
            (
                "[pipeline]\nrestore_candles = 20\n",
                "pipeline.restore_candles must be 0 (start cold) or at least 35",
            ),
            ("not toml = = 1", "not valid TOML"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let file = dir.join(format!("{i}.toml"));
            std::fs::write(&file, text).unwrap();
            let err = format!("{:#}", Config::load(Some(&file), Vec::new()).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(format!(
            "{:#}",
            Config::load(Some(Path::new("/nonexistent.toml")), Vec::new()).unwrap_err()
        )
        .contains("cannot read"));
    }

    /// Each credential form: refused in a file (naming the key and the environment variable
    /// to use), accepted from the environment, and masked by `check-config`'s output.
    #[test]
    fn credentials_in_every_form() {
        let dir = std::env::temp_dir().join(format!("cf-config-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // (file text, key named, env var named, env var, env value, the secret)
        let cases = [
            (
                "[sinks.postgres]\nurl = \"postgres://cf:pw-userinfo@db/x\"\n",
                "sinks.postgres.url",
                "CRYPTOFLOW__SINKS__POSTGRES__URL",
                "postgres://cf:pw-userinfo@db/x",
                "pw-userinfo",
            ),
            (
                "[sinks.postgres]\nurl = \"postgres://cf@db/x?password=pw-query&sslmode=disable\"\n",
                "sinks.postgres.url",
                "CRYPTOFLOW__SINKS__POSTGRES__URL",
                "postgres://cf@db/x?password=pw-query&sslmode=disable",
                "pw-query",
            ),
            (
                "[sinks.postgres]\nurl = \"host=db user=cf password=pw-dsn dbname=x\"\n",
                "sinks.postgres.url",
                "CRYPTOFLOW__SINKS__POSTGRES__URL",
                "host=db user=cf password=pw-dsn dbname=x",
                "pw-dsn",
            ),
            (
                "[sinks.mysql]\nurl = \"mysql://root:pw-mysql@127.0.0.1:3306/x\"\n",
                "sinks.mysql.url",
                "CRYPTOFLOW__SINKS__MYSQL__URL",
                "mysql://root:pw-mysql@127.0.0.1:3306/x",
                "pw-mysql",
            ),
            (
                "[sinks.influx]\nurl = \"http://admin:pw-influx@127.0.0.1:8086\"\n",
                "sinks.influx.url",
                "CRYPTOFLOW__SINKS__INFLUX__URL",
                "http://admin:pw-influx@127.0.0.1:8086",
                "pw-influx",
            ),
            (
                "[sinks.redis]\nurl = \"redis://:pw-redis@127.0.0.1:6379/2\"\n",
                "sinks.redis.url",
                "CRYPTOFLOW__SINKS__REDIS__URL",
                "redis://:pw-redis@127.0.0.1:6379/2",
                "pw-redis",
            ),
            (
                "[sinks.redis]\nurl = \"redis://bot:pw-redis-acl@127.0.0.1:6379\"\n",
                "sinks.redis.url",
                "CRYPTOFLOW__SINKS__REDIS__URL",
                "redis://bot:pw-redis-acl@127.0.0.1:6379",
                "pw-redis-acl",
            ),
            (
                "[sinks.kafka.producer]\n\"sasl.password\" = \"pw-sasl\"\n",
                "sinks.kafka.producer.sasl.password",
                "CRYPTOFLOW__SINKS__KAFKA__PRODUCER__SASL_PASSWORD",
                "pw-sasl",
                "pw-sasl",
            ),
            (
                "[kafka.consumer]\n\"ssl.key.password\" = \"pw-sslkey\"\n",
                "kafka.consumer.ssl.key.password",
                "CRYPTOFLOW__KAFKA__CONSUMER__SSL_KEY_PASSWORD",
                "pw-sslkey",
                "pw-sslkey",
            ),
            (
                "[kafka.consumer]\n\"sasl.oauthbearer.client.secret\" = \"pw-oauth\"\n",
                "kafka.consumer.sasl.oauthbearer.client.secret",
                "CRYPTOFLOW__KAFKA__CONSUMER__SASL_OAUTHBEARER_CLIENT_SECRET",
                "pw-oauth",
                "pw-oauth",
            ),
            (
                "[sinks.kafka.producer]\n\"sasl.jaas.config\" = \"x required password=pw-jaas\"\n",
                "sinks.kafka.producer.sasl.jaas.config",
                "CRYPTOFLOW__SINKS__KAFKA__PRODUCER__SASL_JAAS_CONFIG",
                "x required password=pw-jaas",
                "pw-jaas",
            ),
        ];
        for (i, (text, key, var, env_value, secret)) in cases.iter().enumerate() {
            let file = dir.join(format!("{i}.toml"));
            std::fs::write(&file, text).unwrap();
            let err = format!("{:#}", Config::load(Some(&file), Vec::new()).unwrap_err());
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(err.contains(var), "{text}: {err}");
            assert!(!err.contains(secret), "{text}: {err}");
            // From the environment it is accepted, and masked in the printed configuration.
            let c = Config::load(None, vec![(var.to_string(), env_value.to_string())])
                .unwrap_or_else(|e| panic!("{var}: {e:#}"));
            let printed = c.to_redacted_toml().unwrap();
            assert!(!printed.contains(secret), "{var}: {printed}");
            assert!(printed.contains("***"), "{var}: {printed}");
        }
        // The librdkafka setting arrives under its dotted name.
        let c = Config::load(
            None,
            vec![(
                "CRYPTOFLOW__SINKS__KAFKA__PRODUCER__SASL_PASSWORD".to_string(),
                "x".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(c.sinks.kafka.producer.get("sasl.password").unwrap(), "x");
        // An env-var name (not a secret) is fine in a file.
        let file = dir.join("ok.toml");
        std::fs::write(&file, "[poll.fred]\napi_key_env = \"MY_FRED_KEY\"\n").unwrap();
        Config::load(Some(&file), Vec::new()).unwrap();
    }

    /// A value of the wrong type names its key and where it came from.
    #[test]
    fn type_errors_name_the_key_and_its_origin() {
        let err = format!(
            "{:#}",
            Config::load(
                None,
                vec![(
                    "CRYPTOFLOW__PIPELINE__WORKERS".to_string(),
                    "two".to_string()
                )]
            )
            .unwrap_err()
        );
        assert!(err.contains("`pipeline.workers`"), "{err}");
        assert!(err.contains("CRYPTOFLOW__PIPELINE__WORKERS"), "{err}");
        let dir = std::env::temp_dir().join(format!("cf-config-types-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.toml");
        std::fs::write(&file, "[sinks]\nmax_batch = \"lots\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&file), Vec::new()).unwrap_err());
        assert!(err.contains("`sinks.max_batch`"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
    }

    #[test]
    fn range_errors_name_the_environment_variable() {
        let err = format!(
            "{:#}",
            Config::load(
                None,
                vec![("CRYPTOFLOW__PIPELINE__WORKERS".to_string(), "0".to_string())]
            )
            .unwrap_err()
        );
        assert!(err.contains("pipeline.workers must be at least 1"), "{err}");
        assert!(err.contains("CRYPTOFLOW__PIPELINE__WORKERS"), "{err}");
        let err = format!(
            "{:#}",
            Config::load(
                None,
                vec![("CRYPTOFLOW__PIPELINE__WORKERS".to_string(), "x".to_string())]
            )
            .unwrap_err()
        );
        assert!(err.contains("`pipeline.workers`"), "{err}");
        assert!(err.contains("CRYPTOFLOW__PIPELINE__WORKERS"), "{err}");
    }

    /// The keys of a TOML value, dotted (array items by index), with their leaf values.
    fn leaves(v: &toml::Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(v, &key, out);
                }
            }
            toml::Value::Array(a) if a.iter().any(toml::Value::is_table) => {
                for (i, v) in a.iter().enumerate() {
                    leaves(v, &format!("{prefix}[{i}]"), out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }

    #[test]
    fn the_example_config_lists_the_embedded_defaults() {
        let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cryptoflow.example.toml");
        let example_text = std::fs::read_to_string(&example_path).expect("example config");
        // Written the same: every key of each file, with its value, is in the other.
        let mut example = Vec::new();
        leaves(
            &toml::from_str(&example_text).expect("example TOML"),
            "",
            &mut example,
        );
        let mut defaults = Vec::new();
        leaves(
            &toml::from_str(DEFAULTS).expect("defaults TOML"),
            "",
            &mut defaults,
        );
        example.sort();
        defaults.sort();
        let only_example: Vec<_> = example.iter().filter(|k| !defaults.contains(k)).collect();
        let only_defaults: Vec<_> = defaults.iter().filter(|k| !example.contains(k)).collect();
        assert!(
            only_example.is_empty() && only_defaults.is_empty(),
            "cryptoflow.example.toml differs from dataflows/default.toml: \
             example only {only_example:?}, defaults only {only_defaults:?}"
        );
        // And read the same.
        let loaded = Config::load(Some(&example_path), Vec::new()).expect("example loads");
        let embedded = Config::load(None, Vec::new()).expect("defaults load");
        assert_eq!(
            loaded.to_redacted_toml().expect("toml"),
            embedded.to_redacted_toml().expect("toml")
        );
    }
}
