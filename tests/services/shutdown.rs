//! SIGTERM (what `docker stop` and a pod eviction send) drains a live run like Ctrl-C: what was
//! read is written and acknowledged, the run prints its summary and exits 0.

use crate::support as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::exchange::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_live_run_and_exits_0() {
    let url = fresh_database("sigterm").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let ex = Exchange::new(1_000.0, 0, None);
    let env = start_exchange(&ex).await;
    let child = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "run",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "120",
            "--postgres",
            &url,
        ])
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = Killed(child);
    let mut pipe = child.0.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n, _, _) = count_and_range(&url).await;
        if n >= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "stored only {n} trades");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let (_child, status) = tokio::task::spawn_blocking(move || {
        let status = child.0.wait().unwrap();
        (child, status)
    })
    .await
    .unwrap();
    let took = signalled.elapsed();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "exit status {status:?}: {stderr}");
    assert!(took < Duration::from_secs(30), "drained in {took:?}");
    assert!(stderr.contains("events in"), "{stderr}");
    // Everything read was stored: ids from 1 with no hole, and the cursor at the last one.
    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!((lo, n), (1, hi), "every id from 1 to {hi} once");
    assert_eq!(btc_trade_cursor(&url).await, hi);
}

/// A live run on two processes, the stream's symbol owned by one of them: SIGTERM to the other
/// one (which feeds nothing) stops the whole cluster, which drains and exits 0 on both, with
/// every id read stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_one_process_drains_the_whole_cluster() {
    let _heavy = heavy().await;
    let url = fresh_database("sigterm_cluster").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let ex = Exchange::new(1_000.0, 0, None);
    let env = start_exchange(&ex).await;
    let dir = std::env::temp_dir().join(format!("cf-sigterm-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = cluster_hostfile(&dir, 2);
    let btc = cryptoflow_operators::model::Symbol::new("BTCUSDT").unwrap();
    let owner = cryptoflow_operators::model::Shard::owner(&btc, 2);
    let spawn = |i: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cryptoflow"));
        c.args([
            "run",
            "--quiet",
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "120",
            "--postgres",
            &url,
        ])
        .args([
            "--processes",
            "2",
            "--process",
            &i.to_string(),
            "--hostfile",
        ])
        .arg(&hostfile)
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        Killed(c.spawn().unwrap())
    };
    let mut procs = [spawn(1), spawn(0)];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n, _, _) = count_and_range(&url).await;
        if n >= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "stored only {n} trades");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The process that does not own BTCUSDT is told to stop.
    let told = 1 - owner;
    let pid = procs[1 - told].0.id();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let signalled = Instant::now();
    let mut outcomes = Vec::new();
    for p in procs.iter_mut() {
        let mut pipe = p.0.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut s);
            s
        });
        loop {
            if let Some(status) = p.0.try_wait().unwrap() {
                outcomes.push((status, stderr.join().unwrap()));
                break;
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(60),
                "process {} did not stop within 60 s of SIGTERM to process {told}",
                p.0.id()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (status, stderr) in &outcomes {
        assert_eq!(
            status.code(),
            Some(0),
            "exit status {status:?} (SIGTERM to process {told}): {stderr}\nboth: {outcomes:?}"
        );
        assert!(stderr.contains("events in"), "{stderr}");
    }
    // Everything read was stored: ids from 1 with no hole, and the cursor at the last one.
    let (n, lo, hi) = count_and_range(&url).await;
    assert_eq!((lo, n), (1, hi), "every id from 1 to {hi} once");
    assert!(hi >= 2_000);
    assert_eq!(btc_trade_cursor(&url).await, hi);
    let _ = std::fs::remove_dir_all(&dir);
}
