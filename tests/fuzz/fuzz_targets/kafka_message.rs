//! Kafka messages of raw frames (`sources::kafka::MessageDecoder`): the input is a sequence of
//! messages, each `[flags][len: u16 le][payload]`, whose flags give the `venue` header; one
//! decoder reads them all, as the consumer does, so id sequences run across messages.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use cryptoflow_sources::kafka::MessageDecoder;
use cryptoflow_sources::stats::SourceStats;
use libfuzzer_sys::fuzz_target;

const VENUES: [&[u8]; 4] = [b"binance", b"binance-usdm", b"binance-coinm", b"nowhere"];

fuzz_target!(|data: &[u8]| {
    let stats = SourceStats::default();
    let mut decoder = MessageDecoder::new(4096);
    let mut out = Vec::new();
    let mut rest = data;
    while let [flags, lo, hi, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let venue = match flags & 7 {
            0..=3 => Some(VENUES[usize::from(flags & 3)]),
            4 => Some(&b""[..]),
            _ => None,
        };
        let before = out.len();
        if decoder
            .decode(payload, venue, 1_700_000_000_000, &stats, &mut out)
            .is_err()
        {
            assert_eq!(out.len(), before, "a dead letter adds no event");
        }
    }
    if !rest.is_empty() {
        // A short tail is one message of its own.
        let _ = decoder.decode(rest, None, 1_700_000_000_000, &stats, &mut out);
    }
});
