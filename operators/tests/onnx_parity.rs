//! The transformer scorer against Python onnxruntime on the same model file (cargo feature
//! `sentiment-onnx`; the model directory and ONNX Runtime come from `scripts/onnx-model.sh`,
//! which `scripts/test.sh` runs when the packages can be fetched).
//!
//! Every probability and the compound equal the Python reference
//! (`tests/reference/onnx_reference.py`: the `tokenizers` package + onnxruntime + numpy) within
//! 1e-6 on the 260 sentiment texts and the 292 labelled headlines; the held-out accuracy of the
//! trained head on the labelled set is printed.
#![cfg(feature = "sentiment-onnx")]

use std::path::{Path, PathBuf};

use cryptoflow_operators::sentiment::onnx::{OnnxOptions, OnnxSentiment};
use cryptoflow_operators::sentiment::{evaluate, parse_labelled, SentimentModel};

fn setup() -> Option<(PathBuf, String)> {
    let dir = std::env::var("CRYPTOFLOW_TEST_ONNX_DIR").ok()?;
    let py = std::env::var("CRYPTOFLOW_TEST_ONNX_PYTHON").ok()?;
    Some((PathBuf::from(dir), py))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sentiment")
}

#[test]
fn scores_equal_python_onnxruntime() {
    let Some((dir, py)) = setup() else {
        eprintln!("skipped: run `eval \"$(bash scripts/onnx-model.sh)\"` first");
        return;
    };
    let model = OnnxSentiment::load(&dir, &OnnxOptions::default()).expect("load the model");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(py)
        .arg(repo.join("tests/reference/onnx_reference.py"))
        .arg(&dir)
        .arg(fixtures().join("texts.txt"))
        .arg(fixtures().join("crypto_labelled.tsv"))
        .output()
        .expect("run the Python reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let golden = String::from_utf8(out.stdout).unwrap();
    let mut n = 0;
    let mut worst = 0.0f64;
    for line in golden.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line}");
        let text = f[0].replace("\\n", "\n");
        let want: Vec<f64> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
        let got = model.score(&text);
        for (g, w) in [got.neg, got.neu, got.pos, got.compound].iter().zip(&want) {
            let d = (g - w).abs();
            worst = worst.max(d);
            assert!(d <= 1e-6, "{text:?}: got {got:?}, Python {want:?}");
        }
        n += 1;
    }
    assert!(n >= 550, "{n} texts");
    println!("{n} texts, largest difference from Python onnxruntime {worst:e}");
    let texts: Vec<String> = golden
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").replace("\\n", "\n"))
        .collect();
    let start = std::time::Instant::now();
    for t in &texts {
        std::hint::black_box(model.score(t));
    }
    println!(
        "{:.0} texts/s on one thread (this build's profile)",
        texts.len() as f64 / start.elapsed().as_secs_f64()
    );

    let labelled =
        parse_labelled(&std::fs::read_to_string(fixtures().join("crypto_labelled.tsv")).unwrap())
            .unwrap();
    let held_out: Vec<_> = labelled.iter().skip(1).step_by(2).cloned().collect();
    let eval = evaluate(&model, &held_out);
    println!("{}: held-out {eval:?}", model.name());
    assert!(eval.accuracy > 0.6, "{eval:?}");
}
