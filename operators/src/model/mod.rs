//! The vocabulary of cryptoflow: every type that crosses a crate boundary, with its small pure
//! methods. Nothing here runs a dataflow or computes an indicator; the engine modules
//! ([`crate::dataflow`], [`crate::features`], [`crate::sentiment`], [`crate::math`]) import this
//! module, never the other way round.
//!
//! The files import each other in one direction only, each from those above it:
//!
//! 1. [`market`]: venues, symbols, trades, klines, candles, whales, gaps, the data-quality
//!    ledger.
//! 2. [`polled`]: the items of the pollers (news, social posts, market snapshots, macro
//!    observations, fund NAVs).
//! 3. [`outputs`]: every row a sink receives, and [`Output`], the one type that carries them.
//! 4. [`event`]: what flows into the dataflow ([`Event`]) and the context the features join.
//!
//! Everything is re-exported here: `model::Trade`, `model::Output`, `model::Event`.

pub mod event;
pub mod market;
pub mod outputs;
pub mod polled;

pub use event::*;
pub use market::*;
pub use outputs::*;
pub use polled::*;
