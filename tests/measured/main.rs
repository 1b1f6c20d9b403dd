//! Tests that measure the cryptoflow process itself (its peak memory during a long refill, its
//! lag behind the exchange): a binary of their own, so that cargo runs them alone and no other
//! test loads the box while they measure. Needs the services, like `tests/services`.

#[path = "../support/mod.rs"]
mod support;

mod long_refill;
