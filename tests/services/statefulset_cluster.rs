//! Three `cryptoflow replay` processes started as a Kubernetes StatefulSet would start them: no
//! cluster flag, only the environment (`HOSTNAME=cryptoflow-<i>`, `CRYPTOFLOW_PROCESSES=3`,
//! `CRYPTOFLOW_HOSTS`, the sinks' URLs and topics), replaying a generated file into PostgreSQL and
//! Kafka. Process 1 is SIGKILLed mid-run and started again at once with the same environment and
//! address (a pod restarted in place).
//!
//! A timely cluster connects once, at start-up: the survivors cannot take a new peer, and the
//! restarted process waits for peers that are no longer listening. They stop on their own
//! (their peer's connection is gone) or, if they are still running after a grace period, are
//! killed as a liveness probe would; then they are started again too, with the same addresses.
//! So a kill of one process restarts the whole cluster, and a replay starts from its beginning:
//! the sinks' writes are idempotent and the Kafka sink is at least once.
//!
//! The outputs must equal those of a one-process run of the same file: in PostgreSQL, every
//! trade exactly once and the same rows (trades, candles, aggregates, indicators, features,
//! signals); in Kafka every record of the one-process run, with duplicates only of the kind the
//! README's Kafka contract allows (identical copies of a trade, whale, indicator row, feature
//! vector or signal under its dedup key; candle updates where the last per
//! `(venue, symbol, interval, open_time)` wins).

use crate::support as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Processes of the cluster.
const PROCESSES: usize = 3;
/// Trades in the generated file, over [`SYMBOLS`] symbols, [`STEP_MS`] apart: 60 minutes of
/// event time, so every symbol has about 60 one-minute candles and warmed-up indicators.
const TRADES: u64 = 48_000;
const SYMBOLS: usize = 8;
const STEP_MS: i64 = 75;
/// Replay pace of each process (trades per second): the run lasts several seconds, so the kill
/// comes mid-run.
const RATE: u64 = 6_000;
/// Kill process 1 once this share of the trades is stored.
const KILL_AT: f64 = 0.25;
/// How long the survivors may take to stop on their own once their peer is gone.
const SURVIVOR_GRACE: Duration = Duration::from_secs(20);

/// PostgreSQL tables compared with the one-process run, each as JSON rows without the columns
/// that hold the time of writing (`inserted_at`, `updated_at`) or of reading (`ts_received`).
const TABLES: [&str; 6] = [
    "trades",
    "candles",
    "trade_aggregates",
    "indicators",
    "ml_features",
    "signals",
];

/// The environment of pod `cryptoflow-<process>`: everything the run needs, no cluster flag.
fn pod_env(
    process: usize,
    hosts: &str,
    url: &str,
    topics: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("HOSTNAME".into(), format!("cryptoflow-{process}")),
        ("CRYPTOFLOW_PROCESSES".into(), PROCESSES.to_string()),
        ("CRYPTOFLOW_HOSTS".into(), hosts.into()),
        ("CRYPTOFLOW_POSTGRES_URL".into(), url.into()),
        ("CRYPTOFLOW_KAFKA_SINK".into(), kafka_brokers()),
        ("CRYPTOFLOW__PIPELINE__WORKERS".into(), "1".into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    env.extend(topics.iter().cloned());
    env
}

/// Starts `cryptoflow replay INPUT` with `env` only (plus the pace), its log in `log`.
fn spawn(input: &Path, env: &[(String, String)], rate: Option<u64>, log: &Path) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cryptoflow"));
    cmd.env_remove("CRYPTOFLOW_CONFIG")
        .env_remove("CRYPTOFLOW_PROCESS")
        .envs(env.iter().cloned())
        .arg("replay")
        .arg(input)
        .arg("--quiet");
    if let Some(r) = rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    Killed(
        cmd.stdout(Stdio::null())
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

/// The last lines of a log that tell of an error, a warning or a panic.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["ERROR", "WARN", "panicked", "error:", "Error"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn count(url: &str) -> i64 {
    pg_client(url)
        .await
        .query_one("SELECT count(*) FROM trades", &[])
        .await
        .unwrap()
        .get(0)
}

/// Every row of `table` as JSON text without the time-of-writing columns, sorted.
async fn table_rows(url: &str, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT (to_jsonb(t) - 'inserted_at' - 'updated_at' - 'ts_received')::text AS r \
         FROM {table} t ORDER BY r"
    );
    pg_client(url)
        .await
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// How long the topics must be quiet before reading stops.
const QUIET: Duration = Duration::from_secs(3);

/// Every message of `topics` (one partition each), read from the start to the end of each.
fn read_all(brokers: &str, topics: &[String]) -> Vec<(String, serde_json::Value)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_suffix("cluster-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in topics {
        let (_, high) = c
            .fetch_watermarks(t, 0, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("watermarks of {t}: {e}"));
        ends.insert(t.clone(), high);
        tpl.add_partition_offset(t, 0, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut next: BTreeMap<String, i64> = topics.iter().map(|t| (t.clone(), 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    // The high watermark the broker reports can trail the last batch's end (seen with tansu),
    // so reading goes on past it until the topics are quiet.
    while next.iter().any(|(t, n)| *n < ends[t]) || last.elapsed() < QUIET {
        assert!(
            Instant::now() < deadline,
            "reading {topics:?}: at {next:?} of {ends:?} after 120 s"
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        last = Instant::now();
        next.insert(m.topic().to_string(), m.offset() + 1);
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
        out.push((m.topic().to_string(), v));
    }
    std::thread::spawn(move || drop(c));
    out
}

/// How a consumer deduplicates a message under the README's contract: its key, and whether the
/// last message of the key wins (candle updates) or every copy must be the same.
fn dedup_key(kind: &str, v: &serde_json::Value) -> Option<(String, bool)> {
    let f = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
    let t = v["type"].as_str().unwrap_or(kind);
    match (kind, t) {
        (_, "lifecycle") => None, // one per process and run: not a record of the data
        ("trades", _) | (_, "whale") => Some((
            format!("{t} {} {} {}", f("venue"), f("symbol"), f("trade_id")),
            false,
        )),
        (_, "signal") => Some((format!("signal {}", f("id")), false)),
        (_, "candle" | "indicators" | "features") => Some((
            format!(
                "{t} {} {} {} {}",
                f("venue"),
                f("symbol"),
                f("interval"),
                f("open_time")
            ),
            t == "candle",
        )),
        _ => Some((format!("{t} {v}"), false)),
    }
}

/// The messages of one run deduplicated by [`dedup_key`] (receive times removed), per topic
/// kind; panics when copies that must be identical are not. Also returns how many messages
/// were duplicates.
fn deduplicate(
    messages: &[(String, serde_json::Value)],
    kind_of: &BTreeMap<String, String>,
) -> (BTreeMap<String, serde_json::Value>, usize) {
    let mut out: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut dups = 0;
    for (topic, v) in messages {
        let kind = &kind_of[topic];
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("ts_received");
        }
        let Some((key, last_wins)) = dedup_key(kind, &v) else {
            continue;
        };
        let key = format!("{kind}: {key}");
        match out.get(&key) {
            Some(old) => {
                dups += 1;
                assert!(
                    last_wins || *old == v,
                    "two different messages under one dedup key {key}:\n{old}\n{v}"
                );
                out.insert(key, v);
            }
            None => {
                out.insert(key, v);
            }
        }
    }
    (out, dups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_of_three_survives_a_sigkill_with_the_outputs_of_one_process() {
    let _heavy = common::heavy().await;
    let started = Instant::now();
    let brokers = kafka_brokers();
    let dir: PathBuf = std::env::temp_dir().join(unique_suffix("stateful"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = generate(
        &dir.join("trades.jsonl"),
        &[
            "--symbols",
            &SYMBOLS.to_string(),
            "--trades",
            &TRADES.to_string(),
            "--step-ms",
            &STEP_MS.to_string(),
            "--seed",
            "17",
        ],
    );

    // The one-process run: the expected outputs.
    let ref_url = fresh_database("sts_one").await;
    cryptoflow_sinks::postgres::migrate(&ref_url).await.unwrap();
    let ref_topics = pipeline_topics(&unique_suffix("sts-one")).await;
    let mut one_env: Vec<(String, String)> = vec![
        ("CRYPTOFLOW_POSTGRES_URL".into(), ref_url.clone()),
        ("CRYPTOFLOW_KAFKA_SINK".into(), brokers.clone()),
        ("CRYPTOFLOW__PIPELINE__WORKERS".into(), "1".into()),
    ];
    one_env.extend(ref_topics.iter().cloned());
    let mut one = spawn(&input, &one_env, None, &dir.join("one.log"));
    let s = wait_exit(&mut one, Duration::from_secs(300)).await;
    assert!(
        s.is_some_and(|s| s.success()),
        "the one-process run: {s:?}: {}",
        log_tail(&dir.join("one.log"), 10)
    );
    eprintln!(
        "one-process run done, {:?} into the test",
        started.elapsed()
    );

    // The cluster: each process's index from its hostname, the addresses from CRYPTOFLOW_HOSTS.
    let url = fresh_database("sts_three").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let topics = pipeline_topics(&unique_suffix("sts-three")).await;
    let hosts = (0..PROCESSES)
        .map(|_| format!("127.0.0.1:{}", common::private_pg::free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let env = |i: usize| pod_env(i, &hosts, &url, &topics);
    let log = |run: &str, i: usize| dir.join(format!("{run}-p{i}.log"));
    let mut procs: Vec<Killed> = (0..PROCESSES)
        .map(|i| spawn(&input, &env(i), Some(RATE), &log("run1", i)))
        .collect();

    let kill_at = (TRADES as f64 * KILL_AT) as i64;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let c = count(&url).await;
        if c >= kill_at {
            break;
        }
        for (i, p) in procs.iter_mut().enumerate() {
            if let Some(s) = p.0.try_wait().unwrap() {
                panic!(
                    "process {i} exited ({s}) before the kill, {c} trades stored: {}",
                    log_tail(&log("run1", i), 10)
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {c} trades stored; logs in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    procs[1].0.kill().unwrap(); // SIGKILL
    let _ = procs[1].0.wait();
    let killed = Instant::now();
    let at_kill = count(&url).await;
    assert!(
        at_kill < TRADES as i64,
        "the kill came after the last trade"
    );
    // The pod is restarted in place: same environment, same address.
    procs[1] = spawn(&input, &env(1), None, &log("run2", 1));

    // The survivors lose their peer: they stop, else they are killed after a grace period.
    let mut how = Vec::new();
    for i in [0, 2] {
        let left = SURVIVOR_GRACE.saturating_sub(killed.elapsed());
        match wait_exit(&mut procs[i], left).await {
            Some(s) => how.push(format!(
                "process {i} exited by itself {:?} after the kill ({s}): {}",
                killed.elapsed(),
                log_tail(&log("run1", i), 2)
            )),
            None => {
                procs[i].0.kill().unwrap();
                let _ = procs[i].0.wait();
                how.push(format!(
                    "process {i} still ran {SURVIVOR_GRACE:?} after the kill: killed"
                ));
            }
        }
    }
    eprintln!(
        "process 1 killed with {at_kill} of {TRADES} trades stored; {}",
        how.join("; ")
    );
    // Restarted like process 1: the cluster forms again and replays the file from the start.
    for i in [0, 2] {
        procs[i] = spawn(&input, &env(i), None, &log("run2", i));
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let s = wait_exit(p, Duration::from_secs(300)).await;
        assert!(
            s.is_some_and(|s| s.success()),
            "process {i} of the restarted cluster: {s:?}: {}; logs in {}",
            log_tail(&log("run2", i), 10),
            dir.display()
        );
    }
    eprintln!(
        "the restarted cluster finished, {:?} into the test",
        started.elapsed()
    );

    // PostgreSQL: every trade exactly once, and the same rows as the one-process run.
    let c = pg_client(&url).await;
    let (rows, distinct): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(DISTINCT (venue, symbol, trade_id)) FROM trades",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, distinct), (TRADES as i64, TRADES as i64));
    let mut sizes = Vec::new();
    for table in TABLES {
        let (want, got) = (
            table_rows(&ref_url, table).await,
            table_rows(&url, table).await,
        );
        let first_diff = want
            .iter()
            .zip(&got)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("one process: {a}\nthree: {b}"));
        assert!(
            want == got,
            "{table}: {} rows from one process, {} from three; first difference: {first_diff:?}",
            want.len(),
            got.len()
        );
        sizes.push(format!("{table} {}", want.len()));
    }
    let final_candles: i64 = c
        .query_one("SELECT count(*) FROM candles WHERE is_final", &[])
        .await
        .unwrap()
        .get(0);
    let indicators: i64 = c
        .query_one(
            "SELECT count(*) FROM indicators WHERE rsi_14 IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let signals: i64 = c
        .query_one("SELECT count(*) FROM signals", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        final_candles >= (SYMBOLS * 55) as i64 && indicators > 0 && signals > 0,
        "the comparison covers final candles ({final_candles}), warmed-up indicators \
         ({indicators}) and signals ({signals})"
    );
    eprintln!("PostgreSQL equal: {}", sizes.join(", "));

    // Kafka: every record of the one-process run, duplicates only under the contract.
    let kinds = |env: &[(String, String)]| -> BTreeMap<String, String> {
        env.iter()
            .map(|(k, t)| {
                let kind = k
                    .trim_start_matches("CRYPTOFLOW__SINKS__KAFKA__TOPICS__")
                    .to_lowercase();
                (t.clone(), kind)
            })
            .collect()
    };
    let (ref_kinds, kinds) = (kinds(&ref_topics), kinds(&topics));
    let ref_msgs = tokio::task::block_in_place(|| {
        read_all(&brokers, &ref_kinds.keys().cloned().collect::<Vec<_>>())
    });
    let msgs = tokio::task::block_in_place(|| {
        read_all(&brokers, &kinds.keys().cloned().collect::<Vec<_>>())
    });
    let (want, ref_dups) = deduplicate(&ref_msgs, &ref_kinds);
    let (got, dups) = deduplicate(&msgs, &kinds);
    let trades_of = |m: &BTreeMap<String, serde_json::Value>| {
        m.keys().filter(|k| k.starts_with("trades: ")).count()
    };
    assert_eq!(trades_of(&want), TRADES as usize);
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "Kafka: {} records of the one-process run missing (first {:?}), {} not in it (first {:?})",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
    let differ: Vec<&String> = want.keys().filter(|k| want[*k] != got[*k]).collect();
    assert!(
        differ.is_empty(),
        "Kafka: {} records differ, first {:?}: one process {} / three {}",
        differ.len(),
        differ.first(),
        differ
            .first()
            .map(|k| want[*k].to_string())
            .unwrap_or_default(),
        differ
            .first()
            .map(|k| got[*k].to_string())
            .unwrap_or_default()
    );
    eprintln!(
        "Kafka equal: {} records after dedup ({} trades); messages: one process {} ({ref_dups} \
         under a repeated key), three with a kill {} ({dups} under a repeated \
         key); test time {:?}",
        want.len(),
        trades_of(&want),
        ref_msgs.len(),
        msgs.len(),
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
