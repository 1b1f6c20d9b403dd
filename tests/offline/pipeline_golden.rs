//! The dataflow on 1 and 2 workers against the independent Python reference.

use crate::support as common;

use std::collections::BTreeMap;

use common::*;
use cryptoflow_operators::model::Candle;
use cryptoflow_operators::model::Output;
use cryptoflow_sources::replay::ReplayOptions;

struct Outputs {
    /// (symbol, trade_id) → (moving average, is_whale)
    trades: BTreeMap<(String, u64), (String, bool)>,
    finals: Vec<Candle>,
    late: Vec<(String, u64)>,
    whales: usize,
    /// Dead letters of the replay.
    errors: u64,
    /// Repeated trade ids dropped (data-quality ledger).
    duplicates: u64,
}

fn run_with(workers: usize) -> Outputs {
    let out = run_fixture("trades", workers);
    assert_eq!(
        out.errors, 2,
        "the truncated and the NaN line are dead letters"
    );
    out
}

fn run_fixture(name: &str, workers: usize) -> Outputs {
    let cfg = test_config(workers);
    let (report, recs) = replay_collect(
        &cfg,
        vec![fixture(&format!("binance/{name}.jsonl"))],
        ReplayOptions::default(),
    );
    let replay = report.replay.unwrap();
    assert_eq!(report.decode_errors, replay.errors);
    let mut out = Outputs {
        trades: BTreeMap::new(),
        finals: Vec::new(),
        late: Vec::new(),
        whales: 0,
        errors: replay.errors,
        duplicates: report.quality.iter().map(|q| q.duplicates).sum(),
    };
    for r in recs {
        match r {
            Output::Trade(e) => {
                let prev = out.trades.insert(
                    (e.trade.symbol.to_string(), e.trade.trade_id),
                    (e.moving_average.to_string(), e.is_whale),
                );
                assert!(prev.is_none(), "trade delivered twice");
            }
            Output::Candle(c) if c.is_final => out.finals.push(c),
            Output::Late(l) => out
                .late
                .push((l.trade.symbol.to_string(), l.trade.trade_id)),
            Output::Whale(_) => out.whales += 1,
            _ => {}
        }
    }
    out.finals
        .sort_by_key(|c| (c.symbol.as_str().to_string(), c.open_time));
    out
}

#[test]
fn one_and_two_workers_match_the_reference() {
    let one = run_with(1);
    let two = run_with(2);
    check_against_reference(&expected(), one, two);
}

/// Pairs priced around 1e-7…1e-4 and 1e5 (SHIBUSDT, PEPEUSDT, XRPETH, VETBTC, BTCUSDT, made by
/// `tests/reference/make_lowprice_fixture.py`): every moving average and VWAP to at least 20
/// significant digits of Python `decimal`'s, volumes exact — no fixed number of decimal places.
#[test]
fn low_priced_pairs_keep_every_significant_digit() {
    let one = run_fixture("lowprice", 1);
    let two = run_fixture("lowprice", 2);
    assert_eq!(one.errors, 0);
    let exp = expected_for("lowprice");
    assert!(one.finals.len() > 150, "{} final candles", one.finals.len());
    assert!(one.whales > 50, "{} whales", one.whales);
    check_against_reference(&exp, one, two);
}

/// Overlapping captures and a corrupted repeat (same id, price 999.5): every (symbol, id) counts
/// once — the first copy — in averages and candles, on 1 and 2 workers, equal to the reference
/// that skips repeats; the repeats are counted in the ledger.
#[test]
fn repeated_trade_ids_count_once() {
    let one = run_fixture("repeats", 1);
    let two = run_fixture("repeats", 2);
    let exp = expected_for("repeats");
    assert_eq!(one.duplicates, exp["duplicates"].as_u64().unwrap());
    assert_eq!(two.duplicates, one.duplicates);
    assert!(one.duplicates > 200, "{}", one.duplicates);
    check_against_reference(&exp, one, two);
}

fn check_against_reference(exp: &serde_json::Value, one: Outputs, two: Outputs) {
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
            close_rel(
                dec(&serde_json::Value::String(ma.clone())),
                dec(&t["moving_average"]),
                "1e-20"
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
            close_rel(got.vwap, dec(&want["vwap"]), "1e-20"),
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
