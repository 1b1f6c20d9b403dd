//! A fake Binance exchange (WebSocket trade stream + REST historicalTrades) that keeps trading
//! at a fixed rate, and helpers to run `cryptoflow run` against it. Scripted connections and
//! the REST trade-history endpoints with throttling and refusals are in `binance.rs`.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::binance::TradeHistory;
use super::pg_client;

pub const T0: i64 = 1_700_000_000_000;

/// A fake exchange trading `rate` ids per second from its first WebSocket connection on; with
/// `drop_seed`, every connection is dropped after a random number of frames, as long as the
/// trade ids are below `drops_until`.
#[derive(Clone)]
pub struct Exchange {
    pub start: Arc<OnceLock<Instant>>,
    pub rate: f64,
    pub drops_until: u64,
    pub drop_seed: Option<u64>,
    pub connections: Arc<std::sync::atomic::AtomicU64>,
    /// A network partition: the connection is dropped when id `a` trades, and connections are
    /// refused until id `b` has traded; the reconnected stream starts from the trades of then
    /// on, so ids `a..` up to the reconnect are a hole to refill.
    pub blackout: Option<(u64, u64)>,
    /// Longest time one WebSocket send waited (the client did not read), ms.
    pub send_stall_max_ms: Arc<std::sync::atomic::AtomicU64>,
    /// A new connection starts this many ids in the past (`None`: with the next id, like the
    /// real stream), so consecutive connections overlap.
    pub overlap: Option<u64>,
    /// The first connection sends `serverShutdown` after this many frames (and keeps
    /// streaming).
    pub shutdown_after: Option<u64>,
    /// Read the client's side between sends, to log when the client closes a connection.
    pub watch_client: bool,
    /// Per accepted connection, in order: when it sent its first frame and when the client
    /// closed it.
    pub conn_log: Arc<Mutex<Vec<ConnLog>>>,
}

/// What happened on one connection of the [`Exchange`].
#[derive(Default, Debug, Clone)]
pub struct ConnLog {
    pub first_frame: Option<Instant>,
    pub closed_by_client: Option<Instant>,
}

impl Exchange {
    pub fn new(rate: f64, drops_until: u64, drop_seed: Option<u64>) -> Self {
        Exchange {
            start: Arc::new(OnceLock::new()),
            rate,
            drops_until,
            drop_seed,
            connections: Default::default(),
            blackout: None,
            send_stall_max_ms: Default::default(),
            overlap: None,
            shutdown_after: None,
            watch_client: false,
            conn_log: Default::default(),
        }
    }

    /// Ids traded so far (1..=n).
    pub fn produced(&self) -> u64 {
        self.start
            .get()
            .map(|s| (s.elapsed().as_secs_f64() * self.rate) as u64)
            .unwrap_or(0)
    }
}

pub fn payload(id: u64) -> (String, String, i64, bool) {
    (
        format!("{}.{:02}", 43000 + id % 70, id % 100),
        format!("0.{:03}", 1 + id % 900),
        T0 + id as i64 * 2,
        id.is_multiple_of(2),
    )
}

pub async fn ws_server(listener: TcpListener, ex: Exchange) {
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let ex = ex.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            ex.start.get_or_init(Instant::now);
            if ex
                .blackout
                .is_some_and(|(a, b)| (a..=b).contains(&(ex.produced() + 1)))
            {
                return; // partitioned: refuse
            }
            let conn = ex
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let idx = {
                let mut log = ex.conn_log.lock().unwrap();
                log.push(ConnLog::default());
                log.len() - 1
            };
            let closed =
                || ex.conn_log.lock().unwrap()[idx].closed_by_client = Some(Instant::now());
            // Drop after a pseudo-random number of frames (2,000 to 8,000).
            let drop_after = ex.drop_seed.map(|seed| {
                let x = (seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                2_000 + (x >> 33) % 6_000
            });
            let mut sent = 0u64;
            // Like the real stream: a new connection only sees trades from now on (unless the
            // connections are to overlap).
            let mut next = match ex.overlap {
                None => ex.produced() + 1,
                Some(back) => ex.produced().saturating_sub(back).max(1),
            };
            loop {
                if drop_after.is_some_and(|d| sent >= d) && next < ex.drops_until {
                    return; // drops the TCP connection without a close frame
                }
                let upto = ex.produced();
                while next <= upto {
                    if ex.blackout.is_some_and(|(a, b)| (a..=b).contains(&next)) {
                        return; // the partition: drop the connection
                    }
                    let (p, q, ts, m) = payload(next);
                    let frame = format!(
                        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{next},"p":"{p}","q":"{q}","T":{ts},"m":{m},"M":true}}}}"#
                    );
                    let t = Instant::now();
                    if ws.send(Message::text(frame)).await.is_err() {
                        closed();
                        return;
                    }
                    if sent == 0 {
                        ex.conn_log.lock().unwrap()[idx].first_frame = Some(Instant::now());
                    }
                    ex.send_stall_max_ms.fetch_max(
                        t.elapsed().as_millis() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    next += 1;
                    sent += 1;
                    if idx == 0 && ex.shutdown_after == Some(sent) {
                        let _ = ws
                            .send(Message::text(r#"{"e":"serverShutdown","E":1700000000000}"#))
                            .await;
                    }
                }
                if ex.watch_client {
                    tokio::select! {
                        msg = ws.next() => {
                            if matches!(msg, Some(Ok(Message::Close(_))) | None | Some(Err(_))) {
                                closed();
                                return;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
    }
}

/// The `historicalTrades` item of `id`.
fn historical_item(id: u64) -> Option<String> {
    let (p, q, ts, m) = payload(id);
    Some(format!(
        r#"{{"id":{id},"price":"{p}","qty":"{q}","quoteQty":"0","time":{ts},"isBuyerMaker":{m},"isBestMatch":true}}"#
    ))
}

/// Starts the fake exchange; returns the environment for `cryptoflow run`.
pub async fn start_exchange(ex: &Exchange) -> Vec<(String, String)> {
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = ws_listener.local_addr().unwrap();
    tokio::spawn(ws_server(ws_listener, ex.clone()));
    let traded = ex.clone();
    // Lists the ids traded by the time of the request.
    let rest_url = TradeHistory {
        last_id: Some(Arc::new(move || traded.produced())),
        ..TradeHistory::new("/api/v3/historicalTrades", historical_item)
    }
    .serve()
    .await;
    vec![
        (
            "CRYPTOFLOW__BINANCE__WS_BASE_URL".into(),
            format!("ws://{ws_addr}"),
        ),
        ("CRYPTOFLOW__BINANCE__REST_BASE_URL".into(), rest_url),
        (
            "CRYPTOFLOW__BINANCE__SYMBOLS".into(),
            r#"["btcusdt"]"#.into(),
        ),
        ("CRYPTOFLOW__BINANCE__STREAMS".into(), r#"["trade"]"#.into()),
        (
            "CRYPTOFLOW__BINANCE__RECONNECT_INITIAL_MS".into(),
            "50".into(),
        ),
        ("CRYPTOFLOW__BINANCE__RECONNECT_MAX_MS".into(), "200".into()),
    ]
}

pub fn spawn_run(env: &[(String, String)], url: &str, duration: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "run",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            duration,
            "--postgres",
            url,
        ])
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn count_and_range(url: &str) -> (i64, i64, i64) {
    let c = pg_client(url).await;
    let r = c
        .query_one(
            "SELECT count(*), coalesce(min(trade_id), 0), coalesce(max(trade_id), 0) FROM trades",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// The `gaps` rows of one reason: (from id, to id, resolved).
pub async fn gap_rows(url: &str, reason: &str) -> Vec<(i64, i64, bool)> {
    pg_client(url)
        .await
        .query(
            "SELECT from_id, to_id, resolved_at IS NOT NULL FROM gaps WHERE reason = $1 ORDER BY 1",
            &[&reason],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The stored restart cursor of the fake exchange's stream (BTCUSDT trades).
pub async fn btc_trade_cursor(url: &str) -> i64 {
    pg_client(url)
        .await
        .query_one(
            "SELECT last_id FROM source_offsets WHERE symbol = 'BTCUSDT' AND kind = 'trade'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
