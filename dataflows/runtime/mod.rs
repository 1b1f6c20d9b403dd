//! The runtime: tokio tasks for sources and sinks, timely workers in between.
//!
//! A run goes build → start → run → drain ([`run`]):
//! - **build**: the sinks of the configuration ([`crate::registry::sinks`]), each in a task
//!   behind a bounded queue ([`acks`]); the data-quality ledger; the pollers.
//! - **start**: this process's parts of the source ([`source::Source`]) and the pollers, each on a
//!   bounded channel to the feeding worker, and the stop conditions ([`stop`]).
//! - **run**: the timely workers ([`bridge`]); the feeding worker stamps each event with the
//!   watermark's tick ([`feed`]); sink operators hand records and frontiers to the sink tasks.
//!   A full queue blocks the worker (and so the source): memory stays bounded, nothing is
//!   dropped. The least ack over every sink of every process ([`acks::ClusterAck`]) releases
//!   Kafka offsets, cursors and poller state.
//! - **drain**: the sinks finish and report their final acks; the pollers and the Kafka source
//!   save or commit what those cover.

pub(crate) mod acks;
pub(crate) mod bridge;
pub mod feed;
mod flow;
pub(crate) mod replay;
pub(crate) mod source;
pub(crate) mod stop;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Event, OutputKind, RestoredContext};
use cryptoflow_sinks::task::CommitObserver;
use cryptoflow_sinks::{Ack, SinkMsg};
use cryptoflow_sources::kafka::Durable;
use cryptoflow_sources::ledger::Ledger;
use cryptoflow_sources::poll::driver::{PollBatch, PollLink, PollMetrics, PollerStatus};
use cryptoflow_sources::replay::ReplaySummary;
use cryptoflow_sources::stats::SourceStats;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::poll::PollerTask;
use crate::registry;
pub use crate::registry::SourceSpec;
use acks::SinkSlot;
use bridge::{Bridge, Graph, SinkPort};
use feed::Feed;
use flow::Flow;
pub use replay::SAMPLE;
use source::{Source, SourceLinks};
pub use stop::stop_signal;

/// How the timely workers are laid out.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Number of processes (1: threads only).
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` per process.
    pub hosts: Vec<String>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Events fed into the dataflow.
    pub events: u64,
    /// Replay summary, for replays.
    pub replay: Option<ReplaySummary>,
    /// Final ack per sink, by name.
    pub acks: Vec<(&'static str, Ack)>,
    /// Undecodable frames.
    pub decode_errors: u64,
    /// Frames of known types that are not processed, per type (sorted by type).
    pub ignored: Vec<(String, u64)>,
    /// Reconnects of live connections.
    pub reconnects: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The data-quality ledger at the end of the run.
    pub quality: Vec<cryptoflow_operators::model::DataQuality>,
    /// Totals of each poller that ran.
    pub polls: Vec<(String, PollerStatus)>,
    /// How the live source kept up (live and Kafka runs).
    pub live: Option<LiveSummary>,
}

/// How the live source kept up with its connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveSummary {
    /// Longest time a WebSocket reader waited to hand a frame on, ms.
    pub reader_stall_max_ms: u64,
    /// Batches queued on disk because the pipeline pushed back.
    pub spilled_batches: u64,
    /// Most batches on disk at once.
    pub spill_peak_batches: u64,
    /// Trades delivered ahead of a hole still being refilled.
    pub trades_ahead_of_refill: u64,
}

/// A replay in which some files could not be replayed completely (damaged, unreadable, nothing
/// decodable, …). Everything read from them before was written by the sinks; the other files
/// were replayed whole.
#[derive(Debug)]
pub struct ReplayFailed {
    /// What the run did.
    pub report: RunReport,
    /// One message per failed file, naming it and what was read from it.
    pub failures: Vec<String>,
}

impl std::fmt::Display for ReplayFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "{n} file{} could not be replayed completely: {}",
            if n == 1 { "" } else { "s" },
            self.failures.join("; ")
        )
    }
}

impl std::error::Error for ReplayFailed {}

/// Runs the trade pipeline from `source` into the configured sinks.
///
/// `observer` sees every batch the primary sink committed (the first configured of PostgreSQL,
/// MySQL, InfluxDB, else a sink that only observes), with the commit instant: benchmarks and
/// tests use it.
pub fn run(
    cfg: &Config,
    source: SourceSpec,
    cluster: &Cluster,
    observer: Option<CommitObserver>,
) -> Result<RunReport> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cryptoflow-io")
        .build()
        .context("tokio runtime")?;

    // Build: the API's board (fed by the primary sink's commits), sinks, the ledger, the pollers.
    let board = cfg.serve.enabled().then(|| {
        crate::serve::board::Board::new(cfg.serve.limits(), cfg.sinks.kafka.topics.clone())
    });
    let observer = match &board {
        Some(b) => Some(b.observer(observer)),
        None => observer,
    };
    let sinks = registry::sinks(cfg, &rt, observer)?;
    // Read before any source or poller starts: nothing live waits on this query.
    let restored = restore_candles(cfg, &rt)?;
    let mut source = source.into_source();
    let live = source.is_live();
    source.keep_share(
        cluster.process,
        cluster.processes.max(1),
        cfg.pipeline.workers.max(1),
    );
    let pollers = if cfg.poll.enabled && live && cluster.process == 0 {
        cfg.poll.pollers(&|k| std::env::var(k).ok())?
    } else {
        Vec::new()
    };
    let ledger = ledger_for(cfg, source.as_ref(), &pollers);
    let stats = source_stats(cfg, ledger.clone())?;
    let snapshots = QualitySnapshots::start(cfg, &rt, &sinks, &ledger);

    // Start: pollers and this process's part of the source.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The cluster's ack: what every sink of every process made durable. The process's first
    // worker publishes it; the Kafka source commits by it and pollers save their state by it.
    let (durable_tx, durable) = watch::channel(Durable::default());
    let sentiment = cfg.sentiment_model()?;
    let pollers_only = source.pollers_only();
    let compare_trade_count = source.compares_trade_count();
    let source_name = source.ledger_name();
    let (polled, mut polling) = start_pollers(
        cfg,
        &rt,
        pollers,
        durable.clone(),
        shutdown_rx,
        &ledger,
        sentiment.name(),
    )?;
    let server = match board {
        Some(board) => {
            let status = Arc::new(crate::serve::Status::new(
                stats.clone(),
                ledger.clone(),
                polling.metrics.clone(),
                shutdown_tx.subscribe(),
            ));
            let store = crate::serve::store::Store::Board(board.clone());
            let server = crate::serve::start(&cfg.serve, &rt, store, board, status.clone())?;
            crate::notice::info(format!("serving on http://{}", server.addr));
            Some(status)
        }
        None => None,
    };
    let mut src = source.start(SourceLinks {
        cfg,
        rt: &rt,
        stats: stats.clone(),
        shutdown: shutdown_tx.clone(),
        durable,
        process: cluster.process,
        processes: cluster.processes.max(1),
    })?;
    if pollers_only && cfg.poll.max_polls.is_some() {
        // `--poll-once` without market data: the run ends when every poller is done.
        polling.stop_when_done(&rt, shutdown_tx.clone());
    }

    // Run the timely workers until the source ends (or a live run stops).
    let flow = Arc::new(Flow::new(ledger.clone(), source_name));
    let ports = std::mem::take(&mut src.ports);
    let bridge = Bridge {
        reports_releases: ports.iter().all(Option::is_none),
        feeds: Mutex::new(ports),
        polled: Mutex::new(Some(polled)),
        sinks: sinks
            .iter()
            .map(|s| SinkPort {
                tx: s.tx.clone(),
                accepts: s.accepts,
            })
            .collect(),
        flow,
        graph: Graph {
            analytics: cfg.analytics(),
            candles: cfg.candles(),
            sentiment,
            compare_trade_count,
            strategies: cfg.trading.strategies.clone(),
            restored: Arc::new(restored),
        },
        feed: Feed::new(
            cfg.pipeline.tick_ms,
            cfg.pipeline.allowed_lateness_ms,
            cfg.pipeline.idle_watermark_ms,
            cfg.pipeline.max_in_flight.max(1),
            live,
        ),
        stop: shutdown_tx.clone(),
        live,
        workers: cfg.pipeline.workers,
        acks: sinks.iter().map(|s| s.ack.clone()).collect(),
        durable: durable_tx,
    };
    let executed = bridge::execute(bridge, cluster)?;
    let events = executed.events;
    shutdown_tx.send_replace(true);

    // Drain.
    // A file that could not be replayed completely fails the run, but only once the sinks have
    // written (and acknowledged) everything read before.
    let replay = src
        .replay
        .take()
        .map(|h| h.join().map_err(|_| anyhow!("replay thread panicked")));
    // The workers published the cluster's last ack before they returned: the pollers save their
    // state (or give up, after a failed sink) now, and their counts go into the last snapshot.
    let poll_failure = polling.finish(&rt, None);
    let quality = snapshots.finish(&rt, &ledger);
    let (acks, mut failure) = drain_sinks(&rt, sinks);
    failure = failure
        .or_else(|| peer_failure(&executed.failed, cluster.process))
        .or(poll_failure);
    if let Some(task) = src.kafka.take() {
        // The source commits its last released offsets once every sink has completed.
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await }) {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failure = failure.or(Some(anyhow!(e))),
            Ok(Err(e)) => failure = failure.or(Some(anyhow!("Kafka source task failed: {e}"))),
            Err(_) => tracing::warn!("The Kafka source did not finish its last offset commit in 30 s; those messages will be read again."),
        }
    }
    stats.flush();
    if let Some(status) = server.filter(|_| cfg.serve.keep_serving && !live && failure.is_none()) {
        status.finish();
        crate::notice::info("the replay is done; still serving until Ctrl-C or SIGTERM");
        rt.block_on(stop::stop_signal());
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    if let Some(e) = failure {
        return Err(e);
    }
    let replay = replay.transpose()?;
    let report = RunReport {
        events,
        replay: replay.as_ref().map(|r| r.total),
        acks,
        decode_errors: SourceStats::get(&stats.decode_errors),
        ignored: ledger.ignored_by_type(),
        reconnects: SourceStats::get(&stats.reconnects),
        elapsed: started.elapsed(),
        quality,
        polls: polling.status,
        live: live.then(|| LiveSummary {
            reader_stall_max_ms: SourceStats::get(&stats.reader_stall_max_ms),
            spilled_batches: SourceStats::get(&stats.spilled_batches),
            spill_peak_batches: SourceStats::get(&stats.spill_peak_batches),
            trades_ahead_of_refill: SourceStats::get(&stats.trades_ahead_of_refill),
        }),
    };
    match replay {
        Some(r) if !r.failures.is_empty() => Err(anyhow!(ReplayFailed {
            report,
            failures: r.failures,
        })),
        _ => Ok(report),
    }
}

/// The stored final candles that warm the indicators and strategies (`pipeline.restore_candles`
/// per (symbol, interval), with a PostgreSQL sink).
fn restore_candles(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
) -> Result<cryptoflow_operators::dataflow::RestoredCandles> {
    let n = cfg.pipeline.restore_candles;
    if n == 0 || cfg.sinks.postgres.url.is_empty() {
        return Ok(Default::default());
    }
    let candles = rt
        .block_on(cryptoflow_sinks::postgres::restore_candles(
            &cfg.sinks.postgres.url,
            &cfg.pipeline.candle_intervals,
            n,
        ))
        .map_err(|e| anyhow!(e))?;
    let restored = cryptoflow_operators::dataflow::RestoredCandles::new(candles);
    if !restored.is_empty() {
        tracing::info!(
            candles = restored.len(),
            "Restored stored final candles to warm the indicators and strategies."
        );
    }
    Ok(restored)
}

/// The error of a run in which another process of the cluster reported a failed sink (this
/// process's own sink errors come first, from the drain).
fn peer_failure(failed: &[usize], process: usize) -> Option<anyhow::Error> {
    let others: Vec<String> = failed
        .iter()
        .filter(|p| **p != process)
        .map(|p| p.to_string())
        .collect();
    (!others.is_empty()).then(|| {
        anyhow!(
            "a sink of process {} failed (its log says which and why); the cluster stopped, and \
             Kafka offsets and poller state were saved only up to what every process had stored",
            others.join(", ")
        )
    })
}

/// The data-quality ledger of a run: the live streams' symbols registered, with the stale times
/// of the configuration and of each poller.
fn ledger_for(cfg: &Config, source: &dyn Source, pollers: &[PollerTask]) -> Arc<Ledger> {
    let mut stale = cfg.binance.stale_after_ms_per_symbol.clone();
    for p in pollers {
        stale.insert(p.ledger_symbol.clone(), p.stale_after_ms);
    }
    let ledger = Arc::new(
        Ledger::new(cfg.binance.stale_after_ms, cryptoflow_sources::now_ms())
            .with_stale_overrides(stale),
    );
    for (venue, symbol) in source.streamed() {
        ledger.register(venue, symbol.as_str());
    }
    ledger
}

/// The sources' counters, writing dead letters to `sinks.dead_letters` when set.
fn source_stats(cfg: &Config, ledger: Arc<Ledger>) -> Result<Arc<SourceStats>> {
    let stats = SourceStats::with_ledger(ledger);
    Ok(Arc::new(match cfg.sinks.dead_letters.as_str() {
        "" => stats,
        path => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create dead-letter file {path}"))?;
            stats.with_dead_letters(Box::new(std::io::BufWriter::new(f)))
        }
    }))
}

/// Periodic snapshots of the ledger into the sinks that store them, and a last one when the run
/// ends.
struct QualitySnapshots {
    txs: Vec<mpsc::Sender<SinkMsg>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl QualitySnapshots {
    fn start(
        cfg: &Config,
        rt: &tokio::runtime::Runtime,
        sinks: &[SinkSlot],
        ledger: &Arc<Ledger>,
    ) -> Self {
        let txs: Vec<mpsc::Sender<SinkMsg>> = sinks
            .iter()
            .filter(|s| s.accepts.contains(OutputKind::Quality))
            .map(|s| s.tx.clone())
            .collect();
        let task = (!txs.is_empty()).then(|| {
            let txs = txs.clone();
            let ledger = ledger.clone();
            let every = Duration::from_millis(cfg.pipeline.quality_snapshot_ms.max(100));
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if !send_quality(&txs, &ledger).await {
                        return;
                    }
                }
            })
        });
        QualitySnapshots { txs, task }
    }

    /// Stops the periodic snapshots and sends the last one; returns it.
    fn finish(
        self,
        rt: &tokio::runtime::Runtime,
        ledger: &Ledger,
    ) -> Vec<cryptoflow_operators::model::DataQuality> {
        if let Some(task) = self.task {
            task.abort();
        }
        let quality = ledger.snapshot(cryptoflow_sources::now_ms());
        for tx in self.txs {
            let records = quality.iter().cloned().map(Output::Quality).collect();
            let _ = rt.block_on(tx.send(SinkMsg::Data {
                worker: 0,
                time: 0,
                records,
            }));
        }
        quality
    }
}

/// Sends a snapshot of `ledger` to every sink of `txs`; false once one is gone.
async fn send_quality(txs: &[mpsc::Sender<SinkMsg>], ledger: &Ledger) -> bool {
    let records: Vec<Output> = ledger
        .snapshot(cryptoflow_sources::now_ms())
        .into_iter()
        .map(Output::Quality)
        .collect();
    for tx in txs {
        let msg = SinkMsg::Data {
            worker: 0,
            time: 0,
            records: records.clone(),
        };
        if tx.send(msg).await.is_err() {
            return false;
        }
    }
    true
}

/// The running pollers and their channel to the feeding worker.
struct Polling {
    tasks: Vec<tokio::task::JoinHandle<Result<()>>>,
    metrics: Arc<PollMetrics>,
    status: Vec<(String, PollerStatus)>,
}

/// Starts `pollers`, which save their state once `durable` (the cluster's ack) covers their
/// items. With `poll.restore_context`, the context stored in
/// PostgreSQL goes first on their channel, so the feeding worker takes it before any poll.
fn start_pollers(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    pollers: Vec<PollerTask>,
    durable: watch::Receiver<Durable>,
    shutdown: watch::Receiver<bool>,
    ledger: &Arc<Ledger>,
    model_name: &str,
) -> Result<(mpsc::Receiver<PollBatch>, Polling)> {
    let (tx, rx) = mpsc::channel::<PollBatch>(16);
    let metrics = Arc::new(PollMetrics::default());
    let mut tasks = Vec::new();
    if pollers.is_empty() {
        return Ok((
            rx,
            Polling {
                tasks,
                metrics,
                status: Vec::new(),
            },
        ));
    }
    if cfg.poll.restore_context && !cfg.sinks.postgres.url.is_empty() {
        let retain = cryptoflow_operators::sentiment::windows::RETAIN_MS + 3_600_000;
        let items = rt
            .block_on(cryptoflow_sinks::postgres::restore_context(
                &cfg.sinks.postgres.url,
                model_name,
                retain,
            ))
            .map_err(|e| anyhow!(e))?;
        tracing::info!(
            items = items.len(),
            "Restored stored context (sentiment, macro, market)."
        );
        if !items.is_empty() {
            let events = items
                .into_iter()
                .map(|c| Event::Context(RestoredContext(Box::new(c))))
                .collect();
            let (fed, _) = tokio::sync::oneshot::channel();
            tx.try_send(PollBatch { events, fed })
                .map_err(|_| anyhow!("cannot queue the restored context"))?;
        }
    }
    let _guard = rt.enter();
    for p in pollers {
        tracing::info!(poller = p.name, "Starting poller.");
        tasks.push(p.spawn(PollLink {
            tx: tx.clone(),
            durable: durable.clone(),
            shutdown: shutdown.clone(),
            ledger: ledger.clone(),
            metrics: metrics.clone(),
        }));
    }
    Ok((
        rx,
        Polling {
            tasks,
            metrics,
            status: Vec::new(),
        },
    ))
}

impl Polling {
    /// Stops the run once every poller is done (`--poll-once` without market data).
    fn stop_when_done(&self, rt: &tokio::runtime::Runtime, stop: watch::Sender<bool>) {
        if self.tasks.is_empty() {
            return;
        }
        let handles: Vec<tokio::task::AbortHandle> =
            self.tasks.iter().map(|t| t.abort_handle()).collect();
        rt.spawn(async move {
            while !handles.iter().all(|h| h.is_finished()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop.send_replace(true);
        });
    }

    /// Waits for every poller to save its state (the cluster's ack is complete now, or frozen by
    /// a failed sink), keeping the first failure; fills in the pollers' totals.
    fn finish(
        &mut self,
        rt: &tokio::runtime::Runtime,
        mut failure: Option<anyhow::Error>,
    ) -> Option<anyhow::Error> {
        for task in self.tasks.drain(..) {
            match rt.block_on(async { tokio::time::timeout(Duration::from_secs(70), task).await }) {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failure = failure.or(Some(e)),
                Ok(Err(e)) => failure = failure.or(Some(anyhow!("poller task failed: {e}"))),
                Err(_) => tracing::warn!(
                    "A poller did not finish in 70 s; its last items will be emitted again."
                ),
            }
        }
        self.status = ["coingecko", "rss", "reddit", "fred", "myinvestor"]
            .iter()
            .map(|n| (n.to_string(), self.metrics.status(n)))
            .filter(|(_, s)| s.polls > 0)
            .collect();
        failure
    }
}

/// Closes every sink's queue and waits for its task: the final acks by sink name, and the last
/// failure.
fn drain_sinks(
    rt: &tokio::runtime::Runtime,
    sinks: Vec<SinkSlot>,
) -> (Vec<(&'static str, Ack)>, Option<anyhow::Error>) {
    let mut acks = Vec::new();
    let mut failure = None;
    for s in sinks {
        drop(s.tx);
        match rt.block_on(s.task) {
            Ok(Ok(ack)) => acks.push((s.name, ack)),
            Ok(Err(e)) => failure = Some(anyhow!(e)),
            Err(e) => failure = Some(anyhow!("sink task {} failed: {e}", s.name)),
        }
    }
    (acks, failure)
}
