//! Strategy signals computed in the pipeline: a replay of the bundled sample with 1 s candles
//! gives exactly the signals [`Strategies`] gives over the replay's own indicator rows, with the
//! same ids, on 1 and 2 workers.

use crate::support as common;

use common::*;
use cryptoflow_operators::model::{IndicatorRow, Output, SignalRow};
use cryptoflow_operators::trading::signals::{Strategies, StrategyConfig, StrategyKind};
use cryptoflow_sources::replay::ReplayOptions;

fn strategies() -> Vec<StrategyConfig> {
    let s = "1s".parse().unwrap();
    vec![
        StrategyConfig::new(StrategyKind::MaCross, s),
        StrategyConfig::new(StrategyKind::RsiBands, s),
        StrategyConfig::new(StrategyKind::BollingerBreakout, s),
        // A strategy on an interval without enough candles (the sample's hour has 12 five-minute
        // candles, RSI(14) needs 15) fires nothing.
        StrategyConfig {
            name: "rsi_5m".into(),
            ..StrategyConfig::new(StrategyKind::RsiBands, "5m".parse().unwrap())
        },
    ]
}

/// The sample's indicator rows and signals, each sorted by key.
fn replay(workers: usize) -> (Vec<IndicatorRow>, Vec<SignalRow>) {
    let mut cfg = test_config(workers);
    cfg.pipeline.candle_intervals = vec!["1s".parse().unwrap(), "5m".parse().unwrap()];
    cfg.trading.strategies = strategies();
    let (_, recs) = replay_collect(&cfg, Vec::new(), ReplayOptions::default());
    let mut rows = Vec::new();
    let mut signals = Vec::new();
    for r in recs {
        match r {
            Output::Indicators(i) => rows.push(*i),
            Output::Signal(s) => signals.push(*s),
            _ => {}
        }
    }
    rows.sort_by_key(|r| (r.venue, r.symbol, r.interval, r.open_time));
    signals.sort_by(|a, b| {
        let (a, b) = (&a.signal, &b.signal);
        (a.venue, a.symbol, a.interval, a.open_time, &a.strategy).cmp(&(
            b.venue,
            b.symbol,
            b.interval,
            b.open_time,
            &b.strategy,
        ))
    });
    (rows, signals)
}

#[test]
fn pipeline_signals_are_the_strategies_over_its_indicator_rows() {
    let (rows, signals) = replay(1);
    assert!(rows.len() > 1000, "{} indicator rows", rows.len());

    // The strategies over the same rows, in order.
    let mut reference = Strategies::new(strategies());
    let mut plain = Strategies::new(strategies());
    let mut want: Vec<SignalRow> = Vec::new();
    for r in &rows {
        let got = reference.signal_rows(r);
        let ids: Vec<String> = plain.on_indicators(r).iter().map(|s| s.id()).collect();
        assert_eq!(
            got.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            ids,
            "signal_rows and on_indicators agree"
        );
        want.extend(got);
    }
    want.sort_by(|a, b| {
        let (a, b) = (&a.signal, &b.signal);
        (a.venue, a.symbol, a.interval, a.open_time, &a.strategy).cmp(&(
            b.venue,
            b.symbol,
            b.interval,
            b.open_time,
            &b.strategy,
        ))
    });
    assert_eq!(signals, want);

    // Every strategy on 1 s fired, each id is unique, the 5 m one never had enough candles.
    for name in ["ma_cross", "rsi_bands", "bollinger_breakout"] {
        assert!(
            signals.iter().any(|s| s.signal.strategy == name),
            "{name} fired nothing"
        );
    }
    assert!(signals.iter().all(|s| s.signal.strategy != "rsi_5m"));
    let mut ids: Vec<&str> = signals.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), signals.len(), "unique ids");
    for s in &signals {
        assert!(!s.inputs.is_empty(), "{s:?}");
        let g = &s.signal;
        let row = rows
            .iter()
            .find(|r| (r.symbol, r.interval, r.open_time) == (g.symbol, g.interval, g.open_time))
            .unwrap();
        assert_eq!(g.price, row.close);
        assert_eq!(g.close_time, row.close_time);
    }

    // The same on 2 workers (each symbol's state on the worker that owns it).
    let (rows2, signals2) = replay(2);
    assert_eq!(rows2, rows);
    assert_eq!(signals2, signals);
}

#[test]
fn no_strategies_no_signals() {
    let mut cfg = test_config(1);
    cfg.pipeline.candle_intervals = vec!["1s".parse().unwrap()];
    cfg.trading.strategies = Vec::new();
    let (_, recs) = replay_collect(&cfg, Vec::new(), ReplayOptions::default());
    assert!(recs.iter().any(|r| matches!(r, Output::Indicators(_))));
    assert!(!recs.iter().any(|r| matches!(r, Output::Signal(_))));
}
