//! The dataflow on 1 and 2 workers against the independent Python reference.

mod common;

use std::collections::BTreeMap;

use common::*;
use cryptoflow_operators::model::Candle;
use cryptoflow_sinks::SinkRecord;
use cryptoflow_sources::replay::ReplayOptions;

struct Output {
    /// (symbol, trade_id) → (moving average, is_whale)
    trades: BTreeMap<(String, u64), (String, bool)>,
    finals: Vec<Candle>,
    late: Vec<(String, u64)>,
    whales: usize,
}

fn run_with(workers: usize) -> Output {
    let cfg = test_config(workers);
    let (report, recs) = replay_collect(
        &cfg,
        vec![fixture("binance/trades.jsonl")],
        ReplayOptions::default(),
    );
    let replay = report.replay.unwrap();
    assert_eq!(
        replay.errors, 2,
        "the truncated and the NaN line are dead letters"
    );
    assert_eq!(report.decode_errors, 2);
    let mut out = Output {
        trades: BTreeMap::new(),
        finals: Vec::new(),
        late: Vec::new(),
        whales: 0,
    };
    for r in recs {
        match r {
            SinkRecord::Trade(e) => {
                let prev = out.trades.insert(
                    (e.trade.symbol.to_string(), e.trade.trade_id),
                    (e.moving_average.to_string(), e.is_whale),
                );
                assert!(prev.is_none(), "trade delivered twice");
            }
            SinkRecord::Candle(c) if c.is_final => out.finals.push(c),
            SinkRecord::Late(l) => out
                .late
                .push((l.trade.symbol.to_string(), l.trade.trade_id)),
            SinkRecord::Whale(_) => out.whales += 1,
            _ => {}
        }
    }
    out.finals.sort_by_key(|c| (c.symbol, c.open_time));
    out
}

#[test]
fn one_and_two_workers_match_the_reference() {
    let exp = expected();
    let one = run_with(1);
    let two = run_with(2);

    // Identical on 1 and 2 workers.
    assert_eq!(one.trades, two.trades);
    assert_eq!(one.finals, two.finals);
    assert_eq!(one.late, two.late);
    assert_eq!(one.whales, two.whales);

    // Equal to the reference.
    let trades = exp["trades"].as_array().unwrap();
    assert_eq!(one.trades.len(), trades.len());
    for t in trades {
        let key = (
            t["symbol"].as_str().unwrap().to_string(),
            t["trade_id"].as_u64().unwrap(),
        );
        let (ma, whale) = one
            .trades
            .get(&key)
            .unwrap_or_else(|| panic!("missing {key:?}"));
        assert!(
            close(
                dec(&serde_json::Value::String(ma.clone())),
                dec(&t["moving_average"]),
                "1e-18"
            ),
            "{key:?}: {ma} vs {}",
            t["moving_average"]
        );
        assert_eq!(*whale, t["is_whale"].as_bool().unwrap(), "{key:?}");
    }
    assert_eq!(one.whales as u64, exp["whales"].as_u64().unwrap());
    let late: Vec<(String, u64)> = exp["late"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["symbol"].as_str().unwrap().to_string(),
                l["trade_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(one.late, late);

    let candles = exp["candles"].as_array().unwrap();
    assert_eq!(one.finals.len(), candles.len());
    for (got, want) in one.finals.iter().zip(candles) {
        assert_eq!(got.symbol.as_str(), want["symbol"].as_str().unwrap());
        assert_eq!(got.open_time, want["open_time"].as_i64().unwrap());
        assert_eq!(got.close_time, want["close_time"].as_i64().unwrap());
        assert_eq!(got.open, dec(&want["open"]));
        assert_eq!(got.high, dec(&want["high"]));
        assert_eq!(got.low, dec(&want["low"]));
        assert_eq!(got.close, dec(&want["close"]));
        assert_eq!(got.volume, dec(&want["volume"]));
        assert_eq!(got.quote_volume, dec(&want["quote_volume"]));
        assert!(
            close(got.vwap, dec(&want["vwap"]), "1e-12"),
            "{} vs {}",
            got.vwap,
            want["vwap"]
        );
        assert_eq!(got.trade_count, want["trade_count"].as_u64().unwrap());
        assert_eq!(got.taker_buy_volume, dec(&want["taker_buy_volume"]));
        assert_eq!(got.first_trade_id, want["first_trade_id"].as_u64().unwrap());
        assert_eq!(got.last_trade_id, want["last_trade_id"].as_u64().unwrap());
    }
}
