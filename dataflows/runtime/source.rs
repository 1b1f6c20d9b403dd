//! The market-data sources as one trait: each says what it is (its ledger name, whether it runs
//! until stopped, the symbols it streams) and starts this process's parts of it, each part on
//! the worker that feeds it ([`FeedPort`]).
//!
//! - [`ReplayFiles`]: read once by every process and split among its workers by symbol
//!   ([`Router`]); each feeds the symbols it owns and keeps the single-worker watermark.
//! - [`LiveStreams`]: the Binance WebSocket streams of the symbols this process's workers own,
//!   fed by its first worker; process 0's first worker also takes the pollers' batches.
//! - [`KafkaTopics`]: consumed on process 0's first worker (partitions are not yet split across
//!   processes).
//!
//! A new source is a type implementing [`Source`], a variant of [`SourceSpec`] and one arm in
//! [`SourceSpec::into_source`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use cryptoflow_operators::model::{Shard, StreamKind, Symbol};
use cryptoflow_sinks::postgres::resume_points;
use cryptoflow_sources::kafka::{Durable, KafkaSourceConfig, OffsetFeedback, WatermarkCap};
use cryptoflow_sources::replay::ReplayOptions;
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::stats::{SourceHealth, SourceStats};
use cryptoflow_sources::ws::{binance_live, parse_stream_name, WsConfig};
use cryptoflow_sources::EventBatch;
use tokio::sync::{mpsc, watch};

use super::bridge::FeedPort;
use super::replay::{replay_all, ReplayOutcome, Router};
use super::stop::stop_on;
use crate::config::Config;
use crate::registry::SourceSpec;

/// What a started source left running.
#[derive(Default)]
pub(crate) struct StartedSource {
    /// The replay thread (it splits the events among this process's workers).
    pub replay: Option<std::thread::JoinHandle<ReplayOutcome>>,
    /// The Kafka consumer (commits its last offsets when the sinks are complete).
    pub kafka:
        Option<tokio::task::JoinHandle<Result<(), cryptoflow_sources::kafka::KafkaSourceError>>>,
    /// What each worker of this process feeds, by its index in the process.
    pub ports: Vec<Option<FeedPort>>,
}

/// What every source is started with.
pub(crate) struct SourceLinks<'a> {
    /// The configuration.
    pub cfg: &'a Config,
    /// The tokio runtime.
    pub rt: &'a tokio::runtime::Runtime,
    /// Counters, dead letters and the ledger.
    pub stats: Arc<SourceStats>,
    /// Tells live sources to stop; the source's timer or a signal sets it.
    pub shutdown: watch::Sender<bool>,
    /// The cluster's ack: what every sink of every process made durable.
    pub durable: watch::Receiver<Durable>,
    /// This process's index.
    pub process: usize,
    /// Processes of the cluster.
    pub processes: usize,
}

impl SourceLinks<'_> {
    /// Workers per process.
    fn workers(&self) -> usize {
        self.cfg.pipeline.workers.max(1)
    }

    /// No worker of this process feeds yet.
    fn no_ports(&self) -> Vec<Option<FeedPort>> {
        (0..self.workers()).map(|_| None).collect()
    }

    /// How long a stopped run may take to drain.
    fn deadline(&self) -> Duration {
        Duration::from_secs(self.cfg.pipeline.shutdown_deadline_s)
    }
}

/// A source of market events, in parts fed by the workers that own them.
pub(crate) trait Source {
    /// The source's name in the data-quality ledger.
    fn ledger_name(&self) -> &'static str;
    /// Runs until stopped (streams, Kafka); a replay ends by itself.
    fn is_live(&self) -> bool;
    /// The (venue, symbol) pairs it streams, registered in the ledger so a silent one shows as
    /// stale.
    fn streamed(&self) -> Vec<(&'static str, Symbol)> {
        Vec::new()
    }
    /// Candles are compared with the exchange's klines by trade count too (not for aggregate
    /// trades, which bundle several).
    fn compares_trade_count(&self) -> bool {
        true
    }
    /// A live run of pollers only (no market stream).
    fn pollers_only(&self) -> bool {
        false
    }
    /// Keeps only this process's share of the parts (`workers` per process).
    fn keep_share(&mut self, _process: usize, _processes: usize, _workers: usize) {}
    /// Starts this process's parts.
    fn start(self: Box<Self>, l: SourceLinks<'_>) -> Result<StartedSource>;
}

impl SourceSpec {
    /// The source this describes.
    pub(crate) fn into_source(self) -> Box<dyn Source> {
        match self {
            SourceSpec::Replay {
                files,
                opts,
                progress,
            } => Box::new(ReplayFiles {
                files,
                opts,
                progress,
            }),
            SourceSpec::Kafka { kafka, stop_after } => Box::new(KafkaTopics { kafka, stop_after }),
            SourceSpec::Live {
                ws,
                rest,
                stop_after,
            } => Box::new(LiveStreams {
                ws,
                rest,
                stop_after,
            }),
        }
    }
}

/// The channel of one worker's part of a source.
fn port(shard: Option<Shard>) -> (mpsc::Sender<EventBatch>, FeedPort) {
    let (tx, rx) = mpsc::channel::<EventBatch>(64);
    let port = FeedPort {
        events: rx,
        cap: WatermarkCap::default(),
        fed: None,
        shard,
    };
    (tx, port)
}

/// Files replayed in order (the bundled sample when there is none).
pub(crate) struct ReplayFiles {
    files: Vec<PathBuf>,
    opts: ReplayOptions,
    progress: bool,
}

impl Source for ReplayFiles {
    fn ledger_name(&self) -> &'static str {
        "replay"
    }

    fn is_live(&self) -> bool {
        false
    }

    /// Every process reads the files once and splits the events among its workers.
    fn start(self: Box<Self>, l: SourceLinks<'_>) -> Result<StartedSource> {
        let workers = l.workers();
        let mut ports = l.no_ports();
        let peers = workers * l.processes.max(1);
        let first = l.process * workers;
        let mut txs = Vec::with_capacity(workers);
        for (local, slot) in ports.iter_mut().enumerate() {
            // One worker in all feeds everything: no shard to check.
            let shard = Shard {
                index: first + local,
                peers,
            };
            let (tx, port) = port((peers > 1).then_some(shard));
            *slot = Some(port);
            txs.push(tx);
        }
        // Lines, events and dead letters are counted once in the cluster, by process 0.
        let stats = if l.process == 0 {
            l.stats.clone()
        } else {
            Arc::new(SourceStats::default())
        };
        let router = Router::new(first, peers, txs);
        let ReplayFiles {
            files,
            opts,
            progress,
        } = *self;
        let progress = progress && l.process == 0;
        let thread = std::thread::Builder::new()
            .name("cryptoflow-replay".into())
            .spawn(move || replay_all(files, &opts, &stats, router, progress))?;
        Ok(StartedSource {
            replay: Some(thread),
            ports,
            ..StartedSource::default()
        })
    }
}

/// Raw Binance payloads from Kafka topics, in a consumer group.
pub(crate) struct KafkaTopics {
    kafka: KafkaSourceConfig,
    stop_after: Option<Duration>,
}

impl Source for KafkaTopics {
    fn ledger_name(&self) -> &'static str {
        "kafka"
    }

    fn is_live(&self) -> bool {
        true
    }

    fn start(self: Box<Self>, l: SourceLinks<'_>) -> Result<StartedSource> {
        let mut started = StartedSource {
            ports: l.no_ports(),
            ..StartedSource::default()
        };
        let deadline = l.deadline();
        if l.process == 0 {
            // Not ready until the source has its brokers and its partitions.
            l.stats.set_health(SourceHealth::Starting);
            let (tx, mut port) = port(None);
            let (fed_tx, fed) = mpsc::unbounded_channel();
            port.fed = Some(fed_tx);
            let cap = port.cap.clone();
            started.ports[0] = Some(port);
            started.kafka = Some(l.rt.spawn(cryptoflow_sources::kafka::kafka_source(
                self.kafka,
                tx,
                l.stats.clone(),
                OffsetFeedback {
                    fed,
                    durable: l.durable,
                    cap,
                },
                l.shutdown.subscribe(),
            )));
        }
        stop_on(l.rt, l.shutdown, self.stop_after, deadline);
        Ok(started)
    }
}

/// Live Binance WebSocket streams.
pub(crate) struct LiveStreams {
    ws: WsConfig,
    rest: Option<RestConfig>,
    stop_after: Option<Duration>,
}

impl Source for LiveStreams {
    fn ledger_name(&self) -> &'static str {
        self.ws.venue.as_str()
    }

    fn is_live(&self) -> bool {
        true
    }

    fn streamed(&self) -> Vec<(&'static str, Symbol)> {
        let venue = self.ws.venue.as_str();
        self.ws
            .streams
            .iter()
            .filter_map(|s| parse_stream_name(s))
            .map(|(symbol, _)| (venue, symbol))
            .collect()
    }

    fn compares_trade_count(&self) -> bool {
        !self.ws.streams.iter().any(|s| s.ends_with("@aggTrade"))
    }

    fn pollers_only(&self) -> bool {
        self.ws.streams.is_empty()
    }

    /// The streams of the symbols this process's workers own (streams without a symbol stay on
    /// process 0).
    fn keep_share(&mut self, process: usize, processes: usize, workers: usize) {
        let workers = workers.max(1);
        let peers = processes.max(1) * workers;
        self.ws.streams.retain(|s| match parse_stream_name(s) {
            Some((symbol, _)) => Shard::owner(&symbol, peers) / workers == process,
            None => process == 0,
        });
    }

    fn start(self: Box<Self>, l: SourceLinks<'_>) -> Result<StartedSource> {
        let mut started = StartedSource {
            ports: l.no_ports(),
            ..StartedSource::default()
        };
        let deadline = l.deadline();
        let LiveStreams {
            ws,
            rest,
            stop_after,
        } = *self;
        if ws.streams.is_empty() && l.process == 0 {
            // Pollers only: the first worker's channel stays open until the run stops.
            let (tx, port) = port(None);
            started.ports[0] = Some(port);
            let mut stop = l.shutdown.subscribe();
            l.rt.spawn(async move {
                let _keep = tx;
                let _ = stop.wait_for(|s| *s).await;
            });
        } else if !ws.streams.is_empty() {
            let resume = resume_cursors(l.cfg, l.rt, ws.venue.as_str())?;
            let (tx, port) = port(None);
            let cap = port.cap.clone();
            started.ports[0] = Some(port);
            l.rt.spawn(binance_live(
                ws,
                rest,
                resume,
                tx,
                l.stats.clone(),
                l.shutdown.subscribe(),
                l.cfg.binance.live_limits(),
                cap,
            ));
        }
        stop_on(l.rt, l.shutdown, stop_after, deadline);
        Ok(started)
    }
}

/// The durable cursor of every stream of `venue` in PostgreSQL (when configured): the first live
/// id then shows the hole since, which the REST refill closes.
fn resume_cursors(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    venue: &str,
) -> Result<HashMap<(Symbol, StreamKind), u64>> {
    let mut resume = HashMap::new();
    if cfg.sinks.postgres.url.is_empty() {
        return Ok(resume);
    }
    let window = (cfg.sinks.postgres.pool_size.max(1) * cfg.sinks.max_batch * 2) as u64;
    let points = rt
        .block_on(resume_points(&cfg.sinks.postgres.url, window))
        .map_err(|e| anyhow!(e))?;
    for (v, symbol, kind, last) in points {
        let kind = match kind.as_str() {
            "trade" => StreamKind::Trade,
            "aggTrade" => StreamKind::AggTrade,
            _ => continue,
        };
        // Cursors are per venue: spot and futures BTCUSDT ids are unrelated.
        if v == venue {
            if let Ok(symbol) = symbol.parse::<Symbol>() {
                tracing::info!(%symbol, kind = kind.as_str(), last, "Resuming from the stored cursor.");
                resume.insert((symbol, kind), last);
            }
        }
    }
    Ok(resume)
}
