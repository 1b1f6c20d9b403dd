//! Replay into a real MariaDB/MySQL: rows equal the independent reference; a second replay adds
//! nothing and changes nothing.

use crate::support as common;

use std::collections::HashMap;

use common::*;
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::mysql::migrate;
use mysql_async::prelude::Queryable;

/// symbol, open_time, open, high, low, close, volume, trade_count, first id, last id, is_final
type CandleRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    u64,
    u64,
    u64,
    bool,
);

async fn rows<T: mysql_async::prelude::FromRow + Send + 'static>(url: &str, sql: &str) -> Vec<T> {
    let pool = mysql_async::Pool::new(url);
    let mut conn = pool.get_conn().await.unwrap();
    let out = conn.query(sql).await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    out
}

fn dec_str(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn snapshot(url: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let trades: Vec<(String, u64, String, bool)> = rows(
        url,
        "SELECT symbol, trade_id, CAST(moving_average AS CHAR), is_whale FROM trades ORDER BY 1, 2",
    )
    .await;
    let candles: Vec<(String, String, String, String, u64, bool)> = rows(
        url,
        "SELECT symbol, CAST(open_time AS CHAR), CAST(open AS CHAR), CAST(volume AS CHAR), trade_count, is_final FROM candles ORDER BY 1, 2",
    )
    .await;
    let aggs: Vec<(String, u64, String, u64, String)> =
        rows(url, "SELECT symbol, trade_count, CAST(total_volume AS CHAR), last_trade_id, CAST(last_price AS CHAR) FROM trade_aggregates ORDER BY 1").await;
    (
        trades.iter().map(|r| format!("{r:?}")).collect(),
        candles.iter().map(|r| format!("{r:?}")).collect(),
        aggs.iter().map(|r| format!("{r:?}")).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_into_mysql_twice() {
    let url = fresh_mysql_database("e2e").await;
    assert_eq!(migrate(&url).await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(
        migrate(&url).await.unwrap().is_empty(),
        "migrate is idempotent"
    );

    let exp = expected();
    let mut cfg = test_config(2);
    cfg.sinks.mysql.url = url.clone();
    cfg.sinks.max_batch = 700;
    let cfg2 = cfg.clone();
    let (report, _) = replay_fixture(&cfg2).await;
    let ack = report
        .acks
        .iter()
        .find(|(n, _)| *n == "mysql")
        .map(|(_, a)| *a)
        .unwrap();
    assert!(ack.complete && ack.flushes >= 2, "{ack:?}");

    // Every id once, no holes.
    let counts: Vec<(String, i64, u64, u64)> = rows(&url, "SELECT symbol, COUNT(*), MIN(trade_id), MAX(trade_id) FROM trades GROUP BY symbol ORDER BY symbol").await;
    assert_eq!(counts.len(), 3);
    for (sym, n, lo, hi) in &counts {
        assert_eq!((*n, *lo, *hi), (1000, 1, 1000), "{sym}");
    }
    // Per-trade moving average (DECIMAL(38,18)) and whale flag.
    let db: HashMap<(String, u64), (String, bool)> = rows::<(String, u64, String, bool)>(
        &url,
        "SELECT symbol, trade_id, CAST(moving_average AS CHAR), is_whale FROM trades",
    )
    .await
    .into_iter()
    .map(|(s, id, ma, w)| ((s, id), (ma, w)))
    .collect();
    for t in exp["trades"].as_array().unwrap() {
        let key = (
            t["symbol"].as_str().unwrap().to_string(),
            t["trade_id"].as_u64().unwrap(),
        );
        let (ma, whale) = &db[&key];
        assert!(
            close(dec_str(ma), dec(&t["moving_average"]), "1e-17"),
            "{key:?}: {ma}"
        );
        assert_eq!(*whale, t["is_whale"].as_bool().unwrap());
    }
    // Candles.
    let got: Vec<CandleRow> = rows(
        &url,
        "SELECT symbol, CAST(open_time AS CHAR), CAST(open AS CHAR), CAST(high AS CHAR), CAST(low AS CHAR), CAST(close AS CHAR),
                CAST(volume AS CHAR), trade_count, first_trade_id, last_trade_id, is_final
         FROM candles ORDER BY symbol, open_time",
    )
    .await;
    let want = exp["candles"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w["symbol"].as_str().unwrap());
        let open_ms = w["open_time"].as_i64().unwrap();
        assert_eq!(g.1, format!("{}.000", chrono_like(open_ms)));
        assert_eq!(dec_str(&g.2), dec(&w["open"]));
        assert_eq!(dec_str(&g.3), dec(&w["high"]));
        assert_eq!(dec_str(&g.4), dec(&w["low"]));
        assert_eq!(dec_str(&g.5), dec(&w["close"]));
        assert_eq!(dec_str(&g.6), dec(&w["volume"]));
        assert_eq!(
            (g.7, g.8, g.9, g.10),
            (
                w["trade_count"].as_u64().unwrap(),
                w["first_trade_id"].as_u64().unwrap(),
                w["last_trade_id"].as_u64().unwrap(),
                true
            )
        );
    }
    // Aggregates.
    let aggs: Vec<(String, u64, String, u64, String)> =
        rows(&url, "SELECT symbol, trade_count, CAST(total_volume AS CHAR), last_trade_id, CAST(last_price AS CHAR) FROM trade_aggregates").await;
    assert_eq!(aggs.len(), 3);
    for (sym, n, vol, last, price) in &aggs {
        let a = &exp["aggregates"][sym];
        assert_eq!(*n, a["trade_count"].as_u64().unwrap());
        assert_eq!(dec_str(vol), dec(&a["total_volume"]));
        assert_eq!(*last, a["last_trade_id"].as_u64().unwrap());
        assert_eq!(dec_str(price), dec(&a["last_price"]));
    }
    let whales: Vec<i64> = rows(&url, "SELECT COUNT(*) FROM whale_trades").await;
    assert_eq!(whales[0], exp["whales"].as_i64().unwrap());
    // The ledger's last snapshot counts the late trade; no hole is open.
    let ledger: Vec<(String, u64, u64)> = rows(
        &url,
        "SELECT symbol, trades, late_events FROM data_quality_latest WHERE source = 'replay' ORDER BY symbol",
    )
    .await;
    assert!(!ledger.is_empty());
    let late = exp["late"].as_array().unwrap().len() as u64;
    assert_eq!(ledger.iter().map(|l| l.2).sum::<u64>(), late);
    let gaps: Vec<i64> = rows(&url, "SELECT COUNT(*) FROM open_gaps").await;
    assert_eq!(gaps[0], 0);

    // Replay again: no duplicates, same values.
    let before = snapshot(&url).await;
    let (report, _) = replay_fixture(&cfg).await;
    assert!(report.acks.iter().any(|(n, a)| *n == "mysql" && a.complete));
    assert_eq!(before.0.len(), 3000);
    assert_eq!(before, snapshot(&url).await);
}

/// `YYYY-MM-DD HH:MM:SS` for ms since the epoch (UTC), computed independently of the sink.
fn chrono_like(ms: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", ms / 1000), "+%Y-%m-%d %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn missing_schema_is_a_clear_permanent_error() {
    let url = fresh_mysql_database("noschema").await;
    let err = cryptoflow_sinks::mysql::MySqlSink::connect(&url)
        .await
        .err()
        .unwrap();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("cryptoflow migrate --mysql"),
        "{err}"
    );
}

/// Pairs priced around 1e-7…1e-4 (and BTCUSDT around 1e5): every stored moving average, quote
/// volume and VWAP keeps at least 20 significant digits of Python `decimal`'s value (a
/// DECIMAL(38,18) column kept 10–12 at these prices), prices and volumes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_priced_pairs_keep_their_digits() {
    let url = fresh_mysql_database("lowprice").await;
    migrate(&url).await.unwrap();
    let exp = expected_for("lowprice");
    let mut cfg = test_config(1);
    cfg.sinks.mysql.url = url.clone();
    let (report, _) = replay_named_fixture(&cfg, "lowprice").await;
    assert!(report.acks.iter().all(|(_, a)| a.complete));

    let db: HashMap<(String, u64), String> = rows::<(String, u64, String)>(
        &url,
        "SELECT symbol, trade_id, CAST(moving_average AS CHAR) FROM trades",
    )
    .await
    .into_iter()
    .map(|(s, id, ma)| ((s, id), ma))
    .collect();
    let trades = exp["trades"].as_array().unwrap();
    assert_eq!(db.len(), trades.len());
    for t in trades {
        let key = (
            t["symbol"].as_str().unwrap().to_string(),
            t["trade_id"].as_u64().unwrap(),
        );
        let ma = &db[&key];
        assert!(
            close_rel(dec_str(ma), dec(&t["moving_average"]), "1e-20"),
            "{key:?}: {ma} vs {}",
            t["moving_average"]
        );
    }
    let got: Vec<(String, String, String, String, String)> = rows(
        &url,
        "SELECT symbol, CAST(high AS CHAR), CAST(volume AS CHAR), CAST(quote_volume AS CHAR), CAST(vwap AS CHAR)
         FROM candles WHERE is_final ORDER BY symbol, open_time",
    )
    .await;
    let want = exp["candles"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w["symbol"].as_str().unwrap());
        assert_eq!(dec_str(&g.1), dec(&w["high"]));
        assert_eq!(dec_str(&g.2), dec(&w["volume"]));
        assert_eq!(dec_str(&g.3), dec(&w["quote_volume"]));
        assert!(
            close_rel(dec_str(&g.4), dec(&w["vwap"]), "1e-20"),
            "{}: vwap {} vs {}",
            g.0,
            g.4,
            w["vwap"]
        );
    }
}
