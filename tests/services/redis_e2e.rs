//! Redis sink against real Redis servers: the binary's replay into Redis equals its JSON-lines
//! output (prices, candles, TTLs, one message per final candle, whale and indicator row) and a
//! second replay leaves the same keys; the version guard in the server; a server that stops
//! mid-run is retried until it is back; an unreachable server, a wrong password and a key of
//! another type are clear errors.
//!
//! Needs `eval "$(bash scripts/services.sh)"`: CRYPTOFLOW_TEST_REDIS_URL (a shared server; each
//! test uses a key prefix of its own and deletes its keys) and CRYPTOFLOW_TEST_REDIS_SERVER (the
//! `redis-server` binary, for private servers on free ports).

use crate::support as common;
use common::private_pg::free_port;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fixture;
use cryptoflow_operators::dataflow::EnrichedTrade;
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Candle, Interval, Side, Symbol, Trade, Venue};
use cryptoflow_sinks::redis::{RedisConfig, RedisSink};
use cryptoflow_sinks::task::{run_sink, TaskConfig};
use cryptoflow_sinks::{Ack, Sink, SinkMsg};
use futures_util::StreamExt;

fn env_or_panic(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `eval \"$(bash scripts/services.sh)\"` in the same shell \
             before `cargo test` (it finds or starts a Redis and exports {name})"
        )
    })
}

fn redis_url() -> String {
    env_or_panic("CRYPTOFLOW_TEST_REDIS_URL")
}

/// A key prefix no other test or user of the shared server has.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "cftest:{test}:{}:{}:",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// Deletes every key under the prefix when dropped (also when the test fails).
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut con) = client.get_connection() else {
            return;
        };
        let keys = scan_keys(&mut con, &self.prefix);
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut con);
        }
    }
}

fn scan_keys(con: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys
}

/// Every key under the prefix with its type and value (hashes as sorted field maps).
fn snapshot(con: &mut redis::Connection, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for k in scan_keys(con, prefix) {
        let ty: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
        let v = match ty.as_str() {
            "hash" => {
                let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&k).query(con).unwrap();
                format!("{h:?}")
            }
            "string" => redis::cmd("GET").arg(&k).query(con).unwrap(),
            other => panic!("{k} has type {other}"),
        };
        out.insert(k, v);
    }
    out
}

fn hgetall(con: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

/// Runs the binary with a bounded wait; returns (exit code, stderr, elapsed).
async fn cryptoflow(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"));
    cmd.args(args)
        .env_remove("CRYPTOFLOW_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    // Bounded: a regression that waits forever fails here instead of hanging the suite.
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("cryptoflow did not finish within 120 s")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
        started.elapsed(),
    )
}

/// Collects every message published under the prefix, from before the run on.
async fn subscribe_all(
    url: &str,
    prefix: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, String)> {
    let client = redis::Client::open(url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe(format!("{prefix}*")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let payload: String = msg.get_payload().unwrap();
            if tx
                .send((msg.get_channel_name().to_string(), payload))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Takes messages until `n` arrived (or 10 s passed), then waits 300 ms for any extra one.
async fn take_messages(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    n: usize,
) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => break,
        }
    }
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        got.push(m);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_into_redis_matches_the_json_lines_and_is_idempotent() {
    let url = redis_url();
    let prefix = unique_prefix("replay");
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let dir = std::env::temp_dir().join(format!("cf-redis-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("out.jsonl");
    let ttl_s: i64 = 3600;
    let env = [
        ("CRYPTOFLOW__SINKS__REDIS__URL", url.clone()),
        ("CRYPTOFLOW__SINKS__REDIS__PREFIX", prefix.clone()),
        ("CRYPTOFLOW__SINKS__REDIS__TTL_S", ttl_s.to_string()),
    ];
    let input = fixture("binance/trades.jsonl");
    let args = [
        "replay",
        input.to_str().unwrap(),
        "--jsonl",
        jsonl.to_str().unwrap(),
        "--quiet",
    ];
    let mut messages = subscribe_all(&url, &prefix).await;
    let (code, err, _) = cryptoflow(&args, &env).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("redis="), "{err}");

    // The expected state, from the JSON-lines output of the same run.
    let lines: Vec<String> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Per symbol: the last trade line, and the newest trade (by exchange time, then id).
    let mut last_line: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    let mut newest: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    let version = |t: &serde_json::Value| {
        (
            t["trade"]["ts_exchange"].as_i64().unwrap(),
            t["trade"]["trade_id"].as_u64().unwrap(),
        )
    };
    for r in records.iter().filter(|r| r["type"] == "trade") {
        let key = format!(
            "{}:{}",
            r["trade"]["venue"].as_str().unwrap(),
            r["trade"]["symbol"].as_str().unwrap()
        );
        last_line.insert(key.clone(), r);
        if newest.get(&key).is_none_or(|n| version(n) <= version(r)) {
            newest.insert(key, r);
        }
    }
    assert_eq!(newest.len(), 3, "three symbols in the fixture");
    // The records do not reach the sinks in trade order (BTCUSDT trade 10 of the fixture
    // arrives after its candle is final, and timely hands some later trades over before earlier
    // ones): the latest state is the newest trade, not the last line.
    let btc = "binance:BTCUSDT";
    assert_eq!(newest[btc]["trade"]["trade_id"], 1000);
    // How often the last line is an older trade depends on scheduling; the checks below hold
    // either way (the guard's own cases are unit-tested).
    let reordered = last_line
        .iter()
        .filter(|(k, last)| last["trade"]["trade_id"] != newest[k.as_str()]["trade"]["trade_id"])
        .count();
    eprintln!(
        "{reordered} of {} symbols end on an older trade in the JSON lines",
        last_line.len()
    );
    let final_candles: Vec<(&String, &serde_json::Value)> = lines
        .iter()
        .zip(&records)
        .filter(|(_, r)| r["type"] == "candle" && r["is_final"] == true)
        .collect();
    let whales: Vec<&String> = lines
        .iter()
        .zip(&records)
        .filter(|(_, r)| r["type"] == "whale")
        .map(|(l, _)| l)
        .collect();
    let indicators: Vec<&String> = lines
        .iter()
        .zip(&records)
        .filter(|(_, r)| r["type"] == "indicators")
        .map(|(l, _)| l)
        .collect();
    assert_eq!(final_candles.len(), 9);
    assert!(!whales.is_empty());
    assert_eq!(indicators.len(), 9);

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    for (key, t) in &newest {
        let price: String = redis::cmd("GET")
            .arg(format!("{prefix}price:{key}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(price, t["trade"]["price"].as_str().unwrap(), "{key}");
        let h = hgetall(&mut con, &format!("{prefix}trade:{key}"));
        assert_eq!(h["price"], t["trade"]["price"].as_str().unwrap());
        assert_eq!(h["qty"], t["trade"]["qty"].as_str().unwrap());
        assert_eq!(h["trade_id"], t["trade"]["trade_id"].to_string());
        assert_eq!(h["ts"], t["trade"]["ts_exchange"].to_string());
        assert_eq!(h["side"], t["trade"]["side"].as_str().unwrap());
        assert_eq!(h["moving_average"], t["moving_average"].as_str().unwrap());
        assert_eq!(h["is_whale"], t["is_whale"].to_string());
    }
    // Per candle key: the last final candle of the output, field by field.
    let mut last_final: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for (_, c) in &final_candles {
        let key = format!(
            "{}:{}:{}",
            c["venue"].as_str().unwrap(),
            c["symbol"].as_str().unwrap(),
            c["interval"].as_str().unwrap()
        );
        if let Some(prev) = last_final.get(&key) {
            assert!(prev["open_time"].as_i64() < c["open_time"].as_i64());
        }
        last_final.insert(key, c);
    }
    assert_eq!(last_final.len(), 3);
    for (key, c) in &last_final {
        let h = hgetall(&mut con, &format!("{prefix}candle:{key}"));
        let want: HashMap<String, String> = c
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "type")
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        assert_eq!(h, want, "{key}");
        // The indicators of that last final candle.
        let ind = hgetall(&mut con, &format!("{prefix}indicators:{key}"));
        assert_eq!(ind["open_time"], c["open_time"].to_string(), "{key}");
        assert_eq!(ind["close"], c["close"].as_str().unwrap(), "{key}");
        assert!(ind.contains_key("obv"), "{ind:?}");
    }
    // Every key has a TTL in (0, ttl_s].
    let keys = scan_keys(&mut con, &prefix);
    assert_eq!(
        keys.len(),
        3 * 4,
        "price, trade, candle, indicators per symbol: {keys:?}"
    );
    for k in &keys {
        let ttl: i64 = redis::cmd("TTL").arg(k).query(&mut con).unwrap();
        assert!(ttl > 0 && ttl <= ttl_s, "{k}: {ttl}");
    }

    // One message per final candle, whale and indicator row: the JSON-lines line itself.
    let expected_messages = final_candles.len() + whales.len() + indicators.len();
    let got = take_messages(&mut messages, expected_messages).await;
    let on = |prefix_of_channel: &str| -> Vec<&String> {
        got.iter()
            .filter(|(ch, _)| ch.starts_with(prefix_of_channel))
            .map(|(_, p)| p)
            .collect()
    };
    let candle_msgs = on(&format!("{prefix}candles:"));
    assert_eq!(candle_msgs.len(), final_candles.len());
    let want: Vec<&String> = final_candles.iter().map(|(l, _)| *l).collect();
    assert_eq!(sorted(candle_msgs), sorted(want));
    assert_eq!(
        sorted(on(&format!("{prefix}whales"))),
        sorted(whales.clone())
    );
    assert_eq!(
        sorted(on(&format!("{prefix}indicators:"))),
        sorted(indicators.clone())
    );
    assert_eq!(got.len(), expected_messages);
    for (ch, p) in &got {
        let v: serde_json::Value = serde_json::from_str(p).unwrap();
        if v["type"] == "candle" {
            assert_eq!(
                ch,
                &format!("{prefix}candles:binance:{}", v["symbol"].as_str().unwrap())
            );
        }
    }

    // A second replay: the same keys and values (the TTLs renewed), and the messages again
    // (publishing is at least once).
    let before = snapshot(&mut con, &prefix);
    let (code, err, _) = cryptoflow(&args, &env).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(snapshot(&mut con, &prefix), before);
    let again = take_messages(&mut messages, expected_messages).await;
    assert_eq!(again.len(), expected_messages);
    std::fs::remove_dir_all(&dir).ok();
}

fn sorted(mut v: Vec<&String>) -> Vec<&String> {
    v.sort();
    v
}

fn dec(s: &str) -> cryptoflow_operators::Decimal {
    s.parse().unwrap()
}

fn trade(id: u64, ts: i64, price: &str) -> Output {
    Output::Trade(EnrichedTrade {
        trade: Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            trade_id: id,
            price: dec(price),
            qty: dec("0.001"),
            side: Side::Buy,
            ts_exchange: ts,
            ts_received: ts,
            agg: None,
        },
        moving_average: dec(price),
        ema: None,
        is_whale: false,
        whale_threshold: dec("100000"),
    })
}

fn candle(open_time: i64, close: &str, is_final: bool) -> Output {
    Output::Candle(Candle {
        venue: Venue::Binance,
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::MINUTE,
        open_time,
        close_time: open_time + 60_000,
        open: dec("1"),
        high: dec("2"),
        low: dec("0.5"),
        close: dec(close),
        volume: dec("1"),
        quote_volume: dec("1"),
        vwap: dec("1"),
        trade_count: 1,
        taker_buy_volume: dec("0"),
        first_trade_id: 1,
        last_trade_id: 1,
        is_final,
    })
}

fn sink_config(url: &str, prefix: &str, ttl_s: u64) -> RedisConfig {
    RedisConfig {
        url: url.to_string(),
        prefix: prefix.to_string(),
        ttl_s,
        publish: true,
        timeout: Duration::from_secs(2),
    }
}

/// The guard in the server, across batches: versions never go back, a final candle is never
/// replaced by a forming one of its window, ties rewrite (idempotent), `ttl_s = 0` clears TTLs.
#[tokio::test]
async fn the_server_keeps_the_newest_version() {
    let url = redis_url();
    let prefix = unique_prefix("guard");
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let mut sink = RedisSink::connect(&sink_config(&url, &prefix, 600))
        .await
        .unwrap();
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let candle_key = format!("{prefix}candle:binance:BTCUSDT:1m");
    let price_key = format!("{prefix}price:binance:BTCUSDT");
    let state = |con: &mut redis::Connection| {
        let h = hgetall(con, &candle_key);
        let price: Option<String> = redis::cmd("GET").arg(&price_key).query(con).unwrap();
        (
            h.get("open_time").cloned().unwrap_or_default(),
            h.get("close").cloned().unwrap_or_default(),
            h.get("is_final").cloned().unwrap_or_default(),
            price.unwrap_or_default(),
        )
    };
    let s = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_string(), b.to_string(), c.to_string(), d.to_string())
    };
    // (batch, state after it)
    let mut steps = vec![
        (
            vec![candle(60_000, "10", false), trade(5, 1_000, "100.10")],
            s("60000", "10", "false", "100.10"),
        ),
        // A later forming update of the same window replaces it.
        (
            vec![candle(60_000, "11", false)],
            s("60000", "11", "false", "100.10"),
        ),
        (
            vec![candle(60_000, "12", true)],
            s("60000", "12", "true", "100.10"),
        ),
        // A forming update of the final window, and older data, change nothing.
        (
            vec![
                candle(60_000, "13", false),
                candle(0, "9", true),
                trade(4, 999, "99"),
                trade(6, 999, "98"),
            ],
            s("60000", "12", "true", "100.10"),
        ),
        // The same final again (a redelivery) rewrites the same values.
        (
            vec![candle(60_000, "12", true)],
            s("60000", "12", "true", "100.10"),
        ),
        // The next window, forming, replaces the final one of the window before.
        (
            vec![candle(120_000, "14", false), trade(7, 1_000, "100.20")],
            s("120000", "14", "false", "100.20"),
        ),
    ];
    // A forming update with fewer trades, delivered late, does not replace one with more.
    let forming = |close: &str, trade_count: u64| match candle(120_000, close, false) {
        Output::Candle(c) => Output::Candle(Candle { trade_count, ..c }),
        _ => unreachable!(),
    };
    steps.push((
        vec![forming("16", 3), forming("15", 2)],
        s("120000", "16", "false", "100.20"),
    ));
    steps.push((vec![forming("15", 2)], s("120000", "16", "false", "100.20")));
    for (i, (batch, want)) in steps.into_iter().enumerate() {
        sink.write(&batch).await.unwrap();
        assert_eq!(state(&mut con), want, "step {i}");
    }
    for k in [&candle_key, &price_key] {
        let ttl: i64 = redis::cmd("TTL").arg(k).query(&mut con).unwrap();
        assert!(ttl > 0 && ttl <= 600, "{k}: {ttl}");
    }
    // ttl_s = 0: the written keys no longer expire.
    let mut forever = RedisSink::connect(&sink_config(&url, &prefix, 0))
        .await
        .unwrap();
    forever.write(&[candle(120_000, "15", true)]).await.unwrap();
    let ttl: i64 = redis::cmd("TTL").arg(&candle_key).query(&mut con).unwrap();
    assert_eq!(ttl, -1);
}

/// A private `redis-server` on `port`, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16, extra: &[&str]) -> PrivateRedis {
        let bin = env_or_panic("CRYPTOFLOW_TEST_REDIS_SERVER");
        let child = std::process::Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let server = PrivateRedis { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that goes away mid-run: the write is a transient error (within the timeout, not a
/// hang), the sink task retries with backoff, and the batch lands once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_retried_until_it_is_back() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = PrivateRedis::start(port, &[]);
    let mut sink = RedisSink::connect(&sink_config(&url, "cf:", 60))
        .await
        .unwrap();
    sink.write(&[trade(1, 1_000, "1.5")]).await.unwrap();
    drop(server);
    let started = Instant::now();
    let err = sink.write(&[trade(2, 1_001, "1.6")]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );

    // Through the sink task: a batch while the server is down is retried until it is back.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (ack_tx, mut ack_rx) = tokio::sync::watch::channel(Ack::default());
    let cfg = TaskConfig {
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        ..TaskConfig::default()
    };
    let task = tokio::spawn(run_sink(sink, rx, 1, cfg, ack_tx, None));
    tx.send(SinkMsg::Data {
        worker: 0,
        time: 1,
        records: vec![trade(3, 1_002, "1.7")],
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        ack_rx.borrow().records,
        0,
        "nothing is acknowledged while the server is down"
    );
    let _server = PrivateRedis::start(port, &[]);
    tokio::time::timeout(Duration::from_secs(10), ack_rx.wait_for(|a| a.records == 1))
        .await
        .expect("the batch was written once the server was back")
        .unwrap();
    assert!(ack_rx.borrow().retries >= 1);
    drop(tx);
    task.await.unwrap().unwrap();
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let price: String = redis::cmd("GET")
        .arg("cf:price:binance:BTCUSDT")
        .query(&mut con)
        .unwrap();
    assert_eq!(price, "1.7");
}

/// Nothing listening: the run fails at once naming the address, instead of hanging.
#[tokio::test]
async fn an_unreachable_server_fails_the_run_clearly() {
    let port = free_port();
    let out =
        std::env::temp_dir().join(format!("cf-redis-unreachable-{}.jsonl", std::process::id()));
    let input = fixture("binance/trades.jsonl");
    let (code, err, took) = cryptoflow(
        &[
            "replay",
            input.to_str().unwrap(),
            "--jsonl",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &[(
            "CRYPTOFLOW__SINKS__REDIS__URL",
            format!("redis://127.0.0.1:{port}/0"),
        )],
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot connect to Redis at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    std::fs::remove_file(&out).ok();
}

/// Authentication failures are permanent and say what to fix; the password is never printed.
#[tokio::test]
async fn wrong_passwords_are_permanent_and_never_printed() {
    let port = free_port();
    let _server = PrivateRedis::start(port, &["--requirepass", "right-pw-4711"]);
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("redis://:wrong-pw-4711@127.0.0.1:{port}"),
        format!("redis://default:wrong-pw-4711@127.0.0.1:{port}"),
    ] {
        let err = match RedisSink::connect(&sink_config(&url, "cf:", 60)).await {
            Ok(_) => panic!("{url}: connected without the right password"),
            Err(e) => e,
        };
        assert!(!err.is_retryable(), "{url}: {err}");
        assert!(err.to_string().contains("sinks.redis.url"), "{err}");
    }
    // Through the binary: exit 1, the fix named, the password masked.
    let out = std::env::temp_dir().join(format!("cf-redis-auth-{}.jsonl", std::process::id()));
    let input = fixture("binance/trades.jsonl");
    let (code, err, _) = cryptoflow(
        &[
            "replay",
            input.to_str().unwrap(),
            "--jsonl",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &[(
            "CRYPTOFLOW__SINKS__REDIS__URL",
            format!("redis://:wrong-pw-4711@127.0.0.1:{port}"),
        )],
    )
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("wrong-pw-4711"), "{err}");
    // The right password works.
    let mut sink = RedisSink::connect(&sink_config(
        &format!("redis://:right-pw-4711@127.0.0.1:{port}"),
        "cf:",
        60,
    ))
    .await
    .unwrap();
    sink.write(&[trade(1, 1, "2")]).await.unwrap();
    std::fs::remove_file(&out).ok();
}

/// A key of another type under the prefix is a permanent error naming the prefix.
#[tokio::test]
async fn a_key_of_another_type_is_permanent() {
    let url = redis_url();
    let prefix = unique_prefix("wrongtype");
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}trade:binance:BTCUSDT"))
        .arg("not a hash")
        .query(&mut con)
        .unwrap();
    let mut sink = RedisSink::connect(&sink_config(&url, &prefix, 60))
        .await
        .unwrap();
    let err = sink.write(&[trade(1, 1, "2")]).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("WRONGTYPE") && text.contains(&prefix),
        "{text}"
    );
    assert!(text.contains("sinks.redis.prefix"), "{text}");
}
