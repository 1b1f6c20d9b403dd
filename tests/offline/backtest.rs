//! `cryptoflow backtest`: deterministic, no look-ahead, one order per signal, every journal
//! event counted in the report, and bad settings refused clearly.

use std::path::{Path, PathBuf};

use crate::support::{cryptoflow as bin, run_ok};

/// 40,000 generated trades of 2 symbols, 500 ms apart (5.5 hours: 333 one-minute candles each).
fn generated(dir: &Path) -> PathBuf {
    crate::support::generate(
        &dir.join("gen.jsonl"),
        &["--symbols", "2", "--trades", "40000", "--step-ms", "500"],
    )
}

fn backtest(input: &Path, dir: &Path, tag: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let report = dir.join(format!("{tag}.json"));
    let journal = dir.join(format!("{tag}.jsonl"));
    let svg = dir.join(format!("{tag}.svg"));
    run_ok(
        bin()
            .arg("backtest")
            .arg(input)
            .arg("--out")
            .arg(&report)
            .arg("--journal")
            .arg(&journal)
            .arg("--svg")
            .arg(&svg),
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "an equity curve"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let journal = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (report, journal)
}

fn count(journal: &[serde_json::Value], event: &str) -> u64 {
    journal.iter().filter(|e| e["event"] == event).count() as u64
}

#[test]
fn a_backtest_is_deterministic_and_its_journal_adds_up() {
    let dir = tempfile_dir("backtest");
    let input = generated(&dir);
    let (a, journal) = backtest(&input, &dir, "a");
    let (b, journal_b) = backtest(&input, &dir, "b");
    assert_eq!(a, b, "the same input gives the same report");
    assert_eq!(journal, journal_b, "and the same journal");

    assert_eq!(a["trades"], 40_000);
    assert_eq!(a["candles"], 666, "333 final one-minute candles per symbol");
    assert!(
        a["orders"].as_u64().unwrap() > 10,
        "the strategies trade: {a}"
    );
    assert_eq!(a["signals"].as_u64().unwrap(), count(&journal, "signal"));
    assert_eq!(a["orders"].as_u64().unwrap(), count(&journal, "accepted"));
    assert_eq!(a["fills"].as_u64().unwrap(), count(&journal, "filled"));
    assert_eq!(a["skipped"].as_u64().unwrap(), count(&journal, "skipped"));
    let rejected: u64 = a["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rejected, count(&journal, "rejected"));

    // One order per intent id, and every fill after its order (no look-ahead) at a positive fee.
    let mut accepted = std::collections::HashMap::new();
    for e in &journal {
        match e["event"].as_str().unwrap() {
            "accepted" => {
                let id = e["intent"]["id"].as_str().unwrap().to_string();
                assert!(id.len() <= 36, "a Binance client order id");
                assert!(
                    accepted.insert(id, e["at"].as_i64().unwrap()).is_none(),
                    "once"
                );
            }
            "filled" => {
                let f = &e["fill"];
                let at = accepted[f["intent_id"].as_str().unwrap()];
                assert!(
                    f["ts"].as_i64().unwrap() >= at,
                    "a fill after its order: {e}"
                );
                let fee: f64 = f["fee"].as_str().unwrap().parse().unwrap();
                assert!(fee > 0.0);
            }
            _ => {}
        }
    }
    let win_rate = a["win_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&win_rate));
    assert!(a["max_drawdown_pct"].as_f64().unwrap() >= 0.0);
}

#[test]
fn bad_strategies_and_files_are_clear_errors() {
    let dir = tempfile_dir("backtest-bad");
    let input = generated(&dir);
    let out = bin()
        .args(["backtest", "--strategy", "moon:1h"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ma_cross, rsi_bands or bollinger_breakout"),
        "{err}"
    );
    let out = bin()
        .args(["backtest", "--strategy", "rsi_bands:7x"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = bin()
        .args(["backtest", "/nonexistent/file.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/file.jsonl"), "{err}");

    // An empty file has nothing to backtest.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = bin().arg("backtest").arg(&empty).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no trades in"), "{err}");

    // An output named like the input is refused before anything is written.
    let before = std::fs::metadata(&input).unwrap().len();
    for flag in ["--journal", "--out", "--svg"] {
        let out = bin()
            .arg("backtest")
            .arg(&input)
            .arg(flag)
            .arg(&input)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is an input file"), "{flag}: {err}");
        assert_eq!(
            std::fs::metadata(&input).unwrap().len(),
            before,
            "{flag}: input intact"
        );
    }
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cryptoflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
