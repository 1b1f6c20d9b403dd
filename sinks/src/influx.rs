//! InfluxDB sink: line protocol over HTTP, for the 1.x API (`/write?db=…`, optional user and
//! password) and the 2.x API (`/api/v2/write?org=…&bucket=…`, token), gzip-compressed.
//!
//! Measurements (tags `venue`, `symbol`):
//! - `trades` (+ tag `side`): `trade_id` (integer), `price`, `qty`, `moving_average` (float),
//!   `is_whale` (boolean);
//! - `candles` (+ tag `interval`): `open`, `high`, `low`, `close`, `volume`, `quote_volume`,
//!   `vwap` (float), `trade_count`, `first_trade_id`, `last_trade_id` (integer), `is_final`
//!   (boolean); the point's time is the open time, so the final update overwrites forming ones;
//! - `whales` (+ tag `side`): `trade_id` (integer), `price`, `qty`, `notional` (float).
//!
//! Times are written with `precision=ns`: a trade's time is its exchange millisecond plus
//! `trade_id mod 10^6` nanoseconds, because several trades share a millisecond and a point is
//! identified by series and time. That keeps every trade its own point and makes replays
//! idempotent (the same point is written again). Numbers are float copies for charts; the exact
//! decimals live in PostgreSQL/MySQL.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::{Candle, Millis, Trade};

use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

const SINK: &str = "influx";

/// Which HTTP API to write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfluxApi {
    /// InfluxDB 1.x: `/write?db=`.
    V1 {
        /// Database.
        database: String,
        /// User (from the environment), if auth is enabled.
        user: Option<String>,
        /// Password (from the environment).
        password: Option<String>,
    },
    /// InfluxDB 2.x: `/api/v2/write?org=&bucket=`.
    V2 {
        /// Organization.
        org: String,
        /// Bucket.
        bucket: String,
        /// API token (from the environment).
        token: String,
    },
}

/// Settings of the InfluxDB sink.
#[derive(Debug, Clone)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// API flavour and credentials.
    pub api: InfluxApi,
    /// Compress request bodies.
    pub gzip: bool,
    /// Request timeout.
    pub timeout: Duration,
}

/// `[sinks.influx]`. Credentials come from the environment only: `CRYPTOFLOW_INFLUX_USER` and
/// `CRYPTOFLOW_INFLUX_PASSWORD` (1.x), `CRYPTOFLOW_INFLUX_TOKEN` (2.x).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSinkConfig {
    /// Base URL ("" disables).
    pub url: String,
    /// `v1` (`/write?db=`) or `v2` (`/api/v2/write?org=&bucket=`).
    pub api: String,
    /// 1.x database (created if missing).
    pub database: String,
    /// 2.x organization.
    pub org: String,
    /// 2.x bucket.
    pub bucket: String,
    /// Compress request bodies.
    pub gzip: bool,
}

impl InfluxSinkConfig {
    /// The sink settings, with credentials from `env`.
    pub fn sink_config(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<InfluxConfig, SinkError> {
        let permanent = |message: String| SinkError::Permanent {
            sink: SINK,
            message,
        };
        let api = match self.api.as_str() {
            "v1" => InfluxApi::V1 {
                database: self.database.clone(),
                user: env("CRYPTOFLOW_INFLUX_USER"),
                password: env("CRYPTOFLOW_INFLUX_PASSWORD"),
            },
            "v2" => InfluxApi::V2 {
                org: self.org.clone(),
                bucket: self.bucket.clone(),
                token: env("CRYPTOFLOW_INFLUX_TOKEN").ok_or_else(|| {
                    permanent(
                        "sinks.influx.api = \"v2\" needs CRYPTOFLOW_INFLUX_TOKEN in the environment"
                            .into(),
                    )
                })?,
            },
            other => {
                return Err(permanent(format!(
                    "sinks.influx.api must be \"v1\" or \"v2\", not {other:?}"
                )))
            }
        };
        Ok(InfluxConfig {
            url: self.url.clone(),
            api,
            gzip: self.gzip,
            timeout: Duration::from_secs(10),
        })
    }
}

impl crate::task::SinkSpec for InfluxSinkConfig {
    type Sink = InfluxSink;
    fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
    async fn build(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<InfluxSink, SinkError> {
        InfluxSink::connect(self.sink_config(env)?).await
    }
}

/// Escapes a tag key, tag value or measurement (commas, equals signs and spaces).
pub fn escape_tag(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out
}

/// Quotes a string field value (backslashes and double quotes escaped).
pub fn quote_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn float(x: f64) -> String {
    // Line protocol floats: always with a decimal point or exponent, never NaN/inf.
    if x.is_finite() {
        format!("{x:?}")
    } else {
        "0.0".to_string()
    }
}

/// The nanosecond timestamp of a trade point.
pub fn trade_time_ns(t: &Trade) -> i128 {
    i128::from(t.ts_exchange) * 1_000_000 + i128::from(t.trade_id % 1_000_000)
}

fn ms_ns(ms: Millis) -> i128 {
    i128::from(ms) * 1_000_000
}

/// Appends the line-protocol lines of one record.
pub fn lines(r: &Output, out: &mut String) {
    match r {
        Output::Trade(e) => trade_line(
            out,
            "trades",
            &e.trade,
            &format!(
                "moving_average={},is_whale={}",
                float(to_f64(e.moving_average)),
                e.is_whale
            ),
        ),
        Output::Whale(w) => trade_line(
            out,
            "whales",
            &w.trade,
            &format!("notional={}", float(to_f64(w.notional))),
        ),
        Output::Candle(c) => candle_line(c, out),
        Output::Indicators(r) => indicators_line(r, out),
        Output::Features(f) => features_line(f, out),
        Output::SentimentWindow(w) => {
            // A window's later value overwrites its point (same series and time).
            let _ = writeln!(
                out,
                "sentiment_windows,coin={},model={},span={} items={}i,mean_compound={},positive_share={},negative_share={} {}",
                escape_tag(&w.coin),
                escape_tag(&w.model),
                escape_tag(&w.span),
                w.items,
                float(w.mean_compound),
                float(w.positive_share),
                float(w.negative_share),
                ms_ns(w.window_end)
            );
        }
        _ => {}
    }
}

/// One point per feature vector: tags venue, symbol, interval; a float field per feature that
/// has a value; time = the candle's open time.
fn features_line(f: &cryptoflow_operators::features::FeatureRow, out: &mut String) {
    let fields: Vec<String> = f
        .named()
        .filter_map(|(name, v)| {
            v.filter(|x| x.is_finite())
                .map(|x| format!("{name}={}", float(x)))
        })
        .collect();
    if fields.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "features,venue={},symbol={},interval={} {} {}",
        escape_tag(f.venue.as_str()),
        escape_tag(f.symbol.as_str()),
        f.interval.label(),
        fields.join(","),
        ms_ns(f.open_time)
    );
}

/// One point per final candle: tags venue, symbol, interval; a field per indicator that has a
/// value (a point without any value is skipped); time = the candle's open time.
fn indicators_line(r: &cryptoflow_operators::dataflow::IndicatorRow, out: &mut String) {
    use cryptoflow_operators::math::indicators::FLOAT_COLUMNS;
    let mut fields: Vec<String> = FLOAT_COLUMNS
        .iter()
        .zip(r.values.floats())
        .filter_map(|(name, v)| v.map(|x| format!("{name}={}", float(x))))
        .collect();
    if let Some(v) = r.values.vwap_20 {
        fields.push(format!("vwap_20={}", float(to_f64(v))));
    }
    if fields.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "indicators,venue={},symbol={},interval={} {} {}",
        escape_tag(r.venue.as_str()),
        escape_tag(r.symbol.as_str()),
        r.interval.label(),
        fields.join(","),
        ms_ns(r.open_time)
    );
}

/// A point of a per-trade measurement: the trade's tags and fields, then `extra` fields.
fn trade_line(out: &mut String, measurement: &str, t: &Trade, extra: &str) {
    let _ = writeln!(
        out,
        "{measurement},venue={},symbol={},side={} trade_id={}i,price={},qty={},{extra} {}",
        escape_tag(t.venue.as_str()),
        escape_tag(t.symbol.as_str()),
        t.side.as_str(),
        t.trade_id,
        float(to_f64(t.price)),
        float(to_f64(t.qty)),
        trade_time_ns(t)
    );
}

fn candle_line(c: &Candle, out: &mut String) {
    let _ = writeln!(
        out,
        "candles,venue={},symbol={},interval={} open={},high={},low={},close={},volume={},quote_volume={},vwap={},trade_count={}i,first_trade_id={}i,last_trade_id={}i,is_final={} {}",
        escape_tag(c.venue.as_str()),
        escape_tag(c.symbol.as_str()),
        c.interval.label(),
        float(to_f64(c.open)),
        float(to_f64(c.high)),
        float(to_f64(c.low)),
        float(to_f64(c.close)),
        float(to_f64(c.volume)),
        float(to_f64(c.quote_volume)),
        float(to_f64(c.vwap)),
        c.trade_count,
        c.first_trade_id,
        c.last_trade_id,
        c.is_final,
        ms_ns(c.open_time)
    );
}

/// The InfluxDB sink.
pub struct InfluxSink {
    client: reqwest::Client,
    cfg: InfluxConfig,
}

impl InfluxSink {
    /// Builds the client; with the 1.x API, creates the database if it does not exist.
    pub async fn connect(cfg: InfluxConfig) -> Result<Self, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| SinkError::Permanent {
                sink: SINK,
                message: e.to_string(),
            })?;
        let sink = InfluxSink { client, cfg };
        if let InfluxApi::V1 {
            database,
            user,
            password,
        } = &sink.cfg.api
        {
            let mut req = sink
                .client
                .post(format!("{}/query", sink.cfg.url.trim_end_matches('/')))
                .form(&[(
                    "q",
                    format!("CREATE DATABASE {}", quote_identifier(database)),
                )]);
            if let Some(u) = user {
                req = req.basic_auth(u, password.as_deref());
            }
            let resp = req.send().await.map_err(|e| SinkError::Transient {
                sink: SINK,
                message: format!("connect: {e}"),
            })?;
            if !resp.status().is_success() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Err(SinkError::Permanent {
                    sink: SINK,
                    message: format!("cannot create database {database}: HTTP {status}: {body}"),
                });
            }
        }
        Ok(sink)
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let base = self.cfg.url.trim_end_matches('/');
        match &self.cfg.api {
            InfluxApi::V1 {
                database,
                user,
                password,
            } => {
                let mut req = self
                    .client
                    .post(format!("{base}/write"))
                    .query(&[("db", database.as_str()), ("precision", "ns")]);
                if let Some(u) = user {
                    req = req.basic_auth(u, password.as_deref());
                }
                req
            }
            InfluxApi::V2 { org, bucket, token } => self
                .client
                .post(format!("{base}/api/v2/write"))
                .query(&[
                    ("org", org.as_str()),
                    ("bucket", bucket.as_str()),
                    ("precision", "ns"),
                ])
                .header("Authorization", format!("Token {token}")),
        }
    }
}

fn quote_identifier(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Sink for InfluxSink {
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
            OutputKind::Features,
        ])
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let mut body = String::new();
        for r in records {
            lines(r, &mut body);
        }
        if body.is_empty() {
            return Ok(());
        }
        let mut req = self
            .request()
            .header("Content-Type", "text/plain; charset=utf-8");
        let payload = if self.cfg.gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body.as_bytes())
                .and_then(|_| gz.finish())
                .map_err(|e| SinkError::Permanent {
                    sink: SINK,
                    message: e.to_string(),
                })?
        } else {
            body.into_bytes()
        };
        if self.cfg.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        let resp = req
            .body(payload)
            .send()
            .await
            .map_err(|e| SinkError::Transient {
                sink: SINK,
                message: format!("write: {e}"),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = format!(
            "write: HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SinkError::Transient {
                sink: SINK,
                message,
            })
        } else {
            Err(SinkError::Permanent {
                sink: SINK,
                message,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_the_line_protocol() {
        // From the InfluxDB line protocol reference: commas, equals signs and spaces in tags are
        // escaped with a backslash; string fields escape double quotes and backslashes.
        assert_eq!(escape_tag("a b,c=d"), "a\\ b\\,c\\=d");
        assert_eq!(escape_tag("BTCUSDT"), "BTCUSDT");
        assert_eq!(quote_field(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(43000.1), "43000.1");
        assert_eq!(float(f64::NAN), "0.0");
    }
}
