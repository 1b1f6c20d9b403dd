//! Sink tasks and their acks: each sink runs in a tokio task behind a bounded queue and
//! publishes "everything before time t is durable" on a `watch` channel. The least of those over
//! the sinks of a process is that process's durable time; the least over every process of a
//! cluster ([`ClusterAck`]) is what sources may release (Kafka offsets, source cursors, poller
//! state).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use cryptoflow_operators::model::OutputKinds;
use cryptoflow_sinks::task::{run_sink, CommitObserver, TaskConfig};
use cryptoflow_sinks::{Ack, Sink, SinkError, SinkMsg};
use cryptoflow_sources::kafka::Durable;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Broadcast, Input};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;
use tokio::sync::{mpsc, watch};

use crate::config::Config;

/// A running sink task: its queue, its ack and its handle.
pub(crate) struct SinkSlot {
    /// The sink's name.
    pub name: &'static str,
    /// The kinds of output it takes.
    pub accepts: OutputKinds,
    /// Its queue.
    pub tx: mpsc::Sender<SinkMsg>,
    /// Its ack.
    pub ack: watch::Receiver<Ack>,
    /// The task; its result is the final ack.
    pub task: tokio::task::JoinHandle<Result<Ack, SinkError>>,
}

/// Spawns the task of `sink` on `rt`, fed by `workers` workers, with up to `parallelism`
/// flushes in flight; `observer` sees each committed batch.
pub(crate) fn spawn_sink<S: Sink>(
    rt: &tokio::runtime::Runtime,
    sink: S,
    workers: usize,
    cfg: &Config,
    observer: Option<CommitObserver>,
    parallelism: usize,
) -> SinkSlot {
    let (tx, rx) = mpsc::channel(cfg.sinks.queue_capacity);
    let (ack_tx, ack) = watch::channel(Ack::default());
    let name = sink.name();
    let accepts = sink.accepts();
    let task_cfg = TaskConfig {
        max_batch: cfg.sinks.max_batch,
        linger: Duration::from_millis(cfg.sinks.linger_ms),
        parallelism,
        ..TaskConfig::default()
    };
    let task = rt.spawn(run_sink(sink, rx, workers, task_cfg, ack_tx, observer));
    SinkSlot {
        name,
        accepts,
        tx,
        ack,
        task,
    }
}

/// How often a worker moves its ack input on to its process's durable time: every move is
/// progress traffic to every worker of the cluster.
const ADVANCE_EVERY: Duration = Duration::from_millis(20);
/// How often a process that does not feed reports the trades its first sink took.
const RELEASE_EVERY: Duration = Duration::from_millis(5);

/// What a worker tells every worker of the cluster on the ack dataflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AckNote {
    /// Trades that left the in-flight bound on a process that does not feed (taken by its first
    /// sink, or dropped as repeats) since its last note.
    Released(i64),
    /// A sink of this process failed: what it had not stored is lost to this run.
    Failed(usize),
    /// This process was told to stop a live run (a signal or `--duration`): every process ends
    /// its input, drains and exits.
    Stop(usize),
}

/// What the ack notes told this worker so far.
#[derive(Debug, Default)]
struct Tally {
    /// Trades released on other processes, not yet taken by the feeding worker.
    released: i64,
    /// Processes that reported a failed sink.
    failed: BTreeSet<usize>,
    /// Some process asked the cluster to stop.
    stop: bool,
}

/// This process's sinks as one worker sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Local {
    /// Still writing; everything before this time is durable in every sink of this process
    /// (`None`: not known yet).
    Running(Option<u64>),
    /// Every sink of this process finished and committed everything.
    Complete,
    /// A sink of this process failed (its task is gone without completing).
    Failed,
}

/// The cluster's ack, one per worker: the least durable time over every sink of every process.
///
/// Each process's sink tasks ack only what this process's workers handed them, so the least ack
/// of one process says nothing of the rows routed to another. Every worker therefore holds an
/// input of a small second dataflow at its process's durable time (the least ack over its
/// sinks, [`ClusterAck::tick`]); the frontier of that dataflow is the minimum over every worker
/// of every process, which is what the feeding worker publishes ([`ClusterAck::publish`]) for the
/// Kafka source and the pollers. A worker drops its input once its process's sinks are complete
/// ([`ClusterAck::close`]): the frontier is empty (complete) once every process is.
///
/// The same dataflow carries [`AckNote`]s to every worker: the in-flight releases of the
/// processes that do not feed, and failed sinks. A failure freezes the published ack for good:
/// a note at time `t` reaches the feeding worker before the frontier passes `t`, so a process
/// whose sink failed may drop its input right after its note.
pub(crate) struct ClusterAck {
    /// The acks of this process's sinks.
    sinks: Vec<watch::Receiver<Ack>>,
    /// This process's index.
    process: usize,
    input: Option<InputHandleVec<u64, AckNote>>,
    probe: ProbeHandle<u64>,
    tally: Rc<RefCell<Tally>>,
    next_advance: Instant,
    next_release: Instant,
    /// This worker reported its process's failure.
    told_failure: bool,
    /// This worker asked the cluster to stop.
    told_stop: bool,
}

impl ClusterAck {
    /// Builds the ack dataflow on `worker`, which runs on `process` beside the sink tasks whose
    /// acks are `sinks`.
    pub(crate) fn new(
        worker: &mut Worker,
        sinks: Vec<watch::Receiver<Ack>>,
        process: usize,
    ) -> Self {
        let mut input = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let tally = Rc::new(RefCell::new(Tally::default()));
        let notes = tally.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .broadcast()
                .inspect(move |note: &AckNote| {
                    let mut t = notes.borrow_mut();
                    match note {
                        AckNote::Released(n) => t.released += n,
                        AckNote::Failed(p) => {
                            t.failed.insert(*p);
                        }
                        AckNote::Stop(_) => t.stop = true,
                    }
                })
                .probe_with(&probe);
        });
        let now = Instant::now();
        ClusterAck {
            sinks,
            process,
            input: Some(input),
            probe,
            tally,
            next_advance: now,
            next_release: now,
            told_failure: false,
            told_stop: false,
        }
    }

    /// Asks every worker of the cluster to end its input (once; a live run's stop).
    pub(crate) fn request_stop(&mut self) {
        if std::mem::replace(&mut self.told_stop, true) {
            return;
        }
        if let Some(input) = self.input.as_mut() {
            input.send(AckNote::Stop(self.process));
            input.flush();
        }
    }

    /// True once some worker of the cluster asked it to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.tally.borrow().stop
    }

    /// This process's sinks: the least ack over them, or whether they are complete or one failed
    /// (`sink_failed`: a worker found a sink's queue closed).
    pub(crate) fn local(&self, sink_failed: bool) -> Local {
        let mut acks = Vec::with_capacity(self.sinks.len());
        for rx in &self.sinks {
            // Closed first: a task publishes its last ack before it drops the sender.
            let closed = rx.has_changed().is_err();
            let ack = *rx.borrow();
            if closed && !ack.complete {
                return Local::Failed;
            }
            acks.push(ack);
        }
        if sink_failed {
            return Local::Failed;
        }
        let d = least(&acks);
        if d.complete {
            Local::Complete
        } else {
            Local::Running(d.before)
        }
    }

    /// Called from the worker loop at `now`: reports a failed sink of this process once, hands
    /// the trades released on this process (`in_flight`, on a process that does not feed) to
    /// the feeding worker, and moves this worker's input on to the process's durable time (each
    /// at most every few milliseconds). Returns the state of this process's sinks.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        in_flight: Option<&AtomicI64>,
        sink_failed: bool,
    ) -> Local {
        let local = self.local(sink_failed);
        let Some(input) = self.input.as_mut() else {
            return local;
        };
        if local == Local::Failed {
            if !std::mem::replace(&mut self.told_failure, true) {
                input.send(AckNote::Failed(self.process));
                input.flush();
            }
            return local;
        }
        if let Some(c) = in_flight.filter(|_| now >= self.next_release) {
            self.next_release = now + RELEASE_EVERY;
            // Only releases count here: the counter goes below zero by the trades released.
            let n = c.swap(0, Ordering::SeqCst);
            if n != 0 {
                input.send(AckNote::Released(-n));
                input.flush();
            }
        }
        if let Local::Running(Some(t)) = local {
            if t > *input.time() && now >= self.next_advance {
                self.next_advance = now + ADVANCE_EVERY;
                input.advance_to(t);
            }
        }
        local
    }

    /// Drops this worker's input: its process's sinks are complete (or one failed and this
    /// worker reported it). Releases not yet reported go first.
    pub(crate) fn close(&mut self, in_flight: Option<&AtomicI64>) {
        if let Some(mut input) = self.input.take() {
            let n = in_flight.map_or(0, |c| c.swap(0, Ordering::SeqCst));
            if n != 0 && !self.told_failure {
                input.send(AckNote::Released(-n));
            }
        }
    }

    /// The cluster's ack as this worker sees it: everything before the frontier is durable in
    /// every sink of every process, and all is once the frontier is empty. `None` once a
    /// process reported a failed sink: from then on, nothing more is durable for this run.
    pub(crate) fn cluster(&self) -> Option<Durable> {
        if self.failed() {
            return None;
        }
        Some(self.probe.with_frontier(|f| Durable {
            before: f.as_option().copied(),
            complete: f.is_empty(),
        }))
    }

    /// Publishes [`ClusterAck::cluster`] on `tx` when it changed (and never after a failure).
    pub(crate) fn publish(&self, tx: &watch::Sender<Durable>) {
        if let Some(d) = self.cluster() {
            tx.send_if_modified(|old| {
                let changed = *old != d;
                *old = d;
                changed
            });
        }
    }

    /// Takes the trades other processes released since the last call (for the feeding worker's
    /// in-flight count).
    pub(crate) fn take_released(&self) -> i64 {
        std::mem::take(&mut self.tally.borrow_mut().released)
    }

    /// True once some process reported a failed sink.
    pub(crate) fn failed(&self) -> bool {
        !self.tally.borrow().failed.is_empty()
    }

    /// The processes that reported a failed sink, in order.
    pub(crate) fn failed_processes(&self) -> Vec<usize> {
        self.tally.borrow().failed.iter().copied().collect()
    }
}

/// The least of `acks`: durable before the least time every sink has made durable (unknown
/// while one has not acked yet), complete once all are.
fn least(acks: &[Ack]) -> Durable {
    let before = acks
        .iter()
        .map(|a| a.durable)
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().min());
    Durable {
        before,
        complete: acks.iter().all(|a| a.complete),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(durable: Option<u64>, complete: bool) -> Ack {
        Ack {
            durable,
            complete,
            ..Ack::default()
        }
    }

    fn durable(before: Option<u64>, complete: bool) -> Durable {
        Durable { before, complete }
    }

    /// Steps `worker` a few times: enough for a single worker's progress to settle.
    fn settle(worker: &mut Worker) {
        for _ in 0..5 {
            worker.step();
        }
    }

    #[test]
    fn one_worker_publishes_its_process_durable_time_then_completion() {
        timely::execute_directly(|worker| {
            let (sink, rx) = watch::channel(Ack::default());
            let mut ack = ClusterAck::new(worker, vec![rx], 0);
            let (tx, published) = watch::channel(Durable::default());
            let t0 = Instant::now();
            // Nothing durable yet: the input holds the frontier at 0.
            assert_eq!(ack.tick(t0, None, false), Local::Running(None));
            settle(worker);
            assert_eq!(ack.cluster(), Some(durable(Some(0), false)));
            sink.send_replace(ack_of(Some(5), false));
            assert_eq!(ack.tick(t0, None, false), Local::Running(Some(5)));
            settle(worker);
            ack.publish(&tx);
            assert_eq!(*published.borrow(), durable(Some(5), false));
            // Moves are rate-limited: the next one waits 20 ms.
            sink.send_replace(ack_of(Some(9), false));
            ack.tick(t0 + Duration::from_millis(19), None, false);
            settle(worker);
            assert_eq!(ack.cluster(), Some(durable(Some(5), false)));
            ack.tick(t0 + ADVANCE_EVERY, None, false);
            settle(worker);
            assert_eq!(ack.cluster(), Some(durable(Some(9), false)));
            // The sinks complete: the input goes, and the frontier is empty.
            sink.send_replace(ack_of(Some(9), true));
            assert_eq!(ack.tick(t0 + ADVANCE_EVERY, None, false), Local::Complete);
            ack.close(None);
            settle(worker);
            ack.publish(&tx);
            assert_eq!(*published.borrow(), durable(None, true));
            assert!(ack.failed_processes().is_empty());
        });
    }

    fn ack_of(durable: Option<u64>, complete: bool) -> Ack {
        ack(durable, complete)
    }

    #[test]
    fn a_failed_sink_never_looks_like_completion() {
        timely::execute_directly(|worker| {
            let (good, good_rx) = watch::channel(ack_of(Some(8), false));
            let (bad, bad_rx) = watch::channel(ack_of(Some(3), false));
            let mut ack = ClusterAck::new(worker, vec![good_rx, bad_rx], 2);
            let (tx, published) = watch::channel(Durable::default());
            let now = Instant::now();
            assert_eq!(ack.tick(now, None, false), Local::Running(Some(3)));
            settle(worker);
            ack.publish(&tx);
            assert_eq!(*published.borrow(), durable(Some(3), false));
            // The other sink completes, this one's task ends without completing.
            good.send_replace(ack_of(Some(8), true));
            drop(bad);
            assert_eq!(ack.tick(now, None, false), Local::Failed);
            ack.close(None);
            settle(worker);
            // The frontier is empty, but the published ack stays where it was.
            assert_eq!(ack.cluster(), None);
            ack.publish(&tx);
            assert_eq!(*published.borrow(), durable(Some(3), false));
            assert_eq!(ack.failed_processes(), vec![2]);
        });
    }

    #[test]
    fn a_closed_sink_queue_is_a_failure_even_while_the_acks_look_fine() {
        timely::execute_directly(|worker| {
            let (_sink, rx) = watch::channel(ack_of(Some(4), false));
            let mut ack = ClusterAck::new(worker, vec![rx], 1);
            assert_eq!(ack.local(false), Local::Running(Some(4)));
            assert_eq!(ack.tick(Instant::now(), None, true), Local::Failed);
            settle(worker);
            assert_eq!(ack.failed_processes(), vec![1]);
            ack.close(None);
        });
    }

    #[test]
    fn trades_released_on_a_process_that_does_not_feed_reach_the_feeding_worker() {
        timely::execute_directly(|worker| {
            let (_sink, rx) = watch::channel(Ack::default());
            let mut ack = ClusterAck::new(worker, vec![rx], 1);
            // This process's first sink took 7 trades (its counter only goes down).
            let counter = AtomicI64::new(-7);
            let t0 = Instant::now();
            ack.tick(t0, Some(&counter), false);
            assert_eq!(counter.load(Ordering::SeqCst), 0);
            settle(worker);
            assert_eq!(ack.take_released(), 7);
            assert_eq!(ack.take_released(), 0);
            // Reports are rate-limited; the last ones go with the input.
            counter.store(-2, Ordering::SeqCst);
            ack.tick(t0 + Duration::from_millis(1), Some(&counter), false);
            assert_eq!(counter.load(Ordering::SeqCst), -2);
            ack.close(Some(&counter));
            settle(worker);
            assert_eq!(ack.take_released(), 2);
        });
    }

    #[test]
    fn the_cluster_ack_is_the_least_over_every_worker() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        // Worker 1 (its process's sinks slower) lags at 4 while worker 0 is at 10.
        let seen = Arc::new(AtomicBool::new(false));
        let guards = timely::execute(timely::Config::process(2), move |worker| {
            let index = worker.index();
            let (sink, rx) = watch::channel(ack_of(Some([10, 4][index]), false));
            let mut ack = ClusterAck::new(worker, vec![rx], index);
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut highest = None;
            if index == 0 {
                while ack.cluster() != Some(durable(Some(4), false)) {
                    ack.tick(Instant::now(), None, false);
                    worker.step_or_park(Some(Duration::from_millis(1)));
                    highest = highest.max(ack.cluster().and_then(|d| d.before));
                    assert!(Instant::now() < deadline, "never saw the lagging worker");
                }
                seen.store(true, Ordering::SeqCst);
            } else {
                while !seen.load(Ordering::SeqCst) {
                    ack.tick(Instant::now(), None, false);
                    worker.step_or_park(Some(Duration::from_millis(1)));
                    assert!(Instant::now() < deadline, "worker 0 never saw this one");
                }
            }
            sink.send_replace(ack_of(Some(12), true));
            assert_eq!(ack.tick(Instant::now(), None, false), Local::Complete);
            ack.close(None);
            while worker.step_or_park(Some(Duration::from_millis(1))) {}
            (highest, ack.cluster())
        })
        .expect("two workers");
        let results: Vec<_> = guards
            .join()
            .into_iter()
            .map(|r| r.expect("worker"))
            .collect();
        // Worker 0 never saw more than the lagging worker's time, and both saw completion.
        assert_eq!(results[0].0, Some(4));
        assert!(results.iter().all(|r| r.1 == Some(durable(None, true))));
    }

    #[test]
    fn the_least_ack_waits_for_every_sink() {
        let d = least(&[ack(Some(7), false), ack(None, false)]);
        assert_eq!(
            d,
            Durable {
                before: None,
                complete: false
            }
        );
        let d = least(&[ack(Some(7), false), ack(Some(3), true)]);
        assert_eq!(
            d,
            Durable {
                before: Some(3),
                complete: false
            }
        );
        let d = least(&[ack(Some(9), true), ack(Some(8), true)]);
        assert_eq!(
            d,
            Durable {
                before: Some(8),
                complete: true
            }
        );
    }
}
