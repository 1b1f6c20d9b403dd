//! One push to WebSocket clients and its kind (the subscription name).

use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use cryptoflow_operators::model::OutputKind;
use cryptoflow_sinks::kafka::Topics;
use serde::Serialize;

/// One pushed record: its kind (the WebSocket subscription name), its symbol or coin, and its
/// JSON: the envelope `{"kind": …, "symbol": …, "committed_at_us": …, "data": …}` whose `data`
/// is the record's message on its Kafka topic (`schemas/kafka/`), the same in `run` and in
/// `serve`; `committed_at_us` is when the primary sink committed it (`serve`: when it was read
/// from Kafka), in microseconds since the epoch.
#[derive(Debug, Clone)]
pub struct Push {
    /// The subscription kind.
    pub kind: PushKind,
    /// The symbol (or coin, for sentiment), upper case.
    pub key: Option<String>,
    /// The envelope as JSON, serialized once: every client's frame shares these bytes.
    pub json: Utf8Bytes,
    /// When the primary sink committed it (or `serve` read it from Kafka).
    pub committed: Instant,
}

impl Push {
    /// The push of a topic message: `topic` and the message's `type` say its kind (`None`: not
    /// pushed, like features and lifecycle events); `key` is the message key.
    pub fn of_message(
        topics: &Topics,
        topic: &str,
        key: Option<&str>,
        payload: &str,
        committed: Instant,
    ) -> Option<Push> {
        let ty = serde_json::from_str::<TypeOnly>(payload).ok()?.ty;
        let kind = PushKind::of_topic(topics, topic, ty.as_deref())?;
        Some(Push::envelope(kind, key, payload, committed))
    }

    pub(crate) fn envelope(
        kind: PushKind,
        key: Option<&str>,
        payload: &str,
        committed: Instant,
    ) -> Push {
        let symbol = serde_json::to_string(&key).unwrap_or_else(|_| "null".into());
        // The commit's wall-clock time, so a client on the same clock can measure its latency.
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let at_us = now_us - committed.elapsed().as_micros() as i64;
        Push {
            kind,
            key: key.map(str::to_ascii_uppercase),
            json: Utf8Bytes::from(format!(
                r#"{{"kind":"{}","symbol":{symbol},"committed_at_us":{at_us},"data":{payload}}}"#,
                kind.name()
            )),
            committed,
        }
    }
}

/// The `type` field of a topic message.
#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    ty: Option<String>,
}

/// What a WebSocket client subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// Enriched trades.
    Trades,
    /// Candles (forming and final).
    Candles,
    /// Indicators at final candles.
    Indicators,
    /// Whale alerts.
    Whales,
    /// News and social sentiment, and its windows.
    Sentiment,
    /// Gaps, late trades, kline mismatches.
    Quality,
}

impl PushKind {
    /// Every kind.
    pub const ALL: [PushKind; 6] = [
        PushKind::Trades,
        PushKind::Candles,
        PushKind::Indicators,
        PushKind::Whales,
        PushKind::Sentiment,
        PushKind::Quality,
    ];

    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            PushKind::Trades => "trades",
            PushKind::Candles => "candles",
            PushKind::Indicators => "indicators",
            PushKind::Whales => "whales",
            PushKind::Sentiment => "sentiment",
            PushKind::Quality => "quality",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<PushKind> {
        PushKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The kind of a message on `topic` with `type` (`None`: not pushed).
    pub fn of_topic(topics: &Topics, topic: &str, ty: Option<&str>) -> Option<PushKind> {
        Some(if topic == topics.trades {
            PushKind::Trades
        } else if topic == topics.prices {
            match ty? {
                "candle" => PushKind::Candles,
                "indicators" => PushKind::Indicators,
                _ => return None,
            }
        } else if topic == topics.alerts {
            match ty? {
                "whale" => PushKind::Whales,
                "kline_mismatch" => PushKind::Quality,
                _ => return None,
            }
        } else if topic == topics.events {
            match ty? {
                "gap" | "late_trade" => PushKind::Quality,
                _ => return None,
            }
        } else if topic == topics.sentiment {
            PushKind::Sentiment
        } else {
            return None;
        })
    }

    /// The kind an output is pushed as (`None`: not pushed); the kind of its topic message.
    pub(crate) fn of(kind: OutputKind) -> Option<PushKind> {
        Some(match kind {
            OutputKind::Trade => PushKind::Trades,
            OutputKind::Candle => PushKind::Candles,
            OutputKind::Indicators => PushKind::Indicators,
            OutputKind::Whale => PushKind::Whales,
            OutputKind::Sentiment | OutputKind::SentimentWindow => PushKind::Sentiment,
            OutputKind::Gap | OutputKind::Late | OutputKind::Mismatch => PushKind::Quality,
            OutputKind::Quality
            | OutputKind::Polled
            | OutputKind::Features
            | OutputKind::Signal => return None,
        })
    }
}
