//! `cryptoflow serve`: the API as its own stateless process, for several replicas behind one
//! address. History comes from the pipeline's PostgreSQL tables and views (read-only), live
//! pushes from the Kafka topics the pipeline publishes (each replica reads them from the newest
//! offset, in a consumer group of its own, and commits nothing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cryptoflow_sinks::kafka::Topics;
use cryptoflow_sources::ledger::Ledger;
use cryptoflow_sources::poll::driver::PollMetrics;
use cryptoflow_sources::stats::{SourceHealth, SourceStats};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use tokio::sync::watch;

use super::board::Board;
use super::pg::PgStore;
use super::push::Push;
use super::store::Store;
use super::{start, Status};
use crate::config::Config;

/// Connections to PostgreSQL per replica.
const POOL_SIZE: usize = 16;

/// What `serve` reads.
pub struct ServeSources {
    /// PostgreSQL URL (a role with `SELECT` is enough).
    pub postgres: String,
    /// Kafka bootstrap servers of the pipeline's topics (`None`: no live pushes).
    pub kafka: Option<String>,
}

/// Serves until SIGINT or SIGTERM.
pub fn serve(cfg: &Config, sources: ServeSources) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cryptoflow-serve")
        .build()
        .context("tokio runtime")?;
    let store = PgStore::connect(&sources.postgres, POOL_SIZE, cfg.analytics().whales)?;
    if !rt.block_on(store.ping()) {
        tracing::warn!(
            "PostgreSQL does not answer yet; /ready fails until it does (the API retries on every request)."
        );
    }
    let topics = cfg.sinks.kafka.topics.clone();
    let board = Board::new(cfg.serve.limits(), topics.clone());
    let ledger = Arc::new(Ledger::new(
        cfg.binance.stale_after_ms,
        cryptoflow_sources::now_ms(),
    ));
    let stats = Arc::new(SourceStats::with_ledger(ledger.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let status = Arc::new(Status::new(
        stats.clone(),
        ledger,
        Arc::new(PollMetrics::default()),
        stop_rx,
    ));
    let server = start(
        &cfg.serve,
        &rt,
        Store::Postgres(store),
        board.clone(),
        status,
    )?;
    if let Some(brokers) = sources.kafka.filter(|b| !b.is_empty()) {
        stats.set_health(SourceHealth::Starting);
        // The consumer's stream needs the runtime's reactor.
        let _guard = rt.enter();
        let consumer = push_consumer(&brokers, &cfg.kafka.consumer, &topics)?;
        rt.spawn(feed_pushes(consumer, topics, board, stats));
    }
    eprintln!("cryptoflow: serving on http://{}", server.addr);
    let signal = rt.block_on(crate::runtime::stop_signal());
    tracing::info!(signal, "Stopping the API.");
    stop_tx.send_replace(true);
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// A consumer of the pipeline's topics from their newest offsets, in a group of its own.
fn push_consumer(
    brokers: &str,
    extra: &std::collections::BTreeMap<String, String>,
    topics: &Topics,
) -> Result<StreamConsumer> {
    let group = format!(
        "cryptoflow-serve-{}-{}",
        std::process::id(),
        cryptoflow_sources::now_ms()
    );
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("client.id", "cryptoflow-serve");
    for (k, v) in extra {
        if k != "group.id" {
            cc.set(k, v);
        }
    }
    let consumer: StreamConsumer = cc
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {brokers}"))?;
    let names = [
        topics.trades.as_str(),
        topics.prices.as_str(),
        topics.alerts.as_str(),
        topics.events.as_str(),
        topics.sentiment.as_str(),
    ];
    consumer
        .subscribe(&names)
        .with_context(|| format!("cannot subscribe to {names:?}"))?;
    Ok(consumer)
}

/// Pushes every message of the topics to the WebSocket clients.
async fn feed_pushes(
    consumer: StreamConsumer,
    topics: Topics,
    board: Board,
    stats: Arc<SourceStats>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut since_yield = 0u32;
    loop {
        // A burst (a replay published at full speed) must not starve the clients' tasks.
        since_yield += 1;
        if since_yield >= 256 {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        tokio::select! {
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    stats.set_health(SourceHealth::Ready);
                    let payload = match m.payload_view::<str>() {
                        Some(Ok(p)) => p,
                        _ => continue,
                    };
                    let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
                    if let Some(p) = Push::of_message(&topics, m.topic(), key, payload, Instant::now()) {
                        board.push(p);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error (retrying).");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tick.tick() => {
                let assigned = consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
                if assigned {
                    stats.set_health(SourceHealth::Ready);
                }
            }
        }
    }
}
