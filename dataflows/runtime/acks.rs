//! Sink tasks and their acks: each sink runs in a tokio task behind a bounded queue and
//! publishes "everything before time t is durable" on a `watch` channel; the least of those over
//! every sink is what sources may release (Kafka offsets, source cursors, poller state).

use std::time::Duration;

use cryptoflow_operators::model::OutputKinds;
use cryptoflow_sinks::task::{run_sink, CommitObserver, TaskConfig};
use cryptoflow_sinks::{Ack, Sink, SinkError, SinkMsg};
use cryptoflow_sources::kafka::Durable;
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

/// The least ack over all sinks, as a watch channel updated every 20 ms until every sink is
/// complete.
pub(crate) fn least_ack(
    rt: &tokio::runtime::Runtime,
    sinks: &[SinkSlot],
) -> watch::Receiver<Durable> {
    let acks: Vec<watch::Receiver<Ack>> = sinks.iter().map(|s| s.ack.clone()).collect();
    let (tx, rx) = watch::channel(Durable::default());
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            let now: Vec<Ack> = acks.iter().map(|a| *a.borrow()).collect();
            let d = least(&now);
            tx.send_if_modified(|old| {
                let changed = *old != d;
                *old = d;
                changed
            });
            if d.complete || tx.is_closed() {
                break;
            }
        }
    });
    rx
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
