//! Binance REST client for gap refill: `GET /api/v3/aggTrades?fromId=` and
//! `GET /api/v3/historicalTrades?fromId=`, paged by 1000, within a request-weight budget.
//! Futures use the same pages at `/fapi/v1/…` (USDⓈ-M) and `/dapi/v1/…` (COIN-M), see
//! [`endpoint`]; their `historicalTrades` needs only the API key header `X-MBX-APIKEY`.
//!
//! The budget is kept per minute: before a request of weight `w` the client checks that
//! `used + w` stays within `weight_budget_per_minute` (`used` is the larger of its own count and
//! the server's `X-MBX-USED-WEIGHT-1M` header) and otherwise waits for the next minute. A `429`
//! (or `418`) response is honoured by waiting `Retry-After` seconds before trying again, so the
//! client never keeps hammering a server that asked it to stop. Transport errors and `5xx`
//! answers are retried up to `max_attempts` times with the shared [`Backoff`] (from
//! `backoff_initial` doubling up to `backoff_max`, equal jitter; every request starts over). Other
//! `4xx` answers mean the range cannot be refilled (too old, unknown symbol): the caller records an
//! explicit gap.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cryptoflow_operators::backoff::Backoff;
use cryptoflow_operators::model::{AggIds, Side, StreamKind, Symbol, Trade, Venue};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::now_ms;

/// REST settings.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// The venue: decides the paths and weights ([`endpoint`]) and the venue of the trades.
    pub venue: Venue,
    /// Base URL, e.g. `https://api.binance.com`, `https://fapi.binance.com`.
    pub base_url: String,
    /// Most request weight to spend per weight window (Binance allows 6000 per minute per IP).
    pub weight_budget_per_minute: u32,
    /// The weight window: one minute at Binance (shorter only in tests).
    pub weight_window: Duration,
    /// API key sent as `X-MBX-APIKEY` when set (from the environment).
    pub api_key: Option<String>,
    /// Attempts per request for transport errors and 5xx answers.
    pub max_attempts: u32,
    /// First wait before retrying a request (drawn from its upper half).
    pub backoff_initial: Duration,
    /// Largest wait before retrying a request.
    pub backoff_max: Duration,
    /// Request timeout.
    pub timeout: Duration,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            venue: Venue::Binance,
            base_url: "https://api.binance.com".into(),
            weight_budget_per_minute: 1200,
            weight_window: Duration::from_secs(60),
            api_key: None,
            max_attempts: 5,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a refill failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// The API answered with a client error: the range cannot be refilled.
    #[error("refused with HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Body (cut).
        body: String,
    },
    /// Transport errors or server errors persisted over every attempt.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The answer was not the documented shape.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

/// An item of either page: `aggTrades` (`a, p, q, f, l, T, m`) or `historicalTrades`
/// (`id, price, qty, time, isBuyerMaker`); other fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestItem<'a> {
    #[serde(alias = "a")]
    id: u64,
    #[serde(borrow, alias = "p")]
    price: std::borrow::Cow<'a, str>,
    #[serde(borrow, alias = "q")]
    qty: std::borrow::Cow<'a, str>,
    #[serde(alias = "T")]
    time: i64,
    #[serde(alias = "m")]
    is_buyer_maker: bool,
    f: Option<u64>,
    l: Option<u64>,
}

fn positive(field: &str, s: &str) -> Result<Decimal, RestError> {
    s.parse::<Decimal>()
        .ok()
        .filter(|d| *d > Decimal::ZERO)
        .ok_or_else(|| RestError::Decode(format!("{field} is not a positive decimal: {s:?}")))
}

/// Decodes a `/api/v3/aggTrades` or `/api/v3/historicalTrades` page.
pub fn decode_page(
    body: &str,
    symbol: Symbol,
    kind: StreamKind,
    ts_received: i64,
) -> Result<Vec<Trade>, RestError> {
    let items: Vec<RestItem<'_>> =
        serde_json::from_str(body).map_err(|e| RestError::Decode(e.to_string()))?;
    items
        .into_iter()
        .map(|i| {
            let agg = match (kind, i.f, i.l) {
                (StreamKind::AggTrade, Some(first_trade_id), Some(last_trade_id)) => Some(AggIds {
                    first_trade_id,
                    last_trade_id,
                }),
                (StreamKind::AggTrade, _, _) => {
                    return Err(RestError::Decode("aggTrade item without f/l".into()))
                }
                _ => None,
            };
            Ok(Trade {
                venue: Venue::Binance,
                symbol,
                trade_id: i.id,
                price: positive("price", &i.price)?,
                qty: positive("qty", &i.qty)?,
                side: Side::from_buyer_is_maker(i.is_buyer_maker),
                ts_exchange: i.time,
                ts_received,
                agg,
            })
        })
        .collect()
}

/// The path and request weight of a refill page of `kind` on `venue`: spot `aggTrades` 4 and
/// `historicalTrades` 25 (`/api/v3`); USDⓈ-M (`/fapi/v1`) and COIN-M (`/dapi/v1`) 20 each (limit
/// up to 1000). Futures answer only order-book trades here (no insurance-fund or ADL fills).
pub fn endpoint(venue: Venue, kind: StreamKind) -> (&'static str, u32) {
    let agg = kind == StreamKind::AggTrade;
    match (venue, agg) {
        (Venue::Binance, true) => ("/api/v3/aggTrades", 4),
        (Venue::Binance, false) => ("/api/v3/historicalTrades", 25),
        (Venue::BinanceUsdm, true) => ("/fapi/v1/aggTrades", 20),
        (Venue::BinanceUsdm, false) => ("/fapi/v1/historicalTrades", 20),
        (Venue::BinanceCoinm, true) => ("/dapi/v1/aggTrades", 20),
        (Venue::BinanceCoinm, false) => ("/dapi/v1/historicalTrades", 20),
    }
}

/// The REST client with its weight accounting.
pub struct BinanceRest {
    client: reqwest::Client,
    cfg: RestConfig,
    minute: u64,
    used: u32,
    backoff: Backoff,
    /// Requests sent (all attempts).
    pub requests: u64,
}

/// Index of the current weight window (`window` long, aligned to the Unix epoch like Binance's
/// minute), and the seconds left in it.
fn current_window(window: Duration) -> (u64, f64) {
    let w = window.as_secs_f64().max(0.001);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    ((secs / w) as u64, w - secs % w)
}

impl BinanceRest {
    /// A client for `cfg`.
    pub fn new(cfg: RestConfig) -> Result<Self, RestError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("cryptoflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Unavailable(e.to_string()))?;
        Ok(BinanceRest {
            minute: current_window(cfg.weight_window).0,
            backoff: Backoff::new(cfg.backoff_initial, cfg.backoff_max),
            client,
            cfg,
            used: 0,
            requests: 0,
        })
    }

    async fn reserve(&mut self, weight: u32) {
        loop {
            let (window, left) = current_window(self.cfg.weight_window);
            if window != self.minute {
                self.minute = window;
                self.used = 0;
            }
            if self.used + weight <= self.cfg.weight_budget_per_minute {
                self.used += weight;
                return;
            }
            tracing::info!(
                source = "binance-rest",
                used = self.used,
                budget = self.cfg.weight_budget_per_minute,
                wait_s = left,
                "Weight budget spent; waiting for the next window."
            );
            tokio::time::sleep(Duration::from_secs_f64(left + 0.01)).await;
        }
    }

    /// One page of up to `limit` (≤ 1000) trades starting at `from_id`.
    pub async fn page(
        &mut self,
        symbol: Symbol,
        kind: StreamKind,
        from_id: u64,
        limit: u32,
    ) -> Result<Vec<Trade>, RestError> {
        let (path, weight) = endpoint(self.cfg.venue, kind);
        let url = format!(
            "{}{path}?symbol={symbol}&fromId={from_id}&limit={}",
            self.cfg.base_url.trim_end_matches('/'),
            limit.clamp(1, 1000)
        );
        let mut attempt = 0u32;
        self.backoff.reset();
        loop {
            attempt += 1;
            self.reserve(weight).await;
            self.requests += 1;
            let mut req = self.client.get(&url);
            if let Some(key) = &self.cfg.api_key {
                req = req.header("X-MBX-APIKEY", key);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.cfg.max_attempts => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(source = "binance-rest", attempt, error = %e, ?delay, "Request failed; retrying.");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(e) => return Err(RestError::Unavailable(e.to_string())),
            };
            if let Some(used) = resp
                .headers()
                .get("x-mbx-used-weight-1m")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
            {
                self.used = self.used.max(used);
            }
            let status = resp.status().as_u16();
            if status == 429 || status == 418 {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(60);
                tracing::warn!(
                    source = "binance-rest",
                    status,
                    wait_s = wait,
                    "Rate limited; honouring Retry-After."
                );
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let body = resp
                .text()
                .await
                .map_err(|e| RestError::Unavailable(e.to_string()))?;
            if (500..600).contains(&status) {
                if attempt < self.cfg.max_attempts {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        source = "binance-rest",
                        attempt,
                        status,
                        ?delay,
                        "Server error; retrying."
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(RestError::Unavailable(format!("HTTP {status}")));
            }
            if !(200..300).contains(&status) {
                return Err(RestError::Refused {
                    status,
                    body: body.chars().take(200).collect(),
                });
            }
            let mut page = decode_page(&body, symbol, kind, now_ms())?;
            for t in &mut page {
                t.venue = self.cfg.venue;
            }
            return Ok(page);
        }
    }

    /// Fetches ids `from..=to`, page by page; returns what the API had (possibly less).
    pub async fn refill(
        &mut self,
        symbol: Symbol,
        kind: StreamKind,
        from: u64,
        to: u64,
    ) -> Result<Vec<Trade>, RestError> {
        let mut out = Vec::new();
        self.refill_pages(symbol, kind, from, to, |page| {
            out.extend(page);
            std::future::ready(true)
        })
        .await?;
        Ok(out)
    }

    /// Fetches ids `from..=to` page by page (at most 1000 ids each) and hands each page, in id
    /// order, to `on_page` as soon as it arrived, so a long refill never holds more than a page.
    /// Stops early when `on_page` answers `false`. Returns the number of trades handed on.
    pub async fn refill_pages<F, Fut>(
        &mut self,
        symbol: Symbol,
        kind: StreamKind,
        from: u64,
        to: u64,
        mut on_page: F,
    ) -> Result<u64, RestError>
    where
        F: FnMut(Vec<Trade>) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut next = from;
        let mut delivered = 0u64;
        while next <= to {
            let want = (to - next + 1).min(1000) as u32;
            let page = self.page(symbol, kind, next, want).await?;
            let Some(last) = page.last().map(|t| t.trade_id) else {
                break;
            };
            let page: Vec<Trade> = page
                .into_iter()
                .filter(|t| t.trade_id >= next && t.trade_id <= to)
                .collect();
            delivered += page.len() as u64;
            if !page.is_empty() && !on_page(page).await {
                break;
            }
            if last < next {
                break;
            }
            next = last + 1;
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_documented_items() {
        // Examples from the Binance spot REST documentation (market data endpoints).
        let s = Symbol::new("BNBBTC").unwrap();
        let agg = r#"[{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true,"M":true}]"#;
        let t = &decode_page(agg, s, StreamKind::AggTrade, 5).unwrap()[0];
        assert_eq!(
            (t.trade_id, t.ts_exchange, t.side, t.ts_received),
            (26129, 1498793709153, Side::Sell, 5)
        );
        assert_eq!(
            t.agg,
            Some(AggIds {
                first_trade_id: 27781,
                last_trade_id: 27781
            })
        );
        let hist = r#"[{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}]"#;
        let t = &decode_page(hist, s, StreamKind::Trade, 5).unwrap()[0];
        assert_eq!(
            (t.trade_id, t.price.to_string().as_str(), t.agg),
            (28457, "4.00000100", None)
        );
        assert!(decode_page(r#"{"code":-1100,"msg":"x"}"#, s, StreamKind::Trade, 0).is_err());
        // USDⓈ-M aggTrades and COIN-M historicalTrades items as documented (COIN-M has baseQty).
        let fut = r#"[{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}]"#;
        assert_eq!(
            decode_page(fut, s, StreamKind::AggTrade, 5).unwrap()[0].trade_id,
            26129
        );
        let coinm = r#"[{"id":595103,"price":"9642.2","qty":"1","baseQty":"0.01037108","time":1499865549590,"isBuyerMaker":true}]"#;
        let t = &decode_page(coinm, s, StreamKind::Trade, 5).unwrap()[0];
        assert_eq!((t.trade_id, t.qty.to_string().as_str()), (595103, "1"));
        assert!(decode_page(
            r#"[{"id":1,"price":"-1","qty":"1","time":1,"isBuyerMaker":true}]"#,
            s,
            StreamKind::Trade,
            0
        )
        .is_err());
    }

    #[test]
    fn futures_endpoints_and_weights() {
        assert_eq!(
            endpoint(Venue::BinanceUsdm, StreamKind::AggTrade),
            ("/fapi/v1/aggTrades", 20)
        );
        assert_eq!(
            endpoint(Venue::BinanceUsdm, StreamKind::Trade),
            ("/fapi/v1/historicalTrades", 20)
        );
        assert_eq!(
            endpoint(Venue::BinanceCoinm, StreamKind::AggTrade),
            ("/dapi/v1/aggTrades", 20)
        );
        assert_eq!(
            endpoint(Venue::Binance, StreamKind::Trade),
            ("/api/v3/historicalTrades", 25)
        );
    }

    /// A server answering each connection with the next of `answers` (status, extra header
    /// line), then `[]` with 200; the number of requests it got.
    async fn scripted_server(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, header) = answers.get(n).copied().unwrap_or((200, ""));
                let body = if status == 200 { "[]" } else { "{}" };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (format!("http://{addr}"), hits)
    }

    fn client(base_url: String) -> BinanceRest {
        BinanceRest::new(RestConfig {
            base_url,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_millis(300),
            ..RestConfig::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn server_errors_are_retried_after_the_backoff() {
        // Three 500s: waits drawn from [100, 200], [150, 300] and [150, 300] ms (the ceiling
        // doubles from 200 ms and is capped at 300 ms), then the page.
        let (url, hits) = scripted_server(vec![(500, ""), (503, ""), (500, "")]).await;
        let mut rest = client(url);
        let sym = Symbol::new("BTCUSDT").unwrap();
        let t = std::time::Instant::now();
        let page = rest.page(sym, StreamKind::AggTrade, 1, 10).await.unwrap();
        let waited = t.elapsed();
        assert!(page.is_empty());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_millis(1500),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn attempts_run_out_and_retry_after_wins() {
        let sym = Symbol::new("BTCUSDT").unwrap();
        let (url, hits) = scripted_server(vec![(500, ""); 5]).await;
        let mut rest = client(url);
        assert!(matches!(
            rest.page(sym, StreamKind::AggTrade, 1, 10).await,
            Err(RestError::Unavailable(m)) if m == "HTTP 500"
        ));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 5);
        // A 429 waits what Retry-After says (1 s), not the backoff's 100-200 ms.
        let (url, hits) = scripted_server(vec![(429, "Retry-After: 1\r\n")]).await;
        let mut rest = client(url);
        let t = std::time::Instant::now();
        assert!(rest
            .page(sym, StreamKind::AggTrade, 1, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
