//! MyInvestor's fund catalogue, HTML or JSON (`sources::poll::myinvestor::parse_catalogue`).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_sources::poll::myinvestor::parse_catalogue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_catalogue("https://myinvestor.example/fondos", data, 1_700_000_000_000);
});
