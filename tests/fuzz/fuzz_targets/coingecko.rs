//! CoinGecko `/coins/markets` and `/simple/price` bodies (`sources::poll::coingecko`).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_sources::poll::coingecko::{decode_markets, decode_simple_price};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_markets(data, "usd", 1_700_000_000_000);
    let ids = [
        "bitcoin".to_string(),
        "ethereum".to_string(),
        "pepe".to_string(),
    ];
    let _ = decode_simple_price(data, &ids, "usd", 1_700_000_000_000);
});
