//! The REST client: requests (signed or not), the server-time offset, the ban, and the order
//! calls with their never-twice placement (see the [module docs](super)).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cryptoflow_operators::backoff::Backoff;
use cryptoflow_operators::model::{Millis, Side, Symbol, Venue};
use cryptoflow_operators::trading::{Intent, OrderKind};
use reqwest::Method;
use serde_json::Value;

use super::error::{OrderError, RejectKind};
use super::sign::{decimal_param, encode, query_string, Credentials};
use super::types::{
    add_my_trades, decode_order, short, ExchangeInfo, OrderOutcome, OutcomeSource, SymbolInfo,
};
use super::BinanceOrdersConfig;

/// What one HTTP exchange came to, before any retry policy.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request surely never reached Binance (the connection could not be made).
    NotSent(String),
    /// It may have been processed: a timeout or a dropped connection after sending, a 5xx,
    /// `-1007`, or a success whose body could not be read.
    Unknown(String),
    /// HTTP 429: not processed; wait `retry_after`.
    Throttled {
        /// `Retry-After`.
        retry_after: Duration,
        /// Binance's message.
        msg: String,
    },
    /// HTTP 418 (or a ban still running): nothing is sent before `until`.
    Banned {
        /// Unix ms.
        until: Millis,
    },
    /// A 4xx answer with Binance's `{"code","msg"}`: refused, not processed.
    Api {
        /// HTTP status.
        status: u16,
        /// Binance's code (0 when the body had none).
        code: i64,
        /// Binance's message.
        msg: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotSent(r) => write!(f, "not sent: {r}"),
            Failure::Unknown(r) => write!(f, "{r}"),
            Failure::Throttled { retry_after, msg } => {
                write!(f, "HTTP 429 (retry after {retry_after:?}): {msg}")
            }
            Failure::Banned { until } => write!(f, "HTTP 418: banned until {until}"),
            Failure::Api { status, code, msg } => write!(f, "HTTP {status}, code {code}: {msg}"),
        }
    }
}

/// How a request is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Nothing (market data, server time).
    Public,
    /// The `X-MBX-APIKEY` header (user data stream keys).
    ApiKey,
    /// The header, `recvWindow`, `timestamp` and the `signature`.
    Signed,
}

/// What a query-first resolution found.
enum Resolution {
    Found(OrderOutcome),
    Absent,
    StillUnknown(String),
}

/// Wall clock, Unix ms.
pub(crate) fn local_ms() -> Millis {
    crate::now_ms()
}

/// Binance's `newClientOrderId` pattern: `^[.A-Z:/a-z0-9_-]{1,36}$`.
fn valid_client_id(id: &str) -> bool {
    (1..=36).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

fn side_param(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// The kind of a 4xx rejection of a new order.
fn reject_kind(code: i64, msg: &str) -> RejectKind {
    let lower = msg.to_ascii_lowercase();
    match code {
        -1013 => RejectKind::Filter,
        _ if lower.starts_with("filter failure") => RejectKind::Filter,
        -2010 if lower.contains("insufficient balance") => RejectKind::InsufficientBalance,
        -1022 | -2014 | -2015 => RejectKind::Auth,
        _ => RejectKind::Other,
    }
}

/// `-2010 Duplicate order sent.`: the client order id is already used by an order.
fn is_duplicate(code: i64, msg: &str) -> bool {
    code == -2010 && msg.to_ascii_lowercase().contains("duplicate order")
}

struct Inner {
    cfg: BinanceOrdersConfig,
    creds: Credentials,
    http: reqwest::Client,
    rest_base: String,
    /// Server time − local time, ms.
    offset_ms: AtomicI64,
    synced: AtomicBool,
    /// Unix ms before which nothing is sent (an HTTP 418).
    banned_until: AtomicI64,
    /// `exchangeInfo` of the symbols asked for so far.
    symbols: Mutex<HashMap<Symbol, SymbolInfo>>,
}

/// The Binance spot order client: the executor's live broker.
///
/// Cheap to clone (one shared connection pool, clock offset and symbol cache); every method
/// takes `&self` and may run concurrently.
#[derive(Clone)]
pub struct BinanceOrders {
    inner: Arc<Inner>,
}

impl fmt::Debug for BinanceOrders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceOrders")
            .field("rest_base", &self.inner.rest_base)
            .field("ws_base", &self.inner.cfg.ws_base)
            .field("credentials", &self.inner.creds)
            .field("offset_ms", &self.inner.offset_ms.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl BinanceOrders {
    /// A client for `cfg` with `creds` (see [`Credentials::from_env`]).
    pub fn new(cfg: BinanceOrdersConfig, creds: Credentials) -> Result<Self, OrderError> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("cryptoflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OrderError::Config(format!("HTTP client: {e}")))?;
        Ok(BinanceOrders {
            inner: Arc::new(Inner {
                rest_base: cfg.rest_base.trim_end_matches('/').to_string(),
                cfg,
                creds,
                http,
                offset_ms: AtomicI64::new(0),
                synced: AtomicBool::new(false),
                banned_until: AtomicI64::new(0),
                symbols: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client for `cfg` with the credentials of its environment variables.
    pub fn from_env(cfg: BinanceOrdersConfig) -> Result<Self, OrderError> {
        let creds = Credentials::from_env(&cfg)?;
        Self::new(cfg, creds)
    }

    /// The configuration.
    pub fn config(&self) -> &BinanceOrdersConfig {
        &self.inner.cfg
    }

    /// The current estimate of server time − local time, ms (0 before the first sync).
    pub fn time_offset_ms(&self) -> i64 {
        self.inner.offset_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.inner.cfg.backoff_initial_ms),
            Duration::from_millis(self.inner.cfg.backoff_max_ms),
        )
    }

    fn max_attempts(&self) -> u32 {
        self.inner.cfg.max_attempts.max(1)
    }

    // ---- transport ----------------------------------------------------------------------

    /// One HTTP exchange, classified.
    async fn send_raw(&self, method: Method, url: &str, api_key: bool) -> Result<Value, Failure> {
        let until = self.inner.banned_until.load(Ordering::Relaxed);
        if local_ms() < until {
            return Err(Failure::Banned { until });
        }
        let mut req = self.inner.http.request(method, url);
        if api_key {
            req = req.header("X-MBX-APIKEY", self.inner.creds.api_key());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(Failure::NotSent(e.without_url().to_string())),
            Err(e) if e.is_timeout() => {
                return Err(Failure::Unknown(format!(
                    "no answer within {} ms",
                    self.inner.cfg.timeout_ms
                )))
            }
            Err(e) => {
                return Err(Failure::Unknown(format!(
                    "connection failed after sending: {}",
                    error_chain(&e.without_url())
                )))
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if status == 418 {
            let until = local_ms() + (retry_after.unwrap_or(120).saturating_mul(1000)) as i64;
            self.inner.banned_until.fetch_max(until, Ordering::Relaxed);
            return Err(Failure::Banned { until });
        }
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) if (400..500).contains(&status) && status != 408 && status != 429 => {
                return Err(Failure::Api {
                    status,
                    code: 0,
                    msg: format!("unreadable body: {}", e.without_url()),
                })
            }
            Err(e) => {
                return Err(Failure::Unknown(format!(
                    "HTTP {status}, body lost: {}",
                    e.without_url()
                )))
            }
        };
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        if (200..300).contains(&status) {
            return parsed.ok_or_else(|| {
                Failure::Unknown(format!(
                    "HTTP {status} with an undecodable body: {}",
                    body.chars().take(200).collect::<String>()
                ))
            });
        }
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_i64);
        let msg = parsed
            .as_ref()
            .and_then(|v| v.get("msg"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(200).collect());
        if status == 429 {
            return Err(Failure::Throttled {
                retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                msg,
            });
        }
        if code == Some(-1007) || status >= 500 || status == 408 {
            return Err(Failure::Unknown(format!(
                "HTTP {status}, code {}: {msg}",
                code.unwrap_or(0)
            )));
        }
        Err(Failure::Api {
            status,
            code: code.unwrap_or(0),
            msg,
        })
    }

    /// One request: the query built (and signed) now, so each attempt has a fresh timestamp.
    async fn attempt(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        security: Security,
    ) -> Result<Value, Failure> {
        let mut query = query_string(params);
        if security == Security::Signed {
            if !self.inner.synced.load(Ordering::Relaxed) {
                if let Err(e) = self.sync_time().await {
                    return Err(Failure::NotSent(format!("server time unknown: {e}")));
                }
            }
            let timestamp = local_ms() + self.inner.offset_ms.load(Ordering::Relaxed);
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!(
                "recvWindow={}&timestamp={timestamp}",
                self.inner.cfg.recv_window_ms
            ));
            let signature = self
                .inner
                .creds
                .sign(&query)
                .map_err(|e| Failure::NotSent(e.to_string()))?;
            query.push_str("&signature=");
            query.push_str(&signature);
        }
        let url = if query.is_empty() {
            format!("{}{path}", self.inner.rest_base)
        } else {
            format!("{}{path}?{query}", self.inner.rest_base)
        };
        self.send_raw(method, &url, security != Security::Public)
            .await
    }

    /// A request that may be repeated (reads, keys, cancels): transient failures are retried
    /// with backoff, a 429 waits `Retry-After`, a `-1021` resyncs the clock once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        security: Security,
    ) -> Result<Value, OrderError> {
        let mut backoff = self.backoff();
        let mut resynced = false;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let failure = match self.attempt(method.clone(), path, params, security).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            let last = tries >= self.max_attempts();
            match failure {
                Failure::Banned { until } => return Err(OrderError::Banned { until }),
                Failure::Throttled { retry_after, msg } => {
                    if last || retry_after > self.max_retry_after() {
                        return Err(OrderError::RateLimited { retry_after });
                    }
                    backoff.next_delay();
                    tracing::warn!(path, ?retry_after, msg = %msg, "Rate limited; waiting Retry-After.");
                    tokio::time::sleep(retry_after).await;
                }
                Failure::Api { code: -1021, .. } if !resynced => {
                    resynced = true;
                    tracing::warn!(path, "Timestamp outside recvWindow; resyncing the clock.");
                    self.sync_time().await?;
                }
                Failure::Api { status, code, msg } => {
                    return Err(OrderError::Api { status, code, msg })
                }
                Failure::NotSent(reason) | Failure::Unknown(reason) => {
                    if last {
                        return Err(OrderError::Unavailable(format!(
                            "{} {path}: {reason}",
                            method.as_str()
                        )));
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(path, tries, ?delay, reason = %reason, "Request failed; retrying.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn max_retry_after(&self) -> Duration {
        Duration::from_secs(self.inner.cfg.max_retry_after_s)
    }

    // ---- time -----------------------------------------------------------------------------

    async fn fetch_time_once(&self) -> Result<i64, Failure> {
        let url = format!("{}/api/v3/time", self.inner.rest_base);
        let t0 = local_ms();
        let v = self.send_raw(Method::GET, &url, false).await?;
        let t1 = local_ms();
        let server = v
            .get("serverTime")
            .and_then(Value::as_i64)
            .ok_or_else(|| Failure::Unknown(format!("no serverTime in {}", short(&v))))?;
        // The server read its clock about half-way through the round trip.
        Ok(server - (t0 + (t1 - t0) / 2))
    }

    /// Measures the server-time offset (`GET /api/v3/time`, the round trip's midpoint taken as
    /// the moment the server read its clock) and uses it for every later `timestamp`. Called
    /// before the first signed request and after a `-1021`; returns the offset, ms.
    pub async fn sync_time(&self) -> Result<i64, OrderError> {
        let mut backoff = self.backoff();
        let mut tries = 0u32;
        loop {
            tries += 1;
            match self.fetch_time_once().await {
                Ok(offset) => {
                    self.inner.offset_ms.store(offset, Ordering::Relaxed);
                    self.inner.synced.store(true, Ordering::Relaxed);
                    tracing::debug!(offset_ms = offset, "Server time synced.");
                    return Ok(offset);
                }
                Err(Failure::Banned { until }) => return Err(OrderError::Banned { until }),
                Err(Failure::Api { status, code, msg }) => {
                    return Err(OrderError::Api { status, code, msg })
                }
                Err(f) if tries >= self.max_attempts() => {
                    return Err(OrderError::Unavailable(format!("GET /api/v3/time: {f}")))
                }
                Err(f) => {
                    let delay = match &f {
                        Failure::Throttled { retry_after, .. } => *retry_after,
                        _ => backoff.next_delay(),
                    };
                    tracing::warn!(tries, ?delay, reason = %f, "Server time request failed; retrying.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    // ---- exchange info --------------------------------------------------------------------

    /// `GET /api/v3/exchangeInfo?symbols=[…]`: each symbol's filters, assets and status, kept
    /// for later orders (their fees' quote asset, and the refusal of a symbol not `TRADING`).
    pub async fn exchange_info(&self, symbols: &[Symbol]) -> Result<ExchangeInfo, OrderError> {
        let params = match symbols {
            [] => Vec::new(),
            [one] => vec![("symbol", one.to_string())],
            many => vec![(
                "symbols",
                format!(
                    "[{}]",
                    many.iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            )],
        };
        let v = self
            .call(
                Method::GET,
                "/api/v3/exchangeInfo",
                &params,
                Security::Public,
            )
            .await?;
        let list = v
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or_else(|| OrderError::Decode(format!("no symbols in {}", short(&v))))?;
        let mut out = ExchangeInfo::default();
        let mut cache = Vec::new();
        for s in list {
            let info = SymbolInfo::from_json(s)?;
            cache.push(info.clone());
            if info.is_trading() {
                out.symbols.insert(info.symbol, info);
            } else {
                tracing::warn!(symbol = %info.symbol, status = %info.status, "Symbol not trading; its orders are refused.");
                out.refused.insert(info.symbol, info);
            }
        }
        for want in symbols {
            if !out.symbols.contains_key(want) && !out.refused.contains_key(want) {
                return Err(OrderError::Decode(format!(
                    "exchangeInfo has no symbol {want}"
                )));
            }
        }
        if let Ok(mut m) = self.inner.symbols.lock() {
            for info in cache {
                m.insert(info.symbol, info);
            }
        }
        Ok(out)
    }

    /// The quote asset of `symbol`: from `exchangeInfo` when read, else by its suffix.
    pub fn quote_asset(&self, symbol: &Symbol) -> Option<String> {
        let cached = self
            .inner
            .symbols
            .lock()
            .ok()
            .and_then(|m| m.get(symbol).map(|i| i.quote_asset.clone()));
        cached.or_else(|| symbol.quote_asset().map(str::to_string))
    }

    fn check_trading(&self, symbol: &Symbol) -> Result<(), OrderError> {
        let status = self
            .inner
            .symbols
            .lock()
            .ok()
            .and_then(|m| m.get(symbol).map(|i| i.status.clone()));
        match status {
            Some(s) if s != "TRADING" => Err(OrderError::NotTrading {
                symbol: symbol.to_string(),
                status: s,
            }),
            _ => Ok(()),
        }
    }

    // ---- orders ---------------------------------------------------------------------------

    fn validate(intent: &Intent) -> Result<(), OrderError> {
        let invalid = |msg: String| OrderError::Rejected {
            code: 0,
            msg,
            kind: RejectKind::Invalid,
        };
        if intent.venue != Venue::Binance {
            return Err(invalid(format!(
                "venue {} is not Binance spot",
                intent.venue
            )));
        }
        if !valid_client_id(&intent.id) {
            return Err(invalid(format!(
                "intent id {:?} is not a Binance client order id (1 to 36 of [.A-Z:/a-z0-9_-])",
                intent.id
            )));
        }
        if intent.qty <= rust_decimal::Decimal::ZERO {
            return Err(invalid(format!("quantity {} is not positive", intent.qty)));
        }
        if let OrderKind::Limit { price } = intent.kind {
            if price <= rust_decimal::Decimal::ZERO {
                return Err(invalid(format!("limit price {price} is not positive")));
            }
        }
        Ok(())
    }

    fn order_params(intent: &Intent) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("symbol", intent.symbol.to_string()),
            ("side", side_param(intent.side).to_string()),
        ];
        match intent.kind {
            OrderKind::Market => {
                p.push(("type", "MARKET".into()));
                p.push(("quantity", decimal_param(intent.qty)));
            }
            OrderKind::Limit { price } => {
                p.push(("type", "LIMIT".into()));
                p.push(("timeInForce", "GTC".into()));
                p.push(("quantity", decimal_param(intent.qty)));
                p.push(("price", decimal_param(price)));
            }
        }
        p.push(("newClientOrderId", intent.id.clone()));
        p.push(("newOrderRespType", "FULL".into()));
        p
    }

    fn unknown(intent: &Intent, reason: String) -> OrderError {
        OrderError::Unknown {
            symbol: intent.symbol.to_string(),
            client_order_id: intent.id.clone(),
            reason,
        }
    }

    /// Places the order of `intent` (`POST /api/v3/order`, `newClientOrderId = intent.id`,
    /// `newOrderRespType=FULL`; `LIMIT` orders are `GTC`) and returns what Binance holds for it.
    ///
    /// Never places two orders for one intent: an unknown outcome is resolved by querying the
    /// order by its client id before any resend (see the [module docs](super)). An
    /// [`OrderError::Unknown`] means the question is still open: call
    /// [`reconcile`](Self::reconcile) later, never `place` again.
    pub async fn place(&self, intent: &Intent) -> Result<OrderOutcome, OrderError> {
        Self::validate(intent)?;
        self.check_trading(&intent.symbol)?;
        self.place_flow(intent).await
    }

    /// Resolves an intent whose order may have been sent (an [`OrderError::Unknown`], or an
    /// intent journaled as "sent, no answer" before a restart): queries the order by client id
    /// first; returns it when found (`source == Query`), places it (same client id) when
    /// Binance confirms it does not exist, and fails with [`OrderError::Unknown`] when that
    /// cannot be told yet.
    pub async fn reconcile(&self, intent: &Intent) -> Result<OrderOutcome, OrderError> {
        Self::validate(intent)?;
        match self.resolve(intent, false).await {
            Resolution::Found(o) => Ok(o),
            Resolution::StillUnknown(reason) => Err(Self::unknown(intent, reason)),
            Resolution::Absent => {
                tracing::info!(client_order_id = %intent.id, symbol = %intent.symbol, "Reconcile: no such order; placing it.");
                self.check_trading(&intent.symbol)?;
                self.place_flow(intent).await
            }
        }
    }

    async fn place_flow(&self, intent: &Intent) -> Result<OrderOutcome, OrderError> {
        let params = Self::order_params(intent);
        let quote = self.quote_asset(&intent.symbol);
        let mut backoff = self.backoff();
        let mut sends = 0u32;
        let mut resynced = false;
        // Once any send's fate was unknown, every final failure is `Unknown`: only a query can
        // close the question.
        let mut ever_unknown = false;
        let fail = |ever_unknown: bool, err: OrderError| {
            if ever_unknown {
                Self::unknown(
                    intent,
                    format!("an earlier send had no answer, then: {err}"),
                )
            } else {
                err
            }
        };
        loop {
            sends += 1;
            let last = sends >= self.max_attempts();
            // Debug only: a log line written before the send would delay it (the answer's
            // "Order placed." and every retry's warning are logged at info and above).
            tracing::debug!(client_order_id = %intent.id, symbol = %intent.symbol, side = side_param(intent.side), qty = %intent.qty, attempt = sends, "Placing order.");
            let failure = match self
                .attempt(Method::POST, "/api/v3/order", &params, Security::Signed)
                .await
            {
                Ok(v) => match decode_order(&v, quote.as_deref(), OutcomeSource::Response) {
                    Ok(o) => {
                        tracing::info!(client_order_id = %o.client_order_id, order_id = o.exchange_order_id, status = %o.status, executed_qty = %o.executed_qty, "Order placed.");
                        return Ok(o);
                    }
                    Err(e) => Failure::Unknown(format!("order accepted, answer undecodable: {e}")),
                },
                Err(f) => f,
            };
            match failure {
                Failure::Throttled { retry_after, msg } => {
                    if last || retry_after > self.max_retry_after() {
                        return Err(fail(ever_unknown, OrderError::RateLimited { retry_after }));
                    }
                    backoff.next_delay();
                    tracing::warn!(client_order_id = %intent.id, ?retry_after, msg = %msg, "Order rate limited (not processed); waiting Retry-After.");
                    tokio::time::sleep(retry_after).await;
                }
                Failure::Banned { until } => {
                    tracing::error!(client_order_id = %intent.id, until, "IP banned by Binance; order not sent.");
                    return Err(fail(ever_unknown, OrderError::Banned { until }));
                }
                Failure::Api { code: -1021, .. } if !resynced => {
                    resynced = true;
                    tracing::warn!(client_order_id = %intent.id, "Timestamp outside recvWindow; resyncing the clock and resending.");
                    if let Err(e) = self.sync_time().await {
                        return Err(fail(ever_unknown, e));
                    }
                }
                Failure::Api { code, msg, .. } if is_duplicate(code, &msg) => {
                    tracing::warn!(client_order_id = %intent.id, "Client order id already used; reading that order.");
                    return match self.query_order(&intent.symbol, &intent.id).await {
                        Ok(Some(o)) => Ok(o),
                        Ok(None) => Err(Self::unknown(
                            intent,
                            "Binance reported a duplicate order but has none with that id".into(),
                        )),
                        Err(e) => Err(Self::unknown(
                            intent,
                            format!("duplicate order, and it could not be read: {e}"),
                        )),
                    };
                }
                Failure::Api { code, msg, .. } => {
                    let kind = reject_kind(code, &msg);
                    tracing::warn!(client_order_id = %intent.id, code, msg = %msg, ?kind, "Order rejected.");
                    return Err(fail(ever_unknown, OrderError::Rejected { code, msg, kind }));
                }
                Failure::NotSent(reason) => {
                    if last {
                        return Err(fail(
                            ever_unknown,
                            OrderError::Unavailable(format!("order not sent: {reason}")),
                        ));
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(client_order_id = %intent.id, ?delay, reason = %reason, "Order not sent; retrying.");
                    tokio::time::sleep(delay).await;
                }
                Failure::Unknown(reason) => {
                    ever_unknown = true;
                    tracing::warn!(client_order_id = %intent.id, reason = %reason, "Order outcome unknown; querying it before anything else.");
                    match self.resolve(intent, true).await {
                        Resolution::Found(o) => {
                            tracing::info!(client_order_id = %o.client_order_id, order_id = o.exchange_order_id, status = %o.status, "Order found by query.");
                            return Ok(o);
                        }
                        Resolution::StillUnknown(why) => {
                            return Err(Self::unknown(intent, format!("{reason}; then {why}")))
                        }
                        Resolution::Absent if last => {
                            return Err(Self::unknown(
                                intent,
                                format!("{reason}; no order found after {sends} sends"),
                            ))
                        }
                        Resolution::Absent => {
                            let delay = backoff.next_delay();
                            tracing::warn!(client_order_id = %intent.id, ?delay, "Binance has no such order; resending with the same client id.");
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }
    }

    /// Query-first: is there an order with the intent's client id? `settle` waits
    /// `unknown_query_delay_ms` before the first query (a send just had no answer). "Absent"
    /// needs `absent_checks` consecutive `-2013` answers, `unknown_query_delay_ms` apart.
    async fn resolve(&self, intent: &Intent, settle: bool) -> Resolution {
        let delay = Duration::from_millis(self.inner.cfg.unknown_query_delay_ms);
        if settle {
            tokio::time::sleep(delay).await;
        }
        let checks = self.inner.cfg.absent_checks.max(1);
        for i in 0..checks {
            match self.query_order(&intent.symbol, &intent.id).await {
                Ok(Some(o)) => return Resolution::Found(o),
                Ok(None) => {
                    tracing::debug!(client_order_id = %intent.id, check = i + 1, of = checks, "No such order.");
                    if i + 1 < checks {
                        tokio::time::sleep(delay).await;
                    }
                }
                Err(e) => return Resolution::StillUnknown(format!("query failed: {e}")),
            }
        }
        Resolution::Absent
    }

    /// `GET /api/v3/order?symbol=…&origClientOrderId=…`: the order with that client id, with
    /// its fills from `GET /api/v3/myTrades` when it executed (`source == Query`); `None` on
    /// `-2013 Order does not exist.`
    pub async fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Option<OrderOutcome>, OrderError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_order_id.to_string()),
        ];
        let v = match self
            .call(Method::GET, "/api/v3/order", &params, Security::Signed)
            .await
        {
            Ok(v) => v,
            Err(OrderError::Api { code: -2013, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let quote = self.quote_asset(symbol);
        let mut out = decode_order(&v, quote.as_deref(), OutcomeSource::Query)?;
        if out.executed_qty > rust_decimal::Decimal::ZERO {
            if let Err(e) = self.add_fills(&mut out, quote.as_deref()).await {
                tracing::warn!(client_order_id, order_id = out.exchange_order_id, error = %e, "Could not read the order's trades; its fills come from the user data stream.");
            }
        }
        Ok(Some(out))
    }

    async fn add_fills(
        &self,
        out: &mut OrderOutcome,
        quote: Option<&str>,
    ) -> Result<(), OrderError> {
        let params = [
            ("symbol", out.symbol.to_string()),
            ("orderId", out.exchange_order_id.to_string()),
            ("limit", "1000".to_string()),
        ];
        let v = self
            .call(Method::GET, "/api/v3/myTrades", &params, Security::Signed)
            .await?;
        add_my_trades(out, &v, quote)
    }

    /// Cancels the order with `client_order_id` (`DELETE /api/v3/order`) and returns its final
    /// state. A cancel whose answer was lost and that finds the order gone on the retry returns
    /// the order's state as queried.
    pub async fn cancel(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<OrderOutcome, OrderError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_order_id.to_string()),
        ];
        let no_such = || OrderError::NoSuchOrder {
            symbol: symbol.to_string(),
            client_order_id: client_order_id.to_string(),
        };
        match self
            .call(Method::DELETE, "/api/v3/order", &params, Security::Signed)
            .await
        {
            Ok(v) => {
                let quote = self.quote_asset(symbol);
                let o = decode_order(&v, quote.as_deref(), OutcomeSource::Response)?;
                tracing::info!(client_order_id, order_id = o.exchange_order_id, status = %o.status, "Order cancelled.");
                Ok(o)
            }
            Err(OrderError::Api {
                code: -2011,
                status,
                msg,
            }) => match self.query_order(symbol, client_order_id).await? {
                // Cancelled by an earlier try whose answer was lost.
                Some(o) if o.status == super::OrderStatus::Canceled => Ok(o),
                Some(_) => Err(OrderError::Api {
                    status,
                    code: -2011,
                    msg,
                }),
                None => Err(no_such()),
            },
            Err(e) => Err(e),
        }
    }

    /// Cancels every open order on `symbol` (`DELETE /api/v3/openOrders`) and returns them as
    /// cancelled. No open order is an empty list (Binance answers `-2011`).
    pub async fn cancel_all(&self, symbol: &Symbol) -> Result<Vec<OrderOutcome>, OrderError> {
        let params = [("symbol", symbol.to_string())];
        let v = match self
            .call(
                Method::DELETE,
                "/api/v3/openOrders",
                &params,
                Security::Signed,
            )
            .await
        {
            Ok(v) => v,
            Err(OrderError::Api { code: -2011, .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let quote = self.quote_asset(symbol);
        let list = v.as_array().ok_or_else(|| {
            OrderError::Decode(format!("openOrders is not a list: {}", short(&v)))
        })?;
        // Order lists (OCO) come as entries without an orderId: their orders are not intents.
        list.iter()
            .filter(|o| o.get("orderId").is_some())
            .map(|o| decode_order(o, quote.as_deref(), OutcomeSource::Response))
            .collect()
    }

    /// The open orders of `symbol`, or of every symbol (`GET /api/v3/openOrders`, weight 6 with
    /// a symbol, 80 without).
    pub async fn open_orders(
        &self,
        symbol: Option<&Symbol>,
    ) -> Result<Vec<OrderOutcome>, OrderError> {
        let params: Vec<(&str, String)> = symbol
            .map(|s| vec![("symbol", s.to_string())])
            .unwrap_or_default();
        let v = self
            .call(Method::GET, "/api/v3/openOrders", &params, Security::Signed)
            .await?;
        let list = v.as_array().ok_or_else(|| {
            OrderError::Decode(format!("openOrders is not a list: {}", short(&v)))
        })?;
        list.iter()
            .map(|o| {
                let symbol = super::types::symbol_field(o, "symbol")?;
                let quote = self.quote_asset(&symbol);
                decode_order(o, quote.as_deref(), OutcomeSource::Query)
            })
            .collect()
    }

    // ---- user data stream keys -----------------------------------------------------------

    /// `POST /api/v3/userDataStream` (API key, no signature): a listen key for the user data
    /// stream.
    pub async fn new_listen_key(&self) -> Result<String, OrderError> {
        let v = self
            .call(
                Method::POST,
                "/api/v3/userDataStream",
                &[],
                Security::ApiKey,
            )
            .await?;
        v.get("listenKey")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OrderError::Decode("no listenKey in the answer".into()))
    }

    /// `PUT /api/v3/userDataStream?listenKey=…`: keeps the key alive for 60 more minutes.
    pub async fn keepalive_listen_key(&self, listen_key: &str) -> Result<(), OrderError> {
        self.call(
            Method::PUT,
            "/api/v3/userDataStream",
            &[("listenKey", listen_key.to_string())],
            Security::ApiKey,
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /api/v3/userDataStream?listenKey=…`: closes the stream.
    pub async fn close_listen_key(&self, listen_key: &str) -> Result<(), OrderError> {
        self.call(
            Method::DELETE,
            "/api/v3/userDataStream",
            &[("listenKey", listen_key.to_string())],
            Security::ApiKey,
        )
        .await
        .map(|_| ())
    }

    /// The user data stream URL of a listen key.
    pub(crate) fn stream_url(&self, listen_key: &str) -> String {
        format!(
            "{}/ws/{}",
            self.inner.cfg.ws_base.trim_end_matches('/'),
            encode(listen_key)
        )
    }
}

/// An error with its sources (reqwest hides the interesting part in them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_follow_binance_pattern() {
        assert!(valid_client_id("sig-ema-BTCUSDT-1m-1700000000000"));
        assert!(valid_client_id("a.b:c/d_e-F"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id(&"x".repeat(37)));
        assert!(!valid_client_id("has space"));
    }

    #[test]
    fn rejections_are_classified() {
        assert_eq!(
            reject_kind(
                -2010,
                "Account has insufficient balance for requested action."
            ),
            RejectKind::InsufficientBalance
        );
        assert_eq!(
            reject_kind(-1013, "Filter failure: LOT_SIZE"),
            RejectKind::Filter
        );
        assert_eq!(
            reject_kind(-1022, "Signature for this request is not valid."),
            RejectKind::Auth
        );
        assert!(is_duplicate(-2010, "Duplicate order sent."));
        assert!(!is_duplicate(-2010, "Market is closed."));
    }

    #[test]
    fn order_params_are_in_binance_order() {
        use std::str::FromStr;
        let intent = Intent {
            id: "i-1".into(),
            venue: Venue::Binance,
            symbol: Symbol::new("LTCBTC").unwrap(),
            side: Side::Buy,
            qty: rust_decimal::Decimal::from_str("1.000").unwrap(),
            kind: OrderKind::Limit {
                price: rust_decimal::Decimal::from_str("0.10").unwrap(),
            },
            created_at: 0,
        };
        assert_eq!(
            query_string(&BinanceOrders::order_params(&intent)),
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1\
             &newClientOrderId=i-1&newOrderRespType=FULL"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = BinanceOrders::new(
            BinanceOrdersConfig::default(),
            Credentials::new("the-key", "the-very-secret"),
        )
        .unwrap();
        let s = format!("{c:?}");
        assert!(
            !s.contains("the-very-secret") && !s.contains("the-key"),
            "{s}"
        );
    }
}
