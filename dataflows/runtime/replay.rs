//! The replay thread: files in order (the bundled sample when there is none), a failed file
//! reported and the next one replayed.

use std::path::PathBuf;

use cryptoflow_sources::replay::{self, ReplayOptions, ReplaySummary};
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::EventBatch;
use tokio::sync::mpsc;

use super::SAMPLE;

/// What the replay thread did.
pub(crate) struct ReplayOutcome {
    /// Totals over every file.
    pub total: ReplaySummary,
    /// One message per file that could not be replayed completely.
    pub failures: Vec<String>,
}

/// Replays `files` in order (the bundled sample when there is none). A file that fails is
/// reported and the next one replayed; what it read before is handed on and counted.
pub(crate) fn replay_all(
    files: Vec<PathBuf>,
    opts: &ReplayOptions,
    stats: &SourceStats,
    tx: mpsc::Sender<EventBatch>,
    progress: bool,
) -> ReplayOutcome {
    let mut out = ReplayOutcome {
        total: ReplaySummary::default(),
        failures: Vec::new(),
    };
    let emit = |b: EventBatch| tx.blocking_send(b).is_ok();
    if files.is_empty() {
        let s = replay::replay_reader(
            replay::from_bytes(SAMPLE),
            std::path::Path::new("<bundled sample>"),
            opts,
            stats,
            emit,
            |_| {},
        );
        out.add(s);
        return out;
    }
    for f in &files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let bar = if progress && len > (8 << 20) {
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(f.display().to_string());
            Some(bar)
        } else {
            None
        };
        // Gzip files report decompressed bytes; the bar then only shows activity.
        let s = replay::replay_file(
            f,
            opts,
            stats,
            |b| tx.blocking_send(b).is_ok(),
            |n| {
                if let Some(b) = &bar {
                    b.set_position(n.min(len));
                }
            },
        );
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if out.add(s) {
            break;
        }
    }
    out
}

impl ReplayOutcome {
    /// Adds one file's outcome; true when the consumer stopped the replay.
    fn add(&mut self, s: Result<ReplaySummary, replay::ReplayFailure>) -> bool {
        let read = match s {
            Ok(read) => read,
            Err(f) => {
                let r = f.read;
                tracing::error!(
                    error = %f.error,
                    lines = r.lines,
                    events = r.events,
                    dead_letters = r.errors,
                    "A file could not be replayed completely; going on with the next."
                );
                self.failures.push(match f.error {
                    replay::ReplayError::NoEvents { .. } => f.error.to_string(),
                    _ => format!(
                        "{} [read before: {} lines, {} events, all written to the sinks; {} dead letters]",
                        f.error, r.lines, r.events, r.errors
                    ),
                });
                r
            }
        };
        self.total.lines += read.lines;
        self.total.events += read.events;
        self.total.errors += read.errors;
        self.total.ignored += read.ignored;
        self.total.stopped |= read.stopped;
        read.stopped
    }
}
