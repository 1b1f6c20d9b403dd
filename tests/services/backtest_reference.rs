//! A backtest's money agrees with Python `decimal`: the positions, realised PnL and fees
//! recomputed from its journal's fills with the documented average-cost rule
//! (`tests/reference/backtest_check.py`) match the report, to the 28 significant digits of
//! `rust_decimal` (Python computes with 60).

use std::process::Command;

use rust_decimal::Decimal;

use crate::support::service_env;

fn close(ours: &str, reference: &str) -> bool {
    let a: Decimal = ours.parse().unwrap();
    // Python prints up to 60 digits: cut to what Decimal holds before parsing.
    let r: Decimal = Decimal::from_scientific(reference)
        .or_else(|_| reference[..reference.len().min(30)].parse())
        .unwrap();
    let scale = a.abs().max(r.abs()).max(Decimal::ONE);
    (a - r).abs() <= scale * Decimal::new(1, 24)
}

#[test]
fn backtest_pnl_and_fees_match_python_decimal() {
    let python = service_env("CRYPTOFLOW_TEST_PYTHON");
    let dir = std::env::temp_dir().join(format!("cryptoflow-btref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("gen.jsonl");
    let bin = env!("CARGO_BIN_EXE_cryptoflow");
    // Low prices too: seed 7 and 5 symbols, so several price scales are traded.
    let gen = Command::new(bin)
        .args([
            "generate",
            "--symbols",
            "5",
            "--trades",
            "100000",
            "--step-ms",
            "300",
            "--seed",
            "7",
            "-o",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let report = dir.join("r.json");
    let journal = dir.join("j.jsonl");
    let bt = Command::new(bin)
        .env_remove("CRYPTOFLOW_CONFIG")
        .args([
            "backtest",
            "--strategy",
            "rsi_bands:1m",
            "--strategy",
            "ma_cross:1m",
        ])
        .arg(&input)
        .arg("--out")
        .arg(&report)
        .arg("--journal")
        .arg(&journal)
        .output()
        .unwrap();
    assert!(
        bt.status.success(),
        "{}",
        String::from_utf8_lossy(&bt.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(python)
        .arg(format!("{root}/tests/reference/backtest_check.py"))
        .arg(&journal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["fills"].as_u64().unwrap() > 20, "{report}");
    assert_eq!(report["fills"], reference["fills"]);
    for field in ["realised", "fees"] {
        let (ours, theirs) = (
            report[field].as_str().unwrap(),
            reference[field].as_str().unwrap(),
        );
        assert!(
            close(ours, theirs),
            "{field}: ours {ours}, Python decimal {theirs}"
        );
    }
    // Realised plus unrealised is the PnL; with nothing held at the end they are equal.
    let held = reference["positions"]
        .as_object()
        .unwrap()
        .values()
        .any(|q| q.as_str().unwrap().parse::<f64>().unwrap() != 0.0);
    if !held {
        assert_eq!(report["pnl"], report["realised"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
