//! Event model, pure indicator math and timely operators of cryptoflow.
//!
//! # Layout
//!
//! - [`model`]: the normalized events every other crate sees (`Trade`, `Kline`, `Candle`,
//!   `WhaleAlert`, `Gap`), with money as [`rust_decimal::Decimal`].
//! - [`polled`]: items of the pollers (news, social posts, market snapshots, macro, fund NAVs).
//! - [`features`]: point-in-time ML feature vectors and their catalogue.
//! - [`sentiment`]: sentiment models behind one trait (VADER by default).
//! - [`math`]: pure, incremental state machines (moving averages, candle accumulation); no I/O.
//! - [`dataflow`]: timely extension traits that shard by symbol and wrap the math.
#![warn(missing_docs)]

pub mod backoff;
pub mod dataflow;
pub mod features;
pub mod math;
pub mod model;
pub mod polled;
pub mod sentiment;

pub use rust_decimal::Decimal;
