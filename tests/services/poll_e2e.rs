//! Every poller end to end: a local server on 127.0.0.1 plays CoinGecko, RSS/Atom feeds, Reddit
//! (anonymous and OAuth), FRED and the MyInvestor catalogue — payloads shaped like the real ones,
//! with the messy cases (missing guids, entities, CDATA, bad dates, a Latin-1 feed, a truncated
//! feed, nulls, `"."`, truncated JSON, a bad row) and misbehaviour (429 with Retry-After, a 500).
//! `cryptoflow run --pollers-only --poll-once` writes into PostgreSQL and MariaDB; the values are
//! checked against the payloads. A second run (a restart, with one new item per source and a FRED
//! revision) emits exactly the new items; a third (OAuth for Reddit) emits nothing.

use crate::support as common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::{fresh_database, fresh_mysql_database, pg_client};
use cryptoflow_operators::features::ContextItem;
use cryptoflow_operators::sentiment::{SentimentModel, Vader};
use cryptoflow_operators::Decimal;
use mysql_async::prelude::Queryable;

#[derive(Default)]
struct World {
    phase: AtomicU32,
    markets_hits: AtomicU32,
    flaky_hits: AtomicU32,
    oauth_listing_hits: AtomicU32,
    fred_urls: Mutex<Vec<String>>,
    bad_agent: AtomicU32,
}

type Q = Query<HashMap<String, String>>;

fn json(body: String) -> Response {
    ([("content-type", "application/json")], body).into_response()
}

fn xml(body: Vec<u8>) -> Response {
    ([("content-type", "application/rss+xml")], body).into_response()
}

fn market(id: &str, phase: u32) -> String {
    match id {
        "bitcoin" => {
            let (price, updated) = if phase == 1 {
                ("97123.45", "2026-11-22T06:59:48.123Z")
            } else {
                ("97200.5", "2026-11-22T07:04:48.000Z")
            };
            format!(
                r#"{{"id":"bitcoin","symbol":"btc","name":"Bitcoin","image":"https://x/btc.png","current_price":{price},
                "market_cap":1923456789012,"market_cap_rank":1,"fully_diluted_valuation":2040000000000,"total_volume":45678901234,
                "high_24h":98000.1,"low_24h":95000,"price_change_24h":-512.3,"price_change_percentage_24h":-0.52,
                "market_cap_change_24h":-1000000,"market_cap_change_percentage_24h":-0.05,"circulating_supply":19790000.0,
                "total_supply":21000000.0,"max_supply":21000000.0,"ath":108000,"ath_change_percentage":-10.1,
                "ath_date":"2025-10-06T00:00:00.000Z","atl":67.81,"atl_change_percentage":143000.5,
                "atl_date":"2013-07-06T00:00:00.000Z","roi":null,"last_updated":"{updated}"}}"#
            )
        }
        "ethereum" => include_str!("../fixtures/poll/coingecko/ethereum.json").to_string(),
        "pepe" => include_str!("../fixtures/poll/coingecko/pepe.json").to_string(),
        _ => String::new(),
    }
}

fn news_rss(phase: u32) -> Vec<u8> {
    let extra = if phase >= 2 {
        r#"<item><title>Solana ETF approved</title><link>https://news.example/sol-etf</link>
           <guid isPermaLink="true">https://news.example/sol-etf</guid><pubDate>Sun, 22 Nov 2026 07:30:00 +0000</pubDate>
           <description>$SOL jumps</description></item>"#
    } else {
        ""
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Example News</title>
<link>https://news.example/</link><description>Crypto news</description>
{extra}
<item><title><![CDATA[<b>Bitcoin</b> tops $100K &amp; Ether follows]]></title><link>https://news.example/btc-100k</link>
  <description>&lt;p&gt;Traders cheer &amp;amp; buy $DOGE&lt;/p&gt;</description><pubDate>Sat, 21 Nov 2026 10:00:00 GMT</pubDate>
  <guid isPermaLink="false">news-1</guid><dc:creator>A. Writer</dc:creator></item>
<item><title>Markets &#8217;calm&#8217; as XRP waits</title><link>https://news.example/xrp</link>
  <description>No guid, a date nobody can read.</description><pubDate>Saturday morning</pubDate></item>
<item><title>Future-dated story</title><link>https://news.example/future</link><guid>news-3</guid>
  <pubDate>Wed, 01 Jan 2031 00:00:00 GMT</pubDate><description>clock skew</description></item>
<item><description></description></item>
</channel></rss>"#
    )
    .into_bytes()
}

const ATOM: &str = include_str!("../fixtures/poll/news/atom_feed.xml");

fn latin1_rss() -> Vec<u8> {
    let mut b = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>ES</title><link>https://es.example/</link><description>x</description><item><title>Caf".to_vec();
    b.push(0xE9);
    b.extend_from_slice(b" y bitcoin: el d");
    b.push(0xED);
    b.extend_from_slice(b"a</title><link>https://es.example/1</link><guid>es-1</guid><pubDate>Sat, 21 Nov 2026 09:00:00 +0100</pubDate></item></channel></rss>");
    b
}

fn listing(children: &[String], after: Option<&str>) -> String {
    format!(
        r#"{{"kind":"Listing","data":{{"after":{},"dist":{},"modhash":"","geo_filter":"","children":[{}],"before":null}}}}"#,
        after.map(|a| format!("\"{a}\"")).unwrap_or("null".into()),
        children.len(),
        children.join(",")
    )
}

fn post_json(sub: &str, id: &str, title: &str, created: f64) -> String {
    format!(
        r#"{{"kind":"t3","data":{{"subreddit":"{sub}","selftext":"Holding $BTC and some ethereum","author_fullname":"t2_x",
        "title":"{title}","name":"t3_{id}","score":42,"num_comments":7,"id":"{id}","author":"hodler",
        "permalink":"/r/{sub}/comments/{id}/slug/","url":"https://www.reddit.com/r/{sub}/comments/{id}/slug/",
        "created_utc":{created},"over_18":false}}}}"#
    )
}

fn reddit_page(world: &World, sub: &str, q: &HashMap<String, String>) -> String {
    let phase = world.phase.load(Ordering::SeqCst);
    match (sub, q.get("after").map(String::as_str)) {
        ("Bitcoin", None) => {
            let mut c = Vec::new();
            if phase >= 2 {
                c.push(post_json(
                    "Bitcoin",
                    "b0",
                    "New ATH incoming",
                    1_795_340_000.0,
                ));
            }
            c.push(post_json(
                "Bitcoin",
                "b1",
                "BTC to the moon",
                1_795_330_000.0,
            ));
            c.push(post_json(
                "Bitcoin",
                "b2",
                "Is it too late?",
                1_795_320_000.5,
            ));
            listing(&c, Some("t3_b2"))
        }
        ("Bitcoin", Some("t3_b2")) => listing(
            &[
                post_json("Bitcoin", "b3", "Old post", 1_795_310_000.0),
                r#"{"kind":"t3","data":{"name":"t3_bad","selftext":"no title, no time"}}"#.into(),
            ],
            None,
        ),
        ("ethereum", None) => listing(
            &[post_json(
                "ethereum",
                "e1",
                "Gas fees are low",
                1_795_330_100.0,
            )],
            None,
        ),
        _ => listing(&[], None),
    }
}

fn fred_body(world: &World, series: &str) -> String {
    let phase = world.phase.load(Ordering::SeqCst);
    match series {
        "FEDFUNDS" => {
            let mut obs = vec![
                r#"{"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-08-01","value":"4.33"}"#,
                r#"{"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-09-01","value":"."}"#,
            ];
            if phase == 1 {
                obs.push(r#"{"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-10-01","value":"4.09"}"#);
            } else {
                obs.push(r#"{"realtime_start":"2026-11-23","realtime_end":"9999-12-31","date":"2026-10-01","value":"4.11"}"#);
            }
            format!(
                r#"{{"realtime_start":"2026-11-22","realtime_end":"2026-11-22","observation_start":"2015-01-01",
                "observation_end":"9999-12-31","units":"lin","output_type":1,"file_type":"json","order_by":"observation_date",
                "sort_order":"asc","count":{},"offset":0,"limit":100000,"observations":[{}]}}"#,
                obs.len(),
                obs.join(",")
            )
        }
        // Truncated mid-response.
        _ => r#"{"realtime_start":"2026-11-22","observations":[{"date":"2026-07-01","val"#.into(),
    }
}

const FUNDS: &str = r#"<!doctype html><html><head><title>Fondos</title></head><body>
<nav><table><tr><th>Menú</th></tr></table></nav>
<table class="fondos"><thead><tr><th>Nombre del fondo</th><th>ISIN</th><th>Divisa</th><th>Valor liquidativo</th>
<th>Fecha VL</th><th>Rentabilidad 1 año</th></tr></thead><tbody>
<tr><td>Vanguard Global Stock Index Fund EUR Acc</td><td>IE00B03HD191</td><td>EUR</td><td>45,6789</td><td>20/11/2026</td><td>12,3 %</td></tr>
<tr><td>Fidelity MSCI World Index Fund</td><td>IE00BYX5NX33</td><td>EUR</td><td>1.234,56</td><td>20/11/2026</td><td>11,0 %</td></tr>
<tr><td>iShares Developed World Index</td><td>IE00BD0NCM55</td><td>USD</td><td>18,1200</td><td>19/11/2026</td><td>9,9 %</td></tr>
<tr><td>Roto</td><td>XX0000000000</td><td>EUR</td><td>n/d</td><td>--</td><td></td></tr>
</tbody></table></body></html>"#;

async fn serve(world: Arc<World>) -> String {
    let w = world.clone();
    let markets = get(move |q: Q, h: HeaderMap| {
        let w = w.clone();
        async move {
            if h.get("x-cg-demo-api-key").and_then(|v| v.to_str().ok()) != Some("demo-key") {
                return (StatusCode::UNAUTHORIZED, "missing key").into_response();
            }
            if w.markets_hits.fetch_add(1, Ordering::SeqCst) == 0 {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#,
                )
                    .into_response();
            }
            let phase = w.phase.load(Ordering::SeqCst);
            let ids = q.get("ids").cloned().unwrap_or_default();
            let mut items: Vec<String> = ids
                .split(',')
                .map(|id| market(id, phase))
                .filter(|s| !s.is_empty())
                .collect();
            if ids.contains("pepe") {
                items.push(r#"{"symbol":"noid","current_price":1}"#.into());
            }
            json(format!("[{}]", items.join(",")))
        }
    });
    let w = world.clone();
    let simple = get(move |q: Q| {
        let w = w.clone();
        async move {
            let phase = w.phase.load(Ordering::SeqCst);
            let ids = q.get("ids").cloned().unwrap_or_default();
            let mut parts = Vec::new();
            for id in ids.split(',') {
                match id {
                    "bitcoin" => parts.push(format!(
                        r#""bitcoin":{{"usd":{},"usd_market_cap":1923456789012.4,"usd_24h_vol":45678901234.2,"usd_24h_change":-0.5213,"last_updated_at":{}}}"#,
                        if phase == 1 { "97123.45" } else { "97200.5" },
                        if phase == 1 { 1_795_330_788 } else { 1_795_331_088 }
                    )),
                    "ethereum" => parts.push(r#""ethereum":{"usd":3012.07,"usd_market_cap":362000000000,"usd_24h_vol":21000000000,"usd_24h_change":0.41,"last_updated_at":1795330790}"#.into()),
                    "pepe" => parts.push(r#""pepe":{"usd":1.234e-05,"usd_market_cap":null,"usd_24h_vol":null,"usd_24h_change":null,"last_updated_at":1795330680}"#.into()),
                    _ => {}
                }
            }
            json(format!("{{{}}}", parts.join(",")))
        }
    });
    let w = world.clone();
    let news = get(move |h: HeaderMap| {
        let w = w.clone();
        async move {
            let phase = w.phase.load(Ordering::SeqCst);
            let etag = format!("\"news-v{phase}\"");
            if h.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            let ua = h
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ua.contains("cryptoflow") {
                w.bad_agent.fetch_add(1, Ordering::SeqCst);
            }
            let mut r = xml(news_rss(phase));
            r.headers_mut().insert("etag", etag.parse().unwrap());
            r
        }
    });
    let w = world.clone();
    let flaky = get(move || {
        let w = w.clone();
        async move {
            if w.flaky_hits.fetch_add(1, Ordering::SeqCst) == 0 {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            } else {
                ([("content-type", "application/atom+xml")], ATOM).into_response()
            }
        }
    });
    let w = world.clone();
    let reddit_anon = get(
        move |Path(file): Path<(String, String)>, q: Q, h: HeaderMap| {
            let w = w.clone();
            async move {
                let ua = h
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !ua.contains("cryptoflow") {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        "use a descriptive User-Agent",
                    )
                        .into_response();
                }
                let (sub, _) = file;
                if q.get("raw_json").map(String::as_str) != Some("1") {
                    // Without it Reddit sends titles and selftext HTML-escaped.
                    return (StatusCode::BAD_REQUEST, "ask for raw_json=1").into_response();
                }
                let mut r = json(reddit_page(&w, &sub, &q));
                let h = r.headers_mut();
                h.insert("x-ratelimit-used", "1".parse().unwrap());
                h.insert("x-ratelimit-remaining", "99".parse().unwrap());
                h.insert("x-ratelimit-reset", "300".parse().unwrap());
                r
            }
        },
    );
    let w = world.clone();
    let reddit_oauth = get(move |Path(sub): Path<String>, q: Q, h: HeaderMap| {
        let w = w.clone();
        async move {
            if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("bearer tok-123") {
                return (StatusCode::UNAUTHORIZED, "bad token").into_response();
            }
            if q.get("raw_json").map(String::as_str) != Some("1") {
                return (StatusCode::BAD_REQUEST, "ask for raw_json=1").into_response();
            }
            w.oauth_listing_hits.fetch_add(1, Ordering::SeqCst);
            json(reddit_page(&w, &sub, &q))
        }
    });
    let token = post(|h: HeaderMap, body: Bytes| async move {
        // "client:secret" in Basic auth.
        let ok_auth = h.get("authorization").and_then(|v| v.to_str().ok())
            == Some("Basic Y2xpZW50OnNlY3JldA==");
        if !ok_auth || body.as_ref() != b"grant_type=client_credentials" {
            return (StatusCode::UNAUTHORIZED, "bad client").into_response();
        }
        json(
            r#"{"access_token":"tok-123","token_type":"bearer","expires_in":86400,"scope":"*"}"#
                .into(),
        )
    });
    let w = world.clone();
    let fred = get(move |q: Q| {
        let w = w.clone();
        async move {
            if q.get("api_key").map(String::as_str) != Some("fred-key")
                || q.get("file_type").map(String::as_str) != Some("json")
            {
                return (StatusCode::BAD_REQUEST, r#"{"error_code":400,"error_message":"Bad Request.  The value for variable api_key is not registered."}"#).into_response();
            }
            let series = q.get("series_id").cloned().unwrap_or_default();
            w.fred_urls.lock().unwrap().push(format!(
                "{series}@{}",
                q.get("observation_start").cloned().unwrap_or_default()
            ));
            json(fred_body(&w, &series))
        }
    });
    let app = Router::new()
        .route("/cg/api/v3/coins/markets", markets)
        .route("/cg/api/v3/simple/price", simple)
        .route("/feeds/news.xml", news)
        .route("/feeds/atom.xml", flaky)
        .route("/feeds/latin1.xml", get(|| async { xml(latin1_rss()) }))
        .route(
            "/feeds/broken.xml",
            get(|| async { xml(b"<rss version=\"2.0\"><channel><item><title>cut".to_vec()) }),
        )
        .route("/reddit/r/{sub}/{file}", reddit_anon)
        .route("/reddit-oauth/r/{sub}/new", reddit_oauth)
        .route("/reddit/api/v1/access_token", token)
        .route("/fred/fred/series/observations", fred)
        .route(
            "/mi/fondos",
            get(|| async {
                ([("content-type", "text/html; charset=utf-8")], FUNDS).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(base: &str, state: &std::path::Path) -> String {
    format!(
        r#"
[sinks]
console = false

[poll]
enabled = true
state_dir = "{state}"
retry_after_failure_s = 1

[poll.coingecko]
base_url = "{base}/cg/api/v3"
coins = ["bitcoin", "ethereum", "pepe"]
ids_per_request = 2
per_minute = 600.0

[poll.rss]
feeds = ["{base}/feeds/news.xml", "{base}/feeds/atom.xml", "{base}/feeds/latin1.xml", "{base}/feeds/broken.xml"]
per_minute = 600.0

[poll.reddit]
subreddits = ["Bitcoin", "ethereum"]
base_url = "{base}/reddit"
oauth_url = "{base}/reddit-oauth"
token_url = "{base}/reddit/api/v1/access_token"
per_minute = 600.0

[poll.fred]
base_url = "{base}/fred"
series = ["FEDFUNDS", "GDP"]
start = "2026-01-01"
revision_lookback_days = 30

[poll.myinvestor]
url = "{base}/mi/fondos"
per_minute = 600.0
"#,
        state = state.display()
    )
}

/// Runs one `--poll-once` round; returns `poller → (emitted, duplicates, errors)`.
fn poll_once(
    cfg: &std::path::Path,
    pg: &str,
    mysql: &str,
    env: &[(&str, &str)],
) -> HashMap<String, (u64, u64, u64)> {
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
        .env_remove("REDDIT_CLIENT_ID")
        .env_remove("REDDIT_CLIENT_SECRET")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "run failed:\n{err}");
    let m = common::poller_counts(&err);
    assert_eq!(m.len(), 5, "every poller reports:\n{err}");
    m
}

async fn pg_counts(url: &str) -> [i64; 5] {
    let c = pg_client(url).await;
    let mut out = [0i64; 5];
    for (i, t) in [
        "coingecko_data",
        "news",
        "social_posts",
        "macro_observations",
        "fund_navs",
    ]
    .iter()
    .enumerate()
    {
        out[i] = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
    }
    out
}

async fn my_counts(url: &str) -> [i64; 5] {
    let pool = mysql_async::Pool::new(url);
    let mut conn = pool.get_conn().await.unwrap();
    let mut out = [0i64; 5];
    for (i, t) in [
        "coingecko_data",
        "news",
        "social_posts",
        "macro_observations",
        "fund_navs",
    ]
    .iter()
    .enumerate()
    {
        out[i] = conn
            .query_first::<i64, _>(format!("SELECT count(*) FROM {t}"))
            .await
            .unwrap()
            .unwrap();
    }
    drop(conn);
    pool.disconnect().await.unwrap();
    out
}

/// The dataflow's per-coin windows (differential) against a recomputation from the stored
/// `sentiment` rows: every window within the retention horizon of its coin's newest item is
/// stored, with the count, mean and shares of exactly the items it holds.
async fn check_sentiment_windows(c: &tokio_postgres::Client) {
    let items: Vec<(String, Vec<String>, i64, f64)> = c
        .query(
            "SELECT model, coins, (extract(epoch FROM published_at) * 1000)::int8, compound FROM sentiment",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut newest: HashMap<String, i64> = HashMap::new();
    for (_, coins, at, _) in &items {
        for coin in coins {
            let e = newest.entry(coin.clone()).or_insert(*at);
            *e = (*e).max(*at);
        }
    }
    // (coin, model, span, end) → compounds, by brute force over candidate ends.
    let mut want: HashMap<(String, String, String, i64), Vec<f64>> = HashMap::new();
    for (model, coins, at, compound) in &items {
        for coin in coins {
            for (label, span, step) in [
                ("1h", 3_600_000i64, 300_000i64),
                ("24h", 86_400_000, 3_600_000),
            ] {
                let mut end = at.div_euclid(step) * step - span;
                while end <= at + span {
                    if end - span < *at && *at <= end && end >= newest[coin] - 48 * 3_600_000 {
                        want.entry((coin.clone(), model.clone(), label.into(), end))
                            .or_default()
                            .push(*compound);
                    }
                    end += step;
                }
            }
        }
    }
    let rows = c
        .query(
            "SELECT coin, model, span, (extract(epoch FROM window_end) * 1000)::int8, items,
                    mean_compound, positive_share, negative_share
             FROM sentiment_coin_windows",
            &[],
        )
        .await
        .unwrap();
    assert!(!want.is_empty());
    assert_eq!(rows.len(), want.len(), "stored windows vs recomputed");
    for r in rows {
        let key: (String, String, String, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let xs = want
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected window {key:?}"));
        let n = xs.len() as f64;
        assert_eq!(r.get::<_, i64>(4), xs.len() as i64, "{key:?}");
        let mean = xs.iter().sum::<f64>() / n;
        let pos = xs.iter().filter(|x| **x >= 0.05).count() as f64 / n;
        let neg = xs.iter().filter(|x| **x <= -0.05).count() as f64 / n;
        assert!((r.get::<_, f64>(5) - mean).abs() < 1e-9, "{key:?}");
        assert_eq!(
            (r.get::<_, f64>(6), r.get::<_, f64>(7)),
            (pos, neg),
            "{key:?}"
        );
    }
}

/// A client no one here wrote (Python confluent-kafka + jsonschema) reads crypto-sentiment:
/// every item once and at least one message per stored window, all valid, keyed by coin.
async fn check_sentiment_topic(c: &tokio_postgres::Client, brokers: &str, topic: &str) {
    let windows: i64 = c
        .query_one("SELECT count(*) FROM sentiment_coin_windows", &[])
        .await
        .unwrap()
        .get(0);
    let items: i64 = c
        .query_one("SELECT count(*) FROM sentiment", &[])
        .await
        .unwrap()
        .get(0);
    let res = common::python_schema_check(
        brokers,
        &[format!("sentiment={topic}:{}", items + windows)],
        &["--timeout", "60", "--drain", "3"],
    )
    .await;
    assert_eq!(res[topic]["types"]["item"], items, "{res}");
    assert!(
        res[topic]["types"]["window"].as_i64().unwrap() >= windows,
        "{res}"
    );
    assert_eq!(res[topic]["invalid"], 0, "{res}");
    assert_eq!(res[topic]["bad_keys"], 0, "{res}");
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_poller_into_postgres_and_mariadb_without_duplicates_across_restarts() {
    let world = Arc::new(World::default());
    world.phase.store(1, Ordering::SeqCst);
    let base = serve(world.clone()).await;
    let dir = std::env::temp_dir().join(format!("cf-poll-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("poll.toml");
    std::fs::write(&cfg_path, config(&base, &dir.join("state"))).unwrap();
    let pg = fresh_database("poll").await;
    cryptoflow_sinks::postgres::migrate(&pg).await.unwrap();
    let my = fresh_mysql_database("poll").await;
    cryptoflow_sinks::mysql::migrate(&my).await.unwrap();
    let keys = [
        ("COINGECKO_API_KEY", "demo-key"),
        ("FRED_API_KEY", "fred-key"),
    ];

    // Run 1, also publishing to Kafka (crypto-sentiment: item scores and window values).
    let brokers = common::kafka_brokers();
    let sentiment_topic = common::unique_suffix("crypto-sentiment-poll");
    common::create_topic(&brokers, &sentiment_topic, 2).await;
    let (cfg1, pg1, my1) = (cfg_path.clone(), pg.clone(), my.clone());
    let (b1, t1) = (brokers.clone(), sentiment_topic.clone());
    let r1 = tokio::task::spawn_blocking(move || {
        let mut env = keys.to_vec();
        env.push(("CRYPTOFLOW__SINKS__KAFKA__BROKERS", &b1));
        env.push(("CRYPTOFLOW__SINKS__KAFKA__TOPICS__SENTIMENT", &t1));
        poll_once(&cfg1, &pg1, &my1, &env)
    })
    .await
    .unwrap();
    // coingecko: 3 markets + 3 simple; one coin object without id.
    assert_eq!(r1["coingecko"], (6, 0, 1), "{r1:?}");
    // rss: news.xml 3 usable items (one item with neither title nor summary), atom 1 (after a
    // 500), latin-1 1; broken.xml is a parse error.
    assert_eq!(r1["rss"], (5, 0, 2), "{r1:?}");
    // reddit: b1, b2 (page 1), b3 (page 2; one bad child), e1.
    assert_eq!(r1["reddit"], (4, 0, 1), "{r1:?}");
    // fred: FEDFUNDS 3 observations; GDP truncated.
    assert_eq!(r1["fred"], (3, 0, 1), "{r1:?}");
    // myinvestor: 3 funds, one unreadable row.
    assert_eq!(r1["myinvestor"], (3, 0, 1), "{r1:?}");
    assert_eq!(pg_counts(&pg).await, [6, 5, 4, 3, 3]);
    assert_eq!(my_counts(&my).await, [6, 5, 4, 3, 3]);
    assert!(
        world.markets_hits.load(Ordering::SeqCst) >= 3,
        "the 429 was retried"
    );
    assert_eq!(
        world.flaky_hits.load(Ordering::SeqCst),
        2,
        "the 500 was retried once"
    );
    assert_eq!(world.bad_agent.load(Ordering::SeqCst), 0);

    let c = pg_client(&pg).await;
    // CoinGecko values, exact and NULL where the API had null.
    let r = c
        .query_one(
            "SELECT price, market_cap, market_cap_rank, circulating_supply, last_updated = '2026-11-22T06:59:48.123Z'::timestamptz,
                    raw->>'ath_date', symbol, name FROM coingecko_data WHERE coin_id = 'bitcoin' AND endpoint = 'markets'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, Decimal>(0), d("97123.45"));
    assert_eq!(r.get::<_, Decimal>(1), d("1923456789012"));
    assert_eq!(r.get::<_, i32>(2), 1);
    assert_eq!(r.get::<_, Decimal>(3), d("19790000"));
    assert!(r.get::<_, bool>(4));
    assert_eq!(r.get::<_, String>(5), "2025-10-06T00:00:00.000Z");
    assert_eq!(
        (r.get::<_, String>(6), r.get::<_, String>(7)),
        ("btc".into(), "Bitcoin".into())
    );
    let r = c
        .query_one("SELECT price, market_cap IS NULL, market_cap_rank IS NULL, total_supply IS NULL FROM coingecko_data WHERE coin_id = 'pepe' AND endpoint = 'markets'", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Decimal>(0), d("0.00001234"));
    assert!(r.get::<_, bool>(1) && r.get::<_, bool>(2) && r.get::<_, bool>(3));
    let r = c
        .query_one("SELECT market_cap, price_change_pct_24h, last_updated = to_timestamp(1795330788) FROM coingecko_data WHERE coin_id = 'bitcoin' AND endpoint = 'simple_price'", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Decimal>(0), d("1923456789012.4"));
    assert_eq!(r.get::<_, Decimal>(1), d("-0.5213"));
    assert!(r.get::<_, bool>(2));

    // News: HTML stripped, entities decoded, keys, date fallbacks, coin tags.
    let rows = c
        .query("SELECT item_key, title, summary, published_from, published_at = fetched_at, coins, link FROM news ORDER BY title", &[])
        .await
        .unwrap();
    let by_title: HashMap<String, &tokio_postgres::Row> =
        rows.iter().map(|r| (r.get::<_, String>(1), r)).collect();
    let btc = by_title["Bitcoin tops $100K & Ether follows"];
    assert_eq!(btc.get::<_, String>(0), "guid:news-1");
    assert_eq!(btc.get::<_, String>(2), "Traders cheer & buy $DOGE");
    assert_eq!(btc.get::<_, String>(3), "published");
    assert_eq!(btc.get::<_, Vec<String>>(5), vec!["BTC", "DOGE", "ETH"]);
    let xrp = by_title["Markets \u{2019}calm\u{2019} as XRP waits"];
    assert!(
        xrp.get::<_, String>(0).starts_with("link-sha256:"),
        "no guid: the link's hash"
    );
    assert_eq!(
        xrp.get::<_, String>(3),
        "fetched",
        "unreadable date: the fetch time"
    );
    assert!(xrp.get::<_, bool>(4));
    assert_eq!(xrp.get::<_, Vec<String>>(5), vec!["XRP"]);
    let fut = by_title["Future-dated story"];
    assert_eq!(
        fut.get::<_, String>(3),
        "fetched",
        "a date years ahead is not believed"
    );
    let eth = by_title["Ethereum soars after upgrade"];
    assert_eq!(eth.get::<_, String>(0), "guid:urn:atom-news:1");
    assert_eq!(eth.get::<_, String>(2), "Cardano too.");
    assert_eq!(
        eth.get::<_, Option<String>>(6).as_deref(),
        Some("https://atom.example/eth")
    );
    assert_eq!(eth.get::<_, Vec<String>>(5), vec!["ADA", "ETH"]);
    assert!(
        by_title.contains_key("Café y bitcoin: el día"),
        "Latin-1 decoded: {:?}",
        by_title.keys()
    );
    let r = c
        .query_one("SELECT published_at = '2026-11-21T11:00:00Z'::timestamptz FROM news WHERE item_key = 'guid:urn:atom-news:1'", &[])
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0), "Atom: published before updated");

    // Reddit.
    let r = c
        .query_one("SELECT community, author, score, num_comments, created_at = to_timestamp(1795320000.5), coins, permalink FROM social_posts WHERE post_id = 't3_b2'", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "Bitcoin");
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("hodler"));
    assert_eq!((r.get::<_, i64>(2), r.get::<_, i64>(3)), (42, 7));
    assert!(r.get::<_, bool>(4));
    assert_eq!(r.get::<_, Vec<String>>(5), vec!["BTC", "ETH"]);
    assert_eq!(
        r.get::<_, Option<String>>(6).as_deref(),
        Some("https://www.reddit.com/r/Bitcoin/comments/b2/slug/")
    );

    // FRED: "." is NULL, vintages kept.
    let rows = c
        .query("SELECT date::text, value, realtime_start::text, realtime_end::text FROM macro_observations WHERE series_id = 'FEDFUNDS' ORDER BY date", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<_, Option<Decimal>>(1), Some(d("4.33")));
    assert_eq!(rows[1].get::<_, Option<Decimal>>(1), None);
    assert_eq!(rows[2].get::<_, String>(2), "2026-11-22");
    assert_eq!(rows[2].get::<_, String>(3), "9999-12-31");

    // MyInvestor: Spanish numbers and dates.
    let rows = c
        .query(
            "SELECT isin, name, currency, nav, nav_date::text FROM fund_navs ORDER BY isin",
            &[],
        )
        .await
        .unwrap();
    let navs: Vec<(String, String, Decimal, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        navs,
        vec![
            (
                "IE00B03HD191".into(),
                "EUR".into(),
                d("45.6789"),
                "2026-11-20".into()
            ),
            (
                "IE00BD0NCM55".into(),
                "USD".into(),
                d("18.12"),
                "2026-11-19".into()
            ),
            (
                "IE00BYX5NX33".into(),
                "EUR".into(),
                d("1234.56"),
                "2026-11-20".into()
            ),
        ]
    );

    // Every news item and post is scored once (the default model, VADER + the crypto overlay,
    // checked against Python in operators/tests/vader_parity.rs).
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM sentiment WHERE model = 'vader-3.3.2+crypto'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 9);
    let r = c
        .query_one(
            "SELECT kind, compound, pos, coins FROM sentiment WHERE item_key = 'news|guid:news-1'",
            &[],
        )
        .await
        .unwrap();
    let want =
        Vader::crypto().score("Bitcoin tops $100K & Ether follows\nTraders cheer & buy $DOGE");
    assert_eq!(r.get::<_, String>(0), "news");
    assert_eq!(
        (r.get::<_, f64>(1), r.get::<_, f64>(2)),
        (want.compound, want.pos)
    );
    assert!(want.compound > 0.0);
    assert_eq!(r.get::<_, Vec<String>>(3), vec!["BTC", "DOGE", "ETH"]);

    // Rolling per-coin aggregates: XRP is mentioned once, by an item dated at its fetch time.
    let rows = c
        .query("SELECT span, items, mean_compound FROM sentiment_coin_rolling WHERE coin = 'XRP' ORDER BY span", &[])
        .await
        .unwrap();
    let xrp = Vader::crypto()
        .score("Markets \u{2019}calm\u{2019} as XRP waits\nNo guid, a date nobody can read.");
    let got: Vec<(String, i64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("1h".into(), 1, xrp.compound),
            ("24h".into(), 1, xrp.compound)
        ]
    );
    check_sentiment_windows(&c).await;
    check_sentiment_topic(&c, &brokers, &sentiment_topic).await;
    {
        let pool = mysql_async::Pool::new(my.as_str());
        let mut conn = pool.get_conn().await.unwrap();
        let got: Vec<(String, i64)> = conn
            .query(
                "SELECT span, items FROM sentiment_coin_rolling WHERE coin = 'XRP' ORDER BY span",
            )
            .await
            .unwrap();
        assert_eq!(got, vec![("1h".into(), 1), ("24h".into(), 1)]);
        let n: Option<i64> = conn
            .query_first("SELECT count(*) FROM sentiment")
            .await
            .unwrap();
        assert_eq!(n, Some(9));
        let my_windows: Vec<(String, String, i64, f64)> = conn
            .query(
                "SELECT coin, span, CAST(UNIX_TIMESTAMP(window_end) * 1000 AS SIGNED), mean_compound
                 FROM sentiment_coin_windows ORDER BY coin, span, window_end",
            )
            .await
            .unwrap();
        let pg_windows: Vec<(String, String, i64, f64)> = c
            .query(
                "SELECT coin, span, (extract(epoch FROM window_end) * 1000)::int8, mean_compound
                 FROM sentiment_coin_windows ORDER BY coin, span, window_end",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(my_windows.len(), pg_windows.len());
        for (a, b) in my_windows.iter().zip(&pg_windows) {
            assert_eq!((&a.0, &a.1, a.2), (&b.0, &b.1, b.2));
            assert!((a.3 - b.3).abs() < 1e-12, "{a:?} {b:?}");
        }
        drop(conn);
        pool.disconnect().await.unwrap();
    }

    // The errors are counted in the data-quality ledger.
    let rows = c
        .query("SELECT symbol, max(frames), max(trades), max(decode_errors) FROM data_quality WHERE source = 'poll' GROUP BY symbol ORDER BY symbol", &[])
        .await
        .unwrap();
    let ledger: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        ledger,
        vec![
            ("COINGECKO".into(), 4, 6, 1),
            ("FRED".into(), 2, 3, 1),
            ("MYINVESTOR".into(), 1, 3, 1),
            ("REDDIT".into(), 3, 4, 1),
            ("RSS".into(), 4, 5, 2),
        ]
    );

    // Run 2: a restart with one new item per source (and a FRED revision): only those are emitted.
    world.phase.store(2, Ordering::SeqCst);
    let (cfg2, pg2, my2) = (cfg_path.clone(), pg.clone(), my.clone());
    let r2 = tokio::task::spawn_blocking(move || poll_once(&cfg2, &pg2, &my2, &keys))
        .await
        .unwrap();
    assert_eq!(
        r2["coingecko"].0, 2,
        "bitcoin updated on both endpoints: {r2:?}"
    );
    assert_eq!(r2["rss"].0, 1, "{r2:?}");
    assert_eq!(r2["reddit"].0, 1, "{r2:?}");
    assert_eq!(r2["fred"].0, 1, "the revision: {r2:?}");
    assert_eq!(r2["myinvestor"], (0, 3, 1), "{r2:?}");
    assert_eq!(pg_counts(&pg).await, [8, 6, 5, 4, 3]);
    assert_eq!(my_counts(&my).await, [8, 6, 5, 4, 3]);
    let fred_urls = world.fred_urls.lock().unwrap().clone();
    assert!(
        fred_urls.contains(&"FEDFUNDS@2026-01-01".to_string()),
        "{fred_urls:?}"
    );
    assert!(
        fred_urls.contains(&"FEDFUNDS@2026-09-01".to_string()),
        "incremental from the last stored date (2026-10-01) minus 30 days: {fred_urls:?}"
    );
    let rows = c
        .query("SELECT value, realtime_start::text FROM macro_observations WHERE series_id = 'FEDFUNDS' AND date = '2026-10-01' ORDER BY realtime_start", &[])
        .await
        .unwrap();
    let vintages: Vec<(Option<Decimal>, String)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        vintages,
        vec![
            (Some(d("4.09")), "2026-11-22".into()),
            (Some(d("4.11")), "2026-11-23".into())
        ]
    );

    // What a restart feeds back: the stored sentiment within 49 h of each coin's newest item,
    // every FRED vintage, the latest CoinGecko markets snapshot per coin.
    let restored =
        cryptoflow_sinks::postgres::restore_context(&pg, "vader-3.3.2+crypto", 49 * 3_600_000)
            .await
            .unwrap();
    let count = |f: fn(&ContextItem) -> bool| restored.iter().filter(|c| f(c)).count();
    let tagged: i64 = c
        .query_one(
            "SELECT count(*) FROM sentiment WHERE cardinality(coins) > 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        count(|c| matches!(c, ContextItem::Sentiment(_))) as i64,
        tagged
    );
    // FEDFUNDS: 3 observations and the revision's second vintage.
    assert_eq!(count(|c| matches!(c, ContextItem::Macro(_))), 4);
    let markets: Vec<&str> = restored
        .iter()
        .filter_map(|c| match c {
            ContextItem::Market(m) => Some(m.coin_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(markets.len(), 3, "{markets:?}");
    assert!(restored.iter().all(|c| match c {
        ContextItem::Market(m) => m.endpoint == "markets" && !m.raw.is_empty(),
        _ => true,
    }));

    // The restart restored the stored sentiment: windows holding items of both runs are whole.
    check_sentiment_windows(&c).await;

    // Run 3: Reddit over OAuth, nothing new anywhere: nothing emitted, no row added.
    let keys3 = [
        ("COINGECKO_API_KEY", "demo-key"),
        ("FRED_API_KEY", "fred-key"),
        ("REDDIT_CLIENT_ID", "client"),
        ("REDDIT_CLIENT_SECRET", "secret"),
    ];
    let (cfg3, pg3, my3) = (cfg_path.clone(), pg.clone(), my.clone());
    let r3 = tokio::task::spawn_blocking(move || poll_once(&cfg3, &pg3, &my3, &keys3))
        .await
        .unwrap();
    for (name, (emitted, _, _)) in &r3 {
        assert_eq!(*emitted, 0, "{name} re-emitted after a restart: {r3:?}");
    }
    assert!(
        world.oauth_listing_hits.load(Ordering::SeqCst) >= 2,
        "OAuth listings used"
    );
    assert_eq!(r3["reddit"].1, 5, "all 5 posts seen again, none emitted");
    assert_eq!(pg_counts(&pg).await, [8, 6, 5, 4, 3]);
    let n: i64 = c
        .query_one("SELECT count(*) FROM sentiment", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 11, "scored once each");
    let _ = std::fs::remove_dir_all(&dir);
}
