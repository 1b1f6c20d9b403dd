//! The bridge between tokio and timely: the feeding worker takes event batches from the source
//! channel and polled batches from the pollers' channel into the dataflow input (with the times
//! [`Feed`] gives them), and a sink operator per sink hands each worker's records and frontier to
//! that sink's task. A full sink queue blocks the worker, which stops taking batches: memory
//! stays bounded and nothing is dropped.
//!
//! Beside the pipeline, every worker runs the small ack dataflow of [`ClusterAck`]: it holds its
//! input at its process's durable time until that process's sinks are complete, so the feeding
//! worker learns (and publishes) what is durable in every process of a cluster, and the trades
//! other processes' sinks took, which the in-flight bound counts cluster-wide.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use cryptoflow_operators::dataflow::{AnalyticsConfig, CandleConfig};
use cryptoflow_operators::model::{Event, Output, OutputKinds, QualityFact, Shard};
use cryptoflow_operators::sentiment::SentimentModel;
use cryptoflow_sinks::{Ack, SinkMsg};
use cryptoflow_sources::kafka::{Durable, WatermarkCap};
use cryptoflow_sources::poll::driver::PollBatch;
use cryptoflow_sources::EventBatch;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::Operator;
use timely::dataflow::{InputHandleVec, StreamVec};
use timely::worker::Worker;
use tokio::sync::{mpsc, watch};

use super::acks::{ClusterAck, Local};
use super::feed::Feed;
use super::flow::Flow;
use super::Cluster;
use crate::pipeline::trade_pipeline;

/// The dataflow graph's settings.
#[derive(Clone)]
pub(crate) struct Graph {
    /// Moving averages and whales.
    pub analytics: AnalyticsConfig,
    /// Event-time candles.
    pub candles: CandleConfig,
    /// How news items and posts are scored.
    pub sentiment: Arc<dyn SentimentModel>,
    /// Compare exchange klines' trade counts with the candles' (not for aggregate trades).
    pub compare_trade_count: bool,
    /// The strategies whose signals the pipeline computes (`[[trading.strategies]]`).
    pub strategies: Vec<cryptoflow_operators::trading::signals::StrategyConfig>,
    /// Stored final candles that warm the indicators and strategies.
    pub restored: Arc<cryptoflow_operators::dataflow::RestoredCandles>,
}

/// What one worker feeds into the dataflow: its part of the source.
pub(crate) struct FeedPort {
    /// The source's event batches.
    pub events: mpsc::Receiver<EventBatch>,
    /// The source's bound on event time.
    pub cap: WatermarkCap,
    /// Told the input time after each batch (the Kafka source releases offsets by it).
    pub fed: Option<mpsc::UnboundedSender<u64>>,
    /// The symbols this worker feeds, when its batches hold other workers' events too (see
    /// [`Feed::with_shard`]).
    pub shard: Option<Shard>,
}

/// Everything the timely workers share with the tokio side.
pub(crate) struct Bridge {
    /// The part of the source each worker of this process feeds, by its index in the process
    /// (taken by that worker; a worker without one feeds nothing).
    pub feeds: Mutex<Vec<Option<FeedPort>>>,
    /// Batches of the pollers (taken by the cluster's first worker, which has a feed then).
    pub polled: Mutex<Option<mpsc::Receiver<PollBatch>>>,
    /// One queue per sink task.
    pub sinks: Vec<SinkPort>,
    /// The in-flight bound and the ledger.
    pub flow: Arc<Flow>,
    /// The graph.
    pub graph: Graph,
    /// The watermark rules (copied into each feeding worker).
    pub feed: Feed,
    /// Set when a live run should stop: by a signal or the timer here, or by a worker told by
    /// another process (the ack dataflow carries the stop to every process).
    pub stop: watch::Sender<bool>,
    /// A live source (runs until stopped; idle periods move the watermark).
    pub live: bool,
    /// Workers per process.
    pub workers: usize,
    /// This process feeds none of the market source (a Kafka consumer runs on another
    /// process): it reports the trades its first sink took, which the feeding process counts
    /// against its in-flight bound.
    pub reports_releases: bool,
    /// The acks of this process's sinks.
    pub acks: Vec<watch::Receiver<Ack>>,
    /// Where this process's first worker publishes the cluster's ack (the least over every sink
    /// of every process): the Kafka source and the pollers release by it.
    pub durable: watch::Sender<Durable>,
}

/// The timely configuration of `workers` threads per process in `cluster`.
pub(crate) fn timely_config(workers: usize, cluster: &Cluster) -> Result<timely::Config> {
    let communication = if cluster.processes > 1 {
        if cluster.hosts.len() != cluster.processes {
            bail!(
                "--processes {} needs a hostfile with {} lines of host:port, got {}",
                cluster.processes,
                cluster.processes,
                cluster.hosts.len()
            );
        }
        if cluster.process >= cluster.processes {
            bail!(
                "--process {} must be below --processes {}",
                cluster.process,
                cluster.processes
            );
        }
        timely::CommunicationConfig::Cluster {
            threads: workers,
            process: cluster.process,
            addresses: cluster.hosts.clone(),
            report: false,
            zerocopy: false,
        }
    } else if workers == 1 {
        timely::CommunicationConfig::Thread
    } else {
        timely::CommunicationConfig::Process(workers)
    };
    Ok(timely::Config {
        communication,
        worker: timely::WorkerConfig::default(),
    })
}

/// What the timely workers of this process did.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    /// Events fed (by the feeding worker, on process 0).
    pub events: u64,
    /// Processes of the cluster that reported a failed sink.
    pub failed: Vec<usize>,
}

/// How long a worker that waits for its sinks parks between looks at their acks.
const PARK: Duration = Duration::from_millis(10);

/// Runs the timely workers of this process until the source ends (or a live run stops), the
/// dataflow has handed everything to the sinks and every process's sinks are complete.
pub(crate) fn execute(bridge: Bridge, cluster: &Cluster) -> Result<Executed> {
    let bridge = Arc::new(bridge);
    let process = cluster.process;
    let guards = timely::execute(timely_config(bridge.workers, cluster)?, move |worker| {
        let b = &bridge;
        let index = worker.index();
        // Sink tasks are per process: they count this process's workers from zero.
        let local = index - process * b.workers;
        let mut input = InputHandleVec::<u64, (Event, u64)>::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let events = scope.input_from(&mut input);
            let out = trade_pipeline(
                events,
                &b.graph.analytics,
                &b.graph.candles,
                b.graph.sentiment.clone(),
                b.graph.compare_trade_count,
                &b.graph.strategies,
                b.graph.restored.clone(),
            );
            attach_quality(out.quality, b.flow.clone());
            attach_sinks(out.records, local, b.sinks.clone(), b.flow.clone());
        });
        let mut ack = ClusterAck::new(worker, b.acks.clone(), process);
        let port = b
            .feeds
            .lock()
            .ok()
            .and_then(|mut g| g.get_mut(local).and_then(Option::take));
        let events = match port {
            Some(port) => feed(worker, b, input, port, &mut ack, index == 0, local == 0),
            None => {
                drop(input);
                0
            }
        };
        finish(worker, b, &mut ack, local == 0);
        Executed {
            events,
            failed: ack.failed_processes(),
        }
    })
    .map_err(|e| anyhow!("cannot start timely workers: {e}"))?;
    let mut out = Executed::default();
    for r in guards.join() {
        let w = r.map_err(|e| anyhow!("a timely worker failed: {e}"))?;
        out.events += w.events;
        out.failed.extend(w.failed);
    }
    out.failed.sort_unstable();
    out.failed.dedup();
    Ok(out)
}

/// A feeding worker: takes the event batches of its part of the source (and, on the cluster's
/// first worker, the pollers' batches) into `input` until the source ends, a live run stops
/// anywhere in the cluster, or a sink fails anywhere in it. The process's first worker
/// (`publish`) publishes the cluster's ack as it moves. Returns the events fed.
fn feed(
    worker: &mut Worker,
    b: &Bridge,
    mut input: InputHandleVec<u64, (Event, u64)>,
    port: FeedPort,
    ack: &mut ClusterAck,
    takes_polled: bool,
    publish: bool,
) -> u64 {
    let FeedPort {
        events: mut rx,
        cap,
        fed,
        shard,
    } = port;
    let mut polled_rx = takes_polled
        .then(|| b.polled.lock().ok().and_then(|mut g| g.take()))
        .flatten();
    let mut feed = b.feed.clone();
    if let Some(shard) = shard {
        feed = feed.with_shard(shard);
    }
    loop {
        let sink_failed = b.flow.sink_failed.load(Ordering::SeqCst);
        // A feeding process's own releases are in its shared count.
        ack.tick(Instant::now(), None, sink_failed);
        if publish {
            ack.publish(&b.durable);
        }
        // Trades the first sink of a process that does not feed took leave the in-flight count.
        feed.released_elsewhere(ack.take_released());
        if sink_failed || ack.failed() {
            break;
        }
        if b.live && stop_requested(b, ack) {
            break;
        }
        if feed.held_back(b.flow.in_flight.load(Ordering::SeqCst), Instant::now()) {
            worker.step_or_park(Some(Duration::from_millis(1)));
            continue;
        }
        if let Some(prx) = &mut polled_rx {
            match prx.try_recv() {
                Ok(PollBatch { events, fed: reply }) => {
                    // Polled items do not move the market watermark: they go in at the
                    // current time.
                    feed.count_unstamped(events.len());
                    for ev in events {
                        input.send((ev, *input.time()));
                    }
                    input.flush();
                    let _ = reply.send(*input.time());
                    worker.step();
                }
                Err(mpsc::error::TryRecvError::Disconnected) => polled_rx = None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
        }
        match rx.try_recv() {
            Ok(batch) => {
                let at = *input.time();
                let stamped =
                    feed.stamp_capped(batch, at, &cap, Instant::now(), |ev, t| input.send((ev, t)));
                if stamped.advance_to > *input.time() {
                    input.advance_to(stamped.advance_to);
                } else {
                    // Hand the batch on now; waiting for the next tick would add latency.
                    input.flush();
                }
                b.flow.in_flight.fetch_add(stamped.trades, Ordering::SeqCst);
                if let Some(tx) = &fed {
                    // Every record of this batch has a time at or before the input's.
                    let _ = tx.send(*input.time());
                }
                worker.step();
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                let wall = cryptoflow_sources::now_ms();
                if let Some(adv) =
                    feed.idle_advance(Instant::now(), wall, cap.latest(), *input.time())
                {
                    if adv.first {
                        tracing::info!(
                            from_tick = *input.time(),
                            to_tick = adv.to,
                            "No events: the wall clock moves the watermark."
                        );
                    }
                    input.advance_to(adv.to);
                }
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    // Batches still queued are dropped unfed: their pollers do not save them as emitted.
    drop(polled_rx);
    drop(input);
    feed.fed()
}

/// A live run's stop: told here (a signal, the timer), it goes to every worker of the cluster;
/// told by another process, it stops this process's sources too. True once either happened.
fn stop_requested(b: &Bridge, ack: &mut ClusterAck) -> bool {
    if *b.stop.borrow() {
        ack.request_stop();
        return true;
    }
    if ack.stop_requested() {
        b.stop.send_replace(true);
        return true;
    }
    false
}

/// The end of a worker's run: holds its ack input until this process's sinks are complete (the
/// worker keeps stepping, so the last records and frontiers reach them), or until one failed
/// (reported to every worker first); then steps until every dataflow is done. The process's
/// first worker (`publish`) keeps publishing the cluster's ack, the last time as complete.
fn finish(worker: &mut Worker, b: &Bridge, ack: &mut ClusterAck, publish: bool) {
    // A process that does not feed reports the trades its first sink took.
    let released = b.reports_releases.then_some(&b.flow.in_flight);
    loop {
        let local = ack.tick(
            Instant::now(),
            released,
            b.flow.sink_failed.load(Ordering::SeqCst),
        );
        if publish {
            ack.publish(&b.durable);
        }
        if b.live {
            // A stop told to a process without a feed still reaches the feeding ones.
            stop_requested(b, ack);
        }
        if matches!(local, Local::Complete | Local::Failed) {
            break;
        }
        worker.step_or_park(Some(PARK));
    }
    ack.close(released);
    while worker.step_or_park(Some(PARK)) {
        if publish {
            ack.publish(&b.durable);
        }
    }
    if publish {
        ack.publish(&b.durable);
    }
}

/// A sink task's queue, and the kinds of output it takes.
#[derive(Clone)]
pub(crate) struct SinkPort {
    /// The queue.
    pub tx: mpsc::Sender<SinkMsg>,
    /// What to hand it.
    pub accepts: OutputKinds,
}

/// Hands this worker's records, each to the sinks that accept its kind, and its frontier
/// progress to every sink task. Blocks the worker while a sink's queue is full (backpressure).
/// Releases the in-flight bound for the trades handed on.
pub(crate) fn attach_sinks(
    records: StreamVec<'_, u64, Output>,
    worker: usize,
    ports: Vec<SinkPort>,
    flow: Arc<Flow>,
) {
    let mut last: Option<Option<u64>> = None;
    records.sink(Pipeline, "Sinks", move |(input, frontier)| {
        input.for_each_stamp(|cap, data| {
            let Some(&time) = cap.least() else { return };
            let mut records: Vec<Output> = Vec::new();
            for batch in data {
                if records.is_empty() {
                    std::mem::swap(&mut records, batch);
                } else {
                    records.append(batch);
                }
            }
            let trades = account(&records);
            let n = ports.len();
            for (i, port) in ports.iter().enumerate() {
                // The last sink takes the batch itself; the others a copy of what they accept.
                let batch = if i + 1 == n {
                    let mut own = std::mem::take(&mut records);
                    if !port.accepts.is_all() {
                        own.retain(|r| port.accepts.contains(r.kind()));
                    }
                    own
                } else if port.accepts.is_all() {
                    records.clone()
                } else {
                    records
                        .iter()
                        .filter(|r| port.accepts.contains(r.kind()))
                        .cloned()
                        .collect()
                };
                if batch.is_empty() {
                    continue;
                }
                let msg = SinkMsg::Data {
                    worker,
                    time,
                    records: batch,
                };
                if port.tx.blocking_send(msg).is_err() {
                    flow.sink_failed.store(true, Ordering::SeqCst);
                }
            }
            if trades > 0 {
                flow.in_flight.fetch_sub(trades, Ordering::SeqCst);
            }
        });
        let f = frontier.frontier().iter().next().copied();
        if last != Some(f) {
            last = Some(f);
            for port in &ports {
                let msg = SinkMsg::Progress {
                    worker,
                    frontier: f,
                };
                if port.tx.blocking_send(msg).is_err() {
                    flow.sink_failed.store(true, Ordering::SeqCst);
                }
            }
        }
    });
}

/// The trades of `records`: they leave the in-flight bound once handed on.
fn account(records: &[Output]) -> i64 {
    records
        .iter()
        .filter(|r| matches!(r, Output::Trade(_)))
        .count() as i64
}

/// Counts this worker's data-quality facts in the ledger (repeated trades, late trades, kline
/// mismatches, under the flow's source) and logs each mismatch. A repeated trade also leaves the
/// in-flight bound, like a trade handed to the sinks: it was fed, and nothing else releases it.
pub(crate) fn attach_quality(quality: StreamVec<'_, u64, QualityFact>, flow: Arc<Flow>) {
    quality.sink(Pipeline, "Quality", move |(input, _frontier)| {
        input.for_each_stamp(|_cap, data| {
            for batch in data {
                for fact in batch.drain(..) {
                    let symbol = fact.symbol();
                    match &fact {
                        QualityFact::Duplicate(_) => {
                            flow.in_flight.fetch_sub(1, Ordering::SeqCst);
                            flow.ledger
                                .update(flow.source, symbol.as_str(), |c| c.duplicates += 1);
                        }
                        QualityFact::Late(_) => flow
                            .ledger
                            .update(flow.source, symbol.as_str(), |c| c.late_events += 1),
                        QualityFact::Mismatch(m) => {
                            tracing::warn!(symbol = %m.symbol, interval = %m.interval, open_time = m.open_time, fields = ?m.fields, "Exchange kline disagrees with the candle computed from trades.");
                            flow.ledger
                                .update(flow.source, symbol.as_str(), |c| c.kline_mismatches += 1)
                        }
                    }
                }
            }
        });
    });
}
