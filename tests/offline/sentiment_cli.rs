//! `cryptoflow sentiment-eval` scores the labelled headlines with the configured model (by
//! default VADER + the crypto overlay), and a bad model name or overlay file is a clear error, not
//! a panic.

use std::process::Command;

fn eval(env: &[(&str, &str)]) -> (bool, String, String) {
    eval_file("crypto_labelled.tsv", env)
}

fn eval_file(file: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(["sentiment-eval", "--labelled"])
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/sentiment")
                .join(file),
        )
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
    assert!(
        out.starts_with("model=vader-3.3.2+crypto texts=292 accuracy=0.9452 macro_f1=0.9452"),
        "{out}"
    );
    assert!(
        out.contains("          negative        94        0         1"),
        "{out}"
    );
    let (ok, out, err) = eval(&[("CRYPTOFLOW__SENTIMENT__MODEL", "vader")]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("model=vader-3.3.2 texts=292 accuracy=0.5719 macro_f1=0.5632"),
        "{out}"
    );
    // Feed items (title, newline, summary): the `\n` in the file is a line break to the model.
    // The figures equal tests/reference/vader_eval.py's (Python vaderSentiment + the overlay).
    let (ok, out, err) = eval_file("feed_dev.tsv", &[]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("model=vader-3.3.2+crypto texts=255 accuracy=0.7843 macro_f1=0.7836"),
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
