//! Redis sink: the latest state per instrument for readers and bots, and pub/sub events.
//!
//! # Keys
//!
//! Every key starts with the configured prefix (default `cf:`) and carries a TTL (`ttl_s`,
//! default one day; 0 keeps the keys forever). Money is the exact decimal string.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{prefix}price:{venue}:{SYMBOL}` | string | the price of the latest trade |
//! | `{prefix}trade:{venue}:{SYMBOL}` | hash | the latest trade: `trade_id`, `price`, `qty`, `side`, `is_buyer_maker`, `ts`, `ts_received`, `moving_average`, `ema` (once warmed up), `is_whale` |
//! | `{prefix}candle:{venue}:{SYMBOL}:{interval}` | hash | the latest candle: `open_time`, `close_time`, `open`, `high`, `low`, `close`, `volume`, `quote_volume`, `vwap`, `trade_count`, `taker_buy_volume`, `first_trade_id`, `last_trade_id`, `is_final` |
//! | `{prefix}indicators:{venue}:{SYMBOL}:{interval}` | hash | the indicators of the latest final candle (a field per indicator with a value) |
//! | `{prefix}sentiment:{coin}` | hash | per span (`1h`, `24h`) the latest window: `{span}:window_end`, `{span}:items`, `{span}:mean_compound`, `{span}:positive_share`, `{span}:negative_share`, `{span}:model` |
//!
//! Versions never go back: a write replaces a key only when its version is not older than the
//! stored one (trades by exchange time then trade id; candles by open time, then finality, then
//! trade count; indicators by open time; sentiment windows by window end), checked by a small
//! Lua script in
//! the server. So a forming candle never replaces a newer candle nor the final candle of its own
//! window, and replaying old data leaves newer state alone. Each batch is reduced to the latest
//! version per key first, then written in one MULTI/EXEC: a batch of 10,000 trades of four
//! symbols is a few commands per symbol, and readers never see half a batch.
//!
//! # Channels
//!
//! With `publish` on, each final candle, whale alert and indicator row is published as the same
//! JSON object the JSON-lines sink writes for it, after the state of its batch:
//! `{prefix}candles:{venue}:{SYMBOL}`, `{prefix}whales`, `{prefix}indicators:{venue}:{SYMBOL}`.
//! Publishing is at least once: a batch retried after a failure, and a replay, publish again.
//!
//! Writes are idempotent: the same batch twice leaves the same keys. Connection loss and
//! timeouts are transient (the connection is rebuilt on the next try); a bad URL, failed
//! authentication, missing ACL permissions, a read-only replica or a key of another type under
//! the prefix are permanent, with what to fix. One Redis server (or a primary) is assumed: a
//! trade's hash and price key are written by one script, which Redis Cluster would refuse
//! across slots.

use std::collections::BTreeMap;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, ErrorKind, Pipeline, RedisError};
use cryptoflow_operators::dataflow::{EnrichedTrade, IndicatorRow};
use cryptoflow_operators::model::Candle;
use cryptoflow_operators::sentiment::windows::SentimentWindowRow;

use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

const SINK: &str = "redis";

/// Writes a hash (and optionally a string key) only if its version is not older than the
/// stored one, then sets or clears the TTL of the keys it wrote.
///
/// `KEYS[1]`: the hash; `KEYS[2]` (optional): a string key set to `ARGV[3]`.
/// `ARGV`: 1 TTL in seconds (0: none), 2 `1` to replace the whole hash or `0` to merge, 3 the
/// string value, 4 the number n of version fields, then their n names, then this write's n
/// values (integers, compared in order; a stored `true`/`false` counts as 1/0), then
/// field/value pairs. A stored version greater than this one keeps the hash; an equal one is
/// rewritten (idempotent). Returns 1 if written.
const GUARDED_WRITE: &str = r#"
local function num(v)
  if v == 'true' then return 1 elseif v == 'false' then return 0 end
  return tonumber(v)
end
local n = tonumber(ARGV[4])
local names = {}
for i = 1, n do names[i] = ARGV[4 + i] end
local cur = redis.call('HMGET', KEYS[1], unpack(names))
for i = 1, n do
  local stored, mine = num(cur[i]), tonumber(ARGV[4 + n + i])
  if not stored or stored < mine then break end
  if stored > mine then return 0 end
end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 5 + 2 * n))
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3]) end
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
return 1
"#;

/// `[sinks.redis]`: settings of the Redis sink. A password belongs in the URL, set through the
/// environment (`CRYPTOFLOW__SINKS__REDIS__URL`): a config file holding one is refused.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path` ("" disables).
    pub url: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// Expiry of every key, s (0: none).
    pub ttl_s: u64,
    /// Publish final candles, whales and indicator rows.
    pub publish: bool,
    /// Limit for connecting and for each reply (not a configuration key).
    #[serde(skip, default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl crate::task::SinkSpec for RedisConfig {
    type Sink = RedisSink;
    fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<RedisSink, SinkError> {
        RedisSink::connect(self).await
    }
}

/// One guarded state write: a hash (plus, for trades, the price string key).
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The hash key.
    pub key: String,
    /// A string key and its value written with the hash (the latest price).
    pub also: Option<(String, String)>,
    /// Replace the whole hash (`false`: set only these fields).
    pub replace: bool,
    /// The version: the fields that hold it (most significant first) and this write's values.
    pub version: Vec<(String, i64)>,
    /// Field/value pairs.
    pub fields: Vec<(String, String)>,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// Channel.
    pub channel: String,
    /// JSON payload.
    pub payload: String,
}

/// What one batch becomes: the latest state write per key, and the messages in batch order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// State writes, sorted by key.
    pub writes: Vec<StateWrite>,
    /// Messages, in the order of their records.
    pub publishes: Vec<Publish>,
}

fn pair(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// An `f64` as JSON writes it (`None` for non-finite values).
fn float(x: f64) -> Option<String> {
    serde_json::Number::from_f64(x).map(|n| n.to_string())
}

fn id(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// The state write of a trade: its hash and the price key.
pub fn trade_write(prefix: &str, e: &EnrichedTrade) -> StateWrite {
    let t = &e.trade;
    let (venue, symbol) = (t.venue.as_str(), t.symbol.as_str());
    let mut fields = vec![
        pair("venue", venue),
        pair("symbol", symbol),
        pair("trade_id", t.trade_id),
        pair("price", t.price),
        pair("qty", t.qty),
        pair("side", t.side.as_str()),
        pair(
            "is_buyer_maker",
            t.side == cryptoflow_operators::model::Side::Sell,
        ),
        pair("ts", t.ts_exchange),
        pair("ts_received", t.ts_received),
        pair("moving_average", e.moving_average),
    ];
    if let Some(ema) = e.ema.and_then(float) {
        fields.push(("ema".into(), ema));
    }
    fields.push(pair("is_whale", e.is_whale));
    StateWrite {
        key: format!("{prefix}trade:{venue}:{symbol}"),
        also: Some((
            format!("{prefix}price:{venue}:{symbol}"),
            t.price.to_string(),
        )),
        replace: true,
        version: vec![
            ("ts".into(), t.ts_exchange),
            ("trade_id".into(), id(t.trade_id)),
        ],
        fields,
    }
}

/// The state write of a candle update.
pub fn candle_write(prefix: &str, c: &Candle) -> StateWrite {
    StateWrite {
        key: format!(
            "{prefix}candle:{}:{}:{}",
            c.venue.as_str(),
            c.symbol.as_str(),
            c.interval.label()
        ),
        also: None,
        replace: true,
        version: vec![
            ("open_time".into(), c.open_time),
            ("is_final".into(), i64::from(c.is_final)),
            ("trade_count".into(), id(c.trade_count)),
        ],
        fields: vec![
            pair("venue", c.venue.as_str()),
            pair("symbol", c.symbol.as_str()),
            pair("interval", c.interval.label()),
            pair("open_time", c.open_time),
            pair("close_time", c.close_time),
            pair("open", c.open),
            pair("high", c.high),
            pair("low", c.low),
            pair("close", c.close),
            pair("volume", c.volume),
            pair("quote_volume", c.quote_volume),
            pair("vwap", c.vwap),
            pair("trade_count", c.trade_count),
            pair("taker_buy_volume", c.taker_buy_volume),
            pair("first_trade_id", c.first_trade_id),
            pair("last_trade_id", c.last_trade_id),
            pair("is_final", c.is_final),
        ],
    }
}

/// The state write of an indicator row (indicators still warming up are left out).
pub fn indicators_write(prefix: &str, r: &IndicatorRow) -> StateWrite {
    use cryptoflow_operators::math::indicators::FLOAT_COLUMNS;
    let mut fields = vec![
        pair("venue", r.venue.as_str()),
        pair("symbol", r.symbol.as_str()),
        pair("interval", r.interval.label()),
        pair("open_time", r.open_time),
        pair("close_time", r.close_time),
        pair("close", r.close),
    ];
    for (name, v) in FLOAT_COLUMNS.iter().zip(r.values.floats()) {
        if let Some(v) = v.and_then(float) {
            fields.push(((*name).to_string(), v));
        }
    }
    if let Some(v) = r.values.vwap_20 {
        fields.push(pair("vwap_20", v));
    }
    StateWrite {
        key: format!(
            "{prefix}indicators:{}:{}:{}",
            r.venue.as_str(),
            r.symbol.as_str(),
            r.interval.label()
        ),
        also: None,
        replace: true,
        version: vec![("open_time".into(), r.open_time)],
        fields,
    }
}

/// The state write of a sentiment window: the fields of its span in the coin's hash.
pub fn sentiment_write(prefix: &str, w: &SentimentWindowRow) -> StateWrite {
    let span = &w.span;
    let f = |name: &str| format!("{span}:{name}");
    let mut fields = vec![
        (f("window_end"), w.window_end.to_string()),
        (f("items"), w.items.to_string()),
    ];
    for (name, v) in [
        ("mean_compound", w.mean_compound),
        ("positive_share", w.positive_share),
        ("negative_share", w.negative_share),
    ] {
        fields.push((f(name), float(v).unwrap_or_default()));
    }
    fields.push((f("model"), w.model.clone()));
    StateWrite {
        key: format!("{prefix}sentiment:{}", w.coin),
        also: None,
        replace: false,
        version: vec![(f("window_end"), w.window_end)],
        fields,
    }
}

fn versions(w: &StateWrite) -> Vec<i64> {
    w.version.iter().map(|(_, v)| *v).collect()
}

/// Reduces a batch to the latest state write per key (the highest version; the later record
/// on a tie, as the server's guard does) and the messages to publish.
pub fn plan(records: &[Output], prefix: &str, publish: bool) -> Result<Plan, SinkError> {
    let mut latest: BTreeMap<String, StateWrite> = BTreeMap::new();
    let mut publishes = Vec::new();
    let mut keep = |w: StateWrite| {
        // Sentiment spans share a coin's hash: reduce per key and version field.
        let slot = format!(
            "{}\u{0}{}",
            w.key,
            w.version.first().map(|(f, _)| f.as_str()).unwrap_or("")
        );
        match latest.get(&slot) {
            Some(prev) if versions(prev) > versions(&w) => {}
            _ => {
                latest.insert(slot, w);
            }
        }
    };
    let mut message = |channel: String, r: &Output| -> Result<(), SinkError> {
        if publish {
            let payload = serde_json::to_string(r).map_err(|e| SinkError::Permanent {
                sink: SINK,
                message: format!("cannot encode a record as JSON: {e}"),
            })?;
            publishes.push(Publish { channel, payload });
        }
        Ok(())
    };
    for r in records {
        match r {
            Output::Trade(e) => keep(trade_write(prefix, e)),
            Output::Candle(c) => {
                keep(candle_write(prefix, c));
                if c.is_final {
                    message(
                        format!("{prefix}candles:{}:{}", c.venue.as_str(), c.symbol.as_str()),
                        r,
                    )?;
                }
            }
            Output::Indicators(row) => {
                keep(indicators_write(prefix, row));
                message(
                    format!(
                        "{prefix}indicators:{}:{}",
                        row.venue.as_str(),
                        row.symbol.as_str()
                    ),
                    r,
                )?;
            }
            Output::Whale(_) => message(format!("{prefix}whales"), r)?,
            Output::SentimentWindow(w) => keep(sentiment_write(prefix, w)),
            _ => {}
        }
    }
    Ok(Plan {
        writes: latest.into_values().collect(),
        publishes,
    })
}

/// The commands of a plan in one MULTI/EXEC: the guarded writes (by script `sha`), then the
/// messages.
pub fn pipeline(plan: &Plan, sha: &str, ttl_s: u64) -> Pipeline {
    let mut p = ::redis::pipe();
    p.atomic();
    for w in &plan.writes {
        let mut c = ::redis::cmd("EVALSHA");
        c.arg(sha)
            .arg(if w.also.is_some() { 2 } else { 1 })
            .arg(&w.key);
        if let Some((k, _)) = &w.also {
            c.arg(k);
        }
        c.arg(ttl_s)
            .arg(if w.replace { "1" } else { "0" })
            .arg(w.also.as_ref().map(|(_, v)| v.as_str()).unwrap_or(""))
            .arg(w.version.len());
        for (f, _) in &w.version {
            c.arg(f);
        }
        for (_, v) in &w.version {
            c.arg(v);
        }
        for (f, v) in &w.fields {
            c.arg(f).arg(v);
        }
        p.add_command(c).ignore();
    }
    for m in &plan.publishes {
        p.cmd("PUBLISH").arg(&m.channel).arg(&m.payload).ignore();
    }
    p
}

/// Classifies a Redis error: transient for connection trouble and a busy server, permanent
/// (with what to fix) otherwise.
pub fn classify(e: &RedisError, prefix: &str, what: &str) -> SinkError {
    let codes: Vec<String> = e
        .clone()
        .into_server_errors()
        .map(|errs| errs.iter().map(|(_, s)| s.code().to_string()).collect())
        .unwrap_or_default();
    let has = |c: &str| codes.iter().any(|x| x == c);
    let permanent = |fix: String| SinkError::Permanent {
        sink: SINK,
        message: format!("{what}: {e}: {fix}"),
    };
    if e.kind() == ErrorKind::AuthenticationFailed || has("WRONGPASS") || has("NOAUTH") {
        return permanent(
            "authentication failed: put the right user and password in sinks.redis.url \
             (redis://user:password@host:port/db, set through the environment variable \
             CRYPTOFLOW__SINKS__REDIS__URL)"
                .into(),
        );
    }
    if has("WRONGTYPE") {
        return permanent(format!(
            "a key under the prefix {prefix:?} holds another type: delete it or choose another \
             sinks.redis.prefix"
        ));
    }
    if has("NOPERM") {
        return permanent(
            "the Redis user lacks a permission: it needs EVALSHA, SCRIPT LOAD, HMGET, HSET, DEL, \
             SET, EXPIRE, PERSIST, MULTI, EXEC and PUBLISH on the prefix's keys and channels"
                .into(),
        );
    }
    if has("READONLY") {
        return permanent(
            "the server is a read-only replica: point sinks.redis.url at the primary".into(),
        );
    }
    let transient_code = [
        "LOADING",
        "BUSY",
        "TRYAGAIN",
        "MASTERDOWN",
        "OOM",
        "MISCONF",
    ]
    .iter()
    .any(|c| has(c));
    let transient = transient_code
        || has("NOSCRIPT")
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::Io | ErrorKind::Parse);
    if transient {
        SinkError::Transient {
            sink: SINK,
            message: format!("{what}: {e}"),
        }
    } else if e.kind() == ErrorKind::InvalidClientConfig {
        permanent(
            "fix sinks.redis.url (redis://[user:password@]host:port[/db] or \
             redis+unix:///path; TLS is not supported)"
                .into(),
        )
    } else {
        permanent("see the server's error above".into())
    }
}

/// The Redis sink.
pub struct RedisSink {
    client: Client,
    cfg: RedisConfig,
    conn: Option<(MultiplexedConnection, String)>,
    target: String,
}

impl RedisSink {
    /// Parses the URL, connects and loads the write script: a failure here (unreachable server,
    /// bad URL, wrong password) is returned at once.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, SinkError> {
        let client = Client::open(cfg.url.trim()).map_err(|e| SinkError::Permanent {
            sink: SINK,
            message: format!(
                "sinks.redis.url is not a Redis URL ({e}): expected \
                 redis://[user:password@]host:port[/db] or redis+unix:///path"
            ),
        })?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr(), info.redis_settings().db());
        let mut sink = RedisSink {
            client,
            cfg: cfg.clone(),
            conn: None,
            target,
        };
        match sink.connection().await {
            Ok(_) => Ok(sink),
            // At start-up nothing was written yet: say so instead of retrying forever.
            Err(SinkError::Transient { message, .. }) => Err(SinkError::Permanent {
                sink: SINK,
                message: format!("{message}: is the server running? check sinks.redis.url"),
            }),
            Err(e) => Err(e),
        }
    }

    /// The open connection and the script's hash, connecting first if needed.
    async fn connection(&mut self) -> Result<(MultiplexedConnection, String), SinkError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let what = format!("Redis at {}", self.target);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.cfg.timeout))
            .set_response_timeout(Some(self.cfg.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| classify(&e, &self.cfg.prefix, &format!("cannot connect to {what}")))?;
        let sha: String = ::redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(GUARDED_WRITE)
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&e, &self.cfg.prefix, &format!("{what}: SCRIPT LOAD")))?;
        self.conn = Some((conn, sha));
        Ok(self.conn.clone().expect("just set"))
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &'static str {
        SINK
    }
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        use cryptoflow_operators::model::OutputKind;
        cryptoflow_operators::model::OutputKinds::of(&[
            OutputKind::Trade,
            OutputKind::Candle,
            OutputKind::Whale,
            OutputKind::Indicators,
            OutputKind::SentimentWindow,
        ])
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let plan = plan(records, &self.cfg.prefix, self.cfg.publish)?;
        if plan.writes.is_empty() && plan.publishes.is_empty() {
            return Ok(());
        }
        let (mut conn, sha) = self.connection().await?;
        let result: Result<(), RedisError> = pipeline(&plan, &sha, self.cfg.ttl_s)
            .query_async(&mut conn)
            .await;
        result.map_err(|e| {
            let err = classify(&e, &self.cfg.prefix, &format!("Redis at {}", self.target));
            if err.is_retryable() {
                // Rebuild the connection (and reload the script) on the next try.
                self.conn = None;
            }
            err
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::math::indicators::IndicatorValues;
    use cryptoflow_operators::model::{Interval, Side, Symbol, Trade, Venue, WhaleAlert};
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn trade(symbol: &str, id: u64, ts: i64, price: &str) -> EnrichedTrade {
        EnrichedTrade {
            trade: Trade {
                venue: Venue::Binance,
                symbol: Symbol::new(symbol).expect("symbol"),
                trade_id: id,
                price: d(price),
                qty: d("0.50000"),
                side: Side::Sell,
                ts_exchange: ts,
                ts_received: ts + 3,
                agg: None,
            },
            moving_average: d("42995.260"),
            ema: None,
            is_whale: false,
            whale_threshold: d("100000"),
        }
    }

    fn candle(open_time: i64, close: &str, is_final: bool) -> Candle {
        Candle {
            venue: Venue::BinanceUsdm,
            symbol: Symbol::new("ETHUSDT").expect("symbol"),
            interval: Interval::MINUTE,
            open_time,
            close_time: open_time + 60_000,
            open: d("2300.19"),
            high: d("2301.00"),
            low: d("2299.5"),
            close: d(close),
            volume: d("3.5"),
            quote_volume: d("8050.665"),
            vwap: d("2300.19"),
            trade_count: 7,
            taker_buy_volume: d("1.25"),
            first_trade_id: 10,
            last_trade_id: 16,
            is_final,
        }
    }

    fn fields(w: &StateWrite) -> Vec<(&str, &str)> {
        w.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn trades_render_exact_decimals_and_reduce_to_the_latest_per_symbol() {
        let mut recs: Vec<Output> = (1..=10_000u64)
            .map(|i| {
                let sym = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"][(i % 4) as usize];
                Output::Trade(trade(sym, i, 1_700_000_000_000 + i as i64, "1.0"))
            })
            .collect();
        // The last BTCUSDT trade, with a price whose scale must survive.
        let mut last = trade("BTCUSDT", 10_004, 1_700_000_010_004, "42995.2600");
        last.ema = Some(42990.5);
        last.is_whale = true;
        recs.push(Output::Trade(last));
        // An older trade after it (a redelivery) does not win.
        recs.push(Output::Trade(trade("BTCUSDT", 3, 1_700_000_000_003, "9")));
        let p = plan(&recs, "cf:", true).expect("plan");
        assert_eq!(p.writes.len(), 4, "one write per symbol");
        assert!(p.publishes.is_empty());
        let btc = p
            .writes
            .iter()
            .find(|w| w.key == "cf:trade:binance:BTCUSDT")
            .expect("btc");
        assert_eq!(
            btc.also,
            Some(("cf:price:binance:BTCUSDT".into(), "42995.2600".into()))
        );
        assert_eq!(
            btc.version,
            vec![
                ("ts".to_string(), 1_700_000_010_004),
                ("trade_id".to_string(), 10_004)
            ]
        );
        assert_eq!(
            fields(btc),
            vec![
                ("venue", "binance"),
                ("symbol", "BTCUSDT"),
                ("trade_id", "10004"),
                ("price", "42995.2600"),
                ("qty", "0.50000"),
                ("side", "sell"),
                ("is_buyer_maker", "true"),
                ("ts", "1700000010004"),
                ("ts_received", "1700000010007"),
                ("moving_average", "42995.260"),
                ("ema", "42990.5"),
                ("is_whale", "true"),
            ]
        );
        // Without an EMA the field is absent (the hash is replaced, so no stale value stays).
        let eth = p
            .writes
            .iter()
            .find(|w| w.key == "cf:trade:binance:ETHUSDT")
            .expect("eth");
        assert!(eth.replace);
        assert!(!eth.fields.iter().any(|(k, _)| k == "ema"));
        assert_eq!(versions(eth)[1], 9_997, "i % 4 == 1 is ETHUSDT");
        // The commands: MULTI, one EVALSHA per symbol, EXEC.
        let cmds = pipeline(&p, "abc", 86_400).cmd_iter().count();
        assert_eq!(cmds, 4);
    }

    #[test]
    fn candles_keep_the_newest_window_and_a_final_over_a_forming_one() {
        /// Updates in batch order, the expected (open_time, close, is_final), final messages.
        type Case = (Vec<Candle>, (i64, &'static str, bool), usize);
        let table: Vec<Case> = vec![
            (
                vec![candle(0, "1", false), candle(0, "2", false)],
                (0, "2", false),
                0,
            ),
            (
                vec![candle(0, "1", true), candle(0, "2", false)],
                (0, "1", true),
                1,
            ),
            (
                vec![candle(60_000, "3", false), candle(0, "1", true)],
                (60_000, "3", false),
                1,
            ),
            (
                vec![
                    candle(0, "1", false),
                    candle(0, "1.5", true),
                    candle(60_000, "2", false),
                ],
                (60_000, "2", false),
                1,
            ),
            // A forming update with fewer trades (delivered late) does not win.
            (
                vec![
                    Candle {
                        trade_count: 9,
                        ..candle(0, "4", false)
                    },
                    candle(0, "3", false),
                ],
                (0, "4", false),
                0,
            ),
        ];
        for (updates, (open_time, close, is_final), messages) in table {
            let recs: Vec<Output> = updates.into_iter().map(Output::Candle).collect();
            let p = plan(&recs, "x:", true).expect("plan");
            assert_eq!(p.writes.len(), 1);
            let w = &p.writes[0];
            assert_eq!(w.key, "x:candle:binance-usdm:ETHUSDT:1m");
            assert_eq!(versions(w)[..2], [open_time, i64::from(is_final)]);
            let f = fields(w);
            assert!(f.contains(&("close", close)), "{f:?}");
            assert!(f.contains(&("is_final", if is_final { "true" } else { "false" })));
            assert_eq!(p.publishes.len(), messages);
            for m in &p.publishes {
                assert_eq!(m.channel, "x:candles:binance-usdm:ETHUSDT");
                let v: serde_json::Value = serde_json::from_str(&m.payload).expect("json");
                assert_eq!(v["type"], "candle");
                assert_eq!(v["is_final"], true);
            }
        }
        let w = candle_write("cf:", &candle(120_000, "2300.50", true));
        let f = fields(&w);
        assert_eq!(
            f,
            vec![
                ("venue", "binance-usdm"),
                ("symbol", "ETHUSDT"),
                ("interval", "1m"),
                ("open_time", "120000"),
                ("close_time", "180000"),
                ("open", "2300.19"),
                ("high", "2301.00"),
                ("low", "2299.5"),
                ("close", "2300.50"),
                ("volume", "3.5"),
                ("quote_volume", "8050.665"),
                ("vwap", "2300.19"),
                ("trade_count", "7"),
                ("taker_buy_volume", "1.25"),
                ("first_trade_id", "10"),
                ("last_trade_id", "16"),
                ("is_final", "true"),
            ]
        );
    }

    #[test]
    fn indicators_whales_and_sentiment() {
        let c = candle(0, "2300.5", true);
        let values = IndicatorValues {
            rsi_14: Some(55.25),
            obv: Some(-3.5),
            macd: Some(f64::NAN),
            vwap_20: Some(d("2300.123456789")),
            ..IndicatorValues::default()
        };
        let row = IndicatorRow::new(&c, values);
        let whale = WhaleAlert {
            trade: trade("BTCUSDT", 7, 5, "43000.10").trade,
            notional: d("150500.35"),
            threshold: d("100000"),
        };
        let window = |span: &str, end: i64, mean: f64| {
            Output::SentimentWindow(Box::new(SentimentWindowRow {
                coin: "BTC".into(),
                model: "vader-3.3.2+crypto".into(),
                span: span.into(),
                window_end: end,
                items: 4,
                mean_compound: mean,
                positive_share: 0.5,
                negative_share: 0.25,
            }))
        };
        let recs = vec![
            Output::Indicators(Box::new(row.clone())),
            Output::Whale(whale.clone()),
            window("1h", 3_600_000, 0.1),
            window("24h", 86_400_000, -0.2),
            window("1h", 3_300_000, 0.9),
        ];
        let p = plan(&recs, "cf:", true).expect("plan");
        let keys: Vec<&str> = p.writes.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "cf:indicators:binance-usdm:ETHUSDT:1m",
                "cf:sentiment:BTC",
                "cf:sentiment:BTC"
            ]
        );
        assert_eq!(
            fields(&p.writes[0]),
            vec![
                ("venue", "binance-usdm"),
                ("symbol", "ETHUSDT"),
                ("interval", "1m"),
                ("open_time", "0"),
                ("close_time", "60000"),
                ("close", "2300.5"),
                ("rsi_14", "55.25"),
                ("obv", "-3.5"),
                ("vwap_20", "2300.123456789"),
            ]
        );
        // The 1h window that ends later wins over the one after it in the batch.
        let one_h = p
            .writes
            .iter()
            .find(|w| w.version[0].0 == "1h:window_end")
            .expect("1h");
        assert!(!one_h.replace);
        assert_eq!(
            fields(one_h),
            vec![
                ("1h:window_end", "3600000"),
                ("1h:items", "4"),
                ("1h:mean_compound", "0.1"),
                ("1h:positive_share", "0.5"),
                ("1h:negative_share", "0.25"),
                ("1h:model", "vader-3.3.2+crypto"),
            ]
        );
        // Messages: the same JSON as the JSON-lines sink, on their channels.
        let channels: Vec<&str> = p.publishes.iter().map(|m| m.channel.as_str()).collect();
        assert_eq!(
            channels,
            vec!["cf:indicators:binance-usdm:ETHUSDT", "cf:whales"]
        );
        assert_eq!(
            p.publishes[1].payload,
            serde_json::to_string(&Output::Whale(whale)).expect("json")
        );
        assert_eq!(
            p.publishes[0].payload,
            serde_json::to_string(&Output::Indicators(Box::new(row))).expect("json")
        );
        // publish = false: state only.
        assert!(plan(&recs, "cf:", false)
            .expect("plan")
            .publishes
            .is_empty());
        // Records without state or channel (gaps, ledger rows) make an empty plan.
        assert_eq!(plan(&[], "cf:", true).expect("plan"), Plan::default());
    }

    #[test]
    fn pipeline_arguments() {
        let w = trade_write("cf:", &trade("BTCUSDT", 9, 100, "1.50"));
        let p = Plan {
            writes: vec![w],
            publishes: vec![Publish {
                channel: "cf:whales".into(),
                payload: "{}".into(),
            }],
        };
        let packed =
            String::from_utf8(pipeline(&p, "deadbeef", 60).get_packed_pipeline()).expect("utf8");
        // RESP bulk strings in order: MULTI, EVALSHA sha 2 keys… args…, PUBLISH, EXEC.
        let words: Vec<&str> = packed
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .collect();
        assert_eq!(
            &words[..15],
            &[
                "MULTI",
                "EVALSHA",
                "deadbeef",
                "2",
                "cf:trade:binance:BTCUSDT",
                "cf:price:binance:BTCUSDT",
                "60",
                "1",
                "1.50",
                "2",
                "ts",
                "trade_id",
                "100",
                "9",
                "venue"
            ]
        );
        assert_eq!(
            &words[words.len() - 4..],
            &["PUBLISH", "cf:whales", "{}", "EXEC"]
        );
    }
}
