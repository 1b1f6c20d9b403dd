//! Kafka both ways against a real Kafka-protocol broker:
//! - the sink publishes the fixture's trades, candles, alerts and events with the right values;
//!   a replay publishes them again and consumers deduplicate by key and id;
//! - a client no one here wrote (Python confluent-kafka) reads the topics and validates every
//!   message against the published JSON Schemas;
//! - the source sends bad input to the dead-letter topic with a counter and keeps going.

use crate::support as common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use cryptoflow::runtime::{run, Cluster, SourceSpec};
use cryptoflow_operators::model::Output;
use cryptoflow_sinks::kafka::Topics;

fn topics(suffix: &str) -> Topics {
    Topics {
        trades: format!("crypto-trades-{suffix}"),
        prices: format!("crypto-prices-{suffix}"),
        alerts: format!("crypto-alerts-{suffix}"),
        events: format!("crypto-events-{suffix}"),
        features: format!("crypto-features-{suffix}"),
        sentiment: format!("crypto-sentiment-{suffix}"),
        signals: format!("crypto-signals-{suffix}"),
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_publishes_every_record_and_a_python_client_validates_them() {
    let brokers = kafka_brokers();
    let suffix = unique_suffix("e2e");
    let t = topics(&suffix);
    for name in [&t.trades, &t.prices, &t.alerts, &t.events] {
        create_topic(&brokers, name, 2).await;
    }
    let mut cfg = test_config(2);
    cfg.sinks.kafka.brokers = brokers.clone();
    cfg.sinks.kafka.topics = t.clone();
    let (report, records) = replay_fixture(&cfg).await;
    let ack = report.acks.iter().find(|(n, _)| *n == "kafka").unwrap().1;
    assert!(ack.complete);
    let n_trades = records
        .iter()
        .filter(|r| matches!(r, Output::Trade(_)))
        .count();
    let exp = expected();
    let exp_trades = exp["trades"].as_array().unwrap();
    assert_eq!(n_trades, exp_trades.len());

    let all = [
        t.trades.as_str(),
        t.prices.as_str(),
        t.alerts.as_str(),
        t.events.as_str(),
        t.features.as_str(),
    ];
    let n_candles = exp["candles"].as_array().unwrap().len();
    let whales = exp["whales"].as_u64().unwrap() as usize;
    let late = exp["late"].as_array().unwrap().len();
    let msgs = consume_until(&brokers, &all, Duration::from_secs(60), |m| {
        let on = |topic: &str| m.iter().filter(|x| x.0 == topic).count();
        on(&t.trades) >= n_trades
            && on(&t.alerts) >= whales
            && on(&t.features) >= n_candles
            && m.iter()
                .any(|x| x.0 == t.events && x.2.contains("\"stopped\""))
    })
    .await;

    // Trades: each once, keyed by symbol, with the reference values.
    let mut by_id: HashMap<(String, u64), serde_json::Value> = HashMap::new();
    for (topic, key, value, _) in msgs.iter().filter(|m| m.0 == t.trades) {
        let v = json(value);
        assert_eq!(topic, &t.trades);
        assert_eq!(key.as_deref(), v["symbol"].as_str());
        let id = (
            v["symbol"].as_str().unwrap().to_string(),
            v["trade_id"].as_u64().unwrap(),
        );
        assert!(by_id.insert(id, v).is_none(), "a trade was published twice");
    }
    assert_eq!(by_id.len(), exp_trades.len());
    for e in exp_trades {
        let key = (
            e["symbol"].as_str().unwrap().to_string(),
            e["trade_id"].as_u64().unwrap(),
        );
        let v = &by_id[&key];
        assert_eq!(dec(&v["price"]), dec(&e["price"]), "{key:?}");
        assert_eq!(dec(&v["qty"]), dec(&e["qty"]), "{key:?}");
        assert!(close(
            dec(&v["moving_average"]),
            dec(&e["moving_average"]),
            "0.0001"
        ));
        assert_eq!(v["is_whale"], e["is_whale"], "{key:?}");
    }

    // Candles: the final message per window equals the reference candle.
    let mut finals: HashMap<(String, i64), serde_json::Value> = HashMap::new();
    let mut indicators = 0usize;
    for (_, _, value, _) in msgs.iter().filter(|m| m.0 == t.prices) {
        let v = json(value);
        if v["type"] == "indicators" {
            indicators += 1;
            continue;
        }
        if v["is_final"].as_bool().unwrap() {
            let k = (
                v["symbol"].as_str().unwrap().to_string(),
                v["open_time"].as_i64().unwrap(),
            );
            assert!(finals.insert(k, v).is_none(), "two final candles");
        }
    }
    let exp_candles = exp["candles"].as_array().unwrap();
    assert_eq!(finals.len(), exp_candles.len());
    assert_eq!(
        indicators,
        finals.len(),
        "one indicators message per final candle"
    );
    let vectors = msgs.iter().filter(|m| m.0 == t.features).count();
    assert_eq!(vectors, finals.len(), "one feature vector per final candle");
    for c in exp_candles {
        let k = (
            c["symbol"].as_str().unwrap().to_string(),
            c["open_time"].as_i64().unwrap(),
        );
        let v = &finals[&k];
        for f in ["open", "high", "low", "close", "volume", "quote_volume"] {
            assert_eq!(dec(&v[f]), dec(&c[f]), "{k:?} {f}");
        }
        assert_eq!(v["trade_count"], c["trade_count"], "{k:?}");
    }

    // Alerts and events.
    let types = |topic: &str| -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (_, _, value, _) in msgs.iter().filter(|x| x.0 == topic) {
            *m.entry(json(value)["type"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        m
    };
    assert_eq!(types(&t.alerts).get("whale"), Some(&whales));
    let ev = types(&t.events);
    assert_eq!(ev.get("late_trade"), Some(&late));
    assert_eq!(ev.get("lifecycle"), Some(&2), "started and stopped");

    // Forming candle updates vary with batching; the second replay publishes at least its final
    // candles and their indicators.
    let prices_min = msgs.iter().filter(|m| m.0 == t.prices).count() + finals.len() + indicators;
    // A second replay publishes everything again (at-least-once): dedup by key and id.
    let (_, _) = replay_fixture(&cfg).await;

    let res = python_schema_check(
        &brokers,
        &[
            format!("trades={}:{}", t.trades, 2 * n_trades),
            format!("prices={}:{}", t.prices, prices_min),
            format!("alerts={}:{}", t.alerts, 2 * whales),
            format!("events={}:{}", t.events, 4),
            format!("features={}:{}", t.features, 2 * vectors),
        ],
        &[],
    )
    .await;
    assert_eq!(res[&t.trades]["messages"], 2 * n_trades);
    assert_eq!(res[&t.trades]["distinct_trades"], n_trades);
    assert_eq!(res[&t.trades]["invalid"], 0);
    assert_eq!(res[&t.alerts]["types"]["whale"], 2 * whales);
    assert!(res[&t.prices]["types"]["indicators"].as_u64().unwrap() >= indicators as u64);
    assert_eq!(res[&t.features]["messages"], 2 * vectors);
    for topic in [&t.prices, &t.features, &t.alerts, &t.events] {
        assert_eq!(res[topic]["invalid"], 0, "{topic}: {res}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_sends_bad_input_to_the_dead_letter_topic_and_keeps_going() {
    let brokers = kafka_brokers();
    let suffix = unique_suffix("dlq");
    let raw = format!("raw-{suffix}");
    let dlq = format!("raw-dlq-{suffix}");
    create_topic(&brokers, &raw, 1).await;
    create_topic(&brokers, &dlq, 1).await;
    // Three minutes old: their candle is final once the consumer is idle, so the offsets of
    // every message are committed by the end of the run.
    let now = cryptoflow_sources::now_ms();
    let trade = |id: u64| {
        format!(
            r#"{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{id},"p":"43000.{id}","q":"0.5","T":{ts},"m":false,"M":true}}"#,
            ts = now - 180_000 + id as i64
        )
        .into_bytes()
    };
    let mut msgs: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    for id in 1..=50u64 {
        msgs.push((Some("BTCUSDT".into()), trade(id)));
        match id {
            10 => msgs.push((Some("BTCUSDT".into()), b"not json at all".to_vec())),
            20 => msgs.push((
                Some("BTCUSDT".into()),
                br#"{"e":"trade","s":"BTCUSDT","t":"x"}"#.to_vec(),
            )),
            30 => msgs.push((Some("BTCUSDT".into()), vec![b'{'; 100_000])),
            40 => msgs.push((Some("BTCUSDT".into()), vec![0xff, 0xfe, 0x00])),
            _ => {}
        }
    }
    // A repeat of trade 25 (a producer retry upstream) is dropped as a duplicate.
    msgs.push((Some("BTCUSDT".into()), trade(50)));
    produce_all(&brokers, &raw, &msgs).await;

    let mut cfg = test_config(1);
    cfg.kafka.brokers = brokers.clone();
    cfg.kafka.topics = vec![raw.clone()];
    cfg.kafka.group_id = unique_suffix("group");
    cfg.kafka.dead_letter_topic = dlq.clone();
    // One partition: once it is read to the end, let its candle become final quickly.
    cfg.kafka.partition_idle_ms = 1000;
    cfg.kafka
        .consumer
        .insert("session.timeout.ms".into(), "6000".into());
    let (report, recs) = consume_for(&cfg, Duration::from_secs(10)).await;
    let ids: HashSet<u64> = recs
        .iter()
        .filter_map(|r| match r {
            Output::Trade(t) => Some(t.trade.trade_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        (1..=50).collect::<HashSet<u64>>(),
        "every good trade, once"
    );
    assert_eq!(
        recs.iter()
            .filter(|r| matches!(r, Output::Trade(_)))
            .count(),
        50
    );
    assert_eq!(report.decode_errors, 4);
    let dead = consume_until(&brokers, &[&dlq], Duration::from_secs(30), |m| m.len() >= 4).await;
    assert_eq!(dead.len(), 4);
    let kinds: Vec<String> = dead
        .iter()
        .map(|(_, _, _, h)| {
            h.iter()
                .find(|(k, _)| k == "error_kind")
                .map(|(_, v)| v.clone())
                .unwrap()
        })
        .collect();
    assert_eq!(kinds, vec!["json", "json", "too_large", "utf8"], "{dead:?}");
    assert!(dead
        .iter()
        .all(|(_, _, _, h)| h.iter().any(|(k, v)| k == "source_topic" && v == &raw)));
    // The offsets were committed: the group's next run reads nothing again.
    let (again, recs) = consume_for(&cfg, Duration::from_secs(8)).await;
    assert_eq!(recs.len(), 0, "{recs:?}");
    assert_eq!(again.decode_errors, 0);
}

/// Runs `cryptoflow consume` in-process for `secs`; returns the report and the records.
async fn consume_for(
    cfg: &cryptoflow::config::Config,
    secs: Duration,
) -> (cryptoflow::runtime::RunReport, Vec<Output>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let observer = Box::new(move |recs: &[Output], _| g.lock().unwrap().extend_from_slice(recs));
    let cfg = cfg.clone();
    let report = tokio::task::spawn_blocking(move || {
        let kafka = cfg.kafka_source();
        run(
            &cfg,
            SourceSpec::Kafka {
                kafka,
                stop_after: Some(secs),
            },
            &Cluster::default(),
            Some(observer),
        )
        .unwrap()
    })
    .await
    .unwrap();
    let recs = got.lock().unwrap().clone();
    (report, recs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_publishes_live_frames_to_kafka_keyed_by_symbol() {
    use common::binance::{scripted_ws, spot_trade_frame, Step};
    let brokers = kafka_brokers();
    let topic = unique_suffix("record-raw");
    create_topic(&brokers, &topic, 1).await;
    // A local exchange: one connection, 200 trade frames on two symbols.
    let frames: Vec<String> = (1..=200u64)
        .map(|i| {
            let s = if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" };
            spot_trade_frame(s, i, "10.5", "0.25", 1_700_000_000_000 + i as i64, true)
        })
        .collect();
    let sent = frames.clone();
    let ws = scripted_ws(move |conn| {
        let mut steps: Vec<Step> = if conn == 1 {
            sent.iter().cloned().map(Step::Text).collect()
        } else {
            Vec::new()
        };
        steps.push(Step::Hold);
        steps
    })
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "record",
            "--kafka",
            &brokers,
            "--topic",
            &topic,
            "--max-frames",
            "200",
        ])
        .args(["--duration", "30"])
        .env("CRYPTOFLOW__BINANCE__WS_BASE_URL", ws.url())
        .env("CRYPTOFLOW__BINANCE__SYMBOLS", r#"["btcusdt","ethusdt"]"#)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = consume_until(&brokers, &[&topic], Duration::from_secs(30), |m| {
        m.len() >= 200
    })
    .await;
    assert_eq!(msgs.len(), 200);
    let got: Vec<&str> = msgs.iter().map(|m| m.2.as_str()).collect();
    let want: Vec<&str> = frames.iter().map(String::as_str).collect();
    assert_eq!(got, want, "frames verbatim, in order");
    for (_, key, value, _) in &msgs {
        let symbol = json(value)["data"]["s"].as_str().unwrap().to_string();
        assert_eq!(key.as_deref(), Some(symbol.as_str()));
    }
}
