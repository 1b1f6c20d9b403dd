//! Reddit listing pages (`sources::poll::reddit::decode_listing`).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::sync::OnceLock;

use cryptoflow_sources::poll::reddit::decode_listing;
use cryptoflow_sources::poll::text::CoinTagger;
use libfuzzer_sys::fuzz_target;

static TAGGER: OnceLock<CoinTagger> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let tagger = TAGGER.get_or_init(CoinTagger::default_table);
    let _ = decode_listing(data, 1_700_000_000_000, tagger);
});
