//! The executor against PostgreSQL and the fake Binance: one order per intent, across a kill
//! while the order is on the wire; the journal's positions rebuilt from its fills; rejections
//! stored with their rule.

use std::time::Duration;

use cryptoflow::trade::execute::Executor;
use cryptoflow_operators::model::{Side, Trade, Venue};
use cryptoflow_operators::trading::engine::EngineConfig;
use cryptoflow_operators::trading::risk::SymbolFilters;
use cryptoflow_operators::trading::{Intent, OrderKind};
use cryptoflow_sinks::journal::{Journal, OrderState};
use rust_decimal::Decimal;

use crate::support::fake_binance_orders::{FakeBinanceOrders, Fault};
use crate::support::{fresh_database, pg_client};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config() -> EngineConfig {
    EngineConfig {
        default_filters: Some(SymbolFilters::unrestricted()),
        ..EngineConfig::default()
    }
}

fn intent(id: &str, qty: &str) -> Intent {
    Intent {
        id: id.into(),
        venue: Venue::Binance,
        symbol: "BTCUSDT".parse().unwrap(),
        side: Side::Buy,
        qty: d(qty),
        kind: OrderKind::Market,
        created_at: now_ms(),
    }
}

/// A trade at the fake's market price, so the risk gate has a fresh mark.
fn mark(now: i64) -> Trade {
    Trade {
        venue: Venue::Binance,
        symbol: "BTCUSDT".parse().unwrap(),
        trade_id: 1,
        price: d("50000"),
        qty: d("1"),
        side: Side::Buy,
        ts_exchange: now,
        ts_received: now,
        agg: None,
    }
}

async fn start(
    url: &str,
    fake: &FakeBinanceOrders,
) -> (
    Executor<cryptoflow_sinks::binance_orders::BinanceOrders>,
    cryptoflow::trade::execute::Recovery,
) {
    let journal = Journal::connect(url, "binance").await.unwrap();
    let (mut ex, recovery) = Executor::start(config(), Some(fake.client()), journal)
        .await
        .unwrap();
    ex.engine().on_trade(&mark(now_ms()));
    (ex, recovery)
}

async fn state(url: &str, id: &str) -> (String, Option<String>) {
    let c = pg_client(url).await;
    let row = c
        .query_one(
            "SELECT state, rule FROM orders WHERE intent_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_per_intent_across_a_kill_on_the_wire() {
    let url = fresh_database("executor").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let fake = FakeBinanceOrders::start().await;

    // A plain order: filled, journaled with its fills and the position.
    let (mut ex, recovery) = start(&url, &fake).await;
    assert_eq!(recovery.fills, 0);
    let st = ex
        .submit(intent("cf-plain", "0.01"), now_ms())
        .await
        .unwrap();
    assert_eq!(st, Some(OrderState::Filled));
    assert_eq!(fake.order_count("cf-plain"), 1);
    assert_eq!(state(&url, "cf-plain").await.0, "filled");

    // The risk gate refuses 1 BTC (50,000 > max_order_notional 1,000): stored with its rule,
    // nothing sent.
    let st = ex.submit(intent("cf-big", "1"), now_ms()).await.unwrap();
    assert_eq!(st, Some(OrderState::Rejected));
    assert_eq!(fake.order_count("cf-big"), 0);
    assert_eq!(
        state(&url, "cf-big").await,
        ("rejected".into(), Some("max_order_notional".into()))
    );

    // The exchange stores the order and holds its answer; the executor dies meanwhile.
    fake.inject(
        "POST /api/v3/order",
        Fault::Delay {
            delay: Duration::from_millis(900),
            store_first: true,
        },
    );
    let task = tokio::spawn(async move {
        let _ = ex.submit(intent("cf-killed", "0.01"), now_ms()).await;
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.order_count("cf-killed") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the order never reached the fake"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;
    assert_eq!(state(&url, "cf-killed").await.0, "pending", "written ahead");
    let c = pg_client(&url).await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let plain_fills = count("SELECT count(*) FROM fills").await;
    assert!(plain_fills >= 1, "the plain order's fills are journaled");

    // The restart finds the order by its client id instead of sending it again.
    let (mut ex, recovery) = start(&url, &fake).await;
    assert_eq!(recovery.resolved, 1, "{recovery:?}");
    assert_eq!(
        recovery.fills as i64, plain_fills,
        "the plain order's fills, read back"
    );
    assert_eq!(
        fake.order_count("cf-killed"),
        1,
        "exactly one order on the exchange"
    );
    assert_eq!(state(&url, "cf-killed").await.0, "filled");
    // Every journaled id is handled: submitting any again sends nothing.
    for id in ["cf-plain", "cf-big", "cf-killed"] {
        assert_eq!(ex.submit(intent(id, "0.01"), now_ms()).await.unwrap(), None);
    }
    assert_eq!(fake.order_count("cf-plain"), 1);
    assert_eq!(fake.order_count("cf-big"), 0);
    assert_eq!(fake.order_count("cf-killed"), 1);

    // Positions: two orders of 0.01 BTC with the fake's 0.1 % commission charged in BTC: the
    // journaled fee (quote) is 0 and the position is the executed quantity less the commission,
    // 0.02 × (1 − 0.001) = 0.01998 (what the account holds).
    let fills = count("SELECT count(*) FROM fills").await;
    assert!(
        fills > plain_fills,
        "the recovered order's fills are journaled"
    );
    let qty: Decimal = c
        .query_one("SELECT qty FROM positions WHERE symbol = 'BTCUSDT'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(qty, d("0.01998"));
    let held = ex.engine().portfolio().qty(&"BTCUSDT".parse().unwrap());
    assert_eq!(held, d("0.01998"), "rebuilt from the journal's fills");
    assert_eq!(
        count("SELECT sum(fills)::bigint FROM pnl_daily").await,
        fills
    );
}
