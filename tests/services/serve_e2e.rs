//! `cryptoflow serve` (PostgreSQL + Kafka, a process of its own) against `replay --listen` (the
//! in-process board) on the same data: the same answers, byte for byte, from both feeds; and a
//! client of `serve` gets every trade of its symbol from the topics, in order.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::served::Proc;
use crate::support::{fresh_database, kafka_brokers, pipeline_topics, unique_suffix};

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_like_the_pipeline_and_pushes_every_trade() {
    let url = fresh_database("serve").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let brokers = kafka_brokers();
    let suffix = unique_suffix("serve");
    let env = pipeline_topics(&suffix).await;
    let exe = env!("CARGO_BIN_EXE_cryptoflow");

    // The API on its own, before there is any data.
    let serve = Proc::spawn(
        Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--postgres",
                &url,
                "--kafka",
                &brokers,
            ])
            .envs(env.iter().cloned()),
    );
    let serve_base = serve.base();
    let mut ready = false;
    for _ in 0..150 {
        if get(&format!("{serve_base}/ready")).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "serve never became ready");
    let (code, body) = get(&format!("{serve_base}/api/v1/prices/current/BTCUSDT")).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("unknown symbol BTCUSDT"))
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/ws?symbols=BTCUSDT&kinds=trades",
        serve_base.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    ws.next().await.unwrap().unwrap();
    // A client that keeps up: it reads from now on.
    let reader = tokio::spawn(async move {
        let mut got: Vec<Value> = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(6), ws.next()).await {
            match m {
                Ok(Message::Text(t)) => got.push(serde_json::from_str(&t).unwrap()),
                Ok(Message::Close(frame)) => panic!("closed: {frame:?}"),
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    });

    // The pipeline: the bundled sample into PostgreSQL and Kafka, serving its own board.
    let dir = std::env::temp_dir().join(format!("cf-serve-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("out.jsonl");
    let run = Proc::spawn(
        Command::new(exe)
            .args([
                "replay",
                "--quiet",
                "--listen",
                "127.0.0.1:0",
                "--keep-serving",
            ])
            .args(["--postgres", &url, "--kafka-sink", &brokers, "--jsonl"])
            .arg(&jsonl)
            .envs(env.iter().cloned()),
    );
    let run_base = run.base();
    run.wait_for("the replay is done");

    // Every BTCUSDT trade reaches the client of `serve`, in order.
    let want: Vec<u64> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "trade" && r["trade"]["symbol"] == "BTCUSDT")
        .map(|r| r["trade"]["trade_id"].as_u64().unwrap())
        .collect();
    let got: Vec<u64> = reader
        .await
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["kind"], "trades", "{v}");
            v["data"]["trade_id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(got, want);

    // The same answers from PostgreSQL as from the pipeline's board.
    let (_, candles) = get(&format!("{run_base}/api/v1/candles/ETHUSDT?limit=1000")).await;
    let second = candles["rows"][1]["open_time"].as_i64().unwrap();
    let (_, feats) = get(&format!("{run_base}/api/v1/ml-features/BTCUSDT")).await;
    let at = feats["close_time"].as_i64().unwrap() - 1;
    let paths = [
        "/api/v1/symbols".to_string(),
        "/api/v1/prices/current/BTCUSDT".into(),
        "/api/v1/prices/current/SOLUSDT".into(),
        "/api/v1/candles/BTCUSDT?limit=1000".into(),
        format!("/api/v1/candles/ETHUSDT?interval=1m&from={second}&limit=3"),
        "/api/v1/technical/BTCUSDT".into(),
        "/api/v1/technical/ETHUSDT?from=0&limit=1000".into(),
        "/api/v1/whales?limit=1000".into(),
        "/api/v1/whales?symbol=SOLUSDT&limit=5".into(),
        "/api/v1/ml-features/BTCUSDT".into(),
        format!("/api/v1/ml-features/BTCUSDT?at={at}"),
        "/api/v1/candles/NOPEUSDT".into(),
        "/api/v1/candles/BTCUSDT?interval=7m".into(),
    ];
    for path in &paths {
        let a = get(&format!("{run_base}{path}")).await;
        let b = get(&format!("{serve_base}{path}")).await;
        assert_eq!(a, b, "{path}");
    }
    let (code, q) = get(&format!("{serve_base}/api/v1/quality")).await;
    assert_eq!(code, 200, "{q}");
    run.stop();
    serve.stop();
}
