//! Retry delays, computed once for every retry loop of cryptoflow: WebSocket reconnects, REST
//! refill requests, poller HTTP requests, Kafka dead letters and sink flushes.
//!
//! # Policy
//!
//! Exponential backoff with **equal jitter**. The nominal delay (the *ceiling*) starts at
//! `initial` and doubles after every failure up to `max`: `c(n) = min(max, initial × 2ⁿ)` for
//! the `n`-th consecutive failure (from 0). The delay actually waited is drawn uniformly from
//! `[c(n)/2, c(n)]`. Half of the ceiling is a floor, so a failing server is never hit again at
//! once and the wait still grows with every failure; the random upper half spreads clients that
//! failed together (every connection of a process after a network outage) so they do not come
//! back in lockstep. After a success the caller calls [`Backoff::reset`]: the next failure starts
//! over at `initial`.
//!
//! A delay the server asked for (`Retry-After`) wins over the drawn one: the caller waits that
//! instead, still calling [`Backoff::next_delay`] so the failure counts.
//!
//! This module only computes delays; the callers sleep (on tokio, in the sources and sinks), so
//! it needs no runtime.
//!
//! # Randomness
//!
//! [`SplitMix64`] (small, fully specified, so a seeded sequence is the same on every platform and
//! version), seeded from the clock by [`Backoff::new`] and from a given seed by
//! [`Backoff::seeded`]. Any [`RandomSource`] can be injected instead ([`Backoff::with_source`]),
//! including a closure returning `u64`s, which makes every draw exact in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Uniformly distributed 64-bit values.
pub trait RandomSource {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// SplitMix64: a small, fast pseudo-random generator whose output is fully specified, so a seeded
/// sequence never changes.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator seeded from the wall clock and a per-process counter, so generators made in
    /// the same instant still differ.
    pub fn from_clock() -> Self {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        SplitMix64(nanos ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn next_f64(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }
}

/// Exponential backoff with equal jitter (see the [module docs](self)): delays drawn from
/// `[c/2, c]`, the ceiling `c` doubling from `initial` up to `max` with every failure.
#[derive(Debug, Clone)]
pub struct Backoff<R = SplitMix64> {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
    failures: u32,
    rng: R,
}

impl Backoff<SplitMix64> {
    /// A backoff from `initial` doubling up to `max`, its randomness seeded from the clock.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff::with_source(initial, max, SplitMix64::from_clock())
    }

    /// A backoff from `initial` doubling up to `max` whose draws follow `seed`.
    pub fn seeded(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff::with_source(initial, max, SplitMix64::new(seed))
    }
}

impl<R: RandomSource> Backoff<R> {
    /// A backoff from `initial` doubling up to `max`, drawing from `rng`. An `initial` above `max`
    /// starts at `max`.
    pub fn with_source(initial: Duration, max: Duration, rng: R) -> Self {
        Backoff {
            initial,
            max,
            ceiling: initial.min(max),
            failures: 0,
            rng,
        }
    }

    /// The ceiling of the next delay: `min(max, initial × 2ⁿ)` after `n` failures.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// Failures since the last [`reset`](Self::reset) (saturating).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts a failure and returns the delay to wait before the next try: uniform in
    /// `[c/2, c]` for the current ceiling `c`, which then doubles (up to `max`). Ceilings beyond
    /// `u64::MAX` nanoseconds (584 years) are drawn as that.
    pub fn next_delay(&mut self) -> Duration {
        let c = u64::try_from(self.ceiling.as_nanos()).unwrap_or(u64::MAX);
        let floor = c - c / 2;
        let span = c / 2;
        // Multiply-shift maps 64 random bits onto 0..=span without division bias worth naming.
        let offset = ((u128::from(self.rng.next_u64()) * (u128::from(span) + 1)) >> 64) as u64;
        self.failures = self.failures.saturating_add(1);
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        Duration::from_nanos(floor + offset)
    }

    /// Back to `initial` after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.initial.min(self.max);
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let mut b = Backoff::seeded(ms(100), ms(1000), 1);
        let mut ceilings = Vec::new();
        for _ in 0..7 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay();
        }
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.failures(), 7);
    }

    #[test]
    fn every_draw_lies_between_half_the_ceiling_and_the_ceiling() {
        for seed in 0..20 {
            let mut b = Backoff::seeded(ms(250), Duration::from_secs(30), seed);
            for _ in 0..500 {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(
                    d >= c / 2 && d <= c,
                    "seed {seed}: {d:?} outside [{:?}, {c:?}]",
                    c / 2
                );
            }
        }
    }

    #[test]
    fn draws_spread_over_the_whole_upper_half() {
        // 2000 draws at a fixed 1 s ceiling: both ends of [500, 1000] ms are reached and the
        // mean is near 750 ms.
        let mut b = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(1), 42);
        let draws: Vec<u128> = (0..2000).map(|_| b.next_delay().as_millis()).collect();
        assert!(draws.iter().any(|&d| d < 525), "none near the floor");
        assert!(draws.iter().any(|&d| d > 975), "none near the ceiling");
        let mean = draws.iter().sum::<u128>() / draws.len() as u128;
        assert!((725..=775).contains(&mean), "mean {mean}");
    }

    #[test]
    fn the_extreme_random_values_give_the_exact_ends() {
        let mut low = Backoff::with_source(ms(100), ms(1000), || 0);
        let got: Vec<Duration> = (0..5).map(|_| low.next_delay()).collect();
        assert_eq!(got, vec![ms(50), ms(100), ms(200), ms(400), ms(500)]);
        let mut high = Backoff::with_source(ms(100), ms(1000), || u64::MAX);
        let got: Vec<Duration> = (0..5).map(|_| high.next_delay()).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(400), ms(800), ms(1000)]);
        // Half-way: 2^63 maps to the middle of the span.
        let mut mid = Backoff::with_source(ms(100), ms(1000), || 1u64 << 63);
        assert_eq!(mid.next_delay(), ms(75));
    }

    #[test]
    fn reset_starts_over_at_the_initial_delay() {
        let mut b = Backoff::with_source(ms(100), ms(1000), || u64::MAX);
        for _ in 0..6 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), ms(1000));
        b.reset();
        assert_eq!(b.ceiling(), ms(100));
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(), ms(100));
        assert_eq!(b.next_delay(), ms(200));
    }

    #[test]
    fn a_thousand_failures_do_not_overflow() {
        let mut b = Backoff::seeded(ms(1), Duration::MAX, 9);
        let mut last = Duration::ZERO;
        for _ in 0..1000 {
            last = b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::MAX);
        assert_eq!(b.failures(), 1000);
        // Drawn within [u64::MAX / 2, u64::MAX] ns.
        assert!(last >= Duration::from_nanos(u64::MAX / 2), "{last:?}");
        let mut capped = Backoff::seeded(ms(250), Duration::from_secs(30), 9);
        for _ in 0..1000 {
            assert!(capped.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(capped.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn the_sequence_of_a_seed_is_fixed() {
        // SplitMix64 from seed 0 gives 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F,
        // 0xF88BB8A8724C81EC (the reference implementation's output). The delays were computed
        // apart, in Python, as ceil(c/2) + floor(bits × (floor(c/2) + 1) / 2^64) ns for the
        // ceilings 100, 200, 400, 400 ms.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut b = Backoff::seeded(ms(100), ms(400), 0);
        let got: Vec<Duration> = (0..4).map(|_| b.next_delay()).collect();
        let want = [94_165_541, 143_152_800, 205_286_754, 394_176_396].map(Duration::from_nanos);
        assert_eq!(got, want);
    }

    #[test]
    fn initial_above_max_starts_at_max_and_zero_stays_zero() {
        let mut b = Backoff::with_source(ms(500), ms(200), || u64::MAX);
        assert_eq!(b.next_delay(), ms(200));
        b.reset();
        assert_eq!(b.ceiling(), ms(200));
        let mut z = Backoff::seeded(Duration::ZERO, ms(200), 3);
        assert_eq!(z.next_delay(), Duration::ZERO);
        assert_eq!(z.next_delay(), Duration::ZERO);
    }
}
