//! A fake Binance for the source tests: a WebSocket server whose connections each play a
//! script (combined-stream frames, pings, drops, an open idle connection), and a REST
//! trade-history endpoint (`/api/v3/historicalTrades`, `/fapi/v1/aggTrades`,
//! `/dapi/v1/historicalTrades`, …) with scripted throttling, refusals, API-key checks and a
//! request log. The rate-driven exchange that keeps trading lives in `exchange.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_tungstenite::tungstenite::Message;

/// One step of a connection's script.
pub enum Step {
    /// Send a text frame.
    Text(String),
    /// Send a ping with this payload, then read until the pong (which is logged); anything
    /// else than a pong or a data frame fails the test.
    Ping(Vec<u8>),
    /// Flush, wait this long, then drop the TCP connection without a close frame.
    Drop(Duration),
    /// Flush and keep the connection open, reading, until the client goes away.
    Hold,
}

/// What the WebSocket server saw.
#[derive(Default)]
pub struct WsLog {
    /// The request path (with query) of every handshake, in order.
    pub paths: Vec<String>,
    /// The payload of every pong received.
    pub pongs: Vec<Vec<u8>>,
}

/// A running scripted WebSocket server.
pub struct ScriptedWs {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<WsLog>>,
}

impl ScriptedWs {
    /// `ws://ADDR`, the base URL for the source.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

/// Starts a WebSocket server that plays `script(n)` on its n-th connection (from 1), one
/// connection at a time. A script that ends without `Drop` or `Hold` drops the connection.
pub async fn scripted_ws(script: impl Fn(usize) -> Vec<Step> + Send + 'static) -> ScriptedWs {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(WsLog::default()));
    tokio::spawn(serve_scripts(listener, log.clone(), script));
    ScriptedWs { addr, log }
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn serve_scripts(
    listener: TcpListener,
    log: Arc<Mutex<WsLog>>,
    script: impl Fn(usize) -> Vec<Step> + Send + 'static,
) {
    let mut conn = 0;
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        conn += 1;
        let log2 = log.clone();
        let mut ws =
            tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, resp: WsResponse| {
                log2.lock().unwrap().paths.push(req.uri().to_string());
                Ok(resp)
            })
            .await
            .unwrap();
        for step in script(conn) {
            match step {
                Step::Text(f) => ws.send(Message::text(f)).await.unwrap(),
                Step::Ping(payload) => {
                    ws.send(Message::Ping(payload.into())).await.unwrap();
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
                }
                Step::Drop(after) => {
                    ws.flush().await.unwrap();
                    tokio::time::sleep(after).await;
                    break;
                }
                Step::Hold => {
                    ws.flush().await.unwrap();
                    while let Some(Ok(_)) = ws.next().await {}
                    break;
                }
            }
        }
        drop(ws);
    }
}

/// A combined-stream spot trade frame (`<symbol>@trade`, with `M`).
pub fn spot_trade_frame(
    symbol: &str,
    id: u64,
    price: &str,
    qty: &str,
    ts: i64,
    buyer_maker: bool,
) -> String {
    format!(
        r#"{{"stream":"{l}@trade","data":{{"e":"trade","E":{ts},"s":"{symbol}","t":{id},"p":"{price}","q":"{qty}","T":{ts},"m":{buyer_maker},"M":true}}}}"#,
        l = symbol.to_lowercase()
    )
}

/// One request to the fake REST endpoint.
#[derive(Clone, Debug)]
pub struct RestRequest {
    pub path: String,
    pub query: HashMap<String, String>,
    /// The `X-MBX-APIKEY` header.
    pub api_key: Option<String>,
    pub at: Instant,
    /// Wall-clock time, seconds since the Unix epoch.
    pub wall_secs: f64,
    pub status: u16,
}

/// The REST request log.
pub type RestLog = Arc<Mutex<Vec<RestRequest>>>;

/// A fake trade-history endpoint answering `fromId` + `limit` pages.
#[derive(Clone)]
pub struct TradeHistory {
    /// The route, e.g. `/api/v3/historicalTrades`.
    pub path: &'static str,
    /// The `symbol` every request must name.
    pub symbol: Option<&'static str>,
    /// The JSON item of an id, or `None` when the API does not list it.
    pub item: Arc<dyn Fn(u64) -> Option<String> + Send + Sync>,
    /// The newest id listed, read once per request (`None`: no limit but `item`'s).
    pub last_id: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    /// The page size when the request names none (`None`: the request must name one).
    pub default_limit: Option<u64>,
    /// Weight per request reported in `X-MBX-USED-WEIGHT-1M` (with a `Retry-After`
    /// header); `None`: no such headers.
    pub weight: Option<u64>,
    /// Answer the first request with 429, `Retry-After: 1` and this body.
    pub throttle_first: Option<&'static str>,
    /// Pages starting in this id range are refused with 400 (as if too old).
    pub refused: Option<(u64, u64)>,
    /// Require `X-MBX-APIKEY` (401 without it).
    pub need_key: bool,
    pub log: RestLog,
}

impl TradeHistory {
    /// An endpoint at `path` serving `item(id)` for every id, without checks or extras.
    pub fn new(
        path: &'static str,
        item: impl Fn(u64) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        TradeHistory {
            path,
            symbol: None,
            item: Arc::new(item),
            last_id: None,
            default_limit: None,
            weight: None,
            throttle_first: None,
            refused: None,
            need_key: false,
            log: Default::default(),
        }
    }

    /// Serves the endpoint on a local port; returns `http://ADDR`.
    pub async fn serve(self) -> String {
        let path = self.path;
        let app = Router::new().route(path, get(history)).with_state(self);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
}

async fn history(
    State(api): State<TradeHistory>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let wall_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    if let Some(s) = api.symbol {
        assert_eq!(q["symbol"], s);
    }
    let from: u64 = q["fromId"].parse().unwrap();
    let limit: u64 = match (q.get("limit"), api.default_limit) {
        (Some(l), _) => l.parse().unwrap(),
        (None, Some(d)) => d,
        (None, None) => panic!("no limit in {q:?}"),
    };
    assert!(limit <= 1000, "limit {limit}");
    let api_key = headers
        .get("x-mbx-apikey")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let mut log = api.log.lock().unwrap();
    let first = log.is_empty();
    let (status, body, retry_after) = if api.need_key && api_key.is_none() {
        (
            StatusCode::UNAUTHORIZED,
            r#"{"code":-2014,"msg":"API-key format invalid."}"#.to_string(),
            "",
        )
    } else if let (Some(body), true) = (api.throttle_first, first) {
        (StatusCode::TOO_MANY_REQUESTS, body.to_string(), "1")
    } else if api.refused.is_some_and(|(a, b)| (a..=b).contains(&from)) {
        (
            StatusCode::BAD_REQUEST,
            r#"{"code":-1100,"msg":"fromId too old"}"#.to_string(),
            "",
        )
    } else {
        let items: Vec<String> = (from..from + limit)
            .filter_map(|id| (api.item)(id))
            .collect();
        (StatusCode::OK, format!("[{}]", items.join(",")), "")
    };
    log.push(RestRequest {
        path: api.path.to_string(),
        query: q,
        api_key,
        at: Instant::now(),
        wall_secs,
        status: status.as_u16(),
    });
    let mut out = HeaderMap::new();
    if let Some(w) = api.weight {
        out.insert("Retry-After", HeaderValue::from_static(retry_after));
        out.insert(
            "X-MBX-USED-WEIGHT-1M",
            HeaderValue::from(log.len() as u64 * w),
        );
    }
    (status, out, body).into_response()
}
