//! Binance WebSocket frames and capture lines (`sources::binance::decode_frame`): never a panic,
//! and the fast path always agrees with the serde reference decoder.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_operators::model::Symbol;
use cryptoflow_sources::binance::{decode_frame, decode_frame_serde, decode_frame_with_symbol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = cryptoflow_fuzz::text(data) else {
        return;
    };
    let fast = decode_frame(text, 7);
    let reference = decode_frame_serde(text, 7);
    assert_eq!(
        fast, reference,
        "fast and serde decoders disagree on {text:?}"
    );
    if let Ok(symbol) = Symbol::new("BTCUSDT") {
        let _ = decode_frame_with_symbol(text, 7, Some(symbol));
    }
});
