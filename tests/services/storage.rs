//! Bounded storage in PostgreSQL: `trades` partitioned by day (migration 0014), the partitions
//! the sink creates ahead and for the days it writes, the retention that drops whole days, the
//! candles kept longer, the whale query on its partial index, and an existing table converted in
//! place with its rows, key and idempotent insert.

use crate::support as common;

use chrono::{TimeZone, Utc};
use common::*;
use cryptoflow_operators::dataflow::EnrichedTrade;
use cryptoflow_operators::model::{Candle, Interval, Output, Side, Symbol, Trade, Venue};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::partitions::{maintain, Retention};
use cryptoflow_sinks::postgres::{migrate, PostgresConfig, PostgresSink, MIGRATIONS, VIEWS};
use cryptoflow_sinks::Sink;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn trade(id: u64, ts: i64, whale: bool) -> Output {
    Output::Trade(EnrichedTrade {
        trade: Trade {
            venue: Venue::Binance,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            trade_id: id,
            price: d("50000.5"),
            qty: if whale { d("3") } else { d("0.001") },
            side: if id.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            ts_exchange: ts,
            ts_received: ts + 7,
            agg: None,
        },
        moving_average: d("50000.25"),
        ema: Some(50000.0),
        is_whale: whale,
        whale_threshold: d("100000"),
    })
}

fn candle(open_time: i64) -> Output {
    Output::Candle(Candle {
        venue: Venue::Binance,
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::MINUTE,
        open_time,
        close_time: open_time + 60_000,
        open: d("1"),
        high: d("2"),
        low: d("1"),
        close: d("2"),
        volume: d("1"),
        quote_volume: d("1.5"),
        vwap: d("1.5"),
        trade_count: 1,
        taker_buy_volume: d("1"),
        first_trade_id: 1,
        last_trade_id: 1,
        is_final: true,
    })
}

async fn count(
    c: &tokio_postgres::Client,
    sql: &str,
    p: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    c.query_one(sql, p).await.unwrap().get(0)
}

/// `$1`, a time in ms, as a `timestamptz`.
const AT: &str = "('epoch'::timestamptz + $1::int8 * interval '1 millisecond')";

/// md5 of the rows of `trades` matching `cond` (a condition on [`AT`]), in key order.
async fn digest(c: &tokio_postgres::Client, cond: &str, at: i64) -> (i64, String) {
    let cond = cond.replace("AT", AT);
    let r = c
        .query_one(
            &format!(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY venue, symbol, trade_id), '')) \
                 FROM trades t WHERE {cond}"
            ),
            &[&at],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

async fn partition_names(c: &tokio_postgres::Client) -> Vec<String> {
    c.query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'trades'::regclass ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_ahead_retention_drops_whole_days_and_whales_use_the_partial_index() {
    let url = fresh_database("storage").await;
    migrate(&url).await.unwrap();
    let c = pg_client(&url).await;
    let kind: i8 = c
        .query_one(
            "SELECT relkind::\"char\" FROM pg_class WHERE relname = 'trades'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kind as u8, b'p', "trades is a partitioned table");
    assert!(
        partition_names(&c).await.is_empty(),
        "a fresh database has no partition yet"
    );

    let cfg = PostgresConfig {
        url: url.clone(),
        pool_size: 2,
        retention_days: 3,
        partition_ahead: 2,
        candle_retention_days: 10,
        maintenance_interval_s: 0,
    };
    let mut sink = PostgresSink::connect(&cfg).await.unwrap();
    // Today and 2 days ahead (the server's calendar, UTC), and not 3 days ahead.
    for (ahead, exists) in [(0, true), (1, true), (2, true), (3, false)] {
        let there: bool = c
            .query_one(
                "SELECT to_regclass('trades_p' || to_char((now() AT TIME ZONE 'UTC')::date + $1::int, 'YYYYMMDD')) IS NOT NULL",
                &[&ahead],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(there, exists, "partition {ahead} days ahead");
    }

    // 9 days of trades (3,000 a day, one in 200 a whale), written through the sink, which
    // creates the partitions of the past days it meets.
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let mut id = 0;
    for day in 0..9i64 {
        let batch: Vec<Output> = (0..3000i64)
            .map(|j| {
                id += 1;
                trade(
                    id,
                    now_ms - day * 86_400_000 - j * 10,
                    id.is_multiple_of(200),
                )
            })
            .collect();
        sink.write(&batch).await.unwrap();
    }
    let candles: Vec<Output> = [20i64, 11, 9, 1]
        .iter()
        .map(|days| candle(now_ms - days * 86_400_000))
        .collect();
    sink.write(&candles).await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM trades", &[]).await, 27_000);
    assert!(partition_names(&c).await.len() >= 9);

    // The retention boundary, by the server's calendar: a day's partition goes once the whole
    // day is older than now - 3 days, so what stays starts at the UTC midnight before it.
    let keep_from: i64 = c
        .query_one(
            &format!("SELECT (extract(epoch FROM date_trunc('day', {AT} - interval '3 days', 'UTC')) * 1000)::int8"),
            &[&now_ms],
        )
        .await
        .unwrap()
        .get(0);
    let kept_before = digest(&c, "ts_exchange >= AT", keep_from).await;
    let old_before = digest(&c, "ts_exchange < AT", keep_from).await;
    assert!(
        kept_before.0 >= 9000 && old_before.0 >= 12_000,
        "{kept_before:?} {old_before:?}"
    );

    let done = maintain(&c, cfg.retention(), now).await.unwrap();
    assert!(done.dropped.len() >= 5, "{done:?}");
    assert_eq!(
        digest(&c, "ts_exchange < AT", keep_from).await.0,
        0,
        "rows past the retention are gone"
    );
    assert_eq!(
        digest(&c, "ts_exchange >= AT", keep_from).await,
        kept_before,
        "rows inside it are intact"
    );
    for name in &done.dropped {
        assert!(!partition_names(&c).await.contains(name));
    }
    // Candles: the 20- and 11-day-old ones went (10 days kept), the others stay.
    let ages: Vec<i64> = c
        .query(
            &format!("SELECT round(extract(epoch FROM ({AT} - open_time)) / 86400)::int8 FROM candles ORDER BY 1"),
            &[&now_ms],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ages, vec![1, 9]);
    assert_eq!(done.candles_deleted, 2);

    // A trade older than the retention, on a day the sink had met: its partition is gone, the
    // flush fails as retryable and its retry creates the partition again.
    let late = vec![trade(1_000_000, now_ms - 7 * 86_400_000, false)];
    let err = sink.write(&late).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    sink.write(&late).await.unwrap();
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM trades WHERE trade_id = 1000000",
            &[]
        )
        .await,
        1
    );

    // Idempotent as before: the kept days again add no row and no count.
    let aggs = "SELECT trade_count FROM trade_aggregates";
    let n_before = count(&c, aggs, &[]).await;
    let again: Vec<Output> = (1..=3000u64)
        .map(|i| trade(i, now_ms - (i as i64 - 1) * 10, i.is_multiple_of(200)))
        .collect();
    sink.write(&again).await.unwrap();
    assert_eq!(count(&c, aggs, &[]).await, n_before);
    assert_eq!(
        digest(&c, "ts_exchange >= AT", keep_from).await,
        kept_before
    );

    // The whale query (the API's: whales of a symbol, newest first, over a time range) reads a
    // partial index, not every trade.
    c.batch_execute("ANALYZE trades").await.unwrap();
    let plan: Vec<String> = c
        .query(
            &format!(
                "EXPLAIN SELECT * FROM whale_trades WHERE symbol = 'BTCUSDT' AND ts_exchange >= {AT} \
                 ORDER BY ts_exchange DESC LIMIT 50"
            ),
            &[&keep_from],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    // The index after "Index Scan [Backward] using", "Index Only Scan using" or "Bitmap Index
    // Scan on".
    let used: Vec<String> = plan
        .lines()
        .filter_map(|l| {
            let rest = l
                .split_once(" using ")
                .or_else(|| l.split_once("Bitmap Index Scan on "))?
                .1;
            rest.split_whitespace().next().map(str::to_string)
        })
        .collect();
    assert!(!used.is_empty(), "{plan}");
    for index in &used {
        let partial: bool = c
            .query_one(
                "SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = $1::text::regclass",
                &[index],
            )
            .await
            .unwrap_or_else(|e| panic!("{index}: {e}\n{plan}"))
            .get(0);
        assert!(partial, "{index} is not the partial whale index:\n{plan}");
    }
}

/// A database at migration 13 with trades in the unpartitioned table: `migrate` converts it in
/// place (rows, key, checks, indexes), the sink's insert stays idempotent over the old rows, and
/// the old table goes whole once its days leave the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_trades_table_is_partitioned_in_place() {
    let url = fresh_database("storage_old").await;
    let c = pg_client(&url).await;
    c.batch_execute(
        "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (v, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= 13) {
        c.batch_execute(sql).await.unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[v, name],
        )
        .await
        .unwrap();
    }
    for (_, sql) in VIEWS {
        c.batch_execute(sql).await.unwrap();
    }
    // 3 days of trades, 2024-03-01..03, as the old sink stored them.
    let t0_ms = Utc
        .with_ymd_and_hms(2024, 3, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    c.batch_execute(
        "INSERT INTO trades (venue, symbol, trade_id, price, qty, side, ts_exchange, ts_received,
                             is_whale, moving_average, ema)
         SELECT 'binance', 'BTCUSDT', g, 50000.5, CASE WHEN g % 200 = 0 THEN 3 ELSE 0.001 END,
                CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END,
                timestamptz '2024-03-01 00:00:00+00' + (g - 1) * interval '90 seconds',
                timestamptz '2024-03-01 00:00:00.007+00' + (g - 1) * interval '90 seconds',
                g % 200 = 0, 50000.25, 50000
         FROM generate_series(1, 2880) g",
    )
    .await
    .unwrap();
    let all = digest(&c, "AT IS NOT NULL", t0_ms).await;
    assert_eq!(all.0, 2880);

    assert_eq!(migrate(&url).await.unwrap(), vec![14]);
    assert_eq!(digest(&c, "AT IS NOT NULL", t0_ms).await, all, "rows kept");
    assert_eq!(partition_names(&c).await, vec!["trades_legacy".to_string()]);
    let key: String = c
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'trades'::regclass AND contype = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, "PRIMARY KEY (venue, symbol, trade_id, ts_exchange)");
    let bad = c
        .execute(
            "INSERT INTO trades (venue, symbol, trade_id, price, qty, side, ts_exchange, ts_received, is_whale, moving_average)
             VALUES ('binance', 'BTCUSDT', 999999, -1, 1, 'buy', '2024-03-01', '2024-03-01', false, 1)",
            &[],
        )
        .await;
    assert!(bad.is_err(), "the checks hold on the old rows' partition");
    let whales = "SELECT count(*) FROM whale_trades";
    assert_eq!(count(&c, whales, &[]).await, 14);

    // The same trades again through the sink: nothing new. A new one inside the old table's days
    // goes to it, one on a later day to a new day partition.
    let mut sink = PostgresSink::connect(&PostgresConfig {
        url: url.clone(),
        pool_size: 1,
        maintenance_interval_s: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let again: Vec<Output> = (1..=2880u64)
        .map(|g| trade(g, t0_ms + (g as i64 - 1) * 90_000, g.is_multiple_of(200)))
        .collect();
    sink.write(&again).await.unwrap();
    assert_eq!(
        digest(&c, "AT IS NOT NULL", t0_ms).await,
        all,
        "idempotent over the old rows"
    );
    let fresh = vec![
        trade(5000, t0_ms + 2 * 86_400_000 + 5, false),
        trade(5001, t0_ms + 4 * 86_400_000 + 5, true),
    ];
    sink.write(&fresh).await.unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM trades_legacy", &[]).await,
        2881
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM trades_p20240305", &[]).await,
        1
    );
    assert_eq!(count(&c, whales, &[]).await, 15);

    // With one day kept at 2024-03-05 12:00 the old table (every time before 2024-03-04) goes
    // whole; 2024-03-05 stays.
    let now = Utc.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap();
    let r = Retention {
        retention_days: 1,
        partition_ahead: 0,
        candle_retention_days: 0,
    };
    let done = maintain(&c, r, now).await.unwrap();
    assert_eq!(done.dropped, vec!["trades_legacy".to_string()]);
    assert_eq!(count(&c, "SELECT count(*) FROM trades", &[]).await, 1);
    // Left of 2024: its 5 March (the sink's start created today's and the days ahead too).
    let names = partition_names(&c).await;
    let old: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() < "trades_p2025")
        .collect();
    assert_eq!(old, vec!["trades_p20240305"], "{names:?}");
}
