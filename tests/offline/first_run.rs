//! What a new user meets first, through the binary: a quiet replay, the log formats, what `run`
//! says it connects to and the reconnects it counts, console times, help texts, errors, progress
//! and the bundled sample.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::generate;

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cf-first-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Runs the binary with `args` (and `env`), in `cwd`, with no configuration from the caller's
/// environment; stdout and stderr are pipes.
fn cryptoflow(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cryptoflow"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("CRYPTOFLOW_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("CRYPTOFLOW_") || k == "RUST_LOG" || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied()).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `cryptoflow: N events …` summary line.
fn summary(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("cryptoflow: ") && l.contains(" events in "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
}

#[test]
fn a_quiet_replay_of_a_file_runs_and_counts() {
    let d = dir("quiet");
    let f = generate(
        &d.join("t.jsonl"),
        &["--symbols", "2", "--trades", "300", "--step-ms", "100"],
    );
    let out = cryptoflow(&d, &["replay", f.to_str().expect("path"), "--quiet"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(out.stdout.is_empty(), "quiet: {}", text(&out.stdout));
    let line = summary(&err);
    assert!(line.contains("300 events"), "{line}");
    assert!(line.contains("counted="), "{line}");
    assert!(
        err.contains("no sink is configured: the records are counted"),
        "{err}"
    );
    assert!(!d.join("out").exists(), "nothing written");
}

#[test]
fn json_logs_are_json_lines_and_human_logs_have_no_colour_off_a_terminal() {
    let d = dir("logs");
    let f = generate(
        &d.join("t.jsonl"),
        &["--symbols", "2", "--trades", "200", "--step-ms", "100"],
    );
    // A bad line: a warning is logged for it.
    let mut bytes = std::fs::read(&f).expect("read");
    bytes.extend_from_slice(b"{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"p\":\"NaN\"}\n");
    std::fs::write(&f, bytes).expect("write");
    let path = f.to_str().expect("path");

    let out = cryptoflow(
        &d,
        &["--log-format", "json", "replay", path, "--quiet"],
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("200 events in ")),
        "{messages:?}"
    );
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"),
        "the dead letter's warning is there too: {err}"
    );

    // Human format into a pipe: no escape codes.
    let out = cryptoflow(&d, &["replay", path, "--quiet"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARN"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");

    // The JSON form of a failing command's error.
    let out = cryptoflow(
        &d,
        &["--log-format", "json", "replay", "missing.jsonl", "--quiet"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let last: serde_json::Value =
        serde_json::from_str(err.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["level"], "ERROR", "{err}");
}

#[test]
fn console_times_are_iso_8601_utc() {
    let d = dir("console");
    // The generator's first trade is at 1_700_000_000_000 ms, which `date -u -d @1700000000`
    // prints as Tue Nov 14 22:13:20 UTC 2023: its minute candle opens at 22:13:00.
    let f = generate(
        &d.join("t.jsonl"),
        &["--symbols", "1", "--trades", "400", "--step-ms", "500"],
    );
    let out = cryptoflow(
        &d,
        &["replay", f.to_str().expect("path"), "--jsonl", "/dev/null"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let candles: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("CANDLE "))
        .collect();
    assert!(
        candles[0].contains(" 2023-11-14T22:13:00.000Z "),
        "{}",
        candles[0]
    );
    assert!(
        candles
            .iter()
            .any(|l| l.contains(" 2023-11-14T22:14:00.000Z ")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(" 17000"),
        "no raw epoch milliseconds: {stdout}"
    );
}

#[test]
fn run_says_what_it_connects_to_and_counts_every_logged_reconnect() {
    let d = dir("run");
    // A port nothing listens on: every connection attempt fails and is logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let ws = format!("ws://127.0.0.1:{port}");
    let out = cryptoflow(
        &d,
        &[
            "run",
            "--symbols",
            "ethusdt,BTCUSDT",
            "--duration",
            "3",
            "--listen",
            "off",
            "--jsonl",
            "out.jsonl",
        ],
        &[
            ("CRYPTOFLOW__BINANCE__WS_BASE_URL", &ws),
            ("CRYPTOFLOW__BINANCE__REFILL", "false"),
            ("CRYPTOFLOW__BINANCE__RECONNECT_INITIAL_MS", "100"),
            ("CRYPTOFLOW__BINANCE__RECONNECT_MAX_MS", "200"),
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let start = err
        .lines()
        .find(|l| l.starts_with("cryptoflow: run: connecting to "))
        .unwrap_or_else(|| panic!("no start-up line:\n{err}"));
    assert!(
        start.contains(&format!(
            "binance {ws} (2 streams: trade of BTCUSDT ETHUSDT)"
        )),
        "{start}"
    );
    assert!(start.contains("sinks: jsonl out.jsonl"), "{start}");
    let logged = err.lines().filter(|l| l.contains("Reconnecting.")).count();
    assert!(logged >= 5, "{err}");
    let line = summary(&err);
    assert!(
        line.contains(&format!(" reconnects={logged} ")),
        "{logged} reconnects logged: {line}"
    );

    // A bad symbol is refused with the flag's name.
    let out = cryptoflow(
        &d,
        &["run", "--symbols", "BTC-USDT", "--listen", "off"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--symbols \"BTC-USDT\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_and_errors_say_each_thing_once() {
    let d = dir("help");
    let out = cryptoflow(&d, &["migrate", "--help"], &[]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    assert_eq!(
        help.matches("Apply database migrations").count(),
        1,
        "{help}"
    );

    // A missing file: its cause once.
    let out = cryptoflow(&d, &["replay", "nowhere.jsonl", "--quiet"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let error = err
        .lines()
        .find(|l| l.starts_with("cryptoflow: error: "))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert_eq!(
        error.matches("No such file or directory").count(),
        1,
        "{error}"
    );

    // A bad environment value names its variable.
    for value in ["x", "0"] {
        let out = cryptoflow(
            &d,
            &["replay", "--quiet"],
            &[("CRYPTOFLOW__PIPELINE__WORKERS", value)],
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("CRYPTOFLOW__PIPELINE__WORKERS"),
            "{value}: {err}"
        );
        assert!(err.contains("pipeline.workers"), "{value}: {err}");
    }
}

#[test]
fn progress_is_shown_on_request_in_bytes_of_the_file() {
    let d = dir("progress");
    let f = generate(
        &d.join("t.jsonl.gz"),
        &["--symbols", "3", "--trades", "3000", "--step-ms", "10"],
    );
    let size = std::fs::metadata(&f).expect("size").len();
    let path = f.to_str().expect("path");
    let out = cryptoflow(&d, &["replay", path, "--quiet", "--progress"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The compressed file's own size, not the decompressed bytes.
    assert!(
        err.contains(&format!(
            "cryptoflow: progress: {path} 100% ({size} of {size} bytes)"
        )),
        "{size} bytes: {err}"
    );
    // Not asked for, off a terminal: nothing.
    let out = cryptoflow(&d, &["replay", path, "--quiet"], &[]);
    assert!(!text(&out.stderr).contains("progress:"));
}

#[test]
fn the_bundled_sample_shows_every_output() {
    let d = dir("sample");
    let out = cryptoflow(&d, &["replay"], &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The line the README shows.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let line = summary(&err);
    let counts = line.split_once(" sinks: ").expect("sinks").1;
    let events = line.split(" in ").next().expect("events");
    assert!(
        readme.contains(events) && readme.contains(counts),
        "README should show `{events} … {counts}`"
    );
    let jsonl = std::fs::read_to_string(d.join("out/cryptoflow.jsonl")).expect("jsonl");
    let mut kinds = std::collections::BTreeSet::new();
    let mut macd = 0;
    for l in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        let kind = v["type"].as_str().expect("type").to_string();
        if kind == "indicators" && !v["macd"].is_null() && !v["macd_signal"].is_null() {
            macd += 1;
        }
        kinds.insert(kind);
    }
    for kind in ["trade", "candle", "indicators", "whale", "signal"] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert!(macd >= 4, "indicator rows with MACD and its signal: {macd}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("WHALE "), "{stdout}");
}
