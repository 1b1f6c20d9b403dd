//! Each timely operator of `cryptoflow_operators::dataflow` alone in a bare one-worker dataflow:
//! hand-made records go in at explicit times, the output is captured, and every expected value
//! is worked out by hand in the comments (no code of the crate computes them).
//!
//! The operators whose output depends on the frontier (candles, reconciliation, features) are fed
//! in rounds: a round's records go in at its time, then the input advances to the next round's
//! time (or closes after the last round) and the worker steps until the output's frontier
//! follows; what came out meanwhile is that round's output. So "nothing yet" after a round is an
//! assertion that the operator waited for the frontier.
//!
//! The per-coin sentiment windows are checked the same way (against a brute-force
//! recomputation, on 1 and 2 workers) in `sentiment_windows.rs`.

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;

use cryptoflow_operators::dataflow::{
    AnalyticsConfig, CandleConfig, CandleIndicators, CandleOutput, DedupTrades, EventTimeCandles,
    FeatureInput, KlineReconciliation, MlFeatures, ReconcileInput, TradeAnalytics, Watermarked,
    WhaleThresholds,
};
use cryptoflow_operators::model::{
    AggIds, Candle, ContextItem, FeatureRow, IndicatorValues, Interval, Kline, KlineMismatch,
    LateTrade, Millis, Side, Symbol, Trade, Venue,
};
use cryptoflow_operators::sentiment::{SentimentRow, SentimentScore};
use cryptoflow_operators::Decimal;
use timely::dataflow::operators::capture::{Event, Extract};
use timely::dataflow::operators::vec::{Input, ToStream};
use timely::dataflow::operators::{Capture, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle, StreamVec};
use timely::worker::Worker;

const MINUTE: Interval = Interval::MINUTE;

fn sym(s: &str) -> Symbol {
    Symbol::new(s).expect("symbol")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn trade(symbol: &str, id: u64, price: &str, qty: &str, ts: Millis, side: Side) -> Trade {
    Trade {
        venue: Venue::Binance,
        symbol: sym(symbol),
        trade_id: id,
        price: dec(price),
        qty: dec(qty),
        side,
        ts_exchange: ts,
        ts_received: ts,
        agg: None,
    }
}

/// Every message `rx` has received so far, with its time.
fn drain<D>(rx: &Receiver<Event<u64, Vec<D>>>) -> Vec<(u64, D)> {
    let mut out = Vec::new();
    for event in rx.try_iter() {
        if let Event::Messages(stamp, data) = event {
            let time = *stamp.expect_singleton();
            out.extend(data.into_iter().map(|d| (time, d)));
        }
    }
    out
}

/// Feeds `rounds` (time, records) into the single-operator dataflow that `build` makes on a fresh
/// worker; returns what came out after each round (see the module docs).
fn rounds<I, O>(
    rounds: Vec<(u64, Vec<I>)>,
    build: fn(StreamVec<'_, u64, I>) -> StreamVec<'_, u64, O>,
) -> Vec<Vec<(u64, O)>>
where
    I: Clone + Send + Sync + 'static,
    O: Clone + Send + 'static,
{
    timely::execute_directly(move |worker| {
        let mut input = InputHandleVec::<u64, I>::new();
        let probe = ProbeHandle::new();
        let rx = worker.dataflow::<u64, _, _>(|scope| {
            build(scope.input_from(&mut input))
                .probe_with(&probe)
                .capture()
        });
        feed(worker, input, &probe, &rx, rounds)
    })
}

fn feed<I: Clone + 'static, O>(
    worker: &mut Worker,
    input: InputHandleVec<u64, I>,
    probe: &ProbeHandle<u64>,
    rx: &Receiver<Event<u64, Vec<O>>>,
    rounds: Vec<(u64, Vec<I>)>,
) -> Vec<Vec<(u64, O)>> {
    let mut out = Vec::new();
    let next: Vec<Option<u64>> = rounds
        .iter()
        .skip(1)
        .map(|(t, _)| Some(*t))
        .chain([None])
        .collect();
    let mut input = Some(input);
    for ((time, records), next) in rounds.into_iter().zip(next) {
        let handle = input.as_mut().expect("open until the last round");
        handle.advance_to(time);
        for r in records {
            handle.send(r);
        }
        match next {
            Some(t) => {
                handle.advance_to(t);
                while probe.less_than(&t) {
                    worker.step();
                }
            }
            None => {
                if let Some(h) = input.take() {
                    h.close();
                }
                while !probe.done() {
                    worker.step();
                }
            }
        }
        out.push(drain(rx));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// dedup_trades

#[test]
fn dedup_passes_the_first_copy_of_each_id_and_puts_repeats_on_the_second_stream() {
    let btc = |id: u64, price: &str| trade("BTCUSDT", id, price, "1", 1_000 + id as i64, Side::Buy);
    let mut agg = btc(1, "100");
    agg.agg = Some(AggIds {
        first_trade_id: 10,
        last_trade_id: 12,
    });
    let input: Vec<Watermarked<Trade>> = vec![
        (btc(1, "100"), 7),
        (btc(2, "101"), 7),
        // A corrupted repeat of id 1: dropped, the first copy (price 100) stays.
        (btc(1, "999.5"), 8),
        // Aggregate id 1 is another id space: kept.
        (agg, 8),
        // Trade id 1 of another symbol: kept.
        (trade("ETHUSDT", 1, "50", "1", 1_001, Side::Sell), 8),
        // An exact repeat of id 2.
        (btc(2, "101"), 9),
        (btc(3, "102"), 9),
    ];
    let (unique, repeats) = timely::example(move |scope| {
        let (unique, repeats) = input.to_stream(scope).dedup_trades();
        (unique.capture(), repeats.capture())
    });
    // (symbol, aggregate?, id, price, watermark): the watermark travels unchanged.
    let mut unique: Vec<(String, bool, u64, String, u64)> = unique
        .extract()
        .into_iter()
        .flat_map(|(_, v)| v)
        .map(|(t, wm)| {
            (
                t.symbol.to_string(),
                t.agg.is_some(),
                t.trade_id,
                t.price.to_string(),
                wm,
            )
        })
        .collect();
    unique.sort();
    let s = |x: &str| x.to_string();
    assert_eq!(
        unique,
        vec![
            (s("BTCUSDT"), false, 1, s("100"), 7),
            (s("BTCUSDT"), false, 2, s("101"), 7),
            (s("BTCUSDT"), false, 3, s("102"), 9),
            (s("BTCUSDT"), true, 1, s("100"), 8),
            (s("ETHUSDT"), false, 1, s("50"), 8),
        ]
    );
    let mut repeats: Vec<(String, u64, String)> = repeats
        .extract()
        .into_iter()
        .flat_map(|(_, v)| v)
        .map(|t| (t.symbol.to_string(), t.trade_id, t.price.to_string()))
        .collect();
    repeats.sort();
    assert_eq!(
        repeats,
        vec![(s("BTCUSDT"), 1, s("999.5")), (s("BTCUSDT"), 2, s("101"))]
    );
}

#[test]
fn dedup_remembers_ids_across_times_and_emits_a_repeat_at_its_own_time() {
    let t = |id: u64| trade("BTCUSDT", id, "100", "1", id as i64, Side::Buy);
    let out = rounds(
        vec![
            (3, vec![(t(1), 3), (t(2), 3)]),
            (5, vec![(t(2), 5), (t(3), 5)]),
        ],
        |s| {
            use timely::dataflow::operators::vec::Map;
            use timely::dataflow::operators::Concat;
            let (unique, repeats) = s.dedup_trades();
            unique
                .map(|(t, _)| Ok(t.trade_id))
                .concat(repeats.map(|t| Err(t.trade_id)))
        },
    );
    let sorted = |mut v: Vec<(u64, Result<u64, u64>)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(out[0].clone()), vec![(3, Ok(1)), (3, Ok(2))]);
    // Id 2 was seen at time 3: at time 5 it is a repeat.
    assert_eq!(sorted(out[1].clone()), vec![(5, Ok(3)), (5, Err(2))]);
}

// ---------------------------------------------------------------------------------------------
// trade_analytics

#[test]
fn analytics_keeps_moving_averages_and_whale_thresholds_per_symbol() {
    let config = AnalyticsConfig {
        sma_window: 3,
        ema_window: 3,
        whales: WhaleThresholds {
            default: Decimal::from(1_000),
            per_quote: BTreeMap::from([("BTC".to_string(), Decimal::ONE)]),
        },
    };
    let btc = |id: u64, price: &str, qty: &str| {
        (trade("BTCUSDT", id, price, qty, id as i64, Side::Buy), 0u64)
    };
    let eth = |id: u64, price: &str, qty: &str| {
        (trade("ETHBTC", id, price, qty, id as i64, Side::Sell), 0u64)
    };
    // The two symbols interleaved: neither may see the other's prices.
    let input = vec![
        btc(1, "10", "1"),
        eth(1, "0.05", "30"),
        btc(2, "20", "1"),
        btc(3, "30", "1"),
        eth(2, "0.07", "1"),
        btc(4, "40", "1"),
        btc(5, "50", "30"),
    ];
    let rx =
        timely::example(move |scope| input.to_stream(scope).trade_analytics(&config).capture());
    let out: Vec<_> = drain(&rx).into_iter().map(|(_, e)| e).collect();
    let of = |s: &str| -> Vec<(u64, Decimal, Option<f64>, bool, Decimal)> {
        out.iter()
            .filter(|e| e.trade.symbol.as_str() == s)
            .map(|e| {
                (
                    e.trade.trade_id,
                    e.moving_average,
                    e.ema,
                    e.is_whale,
                    e.whale_threshold,
                )
            })
            .collect()
    };
    let k = Decimal::from(1_000);
    // BTCUSDT, SMA(3) over 10, 20, 30, 40, 50: 10, (10+20)/2 = 15, (10+20+30)/3 = 20,
    // (20+30+40)/3 = 30, (30+40+50)/3 = 40. EMA(3), alpha = 2/(3+1) = 0.5, seeded with the SMA
    // of the first three (20): 0.5·(40−20)+20 = 30, 0.5·(50−30)+30 = 40. Whale: notional
    // 50·30 = 1500 ≥ 1000 (the default threshold; USDT has no override).
    assert_eq!(
        of("BTCUSDT"),
        vec![
            (1, dec("10"), None, false, k),
            (2, dec("15"), None, false, k),
            (3, dec("20"), Some(20.0), false, k),
            (4, dec("30"), Some(30.0), false, k),
            (5, dec("40"), Some(40.0), true, k),
        ]
    );
    // ETHBTC: its own SMA, 0.05 then (0.05+0.07)/2 = 0.06; the BTC override (1): notional
    // 0.05·30 = 1.5 ≥ 1 is a whale, 0.07·1 = 0.07 is not.
    assert_eq!(
        of("ETHBTC"),
        vec![
            (1, dec("0.05"), None, true, Decimal::ONE),
            (2, dec("0.06"), None, false, Decimal::ONE),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// event_time_candles

/// 1 s ticks: the minute window [60 000, 120 000) ends at tick 120, its final candle comes out
/// at tick 119 once the frontier passes it.
fn candle_config(emit_forming: bool) -> CandleConfig {
    CandleConfig {
        intervals: vec![MINUTE],
        tick_ms: 1_000,
        emit_forming,
    }
}

fn final_candles(s: StreamVec<'_, u64, Watermarked<Trade>>) -> StreamVec<'_, u64, CandleOutput> {
    s.event_time_candles(&candle_config(false))
}

#[test]
fn a_candle_is_final_once_the_frontier_passes_its_end_and_a_late_trade_does_not_change_it() {
    let t1 = trade("BTCUSDT", 1, "10", "1", 60_500, Side::Buy);
    let t2 = trade("BTCUSDT", 2, "12", "2", 61_000, Side::Sell);
    let t3 = trade("BTCUSDT", 3, "11", "1", 119_999, Side::Buy);
    // Its window [60 000, 120 000) is final when it arrives (watermark 125 ≥ end tick 120).
    let late = trade("BTCUSDT", 4, "50", "5", 100_000, Side::Buy);
    let next = trade("BTCUSDT", 5, "13", "1", 125_000, Side::Sell);
    let out = rounds(
        vec![
            // Arrival order 3, 1, 2: open and close follow the ids, not the arrival.
            (60, vec![(t3, 60), (t1, 60), (t2, 60)]),
            (119, vec![]),
            (125, vec![(late.clone(), 125), (next, 125)]),
        ],
        final_candles,
    );
    // Frontier at 119: the window is still open.
    assert!(out[0].is_empty(), "{:?}", out[0]);
    // Frontier at 125 > 119: the final candle, at tick 119. Open: price of the lowest id (1) =
    // 10; close: price of the highest id (3) = 11; high 12, low 10; volume 1+2+1 = 4; quote
    // volume 10·1 + 12·2 + 11·1 = 45; VWAP 45/4 = 11.25; taker buys (ids 1 and 3) 1+1 = 2.
    let first = Candle {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: 60_000,
        close_time: 120_000,
        open: dec("10"),
        high: dec("12"),
        low: dec("10"),
        close: dec("11"),
        volume: dec("4"),
        quote_volume: dec("45"),
        vwap: dec("11.25"),
        trade_count: 3,
        taker_buy_volume: dec("2"),
        first_trade_id: 1,
        last_trade_id: 3,
        is_final: true,
    };
    assert_eq!(out[1], vec![(119, CandleOutput::Candle(first))]);
    // The late trade comes out as Late at its own time; no candle of its window again. The next
    // window [120 000, 180 000) closes with the input: one trade, final at tick 179.
    let second = Candle {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: 120_000,
        close_time: 180_000,
        open: dec("13"),
        high: dec("13"),
        low: dec("13"),
        close: dec("13"),
        volume: dec("1"),
        quote_volume: dec("13"),
        vwap: dec("13"),
        trade_count: 1,
        taker_buy_volume: dec("0"),
        first_trade_id: 5,
        last_trade_id: 5,
        is_final: true,
    };
    let mut last = out[2].clone();
    last.sort();
    assert_eq!(
        last,
        vec![
            (
                125,
                CandleOutput::Late(LateTrade {
                    trade: late,
                    interval: MINUTE,
                    candle_open_time: 60_000,
                })
            ),
            (179, CandleOutput::Candle(second)),
        ]
    );
}

#[test]
fn forming_candles_come_out_at_the_time_of_the_trades_that_changed_them() {
    let t1 = trade("ETHUSDT", 1, "10", "1", 60_500, Side::Buy);
    let t2 = trade("ETHUSDT", 2, "14", "3", 61_500, Side::Buy);
    let out = rounds(vec![(60, vec![(t1, 60)]), (61, vec![(t2, 61)])], |s| {
        s.event_time_candles(&candle_config(true))
    });
    let summary = |v: &Vec<(u64, CandleOutput)>| -> Vec<(u64, u64, String, bool)> {
        v.iter()
            .map(|(t, c)| match c {
                CandleOutput::Candle(c) => (*t, c.trade_count, c.close.to_string(), c.is_final),
                CandleOutput::Late(l) => panic!("nothing is late: {l:?}"),
            })
            .collect()
    };
    // After the first trade: a forming candle at tick 60 (count 1, close 10).
    assert_eq!(summary(&out[0]), vec![(60, 1, "10".to_string(), false)]);
    // After the second: forming at tick 61 (count 2, close 14), then final at 119 on close.
    let mut rest = summary(&out[1]);
    rest.sort();
    assert_eq!(
        rest,
        vec![
            (61, 2, "14".to_string(), false),
            (119, 2, "14".to_string(), true)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// reconcile_klines

/// A final candle of BTCUSDT for the minute at `open` with the given close, volume and trade
/// count (open 10, high 20, low 5).
fn rc_candle(open: Millis, close: &str, volume: &str, count: u64) -> Candle {
    let p = dec(close);
    Candle {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: open,
        close_time: open + 60_000,
        open: dec("10"),
        high: dec("20"),
        low: dec("5"),
        close: p,
        volume: dec(volume),
        quote_volume: p * dec(volume),
        vwap: p,
        trade_count: count,
        taker_buy_volume: Decimal::ZERO,
        first_trade_id: 1,
        last_trade_id: count,
        is_final: true,
    }
}

/// The exchange's kline of the same shape.
fn rc_kline(open: Millis, close: &str, volume: &str, count: u64) -> Kline {
    let p = dec(close);
    Kline {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: open,
        close_time: open + 59_999,
        first_trade_id: 1,
        last_trade_id: count as i64,
        open: dec("10"),
        high: dec("20"),
        low: dec("5"),
        close: p,
        volume: dec(volume),
        quote_volume: p * dec(volume),
        trade_count: count,
        taker_buy_volume: Decimal::ZERO,
        taker_buy_quote_volume: Decimal::ZERO,
        is_closed: true,
        ts_exchange: open + 60_000,
        ts_received: open + 60_000,
    }
}

/// 1 s ticks, a horizon of 600 s.
fn reconcile(
    s: StreamVec<'_, u64, ReconcileInput>,
    compare_trade_count: bool,
) -> StreamVec<'_, u64, KlineMismatch> {
    s.reconcile_klines(1_000, 600_000, compare_trade_count)
}

fn mismatch(open: Millis, fields: &[&str]) -> KlineMismatch {
    KlineMismatch {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: open,
        fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

/// Round 0: an agreeing pair (60 000), a disagreeing pair (120 000, kline first: close 11.5 vs
/// 11, volume 4.5 vs 4, 4 trades vs 3), and a kline alone (180 000). Round 1 at `then`: the
/// candle of 180 000, disagreeing on the close (12 vs 13).
fn reconcile_rounds(then: u64) -> Vec<(u64, Vec<ReconcileInput>)> {
    vec![
        (
            0,
            vec![
                ReconcileInput::Candle(rc_candle(60_000, "10", "2", 2)),
                ReconcileInput::Kline(rc_kline(60_000, "10", "2", 2)),
                ReconcileInput::Kline(rc_kline(120_000, "11.5", "4.5", 4)),
                ReconcileInput::Candle(rc_candle(120_000, "11", "4", 3)),
                ReconcileInput::Kline(rc_kline(180_000, "13", "1", 1)),
            ],
        ),
        (
            then,
            vec![ReconcileInput::Candle(rc_candle(180_000, "12", "1", 1))],
        ),
    ]
}

#[test]
fn reconciliation_reports_the_differing_fields_of_a_pair_in_either_order() {
    // The kline of 180 000 waits until open + interval + horizon = 180 000 + 60 000 + 600 000 =
    // 840 000 ms of watermark, tick 840: at 839 it is still there, and its candle pairs with it.
    let out = rounds(reconcile_rounds(839), |s| reconcile(s, false));
    assert_eq!(out[0], vec![(0, mismatch(120_000, &["close", "volume"]))]);
    assert_eq!(out[1], vec![(839, mismatch(180_000, &["close"]))]);
    // Trade counts compared too (trades, not aggregate trades).
    let out = rounds(reconcile_rounds(839), |s| reconcile(s, true));
    assert_eq!(
        out[0],
        vec![(0, mismatch(120_000, &["close", "volume", "trade_count"]))]
    );
}

#[test]
fn reconciliation_drops_a_lone_side_once_the_watermark_passes_the_horizon() {
    // At tick 840 (840 000 ms, not below the 840 000 ms limit) the lone kline is dropped: its
    // candle arriving then has nothing to compare with.
    let out = rounds(reconcile_rounds(840), |s| reconcile(s, false));
    assert_eq!(out[0], vec![(0, mismatch(120_000, &["close", "volume"]))]);
    assert!(out[1].is_empty(), "{:?}", out[1]);
}

// ---------------------------------------------------------------------------------------------
// candle_indicators

/// A final one-minute candle of BTCUSDT number `i` (open at i minutes) closing at `close`.
fn ind_candle(i: i64, close: i64) -> Candle {
    let p = Decimal::from(close);
    Candle {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: i * 60_000,
        close_time: (i + 1) * 60_000,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: Decimal::ONE,
        quote_volume: p,
        vwap: p,
        trade_count: 1,
        taker_buy_volume: Decimal::ZERO,
        first_trade_id: i as u64,
        last_trade_id: i as u64,
        is_final: true,
    }
}

#[test]
fn indicators_follow_open_time_order_and_ignore_a_repeated_candle() {
    // Candles 1..=21 closing at 1..=21, sent newest first at one time.
    let first: Vec<Candle> = (1..=21).rev().map(|i| ind_candle(i, i)).collect();
    // Later: a repeat of candle 5 with another close (ignored), and candle 22 closing at 22.
    let second = vec![ind_candle(5, 1_000), ind_candle(22, 22)];
    let out = rounds(vec![(0, first), (1, second)], |s| s.candle_indicators());
    let rows: Vec<(i64, Option<f64>, Option<f64>)> = out[0]
        .iter()
        .map(|(_, (c, v))| (c.open_time / 60_000, v.sma_20, v.mom_10))
        .collect();
    // In open-time order; SMA(20) from the 20th: (1+…+20)/20 = 210/20 = 10.5, then
    // (2+…+21)/20 = 230/20 = 11.5. Momentum(10) from the 11th: close − close 10 candles
    // before = +10 (newest-first processing would give −10).
    let want: Vec<(i64, Option<f64>, Option<f64>)> = (1..=21)
        .map(|i| {
            let sma = match i {
                20 => Some(10.5),
                21 => Some(11.5),
                _ => None,
            };
            (i, sma, (i >= 11).then_some(10.0))
        })
        .collect();
    assert_eq!(rows, want);
    // Only candle 22: SMA(20) over 3..=22 = 250/20 = 12.5 (with the repeat's 1000 in place of 5
    // it would not be), momentum 22 − 12 = 10.
    let rows: Vec<(i64, Option<f64>, Option<f64>)> = out[1]
        .iter()
        .map(|(_, (c, v))| (c.open_time / 60_000, v.sma_20, v.mom_10))
        .collect();
    assert_eq!(rows, vec![(22, Some(12.5), Some(10.0))]);
}

// ---------------------------------------------------------------------------------------------
// ml_features

fn feature_candle(open: Millis, close: &str) -> FeatureInput {
    let p = dec(close);
    let c = Candle {
        venue: Venue::Binance,
        symbol: sym("BTCUSDT"),
        interval: MINUTE,
        open_time: open,
        close_time: open + 60_000,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: dec("8"),
        quote_volume: p * dec("8"),
        vwap: p,
        trade_count: 4,
        taker_buy_volume: dec("2"),
        first_trade_id: 1,
        last_trade_id: 4,
        is_final: true,
    };
    FeatureInput::Candle(Box::new((c, IndicatorValues::default())))
}

fn whale(ts: Millis, id: u64, qty: f64) -> FeatureInput {
    FeatureInput::Whale(Venue::Binance, sym("BTCUSDT"), ts, id, qty)
}

fn news(published_at: Millis, compound: f64) -> ContextItem {
    ContextItem::Sentiment(SentimentRow {
        item_key: format!("news|{published_at}"),
        kind: "news".into(),
        model: "vader".into(),
        published_at,
        coins: vec!["BTC".into()],
        score: SentimentScore {
            neg: 0.0,
            neu: 1.0,
            pos: 0.0,
            compound,
        },
    })
}

fn value(row: &FeatureRow, name: &str) -> Option<f64> {
    row.named()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no feature {name}"))
        .1
}

#[test]
fn features_wait_for_both_inputs_and_use_only_what_was_known_at_the_close() {
    let rows = timely::execute_directly(|worker| {
        let mut items = InputHandleVec::<u64, FeatureInput>::new();
        let mut context = InputHandleVec::<u64, ContextItem>::new();
        let probe = ProbeHandle::new();
        let rx = worker.dataflow::<u64, _, _>(|scope| {
            let ctx = scope.input_from(&mut context);
            scope
                .input_from(&mut items)
                .ml_features(ctx)
                .probe_with(&probe)
                .capture()
        });
        let mut seen = Vec::new();
        items.advance_to(10);
        context.advance_to(10);
        // Time 10: two candles ([0, 60 000) closing at 100, [60 000, 120 000) at 125) and three
        // whale trades, one in the first window and two in the second; news published inside the
        // second window's last hour and one after its close.
        for x in [
            feature_candle(60_000, "125"),
            feature_candle(0, "100"),
            whale(10_000, 1, 1.0),
            whale(70_000, 7, 1.5),
            whale(110_000, 9, 2.5),
        ] {
            items.send(x);
        }
        context.send(news(100_000, 0.5));
        context.send(news(130_000, -0.9));
        // The candles' input passes time 10, the context's does not: nothing yet.
        items.advance_to(20);
        for _ in 0..50 {
            worker.step();
        }
        seen.push(drain(&rx));
        // Now both have.
        context.advance_to(20);
        while probe.less_than(&20) {
            worker.step();
        }
        seen.push(drain(&rx));
        seen
    });
    assert!(
        rows[0].is_empty(),
        "emitted before the context's frontier passed: {:?}",
        rows[0]
    );
    let rows: Vec<FeatureRow> = rows[1]
        .iter()
        .map(|(t, r)| {
            assert_eq!(*t, 10);
            r.clone()
        })
        .collect();
    assert_eq!(
        rows.iter().map(|r| r.open_time).collect::<Vec<_>>(),
        vec![0, 60_000]
    );
    let (a, b) = (&rows[0], &rows[1]);
    // First candle: no previous close; one whale of 1.0 in [0, 60 000]; volume 8, so a share of
    // 1/8 = 0.125; the news is from after its close: none counted.
    assert_eq!(value(a, "ret_1"), None);
    assert_eq!(value(a, "whale_count"), Some(1.0));
    assert_eq!(value(a, "whale_volume"), Some(1.0));
    assert_eq!(value(a, "whale_volume_share"), Some(0.125));
    assert_eq!(value(a, "news_count_1h"), Some(0.0));
    // Second candle: 125/100 − 1 = 0.25; whales 1.5 + 2.5 = 4.0 of volume 8 = 0.5; the news of
    // 100 000 is in (120 000 − 3 600 000, 120 000], the one of 130 000 is after the close: one
    // item, mean compound 0.5, positive share 1 (0.5 ≥ 0.05).
    assert_eq!(value(b, "ret_1"), Some(0.25));
    assert_eq!(value(b, "whale_count"), Some(2.0));
    assert_eq!(value(b, "whale_volume"), Some(4.0));
    assert_eq!(value(b, "whale_volume_share"), Some(0.5));
    assert_eq!(value(b, "news_count_1h"), Some(1.0));
    assert_eq!(value(b, "news_compound_1h"), Some(0.5));
    assert_eq!(value(b, "news_pos_share_1h"), Some(1.0));
    // taker buys 2 of 8: ratio 0.25, imbalance (2 − 6)/8 = −0.5.
    assert_eq!(value(b, "taker_buy_ratio"), Some(0.25));
    assert_eq!(value(b, "buy_sell_imbalance"), Some(-0.5));
}
