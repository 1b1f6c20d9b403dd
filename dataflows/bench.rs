//! `cryptoflow bench`: replays Binance trade JSON lines through the full pipeline and prints
//! one `RESULT` line.
//!
//! `ma_sum` is the sum over all trades of the SMA-20 of that trade's symbol at that trade (f64,
//! 4 decimals): a checksum other implementations can reproduce. With `--rate`, latency is from
//! each trade's due time (start + index / rate) to the commit of the flush that contained it.
//!
//! With `--kafka-source BROKERS` the input is first published, paced, to a fresh topic and the
//! pipeline consumes it (Kafka → operators → sinks): the latency then spans the broker too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Event, Symbol};
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
                t.ma_sum += to_f64(e.moving_average);
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
