//! FRED observation pages (`sources::poll::fred::decode`).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_sources::poll::fred::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode("DGS10", data);
});
