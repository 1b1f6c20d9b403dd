//! `cryptoflow consume` (Kafka → operators → PostgreSQL) SIGKILLed at random points while it
//! works through 100,000 trades on a two-partition topic, and started again each time: the
//! trades table ends with exactly the produced trades, each once, the aggregates count each
//! trade once, and every candle is final and whole (offsets are committed per partition only up
//! to the first trade of a candle not yet final, so a restart re-reads whole candles).

use crate::support as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"];
const PER_SYMBOL: u64 = 25_000;

fn spawn_consume(
    config: &std::path::Path,
    url: &str,
    brokers: &str,
    topic: &str,
    group: &str,
) -> Killed {
    spawn_consume_logged(config, url, brokers, topic, group, None)
}

/// [`spawn_consume`] with its log (info level) written to `log`.
fn spawn_consume_logged(
    config: &std::path::Path,
    url: &str,
    brokers: &str,
    topic: &str,
    group: &str,
    log: Option<&std::path::Path>,
) -> Killed {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    Killed(
        Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .args(["consume", "--quiet", "--config"])
            .arg(config)
            .args(["--postgres", url, "--brokers", brokers, "--topic", topic])
            .args(["--group", group])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

async fn count(url: &str) -> i64 {
    let c = pg_client(url).await;
    c.query_one("SELECT count(*) FROM trades", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_during_100k_trades_stores_each_once() {
    let _heavy = common::heavy().await;
    let brokers = kafka_brokers();
    let topic = unique_suffix("crash-raw");
    let group = unique_suffix("crash-group");
    create_topic(&brokers, &topic, 2).await;
    let url = fresh_database("kcrash").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();

    // 100,000 trades over 200 s of event time that ended two minutes ago.
    let n = PER_SYMBOL * SYMBOLS.len() as u64;
    let t0 = cryptoflow_sources::now_ms() - 320_000;
    let mut msgs = Vec::with_capacity(n as usize);
    for i in 0..n {
        let s = SYMBOLS[(i % 4) as usize];
        let id = i / 4 + 1;
        let ts = t0 + (i as i64) * 2;
        let payload = format!(
            r#"{{"e":"trade","E":{ts},"s":"{s}","t":{id},"p":"{}.{:02}","q":"0.{:03}","T":{ts},"m":{},"M":true}}"#,
            100 + i % 50,
            i % 100,
            1 + i % 900,
            i % 3 == 0
        );
        msgs.push((Some(s.to_string()), payload.into_bytes()));
    }
    produce_all(&brokers, &topic, &msgs).await;

    let dir = std::env::temp_dir().join(unique_suffix("kcrash-cfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("cryptoflow.toml");
    std::fs::write(
        &config,
        "[sinks]\nmax_batch = 2000\n\n[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n",
    )
    .unwrap();

    // Kill after a pseudo-random amount of progress (2,000 to 14,000 more rows), five times.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    let mut last = 0i64;
    while kills < 5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let step = 2_000 + (rng % 12_000) as i64;
        let child = spawn_consume(&config, &url, &brokers, &topic, &group);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = count(&url).await;
            if c >= last + step || c >= n as i64 {
                break;
            }
            assert!(Instant::now() < deadline, "no progress past {c} rows");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(child); // SIGKILL
        last = count(&url).await;
        kills += 1;
        assert!(last < n as i64, "kill {kills} came after the last trade");
    }

    // The last run goes to the end; every candle must become final.
    let child = spawn_consume(&config, &url, &brokers, &topic, &group);
    let c = pg_client(&url).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM trades),
                        (SELECT coalesce(sum(trade_count), 0)::int8 FROM candles WHERE is_final)",
                &[],
            )
            .await
            .unwrap();
        let (rows, in_final): (i64, i64) = (r.get(0), r.get(1));
        if rows == n as i64 && in_final == n as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {kills} kills: {rows} rows, {in_final} trades in final candles"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(child);

    for s in SYMBOLS {
        let r = c
            .query_one(
                "SELECT count(*), count(DISTINCT trade_id), min(trade_id), max(trade_id) FROM trades WHERE symbol = $1",
                &[&s],
            )
            .await
            .unwrap();
        let (cnt, distinct, lo, hi): (i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(
            (cnt, distinct, lo, hi),
            (PER_SYMBOL as i64, PER_SYMBOL as i64, 1, PER_SYMBOL as i64),
            "{s}"
        );
        let agg: i64 = c
            .query_one(
                "SELECT trade_count FROM trade_aggregates WHERE symbol = $1",
                &[&s],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            agg, PER_SYMBOL as i64,
            "{s}: aggregates count each trade once"
        );
    }
    let r = c
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT is_final),
                    count(*) FILTER (WHERE trade_count <> last_trade_id - first_trade_id + 1)
             FROM candles",
            &[],
        )
        .await
        .unwrap();
    let (open, holey): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!((open, holey), (0, 0), "every candle final and whole");
}

/// Sends SIGINT (the graceful stop) to a child.
fn interrupt(child: &Killed) {
    let ok = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_joins_and_the_first_leaves_while_trades_flow() {
    let _heavy = common::heavy().await;
    const N: u64 = 60_000;
    let brokers = kafka_brokers();
    let topic = unique_suffix("rebalance-raw");
    let group = unique_suffix("rebalance-group");
    create_topic(&brokers, &topic, 2).await;
    let url = fresh_database("krebal").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let dir = std::env::temp_dir().join(unique_suffix("krebal-cfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("cryptoflow.toml");
    std::fs::write(
        &config,
        "[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n",
    )
    .unwrap();

    // The producer keeps trading for about 15 s (4,000 trades/s over 4 symbols).
    let producer_brokers = brokers.clone();
    let producer_topic = topic.clone();
    let producer = tokio::spawn(async move {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let p: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &producer_brokers)
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        let t0 = cryptoflow_sources::now_ms() - 60_000;
        let start = Instant::now();
        let mut pending = Vec::new();
        for i in 0..N {
            let s = SYMBOLS[(i % 4) as usize];
            let id = i / 4 + 1;
            let ts = t0 + i as i64;
            let v = format!(
                r#"{{"e":"trade","E":{ts},"s":"{s}","t":{id},"p":"10.{:02}","q":"1.5","T":{ts},"m":false,"M":true}}"#,
                i % 100
            );
            pending.push(
                p.send_result(FutureRecord::to(&producer_topic).key(s).payload(&v))
                    .map_err(|(e, _)| e)
                    .unwrap(),
            );
            if i % 400 == 399 {
                let due = start + Duration::from_millis((i + 1) / 4);
                tokio::time::sleep_until(due.into()).await;
            }
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });

    let first = spawn_consume(&config, &url, &brokers, &topic, &group);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = dir.join("second.log");
    let second = spawn_consume_logged(&config, &url, &brokers, &topic, &group, Some(&log));
    // Once the group has settled with both members, the first one leaves (graceful stop).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Partitions assigned")
    {
        assert!(
            Instant::now() < deadline,
            "the second consumer got no partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mid = count(&url).await;
    assert!(
        mid > 0 && mid < N as i64,
        "{mid} rows when the first consumer leaves"
    );
    interrupt(&first);
    producer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = count(&url).await;
        if rows == N as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {N} rows; second consumer's log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(second);
    drop(first);
    let c = pg_client(&url).await;
    for s in SYMBOLS {
        let r = c
            .query_one(
                "SELECT count(*), min(trade_id), max(trade_id),
                        (SELECT trade_count FROM trade_aggregates WHERE symbol = $1)
                 FROM trades WHERE symbol = $1",
                &[&s],
            )
            .await
            .unwrap();
        let (cnt, lo, hi, agg): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let per = (N / 4) as i64;
        assert_eq!((cnt, lo, hi, agg), (per, 1, per, per), "{s}");
    }
}
