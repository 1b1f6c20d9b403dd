//! Make-before-break: on `serverShutdown` and at the maximum connection age, the client opens a
//! new connection, switches after its first frame, then closes the old one; the overlap is
//! deduplicated by id: no gap, no duplicate.

use crate::support as common;

use common::exchange::{ws_server, ConnLog, Exchange};
use common::{collect_live, trade_ids};
use std::sync::Arc;
use std::time::Duration;

use cryptoflow_operators::model::{Event, GapReason};
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;
use tokio::net::TcpListener;

async fn run_case(
    shutdown_after: Option<u64>,
    max_age: Duration,
    until_id: u64,
) -> (Vec<Event>, Vec<ConnLog>, Arc<SourceStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Trading 2,000 ids a second; each connection starts 20 ids back, so consecutive
    // connections overlap; the client's closes are logged.
    let mut fake = Exchange::new(2000.0, 0, None);
    fake.overlap = Some(20);
    fake.shutdown_after = shutdown_after;
    fake.watch_client = true;
    tokio::spawn(ws_server(listener, fake.clone()));
    let cfg = WsConfig {
        base_url: format!("ws://{addr}"),
        streams: vec!["btcusdt@trade".into()],
        max_connection_age: max_age,
        ..WsConfig::default()
    };
    let (events, stats) = collect_live(cfg, None, Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Trade(t) if t.trade_id >= until_id))
    })
    .await;
    let log = fake.conn_log.lock().unwrap().clone();
    (events, log, stats)
}

fn check(events: &[Event], log: &[ConnLog], stats: &SourceStats, min_rollovers: usize) {
    let ids: Vec<u64> = trade_ids(events);
    let first = ids[0];
    assert_eq!(
        ids,
        (first..first + ids.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    let gaps: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Gap(_)))
        .collect();
    assert!(gaps.is_empty(), "a rollover is not a gap: {gaps:?}");
    assert_eq!(SourceStats::get(&stats.reconnects), 0);
    assert!(
        SourceStats::get(&stats.duplicates) > 0,
        "the overlap was deduplicated"
    );
    assert!(log.len() > min_rollovers, "{} connections", log.len());
    // Each replaced connection was closed by the client after its successor's first frame.
    for pair in log.windows(2).take(min_rollovers) {
        let closed = pair[0]
            .closed_by_client
            .expect("old connection closed by the client");
        let first = pair[1].first_frame.expect("new connection delivered");
        assert!(
            closed >= first,
            "closed {:?} before the successor's first frame",
            first - closed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_rolls_over_without_gap() {
    let (events, log, stats) = run_case(Some(200), Duration::from_secs(3600), 1500).await;
    check(&events, &log, &stats, 1);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Gap(g) if g.reason == GapReason::Reconnect)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_rolls_over_without_gap() {
    let (events, log, stats) = run_case(None, Duration::from_millis(300), 5000).await;
    check(&events, &log, &stats, 2);
}
