//! The poll driver: one loop, written once, that runs any [`Poller`] on its [`Schedule`], drops
//! items whose natural key it has emitted before, feeds the new ones into the dataflow, and
//! persists its [`PollState`] only once the sinks have made those items durable — so a crash
//! re-emits at most what was not stored, and a restart re-emits nothing that was.
//!
//! Timing: at start the next run is the first scheduled time after the last good poll (a run
//! missed while the process was down happens at once; a restart does not poll early). A poll with
//! no good response at all is retried after `retry_after_failure` (or at the next scheduled time,
//! if that is sooner).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use cryptoflow_operators::backoff::SplitMix64;
use cryptoflow_operators::model::Event;
use cryptoflow_operators::polled::Polled;
use tokio::sync::{mpsc, oneshot, watch};

use super::fetch::{FetchError, FetchStats, Fetched};
use super::schedule::Schedule;
use super::state::{PollState, StateError};
use super::BreakerState;
use crate::ledger::Ledger;
use crate::progress::Durable;

/// Items of one poller handed to the feeding worker; it answers with the dataflow time the items
/// were fed at (they are durable once every sink's ack passes it).
#[derive(Debug)]
pub struct PollBatch {
    /// The new items, as events.
    pub events: Vec<Event>,
    /// Where the feeding worker reports the time it fed them at.
    pub fed: oneshot::Sender<u64>,
}

/// What one poll produced.
#[derive(Debug, Default)]
pub struct PollOutput {
    /// Items (new and already seen: the driver dedups).
    pub items: Vec<Polled>,
    /// One message per malformed item or failed request; the other items still count.
    pub errors: Vec<String>,
    /// Good responses (including `304 Not Modified`).
    pub responses: u64,
    /// Requests that failed (after retries) or were refused by an open breaker.
    pub failed_requests: u64,
    /// Cursor updates, applied when the items are durable.
    pub cursors: BTreeMap<String, String>,
}

impl PollOutput {
    /// Records one fetch: a body is decoded by `decode` into items and one message per bad item
    /// (a body that cannot be decoded at all is one error); a failed fetch counts as a failed
    /// request. Returns whether a body was decoded.
    pub fn absorb<T: Into<Polled>>(
        &mut self,
        fetched: Result<Fetched, FetchError>,
        decode: impl FnOnce(&[u8]) -> Result<(Vec<T>, Vec<String>), String>,
    ) -> bool {
        match fetched {
            Ok(Fetched::NotModified) => {
                self.responses += 1;
                false
            }
            Ok(Fetched::Body(body)) => {
                self.responses += 1;
                match decode(&body) {
                    Ok((items, bad)) => {
                        self.items.extend(items.into_iter().map(Into::into));
                        self.errors.extend(bad);
                        true
                    }
                    Err(e) => {
                        self.errors.push(e);
                        false
                    }
                }
            }
            Err(e) => {
                self.failed_requests += 1;
                self.errors.push(e.to_string());
                false
            }
        }
    }
}

/// A source polled on a schedule.
pub trait Poller: Send + 'static {
    /// Name in logs, metrics, the ledger and the state file (`coingecko`, `rss`, …).
    fn name(&self) -> &'static str;
    /// One poll. `cursors` are the committed cursors.
    fn poll(
        &mut self,
        cursors: &BTreeMap<String, String>,
    ) -> impl Future<Output = PollOutput> + Send;
    /// The fetch counters and breaker state of each API (or feed) it calls.
    fn apis(&self) -> Vec<(String, FetchStats, BreakerState)>;
}

/// Driver settings of one poller.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// When it runs.
    pub schedule: Schedule,
    /// Its state file.
    pub state_path: PathBuf,
    /// How long a key no poll lists any more is remembered.
    pub retention: Duration,
    /// Most keys remembered.
    pub max_keys: usize,
    /// Wait before retrying a poll that got no good response.
    pub retry_after_failure: Duration,
    /// Stop after this many polls, the first one at once (`run --poll-once`); `None`: until
    /// shutdown, on the schedule.
    pub max_polls: Option<u64>,
}

/// What connects a poller to the pipeline.
#[derive(Clone)]
pub struct PollLink {
    /// To the feeding worker.
    pub tx: mpsc::Sender<PollBatch>,
    /// The least ack over all sinks.
    pub durable: watch::Receiver<Durable>,
    /// Set when the run stops.
    pub shutdown: watch::Receiver<bool>,
    /// Counters: source `poll`, symbol = poller name upper-cased (frames = good responses, trades = items
    /// emitted, duplicates = items already emitted, decode_errors = malformed items and failed
    /// requests).
    pub ledger: Arc<Ledger>,
    /// Fetch counters and breaker states.
    pub metrics: Arc<PollMetrics>,
}

/// The latest status of every poller's APIs.
#[derive(Debug, Default)]
pub struct PollMetrics {
    apis: Mutex<BTreeMap<(String, String), (FetchStats, BreakerState)>>,
    polls: Mutex<BTreeMap<String, PollerStatus>>,
}

/// Totals of one poller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollerStatus {
    /// Polls run.
    pub polls: u64,
    /// Items emitted.
    pub emitted: u64,
    /// Items dropped as already emitted.
    pub duplicates: u64,
    /// Malformed items and failed requests.
    pub errors: u64,
    /// Saved states.
    pub commits: u64,
}

impl PollMetrics {
    /// Status of `poller`.
    pub fn status(&self, poller: &str) -> PollerStatus {
        self.polls
            .lock()
            .ok()
            .and_then(|p| p.get(poller).copied())
            .unwrap_or_default()
    }

    /// `(poller, api) → (counters, breaker)`.
    pub fn apis(&self) -> BTreeMap<(String, String), (FetchStats, BreakerState)> {
        self.apis.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn update(&self, poller: &str, f: impl FnOnce(&mut PollerStatus)) {
        if let Ok(mut p) = self.polls.lock() {
            f(p.entry(poller.to_string()).or_default());
        }
    }

    /// Publishes to the process's metrics recorder (the `metrics` facade): per (poller, API)
    /// request counters and breaker state (0 closed, 1 open, 2 half-open), and per poller its
    /// polls, items, duplicates, errors and saved states. Called when metrics are scraped.
    pub fn publish_metrics(&self) {
        type Get = fn(&FetchStats) -> u64;
        let counters: [(&str, &str, Get); 5] = [
            ("requests", "HTTP requests sent.", |s| s.requests),
            ("not_modified", "304 answers.", |s| s.not_modified),
            ("retries", "Retries after failures.", |s| s.retries),
            ("rate_limited", "429/418 answers.", |s| s.rate_limited),
            ("failures", "Failed attempts.", |s| s.failures),
        ];
        let apis = self.apis();
        for (name, help, get) in counters {
            let name = format!("cryptoflow_poll_{name}_total");
            metrics::describe_counter!(name.clone(), help);
            for ((poller, api), (s, _)) in &apis {
                metrics::counter!(name.clone(), "poller" => poller.clone(), "api" => api.clone())
                    .absolute(get(s));
            }
        }
        metrics::describe_gauge!(
            "cryptoflow_poll_breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open."
        );
        for ((poller, api), (_, b)) in &apis {
            metrics::gauge!("cryptoflow_poll_breaker_state", "poller" => poller.clone(), "api" => api.clone())
                .set(f64::from(b.as_metric()));
        }
        type Status = fn(&PollerStatus) -> u64;
        let per_poller: [(&str, &str, Status); 5] = [
            ("polls", "Polls run.", |p| p.polls),
            ("items", "Items emitted.", |p| p.emitted),
            ("duplicates", "Items dropped as already emitted.", |p| {
                p.duplicates
            }),
            ("errors", "Malformed items and failed requests.", |p| {
                p.errors
            }),
            (
                "commits",
                "Poller states saved after the sinks had the items.",
                |p| p.commits,
            ),
        ];
        let polls = self.polls.lock().map(|p| p.clone()).unwrap_or_default();
        for (name, help, get) in per_poller {
            let name = format!("cryptoflow_poller_{name}_total");
            metrics::describe_counter!(name.clone(), help);
            for (poller, st) in &polls {
                metrics::counter!(name.clone(), "poller" => poller.clone()).absolute(get(st));
            }
        }
    }
}

/// Why a poller stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The state file.
    #[error(transparent)]
    State(#[from] StateError),
}

fn to_utc(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

/// Sleeps until `deadline_ms` (wall clock) or shutdown; `false` on shutdown.
async fn sleep_until(deadline_ms: i64, shutdown: &mut watch::Receiver<bool>) -> bool {
    let wait = (deadline_ms - crate::now_ms()).max(0) as u64;
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(wait)) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

/// Waits until everything fed at `time` is durable in every sink. `false`: it never will be (the
/// sinks are gone without completing, or the run stopped and they did not finish in a minute).
async fn wait_durable(
    time: u64,
    durable: &mut watch::Receiver<Durable>,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let d = *durable.borrow_and_update();
        if d.complete || d.before.is_some_and(|b| b > time) {
            return true;
        }
        if deadline.is_none() && *shutdown.borrow() {
            deadline = Some(tokio::time::Instant::now() + Duration::from_secs(60));
        }
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            r = durable.changed() => if r.is_err() { return durable.borrow().complete },
            _ = tick => {}
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return false;
        }
    }
}

/// Runs `poller` until shutdown (or `max_polls`).
pub async fn run_poller<P: Poller>(
    mut poller: P,
    cfg: DriverConfig,
    mut link: PollLink,
) -> Result<(), DriverError> {
    let name = poller.name();
    let mut state = PollState::load(&cfg.state_path)?;
    state.version = 1;
    let ledger_key = name.to_uppercase();
    link.ledger.register("poll", &ledger_key);
    let mut polls = 0u64;
    let mut next_ms = match state.last_poll_ms {
        // A bounded run (`--poll-once`) polls now.
        _ if cfg.max_polls.is_some() => crate::now_ms(),
        None => crate::now_ms(),
        Some(last) => cfg
            .schedule
            .next_after(to_utc(last))
            .map(|t| t.timestamp_millis())
            .unwrap_or(i64::MAX),
    };
    let mut rng = SplitMix64::from_clock();
    let mut jitter = |sched: &Schedule| {
        let j = sched.jitter().as_millis().min(i64::MAX as u128) as u64;
        if j == 0 {
            0
        } else {
            (rng.next_u64() % j) as i64
        }
    };
    loop {
        if next_ms > crate::now_ms() {
            tracing::debug!(poller = name, at = %to_utc(next_ms), "Next poll.");
        }
        if !sleep_until(next_ms, &mut link.shutdown).await {
            break;
        }
        let started = crate::now_ms();
        // A stop interrupts a poll in progress: nothing of it is emitted or saved.
        let out = tokio::select! {
            out = poller.poll(&state.cursors) => out,
            _ = link.shutdown.wait_for(|s| *s) => {
                tracing::info!(poller = name, "Stopped during a poll; the next run polls again.");
                break;
            }
        };
        polls += 1;
        for e in &out.errors {
            tracing::warn!(poller = name, "{e}");
        }
        let mut fresh: Vec<(String, Polled)> = Vec::new();
        let mut duplicates = 0u64;
        let mut batch_keys = std::collections::BTreeSet::new();
        for item in out.items {
            let key = item.natural_key();
            if let Some(t) = state.seen.get_mut(&key) {
                *t = started;
                duplicates += 1;
            } else if batch_keys.insert(key.clone()) {
                fresh.push((key, item));
            } else {
                duplicates += 1;
            }
        }
        let errors = out.errors.len() as u64;
        link.ledger.update("poll", &ledger_key, |c| {
            c.frames += out.responses;
            c.duplicates += duplicates;
            c.decode_errors += errors;
            if out.responses > 0 {
                c.last_received_ms = crate::now_ms();
            }
        });
        if let Ok(mut apis) = link.metrics.apis.lock() {
            for (api, stats, breaker) in poller.apis() {
                apis.insert((name.to_string(), api), (stats, breaker));
            }
        }
        let emitted = fresh.len() as u64;
        let mut durable_ok = true;
        if !fresh.is_empty() {
            let (fed_tx, fed_rx) = oneshot::channel();
            let events = fresh
                .iter()
                .map(|(_, p)| Event::Polled(Box::new(p.clone())))
                .collect();
            if link
                .tx
                .send(PollBatch {
                    events,
                    fed: fed_tx,
                })
                .await
                .is_err()
            {
                tracing::info!(
                    poller = name,
                    "The pipeline is gone; {emitted} items not emitted."
                );
                break;
            }
            match fed_rx.await {
                Ok(time) => {
                    durable_ok = wait_durable(time, &mut link.durable, &link.shutdown).await;
                }
                Err(_) => {
                    tracing::info!(
                        poller = name,
                        "The pipeline stopped before feeding {emitted} items; the next run polls them again."
                    );
                    break;
                }
            }
            link.ledger
                .update("poll", &ledger_key, |c| c.trades += emitted);
        }
        if !durable_ok {
            tracing::warn!(
                poller = name,
                "{emitted} items were not confirmed by every sink; the state is not saved, the next run emits them again."
            );
            break;
        }
        for (key, _) in fresh {
            state.seen.insert(key, started);
        }
        state.cursors.extend(out.cursors);
        let good = out.responses > 0;
        if good {
            state.last_poll_ms = Some(crate::now_ms());
        }
        state.prune(
            crate::now_ms(),
            cfg.retention.as_millis() as i64,
            cfg.max_keys,
        );
        state.save(&cfg.state_path)?;
        link.metrics.update(name, |s| {
            s.polls += 1;
            s.emitted += emitted;
            s.duplicates += duplicates;
            s.errors += errors;
            s.commits += 1;
        });
        tracing::info!(
            poller = name,
            emitted,
            duplicates,
            errors,
            responses = out.responses,
            failed_requests = out.failed_requests,
            "Poll done."
        );
        if cfg.max_polls.is_some_and(|m| polls >= m) {
            break;
        }
        let now = crate::now_ms();
        let scheduled = cfg
            .schedule
            .next_after(to_utc(now))
            .map(|t| t.timestamp_millis().saturating_add(jitter(&cfg.schedule)))
            .unwrap_or(i64::MAX);
        next_ms = if good {
            scheduled
        } else {
            scheduled.min(now + cfg.retry_after_failure.as_millis() as i64)
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn metrics_name_each_api_and_poller() {
        let m = PollMetrics::default();
        m.apis.lock().unwrap().insert(
            ("coingecko".into(), "markets".into()),
            (
                FetchStats {
                    requests: 7,
                    ..FetchStats::default()
                },
                BreakerState::Open,
            ),
        );
        m.update("coingecko", |p| p.polls = 3);
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || m.publish_metrics());
        let text = handle.render();
        for line in [
            "cryptoflow_poll_breaker_state{poller=\"coingecko\",api=\"markets\"} 1",
            "cryptoflow_poll_requests_total{poller=\"coingecko\",api=\"markets\"} 7",
            "cryptoflow_poller_polls_total{poller=\"coingecko\"} 3",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
    use super::*;
    use cryptoflow_operators::polled::FundNav;

    struct Fixed {
        navs: Vec<(&'static str, &'static str)>,
    }

    impl Poller for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        async fn poll(&mut self, cursors: &BTreeMap<String, String>) -> PollOutput {
            let n = cursors.get("n").map(|v| v.len()).unwrap_or(0);
            PollOutput {
                items: self
                    .navs
                    .iter()
                    .map(|(isin, date)| {
                        Polled::FundNav(FundNav {
                            isin: isin.to_string(),
                            name: "F".into(),
                            currency: "EUR".into(),
                            nav: Decimal::ONE,
                            nav_date: date.parse().expect("date"),
                            source: "test".into(),
                            fetched_at: 0,
                        })
                    })
                    .collect(),
                errors: vec!["one bad row".into()],
                responses: 1,
                failed_requests: 0,
                cursors: [("n".to_string(), "x".repeat(n + 1))].into(),
            }
        }
        fn apis(&self) -> Vec<(String, FetchStats, BreakerState)> {
            Vec::new()
        }
    }

    use rust_decimal::Decimal;

    /// A feeder that answers every batch with time 7, and records the keys it got; `drop_fed`
    /// simulates a crash before feeding.
    type Fed = Arc<Mutex<Vec<Vec<String>>>>;

    fn feeder(drop_fed: bool) -> (mpsc::Sender<PollBatch>, Fed) {
        let (tx, mut rx) = mpsc::channel::<PollBatch>(4);
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                let keys = b
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Polled(p) => Some(p.natural_key()),
                        _ => None,
                    })
                    .collect();
                g.lock().expect("lock").push(keys);
                if !drop_fed {
                    let _ = b.fed.send(7);
                }
            }
        });
        (tx, got)
    }

    fn link(tx: mpsc::Sender<PollBatch>, durable_before: u64) -> (PollLink, watch::Sender<bool>) {
        let (_dtx, durable) = watch::channel(Durable {
            before: Some(durable_before),
            complete: false,
        });
        // Keep the sender alive for the test's duration.
        std::mem::forget(_dtx);
        let (stx, shutdown) = watch::channel(false);
        (
            PollLink {
                tx,
                durable,
                shutdown,
                ledger: Arc::new(Ledger::new(60_000, 0)),
                metrics: Arc::new(PollMetrics::default()),
            },
            stx,
        )
    }

    fn cfg(path: &std::path::Path, max_polls: u64) -> DriverConfig {
        DriverConfig {
            schedule: Schedule::Every {
                every: Duration::from_millis(20),
                jitter: Duration::ZERO,
            },
            state_path: path.to_path_buf(),
            retention: Duration::from_secs(3600),
            max_keys: 100,
            retry_after_failure: Duration::from_millis(20),
            max_polls: Some(max_polls),
        }
    }

    #[tokio::test]
    async fn dedups_within_a_run_and_across_restarts_and_saves_only_durable_items() {
        let dir = std::env::temp_dir().join(format!("cf-driver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("fixed.json");
        let poller = || Fixed {
            navs: vec![
                ("IE00B03HD191", "2026-11-20"),
                ("IE00B03HD191", "2026-11-20"),
            ],
        };

        // Crash before the items are fed: nothing is saved as emitted.
        let (tx, got) = feeder(true);
        let (l, _stop) = link(tx, 8);
        run_poller(poller(), cfg(&path, 1), l).await.expect("run");
        assert_eq!(got.lock().expect("lock").len(), 1);
        assert!(!path.exists(), "no state saved for unfed items");

        // Fed but not durable yet (ack before 7): waits; made durable (before 8): saved.
        let (tx, got) = feeder(false);
        let (l, _stop) = link(tx, 8);
        let ledger = l.ledger.clone();
        let metrics = l.metrics.clone();
        run_poller(poller(), cfg(&path, 2), l).await.expect("run");
        let batches = got.lock().expect("lock").clone();
        assert_eq!(
            batches,
            vec![vec!["fund|IE00B03HD191|2026-11-20".to_string()]],
            "the same key twice in a poll and again in the second poll is emitted once"
        );
        let st = metrics.status("fixed");
        assert_eq!(
            (st.polls, st.emitted, st.duplicates, st.errors),
            (2, 1, 3, 2)
        );
        let row = ledger.get("poll", "FIXED").expect("ledger row");
        assert_eq!(
            (row.frames, row.trades, row.duplicates, row.decode_errors),
            (2, 1, 3, 2)
        );
        let saved = PollState::load(&path).expect("state");
        assert!(saved.seen.contains_key("fund|IE00B03HD191|2026-11-20"));
        assert_eq!(
            saved.cursors.get("n").map(String::len),
            Some(2),
            "cursors advance per poll"
        );

        // Restart: the key is remembered, nothing is emitted.
        let (tx, got) = feeder(false);
        let (l, _stop) = link(tx, 8);
        run_poller(poller(), cfg(&path, 1), l).await.expect("run");
        assert!(got.lock().expect("lock").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn waits_for_the_sinks_before_saving() {
        let dir = std::env::temp_dir().join(format!("cf-driver-wait-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("fixed.json");
        let (tx, _got) = feeder(false);
        let (dtx, durable) = watch::channel(Durable {
            before: Some(3),
            complete: false,
        });
        let (_stx, shutdown) = watch::channel(false);
        let l = PollLink {
            tx,
            durable,
            shutdown,
            ledger: Arc::new(Ledger::new(60_000, 0)),
            metrics: Arc::new(PollMetrics::default()),
        };
        let task = tokio::spawn(run_poller(
            Fixed {
                navs: vec![("IE00B03HD191", "2026-11-21")],
            },
            cfg(&path, 1),
            l,
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !path.exists(),
            "fed at 7, durable only before 3: not saved yet"
        );
        dtx.send(Durable {
            before: Some(8),
            complete: false,
        })
        .expect("send");
        task.await.expect("join").expect("run");
        assert!(PollState::load(&path)
            .expect("state")
            .seen
            .contains_key("fund|IE00B03HD191|2026-11-21"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
