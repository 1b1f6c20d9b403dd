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

/// Every record but the forming-candle snapshots, sorted: forming snapshots are emitted once per
/// delivered batch, so their number follows batch boundaries (as `--batch-size` changes them on
/// one worker); every final record must not.
fn settled(paths: &[std::path::PathBuf]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| !l.contains("\"is_final\":false"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_unstable();
    out
}

/// The events a run reported feeding (its summary line on standard error).
fn events_fed(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find(|l| l.contains(" events in "))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no event count in {line}"))
}

/// A replay of 12 symbols (plus late trades, repeats and damaged lines) on one worker, on two
/// and three workers, and on two processes of two workers: every worker reads the file and
/// feeds the symbols it owns, and the records are the same, byte for byte.
#[test]
fn every_worker_ingests_and_the_records_are_the_same_on_every_layout() {
    let exe = env!("CARGO_BIN_EXE_cryptoflow");
    let dir = std::env::temp_dir().join(format!("cf-layouts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let generated = crate::support::generate(
        &dir.join("g12.jsonl"),
        &["--symbols", "12", "--trades", "30000", "--step-ms", "7"],
    );
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binance/trades.jsonl");
    let replay = |extra: &[&str], out: &Path| {
        let mut c = Command::new(exe);
        c.arg("replay")
            .arg(&fixture)
            .arg(&generated)
            .arg("--quiet")
            .args(extra)
            .arg("--jsonl")
            .arg(out);
        c
    };
    let mut runs = Vec::new();
    for workers in ["1", "2", "3"] {
        let out = dir.join(format!("w{workers}.jsonl"));
        let o = replay(&["--workers", workers], &out).output().unwrap();
        assert!(o.status.success(), "{workers} workers");
        assert_eq!(events_fed(&o.stderr), 33_001, "{workers} workers");
        runs.push((format!("{workers} workers"), settled(&[out])));
    }
    let hostfile = crate::support::cluster_hostfile(&dir, 2);
    let spawn = |i: usize| {
        let i = i.to_string();
        let args = [
            "--workers",
            "2",
            "--processes",
            "2",
            "--process",
            &i,
            "--hostfile",
            hostfile.to_str().unwrap(),
        ];
        replay(&args, &dir.join(format!("p{i}.jsonl")))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let p1 = spawn(1);
    let p0 = spawn(0);
    let (o0, o1) = (
        p0.wait_with_output().unwrap(),
        p1.wait_with_output().unwrap(),
    );
    assert!(o0.status.success() && o1.status.success());
    // Process 1 ingests its own symbols: it is no longer only a consumer of process 0's.
    let (e0, e1) = (events_fed(&o0.stderr), events_fed(&o1.stderr));
    assert!(e0 > 0 && e1 > 0, "events fed per process: {e0}, {e1}");
    assert_eq!(e0 + e1, 33_001);
    runs.push((
        "2 processes of 2 workers".into(),
        settled(&[dir.join("p0.jsonl"), dir.join("p1.jsonl")]),
    ));
    let (_, one) = &runs[0];
    assert!(one.len() > 20_000, "{}", one.len());
    assert!(one.iter().any(|l| l.starts_with("{\"type\":\"late\"")));
    for (name, records) in &runs[1..] {
        assert_eq!(records.len(), one.len(), "{name}");
        if let Some((a, b)) = one.iter().zip(records).find(|(a, b)| a != b) {
            panic!("{name} differs from one worker:\n{a}\n{b}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
