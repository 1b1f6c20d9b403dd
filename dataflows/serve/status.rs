//! What every handler shares: the read model, the pushes, and the process's status for
//! `/ready` and `/metrics`.

use std::sync::Arc;

use cryptoflow_sources::ledger::Ledger;
use cryptoflow_sources::poll::driver::PollMetrics;
use cryptoflow_sources::stats::SourceStats;
use serde::Serialize;
use tokio::sync::watch;

use super::board::Board;
use super::metrics;
use super::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The read model.
    pub store: Store,
    /// The pushes to WebSocket clients (in `run`, also the read model).
    pub board: Board,
    /// Readiness and metrics.
    pub status: Arc<Status>,
}

/// What `/ready` and `/metrics` read: the source's health and counters, the data-quality
/// ledger, the pollers' metrics, whether the run is stopping, and the server's own counters.
pub struct Status {
    /// The source's counters and health.
    pub stats: Arc<SourceStats>,
    /// The data-quality ledger.
    pub ledger: Arc<Ledger>,
    /// The pollers' metrics.
    pub polls: Arc<PollMetrics>,
    /// True once the run is stopping (draining).
    pub stopping: watch::Receiver<bool>,
    /// The process's metrics recorder (`None`: another recorder was installed first).
    pub metrics: Option<&'static metrics_exporter_prometheus::PrometheusHandle>,
    /// The run is over and its results are still served (`replay --keep-serving`).
    finished: std::sync::atomic::AtomicBool,
}

/// The answer of `/ready`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Readiness {
    /// Whether the probe passes.
    pub ready: bool,
    /// The source's state: `untracked`, `starting`, `ready`, `lost`, or `finished` (a replay
    /// whose results are still served).
    pub source: &'static str,
    /// Whether the run is draining.
    pub draining: bool,
    /// Whether the store (the board, or PostgreSQL) answers.
    pub store: bool,
}

impl Status {
    /// The status of a run.
    pub fn new(
        stats: Arc<SourceStats>,
        ledger: Arc<Ledger>,
        polls: Arc<PollMetrics>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Status {
            stats,
            ledger,
            polls,
            stopping,
            metrics: metrics::install(),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The run is over; its results are still served (ready while the store answers).
    pub fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ready: the sinks were built (the server starts after them), the source is connected
    /// (or does not report), the store answers, and the run is not draining.
    pub async fn readiness(&self, store: &Store) -> Readiness {
        let store_ok = store.ping().await;
        if self.finished.load(std::sync::atomic::Ordering::Relaxed) {
            return Readiness {
                ready: store_ok,
                store: store_ok,
                source: "finished",
                draining: false,
            };
        }
        let health = self.stats.health();
        let draining = *self.stopping.borrow();
        Readiness {
            ready: health.is_ready() && !draining && store_ok,
            store: store_ok,
            source: match health {
                cryptoflow_sources::stats::SourceHealth::Untracked => "untracked",
                cryptoflow_sources::stats::SourceHealth::Starting => "starting",
                cryptoflow_sources::stats::SourceHealth::Ready => "ready",
                cryptoflow_sources::stats::SourceHealth::Lost => "lost",
            },
            draining,
        }
    }

    /// The Prometheus text: every metric of the process, with the ledger's and the pollers'
    /// totals published first.
    pub async fn render_metrics(&self, board: &Board, store: &Store) -> String {
        let Some(handle) = self.metrics else {
            return "# metrics are recorded by another recorder in this process\n".to_string();
        };
        self.ledger.publish_metrics(cryptoflow_sources::now_ms());
        self.polls.publish_metrics();
        ::metrics::counter!("cryptoflow_api_board_records_total").absolute(board.records());
        let ready = self.readiness(store).await;
        ::metrics::gauge!("cryptoflow_ready").set(f64::from(u8::from(ready.ready)));
        handle.render()
    }
}
