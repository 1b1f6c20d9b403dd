//! How a feeding worker turns event time into timely time: the watermark, allowed lateness,
//! idleness and the in-flight bound. No threads, no channels, no clock of its own: the caller
//! passes the instants in, so every rule is unit-tested here.
//!
//! The timely time of the input is a *tick* of the watermark: `(max exchange time seen −
//! allowed lateness) / tick`. An event goes in at the input's current time and then moves it on;
//! an event-time operator emits a window once the frontier passes it, and a trade older than the
//! frontier is late. Three things hold the watermark back:
//! - **The source's cap** ([`WatermarkCap`]): a Kafka partition behind the others, a hole being
//!   refilled or a connection that is down bounds event time, per batch.
//! - **Non-market events**: gap markers carry the wall clock of the reconnect, polled items their
//!   publication time; neither moves the watermark.
//! - **The in-flight bound**: while more trades are fed than the first sink has taken, the feed
//!   waits, and waiting for the sinks is not idleness. In a cluster every process has its own
//!   first sink: the trades of the symbols another process owns are taken there, and that
//!   process reports them to the feeding worker ([`Feed::released_elsewhere`]), so the bound
//!   means the same with one process or several.
//!
//! An idle live source (nothing for `idle_ms`, and no cap left: every partition caught up) lets
//! the wall clock move the watermark, so the last candles of a quiet symbol become final.

use std::time::{Duration, Instant};

use cryptoflow_operators::model::{Event, Shard};
use cryptoflow_sources::kafka::WatermarkCap;

/// The watermark rules of one feeding worker.
#[derive(Debug, Clone)]
pub struct Feed {
    tick_ms: i64,
    lateness_ms: i64,
    idle: Duration,
    max_in_flight: i64,
    /// Trades the first sinks of other processes took (they leave the in-flight count).
    released_elsewhere: i64,
    live: bool,
    /// Newest exchange time of market data fed so far.
    max_ts: Option<i64>,
    /// Events fed so far (of every kind).
    fed: u64,
    /// When the last batch came (or the feed last waited for the sinks).
    last_event: Option<Instant>,
    /// The current idle period was logged.
    idle_logged: bool,
    /// The symbols this worker feeds, when its source hands it other workers' events too
    /// (a replay split among the workers): those only move its watermark.
    shard: Option<Shard>,
}

/// What [`Feed::stamp`] decided for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped {
    /// The time the input may advance to after the batch.
    pub advance_to: u64,
    /// Trades in the batch (they count against the in-flight bound).
    pub trades: i64,
}

/// An idle advance of the watermark by the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleAdvance {
    /// The time to advance the input to.
    pub to: u64,
    /// First advance of this idle period (log it once).
    pub first: bool,
}

impl Feed {
    /// Rules for ticks of `tick_ms`, `lateness_ms` of allowed lateness, a source idle after
    /// `idle_ms` (live sources only) and at most `max_in_flight` trades between the feed and the
    /// first sink.
    pub fn new(
        tick_ms: i64,
        lateness_ms: i64,
        idle_ms: i64,
        max_in_flight: i64,
        live: bool,
    ) -> Self {
        Feed {
            tick_ms: tick_ms.max(1),
            lateness_ms,
            idle: Duration::from_millis(idle_ms.max(1) as u64),
            max_in_flight: max_in_flight.max(1),
            released_elsewhere: 0,
            live,
            max_ts: None,
            fed: 0,
            last_event: None,
            idle_logged: false,
            shard: None,
        }
    }

    /// Feeds only the events of `shard`'s symbols; the others in its batches only move the
    /// watermark, as they do on the worker that feeds them. Every worker reading the same
    /// sequence thus gives each event the time one worker reading it alone would.
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// True when this worker feeds `ev` (events without a symbol: the shard's first worker).
    fn owns(&self, ev: &Event) -> bool {
        match (self.shard, ev.symbol()) {
            (None, _) => true,
            (Some(s), Some(symbol)) => s.owns(&symbol),
            (Some(s), None) => s.index == 0,
        }
    }

    /// The tick of exchange time `ms`, lateness not included.
    pub fn tick_of(&self, ms: i64) -> u64 {
        (ms.max(0) / self.tick_ms) as u64
    }

    /// The tick the watermark reaches at exchange time `ms` (lateness included).
    fn watermark(&self, ms: i64) -> u64 {
        self.tick_of(ms.saturating_sub(self.lateness_ms))
    }

    /// Events fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// True while `in_flight` trades (fed, less those this process's first sink took) wait for
    /// the first sinks, less those [`Feed::released_elsewhere`]: the feed takes no batch and
    /// does not count the wait as idleness.
    pub fn held_back(&mut self, in_flight: i64, now: Instant) -> bool {
        let held = in_flight - self.released_elsewhere >= self.max_in_flight;
        if held {
            self.last_event = Some(now);
        }
        held
    }

    /// `n` more trades were taken by the first sink of another process of the cluster (or
    /// dropped there as repeats).
    pub fn released_elsewhere(&mut self, n: i64) {
        self.released_elsewhere += n;
    }

    /// Items that do not move event time (polled items) go in at the input's time.
    pub fn count_unstamped(&mut self, n: usize) {
        self.fed += n as u64;
    }

    /// Stamps a batch arriving at `now` while the input is at `input_time`: each event is handed
    /// to `send` with the time it goes in at, and the result says where the input may advance.
    /// `cap` is the source's bound on event time for this batch: `(before, after)` its events.
    pub fn stamp(
        &mut self,
        batch: Vec<Event>,
        input_time: u64,
        (cap, cap_after): (i64, i64),
        now: Instant,
        mut send: impl FnMut(Event, u64),
    ) -> Stamped {
        self.last_event = Some(now);
        self.idle_logged = false;
        let mut trades = 0i64;
        let mut wm = input_time;
        for ev in batch {
            let ts = ev.ts_exchange();
            // Only market data moves event time: a gap marker carries the time it was noticed
            // (the wall clock), before the trades of its hole.
            let market = matches!(ev, Event::Trade(_) | Event::Kline(_));
            if self.owns(&ev) {
                if matches!(ev, Event::Trade(_)) {
                    trades += 1;
                }
                send(ev, wm);
                self.fed += 1;
            }
            if market && self.max_ts.is_none_or(|m| ts > m) {
                self.max_ts = Some(ts);
                wm = wm.max(self.watermark(ts.min(cap)));
            }
        }
        if let Some(m) = self.max_ts {
            // The cap may have risen while the newest time stayed.
            wm = wm.max(self.watermark(m.min(cap_after)));
        }
        Stamped {
            advance_to: wm,
            trades,
        }
    }

    /// Stamps a batch with the source's bounds taken from `cap` (see [`Feed::stamp`]).
    pub fn stamp_capped(
        &mut self,
        batch: Vec<Event>,
        input_time: u64,
        cap: &WatermarkCap,
        now: Instant,
        send: impl FnMut(Event, u64),
    ) -> Stamped {
        let bounds = cap.next_batch();
        self.stamp(batch, input_time, bounds, now, send)
    }

    /// With no batch waiting at `now`: where the wall clock (`wall_ms`) moves an idle live
    /// source's watermark, if it does. `cap_latest` is the source's current bound (`i64::MAX`
    /// when it has none): a source still bounding event time (a partition behind, a hole being
    /// refilled) is never idle.
    pub fn idle_advance(
        &mut self,
        now: Instant,
        wall_ms: i64,
        cap_latest: i64,
        input_time: u64,
    ) -> Option<IdleAdvance> {
        // Before any batch, the idle period runs from the first look (polled items alone do not
        // end it: they do not move event time).
        let last = *self.last_event.get_or_insert(now);
        if !self.live || self.fed == 0 || cap_latest != i64::MAX || now < last + self.idle {
            return None;
        }
        let to = self.watermark(wall_ms - self.idle.as_millis() as i64);
        if to <= input_time {
            return None;
        }
        let first = !self.idle_logged;
        self.idle_logged = true;
        Some(IdleAdvance { to, first })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::model::{Gap, GapReason, Side, StreamKind, Symbol, Trade, Venue};
    use rust_decimal::Decimal;

    fn trade(id: u64, ts: i64) -> Event {
        Event::Trade(Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            trade_id: id,
            price: Decimal::new(100, 0),
            qty: Decimal::new(1, 0),
            side: Side::Buy,
            ts_exchange: ts,
            ts_received: ts,
            agg: None,
        })
    }

    fn gap(until: i64) -> Event {
        Event::Gap(Gap {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").expect("symbol"),
            kind: StreamKind::Trade,
            since: 0,
            until,
            last_id: None,
            reason: GapReason::Reconnect,
            from_id: None,
            to_id: None,
            refilled: false,
            detail: String::new(),
        })
    }

    fn stamp(feed: &mut Feed, batch: Vec<Event>, at: u64, cap: (i64, i64)) -> (Vec<u64>, Stamped) {
        let mut times = Vec::new();
        let s = feed.stamp(batch, at, cap, Instant::now(), |_, t| times.push(t));
        (times, s)
    }

    const NO_CAP: (i64, i64) = (i64::MAX, i64::MAX);

    #[test]
    fn events_go_in_at_the_watermark_before_them() {
        // Ticks of 100 ms, 1 s of lateness.
        let mut f = Feed::new(100, 1_000, 5_000, 10, false);
        let (times, s) = stamp(
            &mut f,
            vec![trade(1, 10_000), trade(2, 10_450), trade(3, 10_200)],
            0,
            NO_CAP,
        );
        // The first trade goes in at the input's time; each moves the watermark to
        // (max ts − 1 s) / 100 ms for the events after it; an older trade does not move it back.
        assert_eq!(times, vec![0, 90, 94]);
        assert_eq!(
            s,
            Stamped {
                advance_to: 94,
                trades: 3
            }
        );
        assert_eq!(f.fed(), 3);
    }

    fn trade_of(symbol: &str, id: u64, ts: i64) -> Event {
        let mut t = trade(id, ts);
        if let Event::Trade(t) = &mut t {
            t.symbol = Symbol::new(symbol).expect("symbol");
        }
        t
    }

    #[test]
    fn workers_reading_the_same_sequence_give_each_event_the_single_worker_time() {
        // Six symbols, times out of order: each worker of two feeds only its own symbols, and
        // every event must go in at the time one worker feeding all of them gives it.
        let symbols = [
            "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "BNBUSDT",
        ];
        let batch = |from: u64| -> Vec<Event> {
            (from..from + 12)
                .map(|i| {
                    let ts = 10_000 + (i as i64 * 137) % 900 + i as i64 * 40;
                    trade_of(symbols[(i as usize * 5) % symbols.len()], i, ts)
                })
                .collect()
        };
        let run = |shard: Option<Shard>| -> Vec<(u64, u64)> {
            let mut f = Feed::new(100, 300, 5_000, 1_000, false);
            if let Some(s) = shard {
                f = f.with_shard(s);
            }
            let mut at = 0;
            let mut out = Vec::new();
            for from in [0, 12, 24] {
                let s = f.stamp(batch(from), at, NO_CAP, Instant::now(), |ev, t| {
                    if let Event::Trade(tr) = ev {
                        out.push((tr.trade_id, t));
                    }
                });
                at = s.advance_to;
            }
            out
        };
        let one = run(None);
        assert_eq!(one.len(), 36);
        let mut two: Vec<(u64, u64)> = (0..2)
            .flat_map(|index| run(Some(Shard { index, peers: 2 })))
            .collect();
        two.sort_unstable();
        let mut expected = one.clone();
        expected.sort_unstable();
        assert_eq!(two, expected);
        // Both workers fed something: the split is real.
        assert!((0..2).all(|index| !run(Some(Shard { index, peers: 2 })).is_empty()));
    }

    #[test]
    fn gap_markers_do_not_move_event_time() {
        let mut f = Feed::new(100, 0, 5_000, 10, true);
        let (_, s) = stamp(&mut f, vec![trade(1, 1_000)], 0, NO_CAP);
        assert_eq!(s.advance_to, 10);
        // The marker's time is the wall clock of the reconnect, far ahead of the hole's trades.
        let (times, s) = stamp(&mut f, vec![gap(9_000_000), trade(2, 1_500)], 10, NO_CAP);
        assert_eq!(times, vec![10, 10]);
        assert_eq!(
            s,
            Stamped {
                advance_to: 15,
                trades: 1
            }
        );
    }

    #[test]
    fn the_cap_bounds_the_watermark_inside_and_after_a_batch() {
        let mut f = Feed::new(100, 0, 5_000, 10, true);
        // A slow partition (or a hole) bounds event time at 2 s during the batch and at 3 s after.
        let (times, s) = stamp(
            &mut f,
            vec![trade(1, 5_000), trade(2, 6_000)],
            0,
            (2_000, 3_000),
        );
        assert_eq!(times, vec![0, 20]);
        assert_eq!(s.advance_to, 30);
        // The bound rises with no newer trade: the watermark follows, up to the newest trade.
        let (_, s) = stamp(&mut f, vec![], 30, (9_000, 9_000));
        assert_eq!(s.advance_to, 60);
    }

    #[test]
    fn the_in_flight_bound_holds_the_feed_and_is_not_idleness() {
        let t0 = Instant::now();
        let mut f = Feed::new(100, 0, 1_000, 5, true);
        let (_, s) = stamp(&mut f, vec![trade(1, 1_000)], 0, NO_CAP);
        assert!(!f.held_back(4, t0));
        assert!(f.held_back(5, t0 + Duration::from_millis(900)));
        // 1.5 s after the batch but only 0.6 s after the last wait for the sinks: not idle.
        let now = t0 + Duration::from_millis(1_500);
        assert_eq!(f.idle_advance(now, 99_000, i64::MAX, s.advance_to), None);
        let later = t0 + Duration::from_millis(2_000);
        assert!(f
            .idle_advance(later, 99_000, i64::MAX, s.advance_to)
            .is_some());
    }

    #[test]
    fn the_in_flight_bound_counts_the_trades_other_processes_took() {
        let t0 = Instant::now();
        // Two processes, at most 5 000 trades in flight. 12 000 trades fed; this process's first
        // sink took the 6 000 of its symbols, so the local count says 6 000 in flight.
        let mut f = Feed::new(100, 0, 1_000, 5_000, false);
        assert!(
            f.held_back(6_000, t0),
            "nothing reported by the other process yet"
        );
        // The other process took 4 000 of its 6 000: 2 000 are in flight.
        f.released_elsewhere(3_000);
        f.released_elsewhere(1_000);
        assert!(!f.held_back(6_000, t0));
        // Reports add up across calls: 2 999 more fed, nothing more taken anywhere; then one more.
        assert!(!f.held_back(8_999, t0), "4 999 in flight");
        assert!(f.held_back(9_000, t0), "5 000 in flight");
        // Repeats dropped elsewhere count like trades taken there.
        f.released_elsewhere(1);
        assert!(!f.held_back(9_000, t0));
    }

    #[test]
    fn an_idle_live_source_advances_by_the_wall_clock_once_per_period() {
        let t0 = Instant::now();
        let mut f = Feed::new(100, 500, 1_000, 10, true);
        // Nothing fed yet: never idle.
        assert_eq!(
            f.idle_advance(t0 + Duration::from_secs(5), 50_000, i64::MAX, 0),
            None
        );
        f.stamp(vec![trade(1, 10_000)], 0, NO_CAP, t0, |_, _| {});
        let at = t0 + Duration::from_millis(999);
        assert_eq!(
            f.idle_advance(at, 50_000, i64::MAX, 95),
            None,
            "not idle yet"
        );
        let at = t0 + Duration::from_millis(1_000);
        // (wall − idle − lateness) / tick = (50 000 − 1 000 − 500) / 100.
        assert_eq!(
            f.idle_advance(at, 50_000, i64::MAX, 95),
            Some(IdleAdvance {
                to: 485,
                first: true
            })
        );
        assert_eq!(
            f.idle_advance(at, 50_100, i64::MAX, 485),
            Some(IdleAdvance {
                to: 486,
                first: false
            })
        );
        // No move backwards or in place.
        assert_eq!(f.idle_advance(at, 50_100, i64::MAX, 486), None);
        // A source that still bounds event time is not idle.
        assert_eq!(f.idle_advance(at, 60_000, 12_000, 486), None);
        // A new batch starts a new idle period.
        f.stamp(vec![trade(2, 49_000)], 486, NO_CAP, at, |_, _| {});
        let next = at + Duration::from_secs(2);
        assert!(f
            .idle_advance(next, 70_000, i64::MAX, 486)
            .is_some_and(|a| a.first));
    }

    #[test]
    fn polled_items_alone_let_the_wall_clock_move_the_watermark() {
        // A run of pollers only: no market batch ever comes.
        let t0 = Instant::now();
        let mut f = Feed::new(100, 0, 1_000, 10, true);
        assert_eq!(f.idle_advance(t0, 50_000, i64::MAX, 0), None, "nothing fed");
        f.count_unstamped(3);
        assert_eq!(
            f.idle_advance(t0 + Duration::from_millis(500), 50_000, i64::MAX, 0),
            None
        );
        assert_eq!(
            f.idle_advance(t0 + Duration::from_millis(1_000), 50_000, i64::MAX, 0),
            Some(IdleAdvance {
                to: 490,
                first: true
            })
        );
    }

    #[test]
    fn replays_are_never_idle() {
        let t0 = Instant::now();
        let mut f = Feed::new(100, 0, 10, 10, false);
        f.stamp(vec![trade(1, 1_000)], 0, NO_CAP, t0, |_, _| {});
        assert_eq!(
            f.idle_advance(t0 + Duration::from_secs(60), 9_999_999, i64::MAX, 10),
            None
        );
    }
}
