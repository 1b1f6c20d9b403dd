//! The sink task: batching, retries and the delivery ack.
//!
//! Each timely worker sends its records tagged with their timely time, and from time to time its
//! input frontier ([`SinkMsg::Progress`]): a promise that no record with an earlier time will
//! follow from that worker. Messages from one worker arrive in order, so once a flush that
//! includes everything received so far has committed, everything before the least frontier over
//! all workers is durable. The task publishes that as an [`Ack`] on a `watch` channel; source
//! cursors and Kafka offsets are committed only up to it.
//!
//! Batching: a flush starts as soon as the task is idle ("commit at once when idle"); while a
//! flush runs, new records queue and the next flush takes all of them (up to `max_batch`), so
//! batches grow only under pressure. An optional `linger` waits for more records first.
//!
//! Retries: a flush that fails with a retryable error is tried again after a [`Backoff`] delay
//! (from `retry_initial` doubling up to `retry_max`, equal jitter), starting over for every batch.

use std::future::Future;
use std::time::{Duration, Instant};

use cryptoflow_operators::backoff::Backoff;
use tokio::sync::{mpsc, watch};

use cryptoflow_operators::model::Output;

/// A message from a worker to a sink task.
#[derive(Debug, Clone)]
pub enum SinkMsg {
    /// Records produced at timely time `time`.
    Data {
        /// Worker index.
        worker: usize,
        /// Timely time.
        time: u64,
        /// The records.
        records: Vec<Output>,
    },
    /// The worker's frontier: no later record will have a time before it (`None`: finished).
    Progress {
        /// Worker index.
        worker: usize,
        /// The frontier.
        frontier: Option<u64>,
    },
}

/// "Everything before `durable` is durable in this sink."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    /// Least frontier over all workers covered by committed flushes; `None` while unknown.
    pub durable: Option<u64>,
    /// True once every worker finished and everything is committed.
    pub complete: bool,
    /// Records committed so far.
    pub records: u64,
    /// Flushes committed so far.
    pub flushes: u64,
    /// Transient write failures that were retried.
    pub retries: u64,
}

/// A sink failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying (connection lost, server restarting, deadlock, timeout).
    #[error("{sink}: transient error: {message}")]
    Transient {
        /// Sink name.
        sink: &'static str,
        /// What happened.
        message: String,
    },
    /// Retrying will not help; the message says what to fix.
    #[error("{sink}: {message}")]
    Permanent {
        /// Sink name.
        sink: &'static str,
        /// What happened and what to fix.
        message: String,
    },
}

impl SinkError {
    /// True for errors worth retrying.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Transient { .. })
    }
}

/// A destination for records. Writes must be idempotent: a batch may be written again after a
/// failure or a restart.
pub trait Sink: Send + 'static {
    /// Short name for logs and errors.
    fn name(&self) -> &'static str;
    /// The kinds of output this sink stores: the runtime hands it only those (every kind unless
    /// it says otherwise).
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        cryptoflow_operators::model::OutputKinds::ALL
    }
    /// Writes one batch durably (one transaction where the destination has them).
    fn write(&mut self, records: &[Output]) -> impl Future<Output = Result<(), SinkError>> + Send;
    /// Another writer to the same destination for parallel flushes (`None`: flushes stay
    /// sequential). Only sinks whose writes commute may return one.
    fn fork(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
    /// Flushes and closes at the end of the run.
    fn close(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }
}

/// A sink's section of the configuration: whether it turns the sink on, and how to build it.
/// Each sink's file defines its section and this; the runtime's registry lists them.
pub trait SinkSpec {
    /// The sink it builds.
    type Sink: Sink;
    /// True when the section turns the sink on.
    fn enabled(&self) -> bool;
    /// Flushes in flight at once: more than one only for sinks whose writes commute.
    fn parallelism(&self) -> usize {
        1
    }
    /// Whether the run's commit observer may watch this sink (stores yes; files and the
    /// console no).
    fn observes_commits(&self) -> bool {
        true
    }
    /// Connects to (and checks) the destination; `env` gives credentials from the environment.
    fn build(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> impl Future<Output = Result<Self::Sink, SinkError>>;
}

/// Batching and retry settings of a sink task.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// Most records per flush.
    pub max_batch: usize,
    /// Extra wait for more records before a flush (zero: flush as soon as idle).
    pub linger: Duration,
    /// First retry delay (the ceiling of the first wait, which is drawn from its upper half; see
    /// [`Backoff`]).
    pub retry_initial: Duration,
    /// Largest retry delay: the ceiling stops doubling here.
    pub retry_max: Duration,
    /// Give up after this many consecutive transient failures (`None`: never).
    pub max_retries: Option<u32>,
    /// Most flushes in flight at once (for sinks that can fork).
    pub parallelism: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            max_batch: 5_000,
            linger: Duration::ZERO,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            max_retries: None,
            parallelism: 1,
        }
    }
}

/// Called after each committed flush with its records and the commit instant.
pub type CommitObserver = Box<dyn FnMut(&[Output], Instant) + Send>;

/// What a finished flush hands back: its writer, its records and how often it was retried.
type FlushResult<S> = Result<(S, Vec<Output>, u32), SinkError>;

/// A flush in flight: the frontier snapshot it makes durable, and the write itself.
struct InFlight<S> {
    snapshot: Vec<Option<Option<u64>>>,
    task: tokio::task::JoinHandle<FlushResult<S>>,
}

/// The ack implied by a frontier snapshot whose records are all committed.
fn apply_snapshot(ack: &mut Ack, snapshot: &[Option<Option<u64>>]) {
    if snapshot.iter().all(|s| s.is_some()) {
        let durable = snapshot.iter().filter_map(|s| s.flatten()).min();
        ack.complete = snapshot.iter().all(|s| matches!(s, Some(None)));
        ack.durable = durable.or(ack.durable);
    }
}

/// Runs a sink until every sender is dropped; returns the final ack.
///
/// With `cfg.parallelism` > 1 and a sink that can [`Sink::fork`], up to that many flushes run
/// at once (each in its own transaction); acks still advance in flush order, so an ack never
/// covers a flush that has not committed.
pub async fn run_sink<S: Sink>(
    sink: S,
    mut rx: mpsc::Receiver<SinkMsg>,
    workers: usize,
    cfg: TaskConfig,
    ack_tx: watch::Sender<Ack>,
    mut observer: Option<CommitObserver>,
) -> Result<Ack, SinkError> {
    // Per worker: the frontier received so far (durable once the flushes before it commit).
    let mut seen: Vec<Option<Option<u64>>> = vec![None; workers.max(1)];
    let mut ack = Ack::default();
    let mut batch: Vec<Output> = Vec::with_capacity(cfg.max_batch);
    let mut idle: Vec<S> = Vec::new();
    for _ in 1..cfg.parallelism.max(1) {
        match sink.fork() {
            Some(f) => idle.push(f),
            None => break,
        }
    }
    let in_flight = metrics::gauge!("cryptoflow_sink_in_flight_batches", "sink" => sink.name());
    idle.push(sink);
    let mut inflight: std::collections::VecDeque<InFlight<S>> = std::collections::VecDeque::new();
    let mut open = true;
    let cfg = std::sync::Arc::new(cfg);
    while open || !inflight.is_empty() {
        in_flight.set(inflight.len() as f64);
        // Wait for a message or for the oldest flush to finish.
        let got = if open {
            tokio::select! {
                biased;
                done = async { (&mut inflight.front_mut().expect("checked non-empty").task).await }, if !inflight.is_empty() => Err(done),
                msg = rx.recv() => Ok(msg),
            }
        } else {
            Err((&mut inflight.front_mut().expect("loop condition").task).await)
        };
        match got {
            Err(done) => {
                let front = inflight.pop_front().expect("a flush finished");
                idle.push(committed(
                    done,
                    &front.snapshot,
                    &mut ack,
                    &mut observer,
                    &ack_tx,
                )?);
                continue;
            }
            Ok(Some(msg)) => absorb(msg, &mut batch, &mut seen),
            Ok(None) => open = false,
        }
        // Take whatever else is already queued (and linger if configured).
        let deadline = tokio::time::Instant::now() + cfg.linger;
        while open && batch.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(msg) => absorb(msg, &mut batch, &mut seen),
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if cfg.linger.is_zero() {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(msg)) => absorb(msg, &mut batch, &mut seen),
                        Ok(None) => open = false,
                        Err(_) => break,
                    }
                }
            }
        }
        if batch.is_empty() {
            // Only progress arrived: durable once the flushes before it commit.
            match inflight.back_mut() {
                Some(last) => last.snapshot.clone_from(&seen),
                None => {
                    apply_snapshot(&mut ack, &seen);
                    ack_tx.send_replace(ack);
                }
            }
            continue;
        }
        // A free writer, or wait for the oldest flush to free one.
        let mut writer = match idle.pop() {
            Some(w) => w,
            None => {
                let front = inflight
                    .pop_front()
                    .expect("no idle writer means a flush is in flight");
                let done = front.task.await;
                committed(done, &front.snapshot, &mut ack, &mut observer, &ack_tx)?
            }
        };
        let records = std::mem::replace(&mut batch, Vec::with_capacity(cfg.max_batch));
        let task_cfg = cfg.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let retries = write_with_retry(&mut writer, &records, &task_cfg).await?;
            metrics::histogram!("cryptoflow_sink_flush_seconds", "sink" => writer.name())
                .record(started.elapsed().as_secs_f64());
            Ok((writer, records, retries))
        });
        inflight.push_back(InFlight {
            snapshot: seen.clone(),
            task,
        });
        in_flight.set(inflight.len() as f64);
    }
    in_flight.set(0.0);
    for mut s in idle {
        s.close().await?;
    }
    ack.complete = true;
    ack_tx.send_replace(ack);
    Ok(ack)
}

/// Handles the oldest flush having finished: on success, counts it, shows it to the observer,
/// advances the ack to its frontier snapshot, and returns its writer.
fn committed<S: Sink>(
    done: Result<FlushResult<S>, tokio::task::JoinError>,
    snapshot: &[Option<Option<u64>>],
    ack: &mut Ack,
    observer: &mut Option<CommitObserver>,
    ack_tx: &watch::Sender<Ack>,
) -> Result<S, SinkError> {
    let (writer, records, retries) = done.map_err(|e| SinkError::Permanent {
        sink: "sink task",
        message: e.to_string(),
    })??;
    ack.records += records.len() as u64;
    ack.flushes += 1;
    ack.retries += u64::from(retries);
    let sink = writer.name();
    metrics::counter!("cryptoflow_sink_rows_total", "sink" => sink).increment(records.len() as u64);
    metrics::counter!("cryptoflow_sink_flushes_total", "sink" => sink).increment(1);
    metrics::counter!("cryptoflow_sink_retries_total", "sink" => sink)
        .increment(u64::from(retries));
    if let Some(obs) = observer.as_mut() {
        obs(&records, Instant::now());
    }
    apply_snapshot(ack, snapshot);
    ack_tx.send_replace(*ack);
    Ok(writer)
}

fn absorb(msg: SinkMsg, batch: &mut Vec<Output>, seen: &mut [Option<Option<u64>>]) {
    match msg {
        SinkMsg::Data { records, .. } => batch.extend(records),
        SinkMsg::Progress { worker, frontier } => {
            if let Some(slot) = seen.get_mut(worker) {
                *slot = Some(frontier);
            }
        }
    }
}

/// Writes `batch`, retrying retryable errors with backoff (up to `max_retries`); the number of
/// failed attempts on success.
async fn write_with_retry<S: Sink>(
    sink: &mut S,
    batch: &[Output],
    cfg: &TaskConfig,
) -> Result<u32, SinkError> {
    let mut backoff = Backoff::new(cfg.retry_initial, cfg.retry_max);
    let mut failures = 0u32;
    loop {
        match sink.write(batch).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(sink = sink.name(), failures, "Sink recovered.");
                }
                return Ok(failures);
            }
            Err(e) if e.is_retryable() && cfg.max_retries.is_none_or(|m| failures < m) => {
                failures += 1;
                let delay = backoff.next_delay();
                tracing::warn!(sink = sink.name(), failures, ?delay, error = %e, "Flush failed; retrying.");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Flaky {
        fail_first: u32,
        calls: u32,
        got: Arc<Mutex<Vec<usize>>>,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
            self.calls += 1;
            if self.calls <= self.fail_first {
                return Err(SinkError::Transient {
                    sink: "flaky",
                    message: "down".into(),
                });
            }
            self.got.lock().unwrap().push(records.len());
            Ok(())
        }
    }

    fn gap() -> Output {
        use cryptoflow_operators::model::*;
        Output::Gap(Gap {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            kind: StreamKind::Trade,
            since: 1,
            until: 2,
            last_id: None,
            reason: GapReason::Reconnect,
            from_id: None,
            to_id: None,
            refilled: false,
            detail: String::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_the_backoff_and_stop_at_max_retries() {
        let cfg = TaskConfig {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(300),
            max_retries: Some(3),
            ..TaskConfig::default()
        };
        // Three failures, then success: waits drawn from [50, 100], [100, 200] and [150, 300] ms.
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut sink = Flaky {
            fail_first: 3,
            calls: 0,
            got: got.clone(),
        };
        let t = tokio::time::Instant::now();
        assert_eq!(
            write_with_retry(&mut sink, &[gap()], &cfg).await.unwrap(),
            3
        );
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited <= Duration::from_millis(600),
            "{waited:?}"
        );
        assert_eq!(*got.lock().unwrap(), vec![1]);
        // A fourth failure is one too many: the error comes back after three retries.
        let mut sink = Flaky {
            fail_first: 4,
            calls: 0,
            got: got.clone(),
        };
        let err = write_with_retry(&mut sink, &[gap()], &cfg)
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(sink.calls, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn ack_is_min_frontier_after_commit_and_retries_transient_errors() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = watch::channel(Ack::default());
        let sink = Flaky {
            fail_first: 2,
            calls: 0,
            got: got.clone(),
        };
        let task = tokio::spawn(run_sink(sink, rx, 2, TaskConfig::default(), ack_tx, None));
        tx.send(SinkMsg::Data {
            worker: 0,
            time: 5,
            records: vec![gap(), gap()],
        })
        .await
        .unwrap();
        tx.send(SinkMsg::Progress {
            worker: 0,
            frontier: Some(9),
        })
        .await
        .unwrap();
        tx.send(SinkMsg::Progress {
            worker: 1,
            frontier: Some(7),
        })
        .await
        .unwrap();
        ack_rx.wait_for(|a| a.durable == Some(7)).await.unwrap();
        assert_eq!((ack_rx.borrow().records, ack_rx.borrow().retries), (2, 2));
        tx.send(SinkMsg::Progress {
            worker: 1,
            frontier: None,
        })
        .await
        .unwrap();
        ack_rx.wait_for(|a| a.durable == Some(9)).await.unwrap();
        tx.send(SinkMsg::Progress {
            worker: 0,
            frontier: None,
        })
        .await
        .unwrap();
        drop(tx);
        let ack = task.await.unwrap().unwrap();
        assert!(ack.complete);
        assert_eq!(*got.lock().unwrap(), vec![2]);
    }

    /// First flush slow, second fast: the ack waits for the first.
    #[derive(Clone)]
    struct Slow {
        order: Arc<Mutex<Vec<usize>>>,
        calls: Arc<Mutex<u32>>,
    }

    impl Sink for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn fork(&self) -> Option<Self> {
            Some(self.clone())
        }
        async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
            let call = {
                let mut c = self.calls.lock().unwrap();
                *c += 1;
                *c
            };
            if call == 1 {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
            self.order.lock().unwrap().push(records.len());
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_flushes_ack_in_order() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let sink = Slow {
            order: order.clone(),
            calls: Arc::new(Mutex::new(0)),
        };
        let (tx, rx) = mpsc::channel(16);
        let (ack_tx, mut ack_rx) = watch::channel(Ack::default());
        let cfg = TaskConfig {
            parallelism: 2,
            ..TaskConfig::default()
        };
        let task = tokio::spawn(run_sink(sink, rx, 1, cfg, ack_tx, None));
        tx.send(SinkMsg::Data {
            worker: 0,
            time: 1,
            records: vec![gap()],
        })
        .await
        .unwrap();
        tx.send(SinkMsg::Progress {
            worker: 0,
            frontier: Some(2),
        })
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        tx.send(SinkMsg::Data {
            worker: 0,
            time: 2,
            records: vec![gap(), gap()],
        })
        .await
        .unwrap();
        tx.send(SinkMsg::Progress {
            worker: 0,
            frontier: Some(3),
        })
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        // The second flush committed first, but nothing is acknowledged before the first.
        assert_eq!(*order.lock().unwrap(), vec![2]);
        assert_eq!(ack_rx.borrow().durable, None);
        ack_rx.wait_for(|a| a.durable == Some(3)).await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![2, 1]);
        assert_eq!(ack_rx.borrow().records, 3);
        drop(tx);
        assert!(task.await.unwrap().unwrap().complete);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_stop_the_task() {
        struct Broken;
        impl Sink for Broken {
            fn name(&self) -> &'static str {
                "broken"
            }
            async fn write(&mut self, _: &[Output]) -> Result<(), SinkError> {
                Err(SinkError::Permanent {
                    sink: "broken",
                    message: "table missing".into(),
                })
            }
        }
        let (tx, rx) = mpsc::channel(4);
        let (ack_tx, _ack_rx) = watch::channel(Ack::default());
        tx.send(SinkMsg::Data {
            worker: 0,
            time: 0,
            records: vec![gap()],
        })
        .await
        .unwrap();
        drop(tx);
        let err = run_sink(Broken, rx, 1, TaskConfig::default(), ack_tx, None)
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("table missing"));
    }
}
