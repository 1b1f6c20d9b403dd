//! Closed exchange klines are reconciled with the candles computed from trades: a kline equal to
//! the independent reference gives no mismatch; a deliberately corrupted one gives exactly one,
//! counted in the data-quality ledger.

use crate::support as common;

use std::io::Write;

use common::*;
use cryptoflow_operators::model::Output;
use cryptoflow_sources::replay::ReplayOptions;

fn kline_frame(c: &serde_json::Value, high_override: Option<&str>) -> String {
    let open = c["open_time"].as_i64().unwrap();
    format!(
        r#"{{"stream":"{s}@kline_1m","data":{{"e":"kline","E":{e},"s":"{S}","k":{{"t":{open},"T":{close},"s":"{S}","i":"1m","f":{f},"L":{l},"o":"{o}","c":"{cl}","h":"{h}","l":"{lo}","v":"{v}","n":{n},"x":true,"q":"{q}","V":"{tb}","Q":"0","B":"0"}}}}}}"#,
        s = c["symbol"].as_str().unwrap().to_lowercase(),
        S = c["symbol"].as_str().unwrap(),
        e = open + 60_000,
        close = open + 59_999,
        f = c["first_trade_id"],
        l = c["last_trade_id"],
        o = c["open"].as_str().unwrap(),
        cl = c["close"].as_str().unwrap(),
        h = high_override.unwrap_or(c["high"].as_str().unwrap()),
        lo = c["low"].as_str().unwrap(),
        v = c["volume"].as_str().unwrap(),
        n = c["trade_count"],
        q = c["quote_volume"].as_str().unwrap(),
        tb = c["taker_buy_volume"].as_str().unwrap(),
    )
}

#[test]
fn one_corrupted_kline_is_one_mismatch() {
    let exp = expected();
    let candles = exp["candles"].as_array().unwrap();
    let dir = std::env::temp_dir().join(format!("cf-kline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trades-and-klines.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&std::fs::read(fixture("binance/trades.jsonl")).unwrap())
        .unwrap();
    // Every final candle of the reference as a closed kline; ETHUSDT's second window corrupted.
    let mut corrupted = 0;
    for c in candles {
        let bad = c["symbol"] == "ETHUSDT" && c["open_time"].as_i64() == Some(1_700_000_040_000);
        if bad {
            corrupted += 1;
        }
        writeln!(f, "{}", kline_frame(c, bad.then_some("99999.99"))).unwrap();
    }
    assert_eq!(corrupted, 1);
    drop(f);

    for workers in [1, 2] {
        let cfg = test_config(workers);
        let (report, recs) = replay_collect(&cfg, vec![path.clone()], ReplayOptions::default());
        let mismatches: Vec<_> = recs
            .iter()
            .filter_map(|r| {
                if let Output::Mismatch(m) = r {
                    Some(m)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(mismatches.len(), 1, "{mismatches:?}");
        let m = mismatches[0];
        assert_eq!(
            (m.symbol.as_str(), m.open_time, m.fields.clone()),
            ("ETHUSDT", 1_700_000_040_000, vec!["high".to_string()])
        );
        let eth = report
            .quality
            .iter()
            .find(|q| q.symbol == "ETHUSDT")
            .unwrap();
        assert_eq!(eth.kline_mismatches, 1);
        let btc = report
            .quality
            .iter()
            .find(|q| q.symbol == "BTCUSDT")
            .unwrap();
        assert_eq!((btc.kline_mismatches, btc.late_events), (0, 1));
    }
}
