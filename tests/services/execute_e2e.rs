//! `cryptoflow execute` in paper mode over the pipeline's own Kafka topics: the strategies make,
//! from the indicators the pipeline published, exactly the buy signals `cryptoflow backtest`
//! makes from the same trades (same deterministic ids), each journaled once in PostgreSQL, and
//! the paper broker fills orders from the published tape. A second run of the same group sends
//! nothing twice.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::{
    fresh_database, generate, kafka_brokers, pg_client, pipeline_topics, replay_to_kafka,
    unique_suffix,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_journals_the_backtests_signals_once() {
    let brokers = kafka_brokers();
    let suffix = unique_suffix("exec");
    let dir = std::env::temp_dir().join(format!("cryptoflow-exec-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = generate(
        &dir.join("gen.jsonl"),
        &["--symbols", "2", "--trades", "20000", "--step-ms", "500"],
    );
    let env = pipeline_topics(&suffix).await;
    let bin = env!("CARGO_BIN_EXE_cryptoflow");

    // The backtest's signals of the same trades.
    let journal = dir.join("backtest.jsonl");
    let bt = Command::new(bin)
        .env_remove("CRYPTOFLOW_CONFIG")
        .arg("backtest")
        .arg(&input)
        .arg("--journal")
        .arg(&journal)
        .arg("--out")
        .arg(dir.join("report.json"))
        .output()
        .unwrap();
    assert!(
        bt.status.success(),
        "{}",
        String::from_utf8_lossy(&bt.stderr)
    );
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signals = events.iter().filter(|e| e["event"] == "signal").count();
    let buys: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "signal" && e["signal"]["side"] == "buy")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(buys.len() >= 5, "the strategies buy: {buys:?}");

    // The pipeline publishes the trades and their indicators.
    replay_to_kafka(&input, &env);

    let url = fresh_database("execute").await;
    let execute = |group: &str| {
        Command::new(bin)
            .env_remove("CRYPTOFLOW_CONFIG")
            .envs(env.iter().cloned())
            .args([
                "execute",
                "--kafka",
                &brokers,
                "--postgres",
                &url,
                "--from-beginning",
            ])
            .args(["--group", group])
            .args(["--exit-when-idle", "5"])
            // A replay: the data's own clock, and no control API (tests run side by side).
            .args(["--clock", "event", "--control", "off"])
            .output()
            .unwrap()
    };
    let out = execute(&format!("exec-{suffix}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("paper trading"),
        "paper is the default: {stderr}"
    );

    let c = pg_client(&url).await;
    let rows = c
        .query("SELECT intent_id, side, state, broker FROM orders", &[])
        .await
        .unwrap();
    let journaled_buys: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.get::<_, String>(1) == "buy")
        .map(|r| r.get(0))
        .collect();
    assert_eq!(journaled_buys, buys, "the same buy signals, by id");
    assert!(rows.len() <= signals, "at most one order per signal");
    assert!(rows.iter().all(|r| r.get::<_, String>(3) == "paper"));
    let fills: i64 = c
        .query_one("SELECT count(*) FROM fills", &[])
        .await
        .unwrap()
        .get(0);
    assert!(fills > 0, "the paper broker filled from the published tape");
    let unfilled: i64 = c
        .query_one(
            "SELECT count(*) FROM fills f JOIN orders o USING (intent_id) \
             WHERE o.state NOT IN ('filled', 'partially_filled')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unfilled, 0, "an order with fills is (partly) filled");

    // A restart of the same group goes on after its committed offsets: nothing new.
    let before = rows.len();
    let again = execute(&format!("exec-{suffix}"));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) as usize }
    };
    assert_eq!(
        count("SELECT count(*) FROM orders").await,
        before,
        "nothing twice"
    );

    // Another group reads the whole history again: no buy is journaled or sent twice (the
    // positions held now may turn sells that found nothing to sell into orders).
    let buys_before = count("SELECT count(*) FROM orders WHERE side = 'buy'").await;
    let other = execute(&format!("exec2-{suffix}"));
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE side = 'buy'").await,
        buys_before
    );
    let _ = std::fs::remove_dir_all(&dir);
}
