//! The Binance WebSocket source against a local WebSocket server that pings, serves frames and
//! drops the connection.

use crate::support as common;

use common::{collect_live, trade_ids};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoflow_operators::model::{Event, GapReason, StreamKind};
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

fn trade(id: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{id},"p":"43000.10","q":"0.5","T":{ts},"m":false,"M":true}}}}"#,
        ts = 1_700_000_000_000u64 + id
    )
}

#[derive(Default)]
struct ServerLog {
    paths: Vec<String>,
    pongs: Vec<Vec<u8>>,
}

#[allow(clippy::result_large_err)]
async fn fake_binance(listener: TcpListener, log: Arc<Mutex<ServerLog>>) {
    let mut conn = 0u64;
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        conn += 1;
        let log2 = log.clone();
        let mut ws =
            tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: Response| {
                log2.lock().unwrap().paths.push(req.uri().to_string());
                Ok(resp)
            })
            .await
            .unwrap();
        if conn == 1 {
            // Ping first; the client must echo the payload.
            ws.send(Message::Ping(b"ping-1".to_vec().into()))
                .await
                .unwrap();
            loop {
                match ws.next().await {
                    Some(Ok(Message::Pong(p))) => {
                        log.lock().unwrap().pongs.push(p.to_vec());
                        break;
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("expected a pong, got {other:?}"),
                }
            }
            ws.send(Message::text(r#"{"result":null,"id":1}"#))
                .await
                .unwrap();
            for id in 1..=5 {
                ws.send(Message::text(trade(id))).await.unwrap();
            }
            ws.send(Message::text("{garbage")).await.unwrap();
            ws.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Drop the TCP connection without a close frame.
            drop(ws);
        } else {
            for id in 6..=10 {
                ws.send(Message::text(trade(id))).await.unwrap();
            }
            // Keep the connection open until the client goes away.
            while let Some(Ok(_)) = ws.next().await {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_emits_gap_and_resumes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(ServerLog::default()));
    tokio::spawn(fake_binance(listener, log.clone()));

    let cfg = WsConfig {
        base_url: format!("ws://{addr}"),
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

    let log = log.lock().unwrap();
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
