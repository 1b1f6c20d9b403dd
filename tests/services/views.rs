//! The dashboard views on a replay of the bundled sample: each agrees with the tables it reads,
//! computed another way (from the trades, or by hand in `Decimal`), and the whale view uses its
//! index.

use std::process::Command;
use std::str::FromStr;

use cryptoflow_operators::Decimal;

use crate::support::{fresh_database, pg_client};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_views_agree_with_their_tables() {
    let url = fresh_database("views").await;
    cryptoflow_sinks::postgres::migrate(&url).await.unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args([
            "replay",
            "--quiet",
            "--jsonl",
            "/dev/null",
            "--postgres",
            &url,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let c = pg_client(&url).await;

    // latest_prices: the newest trade's price; open, change and volume over the sample (shorter
    // than 24 hours), the volume summed from the trades rather than the candles.
    let rows = c
        .query(
            "SELECT symbol, price::text, open_24h::text, change_24h::text, change_pct_24h::text, \
             volume_24h::text FROM latest_prices ORDER BY symbol",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let symbol: String = r.get(0);
        let t = c
            .query_one(
                "SELECT (SELECT price::text FROM trades WHERE symbol = $1 ORDER BY trade_id DESC LIMIT 1), \
                        (SELECT price::text FROM trades WHERE symbol = $1 ORDER BY ts_exchange, trade_id LIMIT 1), \
                        (SELECT sum(qty)::text FROM trades WHERE symbol = $1)",
                &[&symbol],
            )
            .await
            .unwrap();
        let (price, open, volume) = (dec(r.get(1)), dec(r.get(2)), dec(r.get(5)));
        assert_eq!(price, dec(t.get(0)), "{symbol} price");
        assert_eq!(
            open,
            dec(t.get(1)),
            "{symbol} open_24h is the first trade's price"
        );
        assert_eq!(volume, dec(t.get(2)), "{symbol} volume_24h");
        assert_eq!(dec(r.get(3)), price - open, "{symbol} change");
        let pct = (price - open) / open * Decimal::from(100);
        assert!(
            (dec(r.get(4)) - pct).abs() < dec("0.000000001"),
            "{symbol} change_pct {} vs {pct}",
            r.get::<_, String>(4)
        );
    }

    // latest_indicators: the row of the newest candle per symbol.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM latest_indicators l JOIN LATERAL ( \
               SELECT max(open_time) AS m FROM indicators i \
               WHERE i.venue = l.venue AND i.symbol = l.symbol AND i.interval = l.interval) x \
             ON x.m = l.open_time",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let all: i64 = c
        .query_one(
            "SELECT count(DISTINCT (venue, symbol, interval)) FROM indicators",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(all >= 4);
    assert_eq!(n, all);

    // crypto_combined_data: one row per instrument, its coin, price and newest 1m indicators.
    let r = c
        .query_one(
            "SELECT d.coin, d.price = p.price, d.indicators_at = i.open_time \
             FROM crypto_combined_data d \
             JOIN latest_prices p ON p.symbol = d.symbol \
             JOIN latest_indicators i ON i.symbol = d.symbol AND i.interval = '1m' \
             WHERE d.symbol = 'BTCUSDT'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "BTC");
    assert!(r.get::<_, bool>(1));
    assert!(r.get::<_, bool>(2));
    let n: i64 = c
        .query_one("SELECT count(*) FROM crypto_combined_data", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);

    // ml_features_wide: a column per feature, equal to the JSON.
    let cols: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ml_features_wide'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        cols as usize,
        5 + cryptoflow_operators::features::CATALOGUE.len()
    );
    let same: bool = c
        .query_one(
            "SELECT bool_and(w.ret_1 IS NOT DISTINCT FROM (f.features ->> 'ret_1')::float8) \
             FROM ml_features_wide w JOIN ml_features f USING (venue, symbol, interval, open_time)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(same);

    // Every view says what it is.
    let uncommented: Vec<String> = c
        .query(
            "SELECT viewname::text FROM pg_views WHERE schemaname = 'public' \
             AND viewname IN ('latest_prices', 'latest_indicators', 'crypto_combined_data', \
                              'ml_features_wide') \
             AND obj_description(format('%I', viewname)::regclass, 'pg_class') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(uncommented.is_empty(), "{uncommented:?}");

    // The whale view of one symbol reads the partial index, not every trade. On a table this
    // small the planner may still prefer a scan; with scans off it must be able to use it.
    let explain = "EXPLAIN SELECT * FROM whale_trades WHERE symbol = 'BTCUSDT' \
                   ORDER BY ts_exchange DESC LIMIT 50";
    let plan = |rows: Vec<tokio_postgres::Row>| -> String {
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // `trades` is partitioned by day: each partition carries its own copy of the partial index
    // (named by the server), so the plan names those, read here from the catalogue.
    let partial: Vec<String> = c
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index \
             WHERE indpred IS NOT NULL AND indrelid::regclass::text LIKE 'trades%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(partial.iter().any(|n| n == "trades_whales"), "{partial:?}");
    let uses_partial = |p: &str| partial.iter().any(|n| p.contains(n.as_str()));
    if !uses_partial(&plan(c.query(explain, &[]).await.unwrap())) {
        c.batch_execute("SET enable_seqscan = off").await.unwrap();
        let p = plan(c.query(explain, &[]).await.unwrap());
        assert!(uses_partial(&p), "{p}");
    }
}
