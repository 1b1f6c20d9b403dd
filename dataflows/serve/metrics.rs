//! The process's metrics: one `metrics` recorder with a Prometheus exporter, installed once.
//!
//! Counters and histograms are recorded where things happen (the sink tasks, the API, the
//! WebSocket clients); the ledger's and the pollers' totals are published into the recorder when
//! `/metrics` is scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds (sink flushes, API requests, pushes).
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first (an embedding program's own).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histogram samples wait in the recorder until they are folded into the buckets:
            // without a scrape (no Prometheus yet) they would grow without bound (a push to
            // 1,000 clients records 1,000).
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread: histograms fold only when scraped");
            }
            Some(handle)
        })
        .as_ref()
}

/// Help texts of the metrics recorded as they happen.
fn describe() {
    metrics::describe_counter!(
        "cryptoflow_sink_rows_total",
        "Records a sink has committed."
    );
    metrics::describe_counter!(
        "cryptoflow_sink_flushes_total",
        "Batches a sink has committed."
    );
    metrics::describe_counter!(
        "cryptoflow_sink_retries_total",
        "Retried writes after transient errors."
    );
    metrics::describe_histogram!(
        "cryptoflow_sink_flush_seconds",
        "Time to write and commit one batch, retries included."
    );
    metrics::describe_gauge!(
        "cryptoflow_sink_in_flight_batches",
        "Batches being written by a sink."
    );
    metrics::describe_counter!(
        "cryptoflow_api_requests_total",
        "HTTP requests answered, by route and status."
    );
    metrics::describe_histogram!(
        "cryptoflow_api_request_seconds",
        "Time to answer an HTTP request, by route."
    );
    metrics::describe_gauge!("cryptoflow_ws_clients", "WebSocket clients connected.");
    metrics::describe_gauge!(
        "cryptoflow_ready",
        "1 when the process is ready: source connected, not draining."
    );
    metrics::describe_counter!(
        "cryptoflow_api_board_records_total",
        "Committed records the API has taken."
    );
    metrics::describe_counter!(
        "cryptoflow_ws_pushes_total",
        "Records pushed to WebSocket clients."
    );
    metrics::describe_counter!(
        "cryptoflow_ws_slow_clients_closed_total",
        "WebSocket clients closed for falling behind their buffer."
    );
    metrics::describe_histogram!(
        "cryptoflow_ws_push_seconds",
        "From the primary sink's commit to the push's send to a client."
    );
    // Shown from the start (at zero), so alerts and dashboards see them before the first event.
    metrics::gauge!("cryptoflow_ws_clients").set(0.0);
    metrics::counter!("cryptoflow_ws_pushes_total").absolute(0);
    metrics::counter!("cryptoflow_ws_slow_clients_closed_total").absolute(0);
}
