//! Kafka sink: JSON messages keyed by symbol for downstream bots.
//!
//! Topics (names configurable) and their message types, each described by a JSON Schema in
//! `schemas/kafka/` (field `version` is the schema's major version):
//! - `crypto-trades`: every normalized trade with its analytics ([`TradeMsg`]);
//! - `crypto-prices`: candle updates, forming and final ([`CandleMsg`]);
//! - `crypto-alerts`: whales and exchange-kline mismatches ([`AlertMsg`]);
//! - `crypto-events`: gaps and reconnects, late trades, and the run's lifecycle ([`EventMsg`]).
//!
//! Delivery: the producer is idempotent (`enable.idempotence=true`, `acks=all`), so the broker
//! never stores a message twice because of a producer retry, and each flush waits for the
//! delivery report of every message before it counts as committed: the ack that releases source
//! offsets covers only messages the broker has. After a crash, data after the last committed
//! offset is processed again and its messages are produced again: consumers deduplicate by
//! key and id (`trade_id` for trades; `interval`+`open_time` for candles, where the last message
//! wins and a final candle is never followed by a forming one of the same run).

use std::collections::BTreeMap;
use std::time::Duration;

use cryptoflow_operators::model::{
    Candle, Gap, Interval, KlineMismatch, Symbol, Venue, WhaleAlert,
};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::now_ms;
use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

const SINK: &str = "kafka";

/// Version of every message schema (the `version` field).
pub const SCHEMA_VERSION: u32 = 1;

/// Topic names of the Kafka sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Normalized trades.
    pub trades: String,
    /// Candles and indicators.
    pub prices: String,
    /// Whale and data-quality alerts.
    pub alerts: String,
    /// Gaps, reconnects, late trades, lifecycle.
    pub events: String,
    /// ML feature vectors.
    pub features: String,
    /// Sentiment scores of news items and posts, and per-coin rolling sentiment windows.
    pub sentiment: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            trades: "crypto-trades".into(),
            prices: "crypto-prices".into(),
            alerts: "crypto-alerts".into(),
            events: "crypto-events".into(),
            features: "crypto-features".into(),
            sentiment: "crypto-sentiment".into(),
        }
    }
}

/// `[sinks.kafka]`: settings of the Kafka sink.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers` ("" disables).
    pub brokers: String,
    /// Topic names.
    pub topics: Topics,
    /// Extra librdkafka producer settings (override the defaults set here).
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

impl crate::task::SinkSpec for KafkaSinkConfig {
    type Sink = KafkaSink;
    fn enabled(&self) -> bool {
        !self.brokers.is_empty()
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<KafkaSink, SinkError> {
        KafkaSink::connect(self).await
    }
}

/// A trade on `crypto-trades`.
#[derive(Debug, Serialize)]
pub struct TradeMsg<'a> {
    /// Schema version.
    pub version: u32,
    /// Venue (`binance`).
    pub venue: &'a str,
    /// Symbol, upper case (`BTCUSDT`).
    pub symbol: &'a str,
    /// Trade id (aggregate id for aggTrades), consecutive per symbol.
    pub trade_id: u64,
    /// Price, exact decimal as a string.
    pub price: Decimal,
    /// Quantity, exact decimal as a string.
    pub qty: Decimal,
    /// Taker side: `buy` or `sell`.
    pub side: &'a str,
    /// Exchange trade time, ms since the epoch.
    pub ts_exchange: i64,
    /// Receive time, ms since the epoch.
    pub ts_received: i64,
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

/// A candle update on `crypto-prices`.
#[derive(Debug, Serialize)]
pub struct CandleMsg<'a> {
    /// Schema version.
    pub version: u32,
    /// Always `candle`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Venue.
    pub venue: &'a str,
    /// Symbol.
    pub symbol: &'a str,
    /// Interval label (`1m`, `1h`, …).
    pub interval: &'a str,
    /// Open time, ms.
    pub open_time: i64,
    /// Close time (last ms of the window).
    pub close_time: i64,
    /// Open price.
    pub open: Decimal,
    /// High price.
    pub high: Decimal,
    /// Low price.
    pub low: Decimal,
    /// Close price.
    pub close: Decimal,
    /// Base volume.
    pub volume: Decimal,
    /// Quote volume.
    pub quote_volume: Decimal,
    /// Volume-weighted average price.
    pub vwap: Decimal,
    /// Trades in the candle.
    pub trade_count: u64,
    /// Taker-buy base volume.
    pub taker_buy_volume: Decimal,
    /// First trade id.
    pub first_trade_id: u64,
    /// Last trade id.
    pub last_trade_id: u64,
    /// True once the window is closed (no further updates).
    pub is_final: bool,
}

/// An alert on `crypto-alerts`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertMsg<'a> {
    /// A trade whose notional reached the whale threshold.
    Whale {
        /// Schema version.
        version: u32,
        /// Venue.
        venue: &'a str,
        /// Symbol.
        symbol: &'a str,
        /// Trade id.
        trade_id: u64,
        /// Price.
        price: Decimal,
        /// Quantity.
        qty: Decimal,
        /// Taker side.
        side: &'a str,
        /// Price × quantity.
        notional: Decimal,
        /// Threshold that applied (quote currency).
        threshold: Decimal,
        /// Exchange time, ms.
        ts_exchange: i64,
    },
    /// A closed exchange kline that disagrees with the candle computed from trades.
    KlineMismatch {
        /// Schema version.
        version: u32,
        /// Venue.
        venue: &'a str,
        /// Symbol.
        symbol: &'a str,
        /// Interval label.
        interval: &'a str,
        /// Open time, ms.
        open_time: i64,
        /// Fields that differ.
        fields: &'a [String],
    },
}

/// An event on `crypto-events`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventMsg<'a> {
    /// A possible hole in a stream (a reconnect, an id hole, a restart).
    Gap {
        /// Schema version.
        version: u32,
        /// Venue.
        venue: &'a str,
        /// Symbol.
        symbol: &'a str,
        /// Stream kind (`trade`, `aggTrade`).
        stream: &'a str,
        /// `reconnect`, `id_hole` or `restart`.
        reason: &'a str,
        /// Data may be missing from this time, ms.
        since: i64,
        /// … until this time, ms.
        until: i64,
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
        version: u32,
        /// Venue.
        venue: &'a str,
        /// Symbol.
        symbol: &'a str,
        /// Trade id.
        trade_id: u64,
        /// Interval of the candle it missed.
        interval: &'a str,
        /// Open time of that candle, ms.
        candle_open_time: i64,
        /// Exchange time of the trade, ms.
        ts_exchange: i64,
    },
    /// The sink started or stopped.
    Lifecycle {
        /// Schema version.
        version: u32,
        /// `started` or `stopped`.
        event: &'a str,
        /// Process id.
        pid: u32,
        /// Wall-clock time, ms.
        at: i64,
    },
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

fn json<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_string(v).unwrap_or_default()
}

fn candle_msg(c: &Candle) -> String {
    json(&CandleMsg {
        version: SCHEMA_VERSION,
        kind: "candle",
        venue: c.venue.as_str(),
        symbol: c.symbol.as_str(),
        interval: c.interval.label(),
        open_time: c.open_time,
        close_time: c.close_time,
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        quote_volume: c.quote_volume,
        vwap: c.vwap,
        trade_count: c.trade_count,
        taker_buy_volume: c.taker_buy_volume,
        first_trade_id: c.first_trade_id,
        last_trade_id: c.last_trade_id,
        is_final: c.is_final,
    })
}

/// The fields that open every per-candle message after the candle itself (indicators, features).
#[derive(Debug, Serialize)]
pub struct CandleHeader<'a> {
    /// Schema version.
    pub version: u32,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Venue.
    pub venue: &'a str,
    /// Symbol.
    pub symbol: &'a str,
    /// Interval label.
    pub interval: &'a str,
    /// Candle open time, ms.
    pub open_time: i64,
    /// Candle close time, ms (the as-of time).
    pub close_time: i64,
}

impl<'a> CandleHeader<'a> {
    fn new(
        kind: &'a str,
        venue: Venue,
        symbol: &'a Symbol,
        interval: Interval,
        open_time: i64,
        close_time: i64,
    ) -> Self {
        CandleHeader {
            version: SCHEMA_VERSION,
            kind,
            venue: venue.as_str(),
            symbol: symbol.as_str(),
            interval: interval.label(),
            open_time,
            close_time,
        }
    }
}

/// The indicators of a final candle on `crypto-prices` (`type: indicators`).
#[derive(Debug, Serialize)]
pub struct IndicatorsMsg<'a> {
    /// Version, type, candle key and times.
    #[serde(flatten)]
    pub header: CandleHeader<'a>,
    /// Close price.
    pub close: Decimal,
    /// The values (null while warming up).
    #[serde(flatten)]
    pub values: &'a cryptoflow_operators::math::indicators::IndicatorValues,
}

/// A message on `crypto-sentiment`: a scored item (`type: item`) or a window (`type: window`).
#[derive(Debug, Serialize)]
pub struct SentimentMsg<'a, R: Serialize> {
    /// Schema version.
    pub version: u32,
    /// `item` (one scored news item or post) or `window` (a per-coin rolling window's new value).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The row's fields.
    #[serde(flatten)]
    pub row: &'a R,
}

/// A feature vector on `crypto-features` (`type: features`).
#[derive(Debug, Serialize)]
pub struct FeaturesMsg<'a> {
    /// Version, type, candle key and times.
    #[serde(flatten)]
    pub header: CandleHeader<'a>,
    /// Name → value (null: not available yet).
    pub features: BTreeMap<&'static str, Option<f64>>,
}

fn whale_msg(w: &WhaleAlert) -> String {
    let t = &w.trade;
    json(&AlertMsg::Whale {
        version: SCHEMA_VERSION,
        venue: t.venue.as_str(),
        symbol: t.symbol.as_str(),
        trade_id: t.trade_id,
        price: t.price,
        qty: t.qty,
        side: t.side.as_str(),
        notional: w.notional,
        threshold: w.threshold,
        ts_exchange: t.ts_exchange,
    })
}

fn mismatch_msg(m: &KlineMismatch) -> String {
    json(&AlertMsg::KlineMismatch {
        version: SCHEMA_VERSION,
        venue: m.venue.as_str(),
        symbol: m.symbol.as_str(),
        interval: m.interval.label(),
        open_time: m.open_time,
        fields: &m.fields,
    })
}

fn gap_msg(g: &Gap) -> String {
    json(&EventMsg::Gap {
        version: SCHEMA_VERSION,
        venue: g.venue.as_str(),
        symbol: g.symbol.as_str(),
        stream: g.kind.as_str(),
        reason: g.reason.as_str(),
        since: g.since,
        until: g.until,
        from_id: g.from_id,
        to_id: g.to_id,
        refilled: g.refilled,
        detail: &g.detail,
    })
}

/// Maps a record to its topic message (`None`: the record has no topic, e.g. ledger rows).
pub fn outgoing<'a>(topics: &'a Topics, record: &'a Output) -> Option<Outgoing<'a>> {
    let (topic, key, payload, timestamp) = match record {
        Output::Trade(e) => {
            let t = &e.trade;
            let agg = t.agg;
            let payload = json(&TradeMsg {
                version: SCHEMA_VERSION,
                venue: t.venue.as_str(),
                symbol: t.symbol.as_str(),
                trade_id: t.trade_id,
                price: t.price,
                qty: t.qty,
                side: t.side.as_str(),
                ts_exchange: t.ts_exchange,
                ts_received: t.ts_received,
                first_trade_id: agg.map(|a| a.first_trade_id),
                last_trade_id: agg.map(|a| a.last_trade_id),
                moving_average: e.moving_average,
                ema: e.ema.filter(|x| x.is_finite()),
                is_whale: e.is_whale,
            });
            (&topics.trades, t.symbol.as_str(), payload, t.ts_exchange)
        }
        Output::Candle(c) => (
            &topics.prices,
            c.symbol.as_str(),
            candle_msg(c),
            c.open_time,
        ),
        Output::Whale(w) => (
            &topics.alerts,
            w.trade.symbol.as_str(),
            whale_msg(w),
            w.trade.ts_exchange,
        ),
        Output::Mismatch(m) => (
            &topics.alerts,
            m.symbol.as_str(),
            mismatch_msg(m),
            m.open_time,
        ),
        Output::Gap(g) => (&topics.events, g.symbol.as_str(), gap_msg(g), g.until),
        Output::Late(l) => (
            &topics.events,
            l.trade.symbol.as_str(),
            json(&EventMsg::LateTrade {
                version: SCHEMA_VERSION,
                venue: l.trade.venue.as_str(),
                symbol: l.trade.symbol.as_str(),
                trade_id: l.trade.trade_id,
                interval: l.interval.label(),
                candle_open_time: l.candle_open_time,
                ts_exchange: l.trade.ts_exchange,
            }),
            l.trade.ts_exchange,
        ),
        Output::Indicators(r) => (
            &topics.prices,
            r.symbol.as_str(),
            json(&IndicatorsMsg {
                header: CandleHeader::new(
                    "indicators",
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
            f.symbol.as_str(),
            json(&FeaturesMsg {
                header: CandleHeader::new(
                    "features",
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
            s.coins.first().unwrap_or(&s.item_key).as_str(),
            json(&SentimentMsg {
                version: SCHEMA_VERSION,
                kind: "item",
                row: s.as_ref(),
            }),
            s.published_at,
        ),
        Output::SentimentWindow(w) => (
            &topics.sentiment,
            w.coin.as_str(),
            json(&SentimentMsg {
                version: SCHEMA_VERSION,
                kind: "window",
                row: w.as_ref(),
            }),
            w.window_end,
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

/// Writes records to Kafka topics through one idempotent producer.
pub struct KafkaSink {
    producer: FutureProducer,
    topics: Topics,
    delivery_timeout: Duration,
}

/// Classifies a delivery or enqueue error.
fn classify(e: &KafkaError, what: &str) -> SinkError {
    let code = e.rdkafka_error_code();
    let permanent = matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::InvalidConfig
        )
    ) || matches!(
        e,
        KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..)
    );
    let message = format!("{what}: {e}");
    if permanent {
        SinkError::Permanent {
            sink: SINK,
            message: format!(
                "{message} (check the topic names and the broker's settings and ACLs under [sinks.kafka])"
            ),
        }
    } else {
        SinkError::Transient {
            sink: SINK,
            message,
        }
    }
}

impl KafkaSink {
    /// Creates the producer and announces the run on the events topic.
    pub async fn connect(cfg: &KafkaSinkConfig) -> Result<Self, SinkError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "gzip")
            .set("message.timeout.ms", "30000")
            .set("queue.buffering.max.messages", "200000")
            .set("client.id", "cryptoflow");
        for (k, v) in &cfg.producer {
            cc.set(k, v);
        }
        let delivery_timeout = cc
            .get("message.timeout.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms + 10_000))
            .unwrap_or(Duration::from_secs(60));
        let producer: FutureProducer = cc.create().map_err(|e| SinkError::Permanent {
            sink: SINK,
            message: format!("cannot create the Kafka producer for {}: {e}", cfg.brokers),
        })?;
        let mut sink = KafkaSink {
            producer,
            topics: cfg.topics.clone(),
            delivery_timeout,
        };
        sink.lifecycle("started").await?;
        Ok(sink)
    }

    async fn lifecycle(&mut self, event: &str) -> Result<(), SinkError> {
        let payload = json(&EventMsg::Lifecycle {
            version: SCHEMA_VERSION,
            event,
            pid: std::process::id(),
            at: now_ms(),
        });
        let topic = self.topics.events.clone();
        self.send_all(vec![Outgoing {
            topic: &topic,
            key: "cryptoflow",
            payload,
            timestamp: None,
        }])
        .await
    }

    /// Enqueues every message, then waits for all delivery reports.
    async fn send_all(&self, messages: Vec<Outgoing<'_>>) -> Result<(), SinkError> {
        let mut pending: std::collections::VecDeque<DeliveryFuture> =
            std::collections::VecDeque::with_capacity(messages.len());
        let mut first_error: Option<SinkError> = None;
        for m in &messages {
            loop {
                let mut rec = FutureRecord::to(m.topic).key(m.key).payload(&m.payload);
                if let Some(ts) = m.timestamp {
                    rec = rec.timestamp(ts);
                }
                match self.producer.send_result(rec) {
                    Ok(f) => {
                        pending.push_back(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The local queue is full: wait for the oldest delivery, then retry.
                        match pending.pop_front() {
                            Some(f) => {
                                if let Err(e) = self.await_delivery(f).await {
                                    first_error.get_or_insert(e);
                                }
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => return Err(classify(&e, "enqueue")),
                }
            }
        }
        for f in pending {
            if let Err(e) = self.await_delivery(f).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn await_delivery(&self, f: DeliveryFuture) -> Result<(), SinkError> {
        match tokio::time::timeout(self.delivery_timeout, f).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err((e, _)))) => Err(classify(&e, "delivery")),
            Ok(Err(_)) => Err(SinkError::Transient {
                sink: SINK,
                message: "the producer dropped a delivery report".into(),
            }),
            Err(_) => Err(SinkError::Transient {
                sink: SINK,
                message: "no delivery report in time".into(),
            }),
        }
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        SINK
    }
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        use cryptoflow_operators::model::OutputKind;
        cryptoflow_operators::model::OutputKinds::of(&[
            OutputKind::Trade,
            OutputKind::Candle,
            OutputKind::Whale,
            OutputKind::Mismatch,
            OutputKind::Gap,
            OutputKind::Late,
            OutputKind::Indicators,
            OutputKind::Features,
            OutputKind::Sentiment,
            OutputKind::SentimentWindow,
        ])
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let messages: Vec<Outgoing<'_>> = records
            .iter()
            .filter_map(|r| outgoing(&self.topics, r))
            .collect();
        self.send_all(messages).await
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.lifecycle("stopped").await?;
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
            .await
            .map_err(|e| SinkError::Transient {
                sink: SINK,
                message: format!("flush: {e}"),
            })?
            .map_err(|e| classify(&e, "flush"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::dataflow::EnrichedTrade;
    use cryptoflow_operators::model::{Side, Trade, Venue};

    #[test]
    fn trade_message_shape() {
        let t = Trade {
            venue: Venue::Binance,
            symbol: "BTCUSDT".parse().expect("symbol"),
            trade_id: 7,
            price: "67000.10".parse().expect("price"),
            qty: "0.5".parse().expect("qty"),
            side: Side::Buy,
            ts_exchange: 1_700_000_000_000,
            ts_received: 1_700_000_000_005,
            agg: None,
        };
        let rec = Output::Trade(EnrichedTrade {
            trade: t,
            moving_average: "67000.10".parse().expect("ma"),
            ema: Some(f64::NAN),
            is_whale: false,
            whale_threshold: "100000".parse().expect("t"),
        });
        let topics = Topics::default();
        let m = outgoing(&topics, &rec).expect("a trade has a topic");
        assert_eq!(m.topic, "crypto-trades");
        assert_eq!(m.key, "BTCUSDT");
        let v: serde_json::Value = serde_json::from_str(&m.payload).expect("json");
        assert_eq!(v["price"], "67000.10");
        assert_eq!(v["side"], "buy");
        assert_eq!(v["version"], 1);
        assert!(v["ema"].is_null(), "NaN is not JSON: it becomes null");
        assert!(v["first_trade_id"].is_null());
    }
}
