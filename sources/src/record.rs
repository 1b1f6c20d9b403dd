//! Writes received frames with their receive time, in the capture format replay reads back.
//!
//! One line per frame: `{"ts_received":<ms>,"frame":<the frame exactly as received>}`; a frame
//! that is not JSON is kept as `{"ts_received":<ms>,"raw":"<escaped text>"}`. A path ending in
//! `.gz` is written gzip-compressed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::de::IgnoredAny;

/// A capture writer.
pub struct Recorder {
    out: Box<dyn Write + Send>,
    /// Frames written.
    pub frames: u64,
}

impl Recorder {
    /// Creates (truncates) the capture file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let f = BufWriter::with_capacity(1 << 16, File::create(path)?);
        let out: Box<dyn Write + Send> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(GzEncoder::new(f, Compression::fast()))
        } else {
            Box::new(f)
        };
        Ok(Recorder { out, frames: 0 })
    }

    /// Writes to any writer (tests, stdout).
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Recorder { out, frames: 0 }
    }

    /// Appends one frame.
    pub fn write_frame(&mut self, ts_received: i64, frame: &str) -> std::io::Result<()> {
        let is_json = !frame.contains('\n') && serde_json::from_str::<IgnoredAny>(frame).is_ok();
        if is_json {
            writeln!(
                self.out,
                "{{\"ts_received\":{ts_received},\"frame\":{frame}}}"
            )?;
        } else {
            let raw = serde_json::to_string(frame).map_err(std::io::Error::other)?;
            writeln!(self.out, "{{\"ts_received\":{ts_received},\"raw\":{raw}}}")?;
        }
        self.frames += 1;
        Ok(())
    }

    /// Flushes (and for gzip, finishes) the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
