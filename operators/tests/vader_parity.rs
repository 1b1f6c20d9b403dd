//! VADER against Python vaderSentiment 3.3.2 (run under Python 3.13) — all four scores equal at
//! the printed precision:
//! - plain VADER on 260 texts: crypto headlines, negation, "but", capitals, emoji, "!!!", idioms,
//!   tickers;
//! - VADER with the crypto overlay on those 260, the 292 labelled headlines and the 255 feed-shaped
//!   texts of `feed_dev.tsv`, the Python side extended the package's own way (its `lexicon`
//!   dictionary updated with the overlay file).
//!
//! Golden files: `tests/reference/vader_reference.py`.

use cryptoflow_operators::sentiment::{SentimentModel, Vader};

/// Checks every line of a golden file; returns (texts, texts with a non-zero compound).
fn check_golden(model: &dyn SentimentModel, file: &str) -> (usize, usize) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sentiment")
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    let mut nonzero = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line}");
        let input = f[0].replace("\\n", "\n");
        let got = model.score(&input);
        let want: Vec<f64> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            [got.neg, got.neu, got.pos, got.compound],
            [want[0], want[1], want[2], want[3]],
            "{input:?}"
        );
        n += 1;
        nonzero += usize::from(got.compound != 0.0);
    }
    (n, nonzero)
}

#[test]
fn every_score_equals_the_python_package() {
    let (n, nonzero) = check_golden(&Vader::new(), "vader_golden.tsv");
    assert!(n >= 200, "{n} texts");
    assert!(nonzero >= 150, "{nonzero} texts with a non-zero compound");
}

#[test]
fn the_crypto_overlay_equals_the_python_package_with_the_same_words() {
    let (n, nonzero) = check_golden(&Vader::crypto(), "vader_crypto_golden.tsv");
    assert!(n >= 800, "{n} texts");
    assert!(nonzero >= 550, "{nonzero} texts with a non-zero compound");
}

/// Plain VADER and VADER + crypto overlay on a labelled file (three classes, VADER's ±0.05
/// thresholds).
fn plain_and_crypto(
    file: &str,
) -> (
    cryptoflow_operators::sentiment::Evaluation,
    cryptoflow_operators::sentiment::Evaluation,
) {
    use cryptoflow_operators::sentiment::{evaluate, parse_labelled};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/sentiment")
        .join(file);
    let labelled = parse_labelled(&std::fs::read_to_string(path).unwrap()).unwrap();
    let plain = evaluate(&Vader::new(), &labelled);
    let crypto = evaluate(&Vader::crypto(), &labelled);
    println!("{file}: plain VADER: {plain:?}\n{file}: VADER + crypto overlay: {crypto:?}");
    (plain, crypto)
}

/// The overlay's gain on the 292 hand-labelled crypto headlines. In-domain: the same team wrote
/// the headlines, the labels and the word list, so the floor (+20 points; measured +37, 57.2 %
/// → 94.5 %) says only that the words still do what they were written for; README gives the
/// out-of-domain figures.
#[test]
fn the_crypto_overlay_gains_on_the_labelled_headlines() {
    let (plain, crypto) = plain_and_crypto("crypto_labelled.tsv");
    assert_eq!(plain.n, 292);
    assert!(
        crypto.accuracy >= plain.accuracy + 0.20,
        "{plain:?} {crypto:?}"
    );
    assert!(
        crypto.macro_f1 >= plain.macro_f1 + 0.20,
        "{plain:?} {crypto:?}"
    );
}

/// The overlay's gain on the 255 feed-shaped texts (RSS title + summary, bare headlines, Reddit
/// titles; labelled before any model scored them). The overlay was tuned on four fifths of this
/// file, so this too is in-domain; the floor (+15 points; measured +24, 54.9 % → 78.4 %) guards
/// against a word list edit that undoes the feed vocabulary.
#[test]
fn the_crypto_overlay_gains_on_the_feed_texts() {
    let (plain, crypto) = plain_and_crypto("feed_dev.tsv");
    assert_eq!(plain.n, 255);
    assert!(
        crypto.accuracy >= plain.accuracy + 0.15,
        "{plain:?} {crypto:?}"
    );
    assert!(
        crypto.macro_f1 >= plain.macro_f1 + 0.15,
        "{plain:?} {crypto:?}"
    );
}

/// The overlay's gain on the held-out set (`feed_heldout.tsv`: 219 feed-shaped texts written and
/// labelled by someone else, never used for the word list). Measured 49.3 % → 71.7 % accuracy
/// (+22 points), macro-F1 0.496 → 0.714; the floor is +15 points and 70 % accuracy. The
/// independent check the in-domain floors above cannot give: an edit that only memorises the
/// in-domain files does not move this one.
#[test]
fn the_crypto_overlay_gains_on_the_held_out_feed_texts() {
    let (plain, crypto) = plain_and_crypto("feed_heldout.tsv");
    assert_eq!(plain.n, 219);
    assert!(
        crypto.accuracy >= plain.accuracy + 0.15 && crypto.accuracy >= 0.70,
        "{plain:?} {crypto:?}"
    );
    assert!(
        crypto.macro_f1 >= plain.macro_f1 + 0.15,
        "{plain:?} {crypto:?}"
    );
}
