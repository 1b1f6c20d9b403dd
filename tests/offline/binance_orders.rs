//! The Binance spot order client against the fake exchange (`support::fake_binance_orders`):
//! signing, fills and fees, and the rule that an intent never gets two orders, through
//! timeouts, dropped connections, 5xx, -1007, 429, 418, -1021 and duplicates; the user data
//! stream's fills, keepalives and reconnects; secrets kept out of `Debug`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Side, Symbol, Venue};
use cryptoflow_operators::trading::{Intent, OrderKind};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::binance_orders::{
    sign, BinanceOrders, BinanceOrdersConfig, Credentials, OrderError, OrderStatus, OutcomeSource,
    RejectKind, UserEvent,
};
use tokio::sync::mpsc;

use crate::support::fake_binance_orders::{
    hmac_sha256_hex, FakeBinanceOrders, Fault, FeeMode, API_KEY, API_SECRET,
};

const NEW_ORDER: &str = "/api/v3/order";

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

fn market(id: &str, side: Side, qty: &str) -> Intent {
    Intent {
        id: id.into(),
        venue: Venue::Binance,
        symbol: btc(),
        side,
        qty: d(qty),
        kind: OrderKind::Market,
        created_at: 1_700_000_000_000,
    }
}

fn limit(id: &str, side: Side, qty: &str, price: &str) -> Intent {
    Intent {
        kind: OrderKind::Limit { price: d(price) },
        ..market(id, side, qty)
    }
}

/// Every POST of a new order carried the intent's id as its client id.
fn posts_with_id(fake: &FakeBinanceOrders, id: &str) -> usize {
    let posts = fake.requests("POST", NEW_ORDER);
    assert!(posts
        .iter()
        .all(|r| r.param("newClientOrderId") == Some(id)));
    posts.len()
}

#[test]
fn signature_reproduces_binance_documented_example() {
    let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    let want = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
    assert_eq!(sign(secret, query).unwrap(), want);
    assert_eq!(Credentials::new("k", secret).sign(query).unwrap(), want);
    // The fake's own HMAC (over sha2, not the client's hmac crate) agrees.
    assert_eq!(hmac_sha256_hex(secret.as_bytes(), query.as_bytes()), want);
}

#[tokio::test]
async fn market_orders_fill_with_fills_and_fees() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    let info = client.exchange_info(&[btc()]).await.unwrap();
    assert_eq!(info.symbols[&btc()].quote_asset, "USDT");
    assert_eq!(info.symbols[&btc()].filters.step_size, d("0.00001"));

    // A buy pays its commission in BTC (the base asset): fee 0 in the fill, raw kept.
    let buy = market("mkt-buy-1", Side::Buy, "0.002");
    let o = client.place(&buy).await.unwrap();
    assert_eq!(o.client_order_id, "mkt-buy-1");
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.source, OutcomeSource::Response);
    assert_eq!(o.executed_qty, d("0.002"));
    assert_eq!(o.cummulative_quote_qty, d("100.00001"));
    assert_eq!(o.fills.len(), 2);
    assert!(o.fills_complete());
    assert_eq!(o.fills[0].price, d("50000"));
    assert_eq!(o.fills[1].price, d("50000.01"));
    assert!(o
        .fills
        .iter()
        .all(|f| f.intent_id == "mkt-buy-1" && f.fee.is_zero() && f.side == Side::Buy));
    assert_eq!(o.commissions[0].asset, "BTC");
    assert_eq!(o.commissions[0].amount, d("0.000001"));
    assert_eq!(o.commissions[0].fill_id, o.fills[0].fill_id);

    // A sell pays in USDT (the quote asset): the fee is the commission.
    let sell = market("mkt-sell-1", Side::Sell, "0.002");
    let o = client.place(&sell).await.unwrap();
    assert_eq!(o.fills.len(), 2);
    assert_eq!(o.commissions[0].asset, "USDT");
    assert_eq!(o.fills[0].fee, d("0.05"));
    assert_eq!(o.fills[0].fee, o.commissions[0].amount);

    // BNB commissions are not converted.
    fake.set_fee_mode(FeeMode::Bnb);
    let o = client
        .place(&market("mkt-bnb-1", Side::Sell, "0.001"))
        .await
        .unwrap();
    assert!(o.fills.iter().all(|f| f.fee.is_zero()));
    assert!(o.commissions.iter().all(|c| c.asset == "BNB"));

    // What went over the wire.
    let post = &fake.requests("POST", NEW_ORDER)[0];
    assert_eq!(post.param("newOrderRespType"), Some("FULL"));
    assert_eq!(post.param("type"), Some("MARKET"));
    assert_eq!(post.param("quantity"), Some("0.002"));
    assert_eq!(post.param("recvWindow"), Some("5000"));
    assert_eq!(post.api_key.as_deref(), Some(API_KEY));
    assert_eq!(fake.order_count("mkt-buy-1"), 1);
    assert_eq!(fake.bad_signatures(), 0);
}

#[tokio::test]
async fn limit_orders_are_gtc_and_can_be_cancelled() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    let o = client
        .place(&limit("lim-1", Side::Buy, "0.00100", "49000.50"))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::New);
    let post = &fake.requests("POST", NEW_ORDER)[0];
    assert_eq!(post.param("timeInForce"), Some("GTC"));
    assert_eq!(post.param("price"), Some("49000.5"));
    assert_eq!(post.param("quantity"), Some("0.001"));
    client
        .place(&limit("lim-2", Side::Buy, "0.001", "48000"))
        .await
        .unwrap();
    client
        .place(&limit("lim-3", Side::Sell, "0.001", "52000"))
        .await
        .unwrap();
    let open = client.open_orders(Some(&btc())).await.unwrap();
    assert_eq!(open.len(), 3);
    assert_eq!(client.open_orders(None).await.unwrap().len(), 3);

    let c = client.cancel(&btc(), "lim-1").await.unwrap();
    assert_eq!(c.client_order_id, "lim-1");
    assert_eq!(c.status, OrderStatus::Canceled);
    match client.cancel(&btc(), "never-placed").await {
        Err(OrderError::NoSuchOrder { .. }) => {}
        other => panic!("{other:?}"),
    }
    let all = client.cancel_all(&btc()).await.unwrap();
    let mut ids: Vec<_> = all.iter().map(|o| o.client_order_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["lim-2", "lim-3"]);
    assert!(client.cancel_all(&btc()).await.unwrap().is_empty());
    assert!(client.open_orders(Some(&btc())).await.unwrap().is_empty());
}

/// An order stored, then no usable answer: the client finds it by query and never resends.
async fn recovered_after(fault: Fault) {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    fake.inject("POST /api/v3/order", fault.clone());
    let intent = market("unk-1", Side::Buy, "0.004");
    let o = client
        .place(&intent)
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    assert_eq!(o.source, OutcomeSource::Query, "{fault:?}");
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.client_order_id, "unk-1");
    assert_eq!(o.executed_qty, d("0.004"));
    // The fills come from myTrades.
    assert_eq!(o.fills.len(), 2, "{fault:?}");
    assert!(o.fills_complete());
    assert_eq!(fake.order_count("unk-1"), 1, "{fault:?}");
    assert_eq!(posts_with_id(&fake, "unk-1"), 1, "{fault:?}: resent");
    assert!(fake.count("GET", NEW_ORDER) >= 1);
}

#[tokio::test]
async fn timeout_after_the_order_was_stored_is_recovered_by_query() {
    recovered_after(Fault::Delay {
        delay: Duration::from_secs(3),
        store_first: true,
    })
    .await;
}

#[tokio::test]
async fn dropped_connection_after_the_order_was_stored_is_recovered_by_query() {
    recovered_after(Fault::DropAfterStore).await;
}

#[tokio::test]
async fn backend_timeout_1007_is_recovered_by_query() {
    recovered_after(Fault::BackendTimeoutAfterStore).await;
}

#[tokio::test]
async fn server_error_before_storing_is_resent_with_the_same_client_id() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    fake.inject("POST /api/v3/order", Fault::ServerError);
    let o = client
        .place(&market("srv-1", Side::Buy, "0.001"))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.source, OutcomeSource::Response);
    assert_eq!(fake.order_count("srv-1"), 1);
    assert_eq!(posts_with_id(&fake, "srv-1"), 2);
    // Absence was confirmed (absent_checks = 2) before the resend.
    assert_eq!(fake.count("GET", NEW_ORDER), 2);
}

#[tokio::test]
async fn an_outcome_that_stays_unknown_is_never_resent() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    fake.inject("POST /api/v3/order", Fault::ServerError);
    for _ in 0..3 {
        fake.inject("GET /api/v3/order", Fault::ServerError);
    }
    let intent = market("stuck-1", Side::Buy, "0.001");
    let err = client.place(&intent).await.unwrap_err();
    assert!(err.needs_reconcile(), "{err}");
    assert!(!err.is_retryable());
    assert!(
        matches!(err, OrderError::Unknown { ref client_order_id, .. } if client_order_id == "stuck-1")
    );
    assert_eq!(posts_with_id(&fake, "stuck-1"), 1);
    assert_eq!(fake.count("GET", NEW_ORDER), 3);

    // Later (or after a restart) the executor reconciles: absent → placed once.
    let o = client.reconcile(&intent).await.unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(fake.order_count("stuck-1"), 1);
    // Reconciling again finds it and sends nothing.
    let again = client.reconcile(&intent).await.unwrap();
    assert_eq!(again.source, OutcomeSource::Query);
    assert_eq!(again.exchange_order_id, o.exchange_order_id);
    assert_eq!(posts_with_id(&fake, "stuck-1"), 2);
}

#[tokio::test]
async fn reconcile_after_restart_finds_the_order_sent_before() {
    let fake = FakeBinanceOrders::start().await;
    let intent = market("journaled-1", Side::Sell, "0.003");
    // The process that sent it died before the answer.
    fake.inject("POST /api/v3/order", Fault::DropAfterStore);
    let cfg = BinanceOrdersConfig {
        max_attempts: 1,
        ..fake.client_config()
    };
    fake.inject(
        "GET /api/v3/order",
        Fault::Error {
            status: 503,
            code: -1001,
            msg: "Internal error; unable to process your request. Please try again.".into(),
        },
    );
    let err = fake.client_with(cfg).place(&intent).await.unwrap_err();
    assert!(err.needs_reconcile(), "{err}");
    // The restarted executor reconciles with a fresh client.
    let o = fake.client().reconcile(&intent).await.unwrap();
    assert_eq!(o.source, OutcomeSource::Query);
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(o.fills.len(), 2);
    assert!(o.fills.iter().all(|f| f.fee > Decimal::ZERO));
    assert_eq!(fake.order_count("journaled-1"), 1);
    assert_eq!(posts_with_id(&fake, "journaled-1"), 1);
}

#[tokio::test]
async fn rate_limit_429_waits_retry_after_and_succeeds() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    fake.inject("POST /api/v3/order", Fault::RateLimit { retry_after_s: 1 });
    let start = Instant::now();
    let o = client
        .place(&market("rl-1", Side::Buy, "0.001"))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status, OrderStatus::Filled);
    assert_eq!(posts_with_id(&fake, "rl-1"), 2);
    assert_eq!(fake.order_count("rl-1"), 1);
    // A 429 was not processed: no query was needed.
    assert_eq!(fake.count("GET", NEW_ORDER), 0);
}

#[tokio::test]
async fn ban_418_is_an_error_and_nothing_is_sent_before_its_end() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    client.sync_time().await.unwrap();
    fake.inject("POST /api/v3/order", Fault::Ban { retry_after_s: 120 });
    let before = wall_ms();
    let err = client
        .place(&market("ban-1", Side::Buy, "0.001"))
        .await
        .unwrap_err();
    let OrderError::Banned { until } = err else {
        panic!("{err:?}")
    };
    assert!(until >= before + 119_000 && until <= wall_ms() + 121_000);
    assert!(!err.needs_reconcile());
    let sent = fake.all_requests().len();
    // Any request before the end of the ban fails at once, unsent.
    let again = client.place(&market("ban-2", Side::Buy, "0.001")).await;
    assert!(matches!(again, Err(OrderError::Banned { .. })), "{again:?}");
    assert!(matches!(
        client.open_orders(None).await,
        Err(OrderError::Banned { .. })
    ));
    assert_eq!(fake.all_requests().len(), sent);
    assert_eq!(fake.count("POST", NEW_ORDER), 1);
    assert_eq!(fake.total_orders(), 0);
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn timestamp_outside_recv_window_resyncs_and_succeeds() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    client.sync_time().await.unwrap();
    assert!(client.time_offset_ms().abs() < 500);
    // The server's clock jumps 20 s ahead: the client's timestamps are now too old.
    fake.set_skew_ms(20_000);
    let o = client
        .place(&market("skew-1", Side::Buy, "0.001"))
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert!((client.time_offset_ms() - 20_000).abs() < 500);
    assert_eq!(fake.count("GET", "/api/v3/time"), 2);
    assert_eq!(posts_with_id(&fake, "skew-1"), 2);
    assert_eq!(fake.order_count("skew-1"), 1);

    // And 20 s behind: the timestamps are ahead of the server's time.
    fake.set_skew_ms(-20_000);
    client
        .place(&market("skew-2", Side::Buy, "0.001"))
        .await
        .unwrap();
    assert!((client.time_offset_ms() + 20_000).abs() < 500);
    assert_eq!(fake.count("GET", "/api/v3/time"), 3);
    assert_eq!(fake.order_count("skew-2"), 1);
}

#[tokio::test]
async fn a_fresh_client_syncs_its_clock_before_the_first_signed_request() {
    let fake = FakeBinanceOrders::start().await;
    fake.set_skew_ms(-30_000);
    let client = fake.client();
    client
        .place(&market("sync-1", Side::Buy, "0.001"))
        .await
        .unwrap();
    assert_eq!(fake.count("GET", "/api/v3/time"), 1);
    assert_eq!(fake.count("POST", NEW_ORDER), 1);
}

#[tokio::test]
async fn insufficient_balance_is_a_permanent_rejection() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    fake.set_quote_balance(d("10"));
    let err = client
        .place(&market("poor-1", Side::Buy, "0.01"))
        .await
        .unwrap_err();
    match &err {
        OrderError::Rejected { code, msg, kind } => {
            assert_eq!(*code, -2010);
            assert_eq!(
                msg,
                "Account has insufficient balance for requested action."
            );
            assert_eq!(*kind, RejectKind::InsufficientBalance);
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable() && !err.needs_reconcile());
    assert_eq!(fake.count("POST", NEW_ORDER), 1);
    assert_eq!(fake.total_orders(), 0);
}

#[tokio::test]
async fn filter_failure_1013_is_a_rejection_with_the_exchange_message() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    let err = client
        .place(&market("lot-1", Side::Buy, "0.000015"))
        .await
        .unwrap_err();
    match &err {
        OrderError::Rejected { code, msg, kind } => {
            assert_eq!(*code, -1013);
            assert_eq!(msg, "Filter failure: LOT_SIZE");
            assert_eq!(*kind, RejectKind::Filter);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Filter failure: LOT_SIZE"));
    let err = client
        .place(&limit("tick-1", Side::Buy, "0.001", "50000.005"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OrderError::Rejected { code: -1013, ref msg, .. } if msg == "Filter failure: PRICE_FILTER")
    );
    assert_eq!(fake.count("POST", NEW_ORDER), 2);
}

#[tokio::test]
async fn duplicate_client_id_resolves_to_the_existing_order() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    let intent = limit("dup-1", Side::Buy, "0.001", "45000");
    let first = client.place(&intent).await.unwrap();
    // The executor (wrongly) places the same intent again: Binance says "Duplicate order
    // sent.", and the outcome is the order already there.
    let second = client.place(&intent).await.unwrap();
    assert_eq!(second.exchange_order_id, first.exchange_order_id);
    assert_eq!(second.source, OutcomeSource::Query);
    assert_eq!(second.status, OrderStatus::New);
    assert_eq!(fake.order_count("dup-1"), 1);
    assert_eq!(posts_with_id(&fake, "dup-1"), 2);
}

#[tokio::test]
async fn symbols_not_trading_are_refused_before_sending() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client();
    let halt = Symbol::new("HALTUSDT").unwrap();
    let eth = Symbol::new("ETHBTC").unwrap();
    let info = client.exchange_info(&[btc(), eth, halt]).await.unwrap();
    assert!(info.symbols.contains_key(&btc()) && info.symbols.contains_key(&eth));
    assert_eq!(info.refused[&halt].status, "BREAK");
    assert_eq!(info.symbols[&eth].quote_asset, "BTC");
    let intent = Intent {
        symbol: halt,
        ..market("halt-1", Side::Buy, "1")
    };
    let err = client.place(&intent).await.unwrap_err();
    assert!(
        matches!(err, OrderError::NotTrading { ref status, .. } if status == "BREAK"),
        "{err:?}"
    );
    assert_eq!(fake.count("POST", NEW_ORDER), 0);
    // The symbols list went out as Binance's JSON array.
    let req = &fake.requests("GET", "/api/v3/exchangeInfo")[0];
    assert_eq!(
        req.param("symbols"),
        Some(r#"["BTCUSDT","ETHBTC","HALTUSDT"]"#)
    );
}

async fn next_event(rx: &mut mpsc::Receiver<UserEvent>) -> UserEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no user data event within 5 s")
        .expect("user stream ended")
}

/// The next fill, skipping order updates and other events.
async fn next_fill(rx: &mut mpsc::Receiver<UserEvent>) -> UserEvent {
    loop {
        let ev = next_event(rx).await;
        if matches!(ev, UserEvent::Fill { .. }) {
            return ev;
        }
    }
}

#[tokio::test]
async fn user_data_stream_delivers_fills_keeps_alive_and_reconnects() {
    let fake = FakeBinanceOrders::start().await;
    let client = fake.client_with(BinanceOrdersConfig {
        keepalive_interval_ms: 150,
        ..fake.client_config()
    });
    client.exchange_info(&[btc()]).await.unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let stream = client.spawn_user_stream(tx);
    assert_eq!(next_event(&mut rx).await, UserEvent::Connected);

    let intent = limit("uds-1", Side::Sell, "0.003", "51000");
    let placed = client.place(&intent).await.unwrap();
    assert_eq!(placed.status, OrderStatus::New);
    match next_event(&mut rx).await {
        UserEvent::Order(r) => {
            assert_eq!(r.intent_id(), "uds-1");
            assert_eq!(r.execution_type, "NEW");
        }
        other => panic!("{other:?}"),
    }

    // Filled later, in two trades.
    fake.fill_limit("uds-1", d("0.001"));
    let UserEvent::Fill {
        fill,
        commission,
        report,
    } = next_fill(&mut rx).await
    else {
        unreachable!()
    };
    assert_eq!(fill.intent_id, "uds-1");
    assert_eq!(fill.side, Side::Sell);
    assert_eq!(fill.qty, d("0.001"));
    assert_eq!(fill.price, d("51000"));
    // A sell pays in USDT, the quote asset.
    assert_eq!(commission.asset, "USDT");
    assert_eq!(fill.fee, d("0.051"));
    assert_eq!(fill.fill_id, commission.fill_id);
    assert_eq!(report.status, OrderStatus::PartiallyFilled);
    assert_eq!(report.order_id, placed.exchange_order_id);

    // The listen key is kept alive.
    let key = fake.listen_keys()[0].clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.count("PUT", "/api/v3/userDataStream") < 2 {
        assert!(Instant::now() < deadline, "no keepalive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let puts = fake.requests("PUT", "/api/v3/userDataStream");
    assert!(puts.iter().all(
        |r| r.param("listenKey") == Some(key.as_str()) && r.api_key.as_deref() == Some(API_KEY)
    ));
    // No signature on listen key requests.
    assert!(puts.iter().all(|r| r.param("signature").is_none()));

    // The connection is lost: reconnected with a new listen key, later fills still arrive.
    fake.drop_user_streams();
    loop {
        if next_event(&mut rx).await == UserEvent::Connected {
            break;
        }
    }
    let keys = fake.listen_keys();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    fake.fill_limit("uds-1", d("0.002"));
    let UserEvent::Fill { fill, report, .. } = next_fill(&mut rx).await else {
        unreachable!()
    };
    assert_eq!(fill.qty, d("0.002"));
    assert_eq!(report.status, OrderStatus::Filled);
    assert_eq!(report.cumulative_qty, d("0.003"));

    // Other events are surfaced as such.
    fake.push_event(
        serde_json::json!({"e": "balanceUpdate", "E": 1, "a": "USDT", "d": "1.0", "T": 1}),
    );
    match next_event(&mut rx).await {
        UserEvent::Other { event_type, .. } => assert_eq!(event_type, "balanceUpdate"),
        other => panic!("{other:?}"),
    }

    stream.stop().await;
    let closed = fake.requests("DELETE", "/api/v3/userDataStream");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].param("listenKey"), Some(keys[1].as_str()));
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_on_the_wire() {
    let fake = FakeBinanceOrders::start().await;
    let creds = FakeBinanceOrders::credentials();
    let client = BinanceOrders::new(fake.client_config(), creds.clone()).unwrap();
    for shown in [
        format!("{creds:?}"),
        format!("{client:?}"),
        format!("{:?}", fake.client_config()),
    ] {
        assert!(!shown.contains(API_SECRET), "{shown}");
        assert!(!shown.contains(API_KEY), "{shown}");
    }
    client
        .place(&market("dbg-1", Side::Buy, "0.001"))
        .await
        .unwrap();
    let err = client
        .place(&market("dbg-2", Side::Buy, "0.000015"))
        .await
        .unwrap_err();
    assert!(!format!("{err:?} {err}").contains(API_SECRET));
    // The secret only signs; it never travels.
    for r in fake.all_requests() {
        assert!(!r.query.contains(API_SECRET));
    }
}

#[tokio::test]
async fn credentials_come_from_the_environment_named_in_the_config() {
    let cfg = BinanceOrdersConfig {
        api_key_env: "CRYPTOFLOW_TEST_ORDERS_KEY_UNSET_9f1".into(),
        api_secret_env: "CRYPTOFLOW_TEST_ORDERS_SECRET_UNSET_9f1".into(),
        ..BinanceOrdersConfig::default()
    };
    let err = BinanceOrders::from_env(cfg).unwrap_err();
    assert!(
        matches!(err, OrderError::MissingCredential { ref var, .. } if var == "CRYPTOFLOW_TEST_ORDERS_KEY_UNSET_9f1")
    );
    assert!(err
        .to_string()
        .contains("CRYPTOFLOW_TEST_ORDERS_KEY_UNSET_9f1"));
}
