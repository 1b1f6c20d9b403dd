//! A long refill under load: `cryptoflow run` against the fake exchange trading 2,000 trades/s,
//! whose WebSocket is partitioned away for 30 s (60,000 ids) while its REST API refills them at a
//! weight budget that makes the refill take over a minute; PostgreSQL is also stopped for 20 s in
//! the middle of the refill.
//!
//! Required, and measured: memory stays bounded (peak RSS), the WebSocket reader is never held up
//! (the exchange's own longest blocked send), live trades reach PostgreSQL within seconds while
//! the hole is refilled, and at the end every id is stored exactly once and every final candle
//! counts exactly the trades of its minute.

use crate::support as common;

use std::time::{Duration, Instant};

use common::exchange::*;
use common::private_pg::*;
use common::*;

fn peak_rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
}

async fn count_and_max(url: &str) -> Option<(i64, i64)> {
    let c = tokio::time::timeout(Duration::from_secs(2), pg_client_opt(url))
        .await
        .ok()??;
    let r = c
        .query_one(
            "SELECT count(*), coalesce(max(trade_id), 0) FROM trades",
            &[],
        )
        .await
        .ok()?;
    Some((r.get(0), r.get(1)))
}

async fn pg_client_opt(url: &str) -> Option<tokio_postgres::Client> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_refill_keeps_memory_bounded_and_live_trades_flowing() {
    let _heavy = common::heavy().await;
    const RATE: f64 = 2_000.0;
    const HOLE: (u64, u64) = (20_001, 80_000);
    let pg = PrivatePg::create();
    let url = pg.url();
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let mut ex = Exchange::new(RATE, 0, None);
    ex.blackout = Some(HOLE);
    let mut env = start_exchange(&ex).await;
    // historicalTrades costs 25 weight per 1,000 ids: 750 per minute refills 30,000 ids a
    // minute, so the 60,000-id hole takes about two minutes while 2,000 live trades a second go
    // on. Holds stay at their defaults.
    env.push((
        "CRYPTOFLOW__BINANCE__REST_WEIGHT_BUDGET_PER_MINUTE".into(),
        "750".into(),
    ));
    // The live source's in-memory queue holds 10,000 events rather than its default 50,000:
    // more go to the spill file. At the default the peak depends on how far the 20 s database
    // outage backs the queue up on the machine at hand (130 MB when it stays short, 166 MB when
    // it fills, ~0.7 KB per queued event); with the smaller queue the outage spills to disk on
    // any machine and the bound below checks the rest of the process.
    env.push((
        "CRYPTOFLOW__BINANCE__QUEUE_MEMORY_EVENTS".into(),
        "10000".into(),
    ));
    // Retry at most every second during the partition (the attempt limiter allows 250 per 5
    // minutes; a faster retry would exhaust it and delay the reconnect by minutes).
    env.push((
        "CRYPTOFLOW__BINANCE__RECONNECT_MAX_MS".into(),
        "1000".into(),
    ));
    // Extra settings for negative controls, e.g. LONG_REFILL_EXTRA_ENV="K1=V1;K2=V2".
    if let Ok(extra) = std::env::var("LONG_REFILL_EXTRA_ENV") {
        env.extend(
            extra
                .split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    let log_path = std::env::temp_dir().join(format!("cf-long-refill-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "run",
            "--listen",
            "off",
            "--duration",
            "400",
            "--postgres",
            &url,
        ])
        .envs(env.iter().cloned())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_tail = |path: &std::path::Path| {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        s[s.len().saturating_sub(6000)..].to_string()
    };
    let pid = child.id();

    let started = Instant::now();
    let mut peak_kb = 0u64;
    // Live lag: ids traded minus the highest id stored, in seconds of trading, sampled while the
    // hole is being refilled and the database is up.
    let mut worst_lag_s = 0f64;
    let mut samples = 0;
    let mut outage_done = false;
    let mut outage_at = None;
    let mut reconnected_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(kb) = peak_rss_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        let produced = ex.produced();
        let refilling = produced > HOLE.1 + 2 * RATE as u64;
        // Stop PostgreSQL for 20 s once the refill is well under way.
        if refilling && !outage_done && outage_at.is_none() && produced > HOLE.1 + 30 * RATE as u64
        {
            pg.stop();
            outage_at = Some(Instant::now());
            continue;
        }
        if let Some(at) = outage_at {
            if at.elapsed() >= Duration::from_secs(20) {
                pg.start();
                outage_at = None;
                outage_done = true;
            }
            continue;
        }
        if !refilling {
            continue;
        }
        // One statement: the count and the highest id of the same snapshot.
        let Some((count, max)) = count_and_max(&url).await else {
            continue;
        };
        let lag_s = (produced as f64 - max as f64) / RATE;
        // The hole is filled once every id up to the newest stored one is stored, and the newest
        // is past the hole.
        let filled = count >= max && max as u64 > HOLE.1;
        // From the reconnect after the partition on (how soon the client may reconnect is the
        // attempt limiter's business, not the pipeline's).
        if reconnected_at.is_none() && ex.connections.load(std::sync::atomic::Ordering::SeqCst) >= 2
        {
            reconnected_at = Some(Instant::now());
        }
        // Until a live trade past the hole is stored, the lag is the time since the reconnect.
        let lag_s = match reconnected_at {
            Some(at) if max as u64 <= HOLE.1 => at.elapsed().as_secs_f64(),
            _ => lag_s,
        };
        if reconnected_at.is_some() && !filled && !outage_done {
            // While the hole is refilled, live trades must still be flowing (sampled before the
            // outage; after it, the queued backlog drains first).
            samples += 1;
            worst_lag_s = worst_lag_s.max(lag_s);
        } else if filled && outage_done {
            break;
        }
        if started.elapsed() > Duration::from_secs(360) {
            let _ = child.kill();
            panic!(
                "no completion: {count} stored, max id {max}\n{}",
                log_tail(&log_path)
            );
        }
    }
    let completed = started.elapsed();
    // Let it run a little longer, then stop it (Ctrl-C) and read its summary.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    if let Some(kb) = peak_rss_kb(pid) {
        peak_kb = peak_kb.max(kb);
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let stderr = log_tail(&log_path);
    let live_line = stderr
        .lines()
        .find(|l| l.contains("live source:"))
        .unwrap_or_default()
        .to_string();
    let reader_stall_ms = ex
        .send_stall_max_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "long refill: completed after {:?}; peak RSS {} MB; worst live lag during the refill {worst_lag_s:.1} s over {samples} samples; longest blocked exchange send {reader_stall_ms} ms; {live_line}",
        completed,
        peak_kb / 1024
    );
    assert!(status.success(), "{stderr}");

    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!(lo, 1);
    assert_eq!(n, hi, "every id from 1 to {hi} exactly once");
    let c = pg_client(&url).await;
    let holes = gap_rows(&url, "id_hole").await;
    assert_eq!(holes.len(), 1, "{holes:?}");
    assert!(
        holes[0].0 == HOLE.0 as i64 && holes[0].1 >= HOLE.1 as i64 && holes[0].2,
        "{holes:?}"
    );
    // Every final candle counts exactly the stored trades of its minute (none taken for late).
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM candles c
               JOIN (SELECT date_trunc('minute', ts_exchange) AS m, count(*) AS n, sum(qty) AS v
                       FROM trades GROUP BY 1) t ON t.m = c.open_time
              WHERE c.is_final AND c.interval = '1m' AND (c.trade_count <> t.n OR c.volume <> t.v)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let finals: i64 = c
        .query_one(
            "SELECT count(*) FROM candles WHERE is_final AND interval = '1m'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows: Vec<String> = c
        .query(
            "SELECT open_time::text, interval, is_final, trade_count FROM candles ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, bool>(2),
                r.get::<_, i64>(3)
            )
        })
        .collect();
    assert!(
        finals >= 5,
        "{finals} final candles: {rows:#?}; log in {}",
        log_path.display()
    );
    assert_eq!(wrong, 0, "final candles that miss trades");

    assert!(samples >= 20, "{samples} samples during the refill");
    assert!(
        // The bound is what the process needs at any hole size: its queues, the in-flight bound
        // and the sinks' flushes (a debug build). Peak RSS varies run to run on the same code:
        // 129–171 MB on fresh-clone CI runs of this machine kind (125–138 MB before strategy
        // signals joined the pipeline). An unbounded backlog of the 60,000-id hole and the
        // 2,000 trades/s behind it (120,000–200,000 trades queued by the end, ~0.7 KB each)
        // would add 85–140 MB to the ~130 MB base.
        peak_kb <= 200 * 1024,
        "peak RSS {} MB over 200 MB",
        peak_kb / 1024
    );
    assert!(
        worst_lag_s <= 10.0,
        "live trades lagged {worst_lag_s:.1} s behind the exchange during the refill"
    );
    assert!(
        reader_stall_ms <= 2_000,
        "the exchange could not send for {reader_stall_ms} ms"
    );
    let _ = std::fs::remove_file(&log_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_long_refill_resumes_before_the_hole() {
    let _heavy = common::heavy().await;
    const RATE: f64 = 2_000.0;
    const HOLE: (u64, u64) = (10_001, 40_000);
    let url = fresh_database("crashrefill").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let mut ex = Exchange::new(RATE, 0, None);
    ex.blackout = Some(HOLE);
    let env = start_exchange(&ex).await;
    // First run: a slow refill (300 weight a minute: 12,000 ids a minute) so live trades go
    // ahead of the hole; killed once some are stored past it.
    let mut slow = env.clone();
    slow.push((
        "CRYPTOFLOW__BINANCE__REST_WEIGHT_BUDGET_PER_MINUTE".into(),
        "300".into(),
    ));
    let mut first = spawn_run(&slow, &url, "120");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (n, _, hi) = count_and_range(&url).await;
        if hi as u64 > HOLE.1 + 10_000 && n < hi {
            break;
        }
        assert!(Instant::now() < deadline, "stored {n}, max id {hi}");
    }
    first.kill().unwrap(); // SIGKILL in the middle of the refill
    first.wait().unwrap();
    let c = pg_client(&url).await;
    let open: Vec<(i64, i64)> = c
        .query(
            "SELECT from_id, to_id FROM open_gaps WHERE detail LIKE 'refilling%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        open.len() == 1 && open[0].0 == HOLE.0 as i64 && open[0].1 >= HOLE.1 as i64,
        "{open:?}"
    );

    // Second run, with room for the refill: it resumes before the hole and fills it.
    let mut fast = env.clone();
    fast.push((
        "CRYPTOFLOW__BINANCE__REST_WEIGHT_BUDGET_PER_MINUTE".into(),
        "100000".into(),
    ));
    let second = spawn_run(&fast, &url, "15");
    let out = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!(lo, 1);
    assert_eq!(n, hi, "every id from 1 to {hi} exactly once");
    let open: i64 = c
        .query_one("SELECT count(*) FROM open_gaps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "the cut-short refill's row is resolved");
}
