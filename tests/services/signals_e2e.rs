//! Strategy signals in the pipeline, stored and published: a replay of the bundled sample with
//! 1 s candles, done twice, leaves each of its signals once in PostgreSQL's `signals` table (same
//! ids, sides, prices and inputs as the records), and publishes them on `crypto-signals`, where a
//! Python client validates every message against `schemas/kafka/crypto-signals.v1.json`.

use crate::support as common;

use std::collections::BTreeMap;

use common::*;
use cryptoflow::config::Config;
use cryptoflow_operators::model::{Output, SignalRow};
use cryptoflow_operators::trading::signals::{StrategyConfig, StrategyKind};
use cryptoflow_operators::Decimal;
use cryptoflow_sources::replay::ReplayOptions;

/// A configuration with 1 s candles and the three strategies on them.
pub fn signals_config(workers: usize) -> Config {
    let mut cfg = test_config(workers);
    let s = "1s".parse().unwrap();
    cfg.pipeline.candle_intervals = vec![s, "1m".parse().unwrap()];
    cfg.trading.strategies = vec![
        StrategyConfig::new(StrategyKind::MaCross, s),
        StrategyConfig::new(StrategyKind::RsiBands, s),
        StrategyConfig::new(StrategyKind::BollingerBreakout, s),
    ];
    cfg
}

/// Replays `files` (the bundled sample when empty) on a blocking thread.
pub async fn replay_files(cfg: &Config, files: Vec<std::path::PathBuf>) -> Vec<Output> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || replay_collect(&cfg, files, ReplayOptions::default()).1)
        .await
        .expect("replay thread")
}

/// The signals of `recs` by id.
pub fn signals_of(recs: &[Output]) -> BTreeMap<String, SignalRow> {
    recs.iter()
        .filter_map(|r| match r {
            Output::Signal(s) => Some((s.id.clone(), (**s).clone())),
            _ => None,
        })
        .collect()
}

/// The rows of the `signals` table by id: (strategy, symbol, interval, open time ms, side,
/// price, inputs as JSON text).
pub async fn stored_signals(
    url: &str,
) -> BTreeMap<String, (String, String, String, i64, String, Decimal, String)> {
    pg_client(url)
        .await
        .query(
            "SELECT id, strategy, symbol, interval, (extract(epoch FROM open_time) * 1000)::int8,
                    side, price, inputs::text FROM signals",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                (
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_table_and_the_topic() {
    let url = fresh_database("signals").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let brokers = kafka_brokers();
    let topic = unique_suffix("crypto-signals");
    create_topic(&brokers, &topic, 2).await;
    let mut cfg = signals_config(2);
    cfg.sinks.postgres.url = url.clone();
    cfg.sinks.kafka.brokers = brokers.clone();
    cfg.sinks.kafka.topics.signals = topic.clone();
    for t in [
        &mut cfg.sinks.kafka.topics.trades,
        &mut cfg.sinks.kafka.topics.prices,
        &mut cfg.sinks.kafka.topics.alerts,
        &mut cfg.sinks.kafka.topics.events,
        &mut cfg.sinks.kafka.topics.features,
        &mut cfg.sinks.kafka.topics.sentiment,
    ] {
        *t = format!("{t}-{topic}");
    }

    let first = signals_of(&replay_files(&cfg, Vec::new()).await);
    assert!(first.len() > 20, "{} signals", first.len());
    // A second replay publishes them again and stores nothing new.
    let second = signals_of(&replay_files(&cfg, Vec::new()).await);
    assert_eq!(second, first, "a replay gives the same signals");

    let stored = stored_signals(&url).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>(),
        "each signal once in the table"
    );
    let c = pg_client(&url).await;
    for (id, s) in &first {
        let (strategy, symbol, interval, open_time, side, price, _) = &stored[id];
        let g = &s.signal;
        assert_eq!(strategy, &g.strategy);
        assert_eq!(symbol, g.symbol.as_str());
        assert_eq!(interval, g.interval.label());
        assert_eq!(*open_time, g.open_time);
        assert_eq!(side, g.side.as_str());
        assert_eq!(*price, g.price);
        // Compared by the server (its numbers are exact; a JSON parser's doubles may differ in
        // the last digit).
        let json = serde_json::to_string(&s.inputs).unwrap();
        let same: bool = c
            .query_one(
                "SELECT inputs = $1::text::jsonb FROM signals WHERE id = $2",
                &[&json, id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(same, "{id}: {json}");
    }

    // A client no one here wrote reads the topic: every message valid, keyed by its symbol,
    // each signal published by both replays.
    let n = first.len();
    let res = python_schema_check(&brokers, &[format!("signals={topic}:{}", 2 * n)], &[]).await;
    assert_eq!(res[&topic]["messages"], 2 * n);
    assert_eq!(res[&topic]["invalid"], 0);
    assert_eq!(res[&topic]["bad_keys"], 0);
    let ids: Vec<String> = res[&topic]["signal_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, first.keys().cloned().collect::<Vec<_>>());
}

/// Writes 240 s of trades of 2 symbols (25 ms apart) starting on a minute boundary, whole and in
/// two halves split at the 2-minute boundary; returns (whole, first half, second half).
fn two_halves(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use cryptoflow_sources::generate::{generate, GenerateOptions};
    let start = 1_700_000_040_000; // a multiple of 60 s
    let mut text = Vec::new();
    generate(
        &GenerateOptions {
            symbols: 2,
            trades: 9_600,
            seed: 7,
            start_ms: start,
            step_ms: 25,
            combined: false,
        },
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    let (mut a, mut b) = (String::new(), String::new());
    for line in text.lines() {
        let t = serde_json::from_str::<serde_json::Value>(line).unwrap()["T"]
            .as_i64()
            .unwrap();
        let half = if t < start + 120_000 { &mut a } else { &mut b };
        half.push_str(line);
        half.push('\n');
    }
    assert!(!a.is_empty() && !b.is_empty());
    let write = |name: &str, s: &str| {
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    (
        write("whole.jsonl", &text),
        write("first.jsonl", &a),
        write("second.jsonl", &b),
    )
}

/// The indicator rows of `recs`, sorted by key.
fn indicator_rows(recs: &[Output]) -> Vec<cryptoflow_operators::model::IndicatorRow> {
    let mut rows: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Output::Indicators(i) => Some((**i).clone()),
            _ => None,
        })
        .collect();
    rows.sort_by_key(|r| (r.venue, r.symbol, r.interval, r.open_time));
    rows
}

/// The `indicators` table as text rows, sorted by key.
async fn stored_indicators(url: &str) -> Vec<String> {
    pg_client(url)
        .await
        .query(
            "SELECT i::text FROM indicators i ORDER BY venue, symbol, interval, open_time",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A replay in two halves with a restart between: the second run warms its indicators and
/// strategies from the final candles the first stored, so both runs together give exactly the
/// indicator rows and signals of one uninterrupted replay (records and tables). Without the
/// restore, the second half starts cold (MACD is NULL again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_two_halves_gives_the_rows_of_one_run() {
    let dir = std::env::temp_dir().join(unique_suffix("cf-halves"));
    std::fs::create_dir_all(&dir).unwrap();
    let (whole, first, second) = two_halves(&dir);

    let one_url = fresh_database("halves_one").await;
    cryptoflow_sinks::postgres::migrate(&one_url).await.unwrap();
    let mut cfg = signals_config(2);
    cfg.sinks.postgres.url = one_url.clone();
    let one = replay_files(&cfg, vec![whole]).await;
    let (rows, signals) = (indicator_rows(&one), signals_of(&one));
    assert!(rows.len() >= 480, "{} indicator rows", rows.len());
    assert!(signals.len() > 5, "{} signals", signals.len());

    let two_url = fresh_database("halves_two").await;
    cryptoflow_sinks::postgres::migrate(&two_url).await.unwrap();
    cfg.sinks.postgres.url = two_url.clone();
    let mut both = replay_files(&cfg, vec![first.clone()]).await;
    let split = indicator_rows(&both).len();
    assert!(split > 200 && split < rows.len() - 200, "{split}");
    both.extend(replay_files(&cfg, vec![second.clone()]).await);
    assert_eq!(indicator_rows(&both), rows, "indicator rows");
    assert_eq!(signals_of(&both), signals, "signals");
    assert_eq!(
        stored_indicators(&two_url).await,
        stored_indicators(&one_url).await
    );
    assert_eq!(
        stored_signals(&two_url).await,
        stored_signals(&one_url).await
    );

    // Cold (restore off): the second half's first rows have no MACD.
    let cold_url = fresh_database("halves_cold").await;
    cryptoflow_sinks::postgres::migrate(&cold_url)
        .await
        .unwrap();
    cfg.sinks.postgres.url = cold_url;
    cfg.pipeline.restore_candles = 0;
    replay_files(&cfg, vec![first]).await;
    let cold = indicator_rows(&replay_files(&cfg, vec![second]).await);
    let boundary = 1_700_000_040_000 + 120_000;
    let second_half_1s = |r: &&cryptoflow_operators::model::IndicatorRow| {
        r.interval.label() == "1s" && r.open_time >= boundary
    };
    assert!(cold
        .iter()
        .filter(second_half_1s)
        .any(|r| r.values.macd.is_none()));
    assert!(rows
        .iter()
        .filter(second_half_1s)
        .all(|r| r.values.macd.is_some()));
    let _ = std::fs::remove_dir_all(&dir);
}
