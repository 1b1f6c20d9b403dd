//! Damaged replay input, through the binary: a line that is not UTF-8 is a dead letter and the
//! run goes on; a truncated `.gz` ends that file with an error naming it, after every trade
//! read before the cut is stored, and the files after it still replay (exit 1 at the end); a
//! byte-order mark or a garbage first line does not turn a capture into a "CSV" file; a file of
//! pure garbage fails loudly instead of storing nothing with exit 0.

use crate::support as common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const BOM: &str = "\u{FEFF}";

/// A `<symbol>@trade` frame with id `id`.
fn trade(symbol: &str, id: u64) -> String {
    let ts = 1_700_000_000_000 + id as i64 * 10;
    format!(
        r#"{{"e":"trade","E":{ts},"s":"{symbol}","t":{id},"p":"{}.5","q":"0.01","T":{ts},"m":false,"M":true}}"#,
        40_000 + id % 100
    )
}

/// A dump row of trade `id` (`id,price,qty,quote_qty,time,is_buyer_maker,is_best_match`).
fn csv_row(id: u64) -> String {
    let ts = 1_700_000_000_000 + id as i64 * 10;
    format!("{id},40000.5,0.01,400.005,{ts},False,True")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-damaged-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    code: Option<i32>,
    stderr: String,
    /// Stored trade ids per symbol (the JSON-lines sink), sorted.
    stored: Ids,
    /// The dead letters written.
    dead: Vec<serde_json::Value>,
}

/// `cryptoflow replay FILES --jsonl … --dead-letters …` plus `extra`, in `dir`.
fn replay(dir: &Path, files: &[&Path], extra: &[&str]) -> Run {
    let out = dir.join("out.jsonl");
    let dead = dir.join("dead.jsonl");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&dead);
    let res = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .arg("replay")
        .args(files)
        .args(["--quiet", "--workers", "1", "--jsonl"])
        .arg(&out)
        .arg("--dead-letters")
        .arg(&dead)
        .args(extra)
        .env_remove("CRYPTOFLOW_CONFIG")
        .output()
        .unwrap();
    let mut stored = Ids::new();
    for line in std::fs::read_to_string(&out).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "trade" {
            stored
                .entry(v["trade"]["symbol"].as_str().unwrap().to_string())
                .or_default()
                .push(v["trade"]["trade_id"].as_u64().unwrap());
        }
    }
    for ids in stored.values_mut() {
        ids.sort_unstable();
    }
    let dead = std::fs::read_to_string(&dead)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run {
        code: res.status.code(),
        stderr: String::from_utf8_lossy(&res.stderr).into_owned(),
        stored,
        dead,
    }
}

fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

type Ids = BTreeMap<String, Vec<u64>>;

/// Per symbol: how many ids, the first, the last.
fn digest(ids: &Ids) -> Vec<(String, usize, u64, u64)> {
    ids.iter()
        .map(|(s, v)| {
            let (lo, hi) = (v.first().copied(), v.last().copied());
            (s.clone(), v.len(), lo.unwrap_or(0), hi.unwrap_or(0))
        })
        .collect()
}

/// Asserts the exact stored ids, printing (symbol, count, first, last) when they differ.
#[track_caller]
fn assert_ids(got: &Ids, want: &Ids, context: &str) {
    assert!(
        got == want,
        "stored {:?}, want {:?}\n{context}",
        digest(got),
        digest(want)
    );
}

/// The `decode_errors=` of the run's summary line.
fn decode_errors(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.starts_with("cryptoflow: ") && l.contains(" events in "))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("decode_errors="))
        })
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
        .parse()
        .unwrap()
}

async fn pg_trades(url: &str) -> Ids {
    let c = pg_client(url).await;
    let mut out = Ids::new();
    for r in c
        .query("SELECT symbol, trade_id FROM trades ORDER BY 1, 2", &[])
        .await
        .unwrap()
    {
        out.entry(r.get(0))
            .or_default()
            .push(r.get::<_, i64>(1) as u64);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_utf8_is_a_dead_letter_and_the_run_goes_on() {
    let dir = temp_dir("utf8");
    let url = fresh_database("utf8").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    // 5,000 good trades; between trade 2,500 and 2,501 a frame with Latin-1 bytes in it.
    let path = dir.join("capture.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for id in 1..=5000u64 {
        writeln!(f, "{}", trade("BTCUSDT", id)).unwrap();
        if id == 2500 {
            f.write_all(
                b"{\"e\":\"trade\",\"E\":1,\"s\":\"BTCUSDT\",\"t\":999999,\"p\":\"1\",\"q\":\"1\",\"T\":1,\"m\":false,\"M\":true,\"x\":\"caf\xe9\"}\n",
            )
            .unwrap();
        }
    }
    drop(f);

    let dir2 = dir.clone();
    let url2 = url.clone();
    let run = tokio::task::spawn_blocking(move || replay(&dir2, &[&path], &["--postgres", &url2]))
        .await
        .unwrap();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let want = BTreeMap::from([("BTCUSDT".to_string(), ids(1..=5000))]);
    assert_ids(&run.stored, &want, &run.stderr);
    assert_ids(&pg_trades(&url).await, &want, "PostgreSQL has them all");
    // One dead letter, with the line's text (the bad byte replaced) and why.
    assert_eq!(run.dead.len(), 1, "{:?}", run.dead);
    let error = run.dead[0]["error"].as_str().unwrap();
    let raw = run.dead[0]["raw"].as_str().unwrap();
    assert!(
        error.contains("not UTF-8") && error.contains("line 2501"),
        "{error}"
    );
    assert!(
        raw.contains("999999") && raw.contains("caf\u{FFFD}"),
        "{raw}"
    );
    assert_eq!(decode_errors(&run.stderr), 1, "{}", run.stderr);
    // The ledger counts it.
    let c = pg_client(&url).await;
    let n: i64 = c
        .query_one(
            "SELECT coalesce(max(decode_errors), 0) FROM data_quality WHERE source = 'replay'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// Complete lines of a truncated gzip file before its decoder fails, and that it does fail.
fn lines_before_the_cut(path: &Path) -> (u64, bool) {
    let mut dec = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap());
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let failed = loop {
        match dec.read(&mut chunk) {
            Ok(0) => break false,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(_) => break true,
        }
    };
    (data.iter().filter(|b| **b == b'\n').count() as u64, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_gz_ends_that_file_and_the_next_files_still_replay() {
    let dir = temp_dir("gz");
    let url = fresh_database("gzcut").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    // 20,000 BTCUSDT trades, gzipped, the last 40 % of the compressed bytes cut off.
    let cut = dir.join("btc.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for id in 1..=20_000u64 {
        writeln!(gz, "{}", trade("BTCUSDT", id)).unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let (before, failed) = lines_before_the_cut(&cut);
    assert!(failed, "the cut file must not decompress cleanly");
    assert!(
        before > 2000 && before < 20_000 && before % 1024 != 0,
        "{before} lines before the cut"
    );
    // A good file after it.
    let good = dir.join("eth.jsonl");
    std::fs::write(
        &good,
        (1..=3000u64)
            .map(|id| trade("ETHUSDT", id) + "\n")
            .collect::<String>(),
    )
    .unwrap();

    let (dir2, url2, cut2, good2) = (dir.clone(), url.clone(), cut.clone(), good.clone());
    let run = tokio::task::spawn_blocking(move || {
        replay(&dir2, &[&cut2, &good2], &["--postgres", &url2])
    })
    .await
    .unwrap();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    // Everything before the cut, and the whole next file, stored and acknowledged.
    let want = BTreeMap::from([
        ("BTCUSDT".to_string(), ids(1..=before)),
        ("ETHUSDT".to_string(), ids(1..=3000)),
    ]);
    assert_ids(&run.stored, &want, &run.stderr);
    assert_ids(&pg_trades(&url).await, &want, "PostgreSQL");
    assert_eq!(run.dead.len(), 0, "{:?}", run.dead);
    // The summary of what was written, then an error naming the file and what was read from it.
    assert_eq!(decode_errors(&run.stderr), 0, "{}", run.stderr);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("cryptoflow: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stderr));
    assert!(
        error.contains(&format!("{} is damaged", cut.display()))
            && error.contains(&format!("{before} lines, {before} events")),
        "{error}"
    );
    assert!(!error.contains("eth.jsonl"), "{error}");
}

#[test]
fn a_byte_order_mark_does_not_hide_a_capture() {
    let dir = temp_dir("bom");
    let text: String = (1..=100u64).map(|id| trade("BTCUSDT", id) + "\n").collect();
    let plain = dir.join("capture.jsonl");
    std::fs::write(&plain, format!("{BOM}{text}")).unwrap();
    // The same after gzip.
    let gz_path = dir.join("capture2.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{BOM}{text}").as_bytes()).unwrap();
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    for path in [plain, gz_path] {
        let run = replay(&dir, &[&path], &[]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_ids(
            &run.stored,
            &BTreeMap::from([("BTCUSDT".to_string(), ids(1..=100))]),
            &format!("{}: {}", path.display(), run.stderr),
        );
        assert_eq!(run.dead.len(), 0, "{:?}", run.dead);
    }
}

#[test]
fn a_garbage_first_line_is_a_dead_letter_not_a_format() {
    let dir = temp_dir("garbage-first");
    // 100 lines: the first is garbage, then trades 2..=100.
    let path = dir.join("capture.jsonl");
    let text: String = std::iter::once("### exported by tool X, do not edit ###\n".to_string())
        .chain((2..=100u64).map(|id| trade("BTCUSDT", id) + "\n"))
        .collect();
    std::fs::write(&path, text).unwrap();
    let run = replay(&dir, &[&path], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_ids(
        &run.stored,
        &BTreeMap::from([("BTCUSDT".to_string(), ids(2..=100))]),
        &run.stderr,
    );
    assert_eq!(run.dead.len(), 1, "{:?}", run.dead);
    assert_eq!(
        run.dead[0]["raw"],
        "### exported by tool X, do not edit ###"
    );
    assert_eq!(decode_errors(&run.stderr), 1);
}

#[test]
fn a_csv_dump_with_a_byte_order_mark_keeps_every_row() {
    let dir = temp_dir("bom-csv");
    let rows: String = (1..=50u64).map(|id| csv_row(id) + "\n").collect();
    let header = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n";
    for (name, text) in [
        ("BTCUSDT-trades-2023-11-14.csv", format!("{BOM}{rows}")),
        (
            "BTCUSDT-trades-2023-11-15.csv",
            format!("{BOM}{header}{rows}"),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let run = replay(&dir, &[&path], &[]);
        assert_eq!(run.code, Some(0), "{name}: {}", run.stderr);
        assert_ids(
            &run.stored,
            &BTreeMap::from([("BTCUSDT".to_string(), ids(1..=50))]),
            &format!("{name}: {}", run.stderr),
        );
        assert_eq!(run.dead.len(), 0, "{name}: {:?}", run.dead);
    }
}

#[test]
fn a_file_of_garbage_fails_with_a_clear_message() {
    let dir = temp_dir("garbage");
    let path = dir.join("notes.txt");
    std::fs::write(
        &path,
        "shopping list\n\neggs, milk\nthis is not market data\n{\"half\": \n",
    )
    .unwrap();
    let run = replay(&dir, &[&path], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stored.is_empty());
    assert_eq!(run.dead.len(), 4, "{:?}", run.dead);
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("cryptoflow: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stderr));
    assert!(
        error.contains(&format!("nothing replayed from {}", path.display()))
            && error.contains("4 of its 5 lines are undecodable"),
        "{error}"
    );
}
