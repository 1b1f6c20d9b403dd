//! Every indicator against golden values computed by TA-Lib 0.8.2 (numpy / Python decimal for the
//! three TA-Lib lacks) on the same generated candles, warm-up rows included:
//! `tests/reference/indicators_reference.py` wrote `tests/fixtures/indicators/`.

use std::collections::HashMap;
use std::path::PathBuf;

use cryptoflow_operators::math::indicators::*;
use cryptoflow_operators::math::Ema;
use rust_decimal::Decimal;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/indicators")
}

fn read(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (head, rows)
}

fn close_enough(got: f64, want: f64) -> bool {
    let d = (got - want).abs();
    d <= 1e-9 * want.abs() || d <= 1e-12
}

#[test]
fn every_indicator_matches_talib_including_warm_up() {
    let (_, candles) = read("candles.csv");
    let (head, golden) = read("golden.csv");
    let col: HashMap<&str, usize> = head
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let mut sma = Sma::new(20);
    let mut ema = Ema::new(20);
    let mut wma = Wma::new(20);
    let mut rsi = Rsi::new(14);
    let mut macd = Macd::new(12, 26, 9);
    let mut bb = Bollinger::new(20, 2.0);
    let mut atr = Atr::new(14);
    let mut obv = Obv::new();
    let mut stoch = Stoch::new(14, 3, 3);
    let mut roc = Roc::new(10);
    let mut mom = Momentum::new(10);
    let mut vol = Volatility::new(20);
    let mut z = ZScore::new(20);
    let mut vwap = Vwap::new(20);
    let mut checked = 0usize;
    let mut values = 0usize;
    for (i, (c, g)) in candles.iter().zip(&golden).enumerate() {
        let f = |k: usize| c[k].parse::<f64>().unwrap();
        let bar = Bar {
            high: f(2),
            low: f(3),
            close: f(4),
            volume: f(5),
        };
        let x = bar.close;
        let m = macd.update(x);
        let b = bb.update(x);
        let s = stoch.update(&bar);
        let got: Vec<(&str, Option<f64>)> = vec![
            ("sma_20", sma.update(x)),
            ("ema_20", ema.update(x)),
            ("wma_20", wma.update(x)),
            ("rsi_14", rsi.update(x)),
            ("macd", m.map(|v| v.macd)),
            ("macd_signal", m.map(|v| v.signal)),
            ("macd_hist", m.map(|v| v.hist)),
            ("bb_upper", b.map(|v| v.upper)),
            ("bb_middle", b.map(|v| v.middle)),
            ("bb_lower", b.map(|v| v.lower)),
            ("atr_14", atr.update(&bar)),
            ("obv", obv.update(&bar)),
            ("stoch_k", s.map(|v| v.k)),
            ("stoch_d", s.map(|v| v.d)),
            ("roc_10", roc.update(x)),
            ("mom_10", mom.update(x)),
            ("volatility_20", vol.update(x)),
            ("zscore_20", z.update(x)),
        ];
        for (name, v) in got {
            let want = &g[col[name]];
            match (v, want.is_empty()) {
                (None, true) => {}
                (Some(v), false) => {
                    let w: f64 = want.parse().unwrap();
                    assert!(
                        close_enough(v, w),
                        "{name} at bar {i}: got {v:e}, TA-Lib {w:e}"
                    );
                    values += 1;
                }
                (v, _) => {
                    panic!("{name} at bar {i}: got {v:?}, reference {want:?} (warm-up differs)")
                }
            }
            checked += 1;
        }
        let q: Decimal = c[6].parse().unwrap();
        let vlm: Decimal = c[5].parse().unwrap();
        let want = &g[col["vwap_20"]];
        match vwap.update(q, vlm) {
            None => assert!(want.is_empty(), "vwap_20 at bar {i}: reference {want}"),
            Some(v) => {
                let w: Decimal = want[..want.len().min(30)].parse().unwrap();
                let rel = ((v - w) / w).abs();
                assert!(rel < Decimal::new(1, 9), "vwap_20 at bar {i}: {v} vs {w}");
            }
        }
    }
    assert_eq!(checked, 400 * 18);
    assert!(values > 6_500, "{values} values compared");
}
