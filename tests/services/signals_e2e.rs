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
