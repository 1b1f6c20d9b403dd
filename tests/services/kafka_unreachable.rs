//! An unreachable Kafka source is an error within `kafka.connect_timeout_ms`, naming the
//! brokers, with or without `--duration` — never a silent exit 0 or a wait forever.

use std::process::Command;
use std::time::{Duration, Instant};

fn consume(extra: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(["consume", "--brokers", "127.0.0.1:1", "--quiet"])
        .arg("--jsonl")
        .arg(
            std::env::temp_dir().join(format!("cf-kafka-unreachable-{}.jsonl", std::process::id())),
        )
        .args(extra)
        .env_remove("CRYPTOFLOW_CONFIG")
        .env("CRYPTOFLOW__KAFKA__CONNECT_TIMEOUT_MS", "2000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a regression that waits forever fails here instead of hanging the suite.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    (
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stderr).into(),
        started.elapsed(),
    )
}

#[test]
fn unreachable_brokers_fail_clearly() {
    for extra in [&["--duration", "20"][..], &[][..]] {
        let (code, err, took) = consume(extra);
        assert_eq!(code, Some(1), "{extra:?}: {err}");
        assert!(err.contains("127.0.0.1:1"), "{err}");
        assert!(err.contains("no broker"), "{err}");
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
}
