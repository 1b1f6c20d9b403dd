//! Binance futures as venues of their own, against local fake servers speaking the documented
//! futures payloads: a USDⓈ-M `aggTrade` stream cut mid-run has its hole refilled from
//! `/fapi/v1/aggTrades` (every id once, 429 honoured, weight 20 per page within the budget); a
//! COIN-M `BTCUSD_PERP` `trade` stream refills from `/dapi/v1/historicalTrades` with the API key
//! header, keeps insurance-fund fills off the tape without calling their ids a hole, and values
//! trades in contracts × 100 USD; every event, gap and ledger row names its venue.

use crate::support as common;

use common::binance::{scripted_ws, Step, TradeHistory};
use common::{collect_live, trade_ids};
use std::collections::HashMap;
use std::time::Duration;

use cryptoflow_operators::model::{Event, GapReason, Symbol, Venue};
use cryptoflow_operators::Decimal;
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::stats::SourceStats;
use cryptoflow_sources::ws::WsConfig;

const T0: i64 = 1_700_000_000_000;

fn price(id: u64) -> String {
    format!("{}.{:01}", 37000 + id % 40, id % 10)
}

/// USDⓈ-M `<symbol>@aggTrade` in the combined wrapper, shaped as documented (no `M`).
fn usdm_agg(id: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{e},"s":"BTCUSDT","a":{id},"p":"{p}","q":"0.010","f":{f},"l":{l},"T":{ts},"m":{m}}}}}"#,
        e = T0 + id as i64 + 1,
        ts = T0 + id as i64,
        p = price(id),
        f = id * 3,
        l = id * 3 + 2,
        m = id.is_multiple_of(2)
    )
}

/// The documented response item of GET /fapi/v1/aggTrades (ids up to 10,000).
fn fapi_item(id: u64) -> Option<String> {
    (id <= 10_000).then(|| {
        format!(
            r#"{{"a":{id},"p":"{p}","q":"0.010","f":{f},"l":{l},"T":{ts},"m":{m}}}"#,
            p = price(id),
            f = id * 3,
            l = id * 3 + 2,
            ts = T0 + id as i64,
            m = id.is_multiple_of(2)
        )
    })
}

/// Plays `frames(conn)` on each connection, then drops the first connection and keeps later
/// ones open.
fn cut_first(frames: impl Fn(usize) -> Vec<String>) -> impl Fn(usize) -> Vec<Step> {
    move |conn| {
        let mut steps: Vec<Step> = frames(conn).into_iter().map(Step::Text).collect();
        steps.push(if conn == 1 {
            Step::Drop(Duration::from_millis(50))
        } else {
            Step::Hold
        });
        steps
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdm_cut_is_refilled_from_fapi_agg_trades() {
    // Connection 1: ids 1..=300, then cut. Connection 2: 1200..=1500 with a duplicate of 1300
    // and an in-connection hole 1400..=1409.
    let ws = scripted_ws(cut_first(|conn| {
        if conn == 1 {
            (1..=300).map(usdm_agg).collect()
        } else {
            let mut v = Vec::new();
            for id in 1200..=1500u64 {
                if (1400..=1409).contains(&id) {
                    continue;
                }
                v.push(usdm_agg(id));
                if id == 1300 {
                    v.push(usdm_agg(id));
                }
            }
            v
        }
    }))
    .await;
    let api = TradeHistory {
        symbol: Some("BTCUSDT"),
        weight: Some(20),
        throttle_first: Some(r#"{"code":-1003,"msg":"Too many requests"}"#),
        ..TradeHistory::new("/fapi/v1/aggTrades", fapi_item)
    };
    let log = api.log.clone();
    let rest_url = api.serve().await;

    let cfg = WsConfig {
        venue: Venue::BinanceUsdm,
        base_url: ws.url(),
        streams: vec!["btcusdt@aggTrade".into()],
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    };
    // Three pages of weight 20 fit the budget of 60 per window; a fourth would wait.
    let budget = 60;
    let rest = RestConfig {
        venue: Venue::BinanceUsdm,
        base_url: rest_url,
        weight_budget_per_minute: budget,
        ..RestConfig::default()
    };
    let (events, stats) = collect_live(cfg, Some(rest), Duration::from_secs(30), |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Trade(t) if t.trade_id == 1500))
    })
    .await;

    // Every aggregate id once, in order: the cut (301..=1199) and the hole refilled.
    assert_eq!(trade_ids(&events), (1..=1500).collect::<Vec<u64>>());
    for e in &events {
        match e {
            Event::Trade(t) => {
                assert_eq!(
                    (t.venue, t.symbol.as_str()),
                    (Venue::BinanceUsdm, "BTCUSDT")
                );
                assert_eq!(t.notional(), t.price * Decimal::new(10, 3));
            }
            Event::Gap(g) => assert_eq!(g.venue, Venue::BinanceUsdm),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A refilled trade carries the REST item's values, with its aggregate ids.
    let t700 = events
        .iter()
        .find_map(|e| match e {
            Event::Trade(t) if t.trade_id == 700 => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (t700.price.to_string(), t700.ts_exchange),
        (price(700), T0 + 700)
    );
    assert_eq!(
        t700.agg.map(|a| (a.first_trade_id, a.last_trade_id)),
        Some((2100, 2102))
    );
    let holes: Vec<(u64, u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(g) if g.reason == GapReason::IdHole => {
                Some((g.from_id.unwrap(), g.to_id.unwrap(), g.refilled))
            }
            _ => None,
        })
        .collect();
    assert_eq!(holes, vec![(301, 1199, true), (1400, 1409, true)]);
    assert_eq!(SourceStats::get(&stats.duplicates), 1);
    assert_eq!(SourceStats::get(&stats.ids_refilled), 899 + 10);

    // The combined-stream path, as on fstream.binance.com.
    let paths = ws.log.lock().unwrap().paths.clone();
    assert!(paths.len() >= 2);
    assert!(paths
        .iter()
        .all(|p| p == "/stream?streams=btcusdt@aggTrade"));

    // REST: futures paths and parameters; the 429 was waited out (Retry-After: 1 s); pages
    // only ask for missing ids, ≤ 1000 each; no window saw more than the budget's weight.
    let log = log.lock().unwrap();
    assert!(log.iter().all(|r| r.path == "/fapi/v1/aggTrades"));
    assert_eq!(log[0].status, 429);
    assert!(log[1].at.duration_since(log[0].at) >= Duration::from_millis(990));
    assert_eq!(
        (
            log[1].query["fromId"].as_str(),
            log[1].query["limit"].as_str()
        ),
        ("301", "899")
    );
    let ok: Vec<_> = log.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 2, "one page per hole");
    assert!(log.len() as u32 * 20 <= budget);

    // The ledger counts under the venue's name.
    let row = stats.ledger.get("binance-usdm", "BTCUSDT").unwrap();
    assert_eq!(
        (row.ids_refilled, row.gaps_refilled, row.duplicates),
        (909, 2, 1)
    );
    assert!(stats.ledger.get("binance", "BTCUSDT").is_none());
}

/// Futures `<symbol>@trade` with its `X` field.
fn coinm_trade(id: u64, x: &str) -> String {
    format!(
        r#"{{"stream":"btcusd_perp@trade","data":{{"e":"trade","E":{e},"T":{ts},"s":"BTCUSD_PERP","t":{id},"p":"{p}","q":"{q}","X":"{x}","m":{m}}}}}"#,
        e = T0 + id as i64 + 1,
        ts = T0 + id as i64,
        p = price(id),
        q = 1 + id % 7,
        m = id.is_multiple_of(2)
    )
}

/// The documented COIN-M `historicalTrades` item (`baseQty` in coin); insurance-fund fills
/// (id 150) are not listed.
fn dapi_item(id: u64) -> Option<String> {
    (id != 150).then(|| {
        format!(
            r#"{{"id":{id},"price":"{p}","qty":"{q}","baseQty":"0.01","time":{ts},"isBuyerMaker":{m}}}"#,
            p = price(id),
            q = 1 + id % 7,
            ts = T0 + id as i64,
            m = id.is_multiple_of(2)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinm_perp_refills_with_the_api_key_and_keeps_off_book_fills_off_the_tape() {
    // Connection 1: 1..=100 (id 60 an insurance-fund fill), cut. Connection 2: 200..=260 (id
    // 230 an ADL fill), where the hole 101..=199 contains 150, which the API does not list.
    let ws = scripted_ws(cut_first(|conn| {
        let ids: Vec<u64> = if conn == 1 {
            (1..=100).collect()
        } else {
            (200..=260).collect()
        };
        ids.into_iter()
            .map(|id| {
                let x = match id {
                    60 => "INSURANCE_FUND",
                    230 => "ADL",
                    _ => "MARKET",
                };
                coinm_trade(id, x)
            })
            .collect()
    }))
    .await;
    let api = TradeHistory {
        symbol: Some("BTCUSD_PERP"),
        need_key: true,
        ..TradeHistory::new("/dapi/v1/historicalTrades", dapi_item)
    };
    let log = api.log.clone();
    let rest_url = api.serve().await;
    let cfg = WsConfig {
        venue: Venue::BinanceCoinm,
        base_url: ws.url(),
        streams: vec!["btcusd_perp@trade".into()],
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let rest = RestConfig {
        venue: Venue::BinanceCoinm,
        base_url: rest_url,
        api_key: Some("test-key".into()),
        ..RestConfig::default()
    };
    let (events, stats) = collect_live(cfg, Some(rest), Duration::from_secs(30), |ev| {
        ev.iter()
            .any(|e| matches!(e, Event::Trade(t) if t.trade_id == 260))
    })
    .await;

    let want: Vec<u64> = (1..=260)
        .filter(|id| ![60, 150, 230].contains(id))
        .collect();
    assert_eq!(trade_ids(&events), want);
    let perp = Symbol::new("BTCUSD_PERP").unwrap();
    for e in &events {
        if let Event::Trade(t) = e {
            assert_eq!((t.venue, t.symbol), (Venue::BinanceCoinm, perp));
            // q is contracts of 100 USD: the value does not depend on the price.
            let contracts = Decimal::from(1 + t.trade_id % 7);
            assert_eq!(t.qty, contracts);
            assert_eq!(t.notional(), contracts * Decimal::ONE_HUNDRED);
        }
    }
    // The off-book ids opened no hole; the one id inside the cut that the API does not list
    // (an off-book fill the live stream never showed) is reported, not invented.
    let holes: Vec<(u64, u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(g) if g.reason == GapReason::IdHole => {
                assert_eq!(g.venue, Venue::BinanceCoinm);
                Some((g.from_id.unwrap(), g.to_id.unwrap(), g.refilled))
            }
            _ => None,
        })
        .collect();
    assert_eq!(holes, vec![(150, 150, false)]);
    assert_eq!(SourceStats::get(&stats.ids_refilled), 98);
    let log = log.lock().unwrap();
    assert!(!log.is_empty());
    assert!(log.iter().all(|r| r.path == "/dapi/v1/historicalTrades"
        && r.api_key.as_deref() == Some("test-key")
        && r.status == 200));
    assert_eq!(log[0].query["fromId"], "101");
    assert!(stats.ledger.get("binance-coinm", "BTCUSD_PERP").is_some());
}

/// Spot `<symbol>@trade` (as documented for spot, with `M`).
fn spot_trade(id: u64) -> String {
    format!(
        r#"{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{id},"p":"{pi}.{pf:02}","q":"0.25","T":{ts},"m":{m},"M":true}}"#,
        ts = T0 + id as i64 * 1000,
        pi = 42000 + id % 30,
        pf = id % 100,
        m = id.is_multiple_of(3)
    )
}

/// USDⓈ-M `aggTrade` with the same ids and times as the spot trades, other prices and sizes.
fn usdm_capture_line(id: u64) -> String {
    format!(
        r#"{{"ts_received":{r},"frame":{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{ts},"s":"BTCUSDT","a":{id},"p":"{pi}.{pf}","q":"1.5","f":{id},"l":{id},"T":{ts},"m":{m}}}}}}}"#,
        r = T0 + id as i64 * 1000 + 3,
        ts = T0 + id as i64 * 1000,
        pi = 42100 + id % 20,
        pf = id % 10,
        m = id.is_multiple_of(2)
    )
}

/// Per (venue, minute): (volume, trade count, last close), computed from the frame text.
fn expected_candles(
    frames: &[(String, Vec<String>)],
) -> std::collections::BTreeMap<(String, i64), (Decimal, i64, Decimal)> {
    let mut out = std::collections::BTreeMap::new();
    for (venue, lines) in frames {
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let d = v.get("frame").map(|f| &f["data"]).unwrap_or(&v);
            let ts = d["T"].as_i64().unwrap();
            let q: Decimal = d["q"].as_str().unwrap().parse().unwrap();
            let p: Decimal = d["p"].as_str().unwrap().parse().unwrap();
            let e = out
                .entry((venue.clone(), ts - ts.rem_euclid(60_000)))
                .or_insert((Decimal::ZERO, 0, Decimal::ZERO));
            e.0 += q;
            e.1 += 1;
            e.2 = p;
        }
    }
    out
}

/// Spot and USDⓈ-M `BTCUSDT` (same ids, same times) replayed in one run into one PostgreSQL
/// database stay two tapes: two rows per id, each with its venue and its own price; separate
/// candles, aggregates and moving averages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_and_usdm_btcusdt_stay_apart_in_postgres() {
    let url = common::fresh_database("venues").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let dir = std::env::temp_dir().join(format!("cf-venues-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 150u64;
    let spot: Vec<String> = (1..=n).map(spot_trade).collect();
    let fut: Vec<String> = (1..=n).map(usdm_capture_line).collect();
    let spot_file = dir.join("spot.jsonl");
    let fut_file = dir.join("usdm.jsonl");
    std::fs::write(&spot_file, spot.join("\n") + "\n").unwrap();
    // A capture as `cryptoflow record` writes it: the header names the venue.
    std::fs::write(
        &fut_file,
        format!(
            "{{\"capture\":{{\"venue\":\"binance-usdm\"}}}}\n{}\n",
            fut.join("\n")
        ),
    )
    .unwrap();
    let mut cfg = common::test_config(2);
    cfg.sinks.postgres.url = url.clone();
    cfg.pipeline.sma_window = 5;
    // The second file goes back to the first file's times: keep every window open for it.
    cfg.pipeline.allowed_lateness_ms = 600_000;
    let (_, recs) = tokio::task::spawn_blocking(move || {
        common::replay_collect(
            &cfg,
            vec![spot_file, fut_file],
            cryptoflow_sources::replay::ReplayOptions::default(),
        )
    })
    .await
    .unwrap();
    assert!(!recs.is_empty());

    let c = common::pg_client(&url).await;
    let rows = c
        .query(
            "SELECT venue, count(*), min(trade_id), max(trade_id), count(first_trade_id) FROM trades WHERE symbol = 'BTCUSDT' GROUP BY venue ORDER BY venue",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("binance".into(), n as i64, 1, n as i64, 0),
            ("binance-usdm".into(), n as i64, 1, n as i64, n as i64)
        ]
    );
    // Each row has its own venue's price, and its moving average is over its own tape only.
    let prices: HashMap<(String, i64), (Decimal, Decimal)> = c
        .query(
            "SELECT venue, trade_id, price, moving_average FROM trades",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    let field = |line: &str, k: &str| -> Decimal {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let d = v.get("frame").map(|f| f["data"].clone()).unwrap_or(v);
        d[k].as_str().unwrap().parse().unwrap()
    };
    for id in 1..=n {
        let (sp, sma_s) = prices[&("binance".to_string(), id as i64)];
        let (fp, sma_f) = prices[&("binance-usdm".to_string(), id as i64)];
        assert_eq!(sp, field(&spot[id as usize - 1], "p"));
        assert_eq!(fp, field(&fut[id as usize - 1], "p"));
        if id >= 5 {
            let mean = |lines: &[String]| {
                lines[id as usize - 5..id as usize]
                    .iter()
                    .map(|l| field(l, "p"))
                    .sum::<Decimal>()
                    / Decimal::from(5)
            };
            assert_eq!(sma_s, mean(&spot), "spot SMA at {id}");
            assert_eq!(sma_f, mean(&fut), "futures SMA at {id}");
        }
    }
    // Candles per venue, from the frames' own numbers.
    let want = expected_candles(&[
        ("binance".into(), spot.clone()),
        ("binance-usdm".into(), fut.clone()),
    ]);
    let rows = c
        .query(
            "SELECT venue, (extract(epoch FROM open_time) * 1000)::int8, volume, trade_count, close FROM candles WHERE symbol = 'BTCUSDT' AND is_final ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let got: std::collections::BTreeMap<(String, i64), (Decimal, i64, Decimal)> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4))))
        .collect();
    assert_eq!(got, want);
    let aggs: Vec<(String, i64)> = c
        .query(
            "SELECT venue, trade_count FROM trade_aggregates WHERE symbol = 'BTCUSDT' ORDER BY venue",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        aggs,
        vec![
            ("binance".into(), n as i64),
            ("binance-usdm".into(), n as i64)
        ]
    );
}
