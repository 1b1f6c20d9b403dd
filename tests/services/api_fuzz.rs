//! An OpenAPI fuzzer no one here wrote (schemathesis, from PyPI) against the API of a replay:
//! every operation of `/openapi.json`, with valid and invalid inputs, gets no 5xx and no answer
//! that breaks the document (status, content type, headers, body schema).

use std::process::Command;

use crate::support::served::Proc;
use crate::support::service_env;

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let run = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
            .args(["replay", "--quiet", "--jsonl", "/dev/null"])
            .args(["--listen", "127.0.0.1:0", "--keep-serving"])
            // The fuzzer sends hundreds of requests a second.
            .env("CRYPTOFLOW__SERVE__RATE_LIMIT_PER_S", "0"),
    );
    let base = run.base();
    run.wait_for("the replay is done");
    let out = Command::new(service_env("CRYPTOFLOW_TEST_SCHEMATHESIS"))
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", "all", "-n", "60", "--generation-deterministic"])
        .args(["--request-timeout", "10", "--no-color"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    run.stop();
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("Tested: 13"), "{text}");
}
