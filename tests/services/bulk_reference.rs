//! `cryptoflow bench --bulk-reference`, through the binary: the pipeline runs into one fresh
//! database, the rows it stored are loaded with the server's own bulk path (`COPY … FROM STDIN`,
//! `LOAD DATA LOCAL INFILE`) into a second one, and the two must end with exactly the same rows
//! (checked here independently, table by table and row by row), so the two rates of the
//! `BULKREF` line compare like with like.

use crate::support as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use mysql_async::prelude::Queryable;

const TRADES: u64 = 5_000;

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "cf_{prefix}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

/// 5,000 generated trades of 10 symbols.
fn input(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{name}.jsonl"));
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "generate",
            "--trades",
            &TRADES.to_string(),
            "--symbols",
            "10",
        ])
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `cryptoflow bench --bulk-reference --bulk-databases NAME` plus `server`; the BULKREF line's
/// fields.
fn bench(input: &PathBuf, name: &str, server: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .arg("bench")
        .arg("--input")
        .arg(input)
        .args(server)
        .args([
            "--bulk-reference",
            "--compare",
            "2",
            "--bulk-databases",
            name,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BULKREF "))
        .unwrap_or_else(|| panic!("no BULKREF line in {stdout}"));
    assert_eq!(
        stderr.matches(": rows=").count(),
        2,
        "one line per run: {stderr}"
    );
    let fields: BTreeMap<String, String> = line
        .split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    fields
}

/// Checks the BULKREF fields: trades, rows = the sum of the tables, the rates and their ratio.
fn check_line(f: &BTreeMap<String, String>, sink: &str, bulk: &str) -> BTreeMap<String, u64> {
    assert_eq!(f["peer"], "rust");
    assert_eq!(f["sink"], sink);
    assert_eq!(f["bulk"], bulk);
    assert_eq!(f["runs"], "2");
    assert_eq!(f["trades"], TRADES.to_string());
    let tables: BTreeMap<String, u64> = f["tables"]
        .split(',')
        .map(|t| {
            let (name, n) = t.split_once(':').unwrap();
            (name.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(tables["trades"], TRADES, "{tables:?}");
    assert!(tables.contains_key("candles"), "{tables:?}");
    let rows: u64 = f["rows"].parse().unwrap();
    assert_eq!(rows, tables.values().sum::<u64>());
    let num = |k: &str| -> f64 { f[k].parse().unwrap_or_else(|_| panic!("{k}={}", f[k])) };
    let (s, b, r) = (
        num("sink_rows_per_s"),
        num("server_bulk_rows_per_s"),
        num("ratio"),
    );
    assert!(s > 0.0 && b > 0.0, "{f:?}");
    assert!((r - s / b).abs() < 0.002 + r * 0.001, "{f:?}");
    for k in ["load_before", "load_after"] {
        assert!(f[k] == "-" || f[k].parse::<f64>().is_ok(), "{f:?}");
    }
    tables
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_copy_holds_the_sinks_rows() {
    let _heavy = heavy().await;
    let name = unique("bulkref_pg");
    let input = input(&name);
    let server = pg_server_url();
    let f = tokio::task::spawn_blocking({
        let (input, name, server) = (input.clone(), name.clone(), server.clone());
        move || bench(&input, &name, &["--postgres", &server])
    })
    .await
    .unwrap();
    let tables = check_line(&f, "postgres", "copy");
    let base = server.rsplit_once('/').unwrap().0.to_string();
    let sink = pg_client(&format!("{base}/{name}_sink")).await;
    let reference = pg_client(&format!("{base}/{name}_ref")).await;
    let rows = |t: String| format!("SELECT t::text FROM {t} t ORDER BY 1");
    let user_tables = "SELECT relname::text FROM pg_stat_user_tables \
                       WHERE relname <> 'schema_migrations' ORDER BY 1";
    let names: Vec<String> = sink
        .query(user_tables, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    // `trades` is partitioned by day: the statistics list its partitions, the line the table.
    let mut partitioned_trades = 0u64;
    for t in names {
        let a: Vec<String> = sink
            .query(&rows(t.clone()), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let b: Vec<String> = reference
            .query(&rows(t.clone()), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(a.len(), b.len(), "{t}");
        assert!(a == b, "{t}: the reference rows differ");
        if t.starts_with("trades_p") {
            partitioned_trades += a.len() as u64;
            continue;
        }
        // The line counts exactly the non-empty tables.
        assert_eq!(tables.get(&t).copied().unwrap_or(0), a.len() as u64, "{t}");
    }
    assert_eq!(partitioned_trades, TRADES, "the day partitions of trades");
    drop((sink, reference));
    let admin = pg_client(&server).await;
    for suffix in ["sink", "ref"] {
        admin
            .batch_execute(&format!("DROP DATABASE {name}_{suffix} WITH (FORCE)"))
            .await
            .unwrap();
    }
    let _ = std::fs::remove_file(input);
}

/// Every row of `table`, as text, sorted.
async fn mysql_rows(conn: &mut mysql_async::Conn, table: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM `{table}`"))
        .await
        .unwrap();
    let mut out: Vec<Vec<Option<String>>> = rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                    other => panic!("{other:?}"),
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_load_data_holds_the_sinks_rows() {
    let _heavy = heavy().await;
    let name = unique("bulkref_my");
    let input = input(&name);
    let server = mysql_server_url();
    let f = tokio::task::spawn_blocking({
        let (input, name, server) = (input.clone(), name.clone(), server.clone());
        move || bench(&input, &name, &["--sink", "mysql", "--url", &server])
    })
    .await
    .unwrap();
    let tables = check_line(&f, "mysql", "load_data");
    let pool = mysql_async::Pool::new(server.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let names: Vec<String> = conn
        .exec(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? \
             AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY 1",
            (format!("{name}_sink"),),
        )
        .await
        .unwrap();
    assert!(names.len() >= 10, "{names:?}");
    for t in names {
        let a = mysql_rows(&mut conn, &format!("{name}_sink`.`{t}")).await;
        let b = mysql_rows(&mut conn, &format!("{name}_ref`.`{t}")).await;
        assert_eq!(a.len(), b.len(), "{t}");
        assert!(a == b, "{t}: the reference rows differ");
        assert_eq!(tables.get(&t).copied().unwrap_or(0), a.len() as u64, "{t}");
    }
    for suffix in ["sink", "ref"] {
        conn.query_drop(format!("DROP DATABASE {name}_{suffix}"))
            .await
            .unwrap();
    }
    drop(conn);
    pool.disconnect().await.unwrap();
    let _ = std::fs::remove_file(input);
}
