//! Criterion benches: frame decoding, the pure math, and the timely operators on 1 worker.

use std::str::FromStr;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cryptoflow_operators::dataflow::{
    AnalyticsConfig, CandleConfig, EventTimeCandles, TradeAnalytics,
};
use cryptoflow_operators::math::{CandleAcc, Ema, Sma};
use cryptoflow_operators::model::{Event, Trade};
use cryptoflow_operators::Decimal;
use cryptoflow_sources::binance::{decode_frame, Decoded};
use cryptoflow_sources::generate::{generate, GenerateOptions};
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandleVec, ProbeHandle};

fn sample(n: u64, symbols: usize) -> (Vec<String>, Vec<Trade>) {
    let mut buf = Vec::new();
    generate(
        &GenerateOptions {
            trades: n,
            symbols,
            ..Default::default()
        },
        &mut buf,
    )
    .expect("generate");
    let lines: Vec<String> = String::from_utf8(buf)
        .expect("utf8")
        .lines()
        .map(String::from)
        .collect();
    let trades = lines
        .iter()
        .filter_map(|l| match decode_frame(l, 0) {
            Ok(Decoded::Event(Event::Trade(t))) => Some(t),
            _ => None,
        })
        .collect();
    (lines, trades)
}

fn decode(c: &mut Criterion) {
    let (lines, _) = sample(10_000, 10);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("trade_frame", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                if let Ok(Decoded::Event(_)) = decode_frame(l, 0) {
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

fn math(c: &mut Criterion) {
    let (_, trades) = sample(10_000, 1);
    let mut g = c.benchmark_group("math");
    g.throughput(Throughput::Elements(trades.len() as u64));
    g.bench_function("sma20_decimal", |b| {
        b.iter(|| {
            let mut s = Sma::new(20);
            let mut last = Decimal::ZERO;
            for t in &trades {
                s.update(t.price);
                last = s.mean();
            }
            last
        })
    });
    g.bench_function("ema20_f64", |b| {
        b.iter(|| {
            let mut e = Ema::new(20);
            let mut last = None;
            for (i, _) in trades.iter().enumerate() {
                last = e.update(i as f64);
            }
            last
        })
    });
    g.bench_function("candle_add", |b| {
        b.iter(|| {
            let mut acc = CandleAcc::new(0, &trades[0]);
            for t in &trades[1..] {
                acc.add(t);
            }
            acc
        })
    });
    g.finish();
    let _ = Decimal::from_str("1");
}

fn operators(c: &mut Criterion) {
    let (_, trades) = sample(100_000, 10);
    let mut g = c.benchmark_group("operators");
    g.sample_size(10);
    g.throughput(Throughput::Elements(trades.len() as u64));
    g.bench_function("analytics_and_candles_1_worker", |b| {
        b.iter_batched(
            || trades.clone(),
            |trades| {
                timely::execute_directly(move |worker| {
                    let mut input = InputHandleVec::<u64, (Trade, u64)>::new();
                    let probe = ProbeHandle::new();
                    worker.dataflow::<u64, _, _>(|scope| {
                        let s = scope.input_from(&mut input);
                        s.clone()
                            .trade_analytics(&AnalyticsConfig::default())
                            .probe_with(&probe);
                        s.event_time_candles(&CandleConfig::default())
                            .probe_with(&probe);
                    });
                    for t in trades {
                        let tick = (t.ts_exchange / 100) as u64;
                        if tick > *input.time() + 10 {
                            input.advance_to(tick);
                            worker.step();
                        }
                        input.send((t, tick));
                    }
                    drop(input);
                    while worker.step() {}
                })
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, decode, math, operators);
criterion_main!(benches);
