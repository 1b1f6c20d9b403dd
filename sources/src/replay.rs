//! Replay of recorded captures and Binance CSV dumps, streamed line by line.
//!
//! Accepted input, detected per line (JSON) or per file (CSV), plain or gzip (by magic bytes):
//! - JSON lines of raw Binance payloads, combined-stream wrappers, or capture lines written by
//!   [`crate::record`] (`{"ts_received":…,"frame":…}`); frames of types cryptoflow does not
//!   process are counted per type as ignored, not as dead letters;
//! - JSON lines of REST items, one object per line as ccxt and many archives store them:
//!   `aggTrades` (`{"a","p","q","f","l","T","m"[,"M"]}`, spot or USDⓈ-M) and `historicalTrades` /
//!   `trades` (`{"id","price","qty","quoteQty","time","isBuyerMaker"[,"isBestMatch"]}`). They
//!   carry no symbol: [`ReplayOptions::symbol`] (`--symbol`) must give it, else the replay stops
//!   with [`ReplayError::RestWithoutSymbol`];
//! - data.binance.vision CSV files (trades, aggTrades, klines; with or without header; ms or µs).
//!
//! A replayed event's `ts_received` is its recorded receive time when the capture has one, else
//! the payload's own trade or event time, so replays are deterministic.
//!
//! The venue of a file's events is the one its capture header names (`{"capture":{"venue":…}}`,
//! written by `cryptoflow record`), else [`ReplayOptions::venue`] (`--venue`), else spot; a
//! header that contradicts `--venue` stops the replay with an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Event, Symbol, Venue};
use flate2::read::MultiGzDecoder;

use crate::binance::{
    csv_is_header, decode_csv_line, decode_frame_with_symbol, symbol_from_dump_name, Control,
    CsvKind, DecodeError, Decoded,
};
use crate::stats::SourceStats;
use crate::EventBatch;

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the pipeline takes it (backpressure still applies).
    Max,
    /// A fixed number of events per second.
    Rate(f64),
    /// A multiple of recorded time (by receive time, else event time).
    Speed(f64),
}

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Pacing.
    pub pace: Pace,
    /// Events per batch handed downstream when not paced.
    pub batch_size: usize,
    /// Symbol of CSV dumps (default: from the file name) and of REST trade items in JSON lines
    /// (no default).
    pub symbol: Option<Symbol>,
    /// CSV kind (default: from the column count).
    pub csv_kind: Option<CsvKind>,
    /// Venue of files without a capture header (default: spot).
    pub venue: Option<Venue>,
    /// Clock origin for pacing (default: when the replay starts).
    pub start: Option<Instant>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            pace: Pace::Max,
            batch_size: 1024,
            symbol: None,
            csv_kind: None,
            venue: None,
            start: None,
        }
    }
}

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CSV dump whose symbol is neither given nor in the file name.
    #[error("cannot tell the symbol of CSV file {0}: name it like BTCUSDT-trades-2024-01-01.csv or pass --symbol")]
    NoSymbol(PathBuf),
    /// A capture header naming another venue than `--venue`, or no known one.
    #[error("{path}: {detail}")]
    Venue {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A REST trade item (which carries no symbol) in a JSON-lines file, and no symbol given.
    #[error("{path} line {line} is a REST `{item}` item, which carries no symbol: pass --symbol")]
    RestWithoutSymbol {
        /// The file.
        path: PathBuf,
        /// The line number (1-based).
        line: u64,
        /// `aggTrades` or `historicalTrades`.
        item: &'static str,
    },
}

/// What a replay read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines read (header and blank lines included).
    pub lines: u64,
    /// Events emitted.
    pub events: u64,
    /// Lines that went to dead letters.
    pub errors: u64,
    /// Lines of known frame types that are not processed (counted per type in the ledger).
    pub ignored: u64,
    /// True when the consumer stopped the replay.
    pub stopped: bool,
}

/// Opens a file for replay, decompressing gzip by its magic bytes.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = File::open(path).map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(f),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
    }
}

/// Wraps in-memory bytes (plain or gzip) for replay, e.g. the bundled sample.
pub fn from_bytes(bytes: &'static [u8]) -> Box<dyn BufRead + Send> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(MultiGzDecoder::new(bytes)))
    } else {
        Box::new(bytes)
    }
}

/// Replays a file; see [`replay_reader`].
pub fn replay_file(
    path: &Path,
    opts: &ReplayOptions,
    stats: &SourceStats,
    emit: impl FnMut(EventBatch) -> bool,
    progress: impl FnMut(u64),
) -> Result<ReplaySummary, ReplayError> {
    let reader = open(path)?;
    replay_reader(reader, path, opts, stats, emit, progress)
}

/// Replays lines from `reader`, handing batches to `emit` (which returns false to stop) and the
/// number of bytes read so far to `progress`. Undecodable lines go to dead letters. The symbol of
/// a CSV dump is [`ReplayOptions::symbol`], else the start of `name` (`BTCUSDT-trades-….csv`).
pub fn replay_reader(
    mut reader: Box<dyn BufRead + Send>,
    name: &Path,
    opts: &ReplayOptions,
    stats: &SourceStats,
    mut emit: impl FnMut(EventBatch) -> bool,
    mut progress: impl FnMut(u64),
) -> Result<ReplaySummary, ReplayError> {
    let io = |source| ReplayError::Io {
        path: name.to_path_buf(),
        source,
    };
    let source = "replay";
    let mut summary = ReplaySummary::default();
    let mut line = String::with_capacity(512);
    let mut batch: EventBatch = Vec::with_capacity(opts.batch_size);
    let mut bytes = 0u64;
    let mut csv: Option<bool> = None;
    let start = opts.start.unwrap_or_else(Instant::now);
    let mut first_ts: Option<i64> = None;
    let paced = !matches!(opts.pace, Pace::Max);
    let mut venue = opts.venue;
    let csv_symbol = opts.symbol.or_else(|| symbol_from_dump_name(name));
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        summary.lines += 1;
        SourceStats::inc(&stats.frames);
        let text = line.trim_end_matches(['\r', '\n']);
        if text.trim().is_empty() {
            continue;
        }
        if summary.lines == 1 && text.starts_with("{\"capture\":") {
            let named = capture_venue(text).map_err(|detail| ReplayError::Venue {
                path: name.to_path_buf(),
                detail,
            })?;
            if let Some(given) = opts.venue.filter(|v| *v != named) {
                return Err(ReplayError::Venue {
                    path: name.to_path_buf(),
                    detail: format!("the capture is from {named}, not {given} (--venue)"),
                });
            }
            venue = Some(named);
            continue;
        }
        let is_csv = *csv.get_or_insert_with(|| !text.trim_start().starts_with('{'));
        let decoded = if is_csv {
            if summary.lines == 1 && csv_is_header(text) {
                continue;
            }
            let symbol = csv_symbol.ok_or_else(|| ReplayError::NoSymbol(name.to_path_buf()))?;
            decode_csv_line(text, symbol, opts.csv_kind).map(Decoded::Event)
        } else {
            decode_frame_with_symbol(text, 0, opts.symbol)
        };
        let event = match decoded {
            Ok(Decoded::Event(mut e)) => {
                if let Some(v) = venue {
                    crate::ws::set_venue(&mut e, v);
                }
                if let Event::Trade(t) = &mut e {
                    if t.ts_received == 0 {
                        t.ts_received = t.ts_exchange;
                    }
                } else if let Event::Kline(k) = &mut e {
                    if k.ts_received == 0 {
                        k.ts_received = k.ts_exchange;
                    }
                }
                e
            }
            Ok(Decoded::Control(c)) => {
                if c.ignored_type().is_some() {
                    summary.ignored += 1;
                }
                stats.control(source, &c);
                if let Control::ServerShutdown { .. } = c {
                    tracing::debug!(source, "Replayed a serverShutdown frame.");
                }
                continue;
            }
            Err(DecodeError::NoSymbol(item)) => {
                return Err(ReplayError::RestWithoutSymbol {
                    path: name.to_path_buf(),
                    line: summary.lines,
                    item,
                });
            }
            Err(err) => {
                summary.errors += 1;
                stats.dead_letter(source, err.kind(), &err, text, 0);
                continue;
            }
        };
        if paced {
            let due = match opts.pace {
                Pace::Rate(r) => Duration::from_secs_f64(summary.events as f64 / r.max(1e-9)),
                Pace::Speed(x) => {
                    let ts = received_or_event_time(&event);
                    let first = *first_ts.get_or_insert(ts);
                    Duration::from_secs_f64(((ts - first).max(0) as f64 / 1000.0) / x.max(1e-9))
                }
                Pace::Max => Duration::ZERO,
            };
            let due = start + due;
            let now = Instant::now();
            if due > now {
                if !batch.is_empty() && !emit(std::mem::take(&mut batch)) {
                    summary.stopped = true;
                    return Ok(summary);
                }
                std::thread::sleep(due - now);
            }
        }
        summary.events += 1;
        SourceStats::inc(&stats.events);
        batch.push(event);
        if batch.len() >= opts.batch_size || (paced && batch.len() >= 64) {
            progress(bytes);
            if !emit(std::mem::replace(
                &mut batch,
                Vec::with_capacity(opts.batch_size),
            )) {
                summary.stopped = true;
                return Ok(summary);
            }
        }
    }
    if !batch.is_empty() && !emit(batch) {
        summary.stopped = true;
    }
    progress(bytes);
    stats.flush();
    Ok(summary)
}

/// The venue a capture header line names.
fn capture_venue(line: &str) -> Result<Venue, String> {
    #[derive(serde::Deserialize)]
    struct Header {
        capture: Capture,
    }
    #[derive(serde::Deserialize)]
    struct Capture {
        venue: String,
    }
    let h: Header =
        serde_json::from_str(line).map_err(|e| format!("unreadable capture header: {e}"))?;
    h.capture
        .venue
        .parse()
        .map_err(|e| format!("capture header: {e}"))
}

fn received_or_event_time(e: &Event) -> i64 {
    match e {
        Event::Trade(t) => t.ts_received,
        Event::Kline(k) => k.ts_received,
        Event::Gap(g) => g.until,
        Event::Polled(p) => p.event_time(),
        Event::Context(c) => c.0.event_time(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGG: &str = r#"{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSD_200626","p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;

    fn venues(text: &str, venue: Option<Venue>) -> Result<Vec<Venue>, ReplayError> {
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.to_string()));
        let opts = ReplayOptions {
            venue,
            ..ReplayOptions::default()
        };
        let mut out = Vec::new();
        replay_reader(
            reader,
            Path::new("mem"),
            &opts,
            &SourceStats::default(),
            |b| {
                out.extend(b.iter().filter_map(|e| match e {
                    Event::Trade(t) => Some(t.venue),
                    _ => None,
                }));
                true
            },
            |_| {},
        )?;
        Ok(out)
    }

    #[test]
    fn the_venue_comes_from_the_header_or_the_option() {
        let headed = format!("{{\"capture\":{{\"venue\":\"binance-coinm\"}}}}\n{AGG}\n");
        assert_eq!(venues(&headed, None).unwrap(), vec![Venue::BinanceCoinm]);
        assert_eq!(
            venues(&headed, Some(Venue::BinanceCoinm)).unwrap(),
            vec![Venue::BinanceCoinm]
        );
        let err = venues(&headed, Some(Venue::BinanceUsdm)).unwrap_err();
        assert!(err.to_string().contains("binance-coinm"), "{err}");
        assert_eq!(
            venues(&format!("{AGG}\n"), Some(Venue::BinanceUsdm)).unwrap(),
            vec![Venue::BinanceUsdm]
        );
        assert_eq!(
            venues(&format!("{AGG}\n"), None).unwrap(),
            vec![Venue::Binance]
        );
        let bad = venues(
            &format!("{{\"capture\":{{\"venue\":\"okx\"}}}}\n{AGG}\n"),
            None,
        );
        assert!(matches!(bad, Err(ReplayError::Venue { .. })));
    }
}
