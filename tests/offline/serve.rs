//! The HTTP API and the WebSocket push of a replay: what they answer is what the replay wrote
//! (its JSON lines are the reference), bad requests get JSON errors, tokens and rate limits hold,
//! and a client too slow for its buffer is closed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::served::Proc;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A replay that keeps serving, with its address and its JSON-lines output.
struct Served {
    proc: Proc,
    base: String,
    jsonl: PathBuf,
}

impl Served {
    /// Starts `replay` of `files` (none: the bundled sample) serving on a free port.
    fn start(tag: &str, files: &[PathBuf], extra: &[&str], env: &[(&str, &str)]) -> Served {
        let dir = std::env::temp_dir().join(format!("cf-serve-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jsonl = dir.join("out.jsonl");
        let proc = Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
                .arg("replay")
                .args(files)
                .args([
                    "--quiet",
                    "--listen",
                    "127.0.0.1:0",
                    "--keep-serving",
                    "--jsonl",
                ])
                .arg(&jsonl)
                .args(extra)
                .envs(env.iter().copied()),
        );
        let base = proc.base();
        Served { proc, base, jsonl }
    }

    fn wait_for(&mut self, needle: &str) -> String {
        self.proc.wait_for(needle)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ends the process with SIGTERM; it must exit 0.
    fn stop(self) {
        self.proc.stop();
    }
}

/// GET → (status, JSON body, headers).
async fn get(url: &str, token: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_api_answers_what_the_replay_wrote() {
    let mut s = Served::start("api", &[], &[], &[]);
    s.wait_for("the replay is done");
    let recs = records(&s.jsonl);
    let rt = runtime();
    rt.block_on(async {
        let (code, body, _) = get(&s.url("/health"), None).await;
        assert_eq!((code, body["status"].as_str()), (200, Some("up")));

        // The last trade of each symbol, its price and moving average.
        // The newest trade per symbol (by exchange time, then id), whatever order they were
        // written in.
        let mut last: BTreeMap<String, &Value> = BTreeMap::new();
        let newest = |r: &Value| {
            (
                r["trade"]["ts_exchange"].as_i64(),
                r["trade"]["trade_id"].as_u64(),
            )
        };
        for r in recs.iter().filter(|r| r["type"] == "trade") {
            let sym = r["trade"]["symbol"].as_str().unwrap().to_string();
            if last.get(&sym).is_none_or(|l| newest(r) >= newest(l)) {
                last.insert(sym, r);
            }
        }
        assert!(last.len() >= 2, "the sample has several symbols");
        let (code, body, _) = get(&s.url("/api/v1/symbols"), None).await;
        assert_eq!(code, 200);
        let listed: Vec<&str> = body["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(listed, last.keys().map(String::as_str).collect::<Vec<_>>());
        for (sym, t) in &last {
            let (code, body, _) = get(&s.url(&format!("/api/v1/prices/current/{sym}")), None).await;
            assert_eq!(code, 200, "{sym}: {body}");
            assert_eq!(body["trade"], t["trade"], "{sym}");
            assert_eq!(body["moving_average"], t["moving_average"], "{sym}");
        }

        // Final 1m candles of BTCUSDT, in order, and the newest two with `limit`.
        let finals: Vec<&Value> = recs
            .iter()
            .filter(|r| r["type"] == "candle" && r["is_final"] == true)
            .filter(|r| r["symbol"] == "BTCUSDT" && r["interval"] == "1m")
            .collect();
        assert!(finals.len() >= 3);
        let (code, body, _) = get(
            &s.url("/api/v1/candles/BTCUSDT?interval=1m&limit=1000"),
            None,
        )
        .await;
        assert_eq!(code, 200);
        let rows = body["rows"].as_array().unwrap();
        assert_eq!(rows.len(), finals.len());
        for (got, want) in rows.iter().zip(&finals) {
            let mut want = (*want).clone();
            want.as_object_mut().unwrap().remove("type");
            assert_eq!(got, &want);
        }
        let second = finals[1]["open_time"].as_i64().unwrap();
        let url = format!("/api/v1/candles/BTCUSDT?from={second}&limit=2");
        let (_, body, _) = get(&s.url(&url), None).await;
        let opens: Vec<i64> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["open_time"].as_i64().unwrap())
            .collect();
        let n = finals.len();
        let want: Vec<i64> = finals[n - 2..]
            .iter()
            .map(|r| r["open_time"].as_i64().unwrap())
            .collect();
        assert_eq!(opens, want);

        // The latest indicators, and whales newest first.
        let ind = recs
            .iter()
            .rfind(|r| r["type"] == "indicators" && r["symbol"] == "BTCUSDT")
            .unwrap();
        let (_, body, _) = get(&s.url("/api/v1/technical/BTCUSDT"), None).await;
        assert_eq!(body["count"], 1);
        let mut want = ind.clone();
        want.as_object_mut().unwrap().remove("type");
        assert_eq!(body["rows"][0], want);
        let mut whales: Vec<&Value> = recs.iter().filter(|r| r["type"] == "whale").collect();
        whales.sort_by_key(|w| {
            let t = &w["trade"];
            std::cmp::Reverse((t["ts_exchange"].as_i64(), t["trade_id"].as_u64()))
        });
        let (_, body, _) = get(&s.url("/api/v1/whales?limit=1000"), None).await;
        assert_eq!(body["count"].as_u64().unwrap() as usize, whales.len());
        for (got, want) in body["rows"].as_array().unwrap().iter().zip(&whales) {
            assert_eq!(got["trade"], want["trade"]);
        }
        let (_, body, _) = get(&s.url("/api/v1/ml-features/BTCUSDT"), None).await;
        assert!(body["features"].as_object().unwrap().len() > 50, "{body}");

        // Errors: JSON, saying what.
        for (path, code, says) in [
            ("/api/v1/candles/NOPEUSDT", 404, "unknown symbol NOPEUSDT"),
            (
                "/api/v1/prices/current/NOPEUSDT",
                404,
                "unknown symbol NOPEUSDT",
            ),
            ("/api/v1/candles/BTCUSDT?limit=abc", 400, "`limit`"),
            ("/api/v1/candles/BTCUSDT?limit=1001", 400, "`limit`"),
            ("/api/v1/candles/BTCUSDT?interval=7m", 400, "`interval`"),
            ("/api/v1/candles/BTCUSDT?from=yesterday", 400, "`from`"),
            ("/api/v1/candles/BTCUSDT?colour=red", 400, "`colour`"),
            ("/api/v1/sentiment/BTC?window=7d", 400, "`window`"),
            ("/api/v1/prices/current/BTC%2FUSDT", 400, "`symbol`"),
            ("/api/v1/nothing", 404, "no such endpoint"),
        ] {
            let (got, body, _) = get(&s.url(path), None).await;
            assert_eq!(got, code, "{path}: {body}");
            let msg = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: {body}"));
            assert!(msg.contains(says), "{path}: {msg}");
        }
        let long = format!("/api/v1/whales?symbol={}", "A".repeat(3000));
        let (code, _, _) = get(&s.url(&long), None).await;
        assert_eq!(code, 414);

        let (code, text, _) = get(&s.url("/metrics"), None).await;
        assert_eq!(code, 200);
        let text = text.as_str().unwrap().to_string();
        assert!(
            text.contains("# TYPE cryptoflow_api_board_records_total counter"),
            "{text}"
        );
    });
    s.stop();
}

#[test]
fn tokens_are_required_when_set_and_each_has_a_rate() {
    let env = [
        ("CRYPTOFLOW_API_TOKENS", "tok-one, tok-two"),
        ("CRYPTOFLOW__SERVE__RATE_LIMIT_PER_S", "1"),
        (
            "CRYPTOFLOW__SERVE__CORS_ORIGINS",
            r#"["https://dash.example"]"#,
        ),
    ];
    let mut s = Served::start("tokens", &[], &[], &env);
    s.wait_for("the replay is done");
    let rt = runtime();
    rt.block_on(async {
        // CORS: the listed origin is allowed, another is not.
        let client = reqwest::Client::new();
        for (origin, allowed) in [
            ("https://dash.example", true),
            ("https://evil.example", false),
        ] {
            let r = client
                .get(s.url("/health"))
                .header("Origin", origin)
                .send()
                .await
                .unwrap();
            let acao = r.headers().get("access-control-allow-origin").cloned();
            assert_eq!(acao.is_some(), allowed, "{origin}");
            if allowed {
                assert_eq!(acao.unwrap(), origin);
            }
        }
        let url = s.url("/api/v1/symbols");
        let (code, body, headers) = get(&url, None).await;
        assert_eq!(code, 401, "{body}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (code, _, _) = get(&url, Some("tok-three")).await;
        assert_eq!(code, 401);
        // Open without a token.
        assert_eq!(get(&s.url("/health"), None).await.0, 200);
        assert!([200, 503].contains(&get(&s.url("/ready"), None).await.0));
        // A burst of two per token, then 429 with Retry-After; the other token has its own.
        assert_eq!(get(&url, Some("tok-one")).await.0, 200);
        assert_eq!(get(&url, Some("tok-one")).await.0, 200);
        let (code, body, headers) = get(&url, Some("tok-one")).await;
        assert_eq!(code, 429, "{body}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        assert_eq!(get(&url, Some("tok-two")).await.0, 200);
        // After the wait, one more.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(get(&url, Some("tok-one")).await.0, 200);
    });
    s.stop();

    // Not loopback and no token: refused before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "replay",
            "--quiet",
            "--listen",
            "0.0.0.0:0",
            "--jsonl",
            "/dev/null",
        ])
        .env_remove("CRYPTOFLOW_API_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("CRYPTOFLOW_API_TOKENS"),
        "{err}"
    );
}

/// Generates `trades` trades of `symbols` symbols.
fn generated(tag: &str, trades: u32, symbols: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-serve-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::generate(
        &dir.join("trades.jsonl"),
        &[
            "--trades",
            &trades.to_string(),
            "--symbols",
            &symbols.to_string(),
        ],
    )
}

#[test]
fn websocket_clients_get_every_committed_trade_they_subscribed_to_in_order() {
    let input = generated("ws", 12_000, 3);
    let mut s = Served::start("ws", &[input], &["--rate", "4000"], &[]);
    let ws_url = s.base.replace("http://", "ws://");
    let rt = runtime();
    let (trades, candles) = rt.block_on(async {
        // One client by URL, for trades of one symbol.
        let (mut a, _) =
            tokio_tungstenite::connect_async(format!("{ws_url}/ws?symbols=btcusdt&kinds=trades"))
                .await
                .unwrap();
        let first: Value = match a.next().await.unwrap().unwrap() {
            Message::Text(t) => serde_json::from_str(&t).unwrap(),
            m => panic!("{m:?}"),
        };
        assert_eq!(first["type"], "subscribed");
        assert_eq!(first["symbols"][0], "BTCUSDT");
        // One by message, for candles; a bad message is answered, not fatal.
        let (mut b, _) =
            tokio_tungstenite::connect_async(format!("{ws_url}/ws?symbols=NOTHINGUSDT"))
                .await
                .unwrap();
        b.next().await.unwrap().unwrap();
        b.send(Message::Text(
            r#"{"op":"subscribe","kinds":["nope"]}"#.into(),
        ))
        .await
        .unwrap();
        let reply: Value = match b.next().await.unwrap().unwrap() {
            Message::Text(t) => serde_json::from_str(&t).unwrap(),
            m => panic!("{m:?}"),
        };
        assert_eq!(reply["type"], "error");
        assert!(reply["error"]
            .as_str()
            .unwrap()
            .contains("unknown kind `nope`"));
        b.send(Message::Text(
            r#"{"op":"subscribe","symbols":["ETHUSDT"],"kinds":["candles"]}"#.into(),
        ))
        .await
        .unwrap();
        let collect = |mut ws: tokio_tungstenite::WebSocketStream<_>| async move {
            let mut got: Vec<Value> = Vec::new();
            // Until the stream is quiet for 3 s (the replay paces 4,000 events a second).
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_secs(3), ws.next()).await
            {
                if let Message::Text(t) = m {
                    got.push(serde_json::from_str(&t).unwrap());
                }
            }
            got
        };
        // And one for everything.
        let (c, _) = tokio_tungstenite::connect_async(format!("{ws_url}/ws"))
            .await
            .unwrap();
        let (ta, tb, tc) = tokio::join!(collect(a), collect(b), collect(c));
        // Every push's kind is its message's kind.
        let mut kinds = std::collections::BTreeSet::new();
        for p in &tc[1..] {
            let kind = p["kind"].as_str().unwrap();
            let ty = p["data"]["type"].as_str();
            let fits = match kind {
                "trades" => ty.is_none() && p["data"]["trade_id"].is_u64(),
                "candles" => ty == Some("candle"),
                "indicators" => ty == Some("indicators"),
                "whales" => ty == Some("whale"),
                "quality" => matches!(ty, Some("gap" | "late_trade" | "kline_mismatch")),
                "sentiment" => matches!(ty, Some("item" | "window")),
                _ => false,
            };
            assert!(fits, "{p}");
            assert_eq!(p["symbol"], p["data"]["symbol"], "{p}");
            kinds.insert(kind.to_string());
        }
        assert!(kinds.len() >= 4, "{kinds:?}");
        (ta, tb)
    });
    s.wait_for("the replay is done");
    let recs = records(&s.jsonl);
    // Trades: a contiguous tail of the symbol's trades as written, in order.
    let want: Vec<u64> = recs
        .iter()
        .filter(|r| r["type"] == "trade" && r["trade"]["symbol"] == "BTCUSDT")
        .map(|r| r["trade"]["trade_id"].as_u64().unwrap())
        .collect();
    let got: Vec<u64> = trades
        .iter()
        .map(|r| {
            assert_eq!(
                (r["kind"].as_str(), r["symbol"].as_str()),
                (Some("trades"), Some("BTCUSDT")),
                "{r}"
            );
            assert_eq!(r["data"]["symbol"], "BTCUSDT");
            assert_eq!(r["data"]["version"], 1);
            r["data"]["trade_id"].as_u64().unwrap()
        })
        .collect();
    assert!(
        got.len() > want.len() / 2,
        "{} of {}",
        got.len(),
        want.len()
    );
    assert_eq!(got[..], want[want.len() - got.len()..], "a tail, in order");
    // Candles: only ETHUSDT (after its subscribe reply).
    assert_eq!(candles[0]["type"], "subscribed");
    assert!(candles.len() > 1);
    for c in &candles[1..] {
        assert_eq!(
            (c["kind"].as_str(), c["symbol"].as_str()),
            (Some("candles"), Some("ETHUSDT")),
            "{c}"
        );
        assert_eq!(c["data"]["type"], "candle");
    }
    s.stop();
}

#[test]
fn a_client_too_slow_for_its_buffer_is_closed_with_4008() {
    let input = generated("slow", 200_000, 4);
    let env = [("CRYPTOFLOW__SERVE__PUSH_BUFFER", "16")];
    let mut s = Served::start("slow", &[input], &["--rate", "50000"], &env);
    let ws_url = s.base.replace("http://", "ws://");
    let rt = runtime();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(format!("{ws_url}/ws")))
        .unwrap();
    // Do not read until the replay is done: the server must not wait for this client.
    s.wait_for("the replay is done");
    let close = rt.block_on(async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    });
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4008);
    assert!(frame.reason.contains("too slow"), "{}", frame.reason);
    // The replay wrote everything regardless.
    assert!(
        records(&s.jsonl)
            .iter()
            .filter(|r| r["type"] == "trade")
            .count()
            >= 200_000
    );
    s.stop();
}
