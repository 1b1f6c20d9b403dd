//! `cryptoflow bench`: replays Binance trade JSON lines through the full pipeline and prints
//! one `RESULT` line.
//!
//! `ma_sum` is the sum over all trades of the SMA-20 of that trade's symbol at that trade (f64,
//! 4 decimals): a checksum other implementations can reproduce. With `--rate`, latency is from
//! each trade's due time (start + index / rate) to the commit of the flush that contained it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::{Event, Symbol};
use cryptoflow_sinks::SinkRecord;
use cryptoflow_sources::binance::{decode_frame, Decoded};
use cryptoflow_sources::replay::{Pace, ReplayOptions};

use crate::config::Config;
use crate::runtime::{run, Cluster, SourceSpec};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Input file (JSON lines of trade payloads).
    pub input: PathBuf,
    /// PostgreSQL URL (mode `postgres`), else mode `none`.
    pub postgres: Option<String>,
    /// Paced rate in trades/s.
    pub rate: Option<f64>,
    /// Another sink to measure instead of PostgreSQL.
    pub sink: Option<BenchSink>,
}

/// A sink `cryptoflow bench` can measure besides PostgreSQL.
#[derive(Debug, Clone)]
pub enum BenchSink {
    /// MySQL / MariaDB at this URL.
    Mysql(String),
    /// InfluxDB (`[sinks.influx]` settings) at this URL.
    Influx(String),
    /// Kafka (`[sinks.kafka]` topics and producer settings) at these bootstrap servers.
    Kafka(String),
}

#[derive(Default)]
struct Tally {
    trades: u64,
    whales: u64,
    ma_sum: f64,
    latencies_us: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// Runs the benchmark; returns the `RESULT` line.
pub fn bench(mut cfg: Config, opts: &BenchOptions) -> Result<String> {
    cfg.sinks.console = false;
    cfg.sinks.jsonl.clear();
    cfg.sinks.postgres.url.clear();
    cfg.sinks.mysql.url.clear();
    cfg.sinks.influx.url.clear();
    cfg.sinks.kafka.brokers.clear();
    let mode = match (&opts.sink, &opts.postgres) {
        (_, Some(url)) => {
            cfg.sinks.postgres.url = url.clone();
            "postgres"
        }
        (Some(BenchSink::Mysql(url)), None) => {
            cfg.sinks.mysql.url = url.clone();
            "mysql"
        }
        (Some(BenchSink::Influx(url)), None) => {
            cfg.sinks.influx.url = url.clone();
            "influx"
        }
        (Some(BenchSink::Kafka(brokers)), None) => {
            cfg.sinks.kafka.brokers = brokers.clone();
            "kafka"
        }
        (None, None) => "none",
    };
    // For latency: the index of each trade in the file gives its due time.
    let due_index: Option<Arc<HashMap<(Symbol, u64), u64>>> = match opts.rate {
        Some(_) => {
            let mut map = HashMap::new();
            let mut reader = cryptoflow_sources::replay::open(&opts.input)?;
            let mut line = String::new();
            let mut i = 0u64;
            while std::io::BufRead::read_line(&mut reader, &mut line).context("reading input")? > 0
            {
                if let Ok(Decoded::Event(Event::Trade(t))) = decode_frame(line.trim_end(), 0) {
                    map.insert((t.symbol, t.trade_id), i);
                    i += 1;
                }
                line.clear();
            }
            Some(Arc::new(map))
        }
        None => None,
    };
    let start = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t2 = tally.clone();
    let rate = opts.rate;
    let observer = Box::new(move |records: &[SinkRecord], committed: Instant| {
        let Ok(mut t) = t2.lock() else { return };
        for r in records {
            if let SinkRecord::Trade(e) = r {
                t.trades += 1;
                t.ma_sum += to_f64(e.moving_average);
                if e.is_whale {
                    t.whales += 1;
                }
                if let (Some(map), Some(rate)) = (&due_index, rate) {
                    if let Some(i) = map.get(&(e.trade.symbol, e.trade.trade_id)) {
                        let due = start + std::time::Duration::from_secs_f64(*i as f64 / rate);
                        t.latencies_us
                            .push(committed.saturating_duration_since(due).as_micros() as u64);
                    }
                }
            }
        }
    });
    let replay = ReplayOptions {
        pace: opts.rate.map(Pace::Rate).unwrap_or(Pace::Max),
        start: Some(start),
        ..ReplayOptions::default()
    };
    let source = SourceSpec::Replay {
        files: vec![opts.input.clone()],
        opts: replay,
        progress: false,
    };
    let report = run(&cfg, source, &Cluster::default(), Some(observer))?;
    let secs = report.elapsed.as_secs_f64();
    let mut t = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
    let mut line = format!(
        "RESULT peer=rust mode={mode} n={} secs={secs:.3} trades_per_s={:.0} whales={} ma_sum={:.4}",
        t.trades,
        t.trades as f64 / secs.max(1e-9),
        t.whales,
        t.ma_sum
    );
    if opts.rate.is_some() {
        t.latencies_us.sort_unstable();
        let max = t.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0;
        line.push_str(&format!(
            " lat_p50_ms={:.3} lat_p99_ms={:.3} lat_max_ms={max:.3}",
            percentile(&t.latencies_us, 0.50),
            percentile(&t.latencies_us, 0.99)
        ));
    }
    Ok(line)
}
