//! Kafka sink: JSON messages keyed by symbol for downstream bots.
//!
//! Topics (names configurable) and their message types ([`messages`]), each described by a JSON
//! Schema in `schemas/kafka/` generated from those types (field `version` is the schema's major
//! version):
//! - `crypto-trades`: every normalized trade with its analytics ([`TradeMsg`]);
//! - `crypto-prices`: candle updates, forming and final, and the indicators of final candles
//!   ([`PricesMsg`]);
//! - `crypto-alerts`: whales and exchange-kline mismatches ([`AlertMsg`]);
//! - `crypto-events`: gaps and reconnects, late trades, and the run's lifecycle ([`EventMsg`]);
//! - `crypto-features`: ML feature vectors ([`FeaturesMsg`]);
//! - `crypto-sentiment`: scored items and per-coin windows ([`SentimentTopicMsg`]);
//! - `crypto-signals`: strategy signals at final candles ([`SignalMsg`]).
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

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde::Serialize;

use crate::now_ms;
use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

pub mod messages;
pub use messages::*;

const SINK: &str = "kafka";

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
    /// Strategy signals.
    pub signals: String,
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
            signals: "crypto-signals".into(),
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
        sink.lifecycle(Lifecycle::Started).await?;
        Ok(sink)
    }

    async fn lifecycle(&mut self, event: Lifecycle) -> Result<(), SinkError> {
        let payload = lifecycle_msg(event, std::process::id(), now_ms());
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
            OutputKind::Signal,
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
        self.lifecycle(Lifecycle::Stopped).await?;
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
