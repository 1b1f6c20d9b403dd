//! The HTTP API: one router over the [`Board`], JSON errors, bearer tokens and rate limits.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cryptoflow_operators::model::{
    Candle, CoinMarket, IndicatorRow, Interval, Millis, SentimentWindowRow, Symbol, WhaleAlert,
};

use super::error::{ApiError, MAX_BODY_BYTES, MAX_LIMIT, MAX_TIME_MS, MAX_URI_BYTES};
use super::openapi::{
    self, Features, Health, In, MacroSeries, NewsEntry, Param, Quality, Rows, Symbols,
};
use super::page;
use super::status::AppState;
use super::store::Store;
use super::ws;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Who may call `/api` and `/ws`, and how often.
#[derive(Clone)]
pub struct Access {
    /// Accepted bearer tokens (empty: no token needed).
    pub tokens: Arc<Vec<String>>,
    /// Requests per second per token (per peer address without tokens); 0: unlimited.
    pub rate_per_s: f64,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Arc<Vec<String>>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl Access {
    /// Tokens, a rate and CORS origins.
    pub fn new(tokens: Vec<String>, rate_per_s: f64, cors_origins: Vec<String>) -> Self {
        Access {
            tokens: Arc::new(tokens),
            rate_per_s,
            cors_origins: Arc::new(cors_origins),
            buckets: Arc::default(),
        }
    }

    /// Takes one request from `who`'s bucket; `Err(seconds)` to wait when it is empty.
    fn take(&self, who: &str, now: Instant) -> Result<(), u64> {
        if self.rate_per_s <= 0.0 {
            return Ok(());
        }
        let burst = (self.rate_per_s * 2.0).max(1.0);
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.rate_per_s;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate_per_s;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The router: `/health`, `/ready`, `/metrics` open; `/api/v1/…` and `/ws` behind `access`.
pub fn router(state: AppState, access: Access) -> Router {
    let api = Router::new()
        .route("/api/v1/symbols", get(symbols))
        .route("/api/v1/prices/current/{symbol}", get(current_price))
        .route("/api/v1/candles/{symbol}", get(candles))
        .route("/api/v1/technical/{symbol}", get(technical))
        .route("/api/v1/whales", get(whales))
        .route("/api/v1/sentiment/{coin}", get(sentiment))
        .route("/api/v1/news/latest", get(news))
        .route("/api/v1/ml-features/{symbol}", get(ml_features))
        .route("/api/v1/quality", get(quality))
        .route("/api/v1/markets", get(markets))
        .route("/api/v1/macro/{series}", get(macro_series))
        .route("/ws", get(ws::upgrade))
        .route_layer(middleware::from_fn_with_state(access.clone(), guard));
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(access, edge))
        .with_state(state)
}

/// Every request: refuses oversized targets and bodies, and adds CORS headers.
async fn edge(State(access): State<Access>, req: Request, next: Next) -> Response {
    // The request target as sent (no copy of it per request).
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::status(
            StatusCode::URI_TOO_LONG,
            format!("request target longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = req.method() == axum::http::Method::OPTIONS;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    metrics::histogram!("cryptoflow_api_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("cryptoflow_api_requests_total", "route" => route, "status" => resp.status().as_u16().to_string())
        .increment(1);
    if let Some(origin) = origin {
        let allowed = access
            .cors_origins
            .iter()
            .any(|o| o == "*" || origin.to_str().is_ok_and(|s| s == o));
        if allowed {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, OPTIONS"),
            );
            h.insert(header::VARY, HeaderValue::from_static("origin"));
        }
    }
    resp
}

/// `/api` and `/ws`: the bearer token (when tokens are set) and the rate limit.
async fn guard(State(access): State<Access>, req: Request, next: Next) -> Response {
    let who = match bearer(req.headers(), req.uri().query()) {
        Some(t) if access.tokens.iter().any(|k| k == &t) => format!("token:{}", digest(&t)),
        Some(_) if !access.tokens.is_empty() => {
            return unauthorized("the bearer token is not accepted");
        }
        None if !access.tokens.is_empty() => {
            return unauthorized("a bearer token is required (Authorization: Bearer <token>)");
        }
        _ => peer(&req),
    };
    if let Err(wait) = access.take(&who, Instant::now()) {
        let mut e = ApiError::status(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {} requests per second; retry after {wait} s",
                access.rate_per_s
            ),
        );
        e.retry_after = Some(wait);
        return e.into_response();
    }
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::status(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The bearer token of a request: the `Authorization` header, or (for browsers' WebSockets,
/// which cannot set headers) the `access_token` query parameter.
fn bearer(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    query?.split('&').find_map(|kv| {
        kv.strip_prefix("access_token=")
            .map(|t| t.to_string())
            .filter(|t| !t.is_empty())
    })
}

/// A short non-reversible name of a token, for the rate-limit table (tokens are never kept or
/// logged as such).
fn digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(token.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn peer(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| format!("peer:{}", c.0.ip()))
        .unwrap_or_else(|| "peer:unknown".to_string())
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "up".into(),
    })
}

async fn ready(State(s): State<AppState>) -> Response {
    let r = s.status.readiness(&s.store).await;
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        s.status.render_metrics(&s.board, &s.store).await,
    )
        .into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

/// Query parameters as a map, checked against an endpoint's table ([`super::openapi`]).
type Params = Query<HashMap<String, String>>;

/// Refuses query parameters the endpoint's table does not list (`access_token` aside, which
/// the guard reads).
fn only(params: &HashMap<String, String>, table: &[Param]) -> Result<(), ApiError> {
    let allowed: Vec<&str> = table
        .iter()
        .filter(|p| p.at == In::Query)
        .map(|p| p.name)
        .collect();
    match params
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && k.as_str() != "access_token")
    {
        Some(k) if allowed.is_empty() => Err(ApiError::bad(k, "unknown parameter (none allowed)")),
        Some(k) => Err(ApiError::bad(
            k,
            format!("unknown parameter (allowed: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

fn symbol(s: &str) -> Result<Symbol, ApiError> {
    Symbol::from_str(s).map_err(|e| ApiError::bad("symbol", e))
}

/// A known symbol, or 404.
async fn known(store: &Store, s: &str) -> Result<Symbol, ApiError> {
    let sym = symbol(s)?;
    if store.knows(&sym).await? {
        Ok(sym)
    } else {
        Err(ApiError::not_found(format!("unknown symbol {sym}")))
    }
}

/// A time: epoch milliseconds (0 to [`MAX_TIME_MS`]) or RFC 3339.
fn time_param(params: &HashMap<String, String>, name: &str) -> Result<Option<Millis>, ApiError> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return if (0..=MAX_TIME_MS).contains(&ms) {
            Ok(Some(ms))
        } else {
            Err(ApiError::bad(
                name,
                format!("{ms} is outside 0 to {MAX_TIME_MS} epoch milliseconds"),
            ))
        };
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.timestamp_millis().clamp(0, MAX_TIME_MS)))
        .map_err(|_| {
            ApiError::bad(
                name,
                format!("`{v}` is neither epoch milliseconds nor an RFC 3339 time"),
            )
        })
}

fn limit_param(params: &HashMap<String, String>, default: usize) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                "limit",
                format!("`{v}` is not a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// The `interval` parameter (default `1m`).
fn interval_param(params: &HashMap<String, String>) -> Result<Interval, ApiError> {
    match params.get("interval") {
        None => Ok(Interval::MINUTE),
        Some(v) => Interval::from_str(v).map_err(|e| ApiError::bad("interval", e)),
    }
}

/// `from` and `to` (an empty range when `from` is not before `to`).
fn range(params: &HashMap<String, String>) -> Result<(Millis, Millis), ApiError> {
    let from = time_param(params, "from")?.unwrap_or(0);
    let to = time_param(params, "to")?.unwrap_or(MAX_TIME_MS);
    Ok((from, to))
}

fn rows<T>(symbol: Option<&Symbol>, rows: Vec<T>) -> Json<Rows<T>> {
    Json(Rows {
        symbol: symbol.map(|s| s.as_str().to_string()),
        count: rows.len(),
        rows,
    })
}

async fn symbols(State(s): State<AppState>, Query(p): Params) -> ApiResult<Symbols> {
    only(&p, openapi::NONE)?;
    let symbols = s.store.symbols().await?;
    Ok(Json(Symbols {
        symbols: symbols.iter().map(|x| x.as_str().to_string()).collect(),
    }))
}

async fn current_price(
    State(s): State<AppState>,
    Path(sym): Path<String>,
    Query(p): Params,
) -> ApiResult<super::board::PriceNow> {
    only(&p, openapi::PRICE)?;
    let sym = symbol(&sym)?;
    s.store
        .price(&sym)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown symbol {sym}")))
}

async fn candles(
    State(s): State<AppState>,
    Path(sym): Path<String>,
    Query(p): Params,
) -> ApiResult<Rows<Candle>> {
    only(&p, openapi::CANDLES)?;
    let sym = known(&s.store, &sym).await?;
    let interval = interval_param(&p)?;
    let range = range(&p)?;
    let limit = limit_param(&p, 100)?;
    let forming = match p.get("forming").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad(
                "forming",
                format!("`{v}` is not true or false"),
            ))
        }
    };
    let found = s
        .store
        .candles(&sym, interval, range, limit, forming)
        .await?;
    Ok(rows(Some(&sym), found))
}

async fn technical(
    State(s): State<AppState>,
    Path(sym): Path<String>,
    Query(p): Params,
) -> ApiResult<Rows<IndicatorRow>> {
    only(&p, openapi::TECHNICAL)?;
    let sym = known(&s.store, &sym).await?;
    let interval = interval_param(&p)?;
    let range = range(&p)?;
    // Without a range or a limit: the latest row.
    let default = if p.contains_key("from") || p.contains_key("to") {
        100
    } else {
        1
    };
    let limit = limit_param(&p, default)?;
    let found = s.store.indicators(&sym, interval, range, limit).await?;
    Ok(rows(Some(&sym), found))
}

async fn whales(State(s): State<AppState>, Query(p): Params) -> ApiResult<Rows<WhaleAlert>> {
    only(&p, openapi::WHALES)?;
    let sym = match p.get("symbol") {
        Some(v) => Some(known(&s.store, v).await?),
        None => None,
    };
    let since = time_param(&p, "since")?.unwrap_or(0);
    let limit = limit_param(&p, 100)?;
    let found = s.store.whales(sym.as_ref(), since, limit).await?;
    Ok(rows(sym.as_ref(), found))
}

/// A coin ticker (upper-cased).
fn coin(v: &str, name: &str) -> Result<String, ApiError> {
    let c = v.to_uppercase();
    if c.is_empty() || c.len() > 16 || !c.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad(name, format!("`{v}` is not a coin ticker")));
    }
    Ok(c)
}

async fn sentiment(
    State(s): State<AppState>,
    Path(c): Path<String>,
    Query(p): Params,
) -> ApiResult<SentimentWindowRow> {
    only(&p, openapi::SENTIMENT)?;
    let coin = coin(&c, "coin")?;
    let window = p.get("window").map(String::as_str).unwrap_or("1h");
    if !["1h", "24h"].contains(&window) {
        return Err(ApiError::bad(
            "window",
            format!("`{window}` is not 1h or 24h"),
        ));
    }
    s.store
        .sentiment(&coin)
        .await?
        .into_iter()
        .find(|w| w.span == window)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no {window} sentiment for {coin}")))
}

async fn news(State(s): State<AppState>, Query(p): Params) -> ApiResult<Rows<NewsEntry>> {
    only(&p, openapi::NEWS)?;
    let limit = limit_param(&p, 20)?;
    let c = p.get("coin").map(|v| coin(v, "coin")).transpose()?;
    let found = s
        .store
        .news(c.as_deref(), limit)
        .await?
        .into_iter()
        .map(|(item, sentiment)| NewsEntry { item, sentiment })
        .collect();
    Ok(rows(None, found))
}

async fn ml_features(
    State(s): State<AppState>,
    Path(sym): Path<String>,
    Query(p): Params,
) -> ApiResult<Features> {
    only(&p, openapi::FEATURES)?;
    let sym = known(&s.store, &sym).await?;
    let interval = interval_param(&p)?;
    let at = time_param(&p, "at")?;
    let row = s
        .store
        .features_at(&sym, interval, at)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no feature vector of {sym} yet")))?;
    Ok(Json(Features {
        symbol: sym.as_str().to_string(),
        interval: row.interval.label().to_string(),
        open_time: row.open_time,
        close_time: row.close_time,
        features: row.named().map(|(n, v)| (n.to_string(), v)).collect(),
    }))
}

/// The objects of a JSON array of objects.
fn objects(values: Vec<serde_json::Value>) -> Vec<serde_json::Map<String, serde_json::Value>> {
    values
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .collect()
}

async fn quality(State(s): State<AppState>, Query(p): Params) -> ApiResult<Quality> {
    only(&p, openapi::QUALITY)?;
    let limit = limit_param(&p, 100)?;
    let (stored, events) = s.store.quality(limit).await?;
    let sources = match stored {
        Some(rows) => rows,
        None => s
            .status
            .ledger
            .snapshot(cryptoflow_sources::now_ms())
            .into_iter()
            .filter_map(|q| serde_json::to_value(q).ok())
            .collect(),
    };
    Ok(Json(Quality {
        sources: objects(sources),
        events: objects(events),
    }))
}

async fn markets(State(s): State<AppState>, Query(p): Params) -> ApiResult<Rows<CoinMarket>> {
    only(&p, openapi::NONE)?;
    let found = s.store.markets().await?;
    Ok(rows(None, found))
}

async fn macro_series(
    State(s): State<AppState>,
    Path(series): Path<String>,
    Query(p): Params,
) -> ApiResult<MacroSeries> {
    only(&p, openapi::MACRO)?;
    let id = series.to_uppercase();
    if id.is_empty() || id.len() > 40 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ApiError::bad(
            "series",
            format!("`{series}` is not a series id"),
        ));
    }
    let rows = s
        .store
        .macro_series(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown macro series {id}")))?;
    Ok(Json(MacroSeries {
        series: id,
        count: rows.len(),
        rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill_at_the_rate_and_say_how_long_to_wait() {
        let a = Access::new(vec![], 2.0, vec![]);
        let t0 = Instant::now();
        // Burst of 2 × rate.
        for _ in 0..4 {
            assert!(a.take("x", t0).is_ok());
        }
        assert_eq!(a.take("x", t0), Err(1));
        // Another caller has its own bucket.
        assert!(a.take("y", t0).is_ok());
        // Half a second later: one more.
        assert!(a.take("x", t0 + Duration::from_millis(500)).is_ok());
        assert!(a.take("x", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn bearer_from_header_or_query() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h, Some("access_token=abc&x=1")), Some("abc".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k1"));
        assert_eq!(bearer(&h, None), Some("k1".into()));
        assert_eq!(bearer(&HeaderMap::new(), Some("x=1")), None);
    }
}
