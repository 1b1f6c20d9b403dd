//! VADER against Python vaderSentiment 3.3.2 (run under Python 3.13) on 260 texts: crypto
//! headlines, negation, "but", capitals, emoji, "!!!", idioms, tickers. All four scores equal at
//! the printed precision. Golden file: `tests/reference/vader_reference.py`.

use cryptoflow_operators::sentiment::{SentimentModel, Vader};

#[test]
fn every_score_equals_the_python_package() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sentiment/vader_golden.tsv");
    let text = std::fs::read_to_string(path).unwrap();
    let vader = Vader::new();
    let mut n = 0;
    let mut nonzero = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line}");
        let input = f[0].replace("\\n", "\n");
        let got = vader.score(&input);
        let want: Vec<f64> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            [got.neg, got.neu, got.pos, got.compound],
            [want[0], want[1], want[2], want[3]],
            "{input:?}"
        );
        n += 1;
        nonzero += usize::from(got.compound != 0.0);
    }
    assert!(n >= 200, "{n} texts");
    assert!(nonzero >= 150, "{nonzero} texts with a non-zero compound");
}
