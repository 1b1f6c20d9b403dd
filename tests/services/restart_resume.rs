//! `cryptoflow run` against a local fake Binance (WebSocket + REST) that keeps trading:
//! - killed with SIGKILL and started again, it resumes from its cursor in PostgreSQL and refills
//!   the outage from REST;
//! - with the connection dropped at random points during 100,000 trades, every hole is refilled;
//!
//! and in both cases the trades table ends with every id exactly once.

use crate::support as common;

use std::time::{Duration, Instant};

use common::exchange::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_loses_nothing() {
    let _heavy = common::heavy().await;
    let url = fresh_database("restart").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let ex = Exchange::new(500.0, u64::MAX, None);
    let env = start_exchange(&ex).await;
    let spawn = |duration: &str| spawn_run(&env, &url, duration);

    // First run: wait until it stored a good number of trades, then SIGKILL it.
    let mut first = spawn("60");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (n, _, _) = count_and_range(&url).await;
        if n >= 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "first run stored only {n} trades"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (_, first_id, killed_at) = count_and_range(&url).await;

    // The exchange keeps trading during the outage.
    let outage = Duration::from_secs(3);
    tokio::time::sleep(outage).await;
    let traded_during_outage = ex.produced() as i64 - killed_at;
    assert!(traded_during_outage > 1000, "{traded_during_outage}");

    // Second run: resumes from the cursor and refills.
    let target = ex.produced() as i64 + 500;
    let second = spawn("6");
    let out = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "second run failed");
    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!(lo, first_id);
    assert!(hi >= target, "second run reached {hi}, wanted {target}");
    assert_eq!(
        n,
        hi - lo + 1,
        "every id between {lo} and {hi} exactly once"
    );

    let c = pg_client(&url).await;
    let restart = gap_rows(&url, "restart").await;
    assert_eq!(restart.len(), 1, "{restart:?}");
    assert!(restart[0].2, "restart gap refilled");
    assert!(
        restart[0].1 - restart[0].0 + 1 >= traded_during_outage,
        "{restart:?}"
    );
    let open: i64 = c
        .query_one("SELECT count(*) FROM open_gaps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
    assert_eq!(btc_trade_cursor(&url).await, hi);
    // The ledger of the second run: the restart gap refilled, nothing unrefillable.
    let q = c
        .query_one(
            "SELECT trades, gaps_detected, gaps_refilled, ids_refilled, ids_unrefillable, stale
             FROM data_quality_latest WHERE source = 'binance' AND symbol = 'BTCUSDT'",
            &[],
        )
        .await
        .unwrap();
    let (trades, detected, refilled, ids_refilled, unrefillable, stale): (
        i64,
        i64,
        i64,
        i64,
        i64,
        bool,
    ) = (q.get(0), q.get(1), q.get(2), q.get(3), q.get(4), q.get(5));
    assert!(
        trades > 0 && detected >= 1 && refilled >= 1,
        "{trades} {detected} {refilled}"
    );
    assert!(ids_refilled >= traded_during_outage, "{ids_refilled}");
    assert_eq!((unrefillable, stale), (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_drops_during_100k_trades_lose_nothing() {
    let _heavy = common::heavy().await;
    const N: u64 = 100_000;
    let url = fresh_database("drops").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    // 10,000 trades/s; connections drop at random points until id 100,000, then trading goes on
    // (a hole is only seen when a later id arrives, as on the real exchange).
    let ex = Exchange::new(10_000.0, N, Some(7));
    let mut env = start_exchange(&ex).await;
    // This test is about drops, not the budget (tested in gap_refill): give the refill room.
    env.push((
        "CRYPTOFLOW__BINANCE__REST_WEIGHT_BUDGET_PER_MINUTE".into(),
        "100000".into(),
    ));
    let run = spawn_run(&env, &url, "24");
    let out = tokio::task::spawn_blocking(move || run.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!(lo, 1);
    assert!(hi as u64 >= N, "reached id {hi} only");
    assert_eq!(n, hi, "every id from 1 to {hi} exactly once");
    let drops = ex.connections.load(std::sync::atomic::Ordering::SeqCst) - 1;
    // Each connection is cut after 2,000–8,000 frames it carried, so how many cuts fall before
    // id 100,000 depends on how fast the client reads: 5–20 on an idle box, 2–3 seen on a box
    // at load 6–8. What is asserted is that drops happened and every id arrived exactly once.
    assert!(drops >= 2, "the exchange dropped {drops} connections");
    let c = pg_client(&url).await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let reconnects = count("SELECT count(*) FROM gaps WHERE reason = 'reconnect'").await;
    let refilled =
        count("SELECT count(*) FROM gaps WHERE reason = 'id_hole' AND resolved_at IS NOT NULL")
            .await;
    let open = count("SELECT count(*) FROM open_gaps").await;
    assert_eq!(reconnects as u64, drops);
    assert!(
        refilled >= 1 && refilled as u64 <= drops,
        "{refilled} refilled holes for {drops} drops"
    );
    assert_eq!(open, 0);
}
