//! SIGKILL of a live `cryptoflow execute` process at random points while it places the orders of
//! the pipeline's signals on the fake Binance, whose order answers are held 300 ms after the
//! order is stored (so most kills land between the journal's `pending` row and the exchange's
//! answer), then restarts until the topics are done: exactly one order on the exchange per
//! intent, every journaled intent resolved, nothing pending.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_binance_orders::{FakeBinanceOrders, Fault, API_KEY, API_SECRET};
use crate::support::{
    fresh_database, generate, kafka_brokers, pg_client, pipeline_topics, replay_to_kafka,
    unique_suffix,
};

/// A small deterministic generator of kill delays (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_leaves_one_order_per_intent() {
    let brokers = kafka_brokers();
    let suffix = unique_suffix("exkill");
    let dir = std::env::temp_dir().join(format!("cryptoflow-exkill-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = generate(
        &dir.join("gen.jsonl"),
        &["--symbols", "1", "--trades", "20000", "--step-ms", "500"],
    );
    let mut env = pipeline_topics(&suffix).await;
    let bin = env!("CARGO_BIN_EXE_cryptoflow");
    replay_to_kafka(&input, &env);

    let fake = FakeBinanceOrders::start().await;
    fake.set_market_price("43000".parse().unwrap());
    // Every order is stored at once and answered 300 ms later.
    for _ in 0..500 {
        fake.inject(
            "POST /api/v3/order",
            Fault::Delay {
                delay: Duration::from_millis(300),
                store_first: true,
            },
        );
    }
    env.push(("BINANCE_API_KEY".into(), API_KEY.into()));
    env.push(("BINANCE_API_SECRET".into(), API_SECRET.into()));
    let url = fresh_database("exkill").await;
    let group = format!("exkill-{suffix}");
    let rest = fake.rest_base();
    let ws = fake.ws_base();
    let log = dir.join("execute.log");
    let spawn = || {
        Command::new(bin)
            .env_remove("CRYPTOFLOW_CONFIG")
            .envs(env.iter().cloned())
            .args(["execute", "--kafka", &brokers, "--postgres", &url])
            .args(["--group", &group, "--from-beginning"])
            .args(["--live", "--binance-rest", &rest, "--binance-ws", &ws])
            .args([
                "--clock",
                "event",
                "--control",
                "off",
                "--exit-when-idle",
                "5",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let tail = || {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        s[s.len().saturating_sub(4000)..].to_string()
    };
    let db = pg_client(&url).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill delays seeded with {seed}");
    let mut rng = Lcg(seed);
    let orders_sent = || fake.count("POST", "/api/v3/order");

    let mut kills = 0;
    let mut pending_at_kill = 0;
    let mut finished = false;
    for _ in 0..6 {
        let mut child = spawn();
        let before = orders_sent();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Until the next order reaches the exchange (or the executor is done).
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}: {}", tail());
                finished = true;
                break;
            }
            if orders_sent() > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no order within 120 s: {}",
                tail()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if finished {
            break;
        }
        // Somewhere in the next 400 ms: mostly while the answer is held, sometimes after.
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        pending_at_kill += db
            .query_one(
                "SELECT count(*) FROM orders WHERE state IN ('pending', 'unknown')",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
    }
    if !finished {
        let mut child = spawn();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the last run failed: {status}: {}",
                    tail()
                );
                break;
            }
            assert!(Instant::now() < deadline, "the last run did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("{kills} kills, {pending_at_kill} of them with an order on the wire");
    assert!(kills >= 3, "only {kills} kills: too few orders");
    assert!(
        pending_at_kill >= 1,
        "no kill landed between the journal and the exchange's answer"
    );

    // Exactly one order per client order id on the exchange, and each is journaled.
    let sent: BTreeSet<String> = fake
        .requests("POST", "/api/v3/order")
        .iter()
        .filter_map(|r| r.param("newClientOrderId").map(str::to_string))
        .collect();
    assert!(sent.len() >= 3, "{sent:?}");
    for id in &sent {
        assert_eq!(fake.order_count(id), 1, "order {id} on the exchange");
    }
    let rows = db
        .query("SELECT intent_id, state, rule FROM orders", &[])
        .await
        .unwrap();
    // Sent: every row but the risk gate's rejections (an exchange's refusal was sent).
    let journaled: BTreeSet<String> = rows
        .iter()
        .filter(|r| {
            r.get::<_, String>(1) != "rejected"
                || r.get::<_, Option<String>>(2)
                    .is_some_and(|rule| rule.starts_with("binance"))
        })
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        journaled, sent,
        "the journal's sent intents are the exchange's orders"
    );
    let open: Vec<String> = rows
        .iter()
        .filter(|r| matches!(r.get::<_, String>(1).as_str(), "pending" | "unknown"))
        .map(|r| r.get(0))
        .collect();
    assert!(open.is_empty(), "left unresolved: {open:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
