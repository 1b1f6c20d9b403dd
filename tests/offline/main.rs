//! Tests that need nothing but the build: golden outputs, fake exchanges on 127.0.0.1, the CLI.
//! Run with `cargo test --test offline`.

#[path = "../support/mod.rs"]
mod support;

mod backtest;
mod bench_baseline;
mod binance_orders;
mod csv_replay;
mod first_run;
mod frame_types;
mod gap_refill;
mod kafka_schemas;
mod kline_reconcile;
mod multiprocess;
mod pipeline_golden;
mod poll_fetch;
mod rollover;
mod sentiment_cli;
mod serve;
mod signals;
mod telegram;
mod websocket;
