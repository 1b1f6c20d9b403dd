//! Differential fuzz: our VADER against the independent `vader-parity` port (itself checked
//! against CPython 3.12 vaderSentiment 3.3.2) on 30,000 random sentences built to hit every rule
//! — boosters before lexicon words, negations at one to three words, "no … or", "least",
//! "kind of", idioms and special cases, "but" with repeated values, capitals, punctuation runs,
//! emoticons, emoji with and without spaces, Python-only whitespace.

use cryptoflow_operators::sentiment::{SentimentModel, Vader};

const WORDS: &[&str] = &[
    "good",
    "bad",
    "great",
    "terrible",
    "love",
    "hate",
    "happy",
    "sad",
    "win",
    "loss",
    "crash",
    "fraud",
    "gain",
    "gains",
    "fear",
    "panic",
    "no",
    "not",
    "never",
    "isn't",
    "without",
    "doubt",
    "so",
    "this",
    "very",
    "extremely",
    "kind",
    "of",
    "sort",
    "kinda",
    "barely",
    "least",
    "at",
    "but",
    "BUT",
    "GOOD",
    "BAD",
    "VERY",
    "NOT",
    "the",
    "shit",
    "bomb",
    "bad",
    "ass",
    "yeah",
    "right",
    "kiss",
    "death",
    "to",
    "die",
    "for",
    "bus",
    "stop",
    "just",
    "enough",
    "or",
    "nor",
    "bitcoin",
    "BTC",
    "$ETH",
    "ETF",
    "price",
    "market",
    ":)",
    ":(",
    ":D",
    "<3",
    "lol",
    "LOL",
    "😀",
    "💔",
    "🚀",
    "🔥",
    "😡",
    "good!",
    "bad?",
    "!!!",
    "??",
    "?",
    "...",
    "\"great\"",
    "(sad)",
    "don't",
    "cannot",
    "uh-uh",
    "nope",
    "rarely",
    "despite",
    "hardly",
    "most",
    "more",
    "less",
    "amazing",
    "awful",
    "okay",
    "fine",
    "nice",
    "ugly",
    "bullish",
    "dump",
    "scam",
    "wow",
    "meh",
];

const GLUE: &[&str] = &[
    " ", " ", " ", " ", "  ", "\t", "\n", "\u{1d}", "\u{a0}", ", ", "! ", ". ",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

#[test]
fn thirty_thousand_random_sentences_match_an_independent_port() {
    let ours = Vader::new();
    let theirs = vader_parity::SentimentIntensityAnalyzer::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut nonzero = 0;
    for case in 0..30_000 {
        let len = 1 + (rng.next() % 14) as usize;
        let mut text = String::new();
        for k in 0..len {
            if k > 0 {
                text.push_str(rng.pick(GLUE));
            }
            let w = rng.pick(WORDS);
            // Now and then glue an emoji or emoticon straight onto a word.
            if rng.next().is_multiple_of(17) {
                text.push('🚀');
            }
            text.push_str(w);
        }
        let a = ours.score(&text);
        let b = theirs.polarity_scores(&text);
        assert_eq!(
            [a.neg, a.neu, a.pos, a.compound],
            [b.neg, b.neu, b.pos, b.compound],
            "case {case}: {text:?}"
        );
        nonzero += usize::from(a.compound != 0.0);
    }
    assert!(nonzero > 20_000, "{nonzero}");
}
