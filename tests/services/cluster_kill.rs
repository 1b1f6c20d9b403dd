//! `cryptoflow consume` as a two-process cluster (Kafka → timely workers in two processes →
//! PostgreSQL): process 1 is SIGKILLed while trades flow, process 0 loses its peer and stops (or
//! is killed), and both are started again with the same consumer group; once everything is
//! committed, both get SIGTERM and must drain and exit 0. Every produced trade must end up
//! stored exactly once.
//!
//! Only process 0 reads Kafka, but trades are exchanged by symbol: the trades of the symbols
//! process 1 owns are written by process 1's sinks. Offsets may be committed only once those
//! rows are durable too; otherwise the restart resumes after trades that were never stored.
//!
//! While the first run works, the test keeps comparing the group's committed offsets with the
//! stored rows: a trade whose offset is committed but whose row is not stored would be lost if
//! the cluster died at that moment. Process 1 is killed as soon as that is seen, else once 40% of
//! the trades are stored and the group has committed offsets (so that the check covers trades
//! committed before the crash); it is given a slower sink than process 0's ([`SINKS_1`]).

use crate::support as common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Symbols traded; half of them are owned by each process (see [`owner`]).
const CANDIDATES: [&str; 16] = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
    "DOTUSDT", "LINKUSDT", "LTCUSDT", "TRXUSDT", "ATOMUSDT", "NEARUSDT", "UNIUSDT", "ETCUSDT",
];
/// Symbols per process.
const PER_PROCESS: usize = 5;
/// Trades per symbol.
const PER_SYMBOL: u64 = 10_000;
/// Event time between consecutive trades (over all symbols), ms: 100,000 trades span about
/// 17 minutes, so candles close (and offsets are released) many times during the run.
const STEP_MS: i64 = 10;
/// Trades produced at once, and how often: 100,000 trades take about 12 s, several times process
/// 1's sink delay, so offsets are committed while process 1 still holds rows not yet stored.
const CHUNK: u64 = 2_000;
const CHUNK_EVERY: Duration = Duration::from_millis(250);
/// Kill process 1 once this share of the trades is stored (and some offsets are committed).
const KILL_AT: f64 = 0.4;
/// How long past [`KILL_AT`] the first run may take to commit offsets: process 1's sink
/// writes every 4 s, and offsets are committed only once its rows are stored.
const COMMIT_WAIT: Duration = Duration::from_secs(20);
/// Sink settings of process 0: small batches, so its acks (and the commits) move often.
const SINKS_0: &str = "max_batch = 500\nlinger_ms = 0\n";
/// Sink settings of process 1 in the first run: a slower sink, which waits up to 4 s to gather
/// a batch. The commits trail the stored rows by a few seconds here, so with process 0's settings
/// process 1's rows are stored before their offsets are committed and the loss below is rarely
/// seen; a process whose sink is slower than that (bigger batches, a slower database link) loses
/// every time.
const SINKS_1: &str = "max_batch = 100000\nlinger_ms = 4000\n";

/// The process whose worker owns `symbol`: timely's exchange sends a record to worker
/// `hash % workers` (one worker per process here).
fn owner(symbol: &str) -> usize {
    (cryptoflow_operators::model::Symbol::new(symbol)
        .unwrap()
        .shard_hash()
        % 2) as usize
}

/// [`PER_PROCESS`] symbols owned by each process.
fn symbols() -> Vec<&'static str> {
    let mut out = Vec::new();
    for p in 0..2 {
        let mine: Vec<&str> = CANDIDATES
            .iter()
            .copied()
            .filter(|s| owner(s) == p)
            .take(PER_PROCESS)
            .collect();
        assert_eq!(
            mine.len(),
            PER_PROCESS,
            "not enough symbols for process {p}"
        );
        out.extend(mine);
    }
    out
}

/// One produced trade.
#[derive(Debug, Clone)]
struct Produced {
    symbol: &'static str,
    trade_id: i64,
    partition: i32,
    offset: i64,
}

/// Produces `n` raw trade frames over `symbols` (keyed by symbol), [`CHUNK`] every
/// [`CHUNK_EVERY`] like a live feed, appending where each went to `out`. After the first chunk
/// it waits for a first row stored at `url`, so that the feed outlasts the consumer group's
/// start-up.
async fn produce(
    brokers: String,
    topic: String,
    symbols: Vec<&'static str>,
    n: u64,
    url: String,
    out: Arc<Mutex<Vec<Produced>>>,
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let k = symbols.len() as u64;
    // Event time ends two minutes before the start: at the end the idle watermark finalizes
    // every candle.
    let t0 = cryptoflow_sources::now_ms() - n as i64 * STEP_MS - 120_000;
    let mut next = tokio::time::Instant::now();
    for start in (0..n).step_by(CHUNK as usize) {
        let mut pending = Vec::with_capacity(CHUNK as usize);
        for i in start..(start + CHUNK).min(n) {
            let s = symbols[(i % k) as usize];
            let id = (i / k + 1) as i64;
            let ts = t0 + i as i64 * STEP_MS;
            let payload = format!(
                r#"{{"e":"trade","E":{ts},"s":"{s}","t":{id},"p":"{}.{:02}","q":"0.{:03}","T":{ts},"m":{},"M":true}}"#,
                100 + i % 50,
                i % 100,
                1 + i % 900,
                i % 3 == 0
            );
            let f = producer
                .send_result(FutureRecord::to(&topic).key(s).payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap();
            pending.push((s, id, f));
        }
        let mut chunk = Vec::with_capacity(pending.len());
        for (symbol, trade_id, f) in pending {
            let d = f.await.unwrap().map_err(|(e, _)| e).unwrap();
            chunk.push(Produced {
                symbol,
                trade_id,
                partition: d.partition,
                offset: d.offset,
            });
        }
        out.lock().unwrap().extend(chunk);
        if start == 0 {
            while count(&url).await == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            next = tokio::time::Instant::now();
        }
        next += CHUNK_EVERY;
        tokio::time::sleep_until(next).await;
    }
}

/// The group's committed offset per partition (`None`: nothing committed).
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let out = (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect();
    // Closing a group consumer can be slow: leave it to a background thread.
    std::thread::spawn(move || drop(c));
    out
}

/// Every stored `(symbol, trade_id)`, and the number of rows (to tell duplicates).
async fn stored(url: &str) -> (BTreeSet<(String, i64)>, i64) {
    let c = pg_client(url).await;
    let rows = c
        .query("SELECT symbol, trade_id FROM trades", &[])
        .await
        .unwrap();
    let n = rows.len() as i64;
    (rows.iter().map(|r| (r.get(0), r.get(1))).collect(), n)
}

/// Per symbol, how many trades whose offsets are below `offsets` (committed) are not stored.
/// A symbol's trades are in one partition in trade id order, so they are ids `1..=bound`.
async fn unstored_below(
    url: &str,
    produced: &[Produced],
    offsets: &[Option<i64>],
) -> Vec<(String, i64)> {
    let mut bound: BTreeMap<&str, i64> = BTreeMap::new();
    for p in produced {
        if offsets[p.partition as usize].is_some_and(|c| p.offset < c) {
            let b = bound.entry(p.symbol).or_default();
            *b = (*b).max(p.trade_id);
        }
    }
    if bound.is_empty() {
        return Vec::new();
    }
    let symbols: Vec<String> = bound.keys().map(|s| s.to_string()).collect();
    let bounds: Vec<i64> = bound.values().copied().collect();
    let rows = pg_client(url)
        .await
        .query(
            "SELECT s, b - (SELECT count(*) FROM trades t WHERE t.symbol = s AND t.trade_id <= b)
             FROM unnest($1::text[], $2::int8[]) AS u(s, b)",
            &[&symbols, &bounds],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn count(url: &str) -> i64 {
    pg_client(url)
        .await
        .query_one("SELECT count(*) FROM trades", &[])
        .await
        .unwrap()
        .get(0)
}

/// Starts process `process` of the two-process cluster; its log goes to `log`.
#[allow(clippy::too_many_arguments)]
fn spawn_process(
    process: usize,
    config: &Path,
    hostfile: &Path,
    url: &str,
    brokers: &str,
    topic: &str,
    group: &str,
    log: &Path,
) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .args(["consume", "--quiet", "--workers", "1", "--processes", "2"])
            .args(["--process", &process.to_string(), "--hostfile"])
            .arg(hostfile)
            .arg("--config")
            .arg(config)
            .args(["--postgres", url, "--brokers", brokers, "--topic", topic])
            .args(["--group", group])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    )
}

/// Waits up to `limit` for `child` to exit; its exit status, or `None` if it still runs.
async fn wait_exit(child: &mut Killed, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM (the graceful stop of `docker stop` or a pod eviction) to a child.
fn terminate(child: &Killed) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The last `n` lines of a log that tell of an error, a warning or a panic.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["ERROR", "WARN", "panicked", "error:", "poisoned"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Missing trades per symbol: `symbol (process P): N missing, ids A..=B`.
fn describe(missing: &[&Produced]) -> String {
    let mut by: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for m in missing {
        by.entry(m.symbol).or_default().push(m.trade_id);
    }
    by.iter()
        .map(|(s, ids)| {
            format!(
                "{s} (process {}): {} missing, ids {}..={}",
                owner(s),
                ids.len(),
                ids.iter().min().unwrap(),
                ids.iter().max().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_process_1_loses_no_trade() {
    // Its timing (a paced feed against a sink that writes every 4 s) wants the box to itself.
    let _heavy = common::heavy().await;
    const PARTITIONS: i32 = 2;
    let started = Instant::now();
    let brokers = kafka_brokers();
    let topic = unique_suffix("cluster-raw");
    let group = unique_suffix("cluster-group");
    create_topic(&brokers, &topic, PARTITIONS).await;
    let url = fresh_database("ckill").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();

    let symbols = symbols();
    let n = PER_SYMBOL * symbols.len() as u64;

    let dir: PathBuf = std::env::temp_dir().join(unique_suffix("ckill"));
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = common::cluster_hostfile(&dir, 2);
    let consumer = "[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n";
    let config = |name: &str, sinks: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("[sinks]\n{sinks}\n{consumer}")).unwrap();
        p
    };
    let cfg0 = config("p0.toml", SINKS_0);
    let cfg1 = config("p1.toml", SINKS_1);
    let spawn = |i: usize, cfg: &Path, log: &str| {
        spawn_process(
            i,
            cfg,
            &hostfile,
            &url,
            &brokers,
            &topic,
            &group,
            &dir.join(log),
        )
    };

    // First run. Every few milliseconds: the committed offsets, then whether every trade below
    // them is stored (a trade committed but not stored is lost if the cluster dies now). Process
    // 1 is killed as soon as that happens, else once part of the trades is stored and the group
    // has committed some offsets. The trades are produced meanwhile.
    let mut p1 = spawn(1, &cfg1, "run1-p1.log");
    let mut p0 = spawn(0, &cfg0, "run1-p0.log");
    let so_far = Arc::new(Mutex::new(Vec::new()));
    let producer = tokio::spawn(produce(
        brokers.clone(),
        topic.clone(),
        symbols.clone(),
        n,
        url.clone(),
        so_far.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(180);
    let kill_at = (n as f64 * KILL_AT) as i64;
    let mut polls = 0u32;
    let mut exposed_polls = 0u32;
    let mut worst: Vec<(String, i64)> = Vec::new();
    let mut reached: Option<Instant> = None;
    let committed_at_kill = loop {
        let offsets =
            tokio::task::block_in_place(|| committed(&brokers, &group, &topic, PARTITIONS));
        let produced = so_far.lock().unwrap().clone();
        let gaps = unstored_below(&url, &produced, &offsets).await;
        polls += 1;
        if !gaps.is_empty() {
            exposed_polls += 1;
            if gaps.iter().map(|g| g.1).sum::<i64>() > worst.iter().map(|g| g.1).sum::<i64>() {
                worst = gaps.clone();
            }
        }
        let c = count(&url).await;
        if c >= kill_at && reached.is_none() {
            reached = Some(Instant::now());
        }
        let commits = offsets.iter().any(Option::is_some);
        if !gaps.is_empty() || (reached.is_some() && commits) {
            break commits;
        }
        assert!(
            reached.is_none_or(|t| t.elapsed() < COMMIT_WAIT),
            "no offset committed {COMMIT_WAIT:?} after {kill_at} rows were stored ({c} now); \
             logs in {}",
            dir.display()
        );
        if let Some(s) = p0.0.try_wait().unwrap() {
            panic!(
                "process 0 exited ({s}) before the kill: {}",
                log_tail(&dir.join("run1-p0.log"), 20)
            );
        }
        assert!(
            Instant::now() < deadline,
            "no progress past {c} rows; logs in {}",
            dir.display()
        );
    };
    p1.0.kill().unwrap();
    let killed = Instant::now();
    let _ = p1.0.wait();
    let at_kill = count(&url).await;
    assert!(at_kill < n as i64, "the kill came after the last trade");
    assert!(
        committed_at_kill,
        "no offset was committed before the kill: the check covered nothing"
    );
    eprintln!(
        "before the kill ({at_kill} rows stored, {:?} into the test): {exposed_polls} of {polls} \
         polls saw trades committed but not stored; the most at once: {worst:?}",
        started.elapsed()
    );

    // Process 0 loses its peer: does it exit, and how?
    match wait_exit(&mut p0, Duration::from_secs(10)).await {
        Some(s) => eprintln!(
            "process 0 exited {:?} after process 1 was killed: {s}; its last errors:\n{}",
            killed.elapsed(),
            log_tail(&dir.join("run1-p0.log"), 8)
        ),
        None => {
            eprintln!(
                "process 0 still runs 10 s after process 1 was killed; killing it. Its last errors:\n{}",
                log_tail(&dir.join("run1-p0.log"), 8)
            );
            p0.0.kill().unwrap();
            let _ = p0.0.wait();
        }
    }

    producer.await.unwrap();
    let produced = so_far.lock().unwrap().clone();
    assert_eq!(produced.len() as u64, n);
    eprintln!(
        "produced {n} trades of {:?}; {:?} into the test",
        symbols,
        started.elapsed()
    );

    // Both are gone: what the broker counts as consumed and what is stored can no longer change.
    let offsets = tokio::task::block_in_place(|| committed(&brokers, &group, &topic, PARTITIONS));
    let is_committed = |p: &Produced| offsets[p.partition as usize].is_some_and(|c| p.offset < c);
    let (rows, _) = stored(&url).await;
    let lost_at_crash: Vec<&Produced> = produced
        .iter()
        .filter(|p| is_committed(p) && !rows.contains(&(p.symbol.to_string(), p.trade_id)))
        .collect();
    let stored_by = |proc_: usize| rows.iter().filter(|(s, _)| owner(s) == proc_).count();
    eprintln!(
        "at the crash: {} rows stored (process 0's symbols {}, process 1's {}), {} trades committed \
         (offsets {offsets:?}), {} committed but not stored{}",
        rows.len(),
        stored_by(0),
        stored_by(1),
        produced.iter().filter(|p| is_committed(p)).count(),
        lost_at_crash.len(),
        if lost_at_crash.is_empty() {
            String::new()
        } else {
            format!(": {}", describe(&lost_at_crash))
        }
    );

    // Second run, same group: consume to the end. Done once the group has committed every
    // offset (every candle final and stored) and the row count stays put.
    let p1 = spawn(1, &cfg0, "run2-p1.log");
    let p0 = spawn(0, &cfg0, "run2-p0.log");
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            produced
                .iter()
                .filter(|x| x.partition == p)
                .map(|x| x.offset + 1)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = (-1i64, Instant::now());
    let at_end = loop {
        let c = count(&url).await;
        if c != last.0 {
            last = (c, Instant::now());
        }
        let offs = tokio::task::block_in_place(|| committed(&brokers, &group, &topic, PARTITIONS));
        let done = offs
            .iter()
            .zip(&ends)
            .all(|(o, e)| o.is_some_and(|o| o >= *e));
        if done && last.1.elapsed() >= Duration::from_secs(2) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // SIGTERM to both, process 1 first: it must wait for process 0 to end the cluster's input,
    // then both drain and exit 0.
    terminate(&p1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(&p0);
    let (mut p0, mut p1) = (p0, p1);
    let s0 = wait_exit(&mut p0, Duration::from_secs(40)).await;
    let s1 = wait_exit(&mut p1, Duration::from_secs(40)).await;
    eprintln!(
        "second run: offsets at the end: {at_end}; exits after SIGTERM: process 0 {s0:?}, process 1 {s1:?}; \
         test time {:?}",
        started.elapsed()
    );

    // Every produced trade stored, each once.
    let (rows, row_count) = stored(&url).await;
    let missing: Vec<&Produced> = produced
        .iter()
        .filter(|p| !rows.contains(&(p.symbol.to_string(), p.trade_id)))
        .collect();
    let expected: BTreeSet<(String, i64)> = produced
        .iter()
        .map(|p| (p.symbol.to_string(), p.trade_id))
        .collect();
    let extra = rows.difference(&expected).count();
    let lost_ids: HashSet<(&str, i64)> = lost_at_crash
        .iter()
        .map(|p| (p.symbol, p.trade_id))
        .collect();
    let missing_committed = missing
        .iter()
        .filter(|p| lost_ids.contains(&(p.symbol, p.trade_id)))
        .count();
    assert!(
        missing.is_empty(),
        "{} of {n} trades are not stored ({missing_committed} of them were committed in Kafka \
         before the crash, when {at_kill} rows were stored); {}; logs in {}",
        missing.len(),
        describe(&missing),
        dir.display()
    );
    assert_eq!(
        (row_count, rows.len(), extra),
        (n as i64, n as usize, 0),
        "rows, distinct (symbol, trade_id), unexpected ids"
    );
    assert!(
        at_end,
        "the group did not commit every offset within 180 s of the restart"
    );
    assert!(
        s0.is_some_and(|s| s.success()) && s1.is_some_and(|s| s.success()),
        "after SIGTERM both processes drain and exit 0: process 0 {s0:?}, process 1 {s1:?}; \
         logs in {}:\n{}\n{}",
        dir.display(),
        log_tail(&dir.join("run2-p0.log"), 8),
        log_tail(&dir.join("run2-p1.log"), 8)
    );
    assert!(
        lost_at_crash.is_empty() && exposed_polls == 0,
        "offsets were committed for trades not stored: {} lost at the crash, exposed in \
         {exposed_polls} of {polls} polls",
        lost_at_crash.len()
    );
}
