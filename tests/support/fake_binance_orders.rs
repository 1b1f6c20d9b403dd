//! A fake Binance spot order API on 127.0.0.1: the signed REST endpoints of the order client
//! (`/api/v3/time`, `exchangeInfo`, `order` POST/GET/DELETE, `openOrders` GET/DELETE,
//! `myTrades`, `userDataStream` POST/PUT/DELETE) and the user data WebSocket (`/ws/{listenKey}`)
//! pushing `executionReport`s.
//!
//! It checks what Binance checks: the `X-MBX-APIKEY` header (`-2015`), the HMAC-SHA256
//! signature of the exact query string + body (`-1022`, computed here with its own HMAC over
//! `sha2`, independent of the client's), and `timestamp` against its own clock plus a settable
//! skew (`-1021`: more than 1 s ahead, or older than `recvWindow`). Orders are kept by client
//! id; like Binance, a client id is unique among **open** orders only (`-2010 Duplicate order
//! sent.`), so a blind resend of a filled market order would be a second order: the tests
//! count orders per client id. Market orders fill at once at the configured price (in two
//! fills), limit orders rest until [`FakeBinanceOrders::fill_limit`] trades against them.
//! Filters (`-1013 Filter failure: …`) and a quote balance (`-2010 Account has insufficient
//! balance…`) are checked.
//!
//! Faults are injected per route (`"POST /api/v3/order"`), each used once: 429 with
//! `Retry-After`, 418, 500, `-1007` after storing the order, a dropped connection after storing
//! it, and a delay (after storing, or before anything). The connection drop is real: clients
//! reach the server through a TCP relay that cuts the connection the handler asks it to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::binance_orders::{BinanceOrders, BinanceOrdersConfig, Credentials};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

pub const API_KEY: &str = "fake-api-key-vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy";
pub const API_SECRET: &str = "fake-secret-NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65";

/// An injected fault, used by the next request of its route.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 429, `Retry-After: retry_after_s`, `-1003`; nothing processed.
    RateLimit { retry_after_s: u64 },
    /// HTTP 418, `Retry-After: retry_after_s`, `-1003`; nothing processed.
    Ban { retry_after_s: u64 },
    /// HTTP 500 before anything is processed.
    ServerError,
    /// The order is stored (and filled), then HTTP 503 `-1007` "Timeout waiting for response
    /// from backend server. Send status unknown; execution status unknown."
    BackendTimeoutAfterStore,
    /// The order is stored, then the connection is cut without an answer.
    DropAfterStore,
    /// The answer is held `delay`; `store_first`: the request is processed before waiting.
    Delay { delay: Duration, store_first: bool },
    /// Any status with a Binance error body, nothing processed.
    Error { status: u16, code: i64, msg: String },
}

/// How commissions are charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeMode {
    /// In the asset received: a buy pays in the base asset, a sell in the quote asset.
    Received,
    /// In BNB (the fee discount).
    Bnb,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub params: Vec<(String, String)>,
    pub api_key: Option<String>,
    /// When the handler had it (the request fully received).
    pub at: std::time::Instant,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct SymbolDef {
    pub symbol: String,
    pub base: String,
    pub quote: String,
    pub status: String,
    pub tick: Decimal,
    pub step: Decimal,
    pub min_qty: Decimal,
    pub min_notional: Decimal,
}

#[derive(Debug, Clone)]
struct Trade {
    id: u64,
    price: Decimal,
    qty: Decimal,
    commission: Decimal,
    commission_asset: String,
    time: i64,
    is_maker: bool,
}

#[derive(Debug, Clone)]
struct Order {
    symbol: String,
    order_id: u64,
    client_id: String,
    side: String,
    kind: String,
    price: Decimal,
    orig_qty: Decimal,
    executed_qty: Decimal,
    cum_quote: Decimal,
    status: String,
    time: i64,
    update_time: i64,
    trades: Vec<Trade>,
}

enum WsCmd {
    Event(Value),
    Close,
}

struct St {
    skew_ms: i64,
    market_price: Decimal,
    fee_rate: Decimal,
    fee_mode: FeeMode,
    quote_balance: Decimal,
    symbols: Vec<SymbolDef>,
    orders: Vec<Order>,
    next_order_id: u64,
    next_trade_id: u64,
    faults: Vec<(String, Fault)>,
    requests: Vec<Request>,
    listen_keys: Vec<String>,
    active_keys: Vec<String>,
    subscribers: Vec<mpsc::UnboundedSender<WsCmd>>,
    bad_signatures: u64,
}

struct Inner {
    st: Mutex<St>,
    /// The relay's connections, by the address the server sees them from.
    kills: Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>,
}

type Shared = Arc<Inner>;

/// The fake exchange; cheap to clone.
#[derive(Clone)]
pub struct FakeBinanceOrders {
    pub addr: SocketAddr,
    inner: Shared,
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Binance writes amounts with 8 decimals.
fn fmt8(v: Decimal) -> String {
    format!("{:.8}", v)
}

/// HMAC-SHA256 (RFC 2104) over `sha2`, independent of the client's `hmac` crate.
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn binance_error(status: u16, code: i64, msg: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"code": code, "msg": msg})),
    )
        .into_response()
}

/// A Binance error answer: HTTP status, code, message.
struct ApiErr {
    status: u16,
    code: i64,
    msg: String,
}

fn api_err(status: u16, code: i64, msg: &str) -> ApiErr {
    ApiErr {
        status,
        code,
        msg: msg.to_string(),
    }
}

type Reply = Result<Value, ApiErr>;

fn default_symbols() -> Vec<SymbolDef> {
    vec![
        SymbolDef {
            symbol: "BTCUSDT".into(),
            base: "BTC".into(),
            quote: "USDT".into(),
            status: "TRADING".into(),
            tick: d("0.01"),
            step: d("0.00001"),
            min_qty: d("0.00001"),
            min_notional: d("5"),
        },
        SymbolDef {
            symbol: "ETHBTC".into(),
            base: "ETH".into(),
            quote: "BTC".into(),
            status: "TRADING".into(),
            tick: d("0.00001"),
            step: d("0.0001"),
            min_qty: d("0.0001"),
            min_notional: d("0.0001"),
        },
        SymbolDef {
            symbol: "HALTUSDT".into(),
            base: "HALT".into(),
            quote: "USDT".into(),
            status: "BREAK".into(),
            tick: d("0.0001"),
            step: d("0.1"),
            min_qty: d("0.1"),
            min_notional: d("5"),
        },
    ]
}

impl FakeBinanceOrders {
    /// Starts the fake: market price 50 000, fee 0.1 % in the asset received, a quote balance
    /// of 1 000 000, symbols BTCUSDT, ETHBTC (trading) and HALTUSDT (status BREAK).
    pub async fn start() -> Self {
        let inner: Shared = Arc::new(Inner {
            st: Mutex::new(St {
                skew_ms: 0,
                market_price: d("50000"),
                fee_rate: d("0.001"),
                fee_mode: FeeMode::Received,
                quote_balance: d("1000000"),
                symbols: default_symbols(),
                orders: Vec::new(),
                next_order_id: 1000,
                next_trade_id: 5000,
                faults: Vec::new(),
                requests: Vec::new(),
                listen_keys: Vec::new(),
                active_keys: Vec::new(),
                subscribers: Vec::new(),
                bad_signatures: 0,
            }),
            kills: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/ws/{key}", get(ws_handler))
            .fallback(rest_handler)
            .with_state(inner.clone());
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                backend,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(relay(front, backend_addr, inner.clone()));
        FakeBinanceOrders { addr, inner }
    }

    pub fn rest_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A client configuration for this fake with test-sized delays.
    pub fn client_config(&self) -> BinanceOrdersConfig {
        BinanceOrdersConfig {
            rest_base: self.rest_base(),
            ws_base: self.ws_base(),
            timeout_ms: 1_000,
            backoff_initial_ms: 20,
            backoff_max_ms: 200,
            unknown_query_delay_ms: 50,
            absent_checks: 2,
            max_attempts: 3,
            ..BinanceOrdersConfig::default()
        }
    }

    pub fn credentials() -> Credentials {
        Credentials::new(API_KEY, API_SECRET)
    }

    /// A client of this fake with [`client_config`](Self::client_config).
    pub fn client(&self) -> BinanceOrders {
        self.client_with(self.client_config())
    }

    pub fn client_with(&self, cfg: BinanceOrdersConfig) -> BinanceOrders {
        BinanceOrders::new(cfg, Self::credentials()).unwrap()
    }

    fn with<R>(&self, f: impl FnOnce(&mut St) -> R) -> R {
        f(&mut self.inner.st.lock().unwrap())
    }

    /// The fake's clock runs `ms` ahead of the wall clock (negative: behind).
    pub fn set_skew_ms(&self, ms: i64) {
        self.with(|s| s.skew_ms = ms);
    }

    pub fn set_market_price(&self, p: Decimal) {
        self.with(|s| s.market_price = p);
    }

    /// The most a buy may cost, in the quote asset.
    pub fn set_quote_balance(&self, b: Decimal) {
        self.with(|s| s.quote_balance = b);
    }

    pub fn set_fee_mode(&self, m: FeeMode) {
        self.with(|s| s.fee_mode = m);
    }

    /// Queues `fault` for the next request of `route` (`"POST /api/v3/order"`).
    pub fn inject(&self, route: &str, fault: Fault) {
        self.with(|s| s.faults.push((route.to_string(), fault)));
    }

    /// Orders stored with this client id (must never exceed 1 per intent).
    pub fn order_count(&self, client_id: &str) -> usize {
        self.with(|s| s.orders.iter().filter(|o| o.client_id == client_id).count())
    }

    /// Every order stored.
    pub fn total_orders(&self) -> usize {
        self.with(|s| s.orders.len())
    }

    /// The status of the newest order with this client id.
    pub fn order_status(&self, client_id: &str) -> Option<String> {
        self.with(|s| {
            s.orders
                .iter()
                .rev()
                .find(|o| o.client_id == client_id)
                .map(|o| o.status.clone())
        })
    }

    /// Requests received with this method and path.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Request> {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.method == method && r.path == path)
                .cloned()
                .collect()
        })
    }

    pub fn all_requests(&self) -> Vec<Request> {
        self.with(|s| s.requests.clone())
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests(method, path).len()
    }

    pub fn bad_signatures(&self) -> u64 {
        self.with(|s| s.bad_signatures)
    }

    /// Every listen key handed out, in order.
    pub fn listen_keys(&self) -> Vec<String> {
        self.with(|s| s.listen_keys.clone())
    }

    /// Trades `qty` of the open limit order `client_id` at its price (the other side of the
    /// book arrives) and pushes the `executionReport`.
    pub fn fill_limit(&self, client_id: &str, qty: Decimal) {
        self.with(|s| {
            let now = wall_ms() + s.skew_ms;
            let idx = s
                .orders
                .iter()
                .rposition(|o| o.client_id == client_id && is_open(&o.status))
                .expect("no open order with that client id");
            let price = s.orders[idx].price;
            let qty = qty.min(s.orders[idx].orig_qty - s.orders[idx].executed_qty);
            let trade = s.trade(idx, qty, price, now, true);
            let ev = execution_report(&s.orders[idx], "TRADE", Some(&trade), now);
            s.push(ev);
        });
    }

    /// Closes every user data WebSocket and forgets their listen keys.
    pub fn drop_user_streams(&self) {
        self.with(|s| {
            for sub in s.subscribers.drain(..) {
                let _ = sub.send(WsCmd::Close);
            }
            s.active_keys.clear();
        });
    }

    /// Pushes any event to the user data WebSockets.
    pub fn push_event(&self, ev: Value) {
        self.with(|s| s.push(ev));
    }
}

fn is_open(status: &str) -> bool {
    matches!(status, "NEW" | "PARTIALLY_FILLED")
}

impl St {
    fn now(&self) -> i64 {
        wall_ms() + self.skew_ms
    }

    fn push(&mut self, ev: Value) {
        self.subscribers
            .retain(|s| s.send(WsCmd::Event(ev.clone())).is_ok());
    }

    fn symbol(&self, name: &str) -> Option<SymbolDef> {
        self.symbols.iter().find(|s| s.symbol == name).cloned()
    }

    /// Executes `qty` of order `idx` at `price`; returns the trade.
    fn trade(&mut self, idx: usize, qty: Decimal, price: Decimal, now: i64, maker: bool) -> Trade {
        let sym = self.symbol(&self.orders[idx].symbol).unwrap();
        let id = self.next_trade_id;
        self.next_trade_id += 1;
        let buy = self.orders[idx].side == "BUY";
        let (commission, commission_asset) = match self.fee_mode {
            FeeMode::Received if buy => (qty * self.fee_rate, sym.base.clone()),
            FeeMode::Received => (qty * price * self.fee_rate, sym.quote.clone()),
            FeeMode::Bnb => (d("0.00012"), "BNB".to_string()),
        };
        let trade = Trade {
            id,
            price,
            qty,
            commission: commission.round_dp(8),
            commission_asset,
            time: now,
            is_maker: maker,
        };
        let o = &mut self.orders[idx];
        o.executed_qty += qty;
        o.cum_quote += qty * price;
        o.update_time = now;
        o.status = if o.executed_qty >= o.orig_qty {
            "FILLED".into()
        } else {
            "PARTIALLY_FILLED".into()
        };
        o.trades.push(trade.clone());
        trade
    }
}

fn order_common(o: &Order) -> serde_json::Map<String, Value> {
    let v = json!({
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_id,
        "price": fmt8(o.price),
        "origQty": fmt8(o.orig_qty),
        "executedQty": fmt8(o.executed_qty),
        "cummulativeQuoteQty": fmt8(o.cum_quote),
        "status": o.status,
        "timeInForce": "GTC",
        "type": o.kind,
        "side": o.side,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// `newOrderRespType=FULL`.
fn full_response(o: &Order) -> Value {
    let mut m = order_common(o);
    m.insert("transactTime".into(), json!(o.time));
    m.insert("workingTime".into(), json!(o.time));
    m.insert("origQuoteOrderQty".into(), json!("0.00000000"));
    let fills: Vec<Value> = o
        .trades
        .iter()
        .map(|t| {
            json!({"price": fmt8(t.price), "qty": fmt8(t.qty), "commission": fmt8(t.commission),
                   "commissionAsset": t.commission_asset, "tradeId": t.id})
        })
        .collect();
    m.insert("fills".into(), Value::Array(fills));
    Value::Object(m)
}

/// `GET /api/v3/order` and `openOrders`.
fn query_response(o: &Order) -> Value {
    let mut m = order_common(o);
    m.insert("stopPrice".into(), json!("0.00000000"));
    m.insert("icebergQty".into(), json!("0.00000000"));
    m.insert("time".into(), json!(o.time));
    m.insert("updateTime".into(), json!(o.update_time));
    m.insert("isWorking".into(), json!(true));
    m.insert("workingTime".into(), json!(o.time));
    m.insert("origQuoteOrderQty".into(), json!("0.00000000"));
    Value::Object(m)
}

fn cancel_response(o: &Order, cancel_id: &str, now: i64) -> Value {
    let mut m = order_common(o);
    m.insert("origClientOrderId".into(), json!(o.client_id));
    m.insert("clientOrderId".into(), json!(cancel_id));
    m.insert("transactTime".into(), json!(now));
    Value::Object(m)
}

fn execution_report(o: &Order, exec: &str, t: Option<&Trade>, now: i64) -> Value {
    let zero = "0.00000000".to_string();
    json!({
        "e": "executionReport", "E": now, "s": o.symbol, "c": o.client_id, "S": o.side,
        "o": o.kind, "f": "GTC", "q": fmt8(o.orig_qty), "p": fmt8(o.price), "P": zero,
        "F": zero, "g": -1, "C": "", "x": exec, "X": o.status, "r": "NONE", "i": o.order_id,
        "l": t.map(|t| fmt8(t.qty)).unwrap_or(zero.clone()),
        "z": fmt8(o.executed_qty),
        "L": t.map(|t| fmt8(t.price)).unwrap_or(zero.clone()),
        "n": t.map(|t| fmt8(t.commission)).unwrap_or("0".into()),
        "N": t.map(|t| Value::from(t.commission_asset.clone())).unwrap_or(Value::Null),
        "T": now, "t": t.map(|t| t.id as i64).unwrap_or(-1), "I": 1, "w": exec == "NEW",
        "m": t.map(|t| t.is_maker).unwrap_or(false), "M": false, "O": o.time,
        "Z": fmt8(o.cum_quote), "Y": t.map(|t| fmt8(t.qty * t.price)).unwrap_or(zero.clone()),
        "Q": zero, "W": o.time, "V": "EXPIRE_MAKER"
    })
}

/// Accepts clients and relays each to the server; a handler can cut one (`kills`).
async fn relay(front: TcpListener, backend: SocketAddr, inner: Shared) {
    loop {
        let Ok((mut client, _)) = front.accept().await else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(backend).await else {
            continue;
        };
        let seen_as = server.local_addr().unwrap();
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        inner.kills.lock().unwrap().insert(seen_as, kill_tx);
        let inner = inner.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = kill_rx => {}
            }
            inner.kills.lock().unwrap().remove(&seen_as);
            // Dropping both sockets: the client sees the connection end with no answer.
        });
    }
}

fn needs_key(path: &str) -> bool {
    path == "/api/v3/userDataStream" || signed(path)
}

fn signed(path: &str) -> bool {
    matches!(
        path,
        "/api/v3/order" | "/api/v3/openOrders" | "/api/v3/myTrades" | "/api/v3/account"
    )
}

async fn rest_handler(
    State(inner): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut params = parse_params(&query);
    params.extend(parse_params(&body));
    let api_key = headers
        .get("x-mbx-apikey")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let route = format!("{} {}", method.as_str(), path);
    let fault = {
        let mut st = inner.st.lock().unwrap();
        st.requests.push(Request {
            method: method.as_str().to_string(),
            path: path.clone(),
            query: query.clone(),
            params: params.clone(),
            api_key: api_key.clone(),
            at: std::time::Instant::now(),
        });
        st.faults
            .iter()
            .position(|(r, _)| *r == route)
            .map(|i| st.faults.remove(i).1)
    };
    // Faults before anything is processed.
    match &fault {
        Some(Fault::RateLimit { retry_after_s }) => {
            let mut r = binance_error(
                429,
                -1003,
                "Too many requests; current limit of IP is 6000 requests per 1 MINUTE.",
            );
            r.headers_mut()
                .insert("retry-after", retry_after_s.to_string().parse().unwrap());
            return r;
        }
        Some(Fault::Ban { retry_after_s }) => {
            let mut r = binance_error(
                418,
                -1003,
                "Way too many requests; IP banned until 1700000000000.",
            );
            r.headers_mut()
                .insert("retry-after", retry_after_s.to_string().parse().unwrap());
            return r;
        }
        Some(Fault::ServerError) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Some(Fault::Error { status, code, msg }) => return binance_error(*status, *code, msg),
        Some(Fault::Delay {
            delay,
            store_first: false,
        }) => tokio::time::sleep(*delay).await,
        _ => {}
    }
    let reply = {
        let mut st = inner.st.lock().unwrap();
        process(
            &mut st,
            &method,
            &path,
            &query,
            &body,
            &params,
            api_key.as_deref(),
        )
    };
    let response = match reply {
        Ok(v) => Json(v).into_response(),
        Err(e) => binance_error(e.status, e.code, &e.msg),
    };
    // Faults after the request was processed (the order is stored).
    match fault {
        Some(Fault::BackendTimeoutAfterStore) => binance_error(
            503,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        ),
        Some(Fault::DropAfterStore) => {
            if let Some(kill) = inner.kills.lock().unwrap().remove(&peer) {
                let _ = kill.send(());
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
            response
        }
        Some(Fault::Delay {
            delay,
            store_first: true,
        }) => {
            tokio::time::sleep(delay).await;
            response
        }
        _ => response,
    }
}

/// Checks the key, signature and timestamp of a request, then answers it.
fn process(
    st: &mut St,
    method: &Method,
    path: &str,
    query: &str,
    body: &str,
    params: &[(String, String)],
    api_key: Option<&str>,
) -> Reply {
    let p = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if needs_key(path) && api_key != Some(API_KEY) {
        return Err(api_err(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ));
    }
    if signed(path) {
        // totalParams = query string (without the signature) immediately followed by the body.
        let (q, qsig) = match query.rsplit_once("&signature=") {
            Some((q, s)) => (q.to_string(), Some(s.to_string())),
            None => match query.strip_prefix("signature=") {
                Some(s) => (String::new(), Some(s.to_string())),
                None => (query.to_string(), None),
            },
        };
        let (b, bsig) = match body.rsplit_once("&signature=") {
            Some((b, s)) => (b.to_string(), Some(s.to_string())),
            None => (body.to_string(), None),
        };
        let Some(sig) = qsig.or(bsig) else {
            return Err(api_err(
                400,
                -1102,
                "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
            ));
        };
        let total = format!("{q}{b}");
        if hmac_sha256_hex(API_SECRET.as_bytes(), total.as_bytes()) != sig {
            st.bad_signatures += 1;
            return Err(api_err(
                400,
                -1022,
                "Signature for this request is not valid.",
            ));
        }
        let Some(ts) = p("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
            return Err(api_err(
                400,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            ));
        };
        let window = p("recvWindow")
            .and_then(|w| w.parse::<i64>().ok())
            .unwrap_or(5000);
        let now = st.now();
        if ts >= now + 1000 {
            return Err(api_err(
                400,
                -1021,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            ));
        }
        if now - ts > window {
            return Err(api_err(
                400,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
    }
    match (method.as_str(), path) {
        ("GET", "/api/v3/time") => Ok(json!({"serverTime": st.now()})),
        ("GET", "/api/v3/exchangeInfo") => exchange_info(st, p("symbol"), p("symbols")),
        ("POST", "/api/v3/order") => new_order(st, &p),
        ("GET", "/api/v3/order") => {
            let idx = find_order(st, &p)?;
            Ok(query_response(&st.orders[idx]))
        }
        ("DELETE", "/api/v3/order") => {
            let idx = find_order(st, &p).map_err(|_| api_err(400, -2011, "Unknown order sent."))?;
            if !is_open(&st.orders[idx].status) {
                return Err(api_err(400, -2011, "Unknown order sent."));
            }
            let now = st.now();
            st.orders[idx].status = "CANCELED".into();
            st.orders[idx].update_time = now;
            let cancel_id = format!("cancel-{}", st.orders[idx].order_id);
            let mut ev = execution_report(&st.orders[idx], "CANCELED", None, now);
            ev["c"] = json!(cancel_id);
            ev["C"] = json!(st.orders[idx].client_id);
            st.push(ev);
            Ok(cancel_response(&st.orders[idx], &cancel_id, now))
        }
        ("GET", "/api/v3/openOrders") => {
            let sym = p("symbol");
            Ok(Value::Array(
                st.orders
                    .iter()
                    .filter(|o| is_open(&o.status))
                    .filter(|o| sym.as_deref().is_none_or(|s| s == o.symbol))
                    .map(query_response)
                    .collect(),
            ))
        }
        ("DELETE", "/api/v3/openOrders") => {
            let sym = p("symbol").unwrap_or_default();
            let now = st.now();
            let mut out = Vec::new();
            for i in 0..st.orders.len() {
                if st.orders[i].symbol == sym && is_open(&st.orders[i].status) {
                    st.orders[i].status = "CANCELED".into();
                    st.orders[i].update_time = now;
                    let cancel_id = format!("cancel-{}", st.orders[i].order_id);
                    out.push(cancel_response(&st.orders[i], &cancel_id, now));
                }
            }
            if out.is_empty() {
                return Err(api_err(400, -2011, "Unknown order sent."));
            }
            Ok(Value::Array(out))
        }
        ("GET", "/api/v3/myTrades") => {
            let sym = p("symbol").unwrap_or_default();
            let order_id = p("orderId").and_then(|o| o.parse::<u64>().ok());
            let mut out = Vec::new();
            for o in st.orders.iter().filter(|o| o.symbol == sym) {
                if order_id.is_some_and(|id| id != o.order_id) {
                    continue;
                }
                for t in &o.trades {
                    out.push(json!({
                        "symbol": o.symbol, "id": t.id, "orderId": o.order_id, "orderListId": -1,
                        "price": fmt8(t.price), "qty": fmt8(t.qty), "quoteQty": fmt8(t.qty * t.price),
                        "commission": fmt8(t.commission), "commissionAsset": t.commission_asset,
                        "time": t.time, "isBuyer": o.side == "BUY", "isMaker": t.is_maker,
                        "isBestMatch": true
                    }));
                }
            }
            Ok(Value::Array(out))
        }
        ("POST", "/api/v3/userDataStream") => {
            let key = format!(
                "lk{:08}{}",
                st.listen_keys.len() + 1,
                "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
            );
            st.listen_keys.push(key.clone());
            st.active_keys.push(key.clone());
            Ok(json!({"listenKey": key}))
        }
        ("PUT", "/api/v3/userDataStream") | ("DELETE", "/api/v3/userDataStream") => {
            let key = p("listenKey").unwrap_or_default();
            if !st.active_keys.contains(&key) {
                return Err(api_err(400, -1125, "This listenKey does not exist."));
            }
            if method == Method::DELETE {
                st.active_keys.retain(|k| *k != key);
            }
            Ok(json!({}))
        }
        _ => Err(api_err(404, -1000, "An unknown error occurred.")),
    }
}

fn exchange_info(st: &St, one: Option<String>, many: Option<String>) -> Reply {
    let wanted: Vec<String> = match (one, many) {
        (Some(s), _) => vec![s],
        (None, Some(list)) => serde_json::from_str(&list).map_err(|_| {
            api_err(
                400,
                -1100,
                "Illegal characters found in parameter 'symbols'.",
            )
        })?,
        (None, None) => st.symbols.iter().map(|s| s.symbol.clone()).collect(),
    };
    let mut out = Vec::new();
    for w in &wanted {
        let Some(s) = st.symbol(w) else {
            return Err(api_err(400, -1121, "Invalid symbol."));
        };
        out.push(json!({
            "symbol": s.symbol, "status": s.status, "baseAsset": s.base, "baseAssetPrecision": 8,
            "quoteAsset": s.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "isSpotTradingAllowed": true,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt8(s.tick), "maxPrice": "1000000.00000000", "tickSize": fmt8(s.tick)},
                {"filterType": "LOT_SIZE", "minQty": fmt8(s.min_qty), "maxQty": "9000.00000000", "stepSize": fmt8(s.step)},
                {"filterType": "NOTIONAL", "minNotional": fmt8(s.min_notional), "applyMinToMarket": true,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
            ]
        }));
    }
    Ok(
        json!({"timezone": "UTC", "serverTime": st.now(), "rateLimits": [], "exchangeFilters": [], "symbols": out}),
    )
}

fn find_order(st: &St, p: &dyn Fn(&str) -> Option<String>) -> Result<usize, ApiErr> {
    let sym = p("symbol").unwrap_or_default();
    let by_id = p("orderId").and_then(|o| o.parse::<u64>().ok());
    let by_client = p("origClientOrderId");
    st.orders
        .iter()
        .rposition(|o| {
            o.symbol == sym
                && match (by_id, &by_client) {
                    (Some(id), _) => o.order_id == id,
                    (None, Some(c)) => &o.client_id == c,
                    (None, None) => false,
                }
        })
        .ok_or_else(|| api_err(400, -2013, "Order does not exist."))
}

fn on_grid(v: Decimal, base: Decimal, step: Decimal) -> bool {
    v >= base && (step.is_zero() || ((v - base) % step).is_zero())
}

fn new_order(st: &mut St, p: &dyn Fn(&str) -> Option<String>) -> Reply {
    let mandatory = |name: &str| {
        p(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            api_err(
                400,
                -1102,
                &format!(
                    "Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                ),
            )
        })
    };
    let symbol = mandatory("symbol")?;
    let side = mandatory("side")?;
    let kind = mandatory("type")?;
    let qty = Decimal::from_str(&mandatory("quantity")?).map_err(|_| {
        api_err(
            400,
            -1100,
            "Illegal characters found in parameter 'quantity'.",
        )
    })?;
    let Some(sym) = st.symbol(&symbol) else {
        return Err(api_err(400, -1121, "Invalid symbol."));
    };
    if sym.status != "TRADING" {
        return Err(api_err(400, -1013, "Market is closed."));
    }
    let price = match kind.as_str() {
        "LIMIT" => {
            mandatory("timeInForce")?;
            Decimal::from_str(&mandatory("price")?).map_err(|_| {
                api_err(400, -1100, "Illegal characters found in parameter 'price'.")
            })?
        }
        "MARKET" => Decimal::ZERO,
        _ => return Err(api_err(400, -1116, "Invalid orderType.")),
    };
    if !on_grid(qty, sym.min_qty, sym.step) {
        return Err(api_err(400, -1013, "Filter failure: LOT_SIZE"));
    }
    if kind == "LIMIT" && !on_grid(price, sym.tick, sym.tick) {
        return Err(api_err(400, -1013, "Filter failure: PRICE_FILTER"));
    }
    let value_price = if kind == "LIMIT" {
        price
    } else {
        st.market_price
    };
    if qty * value_price < sym.min_notional {
        return Err(api_err(400, -1013, "Filter failure: NOTIONAL"));
    }
    let client_id = p("newClientOrderId").unwrap_or_else(|| format!("auto-{}", st.next_order_id));
    // Unique among open orders, as Binance documents it.
    if st
        .orders
        .iter()
        .any(|o| o.client_id == client_id && is_open(&o.status))
    {
        return Err(api_err(400, -2010, "Duplicate order sent."));
    }
    if side == "BUY" && qty * value_price > st.quote_balance {
        return Err(api_err(
            400,
            -2010,
            "Account has insufficient balance for requested action.",
        ));
    }
    let now = st.now();
    let order_id = st.next_order_id;
    st.next_order_id += 1;
    st.orders.push(Order {
        symbol,
        order_id,
        client_id,
        side,
        kind: kind.clone(),
        price,
        orig_qty: qty,
        executed_qty: Decimal::ZERO,
        cum_quote: Decimal::ZERO,
        status: "NEW".into(),
        time: now,
        update_time: now,
        trades: Vec::new(),
    });
    let idx = st.orders.len() - 1;
    let ev = execution_report(&st.orders[idx], "NEW", None, now);
    st.push(ev);
    if kind == "MARKET" {
        // Two fills: half at the market price, the rest one tick higher.
        let first = (qty / Decimal::TWO)
            .round_dp_with_strategy(sym.step.scale(), rust_decimal::RoundingStrategy::ToZero);
        let market = st.market_price;
        let parts = if first.is_zero() {
            vec![(qty, market)]
        } else {
            vec![(first, market), (qty - first, market + sym.tick)]
        };
        for (q, px) in parts {
            let t = st.trade(idx, q, px, now, false);
            let ev = execution_report(&st.orders[idx], "TRADE", Some(&t), now);
            st.push(ev);
        }
    }
    Ok(full_response(&st.orders[idx]))
}

async fn ws_handler(
    State(inner): State<Shared>,
    Path(key): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let rx = {
        let mut st = inner.st.lock().unwrap();
        st.requests.push(Request {
            method: "WS".into(),
            path: "/ws".into(),
            query: key.clone(),
            params: Vec::new(),
            api_key: None,
            at: std::time::Instant::now(),
        });
        if !st.active_keys.contains(&key) {
            return binance_error(400, -1125, "This listenKey does not exist.");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        st.subscribers.push(tx);
        rx
    };
    ws.on_upgrade(move |socket| ws_session(socket, rx))
}

async fn ws_session(mut socket: WebSocket, mut rx: mpsc::UnboundedReceiver<WsCmd>) {
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(WsCmd::Event(v)) => {
                    if socket.send(Message::Text(v.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Some(WsCmd::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}
