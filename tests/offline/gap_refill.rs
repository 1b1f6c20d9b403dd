//! Id holes in the live stream (across a reconnect and inside a connection) are refilled from a
//! local fake Binance REST API and merged in id order; a range the API refuses ends as an
//! unrefilled gap; duplicates are dropped; the refill honours 429 Retry-After and the weight
//! budget.

use crate::support as common;

use common::{collect_live, trade_ids};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cryptoflow_operators::model::{Event, GapReason};
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const T0: i64 = 1_700_000_000_000;

fn price(id: u64) -> String {
    format!("{}.{:02}", 43000 + id % 50, id % 100)
}

fn ws_trade(id: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{id},"p":"{p}","q":"0.5","T":{ts},"m":{m},"M":true}}}}"#,
        ts = T0 + id as i64,
        p = price(id),
        m = id.is_multiple_of(3)
    )
}

#[derive(Default)]
struct RestLog {
    /// (fromId, limit, when, status)
    requests: Vec<(u64, u64, Instant, u16)>,
}

#[derive(Clone)]
struct RestState {
    log: Arc<Mutex<RestLog>>,
    /// Ids the API refuses to serve (as if too old).
    refused: (u64, u64),
    /// Answer the first request with 429.
    throttle_first: bool,
}

async fn historical_trades(
    State(st): State<RestState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    let _ = headers;
    let from: u64 = q["fromId"].parse().unwrap();
    let limit: u64 = q.get("limit").map(|l| l.parse().unwrap()).unwrap_or(500);
    assert_eq!(q["symbol"], "BTCUSDT");
    let mut log = st.log.lock().unwrap();
    let n = log.requests.len();
    let weight_used = (n as u64 + 1) * 25;
    if st.throttle_first && n == 0 {
        log.requests.push((from, limit, Instant::now(), 429));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("Retry-After", "1".to_string()),
                ("X-MBX-USED-WEIGHT-1M", weight_used.to_string()),
            ],
            String::new(),
        );
    }
    if from >= st.refused.0 && from <= st.refused.1 {
        log.requests.push((from, limit, Instant::now(), 400));
        return (
            StatusCode::BAD_REQUEST,
            [
                ("Retry-After", String::new()),
                ("X-MBX-USED-WEIGHT-1M", weight_used.to_string()),
            ],
            r#"{"code":-1100,"msg":"fromId too old"}"#.to_string(),
        );
    }
    log.requests.push((from, limit, Instant::now(), 200));
    let items: Vec<String> = (from..from + limit)
        .filter(|id| *id <= 100_000)
        .map(|id| {
            format!(
                r#"{{"id":{id},"price":"{p}","qty":"0.5","quoteQty":"1","time":{ts},"isBuyerMaker":{m},"isBestMatch":true}}"#,
                p = price(id),
                ts = T0 + id as i64,
                m = id.is_multiple_of(3)
            )
        })
        .collect();
    (
        StatusCode::OK,
        [
            ("Retry-After", String::new()),
            ("X-MBX-USED-WEIGHT-1M", weight_used.to_string()),
        ],
        format!("[{}]", items.join(",")),
    )
}

/// Connection 1: ids 1..=500, then a drop. Connection 2: ids 650..=1000 with a hole at
/// 800..=809, a duplicate of 850, and a hole at 900..=904 that the API refuses.
async fn fake_ws(listener: TcpListener) {
    let mut conn = 0;
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        conn += 1;
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        if conn == 1 {
            for id in 1..=500 {
                ws.send(Message::text(ws_trade(id))).await.unwrap();
            }
            ws.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(ws);
        } else {
            for id in 650..=1000u64 {
                if (800..=809).contains(&id) || (900..=904).contains(&id) {
                    continue;
                }
                ws.send(Message::text(ws_trade(id))).await.unwrap();
                if id == 850 {
                    ws.send(Message::text(ws_trade(id))).await.unwrap();
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holes_are_refilled_in_order_and_refusals_recorded() {
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_listener.local_addr().unwrap();
    tokio::spawn(fake_ws(ws_listener));
    let log = Arc::new(Mutex::new(RestLog::default()));
    let state = RestState {
        log: log.clone(),
        refused: (900, 904),
        throttle_first: true,
    };
    let app = Router::new()
        .route("/api/v3/historicalTrades", get(historical_trades))
        .with_state(state);
    let rest_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rest_addr = rest_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(rest_listener, app).await.unwrap() });

    let cfg = WsConfig {
        base_url: format!("ws://{ws_addr}"),
        streams: vec!["btcusdt@trade".into()],
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let rest = RestConfig {
        base_url: format!("http://{rest_addr}"),
        weight_budget_per_minute: 1000,
        ..RestConfig::default()
    };
    let (events, stats) = collect_live(cfg, Some(rest), Duration::from_secs(30), |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Trade(t) if t.trade_id == 1000))
    })
    .await;

    // Every id once, in order, except the refused range.
    let ids: Vec<u64> = trade_ids(&events);
    let want: Vec<u64> = (1..=1000).filter(|id| !(900..=904).contains(id)).collect();
    assert_eq!(ids, want);
    // Refilled trades carry the exchange's values.
    let t600 = events
        .iter()
        .find_map(|e| {
            if let Event::Trade(t) = e {
                (t.trade_id == 600).then_some(t)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(t600.price.to_string(), price(600));
    assert_eq!(t600.ts_exchange, T0 + 600);

    let holes: Vec<(u64, u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(g) if g.reason == GapReason::IdHole => {
                Some((g.from_id.unwrap(), g.to_id.unwrap(), g.refilled))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        holes,
        vec![(501, 649, true), (800, 809, true), (900, 904, false)]
    );
    let refused = events
        .iter()
        .find_map(|e| {
            if let Event::Gap(g) = e {
                (!g.refilled && g.reason == GapReason::IdHole).then_some(g)
            } else {
                None
            }
        })
        .unwrap();
    assert!(refused.detail.contains("400"), "{}", refused.detail);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Gap(g) if g.reason == GapReason::Reconnect))
            .count(),
        1
    );

    assert_eq!(SourceStats::get(&stats.duplicates), 1);
    assert_eq!(SourceStats::get(&stats.gaps_detected), 3);
    assert_eq!(SourceStats::get(&stats.gaps_refilled), 2);
    assert_eq!(SourceStats::get(&stats.ids_refilled), 149 + 10);
    assert_eq!(SourceStats::get(&stats.ids_unrefillable), 5);

    let log = log.lock().unwrap();
    // 429 honoured: the retry came at least Retry-After (1 s) later.
    assert_eq!(log.requests[0].3, 429);
    assert!(log.requests[1].2.duration_since(log.requests[0].2) >= Duration::from_millis(990));
    // Pages ask only for the missing ids, at most 1000 each; the weight stayed within budget.
    assert!(log.requests.iter().all(|r| r.1 <= 1000));
    assert!(
        log.requests.len() as u64 * 25 <= 1000,
        "{} requests",
        log.requests.len()
    );
    assert_eq!(log.requests[1].0, 501);
    assert_eq!(log.requests[1].1, 149);
}

async fn serve_history(log: Arc<Mutex<Vec<f64>>>) -> std::net::SocketAddr {
    async fn handler(
        State(log): State<Arc<Mutex<Vec<f64>>>>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        log.lock().unwrap().push(now);
        let from: u64 = q["fromId"].parse().unwrap();
        let limit: u64 = q["limit"].parse().unwrap();
        let items: Vec<String> = (from..from + limit)
            .map(|id| format!(r#"{{"id":{id},"price":"{}","qty":"0.5","quoteQty":"1","time":{},"isBuyerMaker":false,"isBestMatch":true}}"#, price(id), T0 + id as i64))
            .collect();
        format!("[{}]", items.join(","))
    }
    let app = Router::new()
        .route("/api/v3/historicalTrades", get(handler))
        .with_state(log);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refill_keeps_to_the_weight_budget_per_window() {
    use cryptoflow_operators::model::{StreamKind, Symbol};
    use cryptoflow_sources::rest::BinanceRest;
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve_history(log.clone()).await;
    // 50 weight per 1-second window: two historicalTrades pages (weight 25) per window.
    let cfg = RestConfig {
        base_url: format!("http://{addr}"),
        weight_budget_per_minute: 50,
        weight_window: Duration::from_secs(1),
        ..RestConfig::default()
    };
    let mut rest = BinanceRest::new(cfg).unwrap();
    let trades = rest
        .refill(
            Symbol::new("BTCUSDT").unwrap(),
            StreamKind::Trade,
            1001,
            5500,
        )
        .await
        .unwrap();
    let ids: Vec<u64> = trades.iter().map(|t| t.trade_id).collect();
    assert_eq!(ids, (1001..=5500).collect::<Vec<_>>());
    let times = log.lock().unwrap().clone();
    assert_eq!(times.len(), 5, "4,500 ids in pages of 1,000");
    let mut per_window = std::collections::BTreeMap::new();
    for t in &times {
        *per_window.entry(*t as u64).or_insert(0) += 1;
    }
    assert!(per_window.values().all(|n| *n <= 2), "{per_window:?}");
    assert!(per_window.len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refill_speed() {
    use cryptoflow_operators::model::{StreamKind, Symbol};
    use cryptoflow_sources::rest::BinanceRest;
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve_history(log.clone()).await;
    let cfg = RestConfig {
        base_url: format!("http://{addr}"),
        weight_budget_per_minute: 6000,
        ..RestConfig::default()
    };
    let mut rest = BinanceRest::new(cfg).unwrap();
    let started = Instant::now();
    let trades = rest
        .refill(
            Symbol::new("BTCUSDT").unwrap(),
            StreamKind::Trade,
            1,
            100_000,
        )
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(trades.len(), 100_000);
    assert_eq!(log.lock().unwrap().len(), 100);
    eprintln!(
        "REFILL ids=100000 requests=100 secs={secs:.3} ids_per_s={:.0}",
        100_000.0 / secs
    );
}
