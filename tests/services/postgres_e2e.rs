//! Replay into a real PostgreSQL: rows equal the independent reference; a second replay adds
//! nothing and changes nothing.

use crate::support as common;

use std::collections::HashMap;

use common::*;
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::postgres::migrate;

async fn snapshot(url: &str) -> (i64, Vec<String>, Vec<String>) {
    let c = pg_client(url).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM trades", &[])
        .await
        .unwrap()
        .get(0);
    let candles = c
        .query("SELECT symbol, open_time::text, open::text, high::text, low::text, close::text, volume::text, trade_count, is_final FROM candles ORDER BY 1, 2", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{:?}", (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, String>(6), r.get::<_, i64>(7), r.get::<_, bool>(8))))
        .collect();
    let aggs = c
        .query("SELECT symbol, trade_count, total_volume::text, last_trade_id, last_price::text, moving_average::text FROM trade_aggregates ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{:?}", (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, String>(2), r.get::<_, i64>(3), r.get::<_, String>(4), r.get::<_, String>(5))))
        .collect();
    (n, candles, aggs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_into_postgres_twice() {
    let url = fresh_database("e2e").await;
    assert_eq!(migrate(&url).await.unwrap(), (1..=14).collect::<Vec<_>>());
    assert!(
        migrate(&url).await.unwrap().is_empty(),
        "migrate is idempotent"
    );

    let exp = expected();
    let mut cfg = test_config(2);
    cfg.sinks.postgres.url = url.clone();
    cfg.sinks.max_batch = 700; // several flushes
    let cfg2 = cfg.clone();
    let (report, _) = replay_fixture(&cfg2).await;
    let (name, ack) = report
        .acks
        .iter()
        .find(|(n, _)| *n == "postgres")
        .copied()
        .unwrap();
    assert_eq!(name, "postgres");
    assert!(ack.complete && ack.flushes >= 2, "{ack:?}");

    let c = pg_client(&url).await;
    // Every id exactly once, no holes.
    let rows = c.query("SELECT symbol, count(*), min(trade_id), max(trade_id) FROM trades GROUP BY symbol ORDER BY symbol", &[]).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let (n, lo, hi): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        assert_eq!((n, lo, hi), (1000, 1, 1000), "{}", r.get::<_, String>(0));
    }
    // Moving averages and whale flags per trade.
    let db: HashMap<(String, i64), (Decimal, bool)> = c
        .query(
            "SELECT symbol, trade_id, moving_average, is_whale FROM trades",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    for t in exp["trades"].as_array().unwrap() {
        let key = (
            t["symbol"].as_str().unwrap().to_string(),
            t["trade_id"].as_i64().unwrap(),
        );
        let (ma, whale) = db[&key];
        assert!(close(ma, dec(&t["moving_average"]), "1e-18"), "{key:?}");
        assert_eq!(whale, t["is_whale"].as_bool().unwrap());
    }
    let whales: i64 = c
        .query_one("SELECT count(*) FROM whale_trades", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(whales, exp["whales"].as_i64().unwrap());
    // Candles.
    let rows = c
        .query(
            "SELECT symbol, (extract(epoch FROM open_time) * 1000)::int8, open, high, low, close, volume, quote_volume, vwap, trade_count,
                    taker_buy_volume, first_trade_id, last_trade_id, is_final
             FROM candles ORDER BY symbol, open_time",
            &[],
        )
        .await
        .unwrap();
    let want = exp["candles"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (r, w) in rows.iter().zip(want) {
        assert_eq!(r.get::<_, String>(0), w["symbol"].as_str().unwrap());
        assert_eq!(r.get::<_, i64>(1), w["open_time"].as_i64().unwrap());
        for (i, f) in [
            (2, "open"),
            (3, "high"),
            (4, "low"),
            (5, "close"),
            (6, "volume"),
            (7, "quote_volume"),
            (10, "taker_buy_volume"),
        ] {
            assert_eq!(r.get::<_, Decimal>(i), dec(&w[f]), "{f}");
        }
        assert!(close_rel(r.get::<_, Decimal>(8), dec(&w["vwap"]), "1e-20"));
        assert_eq!(r.get::<_, i64>(9), w["trade_count"].as_i64().unwrap());
        assert_eq!(r.get::<_, i64>(11), w["first_trade_id"].as_i64().unwrap());
        assert_eq!(r.get::<_, i64>(12), w["last_trade_id"].as_i64().unwrap());
        assert!(r.get::<_, bool>(13), "final");
    }
    // Aggregates.
    let rows = c.query("SELECT symbol, trade_count, total_volume, last_trade_id, last_price, moving_average FROM trade_aggregates", &[]).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let a = &exp["aggregates"][r.get::<_, String>(0)];
        assert_eq!(r.get::<_, i64>(1), a["trade_count"].as_i64().unwrap());
        assert_eq!(r.get::<_, Decimal>(2), dec(&a["total_volume"]));
        assert_eq!(r.get::<_, i64>(3), a["last_trade_id"].as_i64().unwrap());
        assert_eq!(r.get::<_, Decimal>(4), dec(&a["last_price"]));
        assert!(close(
            r.get::<_, Decimal>(5),
            dec(&a["moving_average"]),
            "1e-18"
        ));
    }
    let latest: i64 = c
        .query_one("SELECT count(*) FROM latest_prices", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(latest, 3);

    // Replay again: no duplicates, same values.
    let before = snapshot(&url).await;
    let (report, _) = replay_fixture(&cfg).await;
    assert!(report
        .acks
        .iter()
        .any(|(n, a)| *n == "postgres" && a.complete));
    let after = snapshot(&url).await;
    assert_eq!(before.0, 3000);
    assert_eq!(before, after);
}

#[tokio::test]
async fn missing_schema_is_a_clear_permanent_error() {
    let url = fresh_database("noschema").await;
    let cfg = cryptoflow_sinks::postgres::PostgresConfig {
        url,
        pool_size: 1,
        ..Default::default()
    };
    let err = cryptoflow_sinks::postgres::PostgresSink::connect(&cfg)
        .await
        .err()
        .unwrap();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("cryptoflow migrate"), "{err}");
}

#[tokio::test]
async fn gaps_are_recorded_once() {
    use cryptoflow_operators::model::Output;
    use cryptoflow_operators::model::{Gap, GapReason, StreamKind, Symbol, Venue};
    use cryptoflow_sinks::postgres::{PostgresConfig, PostgresSink};
    use cryptoflow_sinks::Sink;
    let url = fresh_database("gaps").await;
    migrate(&url).await.unwrap();
    let mut sink = PostgresSink::connect(&PostgresConfig {
        url: url.clone(),
        pool_size: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let gap = |from: Option<u64>, to: Option<u64>, reason, refilled| {
        Output::Gap(Gap {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            kind: StreamKind::Trade,
            since: 1_700_000_000_000,
            until: 1_700_000_005_000,
            last_id: Some(500),
            reason,
            from_id: from,
            to_id: to,
            refilled,
            detail: if refilled {
                String::new()
            } else {
                "refused with HTTP 400".into()
            },
        })
    };
    let batch = vec![
        gap(None, None, GapReason::Reconnect, false),
        gap(Some(501), Some(649), GapReason::IdHole, true),
        gap(Some(900), Some(904), GapReason::IdHole, false),
    ];
    sink.write(&batch).await.unwrap();
    sink.write(&batch).await.unwrap();
    let c = pg_client(&url).await;
    let rows = c.query("SELECT reason, from_id, to_id, resolved_at IS NOT NULL, detail FROM gaps ORDER BY from_id", &[]).await.unwrap();
    let got: Vec<(String, i64, i64, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("reconnect".into(), -1, -1, false),
            ("id_hole".into(), 501, 649, true),
            ("id_hole".into(), 900, 904, false)
        ]
    );
    let open: i64 = c
        .query_one("SELECT count(*) FROM open_gaps", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1);
}

/// Pairs priced around 1e-7…1e-4 (and BTCUSDT around 1e5) into PostgreSQL: every stored moving
/// average and VWAP keeps at least 20 significant digits of Python `decimal`'s value; prices,
/// volumes and quote volumes are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_priced_pairs_keep_their_digits() {
    let url = fresh_database("lowprice").await;
    migrate(&url).await.unwrap();
    let exp = expected_for("lowprice");
    let mut cfg = test_config(2);
    cfg.sinks.postgres.url = url.clone();
    let (report, _) = replay_named_fixture(&cfg, "lowprice").await;
    assert!(report.acks.iter().all(|(_, a)| a.complete));
    let c = pg_client(&url).await;
    let db: std::collections::HashMap<(String, i64), Decimal> = c
        .query("SELECT symbol, trade_id, moving_average FROM trades", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let trades = exp["trades"].as_array().unwrap();
    assert_eq!(db.len(), trades.len());
    for t in trades {
        let key = (
            t["symbol"].as_str().unwrap().to_string(),
            t["trade_id"].as_i64().unwrap(),
        );
        assert!(
            close_rel(db[&key], dec(&t["moving_average"]), "1e-20"),
            "{key:?}: {} vs {}",
            db[&key],
            t["moving_average"]
        );
    }
    let rows = c
        .query(
            "SELECT symbol, volume, quote_volume, vwap FROM candles WHERE is_final ORDER BY symbol, open_time",
            &[],
        )
        .await
        .unwrap();
    let want = exp["candles"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (r, w) in rows.iter().zip(want) {
        assert_eq!(r.get::<_, String>(0), w["symbol"].as_str().unwrap());
        assert_eq!(r.get::<_, Decimal>(1), dec(&w["volume"]));
        assert_eq!(r.get::<_, Decimal>(2), dec(&w["quote_volume"]));
        let vwap: Decimal = r.get(3);
        assert!(
            close_rel(vwap, dec(&w["vwap"]), "1e-20"),
            "{vwap} vs {}",
            w["vwap"]
        );
    }
}
