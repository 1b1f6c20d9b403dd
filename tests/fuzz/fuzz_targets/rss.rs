//! RSS and Atom feeds (`sources::poll::rss::parse_feed`).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::sync::OnceLock;

use cryptoflow_sources::poll::rss::parse_feed;
use cryptoflow_sources::poll::text::CoinTagger;
use libfuzzer_sys::fuzz_target;

static TAGGER: OnceLock<CoinTagger> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let tagger = TAGGER.get_or_init(CoinTagger::default_table);
    let _ = parse_feed("https://news.example/feed", data, 1_700_000_000_000, tagger);
});
