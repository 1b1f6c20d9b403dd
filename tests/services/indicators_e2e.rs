//! Indicators and ML features in the dataflow: one row each per final candle per (symbol,
//! interval), in order, equal on 1 and 2 workers, equal to the indicator math fed with the final
//! candles (whose values are checked against TA-Lib in `operators/tests/indicators_parity.rs`),
//! and stored in PostgreSQL. The feature catalogue in the docs is the generated one.

use crate::support as common;

use std::collections::BTreeMap;

use common::{fresh_database, pg_client, replay_collect, test_config};
use cryptoflow_operators::dataflow::IndicatorRow;
use cryptoflow_operators::features::{catalogue_markdown, FeatureRow, CATALOGUE};
use cryptoflow_operators::math::indicators::{Bar, IndicatorSet};
use cryptoflow_operators::math::to_f64;
use cryptoflow_operators::model::Candle;
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::Symbol;
use cryptoflow_sources::generate::{generate, GenerateOptions};
use cryptoflow_sources::replay::ReplayOptions;

fn input() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("cf-indicators-{}.jsonl", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    // 2 symbols × 30,000 trades, 200 ms apart per trade: 100 one-minute candles per symbol.
    generate(
        &GenerateOptions {
            symbols: 2,
            trades: 60_000,
            seed: 11,
            start_ms: 1_700_000_000_000,
            step_ms: 100,
            combined: false,
        },
        &mut f,
    )
    .unwrap();
    drop(f);
    path
}

fn features(recs: &[Output]) -> Vec<FeatureRow> {
    let mut f: Vec<FeatureRow> = recs
        .iter()
        .filter_map(|r| match r {
            Output::Features(f) => Some((**f).clone()),
            _ => None,
        })
        .collect();
    f.sort_by_key(|r| (r.symbol, r.interval, r.open_time));
    f
}

#[test]
fn the_docs_catalogue_is_the_generated_one() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FEATURES.md")).unwrap();
    assert_eq!(
        docs,
        catalogue_markdown(),
        "regenerate with `cryptoflow features > docs/FEATURES.md`"
    );
}

fn split(recs: &[Output]) -> (Vec<IndicatorRow>, Vec<Candle>) {
    let mut ind: Vec<IndicatorRow> = recs
        .iter()
        .filter_map(|r| match r {
            Output::Indicators(i) => Some((**i).clone()),
            _ => None,
        })
        .collect();
    ind.sort_by_key(|r| (r.symbol, r.interval, r.open_time));
    let mut finals: Vec<Candle> = recs
        .iter()
        .filter_map(|r| match r {
            Output::Candle(c) if c.is_final => Some(c.clone()),
            _ => None,
        })
        .collect();
    finals.sort_by_key(|c| (c.symbol, c.interval, c.open_time));
    (ind, finals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_row_per_final_candle_same_on_two_workers_and_in_postgres() {
    let path = input();
    let p = path.clone();
    let (one, two) = tokio::task::spawn_blocking(move || {
        let a = replay_collect(&test_config(1), vec![p.clone()], ReplayOptions::default()).1;
        let b = replay_collect(&test_config(2), vec![p], ReplayOptions::default()).1;
        (a, b)
    })
    .await
    .unwrap();
    let (ind1, finals) = split(&one);
    let (ind2, _) = split(&two);
    let (f1, f2) = (features(&one), features(&two));
    assert_eq!(
        f1.len(),
        finals.len(),
        "one feature vector per final candle"
    );
    assert_eq!(f1, f2, "features: 1 and 2 workers agree");
    assert!(f1.iter().all(|f| f.values.len() == CATALOGUE.len()));
    // Whale counts equal the whale trades inside each candle.
    let whales: Vec<(Symbol, i64)> = one
        .iter()
        .filter_map(|r| match r {
            Output::Whale(w) => Some((w.trade.symbol, w.trade.ts_exchange)),
            _ => None,
        })
        .collect();
    assert!(!whales.is_empty());
    let wi = CATALOGUE
        .iter()
        .position(|f| f.name == "whale_count")
        .unwrap();
    for f in &f1 {
        let n = whales
            .iter()
            .filter(|(s, t)| *s == f.symbol && *t >= f.open_time && *t <= f.close_time)
            .count();
        assert_eq!(f.values[wi], Some(n as f64), "{} {}", f.symbol, f.open_time);
    }
    assert!(finals.len() >= 190, "{} final candles", finals.len());
    assert_eq!(ind1.len(), finals.len(), "one row per final candle");
    assert_eq!(ind1, ind2, "1 and 2 workers agree");

    // The math fed with the final candles in order gives the same rows.
    let mut sets: BTreeMap<_, IndicatorSet> = BTreeMap::new();
    for (c, r) in finals.iter().zip(&ind1) {
        assert_eq!(
            (c.symbol, c.interval, c.open_time),
            (r.symbol, r.interval, r.open_time)
        );
        let set = sets.entry((c.symbol, c.interval)).or_default();
        let bar = Bar {
            high: to_f64(c.high),
            low: to_f64(c.low),
            close: to_f64(c.close),
            volume: to_f64(c.volume),
        };
        assert_eq!(set.update(&bar, c.quote_volume, c.volume), r.values);
    }
    // Warm-up: per symbol, SMA(20) from the 20th candle, MACD from the 34th.
    let first: Vec<&IndicatorRow> = ind1.iter().filter(|r| r.symbol == ind1[0].symbol).collect();
    assert!(first[18].values.sma_20.is_none() && first[19].values.sma_20.is_some());
    assert!(first[32].values.macd.is_none() && first[33].values.macd.is_some());
    assert!(first[0].values.obv.is_some());

    // Into PostgreSQL: the same rows.
    let url = fresh_database("indicators").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let mut cfg = test_config(1);
    cfg.sinks.postgres.url = url.clone();
    let p = path.clone();
    tokio::task::spawn_blocking(move || replay_collect(&cfg, vec![p], ReplayOptions::default()))
        .await
        .unwrap();
    let c = pg_client(&url).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM indicators", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, ind1.len());
    let last = ind1.last().unwrap();
    let row = c
        .query_one(
            "SELECT rsi_14, macd_signal, vwap_20, sma_20 FROM indicators WHERE symbol = $1 AND interval = $2
             AND open_time = 'epoch'::timestamptz + $3::int8 * interval '1 millisecond'",
            &[&last.symbol.as_str(), &last.interval.label(), &last.open_time],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<f64>>(0), last.values.rsi_14);
    assert_eq!(row.get::<_, Option<f64>>(1), last.values.macd_signal);
    assert_eq!(
        row.get::<_, Option<cryptoflow_operators::Decimal>>(2),
        last.values.vwap_20
    );
    assert_eq!(row.get::<_, Option<f64>>(3), last.values.sma_20);
    let _ = std::fs::remove_file(&path);
}
