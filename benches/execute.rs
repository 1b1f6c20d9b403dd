//! The executor's latency, signal → order on the wire: a strategy signal is sized into an intent,
//! passes the risk gate, is journaled `pending` in PostgreSQL and sent, signed, to the fake
//! Binance on 127.0.0.1 (`tests/support/fake_binance_orders.rs`, reached through its TCP relay);
//! the time runs from the signal to the moment the fake's handler has the whole request. The
//! round trip (until the exchange's answer is journaled) is reported beside it.
//!
//! Needs PostgreSQL for the journal: `CRYPTOFLOW_TEST_POSTGRES_URL` (as `scripts/services.sh`
//! prints it) or `CRYPTOFLOW_BENCH_POSTGRES`; without either it says so and does nothing.
//!
//! The executor runs as a task of the runtime, as `cryptoflow execute` runs it
//! ([`run_on_worker`]). Then the two legs of the wire time are measured alone: the journal's
//! pending write (`journal_*`: the insert and its commit) and the signed order from the client
//! to the fake's handler (`send_*`).
//!
//! `cargo bench --bench execute` prints one line:
//! `EXECBENCH orders=N wire_p50_us=… wire_p99_us=… wire_max_us=… roundtrip_p50_us=…
//! roundtrip_p99_us=… journal_p50_us=… journal_p99_us=… send_p50_us=… send_p99_us=…`.

use std::time::Instant;

use cryptoflow::trade::execute::{run_on_worker, Executor};
use cryptoflow_operators::model::{Side, Trade, Venue};
use cryptoflow_operators::trading::engine::EngineConfig;
use cryptoflow_operators::trading::signals::{intent_for, Signal};
use cryptoflow_operators::trading::{Intent, OrderKind};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::journal::Journal;

#[allow(dead_code)]
#[path = "../tests/support/fake_binance_orders.rs"]
mod fake_binance_orders;

use fake_binance_orders::FakeBinanceOrders;

const ORDERS: usize = 1_000;
const WARM_UP: usize = 50;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let Some(server) = std::env::var("CRYPTOFLOW_BENCH_POSTGRES")
        .or_else(|_| std::env::var("CRYPTOFLOW_TEST_POSTGRES_URL"))
        .ok()
    else {
        eprintln!(
            "execute bench: set CRYPTOFLOW_TEST_POSTGRES_URL (eval \"$(bash scripts/services.sh)\") \
             or CRYPTOFLOW_BENCH_POSTGRES; nothing measured"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    run_on_worker(&rt, run(server)).expect("the bench's task");
}

async fn run(server: String) {
    let server = server.as_str();
    // A fresh database for the journal.
    let name = format!("cf_execbench_{}", std::process::id());
    let (admin, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the bench database");
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    let url = format!("{base}/{name}");
    cryptoflow_sinks::postgres::migrate(&url)
        .await
        .expect("migrate");
    let journal = Journal::connect(&url, "binance").await.expect("journal");

    let fake = FakeBinanceOrders::start().await;
    let price: Decimal = "50000".parse().expect("price");
    fake.set_market_price(price);
    let mut config = EngineConfig::default();
    let big: Decimal = "1000000000000".parse().expect("big");
    config.risk.max_position_notional = big;
    config.risk.max_total_exposure = big;
    config.risk.daily_loss_limit = big;
    config.risk.max_orders_per_minute = u32::MAX;
    let sizing = config.sizing.clone();
    let (mut executor, _) = Executor::start(config, Some(fake.client()), journal)
        .await
        .expect("executor");
    let symbol = "BTCUSDT".parse().expect("symbol");
    executor.ensure_filters(&symbol).await.expect("filters");

    let mut wire = Vec::with_capacity(ORDERS);
    let mut roundtrip = Vec::with_capacity(ORDERS);
    let start = wall_ms();
    for i in 0..ORDERS + WARM_UP {
        let now = wall_ms();
        let trade = Trade {
            venue: Venue::Binance,
            symbol,
            trade_id: i as u64 + 1,
            price,
            qty: Decimal::ONE,
            side: Side::Sell,
            ts_exchange: now,
            ts_received: now,
            agg: None,
        };
        executor.on_trade(&trade).await.expect("trade");
        let open_time = start + 60_000 * i as i64;
        let signal = Signal {
            strategy: "bench".into(),
            venue: Venue::Binance,
            symbol,
            interval: "1m".parse().expect("interval"),
            open_time,
            close_time: open_time + 59_999,
            side: Side::Buy,
            price,
            reason: "bench".into(),
        };
        let sent_before = fake.count("POST", "/api/v3/order");
        let t0 = Instant::now();
        let held = executor.engine().portfolio().qty(&symbol);
        let intent = intent_for(&signal, &sizing, held).expect("an intent");
        let state = executor.submit(intent, now).await.expect("submit");
        let done = t0.elapsed();
        assert!(state.is_some(), "order {i} not handled");
        let requests = fake.requests("POST", "/api/v3/order");
        assert_eq!(requests.len(), sent_before + 1, "one request per order");
        let at = requests.last().expect("the request").at;
        if i >= WARM_UP {
            wire.push(at.duration_since(t0).as_micros());
            roundtrip.push(done.as_micros());
        }
    }
    drop(executor);

    // The legs alone: the pending write (a second journal on the same database) and the send.
    let journal = Journal::connect(&url, "binance").await.expect("journal");
    let client = fake.client();
    let mut journal_us = Vec::with_capacity(ORDERS);
    let mut send_us = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS + WARM_UP {
        let intent = Intent {
            id: format!("legs{i:08}"),
            venue: Venue::Binance,
            symbol,
            side: Side::Buy,
            qty: "0.001".parse().expect("qty"),
            kind: OrderKind::Market,
            created_at: wall_ms(),
        };
        let t0 = Instant::now();
        assert!(journal.write_pending(&intent).await.expect("pending"));
        let written = t0.elapsed();
        let sent_before = fake.count("POST", "/api/v3/order");
        let t1 = Instant::now();
        client.place(&intent).await.expect("placed");
        let requests = fake.requests("POST", "/api/v3/order");
        assert_eq!(requests.len(), sent_before + 1, "one request per order");
        let at = requests.last().expect("the request").at;
        if i >= WARM_UP {
            journal_us.push(written.as_micros());
            send_us.push(at.duration_since(t1).as_micros());
        }
    }
    for v in [&mut wire, &mut roundtrip, &mut journal_us, &mut send_us] {
        v.sort_unstable();
    }
    println!(
        "EXECBENCH orders={} wire_p50_us={} wire_p99_us={} wire_max_us={} roundtrip_p50_us={} roundtrip_p99_us={} journal_p50_us={} journal_p99_us={} send_p50_us={} send_p99_us={}",
        wire.len(),
        percentile(&wire, 0.50),
        percentile(&wire, 0.99),
        wire.last().copied().unwrap_or(0),
        percentile(&roundtrip, 0.50),
        percentile(&roundtrip, 0.99),
        percentile(&journal_us, 0.50),
        percentile(&journal_us, 0.99),
        percentile(&send_us, 0.50),
        percentile(&send_us, 0.99),
    );
    drop(journal);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
