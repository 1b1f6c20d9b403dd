//! `cryptoflow bench --baseline` and `--compare`: the single-thread reference loop and the
//! pipeline agree on trades, whales and `ma_sum`, and both equal the independent Python
//! reference of the fixture (`tests/reference/pipeline_reference.py`).

use std::path::{Path, PathBuf};

use cryptoflow::bench::{
    baseline, baseline_reader, bench, check_agreement, compare, median, BenchOptions, BenchResult,
    Checksum,
};
use cryptoflow::config::Config;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binance/trades.jsonl")
}

/// The embedded defaults (no file, no environment): `[whales]` as in `dataflows/default.toml`.
fn defaults(workers: usize) -> Config {
    let mut cfg = Config::load(None, std::iter::empty()).unwrap();
    cfg.pipeline.workers = workers;
    cfg
}

/// (trades, whales, ma_sum) of the fixture from the Python reference.
fn expected() -> (u64, u64, f64) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binance/trades.expected.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let trades = v["trades"].as_array().unwrap();
    let whales = trades
        .iter()
        .filter(|t| t["is_whale"].as_bool().unwrap())
        .count();
    let ma_sum: f64 = trades
        .iter()
        .map(|t| {
            t["moving_average"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        })
        .sum();
    (trades.len() as u64, whales as u64, ma_sum)
}

fn pipeline(path: &Path, workers: usize) -> BenchResult {
    bench(
        defaults(workers),
        &BenchOptions {
            input: path.to_path_buf(),
            postgres: None,
            rate: None,
            sink: None,
            kafka_source: None,
        },
    )
    .unwrap()
}

fn assert_matches(r: &BenchResult, (trades, whales, ma_sum): (u64, u64, f64)) {
    assert_eq!(r.trades, trades, "{}", r.line());
    assert_eq!(r.whales, whales, "{}", r.line());
    assert!(
        (r.ma_sum - ma_sum).abs() < 1e-4,
        "{}: reference ma_sum {ma_sum:.6}",
        r.line()
    );
}

/// A temporary file that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "cryptoflow-bench-{}-{}-{name}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_reference_has_what_the_fixture_notes_say() {
    // 3,000 generated trades (the truncated frame, the NaN trade, the subscribe response and
    // the kline are not trades); the value the RESULT line prints for it.
    let (trades, whales, ma_sum) = expected();
    assert_eq!(trades, 3000);
    assert_eq!(whales, 54);
    assert_eq!(format!("{ma_sum:.4}"), "45767754.9428");
}

#[test]
fn baseline_equals_the_reference() {
    let r = baseline(&fixture(), &defaults(1).analytics()).unwrap();
    assert_eq!(r.mode, "baseline");
    assert_matches(&r, expected());
    assert!(r
        .line()
        .starts_with("RESULT peer=rust mode=baseline n=3000 "));
    assert!(r.line().ends_with(" whales=54 ma_sum=45767754.9428"));
}

#[test]
fn baseline_and_pipeline_agree_on_1_and_2_workers() {
    let b = baseline(&fixture(), &defaults(1).analytics()).unwrap();
    for workers in [1, 2] {
        let p = pipeline(&fixture(), workers);
        assert_eq!(p.mode, "none");
        assert_matches(&p, expected());
        check_agreement(&b, &p).unwrap();
    }
}

#[test]
fn compare_runs_both_sides_and_checks_every_run() {
    let mut seen = Vec::new();
    let c = compare(defaults(1), &fixture(), 2, |phase, r| {
        seen.push((phase.to_string(), r.mode.clone()))
    })
    .unwrap();
    let modes: Vec<(&str, &str)> = seen.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(
        modes,
        [
            ("warm-up", "baseline"),
            ("warm-up", "none"),
            ("run 1/2", "baseline"),
            ("run 1/2", "none"),
            ("run 2/2", "baseline"),
            ("run 2/2", "none"),
        ]
    );
    assert_eq!((c.baseline.len(), c.pipeline.len(), c.workers), (2, 2, 1));
    let line = c.line();
    assert!(
        line.starts_with(
            "COMPARE peer=rust runs=2 workers=1 n=3000 whales=54 ma_sum=45767754.9428 "
        ),
        "{line}"
    );
    assert!(line.contains(" ratio="), "{line}");
}

#[test]
fn compare_fails_when_the_sides_disagree() {
    // Every trade twice: the pipeline drops the repeats, the baseline does not look for them.
    let text = std::fs::read_to_string(fixture()).unwrap();
    let twice = TempFile::new("twice.jsonl", &format!("{text}{text}"));
    let err = compare(defaults(1), &twice.0, 1, |_, _| {}).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("disagree") && msg.contains("baseline n=6000") && msg.contains("n=3000"),
        "{msg}"
    );
    assert!(compare(defaults(1), &fixture(), 0, |_, _| {}).is_err());
}

#[test]
fn whale_thresholds_follow_the_quote_asset_on_both_sides() {
    // default.toml: 100,000 in the quote currency, BTC 2, ETH 40, EUR 90,000.
    let lines = [
        // 0.05 × 40 = 2 BTC: a whale; 0.05 × 39.9 = 1.995 BTC: not.
        r#"{"e":"trade","E":1,"s":"ETHBTC","t":1,"p":"0.05","q":"40","T":1,"m":false,"M":true}"#,
        r#"{"e":"trade","E":2,"s":"ETHBTC","t":2,"p":"0.05","q":"39.9","T":2,"m":false,"M":true}"#,
        // 45,000 × 2 = 90,000 EUR: a whale.
        r#"{"e":"trade","E":3,"s":"BTCEUR","t":1,"p":"45000","q":"2","T":3,"m":true,"M":true}"#,
        // 45,000 × 2 = 90,000 USDT: not (100,000).
        r#"{"e":"trade","E":4,"s":"BTCUSDT","t":1,"p":"45000","q":"2","T":4,"m":true,"M":true}"#,
        // 50,000 × 2 = 100,000 USDT: a whale.
        r#"{"e":"trade","E":5,"s":"BTCUSDT","t":2,"p":"50000","q":"2","T":5,"m":true,"M":true}"#,
    ];
    let text = lines.join("\n") + "\n";
    let file = TempFile::new("quotes.jsonl", &text);
    let b = baseline_reader(&mut text.as_bytes(), &defaults(1).analytics()).unwrap();
    // Averages: 0.05, 0.05, 45000, 45000, 47500.
    let want = (5, 3, 0.05 + 0.05 + 45000.0 + 45000.0 + 47500.0);
    assert_matches(&b, want);
    let p = pipeline(&file.0, 1);
    assert_matches(&p, want);
    check_agreement(&b, &p).unwrap();
}

#[test]
fn the_sma_window_slides_over_the_last_20_prices() {
    // Prices 1..=25 of one symbol: averages 1, 1.5, … 10.5 while the window fills (i / 2 + 0.5),
    // then the mean of the last 20 (i − 9.5).
    let text: String = (1..=25)
        .map(|i| {
            format!(
                r#"{{"e":"trade","E":{i},"s":"BTCUSDT","t":{i},"p":"{i}","q":"1","T":{i},"m":true,"M":true}}"#
            ) + "\n"
        })
        .collect();
    let want: f64 = (1..=25)
        .map(|i| {
            let i = f64::from(i);
            if i <= 20.0 {
                (i + 1.0) / 2.0
            } else {
                i - 9.5
            }
        })
        .sum();
    let b = baseline_reader(&mut text.as_bytes(), &defaults(1).analytics()).unwrap();
    assert_matches(&b, (25, 0, want));
    let file = TempFile::new("window.jsonl", &text);
    assert_matches(&pipeline(&file.0, 1), (25, 0, want));
}

#[test]
fn the_checksum_does_not_depend_on_the_order() {
    let mut a = Checksum::default();
    for x in [1e16, 1.0, -1e16] {
        a.add(x);
    }
    // A plain f64 sum gives 0 here.
    assert_eq!(a.value(), 1.0);
    let mut b = Checksum::default();
    for x in [1.0, 1e16, -1e16] {
        b.add(x);
    }
    assert_eq!(b.value(), 1.0);
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert!(median(&[]).is_nan());
}
