//! Binance REST refill pages (`sources::rest::decode_page`), `aggTrades` and `historicalTrades`.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_operators::model::{StreamKind, Symbol};
use cryptoflow_sources::rest::decode_page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(text), Ok(symbol)) = (cryptoflow_fuzz::text(data), Symbol::new("BTCUSDT")) else {
        return;
    };
    for kind in [StreamKind::AggTrade, StreamKind::Trade] {
        if let Ok(trades) = decode_page(text, symbol, kind, 1) {
            for t in trades {
                assert!(
                    t.price > rust_decimal::Decimal::ZERO && t.qty > rust_decimal::Decimal::ZERO
                );
            }
        }
    }
});
