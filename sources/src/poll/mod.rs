//! The poll driver's building blocks, written once for every poller (CoinGecko, RSS/Atom,
//! Reddit, FRED, MyInvestor): schedules ([`schedule`]), a circuit breaker, a per-API rate
//! limiter, `Retry-After` parsing, and the polite HTTP fetcher built from them and the shared
//! [`Backoff`](cryptoflow_operators::backoff::Backoff) ([`fetch`]); the FRED payload decoder
//! ([`fred`]); exact numbers from payload text ([`number`]); text helpers for feeds, posts and
//! Spanish formats ([`text`]).
//!
//! Time comes from tokio's clock, so tests drive every transition with paused time.

pub mod coingecko;
pub mod driver;
pub mod fetch;
pub mod fred;
pub mod myinvestor;
pub mod number;
pub mod reddit;
pub mod rss;
pub mod schedule;
pub mod state;
pub mod text;

use std::time::Duration;

use tokio::time::Instant;

/// Circuit-breaker state (exported as a metric: 0 closed, 1 open, 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused until the cooldown ends.
    Open,
    /// One probe request is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The metric value.
    pub fn as_metric(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// Opens after `threshold` consecutive failures, stays open for `cooldown`, then lets one probe
/// through.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            opened_at: None,
            probing: false,
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// May a request go out now? In half-open state only one probe is allowed at a time.
    pub fn allow(&mut self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probing => false,
            BreakerState::HalfOpen => {
                self.probing = true;
                true
            }
        }
    }

    /// How long until a request may go out.
    pub fn wait(&self) -> Duration {
        match self.opened_at {
            Some(at) => self.cooldown.saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Records a success: closes the breaker.
    pub fn success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.probing = false;
    }

    /// Records a failure: opens the breaker at the threshold, or again after a failed probe.
    pub fn failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
        if self.probing || self.failures >= self.threshold {
            self.opened_at = Some(Instant::now());
            self.probing = false;
        }
    }
}

/// A token bucket: `per_minute` requests per minute, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Requests are held until this instant (a `Retry-After` or an exhausted quota header).
    blocked_until: Option<Instant>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(per_minute: f64, burst: u32) -> Self {
        RateLimiter {
            per_sec: (per_minute / 60.0).max(1e-9),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
            blocked_until: None,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.burst);
        self.last = now;
    }

    /// Holds every request until `until` (the server said so).
    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// How long the next request must wait (zero: it may go now, and its token is taken).
    pub fn try_acquire(&mut self) -> Duration {
        if let Some(b) = self.blocked_until {
            let now = Instant::now();
            if b > now {
                return b - now;
            }
            self.blocked_until = None;
        }
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&mut self) {
        loop {
            let wait = self.try_acquire();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (relative to `now`, Unix seconds).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(Duration::from_secs(
        (at.timestamp() - now_unix).max(0) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_half_opens_and_closes() {
        let mut b = CircuitBreaker::new(3, Duration::from_secs(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        assert_eq!(b.wait(), Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one probe at a time");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.state().as_metric(), 0);
        b.failure();
        assert_eq!(b.state(), BreakerState::Closed, "the count restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_requests_and_honours_blocks() {
        // 30 per minute, burst 2: two at once, then one every 2 s.
        let mut r = RateLimiter::new(30.0, 2);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            r.acquire().await;
            at.push(t0.elapsed().as_millis());
        }
        assert_eq!(at, vec![0, 0, 2000, 4000, 6000]);
        // A Retry-After of 60 s holds everything.
        r.block_until(Instant::now() + Duration::from_secs(60));
        let t1 = Instant::now();
        r.acquire().await;
        assert_eq!(t1.elapsed(), Duration::from_secs(60));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        // Sun, 22 Nov 2026 06:00:00 GMT = 1795327200.
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 06:00:30 GMT", 1_795_327_200),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
