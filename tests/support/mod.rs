//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binance;
pub mod browser;
pub mod exchange;
pub mod fake_binance_orders;
pub mod fake_telegram;
pub mod private_pg;
pub mod served;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cryptoflow::config::Config;
use cryptoflow::runtime::{run, Cluster, RunReport, SourceSpec};
use cryptoflow_operators::model::Output;
use cryptoflow_operators::Decimal;
use cryptoflow_sources::replay::ReplayOptions;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("binance/trades.expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap())
        .or_else(|_| Decimal::from_scientific(v.as_str().unwrap()))
        .unwrap()
}

/// |a − b| ≤ rel·|b| (a == b when b is 0): a tolerance in significant digits, the same at every
/// price scale.
pub fn close_rel(a: Decimal, b: Decimal, rel: &str) -> bool {
    if b.is_zero() {
        return a.is_zero();
    }
    (a - b).abs() <= Decimal::from_str(rel).unwrap() * b.abs()
}

/// The expected output of `tests/reference/pipeline_reference.py` for a fixture
/// (`binance/NAME.expected.json`).
pub fn expected_for(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(&format!("binance/{name}.expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// |a - b| <= tol.
pub fn close(a: Decimal, b: Decimal, tol: &str) -> bool {
    (a - b).abs() <= Decimal::from_str(tol).unwrap()
}

/// Test configuration: defaults, no console, no env.
pub fn test_config(workers: usize) -> Config {
    let mut cfg = Config::load(None, Vec::new()).unwrap();
    cfg.pipeline.workers = workers;
    cfg.sinks.console = false;
    cfg
}

/// Replays files and returns every committed record of the primary sink.
pub fn replay_collect(
    cfg: &Config,
    files: Vec<PathBuf>,
    opts: ReplayOptions,
) -> (RunReport, Vec<Output>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let observer = Box::new(move |recs: &[Output], _at: std::time::Instant| {
        g.lock().unwrap().extend_from_slice(recs)
    });
    let report = run(
        cfg,
        SourceSpec::Replay {
            files,
            opts,
            progress: false,
        },
        &Cluster::default(),
        Some(observer),
    )
    .unwrap();
    let recs = std::mem::take(&mut *got.lock().unwrap());
    (report, recs)
}

/// Writes `dir/hosts` for a cluster of `processes` on 127.0.0.1, one free port each, and returns
/// its path (for `--hostfile`).
pub fn cluster_hostfile(dir: &Path, processes: usize) -> PathBuf {
    let hostfile = dir.join("hosts");
    let lines: String = (0..processes)
        .map(|_| format!("127.0.0.1:{}\n", private_pg::free_port()))
        .collect();
    std::fs::write(&hostfile, lines).unwrap();
    hostfile
}

/// Held by the tests that load the box most or measure under load (a long refill's memory, crash
/// loops): they run one at a time, while lighter tests of the same binary still run beside them.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// The service setting `name` from the environment; a test that needs a service fails loudly
/// when it is missing rather than trying a default that may not be there.
pub fn service_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run the service tests through scripts/test.sh, or first \
             `eval \"$(bash scripts/services.sh)\"`, which installs and starts the services"
        ),
    }
}

/// PostgreSQL server URL for tests (a database is created per test).
pub fn pg_server_url() -> String {
    service_env("CRYPTOFLOW_TEST_POSTGRES_URL")
}

/// Creates a fresh database and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let server = pg_server_url();
    let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {server} is needed for this test (scripts/test.sh starts it): {e}"
            )
        });
    tokio::spawn(conn);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "cf_{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{name}")
}

pub async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Runs the live Binance source until `done(events)` holds (or `timeout` passes), then stops it;
/// returns every event and the source's counters.
pub async fn collect_live(
    cfg: cryptoflow_sources::ws::WsConfig,
    rest: Option<cryptoflow_sources::rest::RestConfig>,
    timeout: std::time::Duration,
    done: impl Fn(&[cryptoflow_operators::model::Event]) -> bool,
) -> (
    Vec<cryptoflow_operators::model::Event>,
    Arc<cryptoflow_sources::stats::SourceStats>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stats = Arc::new(cryptoflow_sources::stats::SourceStats::default());
    let source = tokio::spawn(cryptoflow_sources::ws::binance_live(
        cfg,
        rest,
        Default::default(),
        tx,
        stats.clone(),
        stop_rx,
        Default::default(),
        Default::default(),
    ));
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&events) {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("timed out waiting for events")
            .expect("source ended");
        events.extend(batch);
    }
    stop_tx.send(true).unwrap();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), source).await;
    (events, stats)
}

/// The trade ids among `events`, in order.
pub fn trade_ids(events: &[cryptoflow_operators::model::Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            cryptoflow_operators::model::Event::Trade(t) => Some(t.trade_id),
            _ => None,
        })
        .collect()
}

/// MySQL / MariaDB server URL for tests (a database is created per test).
pub fn mysql_server_url() -> String {
    service_env("CRYPTOFLOW_TEST_MYSQL_URL")
}

/// Creates a fresh MySQL database and returns its URL.
pub async fn fresh_mysql_database(prefix: &str) -> String {
    use mysql_async::prelude::Queryable;
    let server = mysql_server_url();
    let pool = mysql_async::Pool::new(server.as_str());
    let mut conn = pool.get_conn().await.unwrap_or_else(|e| {
        panic!("MySQL/MariaDB at {server} is needed for this test (scripts/test.sh starts it): {e}")
    });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "cf_{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    conn.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    let base = server.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
    format!("{base}/{name}")
}

/// [`replay_collect`] of the Binance fixture, from async tests (the run blocks its thread).
pub async fn replay_fixture(cfg: &Config) -> (RunReport, Vec<Output>) {
    replay_named_fixture(cfg, "trades").await
}

/// Replays `tests/fixtures/binance/NAME.jsonl` on a blocking thread.
pub async fn replay_named_fixture(cfg: &Config, name: &str) -> (RunReport, Vec<Output>) {
    let cfg = cfg.clone();
    let file = fixture(&format!("binance/{name}.jsonl"));
    tokio::task::spawn_blocking(move || replay_collect(&cfg, vec![file], ReplayOptions::default()))
        .await
        .expect("replay thread")
}

/// Kafka bootstrap servers for tests (scripts/services.sh starts a broker).
pub fn kafka_brokers() -> String {
    service_env("CRYPTOFLOW_TEST_KAFKA_BROKERS")
}

/// A suffix that makes topic and group names unique per test run.
pub fn unique_suffix(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Creates a topic with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap_or_else(|e| {
            panic!("Kafka at {brokers} is needed (scripts/test.sh starts it): {e}")
        });
    let res = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(std::time::Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot create topic {topic} at {brokers}: {e}"));
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// Creates the pipeline's topics, named `crypto-{kind}-{suffix}` (one partition each), and
/// returns the environment that points a `cryptoflow` process at them.
pub async fn pipeline_topics(suffix: &str) -> Vec<(String, String)> {
    let brokers = kafka_brokers();
    let mut env = Vec::new();
    for kind in [
        "trades",
        "prices",
        "alerts",
        "events",
        "features",
        "sentiment",
        "signals",
    ] {
        let topic = format!("crypto-{kind}-{suffix}");
        create_topic(&brokers, &topic, 1).await;
        env.push((
            format!("CRYPTOFLOW__SINKS__KAFKA__TOPICS__{}", kind.to_uppercase()),
            topic,
        ));
    }
    env
}

/// `cryptoflow replay INPUT` publishing to the test broker, with `env` (e.g. the topics of
/// [`pipeline_topics`]); asserts it succeeded.
pub fn replay_to_kafka(input: &Path, env: &[(String, String)]) {
    run_ok(
        cryptoflow()
            .envs(env.iter().cloned())
            .arg("replay")
            .arg(input)
            .args(["--listen", "off", "--kafka-sink", &kafka_brokers()]),
    );
}

/// One consumed message: topic, key, value, headers.
pub type Consumed = (String, Option<String>, String, Vec<(String, String)>);

/// Reads `topics` from the beginning (a fresh group) until `done(messages)` or `timeout`.
pub async fn consume_until(
    brokers: &str,
    topics: &[&str],
    timeout: std::time::Duration,
    done: impl Fn(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_suffix("test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let mut out: Vec<Consumed> = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&out) {
        let Ok(m) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let m = m.unwrap();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.topic().to_string(),
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            headers,
        ));
    }
    // Dropping a group consumer can hang: leave it to a background thread.
    std::thread::spawn(move || drop(consumer));
    out
}

/// Produces `(key, payload)` messages to `topic` and waits until the broker has them all.
pub async fn produce_all(brokers: &str, topic: &str, messages: &[(Option<String>, Vec<u8>)]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "2000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(messages.len());
    for (k, v) in messages {
        let mut rec = FutureRecord::to(topic).payload(v);
        if let Some(k) = k {
            rec = rec.key(k);
        }
        pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for p in pending {
        p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Runs `tests/reference/kafka_schema_check.py` (Python confluent-kafka + jsonschema, from the
/// venv `scripts/services.sh` makes) over `topics` (`KIND=TOPIC:MIN` each) plus `extra`
/// arguments; asserts it succeeded and returns its JSON report.
#[allow(dead_code)]
pub async fn python_schema_check(
    brokers: &str,
    topics: &[String],
    extra: &[&str],
) -> serde_json::Value {
    let python = service_env("CRYPTOFLOW_TEST_PYTHON");
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(format!("{root}/tests/reference/kafka_schema_check.py"))
        .args(["--brokers", brokers])
        .args(["--group", &unique_suffix("python-check")])
        .args(["--schemas", &format!("{root}/schemas/kafka")]);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    let out =
        cmd.args(extra).output().await.unwrap_or_else(|e| {
            panic!("cannot run {python} (scripts/services.sh makes a venv): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Python check failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The per-poller `(emitted, duplicates, errors)` of a run's summary lines on standard error
/// (`cryptoflow: poller NAME: polls=… emitted=… duplicates=… errors=…`).
pub fn poller_counts(stderr: &str) -> std::collections::HashMap<String, (u64, u64, u64)> {
    let mut m = std::collections::HashMap::new();
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("cryptoflow: poller ") {
            let (name, kv) = rest.split_once(": ").unwrap();
            let get = |k: &str| -> u64 {
                kv.split_whitespace()
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            m.insert(
                name.to_string(),
                (get("emitted"), get("duplicates"), get("errors")),
            );
        }
    }
    m
}

/// A child process killed (SIGKILL) when dropped, also when an assertion fails.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `cryptoflow` binary, with no config file from the environment.
pub fn cryptoflow() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"));
    c.env_remove("CRYPTOFLOW_CONFIG");
    c
}

/// Runs `cmd` and returns its output; panics with the command and its error output when it
/// fails.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes `cryptoflow generate ARGS -o path` (deterministic synthetic trades: `--symbols`,
/// `--trades`, `--step-ms`, `--seed`) and returns `path`; panics with the command's error output
/// when it fails.
pub fn generate(path: &Path, args: &[&str]) -> PathBuf {
    run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .arg("generate")
            .args(args)
            .arg("-o")
            .arg(path),
    );
    path.to_path_buf()
}
