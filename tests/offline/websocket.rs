//! The Binance WebSocket source against a local WebSocket server that pings, serves frames and
//! drops the connection.

use crate::support as common;

use common::binance::{scripted_ws, spot_trade_frame, Step};
use common::{collect_live, trade_ids};
use std::time::Duration;

use cryptoflow_operators::model::{Event, GapReason, StreamKind};
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;

fn trade(id: u64) -> String {
    spot_trade_frame(
        "BTCUSDT",
        id,
        "43000.10",
        "0.5",
        1_700_000_000_000 + id as i64,
        false,
    )
}

/// Connection 1: a ping (the client must echo its payload), a subscription reply, trades
/// 1..=5 and a garbage frame, then a drop without a close frame. Later connections: trades
/// 6..=10, then the connection stays open.
fn script(conn: usize) -> Vec<Step> {
    if conn == 1 {
        let mut steps = vec![
            Step::Ping(b"ping-1".to_vec()),
            Step::Text(r#"{"result":null,"id":1}"#.into()),
        ];
        steps.extend((1..=5).map(|id| Step::Text(trade(id))));
        steps.push(Step::Text("{garbage".into()));
        steps.push(Step::Drop(Duration::from_millis(50)));
        steps
    } else {
        let mut steps: Vec<Step> = (6..=10).map(|id| Step::Text(trade(id))).collect();
        steps.push(Step::Hold);
        steps
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_emits_gap_and_resumes() {
    let server = scripted_ws(script).await;

    let cfg = WsConfig {
        base_url: server.url(),
        streams: vec!["btcusdt@trade".into()],
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let (events, stats) = collect_live(cfg, None, Duration::from_secs(20), |ev| {
        ev.iter().filter(|e| matches!(e, Event::Trade(_))).count() >= 10
    })
    .await;

    let ids: Vec<u64> = trade_ids(&events);
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    let gaps: Vec<(usize, &cryptoflow_operators::model::Gap)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            if let Event::Gap(g) = e {
                Some((i, g))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(gaps.len(), 1, "one reconnect, one stream: one gap");
    let (pos, gap) = gaps[0];
    assert_eq!(pos, 5, "the gap sits between trade 5 and trade 6");
    assert_eq!(
        (gap.symbol.as_str(), gap.kind, gap.last_id, gap.reason),
        ("BTCUSDT", StreamKind::Trade, Some(5), GapReason::Reconnect)
    );
    assert!(gap.since <= gap.until);

    let log = server.log.lock().unwrap();
    assert_eq!(
        log.pongs,
        vec![b"ping-1".to_vec()],
        "pong echoes the ping payload"
    );
    assert_eq!(log.paths.len(), 2);
    assert!(
        log.paths
            .iter()
            .all(|p| p == "/stream?streams=btcusdt@trade"),
        "{:?}",
        log.paths
    );
    assert_eq!(SourceStats::get(&stats.reconnects), 1);
    assert_eq!(SourceStats::get(&stats.decode_errors), 1);
    assert_eq!(SourceStats::get(&stats.control_frames), 1);
}
