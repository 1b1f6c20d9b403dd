//! Writes received frames with their receive time, in the capture format replay reads back.
//!
//! One line per frame: `{"ts_received":<ms>,"frame":<the frame exactly as received>}`; a frame
//! that is not JSON is kept as `{"ts_received":<ms>,"raw":"<escaped text>"}`. A path ending in
//! `.gz` is written gzip-compressed. A capture of `cryptoflow record` starts with a header line
//! `{"capture":{"venue":"<venue>"}}` ([`Recorder::write_header`]) so a replay knows which market
//! the frames are from (futures and spot payloads look alike).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use cryptoflow_operators::model::Venue;
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

    /// Writes the header line naming the venue; call it once, before the first frame.
    pub fn write_header(&mut self, venue: Venue) -> std::io::Result<()> {
        writeln!(self.out, "{{\"capture\":{{\"venue\":\"{venue}\"}}}}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay_reader, ReplayOptions};
    use crate::stats::SourceStats;
    use cryptoflow_operators::model::Event;
    use std::io::{BufReader, Read};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn replay_reads_back_what_record_wrote() {
        let buf = Shared::default();
        let mut rec = Recorder::to_writer(Box::new(buf.clone()));
        rec.write_header(Venue::BinanceUsdm).unwrap();
        let t1 = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":5,"s":"BTCUSDT","t":1,"p":"10.5","q":"1","T":4,"m":true,"M":true}}"#;
        let t2 =
            r#"{"e":"trade","E":9,"s":"ETHUSDT","t":7,"p":"2","q":"3","T":8,"m":false,"M":true}"#;
        rec.write_frame(1000, t1).unwrap();
        rec.write_frame(1001, "not json\nat all").unwrap();
        rec.write_frame(1002, t2).unwrap();
        rec.write_frame(1003, r#"{"result":null,"id":1}"#).unwrap();
        assert_eq!(rec.frames, 4);
        drop(rec);
        let bytes = buf.0.lock().unwrap().clone();
        // The frame text is kept byte for byte.
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(t1) && text.contains(t2));

        let stats = SourceStats::default();
        let mut events = Vec::new();
        let reader: Box<dyn std::io::BufRead + Send> =
            Box::new(BufReader::new(std::io::Cursor::new(bytes).take(u64::MAX)));
        let summary = replay_reader(
            reader,
            std::path::Path::new("mem"),
            &ReplayOptions::default(),
            &stats,
            |b| {
                events.extend(b);
                true
            },
            |_| {},
        )
        .unwrap();
        assert!(text.starts_with("{\"capture\":{\"venue\":\"binance-usdm\"}}\n"));
        assert_eq!((summary.lines, summary.events, summary.errors), (5, 2, 1));
        let got: Vec<(Venue, u64, i64, i64)> = events
            .iter()
            .map(|e| match e {
                Event::Trade(t) => (t.venue, t.trade_id, t.ts_exchange, t.ts_received),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Venue::BinanceUsdm, 1, 4, 1000),
                (Venue::BinanceUsdm, 7, 8, 1002)
            ]
        );
        assert_eq!(SourceStats::get(&stats.control_frames), 1);
    }
}
