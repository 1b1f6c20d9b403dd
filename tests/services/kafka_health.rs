//! `cryptoflow consume` (Kafka → operators → JSON lines) when partitions are empty and when the
//! broker goes away mid-run:
//! - empty partitions (read to their end) hold neither the watermark nor the offset commits
//!   back, even with a one-minute `kafka.partition_idle_ms`: every offset is committed within
//!   seconds, and a consumer SIGKILLed then started again reads nothing twice;
//! - a broker unreachable for longer than `kafka.connect_timeout_ms` is a WARN naming the brokers,
//!   its return an INFO line, and the run goes on: every trade, produced before and after the
//!   outage, is written exactly once and its offset committed.

use crate::support as common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::private_pg::free_port;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Starts `cryptoflow consume` writing JSON lines to `jsonl` and its log (info) to `log`.
fn spawn_consume(
    config: &Path,
    brokers: &str,
    topic: &str,
    group: &str,
    jsonl: &Path,
    log: &Path,
) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .args(["consume", "--quiet", "--config"])
            .arg(config)
            .args(["--brokers", brokers, "--topic", topic, "--group", group])
            .arg("--jsonl")
            .arg(jsonl)
            .env_remove("CRYPTOFLOW_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    )
}

/// A trade frame of `symbol` with id `id` at exchange time `ts`.
fn trade(symbol: &str, id: u64, ts: i64) -> String {
    format!(
        r#"{{"e":"trade","E":{ts},"s":"{symbol}","t":{id},"p":"100.{:02}","q":"0.5","T":{ts},"m":false,"M":true}}"#,
        id % 100
    )
}

/// Produces `(partition, symbol, payload)` messages and waits until the broker has them all.
async fn produce_to(brokers: &str, topic: &str, msgs: &[(i32, String, String)]) {
    let p: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(msgs.len());
    for (part, key, payload) in msgs {
        let rec = FutureRecord::to(topic)
            .partition(*part)
            .key(key)
            .payload(payload);
        pending.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for f in pending {
        f.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// The group's committed offset per partition (absent: none committed).
fn committed(reader: &BaseConsumer, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(got) = reader.committed_offsets(tpl, Duration::from_secs(5)) else {
        return HashMap::new();
    };
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// A client of the group that only reads its committed offsets (it does not join).
fn offsets_reader(brokers: &str, group: &str) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// `(symbol, trade id)` of every trade line written so far.
fn trades_written(jsonl: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(jsonl)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "trade")
        .map(|v| {
            (
                v["trade"]["symbol"].as_str().unwrap().to_string(),
                v["trade"]["trade_id"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_suffix(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `check` is `Ok`, or panics with its last error after `secs`.
async fn wait_for(secs: u64, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `Ok` if `cond`, else `Err(what())`.
fn ok_if(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_partitions_do_not_hold_offset_commits_back() {
    const PER: u64 = 600;
    let brokers = kafka_brokers();
    let topic = unique_suffix("idle-raw");
    let group = unique_suffix("idle-group");
    // Four partitions; trades only in 0 and 2, partitions 1 and 3 stay empty.
    create_topic(&brokers, &topic, 4).await;
    // Two minutes of trades that ended three minutes ago: their candles can all be final.
    let t0 = cryptoflow_sources::now_ms() - 300_000;
    let mut msgs = Vec::new();
    for i in 0..PER {
        let ts = t0 + i as i64 * 200;
        msgs.push((0, "BTCUSDT".to_string(), trade("BTCUSDT", i + 1, ts)));
        msgs.push((2, "ETHUSDT".to_string(), trade("ETHUSDT", i + 1, ts + 50)));
    }
    produce_to(&brokers, &topic, &msgs).await;

    let dir = temp_dir("kidle");
    let config = dir.join("cryptoflow.toml");
    // A silent partition would stop holding the watermark only after a minute.
    std::fs::write(
        &config,
        "[kafka]\npartition_idle_ms = 60000\n\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n",
    )
    .unwrap();
    let (jsonl, log) = (dir.join("first.jsonl"), dir.join("first.log"));
    let started = Instant::now();
    let child = spawn_consume(&config, &brokers, &topic, &group, &jsonl, &log);
    let reader = offsets_reader(&brokers, &group);
    let want: HashMap<i32, i64> = [(0, PER as i64), (2, PER as i64)].into();
    // Group join, reading, the idle watermark (1 s) and a commit take a few seconds; the empty
    // partitions must not add the minute of partition_idle_ms.
    wait_for(20, || {
        let got = committed(&reader, &topic, 4);
        ok_if(got == want, || {
            format!(
                "offsets committed after {:?}: {got:?}, want {want:?}; {} trades written; log:\n{}",
                started.elapsed(),
                trades_written(&jsonl).len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    })
    .await;
    assert_eq!(trades_written(&jsonl).len(), 2 * PER as usize);
    drop(child); // SIGKILL

    // One new trade per data partition; started again, the group reads those two only.
    let now = cryptoflow_sources::now_ms() - 120_000;
    produce_to(
        &brokers,
        &topic,
        &[
            (0, "BTCUSDT".into(), trade("BTCUSDT", PER + 1, now)),
            (2, "ETHUSDT".into(), trade("ETHUSDT", PER + 1, now)),
        ],
    )
    .await;
    let (jsonl, log) = (dir.join("second.jsonl"), dir.join("second.log"));
    let child = spawn_consume(&config, &brokers, &topic, &group, &jsonl, &log);
    wait_for(30, || {
        let got = trades_written(&jsonl);
        ok_if(got.len() >= 2, || {
            format!(
                "restarted consumer wrote {got:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    })
    .await;
    // Let anything read twice show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut again = trades_written(&jsonl);
    again.sort();
    assert_eq!(
        again,
        vec![("BTCUSDT".into(), PER + 1), ("ETHUSDT".into(), PER + 1)],
        "after a SIGKILL only the trades not yet read are read"
    );
    drop(child);
}

/// A private tansu broker (memory storage) whose clients all go through a TCP proxy the test
/// can cut (connections closed, port refusing) and restore, with the broker's data intact.
struct ProxiedBroker {
    child: Child,
    proxy_port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl ProxiedBroker {
    async fn start() -> Self {
        let bin = std::env::var("CRYPTOFLOW_TEST_TANSU")
            .expect("CRYPTOFLOW_TEST_TANSU: the tansu binary (scripts/services.sh exports it)");
        let (port, proxy_port) = (free_port(), free_port());
        // Clients are told to connect to the proxy.
        let child = Command::new(bin)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{proxy_port}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(proxy(proxy_port, port, cut_rx));
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ProxiedBroker {
            child,
            proxy_port,
            cut,
        }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy_port)
    }

    /// Closes every connection and refuses new ones (`true`), or accepts them again.
    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for ProxiedBroker {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards `listen` to `target` while not cut; when cut, closes the listener and every
/// forwarded connection.
async fn proxy(listen: u16, target: u16, cut: tokio::sync::watch::Receiver<bool>) {
    loop {
        let mut c = cut.clone();
        if c.wait_for(|cut| !*cut).await.is_err() {
            return;
        }
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", listen)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("the proxy cannot listen again");
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut down, _)) = accepted else { continue };
                    let mut c = cut.clone();
                    tokio::spawn(async move {
                        let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                            _ = c.wait_for(|cut| *cut) => {}
                        }
                    });
                }
                r = c.wait_for(|cut| *cut) => {
                    if r.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_lost_mid_run_is_warned_about_and_the_run_resumes() {
    const PER: u64 = 300;
    let broker = ProxiedBroker::start().await;
    let brokers = broker.brokers();
    let topic = "health-raw";
    let group = unique_suffix("health-group");
    create_topic(&brokers, topic, 2).await;
    let t0 = cryptoflow_sources::now_ms() - 300_000;
    let batch = |from: u64| -> Vec<(i32, String, String)> {
        let mut m = Vec::new();
        for i in from..from + PER {
            let ts = t0 + i as i64 * 100;
            m.push((0, "BTCUSDT".to_string(), trade("BTCUSDT", i + 1, ts)));
            m.push((1, "ETHUSDT".to_string(), trade("ETHUSDT", i + 1, ts + 10)));
        }
        m
    };
    produce_to(&brokers, topic, &batch(0)).await;

    let dir = temp_dir("khealth");
    let config = dir.join("cryptoflow.toml");
    std::fs::write(
        &config,
        "[kafka]\nconnect_timeout_ms = 2000\n\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n\"reconnect.backoff.max.ms\" = \"1000\"\n",
    )
    .unwrap();
    let (jsonl, log) = (dir.join("out.jsonl"), dir.join("consume.log"));
    let child = spawn_consume(&config, &brokers, topic, &group, &jsonl, &log);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(30, || {
        let n = trades_written(&jsonl).len();
        ok_if(n >= 2 * PER as usize, || {
            format!("{n} trades before the outage; log:\n{}", log_text())
        })
    })
    .await;

    // The broker becomes unreachable.
    broker.set_cut(true);
    let cut_at = Instant::now();
    let warned = |text: &str| {
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("unreachable") && l.contains(&brokers))
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !warned(&log_text()),
        "warned before kafka.connect_timeout_ms:\n{}",
        log_text()
    );
    wait_for(15, || {
        let text = log_text();
        ok_if(warned(&text), || {
            format!(
                "no WARN naming {brokers} after {:?}; log:\n{text}",
                cut_at.elapsed()
            )
        })
    })
    .await;
    assert!(cut_at.elapsed() >= Duration::from_secs(2));

    // It comes back; trades produced now are read too.
    broker.set_cut(false);
    produce_to(&brokers, topic, &batch(PER)).await;
    wait_for(40, || {
        let n = trades_written(&jsonl).len();
        ok_if(n >= 4 * PER as usize, || {
            format!("{n} trades after the outage; log:\n{}", log_text())
        })
    })
    .await;
    wait_for(15, || {
        let text = log_text();
        let back = text
            .lines()
            .any(|l| l.contains("INFO") && l.contains("answer again") && l.contains(&brokers));
        ok_if(back, || {
            format!("no INFO on the brokers' return; log:\n{text}")
        })
    })
    .await;
    // Every offset is committed again.
    let reader = offsets_reader(&brokers, &group);
    let want: HashMap<i32, i64> = [(0, 2 * PER as i64), (1, 2 * PER as i64)].into();
    wait_for(20, || {
        let got = committed(&reader, topic, 2);
        ok_if(got == want, || {
            format!(
                "offsets committed: {got:?}, want {want:?}; log:\n{}",
                log_text()
            )
        })
    })
    .await;
    let written = trades_written(&jsonl);
    let mut seen = std::collections::HashSet::new();
    for t in &written {
        assert!(seen.insert(t.clone()), "{t:?} written twice");
    }
    assert_eq!(written.len(), 4 * PER as usize, "each trade exactly once");
    for s in ["BTCUSDT", "ETHUSDT"] {
        for id in 1..=2 * PER {
            assert!(seen.contains(&(s.to_string(), id)), "{s} {id} missing");
        }
    }
    drop(child);
}
