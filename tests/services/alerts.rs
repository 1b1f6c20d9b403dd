//! The alert rules and the Grafana dashboard against the real tools and the real process:
//! `promtool` checks and unit-tests the rules, lints what a live run's `/metrics` serves, and
//! every metric the rules and the dashboard use is one the process serves; every SQL query of the
//! dashboard runs on a migrated database.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;

use crate::support::exchange::{start_exchange, Exchange};
use crate::support::served::Proc;
use crate::support::{fresh_database, pg_client, service_env};

fn monitoring(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("k8s/monitoring")
        .join(file)
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(service_env("CRYPTOFLOW_TEST_PROMTOOL"))
        .args(args)
        .current_dir(monitoring(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `cryptoflow_…` metric names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("cryptoflow_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn the_rules_pass_promtool_and_fire_on_their_test_series() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], None);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts_test.yml"], None);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_use_is_served() {
    let url = fresh_database("alerts").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let ex = Exchange::new(500.0, 0, None);
    let env = start_exchange(&ex).await;
    let run = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .args([
                "run",
                "--quiet",
                "--listen",
                "127.0.0.1:0",
                "--duration",
                "60",
            ])
            .args(["--postgres", &url])
            .envs(env.iter().cloned()),
    );
    let base = run.base();
    // Ready once connected; a client takes a few pushes; one request of each kind.
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        let r = http.get(format!("{base}/ready")).send().await.unwrap();
        if r.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "never ready");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/ws?kinds=trades",
        base.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let _ = http
        .get(format!("{base}/api/v1/symbols"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    run.stop();

    let (ok, out) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics: {out}");
    let served = metric_names(&text);
    let rules = std::fs::read_to_string(monitoring("alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(monitoring("grafana-dashboard.json")).unwrap();
    let used: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard))
        .collect();
    assert!(used.len() >= 15, "{used:?}");
    // Pollers' metrics exist only with pollers (their names: sources/src/poll/driver.rs tests).
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !n.starts_with("cryptoflow_poll_") && !served.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not served: {missing:?}\n{text}"
    );

    // Every SQL query of the dashboard runs on the schema `migrate` makes.
    let dash: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let db = pg_client(&url).await;
    let mut queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            if let Some(sql) = target["rawSql"].as_str() {
                db.query(sql, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{}: {sql}: {e}", panel["title"]));
                queries += 1;
            }
        }
    }
    assert!(queries >= 5);
}
