//! The one list of the pipeline's parts: every sink and source the configuration can turn on.
//!
//! - A new **sink** is a file in `sinks/src/` (its configuration section, a [`SinkSpec`] for it
//!   and the [`cryptoflow_sinks::Sink`]) plus one line in [`sinks`] and a field in
//!   [`crate::config::SinksConfig`].
//! - A new **source** is a variant of [`SourceSpec`] and an arm in [`start_source`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Shard, StreamKind, Symbol};
use cryptoflow_sinks::console::ConsoleSink;
use cryptoflow_sinks::jsonl::JsonlSink;
use cryptoflow_sinks::postgres::resume_points;
use cryptoflow_sinks::task::{CommitObserver, SinkSpec};
use cryptoflow_sinks::{Sink, SinkError};
use cryptoflow_sources::kafka::{Durable, OffsetFeedback, WatermarkCap};
use cryptoflow_sources::replay::ReplayOptions;
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::stats::{SourceHealth, SourceStats};
use cryptoflow_sources::ws::{binance_live, WsConfig};
use cryptoflow_sources::EventBatch;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::runtime::acks::{spawn_sink, SinkSlot};
use crate::runtime::bridge::FeedPort;
use crate::runtime::replay::{replay_all, ReplayOutcome, Router};
use crate::runtime::stop::stop_on;

/// Where events come from.
pub enum SourceSpec {
    /// Replay of files (in order), or of the bundled sample when `files` is empty.
    Replay {
        /// Files to replay.
        files: Vec<PathBuf>,
        /// Options.
        opts: ReplayOptions,
        /// Show a progress bar on stderr.
        progress: bool,
    },
    /// Raw Binance payloads from Kafka topics (consumer group) until Ctrl-C (or `stop_after`).
    Kafka {
        /// Consumer settings.
        kafka: cryptoflow_sources::kafka::KafkaSourceConfig,
        /// Stop after this long (tests, demos).
        stop_after: Option<Duration>,
    },
    /// Live Binance WebSocket streams until Ctrl-C (or `stop_after`).
    Live {
        /// Connection settings.
        ws: WsConfig,
        /// REST refill of id gaps (`None`: gaps are only recorded).
        rest: Option<RestConfig>,
        /// Stop after this long (tests, demos).
        stop_after: Option<Duration>,
    },
}

/// Builds every configured sink and starts its task, in this order. The first one is the
/// primary sink: it releases the in-flight bound, and the stores among the first ones hand their
/// commits to `observer` (a sink that only observes takes it when no store is configured).
pub(crate) fn sinks(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    observer: Option<CommitObserver>,
) -> Result<Vec<SinkSlot>> {
    let mut set = SinkSet {
        cfg,
        rt,
        observer,
        slots: Vec::new(),
    };
    set.add(&cfg.sinks.postgres)?;
    set.add(&cfg.sinks.mysql)?;
    set.add(&cfg.sinks.influx)?;
    set.add(&cfg.sinks.kafka)?;
    set.add(&cfg.sinks.redis)?;
    set.add(&ObserverOnly(set.observer.is_some()))?;
    set.add(&JsonlFile(&cfg.sinks.jsonl))?;
    set.add(&Console(cfg.sinks.console))?;
    if set.slots.is_empty() {
        bail!("no sink is configured: enable sinks.console, sinks.jsonl, sinks.postgres, sinks.mysql, sinks.influx, sinks.kafka or sinks.redis");
    }
    Ok(set.slots)
}

/// Sinks being built.
struct SinkSet<'a> {
    cfg: &'a Config,
    rt: &'a tokio::runtime::Runtime,
    observer: Option<CommitObserver>,
    slots: Vec<SinkSlot>,
}

impl SinkSet<'_> {
    /// Builds the sink of `spec`, when it is on, and starts its task.
    fn add<S: SinkSpec>(&mut self, spec: &S) -> Result<()> {
        if !spec.enabled() {
            return Ok(());
        }
        let env = |k: &str| std::env::var(k).ok();
        let sink = self.rt.block_on(spec.build(&env)).map_err(|e| anyhow!(e))?;
        let observer = if spec.observes_commits() {
            self.observer.take()
        } else {
            None
        };
        self.slots.push(spawn_sink(
            self.rt,
            sink,
            self.cfg.pipeline.workers,
            self.cfg,
            observer,
            spec.parallelism(),
        ));
        Ok(())
    }
}

/// `sinks.jsonl`: a path ("" = off).
struct JsonlFile<'a>(&'a str);

impl SinkSpec for JsonlFile<'_> {
    type Sink = JsonlSink;
    fn enabled(&self) -> bool {
        !self.0.is_empty()
    }
    fn observes_commits(&self) -> bool {
        false
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<JsonlSink, SinkError> {
        JsonlSink::create(Path::new(self.0))
    }
}

/// `sinks.console`: on or off.
struct Console(bool);

impl SinkSpec for Console {
    type Sink = ConsoleSink;
    fn enabled(&self) -> bool {
        self.0
    }
    fn observes_commits(&self) -> bool {
        false
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ConsoleSink, SinkError> {
        Ok(ConsoleSink::default())
    }
}

/// A sink that only hands batches to an observer (benchmarks and tests without a store).
struct ObserverOnly(bool);

/// The sink of [`ObserverOnly`].
struct ObserverSink;

impl Sink for ObserverSink {
    fn name(&self) -> &'static str {
        "observer"
    }
    async fn write(&mut self, _records: &[Output]) -> Result<(), SinkError> {
        Ok(())
    }
}

impl SinkSpec for ObserverOnly {
    type Sink = ObserverSink;
    fn enabled(&self) -> bool {
        self.0
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ObserverSink, SinkError> {
        Ok(ObserverSink)
    }
}

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

/// Starts this process's part of `source`:
/// - a **replay** is read once by every process and split among its workers ([`Router`]): each
///   feeds the events of the symbols it owns (the others only move its watermark, so every
///   event goes in at the time a single worker would give it);
/// - the **live** streams are those of the symbols this process's workers own (see
///   [`SourceSpec::for_process`]), fed by its first worker; process 0 also feeds the pollers;
/// - **Kafka** is consumed on process 0's first worker (the partitions are not yet split across
///   processes).
pub(crate) fn start_source(source: SourceSpec, l: SourceLinks<'_>) -> Result<StartedSource> {
    let deadline = Duration::from_secs(l.cfg.pipeline.shutdown_deadline_s);
    let workers = l.cfg.pipeline.workers.max(1);
    let mut started = StartedSource {
        ports: (0..workers).map(|_| None).collect(),
        ..StartedSource::default()
    };
    match source {
        SourceSpec::Replay {
            files,
            opts,
            progress,
        } => {
            // Every process reads the files once and splits the events among its workers.
            let peers = workers * l.processes.max(1);
            let first = l.process * workers;
            let mut txs = Vec::with_capacity(workers);
            for (local, slot) in started.ports.iter_mut().enumerate() {
                let (tx, port) = port(Some(Shard {
                    index: first + local,
                    peers,
                }));
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
            let progress = progress && l.process == 0;
            started.replay = Some(
                std::thread::Builder::new()
                    .name("cryptoflow-replay".into())
                    .spawn(move || replay_all(files, &opts, &stats, router, progress))?,
            );
        }
        SourceSpec::Kafka { kafka, stop_after } => {
            if l.process == 0 {
                // Not ready until the source has its brokers and its partitions.
                l.stats.set_health(SourceHealth::Starting);
                let (tx, mut port) = port(None);
                let (fed_tx, fed) = mpsc::unbounded_channel();
                port.fed = Some(fed_tx);
                let cap = port.cap.clone();
                started.ports[0] = Some(port);
                started.kafka = Some(l.rt.spawn(cryptoflow_sources::kafka::kafka_source(
                    kafka,
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
            stop_on(l.rt, l.shutdown, stop_after, deadline);
        }
        SourceSpec::Live {
            ws,
            rest,
            stop_after,
        } => {
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
        }
    }
    Ok(started)
}

impl SourceSpec {
    /// This process's share of the source: the live streams of the symbols its workers own
    /// (streams without a symbol stay on process 0). Replays and Kafka are split when started.
    pub(crate) fn for_process(mut self, process: usize, processes: usize, workers: usize) -> Self {
        if let SourceSpec::Live { ws, .. } = &mut self {
            let peers = processes.max(1) * workers.max(1);
            ws.streams
                .retain(|s| match cryptoflow_sources::ws::parse_stream_name(s) {
                    Some((symbol, _)) => Shard::owner(&symbol, peers) / workers.max(1) == process,
                    None => process == 0,
                });
        }
        self
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
