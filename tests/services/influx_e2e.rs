//! InfluxDB sink: end to end against a real InfluxDB 1.x (points equal the reference, a replay
//! writes the same points again), and the 2.x API against a local server that checks the request.

use crate::support as common;

use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::*;
use cryptoflow_operators::model::Output;
use cryptoflow_sinks::influx::{InfluxApi, InfluxConfig, InfluxSink};
use cryptoflow_sinks::Sink;
use cryptoflow_sources::replay::ReplayOptions;

fn influx_url() -> String {
    common::service_env("CRYPTOFLOW_TEST_INFLUX_URL")
}

async fn query(db: &str, q: &str) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(format!("{}/query", influx_url()))
        .query(&[("db", db), ("q", q)])
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "InfluxDB at {} is needed (scripts/test.sh starts it): {e}",
                influx_url()
            )
        });
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

fn values(v: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    v["results"][0]["series"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .flat_map(|s| {
                    s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_array().unwrap().clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_into_influxdb_v1_twice() {
    let db = format!(
        "cf_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let exp = expected();
    let mut cfg = test_config(2);
    cfg.sinks.influx.url = influx_url();
    cfg.sinks.influx.database = db.clone();
    cfg.sinks.max_batch = 700;
    for round in 0..2 {
        let cfg = cfg.clone();
        let (report, _) = replay_fixture(&cfg).await;
        assert!(
            report
                .acks
                .iter()
                .any(|(n, a)| *n == "influx" && a.complete),
            "round {round}"
        );
        // One point per trade, whale and candle window (forming updates overwritten by the final one).
        let trades = values(&query(&db, "SELECT count(price) FROM trades").await);
        assert_eq!(trades[0][1], 3000, "round {round}");
        let whales = values(&query(&db, "SELECT count(notional) FROM whales").await);
        assert_eq!(whales[0][1], exp["whales"], "round {round}");
        let candles = values(
            &query(
                &db,
                "SELECT close, trade_count, is_final, symbol FROM candles ORDER BY time",
            )
            .await,
        );
        assert_eq!(candles.len(), 9, "round {round}");
        for c in &candles {
            // [time, close, trade_count, is_final, symbol]
            assert_eq!(c[3], true);
            assert!(c[4].as_str().is_some_and(|s| !s.is_empty()));
        }
        // One indicators point per final candle (OBV has a value from the first candle on).
        let ind = values(&query(&db, "SELECT count(obv) FROM indicators").await);
        assert_eq!(ind[0][1], 9, "round {round}");
        // One feature-vector point per final candle (the clock features always have a value).
        let feat = values(&query(&db, "SELECT count(hour_cos) FROM features").await);
        assert_eq!(feat[0][1], 9, "round {round}");
        // Values equal the reference (float copies of the decimals).
        let want = exp["candles"].as_array().unwrap();
        let got_btc = values(
            &query(
                &db,
                "SELECT close, trade_count FROM candles WHERE symbol = 'BTCUSDT' ORDER BY time",
            )
            .await,
        );
        let want_btc: Vec<&serde_json::Value> =
            want.iter().filter(|c| c["symbol"] == "BTCUSDT").collect();
        assert_eq!(got_btc.len(), want_btc.len());
        for (g, w) in got_btc.iter().zip(want_btc) {
            assert_eq!(
                g[1].as_f64().unwrap(),
                w["close"].as_str().unwrap().parse::<f64>().unwrap()
            );
            assert_eq!(g[2], w["trade_count"]);
        }
    }
}

/// path, query, Authorization, Content-Encoding, decompressed body
type SeenRequest = (
    String,
    std::collections::HashMap<String, String>,
    Option<String>,
    Option<String>,
    String,
);

#[derive(Default)]
struct Seen {
    requests: Vec<SeenRequest>,
    status: u16,
}

async fn v2_write(
    State(seen): State<Arc<Mutex<Seen>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut text = String::new();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
    } else {
        text = String::from_utf8(body.to_vec()).unwrap();
    }
    let h = |k: &str| headers.get(k).map(|v| v.to_str().unwrap().to_string());
    let mut s = seen.lock().unwrap();
    s.requests.push((
        "/api/v2/write".into(),
        q,
        h("authorization"),
        h("content-encoding"),
        text,
    ));
    StatusCode::from_u16(s.status).unwrap()
}

#[tokio::test]
async fn v2_api_request_shape_and_error_classes() {
    let seen = Arc::new(Mutex::new(Seen {
        status: 204,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/api/v2/write", post(v2_write))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let cfg = InfluxConfig {
        url: format!("http://{addr}"),
        api: InfluxApi::V2 {
            org: "acme".into(),
            bucket: "market data".into(),
            token: "s3cret".into(),
        },
        gzip: true,
        timeout: std::time::Duration::from_secs(5),
    };
    let mut sink = InfluxSink::connect(cfg).await.unwrap();
    // A few real records from the pipeline.
    let (_, recs) = tokio::task::spawn_blocking(|| {
        replay_collect(
            &test_config(1),
            vec![fixture("binance/trades.jsonl")],
            ReplayOptions::default(),
        )
    })
    .await
    .unwrap();
    let some: Vec<Output> = recs
        .into_iter()
        .filter(|r| matches!(r, Output::Trade(_) | Output::Whale(_) | Output::Candle(_)))
        .take(500)
        .collect();
    sink.write(&some).await.unwrap();
    {
        let s = seen.lock().unwrap();
        let (_, q, auth, enc, body) = &s.requests[0];
        assert_eq!(
            (
                q["org"].as_str(),
                q["bucket"].as_str(),
                q["precision"].as_str()
            ),
            ("acme", "market data", "ns")
        );
        assert_eq!(auth.as_deref(), Some("Token s3cret"));
        assert_eq!(enc.as_deref(), Some("gzip"));
        assert_eq!(body.lines().count(), 500);
        let first = body.lines().find(|l| l.starts_with("trades,")).unwrap();
        assert!(first.starts_with("trades,venue=binance,symbol="), "{first}");
        assert!(
            first.contains(" trade_id=") && first.contains("i,price="),
            "{first}"
        );
    }
    seen.lock().unwrap().status = 400;
    let err = sink.write(&some).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    seen.lock().unwrap().status = 503;
    let err = sink.write(&some).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
