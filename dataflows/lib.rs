//! cryptoflow: a streaming dataflow pipeline for crypto market data.
//!
//! # Layout
//!
//! - [`config`]: layered TOML configuration (defaults < file < env < flags).
//! - [`layout`]: the multi-process cluster's layout from flags, the environment or the hostname.
//! - [`pipeline`]: the trade pipeline's dataflow graph (events in; records and data-quality facts out).
//! - [`runtime`]: build → start → run → drain: sink tasks and acks, the timely ↔ tokio bridge,
//!   the watermark rules of the feed, shutdown.
//! - [`registry`]: the one list of sinks and sources the configuration can turn on.
//! - [`poll`]: the pollers' configuration (`[poll]`) and their construction.
//! - [`publish`]: raw Binance frames to a Kafka topic (`record --kafka`, bench).
//! - [`bench`]: `cryptoflow bench`, the end-to-end benchmark.
//! - [`serve`]: the HTTP API, WebSocket push and metrics of a running pipeline.
//! - [`trade`]: `[trading]`, `cryptoflow backtest` and `cryptoflow execute` (strategies, risk
//!   gate, paper broker or Binance, the journal).
//! - [`notice`]: the `cryptoflow: …` lines on stderr, plain or JSON like the logs.
//! - [`secrets`]: credentials in every form, refused in files and redacted in every output.
//! - `main.rs`: the CLI (`run`, `consume`, `replay`, `record`, `generate`, `migrate`, `bench`, `check-config`,
//!   `backtest`, `execute`).
//!
//! The other crates: `cryptoflow-sources` (Binance WebSocket, replay, record, generate),
//! `cryptoflow-operators` (event model, math, timely operators), `cryptoflow-sinks`
//! (PostgreSQL, MySQL, InfluxDB, Kafka, console, JSON lines, the sink task).
#![warn(missing_docs)]

pub mod bench;
pub mod config;
pub mod layout;
pub mod notice;
pub mod pipeline;
pub mod poll;
pub mod publish;
pub mod registry;
pub mod runtime;
pub mod secrets;
pub mod serve;
pub mod trade;
