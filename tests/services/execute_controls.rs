//! `cryptoflow execute` under control: the control API, `cryptoflow control`, Telegram commands
//! and text orders with confirm buttons, the kill switch (cancelling within 1 s, kept across a
//! restart until `--reset-kill`), in paper mode and live against the fake Binance (orders
//! cancelled on the exchange, fills from the user data stream net of the commission charged in
//! the asset bought).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::support::fake_binance_orders::{FakeBinanceOrders, API_KEY, API_SECRET};
use crate::support::fake_telegram::FakeTelegram;
use crate::support::{
    fresh_database, kafka_brokers, pg_client, pipeline_topics, produce_all, unique_suffix,
};

const CHAT: i64 = 4242;
const TOKEN: &str = "123456:fake-telegram-token-for-tests";

struct Executor {
    child: Child,
    url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Executor {
    /// Starts `cryptoflow execute` with `args` and waits for its control API.
    fn start(env: &[(String, String)], args: &[&str]) -> Executor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .env_remove("CRYPTOFLOW_CONFIG")
            .envs(env.iter().cloned())
            .env("RUST_LOG", "info")
            .arg("execute")
            .args(args)
            .args(["--control", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("cryptoflow: execute: control API on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                let mut s = keep.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no control API: {}", stderr.lock().unwrap()));
        Executor { child, url, stderr }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let http = reqwest::Client::new();
        let mut req = http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}")),
        )
    }

    /// Proposes a text order and confirms it: (its id, the confirmation's answer).
    async fn order(&self, text: &str) -> (String, Value) {
        let (_, p) = self
            .call("POST", "/orders", Some(json!({ "text": text })))
            .await;
        let id = p["data"]["id"].as_str().unwrap().to_string();
        let (_, c) = self
            .call("POST", &format!("/orders/{id}/confirm"), None)
            .await;
        (id, c)
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        let s = self.stderr.lock().unwrap().clone();
        s
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Publishes trades of BTCUSDT at `prices`, stamped now, on the trades topic.
async fn trades(suffix: &str, first_id: u64, prices: &[&str]) {
    let ts = now_ms();
    let messages: Vec<(Option<String>, Vec<u8>)> = prices
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let m = json!({
                "version": 1, "venue": "binance", "symbol": "BTCUSDT",
                "trade_id": first_id + i as u64, "price": p, "qty": "0.5", "side": "sell",
                "is_buyer_maker": true, "ts_exchange": ts + i as i64, "ts_received": ts + i as i64,
                "moving_average": p, "is_whale": false,
            });
            (
                Some("binance:BTCUSDT".to_string()),
                m.to_string().into_bytes(),
            )
        })
        .collect();
    produce_all(
        &kafka_brokers(),
        &format!("crypto-trades-{suffix}"),
        &messages,
    )
    .await;
}

/// Runs `attempt` every `every` until it gives a value: that value and how long it took. Fails
/// with `what()` when it has not within `timeout`.
async fn eventually<T>(
    timeout: Duration,
    every: Duration,
    what: impl Fn() -> String,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = attempt().await {
            return (v, started.elapsed());
        }
        assert!(
            started.elapsed() < timeout,
            "not within {timeout:?}: {}",
            what()
        );
        tokio::time::sleep(every).await;
    }
}

/// Waits until `sql` (one text value, `$1` = `id`) answers `want`; how long it took.
async fn wait_sql(
    db: &tokio_postgres::Client,
    timeout: Duration,
    sql: &str,
    id: &str,
    want: &str,
) -> Duration {
    let what = || format!("{sql} ({id}) is not {want}");
    let check = async || {
        let got: Option<String> = db
            .query_opt(sql, &[&id])
            .await
            .unwrap()
            .and_then(|r| r.get(0));
        (got.as_deref() == Some(want)).then_some(())
    };
    eventually(timeout, Duration::from_millis(20), what, check)
        .await
        .1
}

fn config_file(dir: &std::path::Path, telegram: Option<&str>) -> std::path::PathBuf {
    let mut toml = String::from("[trading]\nstrategies = []\n");
    if let Some(api) = telegram {
        toml.push_str(&format!(
            "[trading.execute.telegram]\napi_base = \"{api}\"\nallowed_chat_ids = [{CHAT}]\npoll_timeout_s = 1\nmax_per_chat_per_s = 50.0\nmax_global_per_s = 50.0\n"
        ));
    }
    let path = dir.join("execute.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_controls_telegram_text_orders_and_the_kill_switch() {
    let suffix = unique_suffix("ctl");
    let dir = std::env::temp_dir().join(format!("cryptoflow-ctl-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = pipeline_topics(&suffix).await;
    let tg = FakeTelegram::start(TOKEN).await;
    env.push(("TELEGRAM_BOT_TOKEN".into(), TOKEN.into()));
    let config = config_file(&dir, Some(&tg.base_url()));
    let url = fresh_database("ctl").await;
    let brokers = kafka_brokers();
    let group = format!("ctl-{suffix}");
    let args = [
        "--kafka",
        brokers.as_str(),
        "--postgres",
        url.as_str(),
        "--group",
        group.as_str(),
        "--config",
        config.to_str().unwrap(),
    ];
    let ex = Executor::start(&env, &args);
    let db = pg_client(&url).await;

    let (code, status) = ex.call("GET", "/status", None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["data"]["state"], "trading");
    assert_eq!(status["data"]["broker"], "paper");

    // The tape: the executor learns the price (trades until its consumer has joined).
    let mut id = 1u64;
    let stderr = || ex.stderr.lock().unwrap().clone();
    let marked = async || {
        trades(&suffix, id, &["50000"]).await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, s) = ex.call("GET", "/status", None).await;
        (s["data"]["marks"]["BTCUSDT"] == "50000").then_some(())
    };
    eventually(Duration::from_secs(60), Duration::ZERO, stderr, marked).await;

    // A limit order by API: proposed, shown back, confirmed, open on the paper book.
    let (code, p) = ex
        .call(
            "POST",
            "/orders",
            Some(json!({"text": "buy 0.01 BTC at 49000"})),
        )
        .await;
    assert_eq!(code, 200, "{p}");
    let limit_id = p["data"]["id"].as_str().unwrap().to_string();
    assert!(limit_id.starts_with("tx") && limit_id.len() == 34, "{p}");
    assert!(
        p["message"].as_str().unwrap().contains("BUY 0.01 BTCUSDT"),
        "{p}"
    );
    let (code, c) = ex
        .call("POST", &format!("/orders/{limit_id}/confirm"), None)
        .await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["message"], "Placed: accepted", "{c}");
    // Confirming twice places nothing more.
    let (code, again) = ex
        .call("POST", &format!("/orders/{limit_id}/confirm"), None)
        .await;
    assert_eq!(code, 422, "{again}");
    // Ambiguous or hostile text is asked back or refused, never placed.
    let (code, ask) = ex
        .call("POST", "/orders", Some(json!({"text": "buy BTC"})))
        .await;
    assert_eq!(code, 422, "{ask}");
    let (code, bad) = ex
        .call(
            "POST",
            "/orders",
            Some(json!({"text": "buy 1 BTC; DROP TABLE orders"})),
        )
        .await;
    assert_eq!(code, 422, "{bad}");

    // The CLI speaks to the same API.
    let cli = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(["control", "--url", &ex.url, "status"])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains("1 open paper orders"),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );

    // Telegram: /status answered in the chat.
    tg.push_message(CHAT, "/status");
    let sent = tg.wait_sent(1, Duration::from_secs(20)).await;
    assert!(sent[0].text.contains("trading"), "{:?}", sent[0].text);
    // A conditional text order with confirm buttons; confirmed by the button; armed.
    tg.push_message(CHAT, "buy 0.02 BTC when it drops below 49500");
    let sent = tg.wait_sent(2, Duration::from_secs(20)).await;
    let proposal = &sent[1];
    assert!(
        proposal.text.contains("at or below 49500"),
        "{}",
        proposal.text
    );
    let confirm = proposal
        .buttons
        .iter()
        .find(|(_, d)| d.starts_with("confirm:"))
        .map(|(_, d)| d.clone())
        .expect("a confirm button");
    let armed_id = confirm.trim_start_matches("confirm:").to_string();
    tg.push_callback(CHAT, &confirm);
    let sent = tg.wait_sent(3, Duration::from_secs(20)).await;
    assert!(sent[2].text.starts_with("Armed"), "{}", sent[2].text);
    let armed: String = db
        .query_one("SELECT status FROM text_orders WHERE id = $1", &[&armed_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(armed, "armed");

    // The price falls to 49400: the order fires (a market buy), the next trade fills it.
    trades(&suffix, 10_000, &["49400"]).await;
    wait_sql(
        &db,
        Duration::from_secs(20),
        "SELECT status FROM text_orders WHERE id = $1",
        &armed_id,
        "fired",
    )
    .await;
    trades(&suffix, 10_001, &["49400"]).await;
    wait_sql(
        &db,
        Duration::from_secs(20),
        "SELECT count(*)::text FROM fills WHERE intent_id = $1",
        &armed_id,
        "1",
    )
    .await;
    let fired: String = db
        .query_one("SELECT status FROM text_orders WHERE id = $1", &[&armed_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fired, "fired");
    // The fill is notified in the chat.
    let sent = || format!("{:?}", tg.sent_messages());
    let notified = async || {
        tg.sent_messages()
            .iter()
            .any(|m| m.text.contains("Filled buy 0.02 BTCUSDT"))
            .then_some(())
    };
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        sent,
        notified,
    )
    .await;

    // /kill from Telegram: the open limit order is cancelled in the journal within 1 s.
    let pushed = Instant::now();
    tg.push_message(CHAT, "/kill");
    let took = wait_sql(
        &db,
        Duration::from_secs(10),
        "SELECT state FROM orders WHERE intent_id = $1",
        &limit_id,
        "cancelled",
    )
    .await;
    let took = took.max(pushed.elapsed());
    eprintln!("kill switch (Telegram, paper): cancelled after {took:?}");
    // The fake's long poll returns at once on a new update; 1 s is the requirement.
    assert!(took <= Duration::from_secs(1), "{took:?}");
    let (code, r) = ex.call("POST", "/resume", None).await;
    assert_eq!(code, 422, "no resume after a kill: {r}");
    // A new order is refused by the gate.
    let (id, c) = ex.order("buy 0.01 BTC at market").await;
    assert_eq!(c["message"], "Placed: rejected", "{c}");
    let rule: String = db
        .query_one("SELECT rule FROM orders WHERE intent_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rule, "kill_switch");
    ex.stop();

    // The kill switch outlives a restart, until --reset-kill.
    let ex = Executor::start(&env, &args);
    let (_, s) = ex.call("GET", "/status", None).await;
    assert_eq!(s["data"]["state"], "KILLED", "{s}");
    let (_, pos) = ex.call("GET", "/positions", None).await;
    assert_eq!(
        pos["data"]["BTCUSDT"]["qty"], "0.02",
        "positions rebuilt from fills: {pos}"
    );
    ex.stop();
    let mut reset = args.to_vec();
    reset.push("--reset-kill");
    let ex = Executor::start(&env, &reset);
    let (_, s) = ex.call("GET", "/status", None).await;
    assert_eq!(s["data"]["state"], "trading", "{s}");
    ex.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_kill_cancels_on_the_exchange_and_user_stream_fills_are_net_of_commission() {
    let suffix = unique_suffix("ctllive");
    let dir = std::env::temp_dir().join(format!("cryptoflow-ctllive-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = pipeline_topics(&suffix).await;
    env.push(("BINANCE_API_KEY".into(), API_KEY.into()));
    env.push(("BINANCE_API_SECRET".into(), API_SECRET.into()));
    let fake = FakeBinanceOrders::start().await;
    let config = config_file(&dir, None);
    let url = fresh_database("ctllive").await;
    let brokers = kafka_brokers();
    let group = format!("ctllive-{suffix}");
    let rest = fake.rest_base();
    let ws = fake.ws_base();
    let args = [
        "--kafka",
        brokers.as_str(),
        "--postgres",
        url.as_str(),
        "--group",
        group.as_str(),
        "--config",
        config.to_str().unwrap(),
        "--live",
        "--binance-rest",
        rest.as_str(),
        "--binance-ws",
        ws.as_str(),
    ];
    let ex = Executor::start(&env, &args);
    assert!(ex.stderr.lock().unwrap().contains("LIVE"));
    let db = pg_client(&url).await;
    let mut id = 1u64;
    // Until the executor has the price (its consumer joined): a limit order within the band.
    let stderr = || ex.stderr.lock().unwrap().clone();
    let placed = async || {
        trades(&suffix, id, &["50000"]).await;
        id += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (pid, c) = ex.order("buy 0.01 BTC at 49900").await;
        (c["message"] == "Placed: accepted").then_some(pid)
    };
    let (first, _) = eventually(Duration::from_secs(60), Duration::ZERO, stderr, placed).await;
    assert_eq!(fake.order_count(&first), 1);
    assert_eq!(fake.order_status(&first).as_deref(), Some("NEW"));

    // The other side arrives: the user data stream's fill reaches the journal, the position net
    // of the 0.1 % commission the fake charges in BTC (0.01 − 0.00001).
    fake.fill_limit(&first, "0.01".parse().unwrap());
    wait_sql(
        &db,
        Duration::from_secs(20),
        "SELECT count(*)::text FROM fills WHERE intent_id = $1",
        &first,
        "1",
    )
    .await;
    let qty: Decimal = db
        .query_one("SELECT qty FROM positions WHERE symbol = 'BTCUSDT'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(qty, "0.00999".parse::<Decimal>().unwrap());

    // A second open order; the kill switch by API cancels it on the exchange within 1 s.
    let (second, c) = ex.order("buy 0.01 BTC at 49800").await;
    assert_eq!(c["message"], "Placed: accepted", "{c}");
    assert_eq!(fake.order_status(&second).as_deref(), Some("NEW"));
    let started = Instant::now();
    let (code, k) = ex.call("POST", "/kill", None).await;
    assert_eq!(code, 200, "{k}");
    let took = started.elapsed();
    assert_eq!(fake.order_status(&second).as_deref(), Some("CANCELED"));
    eprintln!("kill switch (API, live): cancelled on the exchange after {took:?}");
    assert!(took <= Duration::from_secs(1), "{took:?}");
    let state: String = db
        .query_one("SELECT state FROM orders WHERE intent_id = $1", &[&second])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "cancelled");
    assert_eq!(fake.order_count(&second), 1, "never twice");
    ex.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
