//! Frames of every Binance type cryptoflow does not process are counted per type, not dead
//! letters; REST `aggTrades` / `historicalTrades` items (one per line, no symbol) replay with
//! `--symbol` into the same trades and candles as the WebSocket frames carrying them.

use crate::support as common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use common::*;
use cryptoflow::runtime::{run, Cluster, SourceSpec};
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Candle, Event, Side, Symbol, Trade};
use cryptoflow_sources::binance::{decode_frame, Decoded};
use cryptoflow_sources::replay::ReplayOptions;

/// The BTCUSDT trades of the fixture (its `<symbol>@trade` frames), in file order.
fn fixture_trades() -> Vec<(String, Trade)> {
    let text = std::fs::read_to_string(fixture("binance/trades.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| match decode_frame(l, 0) {
            Ok(Decoded::Event(Event::Trade(t))) if t.symbol.as_str() == "BTCUSDT" => {
                Some((l.to_string(), t))
            }
            _ => None,
        })
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_lines(path: &PathBuf, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

struct Out {
    trades: Vec<Trade>,
    finals: Vec<Candle>,
}

fn collect(recs: Vec<Output>) -> Out {
    let mut out = Out {
        trades: Vec::new(),
        finals: Vec::new(),
    };
    for r in recs {
        match r {
            Output::Trade(e) => out.trades.push(e.trade),
            Output::Candle(c) if c.is_final => out.finals.push(c),
            _ => {}
        }
    }
    out.trades.sort_by_key(|t| (t.symbol, t.trade_id));
    out.finals.sort_by_key(|c| (c.symbol, c.open_time));
    out
}

fn with_symbol(symbol: &str) -> ReplayOptions {
    ReplayOptions {
        symbol: Some(Symbol::new(symbol).unwrap()),
        ..ReplayOptions::default()
    }
}

fn maker(t: &Trade) -> bool {
    t.side == Side::Sell
}

#[test]
fn rest_items_replay_like_the_websocket_frames_carrying_them() {
    let dir = temp_dir("rest-items");
    let trades = fixture_trades();
    assert_eq!(trades.len(), 1000);
    // `<symbol>@aggTrade` frames (one trade per aggregate) and the REST items of the same trades:
    // spot `/api/v3/aggTrades` (with `M`) and USDⓈ-M `/fapi/v1/aggTrades` (without).
    let ws_agg = dir.join("agg-frames.jsonl");
    let rest_agg = dir.join("aggTrades.jsonl");
    let rest_agg_um = dir.join("fapi-aggTrades.jsonl");
    write_lines(
        &ws_agg,
        trades.iter().map(|(_, t)| {
            format!(
                r#"{{"e":"aggTrade","E":{},"s":"BTCUSDT","a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{},"M":true}}"#,
                t.ts_exchange + 1,
                t.trade_id,
                t.price,
                t.qty,
                t.trade_id,
                t.trade_id,
                t.ts_exchange,
                maker(t)
            )
        }),
    );
    let rest_line = |t: &Trade, m: &str| {
        format!(
            r#"{{"a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{},"m":{}{m}}}"#,
            t.trade_id,
            t.price,
            t.qty,
            t.trade_id,
            t.trade_id,
            t.ts_exchange,
            maker(t)
        )
    };
    write_lines(
        &rest_agg,
        trades.iter().map(|(_, t)| rest_line(t, r#","M":true"#)),
    );
    write_lines(&rest_agg_um, trades.iter().map(|(_, t)| rest_line(t, "")));
    // `/api/v3/historicalTrades` items of the trades (whose frames are the fixture's lines).
    let ws_trades = dir.join("trade-frames.jsonl");
    let rest_hist = dir.join("historicalTrades.jsonl");
    write_lines(&ws_trades, trades.iter().map(|(l, _)| l.clone()));
    write_lines(
        &rest_hist,
        trades.iter().map(|(_, t)| {
            format!(
                r#"{{"id":{},"price":"{}","qty":"{}","quoteQty":"{}","time":{},"isBuyerMaker":{},"isBestMatch":true}}"#,
                t.trade_id,
                t.price,
                t.qty,
                t.price * t.qty,
                t.ts_exchange,
                maker(t)
            )
        }),
    );

    let cfg = test_config(1);
    let (_, frames) = replay_collect(&cfg, vec![ws_agg], ReplayOptions::default());
    let frames = collect(frames);
    assert_eq!(frames.trades.len(), 1000);
    assert!(frames.trades.iter().all(|t| t.agg.is_some()));
    for file in [rest_agg, rest_agg_um] {
        let (report, recs) = replay_collect(&cfg, vec![file.clone()], with_symbol("BTCUSDT"));
        let replay = report.replay.unwrap();
        assert_eq!((replay.events, replay.errors), (1000, 0), "{file:?}");
        assert_eq!(report.decode_errors, 0);
        let rest = collect(recs);
        assert_eq!(rest.trades, frames.trades, "{file:?}");
        assert_eq!(rest.finals, frames.finals, "{file:?}");
    }

    let (_, frames) = replay_collect(&cfg, vec![ws_trades], ReplayOptions::default());
    let frames = collect(frames);
    let (report, recs) = replay_collect(&cfg, vec![rest_hist.clone()], with_symbol("btcusdt"));
    assert_eq!(report.replay.unwrap().events, 1000);
    let rest = collect(recs);
    assert_eq!(rest.trades, frames.trades);
    assert_eq!(rest.finals, frames.finals);
    // The candles are those of the independent Python reference (same trades).
    let exp = expected();
    let exp_btc: Vec<&serde_json::Value> = exp["candles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["symbol"] == "BTCUSDT")
        .collect();
    assert_eq!(rest.finals.len(), 3);
    for c in &rest.finals {
        let e = exp_btc
            .iter()
            .find(|e| e["open_time"].as_i64() == Some(c.open_time))
            .expect("a reference candle");
        assert_eq!(
            (c.open, c.high, c.low, c.close),
            (
                dec(&e["open"]),
                dec(&e["high"]),
                dec(&e["low"]),
                dec(&e["close"])
            )
        );
    }

    // Without a symbol: a clear error that says what to do, not 1000 silent dead letters.
    let err = run(
        &cfg,
        SourceSpec::Replay {
            files: vec![rest_hist],
            opts: ReplayOptions::default(),
            progress: false,
        },
        &Cluster::default(),
        Some(Box::new(|_: &[Output], _: std::time::Instant| {})),
    )
    .expect_err("no symbol");
    let msg = format!("{err:#}");
    assert!(msg.contains("line 1") && msg.contains("--symbol"), "{msg}");
}

/// Documented payloads of streams cryptoflow does not process, with their counted type.
/// Spot: <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>;
/// futures: the USDⓈ-M and COIN-M "Websocket Market Streams" pages.
const IGNORED: &[(&str, &str)] = &[
    (
        r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
        "bookTicker",
    ),
    (
        r#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
        "bookTicker",
    ),
    (
        r#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#,
        "depthUpdate",
    ),
    (
        r#"{"e":"depthUpdate","E":1571889248277,"T":1571889248276,"s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,"b":[["7403.89","0.002"]],"a":[["7405.96","3.340"]]}"#,
        "depthUpdate",
    ),
    (
        r#"{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}"#,
        "partialDepth",
    ),
    (
        r#"{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10","a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}"#,
        "24hrTicker",
    ),
    (
        r#"[{"e":"24hrTicker","E":123456789,"s":"BTCUSDT","p":"0.0015","P":"250.00","w":"0.0018","c":"0.0025","Q":"10","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}]"#,
        "24hrTicker",
    ),
    (
        r#"{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}"#,
        "24hrMiniTicker",
    ),
    (
        r#"[{"e":"24hrMiniTicker","E":123456789,"s":"BTCUSDT","c":"0.0025","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}]"#,
        "24hrMiniTicker",
    ),
    (
        r#"{"e":"1hTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010","h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,"C":1675216573749,"F":0,"L":18150,"n":18151}"#,
        "1hTicker",
    ),
    (
        r#"{"e":"4hTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010","h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,"C":1675216573749,"F":0,"L":18150,"n":18151}"#,
        "4hTicker",
    ),
    (
        r#"{"e":"1dTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00","o":"0.0010","h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018","v":"10000","q":"18","O":0,"C":1675216573749,"F":0,"L":18150,"n":18151}"#,
        "1dTicker",
    ),
    (
        r#"{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m","w":"25776.86000000","T":1693907032213}"#,
        "avgPrice",
    ),
    (
        r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#,
        "markPriceUpdate",
    ),
    (
        r#"[{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11185.87786614","i":"11784.62659091","P":"11784.25641265","r":"0.00030000","T":1562306400000}]"#,
        "markPriceUpdate",
    ),
    (
        r#"{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}"#,
        "forceOrder",
    ),
    (
        r#"{"e":"continuous_kline","E":1607443058651,"ps":"BTCUSDT","ct":"PERPETUAL","k":{"t":1607443020000,"T":1607443079999,"i":"1m","f":116467658886,"L":116468012423,"o":"18787.00","c":"18804.04","h":"18804.04","l":"18786.54","v":"197.664","n":543,"x":false,"q":"3715253.19494","V":"184.769","Q":"3472925.84746","B":"0"}}"#,
        "continuous_kline",
    ),
    (
        r#"{"e":"indexPrice_kline","E":1591267070033,"ps":"BTCUSD","k":{"t":1591267020000,"T":1591267079999,"s":"0","i":"1m","f":1591267020000,"L":1591267070000,"o":"9542.21900000","c":"9542.50440000","h":"9542.71640000","l":"9542.21040000","v":"0","n":51,"x":false,"q":"0","V":"0","Q":"0","B":"0"}}"#,
        "indexPrice_kline",
    ),
    (
        r#"{"e":"markPrice_kline","E":1591267398004,"ps":"BTCUSD","k":{"t":1591267380000,"T":1591267439999,"s":"BTCUSD_200626","i":"1m","f":1591267380000,"L":1591267398000,"o":"9539.67161333","c":"9540.82761333","h":"9540.82761333","l":"9539.66961333","v":"0","n":19,"x":false,"q":"0","V":"0","Q":"0","B":"0"}}"#,
        "markPrice_kline",
    ),
    (
        r#"{"e":"compositeIndex","E":1602310596000,"s":"DEFIUSDT","p":"554.41604065","C":"baseAsset","c":[{"b":"BAL","q":"USDT","w":"1.04884844","W":"0.01457800","i":"24.33521021"}]}"#,
        "compositeIndex",
    ),
    (
        r#"{"e":"contractInfo","E":1669356423908,"s":"IOTAUSDT","ps":"IOTAUSDT","ct":"PERPETUAL","dt":4133404800000,"ot":1569398400000,"cs":"TRADING","bks":[{"bs":1,"bnf":0,"bnc":5000,"mmr":0.01,"cf":0,"mi":21,"ma":50}]}"#,
        "contractInfo",
    ),
    (
        r#"[{"e":"assetIndexUpdate","E":1686749230000,"s":"ADAUSD","i":"0.27462452","b":"0.10000000","a":"0.10000000","B":"0.24716207","A":"0.30208698","q":"0.05000000","g":"0.05000000","Q":"0.26089330","G":"0.28835575"}]"#,
        "assetIndexUpdate",
    ),
    (
        r#"{"e":"kline","E":1672515782136,"s":"BTCUSDT","k":{"t":1672531200000,"T":1675209599999,"s":"BTCUSDT","i":"1M","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}"#,
        "kline_1M",
    ),
    (r#"{"result":null,"id":1}"#, "response"),
    (r#"{"result":["btcusdt@aggTrade"],"id":3}"#, "response"),
    (
        r#"{"code":2,"msg":"Invalid request: too many parameters"}"#,
        "error",
    ),
];

#[test]
fn a_capture_of_every_ignored_type_has_no_dead_letters() {
    let dir = temp_dir("ignored-types");
    let trades = fixture_trades();
    // Trades interleaved with the ignored payloads, each k + 1 times (k its index mod 3), raw, in
    // the combined-stream wrapper, or as a capture line around the wrapper.
    let mut lines = Vec::new();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut it = trades.iter();
    for (k, (payload, ty)) in IGNORED.iter().enumerate() {
        for rep in 0..=(k % 3) {
            let line = match (k + rep) % 3 {
                0 => payload.to_string(),
                1 => format!(r#"{{"stream":"x@y","data":{payload}}}"#),
                _ => format!(
                    r#"{{"ts_received":1700000000000,"frame":{{"stream":"x@y","data":{payload}}}}}"#
                ),
            };
            lines.push(line);
            *want.entry(ty.to_string()).or_default() += 1;
            lines.extend(it.by_ref().take(20).map(|(l, _)| l.clone()));
        }
    }
    lines.extend(it.map(|(l, _)| l.clone()));
    let mixed = dir.join("mixed.jsonl");
    let only_trades = dir.join("trades.jsonl");
    write_lines(&mixed, lines);
    write_lines(&only_trades, trades.iter().map(|(l, _)| l.clone()));

    let cfg = test_config(1);
    let (report, recs) = replay_collect(&cfg, vec![mixed], ReplayOptions::default());
    let replay = report.replay.unwrap();
    let total: u64 = want.values().sum();
    assert_eq!(
        (replay.errors, report.decode_errors, replay.events),
        (0, 0, 1000),
        "no dead letters"
    );
    assert_eq!(replay.ignored, total);
    assert_eq!(report.ignored, want.into_iter().collect::<Vec<_>>());
    let (_, plain) = replay_collect(&cfg, vec![only_trades], ReplayOptions::default());
    let (mixed, plain) = (collect(recs), collect(plain));
    assert_eq!(mixed.trades, plain.trades);
    assert_eq!(mixed.finals, plain.finals);
}
