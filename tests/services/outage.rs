//! Sink outage: a private PostgreSQL (and MariaDB) server is stopped in the middle of a paced
//! replay and started again a few seconds later. The run survives (transient errors are retried with
//! backoff), memory stays bounded (the bounded queues push back on the source), and the tables
//! end with every trade exactly once and the aggregates counting each trade once.

use crate::support as common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::private_pg::*;
use common::*;
use cryptoflow_sources::replay::{Pace, ReplayOptions};

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        })
        .unwrap()
}

struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateMariaDb {
    fn create() -> Self {
        let port = free_port();
        let dir = private_dir("my", "mysql:mysql");
        let ok = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mariadb-install-db");
        let mut db = PrivateMariaDb {
            dir,
            port,
            child: None,
        };
        db.start();
        db
    }

    fn start(&mut self) {
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=mysql", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", self.dir.join("s").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("private MariaDB did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/mysql", self.port)
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replays `input` at 5,000 trades/s on a thread of its own (30,000 trades: about 6 s).
fn paced_replay(
    cfg: cryptoflow::config::Config,
    input: PathBuf,
) -> std::thread::JoinHandle<(
    cryptoflow::runtime::RunReport,
    Vec<cryptoflow_operators::model::Output>,
)> {
    std::thread::spawn(move || {
        replay_collect(
            &cfg,
            vec![input],
            ReplayOptions {
                pace: Pace::Rate(5_000.0),
                ..ReplayOptions::default()
            },
        )
    })
}

fn outage_input(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-outage-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("trades.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    cryptoflow_sources::generate::generate(
        &cryptoflow_sources::generate::GenerateOptions {
            symbols: 5,
            trades: 30_000,
            seed: 11,
            ..Default::default()
        },
        &mut f,
    )
    .unwrap();
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_mid_run_loses_nothing() {
    use mysql_async::prelude::Queryable;
    let mut db = PrivateMariaDb::create();
    let url = db.url();
    cryptoflow_sinks::mysql::migrate(&url).await.unwrap();
    let input = outage_input("my");
    let mut cfg = test_config(2);
    cfg.sinks.mysql.url = url.clone();
    let run = paced_replay(cfg, input);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.start();
    let (report, _) = tokio::task::spawn_blocking(move || run.join().unwrap())
        .await
        .unwrap();
    let ack = report
        .acks
        .iter()
        .find(|(n, _)| *n == "mysql")
        .map(|(_, a)| *a)
        .unwrap();
    assert!(ack.complete);
    assert!(
        ack.retries >= 1,
        "the outage made flushes fail and retry: {ack:?}"
    );
    let pool = mysql_async::Pool::new(url.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let rows: Vec<(String, i64, u64, u64)> =
        conn.query("SELECT symbol, COUNT(*), MIN(trade_id), MAX(trade_id) FROM trades GROUP BY 1 ORDER BY 1").await.unwrap();
    assert_eq!(rows.len(), 5);
    for (sym, n, lo, hi) in &rows {
        assert_eq!((*n, *lo, *hi), (6000, 1, 6000), "{sym}");
    }
    let agg: Vec<u64> = conn
        .query("SELECT CAST(SUM(trade_count) AS UNSIGNED) FROM trade_aggregates")
        .await
        .unwrap();
    assert_eq!(
        agg[0], 30_000,
        "each trade counted once across the retried flushes"
    );
    drop(conn);
    pool.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_run_loses_nothing() {
    let pg = PrivatePg::create();
    let url = pg.url();
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();

    // 30,000 trades at 5,000/s: the replay takes about 6 s; the server is down from ~1.5 s to ~4.5 s.
    let input = outage_input("pg");
    let mut cfg = test_config(2);
    cfg.sinks.postgres.url = url.clone();
    let rss_before = peak_rss_kb();
    let run = paced_replay(cfg, input.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start();
    let (report, _) = tokio::task::spawn_blocking(move || run.join().unwrap())
        .await
        .unwrap();
    let rss_growth_mb = (peak_rss_kb().saturating_sub(rss_before)) / 1024;

    let ack = report
        .acks
        .iter()
        .find(|(n, _)| *n == "postgres")
        .map(|(_, a)| *a)
        .unwrap();
    assert!(ack.complete);
    assert!(
        ack.retries >= 1,
        "the outage made flushes fail and retry: {ack:?}"
    );
    let c = pg_client(&url).await;
    let rows = c.query("SELECT symbol, count(*), min(trade_id), max(trade_id) FROM trades GROUP BY 1 ORDER BY 1", &[]).await.unwrap();
    assert_eq!(rows.len(), 5);
    for r in &rows {
        let (n, lo, hi): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        assert_eq!((n, lo, hi), (6000, 1, 6000), "{}", r.get::<_, String>(0));
    }
    let agg: i64 = c
        .query_one("SELECT sum(trade_count)::int8 FROM trade_aggregates", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        agg, 30_000,
        "each trade counted once across the retried flushes"
    );
    let finals: i64 = c
        .query_one("SELECT count(*) FROM candles WHERE is_final", &[])
        .await
        .unwrap()
        .get(0);
    assert!(finals >= 5);
    // The queues are bounded: while the server was down the process did not buffer the input.
    assert!(rss_growth_mb < 200, "peak RSS grew by {rss_growth_mb} MB");
}

/// A private tansu broker (memory storage) on a free port.
struct PrivateBroker {
    child: std::process::Child,
    port: u16,
}

impl PrivateBroker {
    fn start() -> Self {
        let bin = std::env::var("CRYPTOFLOW_TEST_TANSU")
            .expect("CRYPTOFLOW_TEST_TANSU: the tansu binary (scripts/services.sh exports it)");
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateBroker { child, port }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_outage_mid_run_loses_nothing() {
    let broker = PrivateBroker::start();
    let brokers = broker.brokers();
    create_topic(&brokers, "crypto-trades", 1).await;
    let input = outage_input("kafka");
    let mut cfg = test_config(2);
    cfg.sinks.kafka.brokers = brokers.clone();
    let run = paced_replay(cfg, input);
    // The broker stops answering (SIGSTOP) for 4 s in the middle of the 6 s run.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.signal("-CONT");
    let (report, _) = tokio::task::spawn_blocking(move || run.join().unwrap())
        .await
        .unwrap();
    let ack = report
        .acks
        .iter()
        .find(|(n, _)| *n == "kafka")
        .map(|(_, a)| *a)
        .unwrap();
    assert!(ack.complete, "{ack:?}");
    assert!(peak_rss_kb() < 1_000_000, "memory stayed bounded");
    let msgs = consume_until(&brokers, &["crypto-trades"], Duration::from_secs(60), |m| {
        m.len() >= 30_000
    })
    .await;
    let ids: std::collections::HashSet<(String, u64)> = msgs
        .iter()
        .map(|(_, _, v, _)| {
            let v: serde_json::Value = serde_json::from_str(v).unwrap();
            (
                v["symbol"].as_str().unwrap().to_string(),
                v["trade_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids.len(), 30_000, "every trade reached the broker");
    assert_eq!(
        msgs.len(),
        30_000,
        "the idempotent producer wrote none twice"
    );
}
