//! The table descriptions of `sinks/src/sql/` through both dialects into real servers: one row of
//! every table kind goes in twice (a replay) and comes back exactly once with its values, under
//! each table's conflict rule. And the views: a database migrated by the code that kept views in
//! the numbered migrations (`old_schema/`) ends, after `migrate`, with the same views as a fresh
//! one; a view whose columns changed is re-created.

use crate::support as common;

use common::*;
use cryptoflow_operators::dataflow::{EnrichedTrade, IndicatorRow};
use cryptoflow_operators::features::FeatureRow;
use cryptoflow_operators::model::{
    Candle, DataQuality, Gap, GapReason, IndicatorValues, Interval, Output, SentimentRow,
    SentimentScore, SentimentWindowRow, Side, Signal, SignalRow, StreamKind, Symbol, Trade, Venue,
    REFILLING,
};
use cryptoflow_operators::polled::{
    CoinMarket, FundNav, MacroObservation, NewsItem, Polled, SocialPost,
};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::Sink;
use mysql_async::prelude::Queryable;

const T0: i64 = 1_790_000_000_000;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn btc() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

fn trade(id: u64, price: &str) -> Output {
    Output::Trade(EnrichedTrade {
        trade: Trade {
            venue: Venue::Binance,
            symbol: btc(),
            trade_id: id,
            price: d(price),
            qty: d("0.00000001"),
            side: Side::Buy,
            ts_exchange: T0 + id as i64,
            ts_received: T0 + id as i64 + 5,
            agg: None,
        },
        moving_average: d("0.0000000012345678901234567891"),
        ema: Some(1.5),
        is_whale: id == 2,
        whale_threshold: d("100000"),
    })
}

fn candle(trades: u64, is_final: bool) -> Output {
    Output::Candle(Candle {
        venue: Venue::Binance,
        symbol: btc(),
        interval: Interval::MINUTE,
        open_time: T0,
        close_time: T0 + 60_000,
        open: d("1"),
        high: d("3.000000000000000000000000001"),
        low: d("0.5"),
        close: d("2"),
        volume: d("10"),
        quote_volume: d("15"),
        vwap: d("1.5"),
        trade_count: trades,
        taker_buy_volume: d("4"),
        first_trade_id: 1,
        last_trade_id: trades,
        is_final,
    })
}

fn gap(detail: &str, refilled: bool) -> Output {
    Output::Gap(Gap {
        venue: Venue::Binance,
        symbol: btc(),
        kind: StreamKind::Trade,
        since: T0,
        until: T0 + 5_000,
        last_id: Some(10),
        reason: GapReason::IdHole,
        from_id: Some(11),
        to_id: Some(20),
        refilled,
        detail: detail.into(),
    })
}

fn window(items: u64, mean: f64) -> Output {
    Output::SentimentWindow(Box::new(SentimentWindowRow {
        coin: "BTC".into(),
        model: "vader".into(),
        span: "1h".into(),
        window_end: T0,
        items,
        mean_compound: mean,
        positive_share: 0.5,
        negative_share: 0.25,
    }))
}

/// One of every kind (and a second version of the upserted ones).
fn batch() -> Vec<Output> {
    let day = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    vec![
        trade(1, "0.000000000000000000012345"),
        trade(2, "104123.123456789012345678"),
        candle(1, false),
        candle(2, true),
        candle(1, false), // a forming update never replaces the final row
        gap(REFILLING, false),
        gap("", true), // the marker's final row resolves it
        Output::Quality(DataQuality {
            source: "binance".into(),
            symbol: "BTCUSDT".into(),
            snapshot_at: T0,
            frames: 7,
            trades: u64::MAX,
            last_event_ms: 0,
            ..Default::default()
        }),
        Output::Polled(Box::new(Polled::Market(CoinMarket {
            coin_id: "bitcoin".into(),
            vs_currency: "usd".into(),
            endpoint: "markets".into(),
            last_updated: T0,
            symbol: Some("btc".into()),
            name: None,
            price: Some(d("0.00000000000000000001")),
            market_cap: Some(d("1234567890123456789.0123456789")),
            market_cap_rank: Some(1),
            total_volume: None,
            high_24h: None,
            low_24h: None,
            price_change_24h: None,
            price_change_pct_24h: None,
            circulating_supply: None,
            total_supply: None,
            max_supply: None,
            ath: None,
            atl: None,
            fetched_at: T0 + 1,
            raw: r#"{"id":"bitcoin", "x":4.2069e14}"#.into(),
        }))),
        Output::Polled(Box::new(Polled::News(NewsItem {
            item_key: "guid:1".into(),
            feed: "f".into(),
            guid: Some("1".into()),
            title: "BTC up".into(),
            link: None,
            summary: "s".into(),
            published_at: T0,
            published_from: "published".into(),
            fetched_at: T0,
            coins: vec!["BTC".into(), "ETH".into()],
        }))),
        Output::Polled(Box::new(Polled::Social(SocialPost {
            platform: "reddit".into(),
            post_id: "t3_a".into(),
            community: "c".into(),
            author: None,
            title: "t".into(),
            body: "b".into(),
            url: None,
            permalink: Some("/r/x".into()),
            score: -3,
            num_comments: 4,
            created_at: T0,
            fetched_at: T0,
            coins: vec![],
        }))),
        Output::Polled(Box::new(Polled::Macro(MacroObservation {
            series_id: "FEDFUNDS".into(),
            date: day,
            value: Some(d("4.33")),
            realtime_start: day,
            realtime_end: chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
        }))),
        Output::Polled(Box::new(Polled::FundNav(FundNav {
            isin: "IE00B4L5Y983".into(),
            name: "World".into(),
            currency: "EUR".into(),
            nav: d("101.0000000001"),
            nav_date: day,
            source: "myinvestor".into(),
            fetched_at: T0,
        }))),
        Output::Indicators(Box::new(IndicatorRow {
            venue: Venue::Binance,
            symbol: btc(),
            interval: Interval::MINUTE,
            open_time: T0,
            close_time: T0 + 60_000,
            close: d("2"),
            values: IndicatorValues {
                sma_20: Some(1.25),
                rsi_14: Some(f64::NAN),
                vwap_20: Some(d("1.000000000000000000000000001")),
                ..Default::default()
            },
        })),
        Output::Sentiment(Box::new(SentimentRow {
            item_key: "news|guid:1".into(),
            kind: "news".into(),
            model: "vader".into(),
            published_at: T0,
            coins: vec!["BTC".into()],
            score: SentimentScore {
                neg: 0.0,
                neu: 0.5,
                pos: 0.5,
                compound: 0.75,
            },
        })),
        window(3, 0.25),
        window(5, 0.5),
        window(4, 0.125), // fewer items: ignored
        Output::Signal(Box::new(SignalRow {
            id: "cf00000000000000000000000000000001".into(),
            signal: Signal {
                strategy: "rsi_bands".into(),
                venue: Venue::Binance,
                symbol: btc(),
                interval: Interval::MINUTE,
                open_time: T0,
                close_time: T0 + 60_000,
                side: Side::Buy,
                price: d("0.000000000000000000012345"),
                reason: "RSI(14) 31.50 rose through 30".into(),
            },
            inputs: [("rsi_14".to_string(), 31.5)].into(),
        })),
        Output::Features(Box::new(FeatureRow {
            venue: Venue::Binance,
            symbol: btc(),
            interval: Interval::MINUTE,
            open_time: T0,
            close_time: T0 + 60_000,
            values: vec![Some(0.5), None],
        })),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_round_trips_through_postgres() {
    use cryptoflow_sinks::postgres::{migrate, PostgresConfig, PostgresSink};
    let url = fresh_database("sqltables").await;
    migrate(&url).await.unwrap();
    let mut sink = PostgresSink::connect(&PostgresConfig {
        url: url.clone(),
        pool_size: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let b = batch();
    sink.write(&b).await.unwrap();
    sink.write(&b).await.unwrap();
    let c = pg_client(&url).await;
    let one = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap() }
    };
    for t in [
        "trade_aggregates",
        "candles",
        "gaps",
        "data_quality",
        "coingecko_data",
        "news",
        "social_posts",
        "macro_observations",
        "fund_navs",
        "indicators",
        "sentiment",
        "sentiment_coin_windows",
        "ml_features",
        "source_offsets",
        "signals",
    ] {
        let n: i64 = c
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{t}");
    }
    let r = one("SELECT count(*), min(price), max(price), min(moving_average), sum(ema), count(*) FILTER (WHERE is_whale), (extract(epoch FROM min(ts_exchange)) * 1000)::int8 = 1790000000001 FROM trades").await;
    assert_eq!(r.get::<_, i64>(0), 2);
    assert_eq!(r.get::<_, Decimal>(1), d("0.000000000000000000012345"));
    assert_eq!(r.get::<_, Decimal>(2), d("104123.123456789012345678"));
    assert_eq!(r.get::<_, Decimal>(3), d("0.0000000012345678901234567891"));
    assert_eq!(r.get::<_, f64>(4), 3.0);
    assert_eq!(r.get::<_, i64>(5), 1);
    assert!(r.get::<_, bool>(6));
    let r =
        one("SELECT trade_count, last_trade_id, last_price, total_volume FROM trade_aggregates")
            .await;
    assert_eq!(r.get::<_, i64>(0), 2, "counted once across the replay");
    assert_eq!(r.get::<_, i64>(1), 2);
    assert_eq!(r.get::<_, Decimal>(2), d("104123.123456789012345678"));
    assert_eq!(r.get::<_, Decimal>(3), d("0.00000002"));
    let r = one("SELECT last_id, kind FROM source_offsets").await;
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, String>(1)),
        (2, "trade".into())
    );
    let r = one(
        "SELECT trade_count, is_final, high, close_time = to_timestamp(1790000060) FROM candles",
    )
    .await;
    assert_eq!(r.get::<_, i64>(0), 2);
    assert!(r.get::<_, bool>(1));
    assert_eq!(r.get::<_, Decimal>(2), d("3.000000000000000000000000001"));
    assert!(r.get::<_, bool>(3));
    let r = one("SELECT resolved_at IS NOT NULL, detail, from_id, to_id FROM gaps").await;
    assert!(r.get::<_, bool>(0), "the marker is resolved");
    assert_eq!(r.get::<_, String>(1), "");
    assert_eq!((r.get::<_, i64>(2), r.get::<_, i64>(3)), (11, 20));
    let r = one("SELECT trades, frames, last_event_at IS NULL FROM data_quality").await;
    assert_eq!(r.get::<_, i64>(0), i64::MAX);
    assert_eq!(r.get::<_, i64>(1), 7);
    assert!(r.get::<_, bool>(2));
    let r = one(
        "SELECT price, market_cap, market_cap_rank, raw::text, name IS NULL FROM coingecko_data",
    )
    .await;
    assert_eq!(r.get::<_, Decimal>(0), d("0.00000000000000000001"));
    assert_eq!(r.get::<_, Decimal>(1), d("1234567890123456789.0123456789"));
    assert_eq!(r.get::<_, i32>(2), 1);
    assert_eq!(r.get::<_, String>(3), r#"{"id":"bitcoin", "x":4.2069e14}"#);
    assert!(r.get::<_, bool>(4));
    let r = one("SELECT coins, link IS NULL FROM news").await;
    assert_eq!(r.get::<_, Vec<String>>(0), vec!["BTC", "ETH"]);
    assert!(r.get::<_, bool>(1));
    let r = one("SELECT score, coins FROM social_posts").await;
    assert_eq!(r.get::<_, i64>(0), -3);
    assert!(r.get::<_, Vec<String>>(1).is_empty());
    let r = one("SELECT value, date::text, realtime_end::text FROM macro_observations").await;
    assert_eq!(r.get::<_, Decimal>(0), d("4.33"));
    assert_eq!(r.get::<_, String>(1), "2026-10-01");
    assert_eq!(r.get::<_, String>(2), "9999-12-31");
    let r = one("SELECT nav, nav_date::text FROM fund_navs").await;
    assert_eq!(r.get::<_, Decimal>(0), d("101.0000000001"));
    assert_eq!(r.get::<_, String>(1), "2026-10-01");
    let r = one("SELECT sma_20, rsi_14 IS NULL, vwap_20 FROM indicators").await;
    assert_eq!(r.get::<_, f64>(0), 1.25);
    assert!(r.get::<_, bool>(1), "NaN is stored as NULL");
    assert_eq!(r.get::<_, Decimal>(2), d("1.000000000000000000000000001"));
    let r = one("SELECT compound, coins FROM sentiment").await;
    assert_eq!(r.get::<_, f64>(0), 0.75);
    assert_eq!(r.get::<_, Vec<String>>(1), vec!["BTC"]);
    let r = one("SELECT items, mean_compound FROM sentiment_coin_windows").await;
    assert_eq!((r.get::<_, i64>(0), r.get::<_, f64>(1)), (5, 0.5));
    let r = one(
        "SELECT id, side, price, inputs::text, close_time = to_timestamp(1790000060) FROM signals",
    )
    .await;
    assert_eq!(r.get::<_, String>(0), "cf00000000000000000000000000000001");
    assert_eq!(r.get::<_, String>(1), "buy");
    assert_eq!(r.get::<_, Decimal>(2), d("0.000000000000000000012345"));
    assert_eq!(r.get::<_, String>(3), r#"{"rsi_14": 31.5}"#);
    assert!(r.get::<_, bool>(4));
    let json = match &b[b.len() - 1] {
        Output::Features(f) => f.json(),
        other => panic!("{other:?}"),
    };
    let r = c
        .query_one(
            "SELECT features = $1::text::jsonb, open_time = to_timestamp(1790000000) FROM ml_features",
            &[&json],
        )
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0), "{json}");
    assert!(r.get::<_, bool>(1));
}

async fn my_rows<T: mysql_async::prelude::FromRow + Send + 'static>(
    url: &str,
    sql: &str,
) -> Vec<T> {
    let pool = mysql_async::Pool::new(url);
    let mut conn = pool.get_conn().await.unwrap();
    let out = conn.query(sql).await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_round_trips_through_mariadb() {
    use cryptoflow_sinks::mysql::{migrate, MySqlSink};
    let url = fresh_mysql_database("sqltables").await;
    migrate(&url).await.unwrap();
    let mut sink = MySqlSink::connect(&url).await.unwrap();
    let b = batch();
    sink.write(&b).await.unwrap();
    sink.write(&b).await.unwrap();
    for t in [
        "trade_aggregates",
        "candles",
        "gaps",
        "data_quality",
        "coingecko_data",
        "news",
        "social_posts",
        "macro_observations",
        "fund_navs",
        "indicators",
        "sentiment",
        "sentiment_coin_windows",
        "ml_features",
    ] {
        let n: Vec<i64> = my_rows(&url, &format!("SELECT COUNT(*) FROM {t}")).await;
        assert_eq!(n[0], 1, "{t}");
    }
    let r: Vec<(String, String, String, u64)> = my_rows(
        &url,
        "SELECT CAST(price AS CHAR), CAST(moving_average AS CHAR), CAST(ts_exchange AS CHAR), is_whale + 0 FROM trades ORDER BY trade_id",
    )
    .await;
    assert_eq!(r.len(), 2);
    assert_eq!(d(&r[0].0), d("0.000000000000000000012345"));
    assert_eq!(d(&r[1].0), d("104123.123456789012345678"));
    assert_eq!(d(&r[0].1), d("0.0000000012345678901234567891"));
    assert_eq!(r[0].2, "2026-09-21 14:13:20.001");
    assert_eq!((r[0].3, r[1].3), (0, 1));
    let r: Vec<(u64, u64, String)> = my_rows(
        &url,
        "SELECT trade_count, last_trade_id, CAST(last_price AS CHAR) FROM trade_aggregates",
    )
    .await;
    assert_eq!((r[0].0, r[0].1), (2, 2), "counted once across the replay");
    assert_eq!(d(&r[0].2), d("104123.123456789012345678"));
    let r: Vec<(u64, bool, String)> = my_rows(
        &url,
        "SELECT trade_count, is_final, CAST(high AS CHAR) FROM candles",
    )
    .await;
    assert_eq!((r[0].0, r[0].1), (2, true));
    assert_eq!(d(&r[0].2), d("3.000000000000000000000000001"));
    let r: Vec<(bool, String)> =
        my_rows(&url, "SELECT resolved_at IS NOT NULL, detail FROM gaps").await;
    assert_eq!(r, vec![(true, String::new())], "the marker is resolved");
    let r: Vec<(i64, Option<String>)> = my_rows(
        &url,
        "SELECT trades, CAST(last_event_at AS CHAR) FROM data_quality",
    )
    .await;
    assert_eq!(r, vec![(i64::MAX, None)]);
    let r: Vec<(String, String, String)> = my_rows(
        &url,
        "SELECT CAST(price AS CHAR), CAST(market_cap AS CHAR), raw FROM coingecko_data",
    )
    .await;
    assert_eq!(d(&r[0].0), d("0.00000000000000000001"));
    assert_eq!(d(&r[0].1), d("1234567890123456789.0123456789"));
    assert_eq!(r[0].2, r#"{"id":"bitcoin", "x":4.2069e14}"#);
    let r: Vec<String> = my_rows(&url, "SELECT CAST(coins AS CHAR) FROM news").await;
    assert_eq!(r, vec![r#"["BTC","ETH"]"#.to_string()]);
    let r: Vec<(i64, String)> =
        my_rows(&url, "SELECT score, CAST(coins AS CHAR) FROM social_posts").await;
    assert_eq!(r, vec![(-3, "[]".to_string())]);
    let r: Vec<(String, String, String)> = my_rows(
        &url,
        "SELECT CAST(value AS CHAR), CAST(date AS CHAR), CAST(realtime_end AS CHAR) FROM macro_observations",
    )
    .await;
    assert_eq!(d(&r[0].0), d("4.33"));
    assert_eq!(
        (r[0].1.as_str(), r[0].2.as_str()),
        ("2026-10-01", "9999-12-31")
    );
    let r: Vec<String> = my_rows(&url, "SELECT CAST(nav AS CHAR) FROM fund_navs").await;
    assert_eq!(d(&r[0]), d("101.0000000001"));
    let r: Vec<(f64, bool, String)> = my_rows(
        &url,
        "SELECT sma_20, rsi_14 IS NULL, CAST(vwap_20 AS CHAR) FROM indicators",
    )
    .await;
    assert_eq!((r[0].0, r[0].1), (1.25, true));
    assert_eq!(d(&r[0].2), d("1.000000000000000000000000001"));
    let r: Vec<(f64, String)> =
        my_rows(&url, "SELECT compound, CAST(coins AS CHAR) FROM sentiment").await;
    assert_eq!(r, vec![(0.75, r#"["BTC"]"#.to_string())]);
    let r: Vec<(i64, f64)> = my_rows(
        &url,
        "SELECT items, mean_compound FROM sentiment_coin_windows",
    )
    .await;
    assert_eq!(r, vec![(5, 0.5)]);
    let r: Vec<String> = my_rows(&url, "SELECT CAST(open_time AS CHAR) FROM ml_features").await;
    assert_eq!(r, vec!["2026-09-21 14:13:20.000".to_string()]);
}

/// The numbered migrations as the code before `sql/*/views/` had them.
const OLD_PG: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("old_schema/postgres/0001_core.sql")),
    (2, "gaps", include_str!("old_schema/postgres/0002_gaps.sql")),
    (
        3,
        "source_offsets",
        include_str!("old_schema/postgres/0003_source_offsets.sql"),
    ),
    (
        4,
        "data_quality",
        include_str!("old_schema/postgres/0004_data_quality.sql"),
    ),
    (
        5,
        "polled",
        include_str!("old_schema/postgres/0005_polled.sql"),
    ),
    (
        6,
        "analytics",
        include_str!("old_schema/postgres/0006_analytics.sql"),
    ),
    (
        7,
        "sentiment_windows",
        include_str!("old_schema/postgres/0007_sentiment_windows.sql"),
    ),
    (
        8,
        "polled_exact",
        include_str!("old_schema/postgres/0008_polled_exact.sql"),
    ),
    (
        9,
        "venues",
        include_str!("old_schema/postgres/0009_venues.sql"),
    ),
];

const OLD_MYSQL: &[(i32, &str, &str)] = &[
    (1, "core", include_str!("old_schema/mysql/0001_core.sql")),
    (
        2,
        "gaps_quality",
        include_str!("old_schema/mysql/0002_gaps_quality.sql"),
    ),
    (
        3,
        "polled",
        include_str!("old_schema/mysql/0003_polled.sql"),
    ),
    (
        4,
        "analytics",
        include_str!("old_schema/mysql/0004_analytics.sql"),
    ),
    (
        5,
        "sentiment_windows",
        include_str!("old_schema/mysql/0005_sentiment_windows.sql"),
    ),
    (
        6,
        "money_scale",
        include_str!("old_schema/mysql/0006_money_scale.sql"),
    ),
    (
        7,
        "polled_exact",
        include_str!("old_schema/mysql/0007_polled_exact.sql"),
    ),
    (
        8,
        "venues",
        include_str!("old_schema/mysql/0008_venues.sql"),
    ),
];

/// Applies the first `upto` old migrations the way the old `migrate` did.
async fn old_pg_migrate(url: &str, upto: i32) {
    let c = pg_client(url).await;
    c.batch_execute(
        "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (v, name, sql) in OLD_PG.iter().filter(|m| m.0 <= upto) {
        c.batch_execute(sql).await.unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[v, name],
        )
        .await
        .unwrap();
    }
}

/// (view, definition) of every view in the database.
async fn pg_views(url: &str) -> Vec<(String, String)> {
    let c = pg_client(url).await;
    c.query(
        "SELECT viewname::text, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn postgres_migrated_by_old_code_ends_with_the_same_views() {
    use cryptoflow_sinks::postgres::{migrate, view_name, VIEWS};
    let fresh = fresh_database("views_new").await;
    assert_eq!(migrate(&fresh).await.unwrap(), (1..=14).collect::<Vec<_>>());
    let want = pg_views(&fresh).await;
    let names: Vec<String> = {
        let mut n: Vec<String> = VIEWS
            .iter()
            .map(|(f, _)| view_name(f).to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        want.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        names
    );
    // Every old migration applied; and only the first five (the new code applies the rest).
    for (upto, rest) in [
        (9, vec![10, 11, 12, 13, 14]),
        (5, vec![6, 7, 8, 9, 10, 11, 12, 13, 14]),
    ] {
        let url = fresh_database("views_old").await;
        old_pg_migrate(&url, upto).await;
        assert_eq!(migrate(&url).await.unwrap(), rest);
        assert_eq!(
            pg_views(&url).await,
            want,
            "after old migrations 1..={upto}"
        );
        let c = pg_client(&url).await;
        for n in &names {
            c.query(&format!("SELECT * FROM {n} LIMIT 1"), &[])
                .await
                .unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        assert!(migrate(&url).await.unwrap().is_empty());
        assert_eq!(pg_views(&url).await, want, "re-applied");
    }
}

#[tokio::test]
async fn postgres_view_with_changed_columns_is_recreated() {
    use cryptoflow_sinks::postgres::migrate;
    let url = fresh_database("views_cols").await;
    migrate(&url).await.unwrap();
    let want = pg_views(&url).await;
    let c = pg_client(&url).await;
    // A view whose columns differ from the file's (CREATE OR REPLACE cannot turn it back), and a
    // view on it (crypto_combined_data, which reads it, goes with the old one).
    c.batch_execute(
        "DROP VIEW latest_prices CASCADE;
         CREATE VIEW latest_prices AS SELECT symbol AS sym, venue FROM trade_aggregates;
         CREATE VIEW on_latest AS SELECT sym FROM latest_prices;",
    )
    .await
    .unwrap();
    assert!(migrate(&url).await.unwrap().is_empty());
    assert_eq!(
        pg_views(&url).await,
        want,
        "re-created; the view on it dropped"
    );
    let cols: Vec<String> = c
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'latest_prices' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        cols,
        [
            "venue",
            "symbol",
            "price",
            "trade_id",
            "moving_average",
            "updated_at",
            "open_24h",
            "change_24h",
            "change_pct_24h",
            "volume_24h",
            "quote_volume_24h"
        ]
    );
}

fn statements(sql: &str) -> Vec<String> {
    let no_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    no_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// (view, definition with the schema name taken out) of every view in the database.
async fn my_views(url: &str) -> Vec<(String, String)> {
    let schema = url.rsplit_once('/').unwrap().1.to_string();
    my_rows::<(String, String)>(
        url,
        "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
    )
    .await
    .into_iter()
    .map(|(n, def)| (n, def.replace(&schema, "S")))
    .collect()
}

#[tokio::test]
async fn mariadb_migrated_by_old_code_ends_with_the_same_views() {
    use cryptoflow_sinks::mysql::{migrate, VIEWS};
    let fresh = fresh_mysql_database("views_new").await;
    assert_eq!(migrate(&fresh).await.unwrap(), (1..=8).collect::<Vec<_>>());
    let want = my_views(&fresh).await;
    let mut names: Vec<String> = VIEWS
        .iter()
        .map(|(f, _)| cryptoflow_sinks::postgres::view_name(f).to_string())
        .collect();
    names.sort();
    assert_eq!(
        want.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        names
    );
    for (upto, rest) in [(8, vec![]), (3, vec![4, 5, 6, 7, 8])] {
        let url = fresh_mysql_database("views_old").await;
        let pool = mysql_async::Pool::new(url.as_str());
        let mut conn = pool.get_conn().await.unwrap();
        conn.query_drop(
            "CREATE TABLE schema_migrations (version INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
                 applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))",
        )
        .await
        .unwrap();
        for (v, name, sql) in OLD_MYSQL.iter().filter(|m| m.0 <= upto) {
            for s in statements(sql) {
                conn.query_drop(s).await.unwrap();
            }
            conn.exec_drop(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                (*v, *name),
            )
            .await
            .unwrap();
        }
        drop(conn);
        pool.disconnect().await.unwrap();
        assert_eq!(migrate(&url).await.unwrap(), rest);
        assert_eq!(
            my_views(&url).await,
            want,
            "after old migrations 1..={upto}"
        );
        for n in &names {
            let _: Vec<mysql_async::Row> =
                my_rows(&url, &format!("SELECT * FROM {n} LIMIT 1")).await;
        }
    }
}
