//! Criterion benches: frame decoding, the pure math, the timely operators on 1 worker, and the
//! single-thread baseline loop of `cryptoflow bench --baseline`.

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

fn indicators(c: &mut Criterion) {
    use cryptoflow_operators::math::indicators as ind;
    // A random walk of 10,000 bars.
    let mut x = 100.0f64;
    let mut seed = 7u64;
    let bars: Vec<ind::Bar> = (0..10_000)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x += ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            ind::Bar {
                high: x + 0.3,
                low: x - 0.3,
                close: x,
                volume: 1.0 + (seed % 100) as f64,
            }
        })
        .collect();
    let mut g = c.benchmark_group("indicators");
    g.throughput(Throughput::Elements(bars.len() as u64));
    macro_rules! bench {
        ($name:literal, $make:expr, $upd:expr) => {
            g.bench_function($name, |b| {
                b.iter(|| {
                    let mut st = $make;
                    let mut n = 0usize;
                    for bar in &bars {
                        n += usize::from(std::hint::black_box(($upd)(&mut st, bar)).is_some());
                    }
                    n
                })
            });
        };
    }
    bench!(
        "sma20",
        ind::Sma::new(20),
        |s: &mut ind::Sma, b: &ind::Bar| s.update(b.close)
    );
    bench!("ema20", Ema::new(20), |s: &mut Ema, b: &ind::Bar| s
        .update(b.close));
    bench!(
        "wma20",
        ind::Wma::new(20),
        |s: &mut ind::Wma, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "rsi14",
        ind::Rsi::new(14),
        |s: &mut ind::Rsi, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "macd",
        ind::Macd::new(12, 26, 9),
        |s: &mut ind::Macd, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "bbands20",
        ind::Bollinger::new(20, 2.0),
        |s: &mut ind::Bollinger, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "atr14",
        ind::Atr::new(14),
        |s: &mut ind::Atr, b: &ind::Bar| s.update(b)
    );
    bench!("obv", ind::Obv::new(), |s: &mut ind::Obv, b: &ind::Bar| s
        .update(b));
    bench!(
        "stoch",
        ind::Stoch::new(14, 3, 3),
        |s: &mut ind::Stoch, b: &ind::Bar| s.update(b)
    );
    bench!(
        "roc10",
        ind::Roc::new(10),
        |s: &mut ind::Roc, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "volatility20",
        ind::Volatility::new(20),
        |s: &mut ind::Volatility, b: &ind::Bar| s.update(b.close)
    );
    bench!(
        "zscore20",
        ind::ZScore::new(20),
        |s: &mut ind::ZScore, b: &ind::Bar| s.update(b.close)
    );
    g.finish();
}

fn sentiment(c: &mut Criterion) {
    use cryptoflow_operators::sentiment::{SentimentModel, Vader};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sentiment/texts.txt"
    ))
    .unwrap_or_default();
    let texts: Vec<String> = text.lines().map(|l| l.replace("\\n", "\n")).collect();
    let mut g = c.benchmark_group("sentiment");
    g.throughput(Throughput::Elements(texts.len() as u64));
    for (name, model) in [
        ("vader_headlines", Vader::new()),
        ("vader_crypto_headlines", Vader::crypto()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for t in &texts {
                    sum += std::hint::black_box(model.score(t)).compound;
                }
                sum
            })
        });
    }
    g.finish();
}

fn features(c: &mut Criterion) {
    use cryptoflow_operators::features::FeatureEngine;
    use cryptoflow_operators::math::indicators::{Bar, IndicatorSet};
    use cryptoflow_operators::model::{Candle, Symbol, Venue};
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let mut set = IndicatorSet::default();
    let rows: Vec<_> = (0..2_000i64)
        .map(|i| {
            let p = Decimal::from(30_000 + (i * 37) % 101);
            let c = Candle {
                venue: Venue::Binance,
                symbol,
                interval: "1m".parse().unwrap(),
                open_time: i * 60_000,
                close_time: i * 60_000 + 59_999,
                open: p,
                high: p + Decimal::ONE,
                low: p - Decimal::ONE,
                close: p,
                volume: Decimal::from(3 + i % 7),
                quote_volume: p * Decimal::from(3 + i % 7),
                vwap: p,
                trade_count: 10,
                taker_buy_volume: Decimal::ONE,
                first_trade_id: 1,
                last_trade_id: 10,
                is_final: true,
            };
            let bar = Bar {
                high: 1.0,
                low: 0.0,
                close: 0.5,
                volume: 1.0,
            };
            let v = set.update(&bar, c.quote_volume, c.volume);
            (c, v)
        })
        .collect();
    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function("vector_per_final_candle", |b| {
        b.iter(|| {
            let mut e = FeatureEngine::new();
            let mut n = 0usize;
            for (c, v) in &rows {
                n += std::hint::black_box(e.on_candle(c, v)).map_or(0, |r| r.values.len());
            }
            n
        })
    });
    g.finish();
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

/// The reference loop `cryptoflow bench --compare` measures the pipeline against: decode, SMA-20
/// and the whale flag per symbol, over 100,000 generated lines held in memory.
fn baseline(c: &mut Criterion) {
    let (lines, _) = sample(100_000, 10);
    let mut input = lines.join("\n");
    input.push('\n');
    let analytics = AnalyticsConfig::default();
    let mut g = c.benchmark_group("baseline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode_sma20_whales_10_symbols", |b| {
        b.iter(|| {
            let mut reader = input.as_bytes();
            cryptoflow::bench::baseline_reader(&mut reader, &analytics)
                .expect("in-memory input")
                .trades
        })
    });
    g.finish();
}

criterion_group!(benches, decode, math, indicators, sentiment, features, operators, baseline);
criterion_main!(benches);
