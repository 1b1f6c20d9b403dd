//! The vocabulary of cryptoflow: every type that crosses a crate boundary, with its small pure
//! methods.
//!
//! - [`market`]: venues, symbols, trades, klines, candles, whales, gaps, the data-quality
//!   ledger, and the events of the dataflow.
//! - [`polled`]: the items of the pollers (news, social posts, market snapshots, macro
//!   observations, fund NAVs); it imports only [`market`].
//! - [`outputs`]: every row a sink receives, and [`Output`], the one type that carries them; it
//!   imports [`market`] and [`polled`].
//!
//! Everything is re-exported here: `model::Trade`, `model::Polled`, `model::Output`.

pub mod market;
pub mod outputs;
pub mod polled;

pub use market::*;
pub use outputs::*;
pub use polled::*;
