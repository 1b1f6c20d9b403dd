//! Polite HTTP GETs for pollers: a per-API rate limiter, conditional requests (ETag /
//! Last-Modified → 304), timeouts, retries with the shared [`Backoff`] (exponential, equal
//! jitter, reset after a success) for 5xx and transport errors, `429`/`418` with `Retry-After`
//! (without one: the backoff's delay, at least a second) and exhausted-quota headers honoured,
//! and a circuit breaker that stops hammering an API that keeps failing.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use cryptoflow_operators::backoff::Backoff;

use super::{parse_retry_after, BreakerState, CircuitBreaker, RateLimiter};

/// How one API is treated.
#[derive(Debug, Clone)]
pub struct ApiPolicy {
    /// Name in logs and metrics.
    pub name: String,
    /// Requests per minute.
    pub per_minute: f64,
    /// Requests allowed back to back.
    pub burst: u32,
    /// Retries of one request after 5xx, timeouts and transport errors.
    pub max_retries: u32,
    /// First backoff ceiling: the first retry waits between half of it and all of it.
    pub backoff_initial: Duration,
    /// Largest backoff ceiling.
    pub backoff_max: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Longest `Retry-After` honoured in place (a longer one fails the request).
    pub max_retry_after: Duration,
}

impl ApiPolicy {
    /// Defaults for an API called `name` at `per_minute` requests per minute.
    pub fn new(name: &str, per_minute: f64) -> Self {
        ApiPolicy {
            name: name.to_string(),
            per_minute,
            burst: 1,
            max_retries: 4,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(300),
            timeout: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// New content.
    Body(Vec<u8>),
    /// `304 Not Modified`: nothing new since the last fetch of this URL.
    NotModified,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The breaker is open: no request was sent.
    #[error("{api}: circuit open after repeated failures; next probe in {wait:?}")]
    CircuitOpen {
        /// API name.
        api: String,
        /// Time until the probe.
        wait: Duration,
    },
    /// A response that retrying will not fix (4xx other than 408/429).
    #[error("{api}: HTTP {status} from {url}: {body}")]
    Rejected {
        /// API name.
        api: String,
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Retries exhausted.
    #[error("{api}: {url} failed after {attempts} attempts: {last}")]
    Exhausted {
        /// API name.
        api: String,
        /// URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// Counters of one API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Requests sent.
    pub requests: u64,
    /// `304` answers.
    pub not_modified: u64,
    /// Retries after failures.
    pub retries: u64,
    /// `429`/`418` answers.
    pub rate_limited: u64,
    /// Failed attempts (5xx, timeouts, transport errors).
    pub failures: u64,
}

/// The fetcher of one API: one rate limiter, breaker and set of validators for all its URLs.
pub struct Fetcher {
    http: reqwest::Client,
    policy: ApiPolicy,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    backoff: Backoff,
    validators: HashMap<String, (Option<String>, Option<String>)>,
    /// Counters.
    pub stats: FetchStats,
}

fn now_unix() -> i64 {
    crate::now_ms() / 1000
}

impl Fetcher {
    /// A fetcher following `policy`; `user_agent` is sent with every request.
    pub fn new(policy: ApiPolicy, user_agent: &str) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(policy.timeout)
            .build()
            .map_err(|e| FetchError::Exhausted {
                api: policy.name.clone(),
                url: String::new(),
                attempts: 0,
                last: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Fetcher {
            http,
            limiter: RateLimiter::new(policy.per_minute, policy.burst),
            breaker: CircuitBreaker::new(policy.breaker_threshold, policy.breaker_cooldown),
            backoff: Backoff::new(policy.backoff_initial, policy.backoff_max),
            validators: HashMap::new(),
            stats: FetchStats::default(),
            policy,
        })
    }

    /// The breaker's state (a metric).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// GETs `url` with extra `headers`, conditionally when it was fetched before.
    pub async fn get(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Fetched, FetchError> {
        let api = self.policy.name.clone();
        let mut attempts = 0u32;
        loop {
            if !self.breaker.allow() {
                return Err(FetchError::CircuitOpen {
                    api,
                    wait: self.breaker.wait(),
                });
            }
            self.limiter.acquire().await;
            attempts += 1;
            self.stats.requests += 1;
            let mut req = self.http.get(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some((etag, modified)) = self.validators.get(url) {
                if let Some(e) = etag {
                    req = req.header("If-None-Match", e);
                }
                if let Some(m) = modified {
                    req = req.header("If-Modified-Since", m);
                }
            }
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let header = |name: &str| {
                        resp.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    self.honour_quota(&header);
                    match status {
                        304 => {
                            self.breaker.success();
                            self.backoff.reset();
                            self.stats.not_modified += 1;
                            return Ok(Fetched::NotModified);
                        }
                        200..=299 => {
                            let validators = (header("etag"), header("last-modified"));
                            match resp.bytes().await {
                                Ok(body) => {
                                    self.breaker.success();
                                    self.backoff.reset();
                                    if validators.0.is_some() || validators.1.is_some() {
                                        self.validators.insert(url.to_string(), validators);
                                    }
                                    return Ok(Fetched::Body(body.to_vec()));
                                }
                                Err(e) => format!("reading the body: {e}"),
                            }
                        }
                        429 | 418 => {
                            self.stats.rate_limited += 1;
                            let told = header("retry-after")
                                .and_then(|v| parse_retry_after(&v, now_unix()));
                            let drawn = self.backoff.next_delay().max(Duration::from_secs(1));
                            // The server's delay wins over the drawn one.
                            let wait = told.unwrap_or(drawn);
                            tracing::warn!(api = %api, url, status, ?wait, "Rate limited; waiting as told.");
                            if wait > self.policy.max_retry_after
                                || attempts > self.policy.max_retries
                            {
                                return Err(FetchError::Exhausted {
                                    api,
                                    url: url.to_string(),
                                    attempts,
                                    last: format!("HTTP {status}, Retry-After {wait:?}"),
                                });
                            }
                            self.limiter.block_until(Instant::now() + wait);
                            self.stats.retries += 1;
                            continue;
                        }
                        408 | 500..=599 => format!("HTTP {status}"),
                        _ => {
                            let body = resp.text().await.unwrap_or_default();
                            let mut cut = body.len().min(300);
                            while !body.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            return Err(FetchError::Rejected {
                                api,
                                url: url.to_string(),
                                status,
                                body: body[..cut].to_string(),
                            });
                        }
                    }
                }
                Err(e) if e.is_timeout() => format!("timed out after {:?}", self.policy.timeout),
                Err(e) => format!("transport: {e}"),
            };
            self.stats.failures += 1;
            self.breaker.failure();
            if attempts > self.policy.max_retries {
                return Err(FetchError::Exhausted {
                    api,
                    url: url.to_string(),
                    attempts,
                    last: failure,
                });
            }
            let delay = self.backoff.next_delay();
            tracing::info!(api = %api, url, attempt = attempts, error = %failure, ?delay, "Request failed; retrying.");
            self.stats.retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// Exhausted quota headers (`x-ratelimit-remaining: 0` with `x-ratelimit-reset` seconds, as
    /// Reddit sends) hold further requests until the reset.
    fn honour_quota(&mut self, header: &dyn Fn(&str) -> Option<String>) {
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.trim().parse::<f64>().ok());
        let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<f64>().ok());
        if let (Some(r), Some(reset)) = (remaining, reset) {
            if r < 1.0 && reset > 0.0 {
                self.limiter
                    .block_until(Instant::now() + Duration::from_secs_f64(reset.min(3600.0)));
            }
        }
    }
}
