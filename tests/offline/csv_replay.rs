//! A data.binance.vision CSV of the same trades gives the same candles as the JSON frames.

use crate::support as common;

use std::io::Write;

use common::*;
use cryptoflow_operators::model::Output;
use cryptoflow_operators::model::{Candle, Event};
use cryptoflow_sources::binance::{decode_frame, Decoded};
use cryptoflow_sources::replay::ReplayOptions;

fn finals(recs: Vec<Output>) -> Vec<Candle> {
    let mut v: Vec<Candle> = recs
        .into_iter()
        .filter_map(|r| match r {
            Output::Candle(c) if c.is_final => Some(c),
            _ => None,
        })
        .collect();
    v.sort_by_key(|c| (c.symbol, c.open_time));
    v
}

#[test]
fn csv_dump_and_json_frames_give_the_same_candles() {
    let dir = std::env::temp_dir().join(format!("cf-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // BTCUSDT trades of the fixture, as JSON frames and as a dump (µs timestamps, with header).
    let text = std::fs::read_to_string(fixture("binance/trades.jsonl")).unwrap();
    let json_path = dir.join("btc.jsonl");
    let csv_path = dir.join("BTCUSDT-trades-2023-11-14.csv");
    let mut json = std::fs::File::create(&json_path).unwrap();
    let mut csv = std::fs::File::create(&csv_path).unwrap();
    writeln!(
        csv,
        "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
    )
    .unwrap();
    let mut n = 0;
    for line in text.lines() {
        if let Ok(Decoded::Event(Event::Trade(t))) = decode_frame(line, 0) {
            if t.symbol.as_str() == "BTCUSDT" {
                writeln!(json, "{line}").unwrap();
                let maker = if t.side == cryptoflow_operators::model::Side::Sell {
                    "True"
                } else {
                    "False"
                };
                writeln!(
                    csv,
                    "{},{},{},{},{},{maker},True",
                    t.trade_id,
                    t.price,
                    t.qty,
                    t.price * t.qty,
                    t.ts_exchange * 1000 + 123
                )
                .unwrap();
                n += 1;
            }
        }
    }
    assert_eq!(n, 1000);
    drop((json, csv));
    let cfg = test_config(1);
    let (_, from_json) = replay_collect(&cfg, vec![json_path], ReplayOptions::default());
    let (report, from_csv) = replay_collect(&cfg, vec![csv_path], ReplayOptions::default());
    assert_eq!(report.replay.unwrap().events, 1000);
    let (a, b) = (finals(from_json), finals(from_csv));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}
