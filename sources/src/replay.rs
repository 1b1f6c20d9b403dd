//! Replay of recorded captures and Binance CSV dumps, streamed line by line.
//!
//! Accepted input, plain or gzip (by magic bytes), JSON lines or CSV as told by the first
//! non-blank lines of each file (see [Format detection](#format-detection)):
//! - JSON lines of raw Binance payloads, combined-stream wrappers, or capture lines written by
//!   [`crate::record`] (`{"ts_received":…,"frame":…}`); frames of types cryptoflow does not
//!   process are counted per type as ignored, not as dead letters;
//! - JSON lines of REST items, one object per line as ccxt and many archives store them:
//!   `aggTrades` (`{"a","p","q","f","l","T","m"[,"M"]}`, spot or USDⓈ-M) and `historicalTrades` /
//!   `trades` (`{"id","price","qty","quoteQty","time","isBuyerMaker"[,"isBestMatch"]}`). They
//!   carry no symbol: [`ReplayOptions::symbol`] (`--symbol`) must give it, else the file's replay
//!   stops with [`ReplayError::RestWithoutSymbol`];
//! - data.binance.vision CSV files (trades, aggTrades, klines; with or without header; ms or µs).
//!
//! A replayed event's `ts_received` is its recorded receive time when the capture has one, else
//! the payload's own trade or event time, so replays are deterministic.
//!
//! The venue of a file's events is the one its capture header names (`{"capture":{"venue":…}}`,
//! written by `cryptoflow record`), else [`ReplayOptions::venue`] (`--venue`), else spot; a
//! header that contradicts `--venue` stops the file's replay with an error.
//!
//! # Format detection
//!
//! The first 8 non-blank lines of a file (a UTF-8 byte-order mark on its first line removed, a
//! capture header left out) each vote: a JSON object or array for JSON lines; a row of 7, 8 or 12
//! comma-separated fields (as many as `--csv-kind` needs, if given) starting with an integer id
//! and a number for CSV. Other lines (garbage, a CSV header, truncated JSON) do not vote. The
//! majority wins; a tie (no vote at all included) is CSV only when `--csv-kind` is given or the
//! file is named `*.csv[.gz]`, else JSON lines. A garbage first line thus does not make a capture
//! a "CSV" file: it is a dead letter like any other bad line. A CSV header is recognized on the
//! first line only, and only if it looks like one (6 or more fields, each a name).
//!
//! # Damaged files
//!
//! Lines are read as bytes up to `\n`. A line that is not UTF-8, or that does not decode, is a
//! dead letter (the `decode_errors` counter and the ledger's, one log line per kind, a JSON line
//! in `sinks.dead_letters` with the text made valid); the replay goes on. A read error (a
//! truncated or corrupt gzip stream, an I/O error) ends the file with [`ReplayError::Damaged`]
//! after every complete line before it was decoded and handed on; an incomplete last line is
//! dropped with the error. A file that yields no event while some of its lines were dead letters
//! ends with [`ReplayError::NoEvents`]; a file of only blank lines, a capture header, a CSV
//! header, or control and ignored frames is not an error (the summary counts them).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Event, Symbol, Venue};
use flate2::read::MultiGzDecoder;

use crate::binance::{
    decode_csv_line, decode_frame_with_symbol, symbol_from_dump_name, Control, CsvKind,
    DecodeError, Decoded,
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
    /// The file could not be read to its end: a truncated or corrupt compressed stream, or an I/O
    /// error. The complete lines before were replayed.
    #[error("{path} is damaged: reading stopped after line {line}: {source} (a truncated or corrupt file)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The last complete line read (1-based; 0: none).
        line: u64,
        /// The read error.
        source: std::io::Error,
    },
    /// A file with lines that were dead letters and not one event: not a format cryptoflow reads.
    #[error("nothing replayed from {path}: {errors} of its {lines} lines are undecodable (dead letters) and none is an event; is it a Binance capture or CSV dump?")]
    NoEvents {
        /// The file.
        path: PathBuf,
        /// Lines read.
        lines: u64,
        /// Lines that went to dead letters.
        errors: u64,
    },
}

/// A replay of one file that stopped early or replayed nothing: why, and what it read before.
/// The events counted in `read` were handed on.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ReplayFailure {
    /// Why.
    pub error: ReplayError,
    /// What was read (and handed on) before.
    pub read: ReplaySummary,
}

/// The input format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// JSON lines: captures, raw frames, REST items.
    JsonLines,
    /// data.binance.vision CSV.
    Csv,
}

/// Non-blank lines looked at to tell a file's format.
const SNIFF_LINES: usize = 8;

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
    open_counted(path, Arc::default())
}

/// A reader that adds the bytes it reads from the file to a shared counter: for a gzip file
/// these are compressed bytes, comparable with the file's size (a progress bar's total).
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// [`open`], adding the bytes read from the file itself (compressed, for gzip) to `read`.
pub fn open_counted(
    path: &Path,
    read: Arc<AtomicU64>,
) -> Result<Box<dyn BufRead + Send>, ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = Counted {
        inner: File::open(path).map_err(io)?,
        read,
    };
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

/// Replays a file; see [`replay_reader`]. `progress` is given the bytes of the file read so far
/// (compressed bytes for a gzip file), which end at the file's size.
pub fn replay_file(
    path: &Path,
    opts: &ReplayOptions,
    stats: &SourceStats,
    emit: impl FnMut(EventBatch) -> bool,
    mut progress: impl FnMut(u64),
) -> Result<ReplaySummary, ReplayFailure> {
    let read = Arc::new(AtomicU64::new(0));
    let reader = open_counted(path, read.clone()).map_err(|error| ReplayFailure {
        error,
        read: ReplaySummary::default(),
    })?;
    replay_reader(reader, path, opts, stats, emit, |_| {
        progress(read.load(Ordering::Relaxed))
    })
}

/// Replays lines from `reader`, handing batches to `emit` (which returns false to stop) and the
/// number of bytes read so far to `progress`. Undecodable lines go to dead letters. The symbol of
/// a CSV dump is [`ReplayOptions::symbol`], else the start of `name` (`BTCUSDT-trades-….csv`).
///
/// Whatever happens, the events read are handed to `emit` before this returns; on an error,
/// [`ReplayFailure::read`] says how many (see the module's "Damaged files").
pub fn replay_reader(
    reader: Box<dyn BufRead + Send>,
    name: &Path,
    opts: &ReplayOptions,
    stats: &SourceStats,
    mut emit: impl FnMut(EventBatch) -> bool,
    mut progress: impl FnMut(u64),
) -> Result<ReplaySummary, ReplayFailure> {
    let mut summary = ReplaySummary::default();
    let mut batch: EventBatch = Vec::with_capacity(opts.batch_size);
    let mut bytes = 0u64;
    let result = replay_lines(
        reader,
        name,
        opts,
        stats,
        &mut Sink {
            summary: &mut summary,
            batch: &mut batch,
            bytes: &mut bytes,
            emit: &mut emit,
            progress: &mut progress,
        },
    );
    // What was read before an error is handed on too.
    if !batch.is_empty() && !emit(batch) {
        summary.stopped = true;
    }
    progress(bytes);
    stats.flush();
    let error = match result {
        Err(error) => error,
        Ok(()) if !summary.stopped && summary.events == 0 && summary.errors > 0 => {
            ReplayError::NoEvents {
                path: name.to_path_buf(),
                lines: summary.lines,
                errors: summary.errors,
            }
        }
        Ok(()) => return Ok(summary),
    };
    Err(ReplayFailure {
        error,
        read: summary,
    })
}

/// Where [`replay_lines`] puts what it reads.
struct Sink<'a, E, P> {
    summary: &'a mut ReplaySummary,
    batch: &'a mut EventBatch,
    bytes: &'a mut u64,
    emit: &'a mut E,
    progress: &'a mut P,
}

/// The lines of a reader as bytes, the first ones read ahead to tell the format. A read error
/// met while reading ahead is held back until the lines before it are taken.
struct Lines {
    reader: Box<dyn BufRead + Send>,
    ahead: VecDeque<Vec<u8>>,
    held: Option<std::io::Error>,
}

impl Lines {
    /// Reads lines ahead until [`SNIFF_LINES`] of them are not blank, the end, or an error.
    fn read_ahead(reader: Box<dyn BufRead + Send>) -> Self {
        let mut lines = Lines {
            reader,
            ahead: VecDeque::new(),
            held: None,
        };
        let mut content = 0;
        while content < SNIFF_LINES {
            let mut buf = Vec::new();
            match lines.reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if !buf.trim_ascii().is_empty() {
                        content += 1;
                    }
                    lines.ahead.push_back(buf);
                }
                Err(e) => {
                    lines.held = Some(e);
                    break;
                }
            }
        }
        lines
    }

    /// The texts of the lines read ahead that tell the format: UTF-8, not blank, not a capture
    /// header.
    fn sample(&self) -> impl Iterator<Item = &str> {
        self.ahead.iter().enumerate().filter_map(|(i, raw)| {
            let text = line_text(raw, i == 0).ok()?;
            let capture_header = i == 0 && text.starts_with("{\"capture\":");
            (!text.trim().is_empty() && !capture_header).then_some(text)
        })
    }

    /// Reads the next line, with its `\n` if it has one, into `buf`; 0 at the end. The bytes of
    /// an incomplete line before an error are dropped with it.
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.clear();
        if let Some(mut line) = self.ahead.pop_front() {
            std::mem::swap(buf, &mut line);
            return Ok(buf.len());
        }
        if let Some(e) = self.held.take() {
            return Err(e);
        }
        self.reader.read_until(b'\n', buf)
    }
}

/// A line's text: without its line end, without a UTF-8 byte-order mark if it is the `first`.
fn line_text(raw: &[u8], first: bool) -> Result<&str, std::str::Utf8Error> {
    let mut raw = raw;
    if first {
        raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    }
    while let [rest @ .., b'\n' | b'\r'] = raw {
        raw = rest;
    }
    std::str::from_utf8(raw)
}

/// What one line looks like, for [`detect_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A JSON object or array.
    Json,
    /// A CSV row of a dump: 7, 8 or 12 fields (or as many as `--csv-kind` needs), an integer
    /// first and a number second.
    CsvRow,
    /// Neither: garbage, a CSV header, a truncated JSON line.
    Other,
}

fn shape(text: &str, csv_kind: Option<CsvKind>) -> Shape {
    let t = text.trim();
    if t.starts_with(['{', '[']) {
        return match serde_json::from_str::<serde::de::IgnoredAny>(t) {
            Ok(_) => Shape::Json,
            Err(_) => Shape::Other,
        };
    }
    let fields: Vec<&str> = t.split(',').map(str::trim).collect();
    let columns_fit = match csv_kind {
        Some(k) => fields.len() >= csv_columns(k),
        None => matches!(fields.len(), 7 | 8 | 12),
    };
    if columns_fit && fields[0].parse::<i64>().is_ok() && fields[1].parse::<f64>().is_ok() {
        Shape::CsvRow
    } else {
        Shape::Other
    }
}

fn csv_columns(kind: CsvKind) -> usize {
    match kind {
        CsvKind::Trades => 7,
        CsvKind::AggTrades => 8,
        CsvKind::Klines => 12,
    }
}

/// Tells a file's format from its first non-blank lines (see the module's "Format detection"):
/// the majority of the lines that look like JSON or like CSV rows; on a tie, `csv_default`.
fn detect_format<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    csv_kind: Option<CsvKind>,
    csv_default: bool,
) -> Format {
    let (mut json, mut csv) = (0usize, 0usize);
    for line in lines {
        match shape(line, csv_kind) {
            Shape::Json => json += 1,
            Shape::CsvRow => csv += 1,
            Shape::Other => {}
        }
    }
    if csv > json || (csv == json && csv_default) {
        Format::Csv
    } else {
        Format::JsonLines
    }
}

/// Whether the first line of a CSV file is a header: at least 6 fields (every Binance dump has
/// 6 or more columns), each a name (a letter, then letters, digits, `_` or spaces).
fn is_csv_header(text: &str) -> bool {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    fields.len() >= 6
        && fields.iter().all(|f| {
            f.starts_with(|c: char| c.is_ascii_alphabetic())
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
        })
}

/// A `*.csv` or `*.csv.gz` name.
fn named_csv(name: &Path) -> bool {
    let n = name.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".csv") || n.ends_with(".csv.gz")
}

/// A line that does not decode: counted in the summary and the ledger, and a dead letter.
fn dead_letter(
    stats: &SourceStats,
    summary: &mut ReplaySummary,
    kind: &str,
    error: &dyn std::fmt::Display,
    raw: &str,
) {
    summary.errors += 1;
    stats.ledger.update(SOURCE, "", |c| {
        c.frames += 1;
        c.decode_errors += 1;
    });
    stats.dead_letter(SOURCE, kind, error, raw, 0);
}

/// The source name of replays (ledger, dead letters, logs).
const SOURCE: &str = "replay";

/// The loop of [`replay_reader`]: returns when the reader ends, the consumer stops (with
/// `summary.stopped`) or on an error; events not yet handed on stay in `out.batch`.
fn replay_lines<E, P>(
    reader: Box<dyn BufRead + Send>,
    name: &Path,
    opts: &ReplayOptions,
    stats: &SourceStats,
    out: &mut Sink<'_, E, P>,
) -> Result<(), ReplayError>
where
    E: FnMut(EventBatch) -> bool,
    P: FnMut(u64),
{
    let source = SOURCE;
    let summary = &mut *out.summary;
    let batch = &mut *out.batch;
    let mut lines = Lines::read_ahead(reader);
    let format = detect_format(lines.sample(), opts.csv_kind, {
        opts.csv_kind.is_some() || named_csv(name)
    });
    let is_csv = format == Format::Csv;
    let mut raw = Vec::with_capacity(512);
    let start = opts.start.unwrap_or_else(Instant::now);
    let mut first_ts: Option<i64> = None;
    let paced = !matches!(opts.pace, Pace::Max);
    let mut venue = opts.venue;
    let csv_symbol = opts.symbol.or_else(|| symbol_from_dump_name(name));
    loop {
        let n = lines
            .next(&mut raw)
            .map_err(|source| ReplayError::Damaged {
                path: name.to_path_buf(),
                line: summary.lines,
                source,
            })?;
        if n == 0 {
            break;
        }
        *out.bytes += n as u64;
        summary.lines += 1;
        SourceStats::inc(&stats.frames);
        let text = match line_text(&raw, summary.lines == 1) {
            Ok(text) => text,
            Err(e) => {
                let shown = String::from_utf8_lossy(&raw);
                let error = format!("line {} is not UTF-8: {e}", summary.lines);
                dead_letter(stats, summary, "utf8", &error, shown.trim_end());
                continue;
            }
        };
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
        let decoded = if is_csv {
            if summary.lines == 1 && is_csv_header(text) {
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
                    crate::binance::set_venue(&mut e, v);
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
                dead_letter(stats, summary, err.kind(), &err, text);
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
                if !batch.is_empty() && !(out.emit)(std::mem::take(batch)) {
                    summary.stopped = true;
                    return Ok(());
                }
                std::thread::sleep(due - now);
            }
        }
        summary.events += 1;
        SourceStats::inc(&stats.events);
        batch.push(event);
        if batch.len() >= opts.batch_size || (paced && batch.len() >= 64) {
            (out.progress)(*out.bytes);
            if !(out.emit)(std::mem::replace(
                batch,
                Vec::with_capacity(opts.batch_size),
            )) {
                summary.stopped = true;
                return Ok(());
            }
        }
    }
    Ok(())
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
        )
        .map_err(|f| f.error)?;
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

    fn trade(id: u64) -> String {
        format!(
            r#"{{"e":"trade","E":{id},"s":"BTCUSDT","t":{id},"p":"1.5","q":"2","T":{id},"m":true,"M":true}}"#
        )
    }

    fn csv_row(id: u64) -> String {
        format!("{id},40000.5,0.01,400.005,17000000{id:05},False,True")
    }

    /// Replays `reader` as file `name`: the outcome, the trade ids emitted, the counters.
    fn replay_from(
        reader: Box<dyn BufRead + Send>,
        name: &str,
    ) -> (Result<ReplaySummary, ReplayFailure>, Vec<u64>, SourceStats) {
        let stats = SourceStats::default();
        let mut ids = Vec::new();
        let res = replay_reader(
            reader,
            Path::new(name),
            &ReplayOptions {
                batch_size: 7,
                ..ReplayOptions::default()
            },
            &stats,
            |b| {
                ids.extend(b.iter().filter_map(|e| match e {
                    Event::Trade(t) => Some(t.trade_id),
                    _ => None,
                }));
                true
            },
            |_| {},
        );
        (res, ids, stats)
    }

    fn replay_bytes(
        bytes: Vec<u8>,
        name: &str,
    ) -> (Result<ReplaySummary, ReplayFailure>, Vec<u64>, SourceStats) {
        replay_from(Box::new(std::io::Cursor::new(bytes)), name)
    }

    fn lines(v: &[&str]) -> Vec<u8> {
        v.iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn progress_counts_the_bytes_of_the_file_compressed_or_not() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("cf-replay-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let text: Vec<u8> = (1..=2000)
            .flat_map(|i| format!("{}\n", trade(i)).into_bytes())
            .collect();
        let plain = dir.join("t.jsonl");
        std::fs::write(&plain, &text).expect("write");
        let gz = dir.join("t.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&text).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        for path in [&plain, &gz] {
            let size = std::fs::metadata(path).expect("size").len();
            let mut seen = Vec::new();
            let read = replay_file(
                path,
                &ReplayOptions {
                    batch_size: 100,
                    ..ReplayOptions::default()
                },
                &SourceStats::default(),
                |_| true,
                |n| seen.push(n),
            )
            .expect("replays");
            assert_eq!(read.events, 2000, "{}", path.display());
            // Never past the file's size, never backwards, and at its size at the end.
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
            assert_eq!(seen.last().copied(), Some(size), "{}", path.display());
            assert!(seen.len() > 2, "reported along the way: {seen:?}");
        }
        // The gzip file is much smaller than its text: its progress is not decompressed bytes.
        assert!(std::fs::metadata(&gz).expect("size").len() * 4 < text.len() as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_format_is_told_by_the_majority_of_the_first_lines() {
        let t = trade(1);
        let row = csv_row(1);
        let header = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match";
        let kline = "1700000000000,1.0,2.0,0.5,1.5,10,1700000059999,15,3,5,7.5,0";
        let agg = "5,40000.5,0.01,10,12,1700000000000,True,True";
        let j = Format::JsonLines;
        let c = Format::Csv;
        #[rustfmt::skip]
        let cases: Vec<(Vec<&str>, Option<CsvKind>, bool, Format)> = vec![
            (vec![&t, &t, &t], None, false, j),
            (vec![&t, &t, &t], None, true, j),
            (vec!["### garbage ###", &t, &t], None, false, j),
            (vec!["id;price", &t], None, true, j),
            (vec![&row, &row], None, false, c),
            (vec![header, &row, &row], None, false, c),
            (vec!["garbage", &row, &row], None, false, c),
            (vec![kline, kline], None, false, c),
            (vec![agg, agg], None, false, c),
            // The majority wins over the first line.
            (vec![&row, &t, &t], None, false, j),
            (vec![&t, &row, &row], None, false, c),
            // Truncated JSON and a header do not vote; a tie falls back to the default.
            (vec![r#"{"e":"trade","#, header], None, false, j),
            (vec![r#"{"e":"trade","#, header], None, true, c),
            (vec![], None, false, j),
            (vec![], None, true, c),
            (vec![&t, &row], None, false, j),
            (vec![&t, &row], Some(CsvKind::Trades), true, c),
            // Wrong column count or a non-numeric id is no CSV row.
            (vec!["1,2,3", "1,2,3"], None, true, c),
            (vec!["1,2,3", "1,2,3", &t], None, true, j),
            (vec!["x,40000.5,0.01,400,1700000000000,False,True"; 3], None, false, j),
            // With --csv-kind, extra columns are fine.
            (vec!["1,40000.5,0.01,400,1700000000000,False,True,extra,x"; 2], Some(CsvKind::Trades), false, c),
        ];
        for (sample, kind, default, want) in cases {
            assert_eq!(
                detect_format(sample.iter().copied(), kind, default),
                want,
                "{sample:?} {kind:?} {default}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_removed_from_the_first_line_only() {
        assert_eq!(line_text(b"\xEF\xBB\xBF{}\r\n", true), Ok("{}"));
        assert_eq!(
            line_text(b"\xEF\xBB\xBF{}\n", false),
            Ok("\u{FEFF}{}"),
            "a BOM inside the file is data (and then a dead letter)"
        );
        assert_eq!(line_text(b"abc", true), Ok("abc"));
        assert!(line_text(b"caf\xE9\n", true).is_err());
        assert!(is_csv_header(
            "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
        ));
        assert!(is_csv_header("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"));
        assert!(is_csv_header(
            "Aggregate tradeId,Price,Quantity,First tradeId,Last tradeId,Timestamp,Was the buyer the maker,Was the trade the best price match"
        ));
        assert!(!is_csv_header("### exported by tool X ###"));
        assert!(!is_csv_header("hello world"));
        assert!(!is_csv_header(&csv_row(1)));
        assert!(!is_csv_header(&trade(1)));
    }

    #[test]
    fn a_byte_order_mark_or_a_garbage_first_line_keeps_every_event() {
        // BOM + JSON lines.
        let mut text = b"\xEF\xBB\xBF".to_vec();
        text.extend(lines(
            &(1..=20)
                .map(trade)
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ));
        let (res, ids, stats) = replay_bytes(text, "capture.jsonl");
        assert_eq!(res.unwrap().events, 20);
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
        assert_eq!(SourceStats::get(&stats.decode_errors), 0);
        // BOM + a CSV dump without header, named after its symbol.
        let mut text = b"\xEF\xBB\xBF".to_vec();
        for id in 1..=20 {
            text.extend(format!("{}\n", csv_row(id)).into_bytes());
        }
        let (res, ids, _) = replay_bytes(text, "BTCUSDT-trades-2023-11-14.csv");
        assert_eq!(res.unwrap().events, 20);
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
        // A garbage first line is a dead letter, not a reason to read JSON as CSV.
        let mut v = vec!["garbage, not a frame".to_string()];
        v.extend((2..=20).map(trade));
        let (res, ids, stats) = replay_bytes(
            lines(&v.iter().map(String::as_str).collect::<Vec<_>>()),
            "BTCUSDT-capture.jsonl",
        );
        let s = res.unwrap();
        assert_eq!((s.events, s.errors), (19, 1));
        assert_eq!(ids, (2..=20).collect::<Vec<_>>());
        assert_eq!(SourceStats::get(&stats.decode_errors), 1);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_a_dead_letter_counted_in_the_ledger() {
        let mut text = Vec::new();
        for id in 1..=30 {
            text.extend(format!("{}\n", trade(id)).into_bytes());
            if id == 10 {
                text.extend(b"{\"e\":\"trade\",\"s\":\"caf\xE9\"}\n");
            }
        }
        let (res, ids, stats) = replay_bytes(text, "capture.jsonl");
        let s = res.unwrap();
        assert_eq!((s.lines, s.events, s.errors), (31, 30, 1));
        assert_eq!(ids, (1..=30).collect::<Vec<_>>());
        assert_eq!(SourceStats::get(&stats.decode_errors), 1);
        assert_eq!(stats.ledger.get("replay", "").unwrap().decode_errors, 1);
    }

    /// A reader that gives `data`, then fails.
    struct Cut(std::io::Cursor<Vec<u8>>);

    impl Read for Cut {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "cut here",
                )),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_read_error_ends_the_file_after_handing_on_every_complete_line() {
        // The error after 50 lines and half a line, and (read ahead) after 3 lines.
        for n in [50u64, 3] {
            let mut text = Vec::new();
            for id in 1..=n {
                text.extend(format!("{}\n", trade(id)).into_bytes());
            }
            text.extend(br#"{"e":"trade","E":1,"s":"BTC"#);
            let reader = Box::new(BufReader::with_capacity(
                16,
                Cut(std::io::Cursor::new(text)),
            ));
            let (res, ids, _) = replay_from(reader, "capture.jsonl");
            let f = res.unwrap_err();
            assert_eq!((f.read.lines, f.read.events, f.read.errors), (n, n, 0));
            assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "every event handed on");
            match &f.error {
                ReplayError::Damaged { path, line, .. } => {
                    assert_eq!((path.as_path(), *line), (Path::new("capture.jsonl"), n));
                }
                other => panic!("{other:?}"),
            }
            let msg = f.to_string();
            assert!(
                msg.contains("capture.jsonl is damaged") && msg.contains("cut here"),
                "{msg}"
            );
        }
        // A truncated gzip stream: the complete lines before the cut.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut all = String::new();
        for id in 1..=2000 {
            all.push_str(&trade(id));
            all.push('\n');
        }
        std::io::Write::write_all(&mut gz, all.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let cut = bytes[..bytes.len() / 2].to_vec();
        let mut prefix = Vec::new();
        let _ = MultiGzDecoder::new(&cut[..]).read_to_end(&mut prefix);
        let before = prefix.iter().filter(|b| **b == b'\n').count() as u64;
        assert!(before > 10 && before < 2000, "{before}");
        let reader = Box::new(BufReader::new(MultiGzDecoder::new(std::io::Cursor::new(
            cut,
        ))));
        let (res, ids, _) = replay_from(reader, "capture.jsonl.gz");
        let f = res.unwrap_err();
        assert!(matches!(f.error, ReplayError::Damaged { .. }), "{f}");
        assert_eq!((f.read.lines, f.read.events), (before, before));
        assert_eq!(ids, (1..=before).collect::<Vec<_>>());
    }

    #[test]
    fn a_file_without_one_event_fails_unless_nothing_in_it_was_bad() {
        let (res, ids, _) = replay_bytes(lines(&["shopping list", "", "eggs, milk"]), "notes.txt");
        let f = res.unwrap_err();
        assert!(ids.is_empty());
        assert_eq!((f.read.lines, f.read.errors), (3, 2));
        let msg = f.to_string();
        assert!(msg.contains("nothing replayed from notes.txt"), "{msg}");
        // A capture header, a subscription answer and an ignored frame: nothing bad, no error.
        let ok = lines(&[
            r#"{"capture":{"venue":"binance"}}"#,
            r#"{"result":null,"id":1}"#,
            r#"{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT","c":"1","o":"1","h":"1","l":"1","v":"1","q":"1"}"#,
        ]);
        let s = replay_bytes(ok, "capture.jsonl").0.unwrap();
        assert_eq!((s.events, s.errors, s.ignored), (0, 0, 2));
        // A CSV header alone, blank lines, an empty file.
        let s = replay_bytes(
            lines(&["id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"]),
            "BTCUSDT-trades-2023-11-14.csv",
        )
        .0
        .unwrap();
        assert_eq!((s.lines, s.events, s.errors), (1, 0, 0));
        assert_eq!(replay_bytes(lines(&["", "  "]), "x").0.unwrap().events, 0);
        assert_eq!(replay_bytes(Vec::new(), "x").0.unwrap().lines, 0);
    }
}
