//! When a run stops: after `--duration`, or on SIGINT (Ctrl-C) or SIGTERM (`docker stop`, a pod
//! eviction), both of which drain first.
//!
//! In a cluster a stop told to any process ([`stop_on`]) reaches every process on the ack
//! dataflow: each ends its part of the input, writes its share and exits 0. Each process exits
//! 1 if its drain takes longer than the shutdown deadline, or on a second signal.

use std::time::Duration;

use tokio::sync::watch;

/// Sends `true` on `stop` after `stop_after`, or on SIGINT (Ctrl-C) or SIGTERM. After a signal
/// the run drains; if that takes longer than `deadline`, or a second signal comes, the process
/// exits 1 without draining (the stored cursors make that a crash-safe restart point).
pub(crate) fn stop_on(
    rt: &tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    stop_after: Option<Duration>,
    deadline: Duration,
) {
    rt.spawn(async move {
        let timer = async {
            match stop_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let signalled = tokio::select! {
            () = timer => None,
            s = stop_signal() => Some(s),
        };
        stop.send_replace(true);
        if let Some(s) = signalled {
            tracing::info!(
                signal = s,
                ?deadline,
                "Stopping after in-flight data is written."
            );
            exit_unless_drained(deadline).await;
        }
    });
}

/// Exits 1 after `deadline` or on a second signal, whichever comes first (a run that drains in
/// time exits before).
async fn exit_unless_drained(deadline: Duration) {
    tokio::select! {
        () = tokio::time::sleep(deadline) => {
            tracing::error!(?deadline, "Not drained within the shutdown deadline; exiting without draining.");
        }
        s = stop_signal() => {
            tracing::warn!(signal = s, "Second signal; exiting without draining.");
        }
    }
    std::process::exit(1);
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, a pod eviction), with its
/// name: both ask a live run to drain and stop.
pub async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
