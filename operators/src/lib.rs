//! Event model, pure indicator math and timely operators of cryptoflow.
//!
//! # Layout
//!
//! - [`model`]: the normalized events every other crate sees (`Trade`, `Kline`, `Candle`,
//!   `WhaleAlert`, `Gap`), with money as [`rust_decimal::Decimal`].
//! - [`model::polled`]: items of the pollers (news, social posts, market snapshots, macro, fund
//!   NAVs), also under their older path [`polled`].
//! - [`features`]: point-in-time ML feature vectors and their catalogue.
//! - [`sentiment`]: sentiment models behind one trait (VADER by default).
//! - [`math`]: pure, incremental state machines (moving averages, candle accumulation); no I/O.
//! - [`dataflow`]: timely extension traits that shard by symbol and wrap the math.
#![warn(missing_docs)]

pub mod dataflow;
pub mod features;
pub mod math;
pub mod model;
pub mod sentiment;

/// The items of the pollers: the same module as [`model::polled`], under its older path.
pub mod polled {
    pub use crate::model::polled::*;
}

pub use rust_decimal::Decimal;
