//! What a poller remembers across restarts: the natural keys it has emitted (with the last time a
//! poll still saw each, so keys age out only once the upstream stops listing them), per-poller
//! cursors (FRED: the last observation date per series) and the time of the last good poll (so a
//! restart neither re-polls early nor misses a scheduled run). Saved atomically (write to a
//! temporary file, fsync, rename) and only after the items it covers are durable in every sink.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The persisted state of one poller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// Natural key → last time (ms) a poll saw it.
    #[serde(default)]
    pub seen: BTreeMap<String, i64>,
    /// Poller-specific cursors.
    #[serde(default)]
    pub cursors: BTreeMap<String, String>,
    /// When the last poll with at least one good response ended, ms.
    #[serde(default)]
    pub last_poll_ms: Option<i64>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O.
    #[error("poll state {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl PollState {
    /// The state in `path`: empty when there is none; a corrupt file is moved aside
    /// (`<path>.corrupt-<ms>`) with a warning and the poller starts empty (the sinks' natural keys
    /// still keep rows unique).
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PollState::default()),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(s) => Ok(s),
            Err(e) => {
                let aside = path.with_extension(format!("corrupt-{}", crate::now_ms()));
                tracing::warn!(path = %path.display(), aside = %aside.display(), error = %e, "Poll state is corrupt; moved aside, starting empty.");
                std::fs::rename(path, &aside).map_err(|source| StateError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok(PollState::default())
            }
        }
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Forgets keys no poll has seen for `retention_ms`, then the least recently seen beyond
    /// `max_keys`.
    pub fn prune(&mut self, now_ms: i64, retention_ms: i64, max_keys: usize) {
        self.seen.retain(|_, t| now_ms - *t <= retention_ms);
        if self.seen.len() > max_keys {
            let mut times: Vec<i64> = self.seen.values().copied().collect();
            times.sort_unstable();
            let cut = times[self.seen.len() - max_keys];
            self.seen.retain(|_, t| *t >= cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_prune_and_corrupt_file() {
        let dir = std::env::temp_dir().join(format!("cf-poll-state-{}", std::process::id()));
        let path = dir.join("rss.json");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(PollState::load(&path).expect("empty"), PollState::default());
        let mut s = PollState::default();
        for i in 0..10 {
            s.seen.insert(format!("k{i}"), 1_000 + i);
        }
        s.cursors.insert("FEDFUNDS".into(), "2026-10-01".into());
        s.save(&path).expect("save");
        assert_eq!(PollState::load(&path).expect("load"), s);
        s.prune(1_009, 5, 100);
        assert_eq!(s.seen.len(), 6, "k4..k9 seen within 5 ms");
        s.prune(1_009, 1_000, 3);
        assert_eq!(
            s.seen.keys().cloned().collect::<Vec<_>>(),
            ["k7", "k8", "k9"]
        );
        std::fs::write(&path, b"{\"seen\":{\"a\":").expect("write");
        assert_eq!(PollState::load(&path).expect("aside"), PollState::default());
        assert!(!path.exists(), "the corrupt file was moved aside");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
