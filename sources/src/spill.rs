//! A first-in first-out queue that keeps its head in memory and spills its tail to disk.
//!
//! The live source must never stop reading its WebSocket connections: an exchange drops a reader
//! that falls behind, and every dropped connection is a hole to refill. When the pipeline pushes
//! back (a sink is down, a refill floods it), the source queues what it cannot hand on here. Up to
//! `memory_items` items stay in memory; beyond that, items are appended to an unnamed file (created
//! in `dir` and unlinked at once, so nothing is left behind after a crash) and read back in order
//! when the pipeline has room again. Order is kept: once the queue spills, every later item goes
//! to the file until the file is drained.
//!
//! Nothing spilled is durable: after a crash the stored cursor and the REST refill bring the same
//! trades back, as they would for items held in memory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The spill file: a writer at its end and a reader behind it.
struct Spilled {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Items written and not read back yet.
    queued: usize,
    /// The writer has items the reader cannot see yet.
    unflushed: bool,
}

/// A FIFO queue of items of `weight` each, in memory up to a bound and on disk beyond it.
pub struct SpillQueue<T> {
    memory: VecDeque<(T, usize)>,
    memory_weight: usize,
    memory_limit: usize,
    dir: PathBuf,
    spilled: Option<Spilled>,
    /// Largest number of items on disk at once.
    peak_spilled: usize,
    /// Items that went through the file.
    total_spilled: u64,
}

/// Why the queue could not spill or read back.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The spill file could not be created, written or read.
    #[error("spill file in {dir}: {source}")]
    Io {
        /// The spill directory.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An item read back did not decode (the file was damaged).
    #[error("spill file in {dir}: an item does not decode: {detail}")]
    Decode {
        /// The spill directory.
        dir: String,
        /// What went wrong.
        detail: String,
    },
}

impl<T: Serialize + DeserializeOwned> SpillQueue<T> {
    /// A queue that keeps up to `memory_limit` weight units in memory and spills the rest to an
    /// unnamed file in `dir`.
    pub fn new(memory_limit: usize, dir: &Path) -> Self {
        SpillQueue {
            memory: VecDeque::new(),
            memory_weight: 0,
            memory_limit: memory_limit.max(1),
            dir: dir.to_path_buf(),
            spilled: None,
            peak_spilled: 0,
            total_spilled: 0,
        }
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.spilled.as_ref().is_none_or(|s| s.queued == 0)
    }

    /// Items queued (memory and disk).
    pub fn len(&self) -> usize {
        self.memory.len() + self.spilled.as_ref().map_or(0, |s| s.queued)
    }

    /// Items on disk now.
    pub fn spilled(&self) -> usize {
        self.spilled.as_ref().map_or(0, |s| s.queued)
    }

    /// Largest number of items that were on disk at once.
    pub fn peak_spilled(&self) -> usize {
        self.peak_spilled
    }

    /// Items that went through the file so far.
    pub fn total_spilled(&self) -> u64 {
        self.total_spilled
    }

    fn io(&self, source: std::io::Error) -> SpillError {
        SpillError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Appends an item of `weight` (e.g. the events of a batch). When the file cannot be
    /// written, the item stays in memory (the error says why, so the caller can log it once).
    pub fn push(&mut self, item: T, weight: usize) -> Result<(), SpillError> {
        if self.spilled.is_none() && self.memory_weight + weight <= self.memory_limit {
            self.memory_weight += weight;
            self.memory.push_back((item, weight));
            return Ok(());
        }
        if self.spilled.is_none() {
            match self.open() {
                Ok(s) => self.spilled = Some(s),
                Err(e) => {
                    self.memory_weight += weight;
                    self.memory.push_back((item, weight));
                    return Err(e);
                }
            }
        }
        let mut line = match serde_json::to_vec(&(&item, weight)) {
            Ok(l) => l,
            Err(e) => {
                let dir = self.dir.display().to_string();
                self.memory_weight += weight;
                self.memory.push_back((item, weight));
                return Err(SpillError::Decode {
                    dir,
                    detail: e.to_string(),
                });
            }
        };
        line.push(b'\n');
        let res = match self.spilled.as_mut() {
            Some(s) => s.writer.write_all(&line).map(|()| {
                s.queued += 1;
                s.unflushed = true;
                s.queued
            }),
            None => Ok(0),
        };
        match res {
            Ok(queued) => {
                self.peak_spilled = self.peak_spilled.max(queued);
                self.total_spilled += 1;
                Ok(())
            }
            Err(e) => Err(self.io(e)),
        }
    }

    /// Takes the oldest item.
    pub fn pop(&mut self) -> Result<Option<T>, SpillError> {
        if let Some((item, weight)) = self.memory.pop_front() {
            self.memory_weight -= weight;
            return Ok(Some(item));
        }
        let Some(s) = self.spilled.as_mut() else {
            return Ok(None);
        };
        if s.queued == 0 {
            return Ok(None);
        }
        if s.unflushed {
            if let Err(e) = s.writer.flush() {
                return Err(self.io(e));
            }
            s.unflushed = false;
        }
        let mut line = Vec::new();
        let read = s.reader.read_until(b'\n', &mut line);
        match read {
            Ok(0) => {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file ended early");
                self.spilled = None;
                Err(self.io(e))
            }
            Ok(_) => {
                s.queued -= 1;
                if s.queued == 0 {
                    // Drained: drop the file and go back to memory.
                    self.spilled = None;
                }
                serde_json::from_slice::<(T, usize)>(&line)
                    .map(|(item, _)| Some(item))
                    .map_err(|e| SpillError::Decode {
                        dir: self.dir.display().to_string(),
                        detail: e.to_string(),
                    })
            }
            Err(e) => Err(self.io(e)),
        }
    }

    fn open(&self) -> Result<Spilled, SpillError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self
            .dir
            .join(format!(".cryptoflow-spill-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.io(e))?;
        // A second open (not a clone): the reader keeps its own offset.
        let reader = File::open(&path).map_err(|e| self.io(e));
        // Unlinked at once: the open handles keep it; a crash leaves nothing behind.
        let _ = std::fs::remove_file(&path);
        let reader = reader?;
        Ok(Spilled {
            writer: BufWriter::with_capacity(1 << 16, file),
            reader: BufReader::with_capacity(1 << 16, reader),
            queued: 0,
            unflushed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_memory_and_disk() {
        let dir = std::env::temp_dir();
        let mut q: SpillQueue<Vec<u64>> = SpillQueue::new(10, &dir);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        // Fill past the bound, drain part, fill again, drain all: order is kept throughout.
        for round in 0..3 {
            for _ in 0..50 {
                q.push(vec![next_in; 3], 3).unwrap();
                next_in += 1;
            }
            assert!(q.spilled() > 0, "round {round}");
            for _ in 0..30 {
                assert_eq!(q.pop().unwrap(), Some(vec![next_out; 3]));
                next_out += 1;
            }
        }
        while let Some(v) = q.pop().unwrap() {
            assert_eq!(v, vec![next_out; 3]);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert!(q.peak_spilled() >= 40);
        // Back in memory once drained.
        q.push(vec![1], 1).unwrap();
        assert_eq!(q.spilled(), 0);
    }

    #[test]
    fn an_unwritable_directory_keeps_items_in_memory() {
        let mut q: SpillQueue<u64> = SpillQueue::new(1, Path::new("/nonexistent/spill/dir"));
        q.push(1, 1).unwrap();
        assert!(q.push(2, 1).is_err());
        assert_eq!(q.pop().unwrap(), Some(1));
        assert_eq!(q.pop().unwrap(), Some(2));
        assert_eq!(q.pop().unwrap(), None);
    }
}
