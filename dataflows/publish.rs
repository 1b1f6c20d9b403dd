//! Publishing raw Binance frames to Kafka: `cryptoflow record --kafka`, the producer half of a
//! `WebSocket → Kafka → consume` deployment, and the Kafka mode of `cryptoflow bench`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use cryptoflow_operators::model::Venue;
use cryptoflow_sources::binance::{decode_frame, Decoded};
use cryptoflow_sources::ws::{run_connections, WsConfig, WsItem};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

/// Most deliveries awaited at once before the publisher waits for the oldest.
const MAX_PENDING: usize = 50_000;

/// An idempotent producer of raw frames, keyed by symbol, that waits for delivery reports.
pub struct RawPublisher {
    producer: FutureProducer,
    topic: String,
    venue: Option<Venue>,
    pending: VecDeque<DeliveryFuture>,
    /// Frames the broker confirmed.
    pub delivered: u64,
}

/// The symbol a frame is about, for the message key (`None`: not market data).
pub fn frame_key(frame: &str) -> Option<String> {
    match decode_frame(frame, 0) {
        Ok(Decoded::Event(e)) => e.symbol().map(|s| s.as_str().to_string()),
        _ => None,
    }
}

impl RawPublisher {
    /// A publisher to `topic` at `brokers`.
    pub fn new(brokers: &str, topic: &str) -> Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "500000")
            .set("client.id", "cryptoflow-publisher")
            .create()
            .with_context(|| format!("cannot create a Kafka producer for {brokers}"))?;
        Ok(RawPublisher {
            producer,
            topic: topic.to_string(),
            venue: None,
            pending: VecDeque::new(),
            delivered: 0,
        })
    }

    /// Names `venue` in a `venue` header of every message (the consumer's venue of the frames;
    /// without it they are spot).
    pub fn with_venue(mut self, venue: Venue) -> Self {
        self.venue = Some(venue);
        self
    }

    /// Enqueues one frame (keyed by its symbol); waits for older deliveries when many are open.
    pub async fn send(&mut self, frame: &str, timestamp: Option<i64>) -> Result<()> {
        let key = frame_key(frame);
        loop {
            let mut rec = FutureRecord::to(&self.topic).payload(frame);
            if let Some(k) = &key {
                rec = rec.key(k.as_str());
            }
            if let Some(ts) = timestamp {
                rec = rec.timestamp(ts);
            }
            if let Some(v) = self.venue {
                rec = rec.headers(OwnedHeaders::new().insert(Header {
                    key: "venue",
                    value: Some(v.as_str()),
                }));
            }
            match self.producer.send_result(rec) {
                Ok(f) => {
                    self.pending.push_back(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if !self.wait_oldest().await? {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err((e, _)) => return Err(anyhow!("cannot enqueue to {}: {e}", self.topic)),
            }
        }
        while self.pending.len() > MAX_PENDING {
            self.wait_oldest().await?;
        }
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<bool> {
        let Some(f) = self.pending.pop_front() else {
            return Ok(false);
        };
        match f.await {
            Ok(Ok(_)) => {
                self.delivered += 1;
                Ok(true)
            }
            Ok(Err((e, _))) => Err(anyhow!("delivery to {} failed: {e}", self.topic)),
            Err(_) => Err(anyhow!("the producer dropped a delivery report")),
        }
    }

    /// Waits until the broker confirmed every frame; returns how many it confirmed in all.
    pub async fn finish(mut self) -> Result<u64> {
        while self.wait_oldest().await? {}
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30)))
            .await?
            .map_err(|e| anyhow!("flush: {e}"))?;
        Ok(self.delivered)
    }
}

/// Live Binance frames for `record`: the connections run until [`LiveFrames::stop`]; frames come
/// out until the deadline, Ctrl-C, or the end of the connections.
pub struct LiveFrames {
    rx: tokio::sync::mpsc::Receiver<WsItem>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    runner: tokio::task::JoinHandle<()>,
    deadline: Option<tokio::time::Instant>,
}

impl LiveFrames {
    /// Opens the connections (call inside a tokio runtime).
    pub fn start(ws: WsConfig, duration: Option<Duration>) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runner = tokio::spawn(async move {
            run_connections(ws, tx, stop_rx, Default::default()).await;
        });
        LiveFrames {
            rx,
            stop_tx,
            runner,
            deadline: duration.map(|d| tokio::time::Instant::now() + d),
        }
    }

    /// The next frame and its receive time (`None`: time is up, SIGINT or SIGTERM, or no more frames).
    pub async fn next(&mut self) -> Option<(String, i64)> {
        loop {
            let deadline = self.deadline;
            let item = tokio::select! {
                i = self.rx.recv() => i,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => None,
                _ = crate::runtime::stop_signal() => None,
            };
            match item {
                Some(WsItem::Frame {
                    text, ts_received, ..
                }) => return Some((text, ts_received)),
                Some(other) => tracing::info!(?other, "Connection event."),
                None => return None,
            }
        }
    }

    /// Closes the connections.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.runner).await;
    }
}

/// Publishes live Binance frames to `topic` until `duration`, `max_frames` or Ctrl-C.
pub fn publish_live(
    ws: WsConfig,
    brokers: &str,
    topic: &str,
    duration: Option<Duration>,
    max_frames: Option<u64>,
) -> Result<u64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut publisher = RawPublisher::new(brokers, topic)?.with_venue(ws.venue);
    rt.block_on(async move {
        let mut live = LiveFrames::start(ws, duration);
        let mut sent = 0u64;
        while let Some((text, _)) = live.next().await {
            publisher.send(&text, None).await?;
            sent += 1;
            if max_frames.is_some_and(|m| sent >= m) {
                break;
            }
        }
        live.stop().await;
        publisher.finish().await
    })
}
