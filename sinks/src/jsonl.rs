//! JSON lines: one record per line with a `"type"` tag (`trade`, `candle`, `whale`, `gap`, `late`).
//!
//! Candles appear once per update (forming, then final); a reader keeps the last line per
//! `(venue, symbol, interval, open_time)`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

/// JSON-lines file sink.
pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlSink {
    /// Creates (truncates) `path`, creating parent folders.
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let err = |e: std::io::Error| SinkError::Permanent {
            sink: "jsonl",
            message: format!("cannot open {}: {e}", path.display()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(err)?;
        Ok(JsonlSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, f),
        })
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }
    /// Everything the dataflow outputs; not the ledger's periodic snapshots, whose wall-clock
    /// times would make the file differ between runs of the same input.
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        use cryptoflow_operators::model::{OutputKind, OutputKinds};
        OutputKinds::ALL.without(OutputKind::Quality)
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        let err = |e: std::io::Error| SinkError::Permanent {
            sink: "jsonl",
            message: format!("{}: {e}", self.path.display()),
        };
        for r in records {
            serde_json::to_writer(&mut self.out, r).map_err(|e| err(std::io::Error::other(e)))?;
            self.out.write_all(b"\n").map_err(err)?;
        }
        self.out.flush().map_err(err)
    }

    async fn close(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| SinkError::Permanent {
            sink: "jsonl",
            message: e.to_string(),
        })
    }
}
