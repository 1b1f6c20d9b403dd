//! `cryptoflow bench`: replays Binance trade JSON lines through the full pipeline and prints
//! one `RESULT` line.
//!
//! `ma_sum` is the sum over all trades of the SMA-`sma_window` (20 by default) of that trade's
//! symbol at that trade, each converted to f64 and added with compensation, so the sum does not
//! depend on the order in which workers deliver the trades (4 decimals): a checksum other
//! implementations can reproduce. With `--rate`, latency is from each trade's due time (start +
//! index / rate) to the commit of the flush that contained it.
//!
//! With `--kafka-source BROKERS` the input is first published, paced, to a fresh topic and the
//! pipeline consumes it (Kafka → operators → sinks): the latency then spans the broker too.
//!
//! [`baseline`] is the reference the pipeline is measured against: one thread reads the same
//! file, decodes each line with the same decoder, and keeps the moving average and the whale
//! flag per symbol, nothing else. [`compare`] runs both alternately on one file and checks that
//! they agree on trades, whales and `ma_sum`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cryptoflow_operators::dataflow::{AnalyticsConfig, FxHashMap};
use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::{Event, Output, Symbol, Venue};
use cryptoflow_operators::Decimal;
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
    /// Read the input through Kafka at these bootstrap servers (needs `rate`).
    pub kafka_source: Option<String>,
}

/// How long the consumer gets to join its group before publishing starts.
const KAFKA_WARMUP: std::time::Duration = std::time::Duration::from_secs(8);

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

/// What one benchmark run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// `baseline`, `none` (the pipeline without sinks), `postgres`, `mysql`, `influx`, `kafka`,
    /// or `kafka-source+<sink>`.
    pub mode: String,
    /// Trades processed.
    pub trades: u64,
    /// Trades flagged as whales.
    pub whales: u64,
    /// The `ma_sum` checksum (see the module documentation).
    pub ma_sum: f64,
    /// Wall-clock seconds of the run.
    pub secs: f64,
    /// Latency percentiles (paced runs only).
    pub latency: Option<Latency>,
}

/// Latency percentiles of a paced run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl BenchResult {
    /// Trades per second of wall-clock time.
    pub fn trades_per_s(&self) -> f64 {
        self.trades as f64 / self.secs.max(1e-9)
    }

    /// The `RESULT` line.
    pub fn line(&self) -> String {
        let mut line = format!(
            "RESULT peer=rust mode={} n={} secs={:.3} trades_per_s={:.0} whales={} ma_sum={:.4}",
            self.mode,
            self.trades,
            self.secs,
            self.trades_per_s(),
            self.whales,
            self.ma_sum
        );
        if let Some(l) = self.latency {
            line.push_str(&format!(
                " lat_p50_ms={:.3} lat_p99_ms={:.3} lat_max_ms={:.3}",
                l.p50_ms, l.p99_ms, l.max_ms
            ));
        }
        line
    }
}

/// A sum of f64 values with Neumaier's compensation: the error stays near one rounding of the
/// total whatever the order of the terms, so `ma_sum` is the same to 4 decimals whichever worker
/// delivers which symbol first (a plain running sum of a million averages drifts in the 4th).
#[derive(Debug, Default, Clone, Copy)]
pub struct Checksum {
    sum: f64,
    compensation: f64,
}

impl Checksum {
    /// Adds a term.
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum so far.
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[derive(Default)]
struct Tally {
    trades: u64,
    whales: u64,
    ma_sum: Checksum,
    latencies_us: Vec<u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// Runs the benchmark through the pipeline.
pub fn bench(mut cfg: Config, opts: &BenchOptions) -> Result<BenchResult> {
    cfg.sinks.console = false;
    cfg.sinks.jsonl.clear();
    cfg.sinks.postgres.url.clear();
    cfg.sinks.mysql.url.clear();
    cfg.sinks.influx.url.clear();
    cfg.sinks.kafka.brokers.clear();
    let kafka_mode = opts.kafka_source.is_some();
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
    let started: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    if opts.kafka_source.is_none() {
        let _ = started.set(Instant::now());
    }
    let start_at = started.clone();
    let n_trades = due_index.as_ref().map(|m| m.len()).unwrap_or(0);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let t2 = tally.clone();
    let rate = opts.rate;
    let observer = Box::new(move |records: &[Output], committed: Instant| {
        let Ok(mut t) = t2.lock() else { return };
        for r in records {
            if let Output::Trade(e) = r {
                t.trades += 1;
                t.ma_sum.add(to_f64(e.moving_average));
                if e.is_whale {
                    t.whales += 1;
                }
                if let (Some(map), Some(rate), Some(start)) = (&due_index, rate, start_at.get()) {
                    if let Some(i) = map.get(&(e.trade.symbol, e.trade.trade_id)) {
                        let due = *start + std::time::Duration::from_secs_f64(*i as f64 / rate);
                        t.latencies_us
                            .push(committed.saturating_duration_since(due).as_micros() as u64);
                    }
                }
            }
        }
    });
    let (source, publisher) = match &opts.kafka_source {
        None => {
            let replay = ReplayOptions {
                pace: opts.rate.map(Pace::Rate).unwrap_or(Pace::Max),
                start: started.get().copied(),
                ..ReplayOptions::default()
            };
            let source = SourceSpec::Replay {
                files: vec![opts.input.clone()],
                opts: replay,
                progress: false,
            };
            (source, None)
        }
        Some(brokers) => {
            let rate = opts
                .rate
                .context("--kafka-source needs --rate (the publisher's pace)")?;
            let n = n_trades;
            let tag = format!(
                "{}-{}",
                std::process::id(),
                crate::bench::nanos() % 1_000_000_000
            );
            let topic = format!("cryptoflow-bench-{tag}");
            create_topic(brokers, &topic, 1)?;
            let mut kafka = cfg.kafka_source();
            kafka.brokers = brokers.clone();
            kafka.topics = vec![topic.clone()];
            kafka.group_id = format!("cryptoflow-bench-{tag}");
            kafka.dead_letter_topic.clear();
            kafka
                .consumer
                .entry("session.timeout.ms".into())
                .or_insert_with(|| "6000".into());
            let input = opts.input.clone();
            let brokers = brokers.clone();
            let start_at = started.clone();
            let publisher = std::thread::spawn(move || {
                publish_paced(&input, &brokers, &topic, rate, KAFKA_WARMUP, &start_at)
            });
            let stop_after = KAFKA_WARMUP
                + std::time::Duration::from_secs_f64(n as f64 / rate)
                + std::time::Duration::from_secs(5);
            let source = SourceSpec::Kafka {
                kafka,
                stop_after: Some(stop_after),
            };
            (source, Some(publisher))
        }
    };
    let report = run(&cfg, source, &Cluster::default(), Some(observer))?;
    if let Some(p) = publisher {
        p.join()
            .map_err(|_| anyhow::anyhow!("publisher thread panicked"))??;
    }
    let secs = report.elapsed.as_secs_f64();
    let mut t = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
    let mode = if kafka_mode {
        format!("kafka-source+{mode}")
    } else {
        mode.to_string()
    };
    let latency = opts.rate.map(|_| {
        t.latencies_us.sort_unstable();
        Latency {
            p50_ms: percentile(&t.latencies_us, 0.50),
            p99_ms: percentile(&t.latencies_us, 0.99),
            max_ms: t.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    });
    Ok(BenchResult {
        mode,
        trades: t.trades,
        whales: t.whales,
        ma_sum: t.ma_sum.value(),
        secs,
        latency,
    })
}

/// The moving average and whale threshold of one symbol in [`baseline`]: the last `window`
/// prices in a ring and their running sum.
struct BaselineSymbol {
    prices: Vec<Decimal>,
    /// Slot of the oldest price once the ring is full.
    oldest: usize,
    sum: Decimal,
    threshold: Decimal,
}

impl BaselineSymbol {
    /// Adds a price; returns the mean of the ring (of every price so far while it fills).
    fn push(&mut self, price: Decimal, window: usize) -> Decimal {
        if self.prices.len() < window {
            self.prices.push(price);
        } else {
            self.sum -= self.prices[self.oldest];
            self.prices[self.oldest] = price;
            self.oldest = (self.oldest + 1) % window;
        }
        self.sum += price;
        (self.sum / Decimal::from(self.prices.len() as u64)).normalize()
    }
}

/// The reference loop, on one thread: reads `input` (JSON lines, gzip or not), decodes each line
/// with the decoder the pipeline uses, and per (venue, symbol) keeps a ring of the last
/// `sma_window` prices (`Decimal`, as the pipeline does) with their running sum, and flags trades
/// whose notional reaches the symbol's whale threshold. Lines that are not trades (control
/// frames, klines, undecodable input) are skipped.
///
/// Trades join the averages in file order. The pipeline agrees on files without repeated trade
/// ids and without trades arriving after a hole of `sma_window` or more ids of their symbol
/// (a refill: the pipeline averages those in id order); a capture header's venue is not applied.
/// [`compare`] fails when they disagree.
pub fn baseline(input: &Path, analytics: &AnalyticsConfig) -> Result<BenchResult> {
    let started = Instant::now();
    let mut reader = cryptoflow_sources::replay::open(input)?;
    let mut result = baseline_reader(&mut reader, analytics)
        .with_context(|| format!("reading {}", input.display()))?;
    result.secs = started.elapsed().as_secs_f64();
    Ok(result)
}

/// [`baseline`] over JSON lines from any reader (an in-memory sample in the criterion bench);
/// `secs` is the time spent in this call.
pub fn baseline_reader(
    reader: &mut dyn BufRead,
    analytics: &AnalyticsConfig,
) -> Result<BenchResult> {
    let started = Instant::now();
    let window = analytics.sma_window.max(1);
    let mut symbols: FxHashMap<(Venue, Symbol), BaselineSymbol> = FxHashMap::default();
    let (mut trades, mut whales) = (0u64, 0u64);
    let mut ma_sum = Checksum::default();
    let mut raw = Vec::with_capacity(512);
    loop {
        raw.clear();
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            break;
        }
        let Ok(text) = std::str::from_utf8(&raw) else {
            continue;
        };
        let Ok(Decoded::Event(Event::Trade(trade))) = decode_frame(text.trim_end(), 0) else {
            continue;
        };
        let st = symbols
            .entry((trade.venue, trade.symbol))
            .or_insert_with(|| BaselineSymbol {
                prices: Vec::with_capacity(window),
                oldest: 0,
                sum: Decimal::ZERO,
                threshold: analytics.whales.for_symbol(&trade.symbol),
            });
        let mean = st.push(trade.price, window);
        trades += 1;
        ma_sum.add(to_f64(mean));
        if trade.notional() >= st.threshold {
            whales += 1;
        }
    }
    Ok(BenchResult {
        mode: "baseline".into(),
        trades,
        whales,
        ma_sum: ma_sum.value(),
        secs: started.elapsed().as_secs_f64(),
        latency: None,
    })
}

/// Largest difference of two `ma_sum`s that still counts as equal to 4 decimals.
pub const MA_SUM_TOLERANCE: f64 = 5e-5;

/// Checks that a pipeline run agrees with a baseline run on trades, whales and `ma_sum`.
pub fn check_agreement(baseline: &BenchResult, pipeline: &BenchResult) -> Result<()> {
    let ma_diff = (baseline.ma_sum - pipeline.ma_sum).abs();
    if baseline.trades != pipeline.trades
        || baseline.whales != pipeline.whales
        || ma_diff.is_nan()
        || ma_diff > MA_SUM_TOLERANCE
    {
        bail!(
            "the baseline and the pipeline disagree: baseline n={} whales={} ma_sum={:.4}, \
             pipeline (mode {}) n={} whales={} ma_sum={:.4} (ma_sum difference {ma_diff:.6})",
            baseline.trades,
            baseline.whales,
            baseline.ma_sum,
            pipeline.mode,
            pipeline.trades,
            pipeline.whales,
            pipeline.ma_sum
        );
    }
    Ok(())
}

/// Both sides of `cryptoflow bench --compare`.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Timely worker threads of the pipeline runs.
    pub workers: usize,
    /// The measured baseline runs (warm-up excluded).
    pub baseline: Vec<BenchResult>,
    /// The measured pipeline runs (warm-up excluded).
    pub pipeline: Vec<BenchResult>,
}

/// Median of some values (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Comparison {
    /// Median trades/s of the baseline runs.
    pub fn baseline_median(&self) -> f64 {
        median(
            &self
                .baseline
                .iter()
                .map(BenchResult::trades_per_s)
                .collect::<Vec<_>>(),
        )
    }

    /// Median trades/s of the pipeline runs.
    pub fn pipeline_median(&self) -> f64 {
        median(
            &self
                .pipeline
                .iter()
                .map(BenchResult::trades_per_s)
                .collect::<Vec<_>>(),
        )
    }

    /// The `COMPARE` line: medians of both rates, their ratio pipeline / baseline, and the
    /// checksums both sides agreed on.
    pub fn line(&self) -> String {
        let (b, p) = (self.baseline_median(), self.pipeline_median());
        let first = self.baseline.first();
        format!(
            "COMPARE peer=rust runs={} workers={} n={} whales={} ma_sum={:.4} \
             baseline_trades_per_s={b:.0} pipeline_trades_per_s={p:.0} ratio={:.3}",
            self.baseline.len(),
            self.workers,
            first.map_or(0, |r| r.trades),
            first.map_or(0, |r| r.whales),
            first.map_or(0.0, |r| r.ma_sum),
            p / b
        )
    }
}

/// Runs [`baseline`] and the pipeline without sinks ([`bench`], mode `none`) on `input`: one
/// warm-up each, then `runs` times each alternately, so that both see the same machine load
/// over time. `on_run` sees every run with its phase (`warm-up`, `run 1/5`, …). Every run must
/// agree with the first baseline run on trades, whales and `ma_sum` (else an error names both
/// sides).
pub fn compare(
    cfg: Config,
    input: &Path,
    runs: usize,
    mut on_run: impl FnMut(&str, &BenchResult),
) -> Result<Comparison> {
    if runs == 0 {
        bail!("--compare needs at least 1 run");
    }
    let analytics = cfg.analytics();
    let opts = BenchOptions {
        input: input.to_path_buf(),
        postgres: None,
        rate: None,
        sink: None,
        kafka_source: None,
    };
    let reference = baseline(input, &analytics)?;
    on_run("warm-up", &reference);
    if reference.trades == 0 {
        bail!("{} holds no trades to compare on", input.display());
    }
    let warm = bench(cfg.clone(), &opts)?;
    on_run("warm-up", &warm);
    check_agreement(&reference, &warm)?;
    let mut out = Comparison {
        workers: cfg.pipeline.workers,
        baseline: Vec::with_capacity(runs),
        pipeline: Vec::with_capacity(runs),
    };
    for i in 1..=runs {
        let phase = format!("run {i}/{runs}");
        let b = baseline(input, &analytics)?;
        on_run(&phase, &b);
        check_agreement(&reference, &b)?;
        let p = bench(cfg.clone(), &opts)?;
        on_run(&phase, &p);
        check_agreement(&reference, &p)?;
        out.baseline.push(b);
        out.pipeline.push(p);
    }
    Ok(out)
}

/// The server whose own bulk path `cryptoflow bench --bulk-reference` measures the sink against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkServer {
    /// PostgreSQL at this URL (its database is only used to create and drop others).
    Postgres(String),
    /// MySQL / MariaDB at this URL (likewise).
    Mysql(String),
}

impl BulkServer {
    /// `postgres` or `mysql`.
    pub fn sink(&self) -> &'static str {
        match self {
            BulkServer::Postgres(_) => "postgres",
            BulkServer::Mysql(_) => "mysql",
        }
    }

    /// The server's bulk path: `copy` or `load_data`.
    pub fn bulk(&self) -> &'static str {
        match self {
            BulkServer::Postgres(_) => "copy",
            BulkServer::Mysql(_) => "load_data",
        }
    }
}

/// One run of the bulk reference: the sink's run and the server's load of the same rows.
#[derive(Debug, Clone)]
pub struct BulkRun {
    /// The pipeline run into the sink's database.
    pub sink: BenchResult,
    /// The tables loaded, with their rows (the same on both sides).
    pub tables: Vec<(&'static str, u64)>,
    /// Seconds of the server's own load (`BEGIN` to the end of `COMMIT`).
    pub bulk_secs: f64,
    /// Bytes the load sent.
    pub bulk_bytes: usize,
}

impl BulkRun {
    /// Rows of every loaded table.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// Rows stored per second of the pipeline run's wall time.
    pub fn sink_rows_per_s(&self) -> f64 {
        self.rows() as f64 / self.sink.secs.max(1e-9)
    }

    /// Rows loaded per second of the server's own load.
    pub fn bulk_rows_per_s(&self) -> f64 {
        self.rows() as f64 / self.bulk_secs.max(1e-9)
    }
}

/// Runs of `cryptoflow bench --bulk-reference` and the machine load around them.
#[derive(Debug, Clone)]
pub struct BulkReference {
    /// The server.
    pub server: BulkServer,
    /// Timely worker threads of the pipeline runs.
    pub workers: usize,
    /// The runs, in order.
    pub runs: Vec<BulkRun>,
    /// The 1-minute load average before the first run and after the last (`/proc/loadavg`;
    /// `None` where there is none).
    pub load: (Option<f64>, Option<f64>),
}

impl BulkReference {
    /// Median rows/s of the sink runs.
    pub fn sink_median(&self) -> f64 {
        median(
            &self
                .runs
                .iter()
                .map(BulkRun::sink_rows_per_s)
                .collect::<Vec<_>>(),
        )
    }

    /// Median rows/s of the server's loads.
    pub fn bulk_median(&self) -> f64 {
        median(
            &self
                .runs
                .iter()
                .map(BulkRun::bulk_rows_per_s)
                .collect::<Vec<_>>(),
        )
    }

    /// The `BULKREF` line: rows and tables (those of the first run; every run stores the same),
    /// the medians of both rates, their ratio sink / server, and the load average around the
    /// runs.
    pub fn line(&self) -> String {
        let first = self.runs.first();
        let tables = first.map_or_else(String::new, |r| {
            r.tables
                .iter()
                .map(|(t, n)| format!("{t}:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let load = |l: Option<f64>| l.map_or_else(|| "-".to_string(), |l| format!("{l:.2}"));
        let (s, b) = (self.sink_median(), self.bulk_median());
        format!(
            "BULKREF peer=rust sink={} bulk={} runs={} workers={} trades={} rows={} tables={tables} \
             sink_rows_per_s={s:.0} server_bulk_rows_per_s={b:.0} ratio={:.3} load_before={} load_after={}",
            self.server.sink(),
            self.server.bulk(),
            self.runs.len(),
            self.workers,
            first.map_or(0, |r| r.sink.trades),
            first.map_or(0, BulkRun::rows),
            s / b,
            load(self.load.0),
            load(self.load.1),
        )
    }
}

impl BulkRun {
    /// The per-run line (stderr).
    pub fn line(&self) -> String {
        format!(
            "rows={} sink_secs={:.3} sink_rows_per_s={:.0} bulk_secs={:.3} bulk_rows_per_s={:.0} \
             bulk_mb={:.1} ratio={:.3}",
            self.rows(),
            self.sink.secs,
            self.sink_rows_per_s(),
            self.bulk_secs,
            self.bulk_rows_per_s(),
            self.bulk_bytes as f64 / 1e6,
            self.sink_rows_per_s() / self.bulk_rows_per_s()
        )
    }
}

/// The 1-minute load average (Linux `/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Settings of [`bulk_reference`].
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// Input file (JSON lines of trade payloads).
    pub input: PathBuf,
    /// The server.
    pub server: BulkServer,
    /// Runs (each a pipeline run and a load, alternating).
    pub runs: usize,
    /// Names of the two databases: `<name>_sink` and `<name>_ref`. Given: they are kept after
    /// the last run (for inspection); `None`: private names, dropped after each run.
    pub databases: Option<String>,
}

/// The sink's write path against the server's own bulk load of the very same rows, `runs`
/// times. Each run:
/// 1. creates two fresh databases (`<base>_sink`, `<base>_ref`) on the server and migrates both;
/// 2. runs the pipeline on `input` into `<base>_sink` ([`bench`]: parsing, operators, the sink);
///    its wall time is the sink's time;
/// 3. reads back every table the run wrote (`COPY t TO STDOUT` / `SELECT *`, untimed) and loads
///    the rows into `<base>_ref` in one transaction with `COPY … FROM STDIN` / `LOAD DATA LOCAL
///    INFILE` (timed: `BEGIN` to the end of `COMMIT`);
/// 4. checks that both databases hold the same rows (counts and a digest per table), else fails.
///
/// Both rates count the rows of the same tables: every table the run wrote.
pub fn bulk_reference(
    cfg: Config,
    opts: &BulkOptions,
    mut on_run: impl FnMut(&str, &BulkRun),
) -> Result<BulkReference> {
    if opts.runs == 0 {
        bail!("--bulk-reference needs at least 1 run");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let base = opts.databases.clone().unwrap_or_else(|| {
        format!(
            "cfbulk_{}_{}",
            std::process::id(),
            crate::bench::nanos() % 1_000_000_000
        )
    });
    let names = (format!("{base}_sink"), format!("{base}_ref"));
    let workers = cfg.pipeline.workers;
    let load_before = load_average();
    let mut runs = Vec::with_capacity(opts.runs);
    for i in 1..=opts.runs {
        let run = bulk_run(&rt, &cfg, opts, &names);
        let keep = opts.databases.is_some() && (i == opts.runs || run.is_err());
        if !keep {
            let dropped = rt.block_on(drop_databases(&opts.server, &names));
            if run.is_ok() {
                dropped?;
            }
        }
        let run = run?;
        on_run(&format!("run {i}/{}", opts.runs), &run);
        runs.push(run);
    }
    Ok(BulkReference {
        server: opts.server.clone(),
        workers,
        runs,
        load: (load_before, load_average()),
    })
}

/// Drops both databases of a bulk-reference run.
async fn drop_databases(server: &BulkServer, names: &(String, String)) -> Result<()> {
    use cryptoflow_sinks::{mysql, postgres};
    match server {
        BulkServer::Postgres(u) => {
            postgres::drop_database(u, &names.0).await?;
            postgres::drop_database(u, &names.1).await?;
        }
        BulkServer::Mysql(u) => {
            mysql::drop_database(u, &names.0).await?;
            mysql::drop_database(u, &names.1).await?;
        }
    }
    Ok(())
}

/// One run of [`bulk_reference`] into the databases `names` (sink, reference).
fn bulk_run(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    opts: &BulkOptions,
    names: &(String, String),
) -> Result<BulkRun> {
    use cryptoflow_sinks::{mysql, postgres};
    let err = |e: cryptoflow_sinks::SinkError| anyhow::anyhow!(e);
    let (sink_url, ref_url) = rt.block_on(async {
        match &opts.server {
            BulkServer::Postgres(u) => {
                let s = postgres::recreate_database(u, &names.0).await?;
                let r = postgres::recreate_database(u, &names.1).await?;
                postgres::migrate(&s).await?;
                postgres::migrate(&r).await?;
                Ok((s, r))
            }
            BulkServer::Mysql(u) => {
                let s = mysql::recreate_database(u, &names.0).await?;
                let r = mysql::recreate_database(u, &names.1).await?;
                mysql::migrate(&s).await?;
                mysql::migrate(&r).await?;
                Ok((s, r))
            }
        }
        .map_err(err)
    })?;
    let bench_opts = BenchOptions {
        input: opts.input.clone(),
        postgres: match &opts.server {
            BulkServer::Postgres(_) => Some(sink_url.clone()),
            BulkServer::Mysql(_) => None,
        },
        rate: None,
        sink: match &opts.server {
            BulkServer::Postgres(_) => None,
            BulkServer::Mysql(_) => Some(BenchSink::Mysql(sink_url.clone())),
        },
        kafka_source: None,
    };
    let sink = bench(cfg.clone(), &bench_opts)?;
    let (dumps, bulk, digests) = rt.block_on(async {
        match &opts.server {
            BulkServer::Postgres(_) => {
                let dumps = postgres::dump_tables(&sink_url).await?;
                // The reference gets the sink's day partitions before the timed load.
                postgres::copy_partition_layout(&sink_url, &ref_url).await?;
                let bulk = postgres::copy_load(&ref_url, &dumps).await?;
                let a = postgres::table_digests(&sink_url).await?;
                let b = postgres::table_digests(&ref_url).await?;
                Ok((dumps, bulk, (a, b)))
            }
            BulkServer::Mysql(_) => {
                let dumps = mysql::dump_tables(&sink_url).await?;
                let bulk = mysql::load_data(&ref_url, &dumps).await?;
                let a = mysql::table_digests(&sink_url).await?;
                let b = mysql::table_digests(&ref_url).await?;
                Ok((dumps, bulk, (a, b)))
            }
        }
        .map_err(err)
    })?;
    if digests.0 != digests.1 {
        let differ: Vec<String> = digests
            .0
            .iter()
            .zip(&digests.1)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("{} ({} vs {} rows)", a.table, a.rows, b.rows))
            .collect();
        bail!(
            "the reference database {} does not hold the rows of {}: {} differ",
            names.1,
            names.0,
            differ.join(", ")
        );
    }
    Ok(BulkRun {
        sink,
        tables: dumps.iter().map(|d| (d.table, d.rows)).collect(),
        bulk_secs: bulk.as_secs_f64(),
        bulk_bytes: dumps.iter().map(|d| d.len()).sum(),
    })
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Creates `topic` with `partitions` partitions (an existing one is fine).
fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .with_context(|| format!("cannot connect to Kafka at {brokers}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10))),
        ))
        .with_context(|| format!("cannot create topic {topic}"))?;
    for r in res {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                anyhow::bail!("cannot create topic {t}: {e}");
            }
        }
    }
    Ok(())
}

/// Publishes the trade lines of `input` to `topic` at `rate` per second after `warmup`; sets
/// `started` when the first one is due.
fn publish_paced(
    input: &std::path::Path,
    brokers: &str,
    topic: &str,
    rate: f64,
    warmup: std::time::Duration,
    started: &std::sync::OnceLock<Instant>,
) -> Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut reader = cryptoflow_sources::replay::open(input)?;
    let mut publisher = crate::publish::RawPublisher::new(brokers, topic)?;
    std::thread::sleep(warmup);
    let start = *started.get_or_init(Instant::now);
    rt.block_on(async move {
        let mut line = String::new();
        let mut i = 0u64;
        while std::io::BufRead::read_line(&mut reader, &mut line).context("reading input")? > 0 {
            let text = line.trim_end();
            if matches!(decode_frame(text, 0), Ok(Decoded::Event(Event::Trade(_)))) {
                let due = start + std::time::Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                publisher.send(text, None).await?;
                i += 1;
            }
            line.clear();
        }
        publisher.finish().await
    })
}
