//! Two processes on timely's own cluster engine give the same records as one worker.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Trades (symbol, id, moving average) and final candles from a JSON-lines output.
fn digest(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str().unwrap() {
            "trade" => {
                out.insert(format!(
                    "T {} {} {}",
                    v["trade"]["symbol"], v["trade"]["trade_id"], v["moving_average"]
                ));
            }
            "candle" if v["is_final"].as_bool().unwrap() => {
                out.insert(format!(
                    "C {} {} {} {} {}",
                    v["symbol"], v["open_time"], v["close"], v["volume"], v["trade_count"]
                ));
            }
            "late" => {
                out.insert(format!(
                    "L {} {}",
                    v["trade"]["symbol"], v["trade"]["trade_id"]
                ));
            }
            _ => {}
        }
    }
    out
}

#[test]
fn two_processes_match_one_worker() {
    let exe = env!("CARGO_BIN_EXE_cryptoflow");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binance/trades.jsonl");
    let dir = std::env::temp_dir().join(format!("cf-mp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = crate::support::cluster_hostfile(&dir, 2);

    let single = dir.join("single.jsonl");
    let status = Command::new(exe)
        .arg("replay")
        .arg(&input)
        .args(["--quiet", "--jsonl"])
        .arg(&single)
        .status()
        .unwrap();
    assert!(status.success());

    let spawn = |i: usize| {
        Command::new(exe)
            .arg("replay")
            .arg(&input)
            .args([
                "--quiet",
                "--processes",
                "2",
                "--process",
                &i.to_string(),
                "--hostfile",
            ])
            .arg(&hostfile)
            .arg("--jsonl")
            .arg(dir.join(format!("p{i}.jsonl")))
            .spawn()
            .unwrap()
    };
    let mut p1 = spawn(1);
    let mut p0 = spawn(0);
    assert!(p0.wait().unwrap().success());
    assert!(p1.wait().unwrap().success());

    let one = digest(&single);
    let a = digest(&dir.join("p0.jsonl"));
    let b = digest(&dir.join("p1.jsonl"));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both processes own some symbols"
    );
    assert!(a.is_disjoint(&b));
    let both: BTreeSet<String> = a.union(&b).cloned().collect();
    assert_eq!(one.iter().filter(|s| s.starts_with("T ")).count(), 3000);
    assert_eq!(both, one);
}

/// A two-process replay with a small in-flight bound: the feeding process counts the trades the
/// other process's sink takes too, so the run neither freezes nor loses a trade.
#[test]
fn two_processes_with_a_small_in_flight_bound_finish() {
    const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"];
    const TRADES: u64 = 60_000;
    let exe = env!("CARGO_BIN_EXE_cryptoflow");
    let dir = std::env::temp_dir().join(format!("cf-mp-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 60 000 trades, 10 ms apart, round robin over the symbols: ids 1..=15 000 per symbol.
    let input = dir.join("trades.jsonl");
    let mut text = String::new();
    for i in 0..TRADES {
        let s = SYMBOLS[(i % 4) as usize];
        let ts = 1_700_000_000_000 + i as i64 * 10;
        text.push_str(&format!(
            "{{\"e\":\"trade\",\"E\":{ts},\"s\":\"{s}\",\"t\":{},\"p\":\"{}.{:02}\",\"q\":\"0.5\",\"T\":{ts},\"m\":{},\"M\":true}}\n",
            i / 4 + 1,
            100 + i % 50,
            i % 100,
            i % 3 == 0
        ));
    }
    std::fs::write(&input, text).unwrap();
    let config = dir.join("bound.toml");
    std::fs::write(&config, "[pipeline]\nmax_in_flight = 5000\n").unwrap();
    let hostfile = crate::support::cluster_hostfile(&dir, 2);
    let spawn = |i: usize| {
        Command::new(exe)
            .arg("replay")
            .arg(&input)
            .args(["--quiet", "--config"])
            .arg(&config)
            .args([
                "--processes",
                "2",
                "--process",
                &i.to_string(),
                "--hostfile",
            ])
            .arg(&hostfile)
            .arg("--jsonl")
            .arg(dir.join(format!("p{i}.jsonl")))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut procs = [spawn(1), spawn(0)];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut status = [None, None];
    while status.iter().any(Option::is_none) {
        for (p, s) in procs.iter_mut().zip(status.iter_mut()) {
            if s.is_none() {
                *s = p.try_wait().unwrap();
            }
        }
        if std::time::Instant::now() >= deadline {
            for p in procs.iter_mut() {
                let _ = p.kill();
                let _ = p.wait();
            }
            panic!("the run froze: exits after 180 s {status:?} (process 1, process 0)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        status.iter().all(|s| s.is_some_and(|s| s.success())),
        "exits (process 1, process 0): {status:?}"
    );
    let trades = |i: usize| -> BTreeSet<String> {
        digest(&dir.join(format!("p{i}.jsonl")))
            .into_iter()
            .filter(|s| s.starts_with("T "))
            .collect()
    };
    let (a, b) = (trades(0), trades(1));
    assert!(!a.is_empty() && !b.is_empty(), "both processes own symbols");
    assert!(a.is_disjoint(&b));
    assert_eq!(a.len() + b.len(), TRADES as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sink of process 1 fails (its JSON-lines file is `/dev/full`): both processes stop with an
/// error, process 1 naming the sink's and process 0 naming process 1, and neither hangs.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_sink_of_process_1_fails_both_processes() {
    let exe = env!("CARGO_BIN_EXE_cryptoflow");
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binance/trades.jsonl");
    let dir = std::env::temp_dir().join(format!("cf-mp-fail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostfile = crate::support::cluster_hostfile(&dir, 2);
    let spawn = |i: usize, jsonl: &Path| {
        Command::new(exe)
            .arg("replay")
            .arg(&input)
            .args(["--quiet", "--processes", "2", "--process", &i.to_string()])
            .arg("--hostfile")
            .arg(&hostfile)
            .arg("--jsonl")
            .arg(jsonl)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let p1 = spawn(1, Path::new("/dev/full"));
    let p0 = spawn(0, &dir.join("p0.jsonl"));
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, p) in [(1, p1), (0, p0)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, p.wait_with_output().unwrap()));
        });
    }
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let (i, o) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("both processes exit within 120 s");
        out.insert(i, o);
    }
    let err = |i: usize| String::from_utf8_lossy(&out[&i].stderr).to_string();
    assert!(!out[&0].status.success() && !out[&1].status.success());
    assert!(
        err(1).contains("error: jsonl: /dev/full"),
        "process 1 names its sink:\n{}",
        err(1)
    );
    assert!(
        err(0).contains("error: a sink of process 1 failed"),
        "process 0 names process 1:\n{}",
        err(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
