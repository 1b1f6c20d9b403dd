//! The dashboard page in a real headless Chromium, against a paced replay into PostgreSQL: the
//! chart fills with candles over the live feed, and the values the page displays are the ones
//! stored in the database.

use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::served::Proc;
use crate::support::{fresh_database, pg_client};
use cryptoflow_operators::Decimal;
use cryptoflow_sinks::postgres::migrate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_stored_candles_live() {
    let url = fresh_database("dash").await;
    migrate(&url).await.unwrap();
    // The bundled sample (an hour of 4 symbols), paced so the page watches it arrive.
    let run = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_cryptoflow")).args([
        "replay",
        "--quiet",
        "--rate",
        "1500",
        "--listen",
        "127.0.0.1:0",
        "--keep-serving",
        "--jsonl",
        "/dev/null",
        "--postgres",
        &url,
    ]));
    let base = run.base();

    let mut page = Browser::open(&format!("{base}/?symbol=BTCUSDT"), 1400, 1000).await;
    // The live feed is connected, and the chart grows to at least 6 of the sample's final candles
    // (its last minute closes at the end of the replay).
    page.wait_until(
        "document.getElementById('conn').textContent === 'live'",
        Duration::from_secs(60),
    )
    .await;
    page.wait_until(
        "Number(document.getElementById('chart').dataset.final) >= 6",
        Duration::from_secs(90),
    )
    .await;
    run.wait_for("the replay is done");
    page.wait_until(
        "document.querySelectorAll('#candles tbody tr').length >= 6",
        Duration::from_secs(30),
    )
    .await;
    let shown = page
        .eval(
            "JSON.stringify(Array.from(document.querySelectorAll('#candles tbody tr')).map(tr => \
             ({open_time: Number(tr.dataset.openTime), \
               cells: Array.from(tr.cells).map(td => [td.dataset.field, td.textContent])})))",
        )
        .await;
    let shown: serde_json::Value = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    let price = page
        .eval("document.getElementById('price').textContent")
        .await;
    let png = page.screenshot().await;
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "{}",
        shot.display()
    );
    drop(page);

    // Every displayed candle equals the stored one, value for value.
    let db = pg_client(&url).await;
    let rows = shown.as_array().unwrap();
    assert!(rows.len() >= 6);
    for row in rows {
        let open_ms = row["open_time"].as_i64().unwrap();
        let r = db
            .query_one(
                "SELECT open::text, high::text, low::text, close::text, volume::text, trade_count \
                 FROM candles WHERE symbol = 'BTCUSDT' AND interval = '1m' AND is_final \
                 AND open_time = to_timestamp($1::float8 / 1000)",
                &[&(open_ms as f64)],
            )
            .await
            .unwrap_or_else(|e| panic!("candle {open_ms} is not stored: {e}"));
        for (field, text) in row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_str().unwrap(), c[1].as_str().unwrap()))
        {
            let stored = match field {
                "open" => r.get::<_, String>(0),
                "high" => r.get::<_, String>(1),
                "low" => r.get::<_, String>(2),
                "close" => r.get::<_, String>(3),
                "volume" => r.get::<_, String>(4),
                "trade_count" => r.get::<_, i64>(5).to_string(),
                _ => continue,
            };
            assert_eq!(
                Decimal::from_str(text).unwrap(),
                Decimal::from_str(&stored).unwrap(),
                "{field} of the candle at {open_ms}: page {text}, database {stored}"
            );
        }
    }
    // The price shown is the last stored trade's.
    let last: String = db
        .query_one(
            "SELECT price::text FROM trades WHERE symbol = 'BTCUSDT' ORDER BY trade_id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        Decimal::from_str(price.as_str().unwrap()).unwrap(),
        Decimal::from_str(&last).unwrap()
    );

    run.stop();
}
