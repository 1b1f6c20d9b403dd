//! A whole replayed file (`sources::replay::replay_reader`): captures, JSON lines of frames or
//! REST items, CSV dumps, plain or gzip; format detection, headers, damaged lines.
//!
//! The first byte picks the file name (a `.csv` name and a given symbol or not) and the CSV
//! kind; the rest is the file.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::io::Cursor;
use std::path::Path;

use cryptoflow_operators::model::Symbol;
use cryptoflow_sources::binance::CsvKind;
use cryptoflow_sources::replay::{replay_reader, ReplayOptions};
use cryptoflow_sources::stats::SourceStats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, file)) = data.split_first() else {
        return;
    };
    let name = if mode & 1 == 0 {
        Path::new("BTCUSDT-trades-2024-01-01.csv")
    } else {
        Path::new("capture.jsonl")
    };
    let opts = ReplayOptions {
        batch_size: 64,
        symbol: (mode & 2 != 0)
            .then(|| Symbol::new("ETHUSDT").ok())
            .flatten(),
        csv_kind: match (mode >> 2) & 3 {
            1 => Some(CsvKind::Trades),
            2 => Some(CsvKind::AggTrades),
            3 => Some(CsvKind::Klines),
            _ => None,
        },
        ..ReplayOptions::default()
    };
    let stats = SourceStats::default();
    let mut events = 0u64;
    let reader: Box<dyn std::io::BufRead + Send> = if file.starts_with(&[0x1f, 0x8b]) {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            Cursor::new(file.to_vec()),
        )))
    } else {
        Box::new(Cursor::new(file.to_vec()))
    };
    let result = replay_reader(
        reader,
        name,
        &opts,
        &stats,
        |batch| {
            events += batch.len() as u64;
            true
        },
        |_| {},
    );
    let summary = match &result {
        Ok(s) => s,
        Err(f) => &f.read,
    };
    assert_eq!(summary.events, events, "every event read is handed on");
});
