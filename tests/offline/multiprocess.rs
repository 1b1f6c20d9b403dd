//! Two processes on timely's own cluster engine give the same records as one worker.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let hostfile = dir.join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();

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
