//! Pollers end to end, on what they store exactly: a local server plays CoinGecko with numbers an
//! `f64` cannot carry (1820486547.6280346, 0.00000001234567890123, 4.2069e14, a 25-digit
//! integer, 1e-20) and numbers no `Decimal` holds (reported, not rounded), and two entity-rich
//! news feeds (tests/fixtures/news). `cryptoflow run --pollers-only --poll-once` writes into
//! PostgreSQL, MariaDB and a JSON-lines file. Goldens: the payload bytes (the raw column), Python's
//! `decimal` (`format(Decimal(text), 'f')`; for MariaDB's DECIMAL(65,28) the same quantized to 28
//! places) and Python's xml/html modules (tests/reference/html_text.py) for the news texts.

use crate::support as common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::{fresh_database, fresh_mysql_database, pg_client};
use cryptoflow_operators::sentiment::{SentimentModel, Vader};
use mysql_async::prelude::Queryable;

/// The coin object as CoinGecko would send it (whitespace, key order and escapes are part of it).
const LOSSLESS: &str = r#"{"id":"lossless","symbol":"lsl","name":"Lossl\u00e9ss",
    "current_price":0.00000001234567890123,"market_cap":589264883286605.2,"market_cap_rank":42,
    "total_volume":1234567890123456789012345,"high_24h":1.2e-7,"low_24h":null,
    "price_change_24h":-0.000000000000000001,"price_change_percentage_24h":-3.14159265358979323846,
    "circulating_supply":1820486547.6280346,"total_supply":4.2069e14,"max_supply":null,
    "ath":0.00002,"atl":1e-20,"roi":null,"last_updated":"2026-11-22T06:59:48.123Z"}"#;

/// A coin whose price no 96-bit decimal holds: reported, the others land.
const TOO_LARGE: &str = r#"{"id":"toolarge","symbol":"big","name":"Big","current_price":1e40,
    "last_updated":"2026-11-22T06:59:48.123Z"}"#;

const SIMPLE_LOSSLESS: &str = r#"{"usd":0.00000001234567890123,"usd_market_cap":589264883286605.2,"usd_24h_vol":1234567890123456789012345,"usd_24h_change":-3.14159265358979323846,"last_updated_at":1795330788}"#;

fn json(body: String) -> Response {
    ([("content-type", "application/json")], body).into_response()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::fixture(&format!("news/{name}"))).unwrap()
}

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/cg/api/v3/coins/markets",
            get(|| async { json(format!("[\n  {LOSSLESS},\n  {TOO_LARGE}\n]")) }),
        )
        .route(
            "/cg/api/v3/simple/price",
            get(|| async {
                json(format!(
                    r#"{{"lossless": {SIMPLE_LOSSLESS}, "toolarge":{{"usd":1e-29,"last_updated_at":1795330788}}}}"#
                ))
            }),
        )
        .route(
            "/feeds/rss.xml",
            get(|| async {
                (
                    [("content-type", "application/rss+xml")],
                    fixture("rss_entities.xml"),
                )
                    .into_response()
            }),
        )
        .route(
            "/feeds/atom.xml",
            get(|| async {
                (
                    [("content-type", "application/atom+xml")],
                    fixture("atom_entities.xml"),
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(base: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
[sinks]
console = false
jsonl = "{jsonl}"

[poll]
enabled = true
state_dir = "{state}"
retry_after_failure_s = 1

[poll.coingecko]
base_url = "{base}/cg/api/v3"
coins = ["lossless", "toolarge"]
per_minute = 600.0

[poll.rss]
feeds = ["{base}/feeds/rss.xml", "{base}/feeds/atom.xml"]
per_minute = 600.0

[poll.reddit]
enabled = false

[poll.fred]
enabled = false

[poll.myinvestor]
enabled = false
"#,
        jsonl = dir.join("out.jsonl").display(),
        state = dir.join("state").display()
    )
}

/// Runs one `--poll-once` round; returns `poller → (emitted, duplicates, errors)`.
fn poll_once(cfg: &std::path::Path, pg: &str, mysql: &str) -> HashMap<String, (u64, u64, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--pollers-only",
            "--poll-once",
            "--duration",
            "120",
            "--config",
        ])
        .arg(cfg)
        .args(["--postgres", pg, "--mysql", mysql])
        .env_remove("COINGECKO_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "run failed:\n{err}");
    let m = common::poller_counts(&err);
    assert_eq!(m.len(), 2, "coingecko and rss report:\n{err}");
    m
}

/// Columns of coingecko_data checked, with Python's `format(Decimal(text), 'f')` of the payload's
/// number (None: JSON null) for `/coins/markets`.
const MARKET_GOLDEN: &[(&str, Option<&str>)] = &[
    ("price", Some("0.00000001234567890123")),
    ("market_cap", Some("589264883286605.2")),
    ("total_volume", Some("1234567890123456789012345")),
    ("high_24h", Some("0.00000012")),
    ("low_24h", None),
    ("price_change_24h", Some("-0.000000000000000001")),
    ("price_change_pct_24h", Some("-3.14159265358979323846")),
    ("circulating_supply", Some("1820486547.6280346")),
    ("total_supply", Some("420690000000000")),
    ("max_supply", None),
    ("ath", Some("0.00002")),
    ("atl", Some("0.00000000000000000001")),
];

/// The same, as MariaDB's DECIMAL(65,28) shows them: Python
/// `format(Decimal(text).quantize(Decimal('1e-28')), 'f')` (context precision 100).
const MARKET_GOLDEN_MYSQL: &[(&str, Option<&str>)] = &[
    ("price", Some("0.0000000123456789012300000000")),
    (
        "market_cap",
        Some("589264883286605.2000000000000000000000000000"),
    ),
    (
        "total_volume",
        Some("1234567890123456789012345.0000000000000000000000000000"),
    ),
    ("high_24h", Some("0.0000001200000000000000000000")),
    ("low_24h", None),
    ("price_change_24h", Some("-0.0000000000000000010000000000")),
    (
        "price_change_pct_24h",
        Some("-3.1415926535897932384600000000"),
    ),
    (
        "circulating_supply",
        Some("1820486547.6280346000000000000000000000"),
    ),
    (
        "total_supply",
        Some("420690000000000.0000000000000000000000000000"),
    ),
    ("max_supply", None),
    ("ath", Some("0.0000200000000000000000000000")),
    ("atl", Some("0.0000000000000000000100000000")),
];

/// News texts: `python3 tests/reference/html_text.py feed tests/fixtures/news/*.xml`.
const NEWS_GOLDEN: &[(&str, &str, &str)] = &[
    (
        "guid:es-cnmv-1",
        "La Comisi\u{f3}n Nacional del Mercado de Valores avisa: \u{a1}cuidado con los \u{2018}chiringuitos\u{2019}!",
        "La Comisi\u{f3}n Nacional del Mercado de Valores (CNMV) advierte: el bitcoin cay\u{f3} a 1.234,56 \u{20ac} en Espa\u{f1}a\u{2026} \u{a9} 2026 Diario\u{2122} M\u{e1}s informaci\u{f3}n \u{bb}",
    ),
    (
        "guid:en-2",
        "Bitcoin\u{2019}s rally \u{2014} \"to the moon\" \u{1f680}",
        "Ether & Solana <3 traders. Fees < 1% Caf\u{e9} &eacute; \u{20ac} 5 end",
    ),
    (
        "guid:en-3",
        "Dogecoin jumps 10% \u{2013} \u{2018}meme season\u{2019}",
        "Why Volume \u{d7}3 $DOGE > $0.50",
    ),
    (
        "guid:urn:ae:1",
        "Bitcoin & Ether: \u{a1}Se\u{f1}ales! 1.234,56 \u{20ac}",
        "Caf\u{e9} \u{2026} \u{a9} Espa\u{f1}a \u{201c}Ok\u{201d}",
    ),
    (
        "guid:urn:ae:2",
        "Fees &lt; 1% at AT&amp;T <b> solana",
        "Solana\u{2019}s fees & Caf\u{e9} M\u{e1}s info \u{20ac}",
    ),
    (
        "guid:urn:ae:3",
        "Plain & simple",
        "Caf&eacute; stays as written",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_numbers_raw_bytes_and_decoded_news_text_in_every_store() {
    let base = serve().await;
    let dir = std::env::temp_dir().join(format!("cf-poll-exact-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("poll.toml");
    std::fs::write(&cfg_path, config(&base, &dir)).unwrap();
    let pg = fresh_database("pollexact").await;
    cryptoflow_sinks::postgres::migrate(&pg).await.unwrap();
    let my = fresh_mysql_database("pollexact").await;
    cryptoflow_sinks::mysql::migrate(&my).await.unwrap();

    let (cfg1, pg1, my1) = (cfg_path.clone(), pg.clone(), my.clone());
    let r = tokio::task::spawn_blocking(move || poll_once(&cfg1, &pg1, &my1))
        .await
        .unwrap();
    // lossless on both endpoints; toolarge (1e40, 1e-29) reported on both, never rounded.
    assert_eq!(r["coingecko"], (2, 0, 2), "{r:?}");
    assert_eq!(r["rss"], (6, 0, 0), "{r:?}");

    // PostgreSQL: NUMERIC text and the raw column.
    let c = pg_client(&pg).await;
    let cols: Vec<String> = MARKET_GOLDEN
        .iter()
        .map(|(c, _)| format!("{c}::text"))
        .collect();
    let row = c
        .query_one(
            &format!(
                "SELECT {}, raw::text, name, market_cap_rank FROM coingecko_data
                 WHERE coin_id = 'lossless' AND endpoint = 'markets'",
                cols.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    for (i, (col, want)) in MARKET_GOLDEN.iter().enumerate() {
        assert_eq!(row.get::<_, Option<String>>(i).as_deref(), *want, "{col}");
    }
    let n = MARKET_GOLDEN.len();
    assert_eq!(row.get::<_, String>(n), LOSSLESS, "raw = the payload bytes");
    assert_eq!(row.get::<_, String>(n + 1), "Lossl\u{e9}ss");
    assert_eq!(row.get::<_, i32>(n + 2), 42);
    let row = c
        .query_one(
            "SELECT price::text, market_cap::text, total_volume::text, price_change_pct_24h::text, raw::text
             FROM coingecko_data WHERE coin_id = 'lossless' AND endpoint = 'simple_price'",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<String> = (0..5).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        vec![
            "0.00000001234567890123",
            "589264883286605.2",
            "1234567890123456789012345",
            "-3.14159265358979323846",
            SIMPLE_LOSSLESS
        ]
    );
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM coingecko_data WHERE coin_id = 'toolarge'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "an unrepresentable number is not stored rounded");

    // News in PostgreSQL, and the sentiment scored on the decoded text.
    let rows = c
        .query(
            "SELECT item_key, title, summary FROM news ORDER BY item_key",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut want: Vec<(String, String, String)> = NEWS_GOLDEN
        .iter()
        .map(|(k, t, s)| (k.to_string(), t.to_string(), s.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let r = c
        .query_one(
            "SELECT compound, pos FROM sentiment WHERE item_key = 'news|guid:en-2'",
            &[],
        )
        .await
        .unwrap();
    // The default model: VADER with the crypto overlay.
    let scored = Vader::crypto().score(&format!("{}\n{}", NEWS_GOLDEN[1].1, NEWS_GOLDEN[1].2));
    assert_eq!(
        (r.get::<_, f64>(0), r.get::<_, f64>(1)),
        (scored.compound, scored.pos)
    );

    // MariaDB: DECIMAL(65,28) (every digit kept), the raw column, the news texts.
    let pool = mysql_async::Pool::new(my.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    for (col, want) in MARKET_GOLDEN_MYSQL {
        let got: Option<Option<String>> = conn
            .query_first(format!(
                "SELECT CAST({col} AS CHAR) FROM coingecko_data WHERE coin_id = 'lossless' AND endpoint = 'markets'"
            ))
            .await
            .unwrap();
        assert_eq!(got.flatten().as_deref(), *want, "MariaDB {col}");
    }
    let raw: Option<String> = conn
        .query_first(
            "SELECT raw FROM coingecko_data WHERE coin_id = 'lossless' AND endpoint = 'markets'",
        )
        .await
        .unwrap();
    assert_eq!(
        raw.as_deref(),
        Some(LOSSLESS),
        "MariaDB raw = the payload bytes"
    );
    let raw: Option<String> = conn
        .query_first(
            "SELECT raw FROM coingecko_data WHERE coin_id = 'lossless' AND endpoint = 'simple_price'",
        )
        .await
        .unwrap();
    assert_eq!(raw.as_deref(), Some(SIMPLE_LOSSLESS));
    let got: Vec<(String, String, String)> = conn
        .query("SELECT item_key, title, summary FROM news ORDER BY item_key")
        .await
        .unwrap();
    assert_eq!(got, want, "MariaDB news");
    drop(conn);
    pool.disconnect().await.unwrap();

    // JSON lines: the market record carries the exact decimals (as strings) and the raw bytes.
    let lines = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
    let market: serde_json::Value = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "polled" && v["coin_id"] == "lossless" && v["endpoint"] == "markets")
        .expect("the market record in JSON lines");
    assert_eq!(market["raw"].as_str(), Some(LOSSLESS));
    for (col, want) in MARKET_GOLDEN {
        assert_eq!(market[*col].as_str(), *want, "jsonl {col}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
