//! Deterministic synthetic Binance trade payloads for demos, tests and benchmarks.
//!
//! Per symbol: a random walk of the price (±0.05 % steps, rounded to the symbol's tick), trade
//! sizes from a Pareto distribution (α = 1) over a 2,000 quote-unit minimum notional, so about
//! 2 % of trades reach a 100,000 notional (whales), and consecutive trade ids from 1. Trades of
//! all symbols interleave round-robin with a fixed time step. The same seed gives the same bytes.

use std::io::Write;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Number of symbols (named from a built-in list, then `SYM<n>USDT`).
    pub symbols: usize,
    /// Total trades over all symbols.
    pub trades: u64,
    /// Seed of the pseudo-random sequence.
    pub seed: u64,
    /// Time of the first trade, ms.
    pub start_ms: i64,
    /// Milliseconds between consecutive trades (over all symbols).
    pub step_ms: i64,
    /// Wrap each payload in the combined-stream wrapper.
    pub combined: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            symbols: 10,
            trades: 10_000,
            seed: 42,
            start_ms: 1_700_000_000_000,
            step_ms: 5,
            combined: false,
        }
    }
}

const NAMED: [(&str, f64, u32); 10] = [
    ("BTCUSDT", 43_000.0, 2),
    ("ETHUSDT", 2_300.0, 2),
    ("BNBUSDT", 310.0, 1),
    ("SOLUSDT", 98.0, 2),
    ("XRPUSDT", 0.62, 4),
    ("ADAUSDT", 0.58, 4),
    ("DOGEUSDT", 0.085, 5),
    ("AVAXUSDT", 36.0, 2),
    ("DOTUSDT", 7.3, 3),
    ("LINKUSDT", 15.2, 2),
];

/// The generator's pseudo-random sequence (shared with the retry backoff, so one generator is
/// specified in one place).
pub use cryptoflow_operators::backoff::SplitMix64;

struct SymState {
    name: String,
    price: f64,
    decimals: u32,
    next_id: u64,
}

/// Writes `opts.trades` trade payloads, one JSON line each; returns the number written.
pub fn generate(opts: &GenerateOptions, out: &mut dyn Write) -> std::io::Result<u64> {
    let mut rng = SplitMix64::new(opts.seed);
    let n = opts.symbols.max(1);
    let mut syms: Vec<SymState> = (0..n)
        .map(|i| {
            let (name, price, decimals) = match NAMED.get(i) {
                Some((n, p, d)) => (n.to_string(), *p, *d),
                None => (format!("SYM{i}USDT"), 1.0 + (i % 1000) as f64, 3),
            };
            SymState {
                name,
                price,
                decimals,
                next_id: 1,
            }
        })
        .collect();
    for i in 0..opts.trades {
        let s = &mut syms[(i % n as u64) as usize];
        let step = (rng.next_f64() - 0.5) * 0.001;
        s.price = (s.price * (1.0 + step)).max(10f64.powi(-(s.decimals as i32)));
        let notional = (2_000.0 / rng.next_f64()).min(5_000_000.0);
        let price = Decimal::from_f64(s.price)
            .unwrap_or(Decimal::ONE)
            .round_dp(s.decimals);
        let price = if price.is_zero() {
            Decimal::new(1, s.decimals)
        } else {
            price
        };
        let qty = Decimal::from_f64(notional / s.price)
            .unwrap_or(Decimal::ONE)
            .round_dp(5);
        let qty = if qty.is_zero() {
            Decimal::new(1, 5)
        } else {
            qty
        };
        let maker = rng.next_u64() & 1 == 1;
        let ts = opts.start_ms + i as i64 * opts.step_ms;
        let id = s.next_id;
        s.next_id += 1;
        let payload = format!(
            r#"{{"e":"trade","E":{e},"s":"{sym}","t":{id},"p":"{price}","q":"{qty}","T":{ts},"m":{maker},"M":true}}"#,
            e = ts + 1,
            sym = s.name,
        );
        if opts.combined {
            writeln!(
                out,
                r#"{{"stream":"{}@trade","data":{payload}}}"#,
                s.name.to_lowercase()
            )?;
        } else {
            writeln!(out, "{payload}")?;
        }
    }
    Ok(opts.trades)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::{decode_frame, Decoded};
    use cryptoflow_operators::model::Event;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 1234567 (published in the reference C code's test).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn deterministic_decodable_with_whales() {
        let opts = GenerateOptions {
            trades: 20_000,
            ..Default::default()
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        generate(&opts, &mut a).unwrap();
        generate(&opts, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let mut whales = 0;
        let mut last_id = std::collections::HashMap::new();
        for line in text.lines() {
            let Decoded::Event(Event::Trade(t)) = decode_frame(line, 0).unwrap() else {
                panic!()
            };
            let prev = last_id.insert(t.symbol, t.trade_id).unwrap_or(0);
            assert_eq!(t.trade_id, prev + 1);
            if t.notional() >= Decimal::from(100_000) {
                whales += 1;
            }
        }
        assert!((200..=800).contains(&whales), "whales = {whales}");
    }
}
