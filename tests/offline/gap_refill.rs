//! Id holes in the live stream (across a reconnect and inside a connection) are refilled from a
//! local fake Binance REST API and merged in id order; a range the API refuses ends as an
//! unrefilled gap; duplicates are dropped; the refill honours 429 Retry-After and the weight
//! budget.

use crate::support as common;

use common::binance::{scripted_ws, spot_trade_frame, RestRequest, Step, TradeHistory};
use common::{collect_live, trade_ids};
use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Event, GapReason};
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;

const T0: i64 = 1_700_000_000_000;

fn price(id: u64) -> String {
    format!("{}.{:02}", 43000 + id % 50, id % 100)
}

fn ws_trade(id: u64) -> String {
    spot_trade_frame(
        "BTCUSDT",
        id,
        &price(id),
        "0.5",
        T0 + id as i64,
        id.is_multiple_of(3),
    )
}

/// The `historicalTrades` item of an id (ids up to 100,000).
fn rest_item(id: u64) -> Option<String> {
    (id <= 100_000).then(|| {
        format!(
            r#"{{"id":{id},"price":"{p}","qty":"0.5","quoteQty":"1","time":{ts},"isBuyerMaker":{m},"isBestMatch":true}}"#,
            p = price(id),
            ts = T0 + id as i64,
            m = id.is_multiple_of(3)
        )
    })
}

/// Connection 1: ids 1..=500, then a drop. Connection 2: ids 650..=1000 with a hole at
/// 800..=809, a duplicate of 850, and a hole at 900..=904 that the API refuses.
fn ws_script(conn: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    if conn == 1 {
        steps.extend((1..=500).map(|id| Step::Text(ws_trade(id))));
        steps.push(Step::Drop(Duration::from_millis(50)));
    } else {
        for id in 650..=1000u64 {
            if (800..=809).contains(&id) || (900..=904).contains(&id) {
                continue;
            }
            steps.push(Step::Text(ws_trade(id)));
            if id == 850 {
                steps.push(Step::Text(ws_trade(id)));
            }
        }
        steps.push(Step::Hold);
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holes_are_refilled_in_order_and_refusals_recorded() {
    let ws = scripted_ws(ws_script).await;
    let api = TradeHistory {
        symbol: Some("BTCUSDT"),
        default_limit: Some(500),
        weight: Some(25),
        throttle_first: Some(""),
        refused: Some((900, 904)),
        ..TradeHistory::new("/api/v3/historicalTrades", rest_item)
    };
    let log = api.log.clone();
    let rest_url = api.serve().await;

    let cfg = WsConfig {
        base_url: ws.url(),
        streams: vec!["btcusdt@trade".into()],
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let rest = RestConfig {
        base_url: rest_url,
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
    assert_eq!(log[0].status, 429);
    assert!(log[1].at.duration_since(log[0].at) >= Duration::from_millis(990));
    // Pages ask only for the missing ids, at most 1000 each; the weight stayed within budget.
    assert!(log.iter().all(|r| limit(r) <= 1000));
    assert!(log.len() as u64 * 25 <= 1000, "{} requests", log.len());
    assert_eq!(from_id(&log[1]), 501);
    assert_eq!(limit(&log[1]), 149);
}

/// A `historicalTrades` endpoint listing every id, without throttling or weight headers.
fn plain_history() -> TradeHistory {
    TradeHistory::new("/api/v3/historicalTrades", |id| {
        Some(format!(
            r#"{{"id":{id},"price":"{}","qty":"0.5","quoteQty":"1","time":{},"isBuyerMaker":false,"isBestMatch":true}}"#,
            price(id),
            T0 + id as i64
        ))
    })
}

/// The `fromId` of a logged request.
fn from_id(r: &RestRequest) -> u64 {
    r.query["fromId"].parse().unwrap()
}

/// The `limit` of a logged request (500, the API's default, when it named none).
fn limit(r: &RestRequest) -> u64 {
    r.query.get("limit").map_or(500, |l| l.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refill_keeps_to_the_weight_budget_per_window() {
    use cryptoflow_operators::model::{StreamKind, Symbol};
    use cryptoflow_sources::rest::BinanceRest;
    let api = plain_history();
    let log = api.log.clone();
    let base_url = api.serve().await;
    // 50 weight per 1-second window: two historicalTrades pages (weight 25) per window.
    let cfg = RestConfig {
        base_url,
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
    let times: Vec<f64> = log.lock().unwrap().iter().map(|r| r.wall_secs).collect();
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
    let api = plain_history();
    let log = api.log.clone();
    let base_url = api.serve().await;
    let cfg = RestConfig {
        base_url,
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
