//! Credentials never reach the output: `check-config` masks every form given through the
//! environment, a config file holding one is refused, and a failing connection's error and log
//! lines do not echo the password. Database errors say what is wrong and what to do.

use crate::support as common;

use std::process::Command;

fn cryptoflow(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(args)
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
fn check_config_masks_every_form() {
    let env = [
        (
            "CRYPTOFLOW__SINKS__POSTGRES__URL",
            "postgres://cf@127.0.0.1:5432/x?password=Secret-Query-1&sslmode=disable",
        ),
        (
            "CRYPTOFLOW__SINKS__MYSQL__URL",
            "mysql://root:Secret-Userinfo-2@127.0.0.1:3306/x",
        ),
        (
            "CRYPTOFLOW__SINKS__INFLUX__URL",
            "http://admin:Secret-Influx-3@127.0.0.1:8086",
        ),
        (
            "CRYPTOFLOW__SINKS__KAFKA__PRODUCER__SASL_PASSWORD",
            "Secret-Sasl-4",
        ),
        (
            "CRYPTOFLOW__KAFKA__CONSUMER__SSL_KEY_PASSWORD",
            "Secret-SslKey-5",
        ),
        ("CRYPTOFLOW__KAFKA__CONSUMER__SASL_USERNAME", "cf-user"),
    ];
    let (ok, out, err) = cryptoflow(&["check-config"], &env);
    assert!(ok, "{err}");
    for secret in [
        "Secret-Query-1",
        "Secret-Userinfo-2",
        "Secret-Influx-3",
        "Secret-Sasl-4",
        "Secret-SslKey-5",
    ] {
        assert!(!out.contains(secret), "{secret} in:\n{out}");
        assert!(!err.contains(secret), "{secret} in:\n{err}");
    }
    // What is not a secret stays readable.
    assert!(out.contains("cf-user"), "{out}");
    assert!(out.contains("\"sasl.password\" = \"***\""), "{out}");
    assert!(out.contains("password=***&sslmode=disable"), "{out}");
}

#[test]
fn a_file_with_a_credential_is_refused() {
    let dir = std::env::temp_dir().join(format!("cf-secrets-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[sinks.postgres]\nurl = \"host=db user=cf password=Secret-Dsn-6 dbname=x\"\n",
    )
    .unwrap();
    let (ok, out, err) = cryptoflow(&["check-config", "--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        !out.contains("Secret-Dsn-6") && !err.contains("Secret-Dsn-6"),
        "{err}"
    );
    assert!(err.contains("sinks.postgres.url"), "{err}");
    assert!(err.contains("CRYPTOFLOW__SINKS__POSTGRES__URL"), "{err}");
}

/// A connection that fails (nothing listens on port 1): the error and the logs name the
/// problem but never the password, whichever form it came in.
#[test]
fn connection_errors_do_not_echo_passwords() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/binance/trades.jsonl"
    );
    for (flag, url, secret) in [
        (
            "--postgres",
            "postgres://cf:Secret-Pg-7@127.0.0.1:1/x",
            "Secret-Pg-7",
        ),
        (
            "--postgres",
            "host=127.0.0.1 port=1 user=cf password=Secret-PgDsn-8 dbname=x",
            "Secret-PgDsn-8",
        ),
        (
            "--mysql",
            "mysql://root:Secret-My-9@127.0.0.1:1/x",
            "Secret-My-9",
        ),
    ] {
        let (ok, out, err) = cryptoflow(&["migrate", flag, url], &[]);
        assert!(!ok, "{flag} {url}: {out}{err}");
        assert!(!out.contains(secret) && !err.contains(secret), "{err}");
        let (ok, out, err) = cryptoflow(
            &["replay", sample, flag, url, "--quiet"],
            &[("RUST_LOG", "debug")],
        );
        assert!(!ok, "{flag} {url}");
        assert!(!out.contains(secret) && !err.contains(secret), "{err}");
    }
}

/// A database that does not exist: the server's words and what to do, for both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_is_explained() {
    let pg = common::pg_server_url();
    let base = pg.rsplit_once('/').unwrap().0.to_string();
    let url = format!("{base}/cf_no_such_db_{}", std::process::id());
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || cryptoflow(&["migrate", "--postgres", &url], &[]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("3D000"), "{err}");
    assert!(err.contains("CREATE DATABASE"), "{err}");

    let my = common::mysql_server_url();
    let base = my.rsplit_once('/').unwrap().0.to_string();
    let url = format!("{base}/cf_no_such_db_{}", std::process::id());
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || cryptoflow(&["migrate", "--mysql", &url], &[]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("Unknown database"), "{err}");
    assert!(err.contains("CREATE DATABASE"), "{err}");
}

/// The unauthenticated cluster port never listens on every interface, and a hostfile that does
/// not match `--processes` is refused before anything starts.
#[test]
fn cluster_hostfile_is_checked() {
    let dir = std::env::temp_dir().join(format!("cf-hostfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/binance/trades.jsonl"
    );
    for (text, want) in [
        ("0.0.0.0:2101\n127.0.0.1:2102\n", "every interface"),
        ("[::]:2101\n127.0.0.1:2102\n", "every interface"),
        ("127.0.0.1:2101\n", "one host:port line per process"),
    ] {
        let file = dir.join("hosts");
        std::fs::write(&file, text).unwrap();
        let (ok, _, err) = cryptoflow(
            &[
                "replay",
                sample,
                "--quiet",
                "--processes",
                "2",
                "--process",
                "0",
                "--hostfile",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(!ok, "{text}");
        assert!(err.contains(want), "{text}: {err}");
    }
}
