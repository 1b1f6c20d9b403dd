//! A backtest's money agrees with Python `decimal`: the positions, realised PnL and fees
//! recomputed from its journal's fills with the documented average-cost rule
//! (`tests/reference/backtest_check.py`) match the report to 10^-24 of the traded notional
//! (`rust_decimal` rounds each operation at 28 significant digits, Python computes with 60). Checked at the generator's price scales
//! (0.62 to 43,000) and again with every price divided by 10^7 by Python (PEPE-like prices of
//! 10^-8 to 10^-3), where a market order needs many trades to fill.

use std::path::Path;
use std::process::Command;

use rust_decimal::Decimal;

use crate::support::{cryptoflow, generate, run_ok, service_env};

/// Whether `ours` equals the reference to `rust_decimal`'s precision: each of the journal's
/// operations rounds at 28 significant digits of its own operands (notionals, not the small
/// total), so the bound is 10^-24 of the traded notional (`traded`).
fn close(ours: &str, reference: &str, traded: Decimal) -> bool {
    let a: Decimal = ours.parse().unwrap();
    // Python prints up to 60 digits: cut to what Decimal holds before parsing.
    let r: Decimal = Decimal::from_scientific(reference)
        .or_else(|_| reference[..reference.len().min(30)].parse())
        .unwrap();
    let scale = traded.max(a.abs()).max(r.abs()).max(Decimal::ONE);
    (a - r).abs() <= scale * Decimal::new(1, 24)
}

fn python(args: &[&str]) -> Vec<u8> {
    run_ok(Command::new(service_env("CRYPTOFLOW_TEST_PYTHON")).args(args)).stdout
}

/// Backtests `input` and compares its money with the Python recomputation.
fn check(input: &Path, dir: &Path, tag: &str) -> serde_json::Value {
    let report = dir.join(format!("{tag}.json"));
    let journal = dir.join(format!("{tag}.jsonl"));
    run_ok(
        cryptoflow()
            .args([
                "backtest",
                "--strategy",
                "rsi_bands:1m",
                "--strategy",
                "ma_cross:1m",
            ])
            .arg(input)
            .arg("--out")
            .arg(&report)
            .arg("--journal")
            .arg(&journal),
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/tests/reference/backtest_check.py");
    let reference: serde_json::Value =
        serde_json::from_slice(&python(&[&script, journal.to_str().unwrap()])).unwrap();
    assert!(report["fills"].as_u64().unwrap() > 20, "{tag}: {report}");
    assert_eq!(report["fills"], reference["fills"], "{tag}");
    // Fees are 0.1 % of the notional: the traded notional is 1,000 × the fees.
    let fees = reference["fees"].as_str().unwrap();
    let traded = fees.get(..28).unwrap_or(fees).parse::<Decimal>().unwrap() * Decimal::ONE_THOUSAND;
    for field in ["realised", "fees"] {
        let (ours, theirs) = (
            report[field].as_str().unwrap(),
            reference[field].as_str().unwrap(),
        );
        assert!(
            close(ours, theirs, traded),
            "{tag} {field}: ours {ours}, Python decimal {theirs}"
        );
    }
    // Realised plus unrealised is the PnL; with nothing held at the end they are equal.
    let held = reference["positions"]
        .as_object()
        .unwrap()
        .values()
        .any(|q| q.as_str().unwrap().parse::<f64>().unwrap() != 0.0);
    if !held {
        assert_eq!(report["pnl"], report["realised"], "{tag}");
    }
    report
}

#[test]
fn backtest_pnl_and_fees_match_python_decimal_at_every_price_scale() {
    let dir = std::env::temp_dir().join(format!("cryptoflow-btref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = generate(
        &dir.join("gen.jsonl"),
        &[
            "--symbols",
            "5",
            "--trades",
            "100000",
            "--step-ms",
            "300",
            "--seed",
            "7",
        ],
    );
    let normal = check(&input, &dir, "normal");

    // The same tape with every price divided by 10^7, exactly (Python decimal).
    let tiny = dir.join("tiny-prices.jsonl");
    let rescale = format!(
        "import json, sys\nfrom decimal import Decimal\n\
         with open({src:?}) as f, open({dst:?}, 'w') as o:\n\
         \x20   for line in f:\n\
         \x20       d = json.loads(line)\n\
         \x20       d['p'] = format(Decimal(d['p']).scaleb(-7), 'f')\n\
         \x20       o.write(json.dumps(d) + '\\n')\n",
        src = input.to_str().unwrap(),
        dst = tiny.to_str().unwrap(),
    );
    python(&["-c", &rescale]);
    let tiny_report = check(&tiny, &dir, "tiny");
    // The strategies see the same shapes at 10^-7 the price: the same signals.
    assert_eq!(tiny_report["signals"], normal["signals"]);
    let _ = std::fs::remove_dir_all(&dir);
}
