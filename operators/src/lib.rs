//! Event model, pure indicator math and timely operators of cryptoflow.
//!
//! # Layout
//!
//! - [`model`]: the vocabulary every crate shares, with money as [`rust_decimal::Decimal`]; it
//!   imports nothing of the engine below. Its files import each other in one direction:
//!   - [`model::market`]: normalized market data (`Trade`, `Kline`, `Candle`, `WhaleAlert`,
//!     `Gap`, `DataQuality`, …);
//!   - [`model::polled`]: items of the pollers (news, social posts, market snapshots, macro,
//!     fund NAVs);
//!   - [`model::outputs`]: every row a sink receives (`EnrichedTrade`, `IndicatorRow`,
//!     `FeatureRow`, `SentimentRow`, …) and [`model::Output`], the one type carrying them;
//!   - [`model::event`]: what flows into the dataflow ([`model::Event`]) and the context items
//!     the features join.
//! - [`features`]: point-in-time ML feature vectors and their catalogue.
//! - [`sentiment`]: sentiment models behind one trait (VADER by default), and the per-coin
//!   rolling windows.
//! - [`math`]: pure, incremental state machines (moving averages, candle accumulation,
//!   indicators); no I/O.
//! - [`dataflow`]: timely extension traits that shard by symbol and wrap the math.
//! - [`trading`]: order intents, the risk gate, the paper fill model, positions and text orders.
//! - [`backoff`]: the one retry backoff (exponential, equal jitter) every retry loop waits.
//! - [`polled`]: the items of the pollers under their older path (the same as
//!   [`model::polled`]).
#![warn(missing_docs)]

pub mod backoff;
pub mod dataflow;
pub mod features;
pub mod math;
pub mod model;
pub mod sentiment;
pub mod trading;

/// The items of the pollers: the same module as [`model::polled`], under its older path.
pub mod polled {
    pub use crate::model::polled::*;
}

pub use rust_decimal::Decimal;
