//! One line of a data.binance.vision CSV dump (`sources::binance::decode_csv_line`), of each
//! kind and of the kind its column count tells.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_operators::model::Symbol;
use cryptoflow_sources::binance::{csv_is_header, decode_csv_line, CsvKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(line), Ok(symbol)) = (cryptoflow_fuzz::text(data), Symbol::new("BTCUSDT")) else {
        return;
    };
    let _ = csv_is_header(line);
    for kind in [
        None,
        Some(CsvKind::Trades),
        Some(CsvKind::AggTrades),
        Some(CsvKind::Klines),
    ] {
        let _ = decode_csv_line(line, symbol, kind);
    }
});
