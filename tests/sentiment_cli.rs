//! `cryptoflow sentiment-eval` scores the labelled headlines with the configured model, and a
//! bad model name or overlay file is a clear error, not a panic.

use std::process::Command;

fn eval(env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(["sentiment-eval", "--labelled"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sentiment/crypto_labelled.tsv"
        ))
        .env_remove("CRYPTOFLOW_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_configured_model_is_evaluated_and_bad_settings_are_explained() {
    let (ok, out, err) = eval(&[]);
    assert!(ok, "{err}");
    assert!(out.starts_with("model=vader-3.3.2 texts=292 "), "{out}");
    let (ok, out, err) = eval(&[("CRYPTOFLOW__SENTIMENT__MODEL", "vader-crypto")]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("model=vader-3.3.2+crypto texts=292 accuracy=0.8801 macro_f1=0.8806"),
        "{out}"
    );
    assert!(
        out.contains("          negative        91        2         2"),
        "{out}"
    );
    let (ok, _, err) = eval(&[("CRYPTOFLOW__SENTIMENT__MODEL", "finbert")]);
    assert!(!ok);
    assert!(
        err.contains("sentiment.model: unknown model \"finbert\""),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let (ok, _, err) = eval(&[("CRYPTOFLOW__SENTIMENT__OVERLAY_FILE", "/nonexistent.tsv")]);
    assert!(!ok);
    assert!(err.contains("sentiment.overlay_file"), "{err}");
}
