//! Make-before-break: on `serverShutdown` and at the maximum connection age, the client opens a
//! new connection, switches after its first frame, then closes the old one; the overlap is
//! deduplicated by id: no gap, no duplicate.

use crate::support as common;

use common::{collect_live, trade_ids};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Event, GapReason};
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default, Debug, Clone)]
struct ConnLog {
    first_frame: Option<Instant>,
    closed_by_client: Option<Instant>,
}

#[derive(Clone)]
struct Fake {
    start: Arc<OnceLock<Instant>>,
    rate: f64,
    /// Connection 0 sends `serverShutdown` after this many frames (and keeps streaming).
    shutdown_after: Option<u64>,
    log: Arc<Mutex<Vec<ConnLog>>>,
}

impl Fake {
    fn produced(&self) -> u64 {
        self.start
            .get()
            .map(|s| (s.elapsed().as_secs_f64() * self.rate) as u64)
            .unwrap_or(0)
    }
}

fn frame(id: u64) -> String {
    format!(
        r#"{{"stream":"ethusdt@trade","data":{{"e":"trade","E":{ts},"s":"ETHUSDT","t":{id},"p":"2300.5","q":"0.1","T":{ts},"m":true,"M":true}}}}"#,
        ts = 1_700_000_000_000u64 + id
    )
}

async fn serve(listener: TcpListener, fake: Fake) {
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            fake.start.get_or_init(Instant::now);
            let idx = {
                let mut log = fake.log.lock().unwrap();
                log.push(ConnLog::default());
                log.len() - 1
            };
            // Start a little in the past so consecutive connections overlap.
            let mut next = fake.produced().saturating_sub(20).max(1);
            let mut sent = 0u64;
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            fake.log.lock().unwrap()[idx].closed_by_client = Some(Instant::now());
                            return;
                        }
                        _ => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {
                        let upto = fake.produced();
                        while next <= upto {
                            if ws.send(Message::text(frame(next))).await.is_err() {
                                // The server never closes on its own here: the client did.
                                fake.log.lock().unwrap()[idx].closed_by_client = Some(Instant::now());
                                return;
                            }
                            if sent == 0 {
                                fake.log.lock().unwrap()[idx].first_frame = Some(Instant::now());
                            }
                            sent += 1;
                            next += 1;
                            if idx == 0 && fake.shutdown_after == Some(sent) {
                                let _ = ws.send(Message::text(r#"{"e":"serverShutdown","E":1700000000000}"#)).await;
                            }
                        }
                    }
                }
            }
        });
    }
}

async fn run_case(
    shutdown_after: Option<u64>,
    max_age: Duration,
    until_id: u64,
) -> (Vec<Event>, Vec<ConnLog>, Arc<SourceStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Fake {
        start: Arc::new(OnceLock::new()),
        rate: 2000.0,
        shutdown_after,
        log: Default::default(),
    };
    tokio::spawn(serve(listener, fake.clone()));
    let cfg = WsConfig {
        base_url: format!("ws://{addr}"),
        streams: vec!["ethusdt@trade".into()],
        max_connection_age: max_age,
        ..WsConfig::default()
    };
    let (events, stats) = collect_live(cfg, None, Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Trade(t) if t.trade_id >= until_id))
    })
    .await;
    let log = fake.log.lock().unwrap().clone();
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
