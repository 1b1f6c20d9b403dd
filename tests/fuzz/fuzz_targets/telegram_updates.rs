//! Telegram `getUpdates` answers (`sources::telegram::read_updates`): the envelope, each update,
//! commands and button data.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_sources::telegram::read_updates;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_updates(data);
});
