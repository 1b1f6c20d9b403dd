//! VADER (Hutto & Gilbert, 2014), reproducing Python vaderSentiment 3.3.2 exactly, with an
//! optional lexicon overlay.
//!
//! The rules follow the Python package's order of operations, quirks included, because the
//! scores are compared with it digit for digit:
//! - text: every emoji with an entry in the emoji lexicon is replaced by its description; the
//!   text is stripped and split on Python's whitespace (which includes `\x1c`–`\x1f`); a token
//!   loses its leading/trailing ASCII punctuation unless that leaves two characters or fewer
//!   (emoticons survive);
//! - per word: boosters and `kind` (of) score 0; a lexicon word takes its valence, then the
//!   "no" rules, the ALL-CAPS emphasis (when only some words are capitals), up to three
//!   preceding boosters (scaled 1, 0.95, 0.9) with the negation checks after each, the special
//!   idioms when the third preceding word is not a lexicon word, and the "least" rule;
//! - "but": the first occurrence halves what comes before and multiplies what follows by 1.5,
//!   through Python's `list.index` (equal values share the first position — reproduced);
//! - the sum is Python ≥ 3.12's compensated float `sum()`; "!" (up to 4) and "?" (2–3, or 0.96
//!   for more) amplify; compound = s / √(s² + 15); the shares are rounded to 3 decimals and the
//!   compound to 4, half to even on the exact binary value, as Python's `round`.
//!
//! The lexicons are the package's own files (`data/vader/`, MIT licence there), reduced to the
//! two columns the package reads.

use std::borrow::Cow;

use super::{SentimentModel, SentimentScore};

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

/// The word lexicon of vaderSentiment 3.3.2 (`word<TAB>valence`).
const LEXICON: &str = include_str!("../../data/vader/vader_lexicon.txt");
/// The emoji lexicon of vaderSentiment 3.3.2 (`emoji<TAB>description`).
const EMOJI_LEXICON: &str = include_str!("../../data/vader/emoji_utf8_lexicon.txt");

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// The boosters of more than one word (only the idiom check can see them).
const BOOSTER_PHRASES: &[[&str; 2]] = &[["just", "enough"], ["kind", "of"], ["sort", "of"]];

/// Multi-word special cases and their valences (single-word entries can never match).
const SPECIAL_CASES: &[(&[&str], f64)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// What the analyzer knows about one lowercase word.
#[derive(Debug, Clone, Copy, Default)]
struct WordInfo {
    /// Lexicon valence.
    valence: Option<f64>,
    /// Booster increment (positive or negative).
    booster: Option<f64>,
    /// A negation word.
    negate: bool,
}

/// An error in a lexicon overlay.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OverlayError {
    /// A line is not `word<TAB or spaces>valence`.
    #[error("lexicon overlay line {line}: expected `word valence`, got {text:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A valence outside VADER's scale.
    #[error("lexicon overlay line {line}: valence {value} of {word:?} is outside [-4, 4]")]
    OutOfRange {
        /// 1-based line number.
        line: usize,
        /// The word.
        word: String,
        /// The valence read.
        value: f64,
    },
}

/// Words added to (or overriding) VADER's lexicon, each with a valence on VADER's −4…+4 scale.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LexiconOverlay {
    entries: Vec<(String, f64)>,
}

/// The built-in crypto/finance overlay (`data/crypto_lexicon.tsv`, documented in the README).
pub const CRYPTO_OVERLAY_TSV: &str = include_str!("../../data/crypto_lexicon.tsv");

impl LexiconOverlay {
    /// Parses `word<TAB>valence` lines (spaces also separate; `#` starts a comment; the last
    /// field is the valence, so multi-word entries are not possible — VADER matches single
    /// tokens). Words are lowercased.
    pub fn parse(text: &str) -> Result<Self, OverlayError> {
        let mut entries = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(word), Some(value), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(OverlayError::Malformed {
                    line: n + 1,
                    text: raw.to_string(),
                });
            };
            let value: f64 = value.parse().map_err(|_| OverlayError::Malformed {
                line: n + 1,
                text: raw.to_string(),
            })?;
            if !(-4.0..=4.0).contains(&value) {
                return Err(OverlayError::OutOfRange {
                    line: n + 1,
                    word: word.to_string(),
                    value,
                });
            }
            entries.push((word.to_lowercase(), value));
        }
        Ok(LexiconOverlay { entries })
    }

    /// The built-in crypto/finance overlay.
    pub fn crypto() -> Self {
        // The embedded file is checked by a unit test; an error here would be a build defect.
        LexiconOverlay::parse(CRYPTO_OVERLAY_TSV).unwrap_or_default()
    }

    /// Adds or replaces one word.
    pub fn insert(&mut self, word: &str, valence: f64) {
        self.entries.push((word.to_lowercase(), valence));
    }

    /// The entries, in order (a later entry for the same word wins).
    pub fn entries(&self) -> &[(String, f64)] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The VADER analyzer: vaderSentiment 3.3.2's lexicon, optionally with an overlay.
pub struct Vader {
    words: foldhash::HashMap<String, WordInfo>,
    emojis: foldhash::HashMap<char, &'static str>,
    name: String,
}

impl Default for Vader {
    fn default() -> Self {
        Vader::new()
    }
}

/// Python's `str.isspace` for one character (Unicode White_Space plus `\x1c`–`\x1f`).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.isupper`: at least one cased character and no lowercase or titlecase one.
fn py_isupper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Unicode general category Lt.
fn is_titlecase(c: char) -> bool {
    matches!(c as u32,
        0x01C5 | 0x01C8 | 0x01CB | 0x01F2 | 0x1F88..=0x1F8F | 0x1F98..=0x1F9F | 0x1FA8..=0x1FAF
        | 0x1FBC | 0x1FCC | 0x1FFC)
}

/// Python's `str.lower`, borrowing when nothing changes.
fn py_lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let lower = s.to_lowercase();
        if lower == s {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(lower)
        }
    }
}

/// Python's `round(x, digits)` for floats: half to even on the exact binary value (Rust's
/// formatting rounds the same way).
fn py_round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Python ≥ 3.12's `sum()` of floats (Neumaier's compensated summation).
fn py_sum(values: &[f64]) -> f64 {
    let mut sum = 0.0f64;
    let mut c = 0.0f64;
    for &x in values {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            c += (sum - t) + x;
        } else {
            c += (x - t) + sum;
        }
        sum = t;
    }
    if c != 0.0 && c.is_finite() {
        sum += c;
    }
    sum
}

/// One token of the text being scored.
struct Token<'a> {
    lower: Cow<'a, str>,
    upper: bool,
    info: WordInfo,
}

impl Token<'_> {
    fn is(&self, word: &str) -> bool {
        self.lower == word
    }

    fn in_lexicon(&self) -> bool {
        self.info.valence.is_some()
    }

    /// `negated([word])` of the package.
    fn negated(&self) -> bool {
        self.info.negate || self.lower.contains("n't")
    }
}

fn seq_is(tokens: &[Token<'_>], words: &[&str]) -> bool {
    tokens.len() == words.len() && tokens.iter().zip(words).all(|(t, w)| t.is(w))
}

fn special_case(tokens: &[Token<'_>]) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(words, _)| seq_is(tokens, words))
        .map(|(_, v)| *v)
}

fn booster_phrase(tokens: &[Token<'_>]) -> Option<f64> {
    if tokens.len() == 2 && BOOSTER_PHRASES.iter().any(|p| seq_is(tokens, p)) {
        Some(B_DECR)
    } else {
        None
    }
}

impl Vader {
    /// The analyzer over VADER's own lexicon (model name `vader-3.3.2`).
    pub fn new() -> Self {
        let mut words: foldhash::HashMap<String, WordInfo> = foldhash::HashMap::default();
        for line in LEXICON.lines() {
            let mut fields = line.trim_matches(py_space).split('\t');
            if let (Some(word), Some(value)) = (fields.next(), fields.next()) {
                if let Ok(v) = value.parse::<f64>() {
                    words.entry(word.to_string()).or_default().valence = Some(v);
                }
            }
        }
        for w in BOOSTERS_UP {
            words.entry((*w).to_string()).or_default().booster = Some(B_INCR);
        }
        for w in BOOSTERS_DOWN {
            words.entry((*w).to_string()).or_default().booster = Some(B_DECR);
        }
        for w in NEGATE {
            words.entry((*w).to_string()).or_default().negate = true;
        }
        let mut emojis = foldhash::HashMap::default();
        for line in EMOJI_LEXICON.lines() {
            let mut fields = line.trim_matches(py_space).split('\t');
            if let (Some(emoji), Some(description)) = (fields.next(), fields.next()) {
                let mut chars = emoji.chars();
                // Python looks characters up one at a time: longer keys never match.
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    emojis.insert(c, description);
                }
            }
        }
        Vader {
            words,
            emojis,
            name: "vader-3.3.2".to_string(),
        }
    }

    /// The analyzer with `overlay` added to the lexicon; its model name is
    /// `vader-3.3.2+<overlay_name>`.
    pub fn with_overlay(overlay: &LexiconOverlay, overlay_name: &str) -> Self {
        let mut vader = Vader::new();
        for (word, valence) in &overlay.entries {
            vader.words.entry(word.clone()).or_default().valence = Some(*valence);
        }
        vader.name = format!("vader-3.3.2+{overlay_name}");
        vader
    }

    /// VADER with the built-in crypto/finance overlay (`vader-3.3.2+crypto`).
    pub fn crypto() -> Self {
        Vader::with_overlay(&LexiconOverlay::crypto(), "crypto")
    }

    fn info(&self, lower: &str) -> WordInfo {
        self.words.get(lower).copied().unwrap_or_default()
    }

    /// Replaces emojis by their descriptions, as the package does (a space before a
    /// description unless the previous character was a space).
    fn demoji<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if text.is_ascii() || !text.chars().any(|c| self.emojis.contains_key(&c)) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(description) = self.emojis.get(&c) {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(c);
                prev_space = c == ' ';
            }
        }
        Cow::Owned(out)
    }

    fn tokens<'t>(&self, text: &'t str) -> Vec<Token<'t>> {
        text.split(py_space)
            .filter(|t| !t.is_empty())
            .map(|raw| {
                let stripped = raw.trim_matches(|c: char| c.is_ascii_punctuation());
                let word = if stripped.chars().count() <= 2 {
                    raw
                } else {
                    stripped
                };
                let lower = py_lower(word);
                let info = self.info(&lower);
                Token {
                    upper: py_isupper(word),
                    lower,
                    info,
                }
            })
            .collect()
    }

    /// The scores of `text` as vaderSentiment 3.3.2's `polarity_scores` returns them.
    pub fn polarity_scores(&self, text: &str) -> SentimentScore {
        let demojied = self.demoji(text);
        let text = demojied.trim_matches(py_space);
        let tokens = self.tokens(text);
        let n = tokens.len();
        let upper_count = tokens.iter().filter(|t| t.upper).count();
        let cap_diff = upper_count > 0 && upper_count < n;

        let mut sentiments: Vec<f64> = Vec::with_capacity(n);
        for i in 0..n {
            let t = &tokens[i];
            if t.info.booster.is_some() || (i + 1 < n && t.is("kind") && tokens[i + 1].is("of")) {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(&tokens, i, cap_diff));
        }
        but_check(&tokens, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// `sentiment_valence` of the package for the word at `i`.
    fn valence(&self, tokens: &[Token<'_>], i: usize, cap_diff: bool) -> f64 {
        let t = &tokens[i];
        let Some(lexicon) = t.info.valence else {
            return 0.0;
        };
        let n = tokens.len();
        let mut v = lexicon;
        if t.is("no") && i != n - 1 && tokens[i + 1].in_lexicon() {
            v = 0.0;
        }
        if (i > 0 && tokens[i - 1].is("no"))
            || (i > 1 && tokens[i - 2].is("no"))
            || (i > 2
                && tokens[i - 3].is("no")
                && (tokens[i - 1].is("or") || tokens[i - 1].is("nor")))
        {
            v = lexicon * N_SCALAR;
        }
        if t.upper && cap_diff {
            if v > 0.0 {
                v += C_INCR;
            } else {
                v -= C_INCR;
            }
        }
        for start in 0..3 {
            if i > start && !tokens[i - (start + 1)].in_lexicon() {
                let mut s = scalar_inc_dec(&tokens[i - (start + 1)], v, cap_diff);
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                v += s;
                v = negation_check(v, tokens, start, i);
                if start == 2 {
                    v = special_idioms_check(v, tokens, i);
                }
            }
        }
        least_check(v, tokens, i)
    }
}

fn scalar_inc_dec(word: &Token<'_>, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = word.info.booster else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if word.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(valence: f64, tokens: &[Token<'_>], start: usize, i: usize) -> f64 {
    let w = |k: usize| &tokens[i - k];
    match start {
        0 if w(1).negated() => valence * N_SCALAR,
        1 => {
            if w(2).is("never") && (w(1).is("so") || w(1).is("this")) {
                valence * 1.25
            } else if w(2).is("without") && w(1).is("doubt") {
                valence
            } else if w(2).negated() {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // `a and b or c` in the package: the "so"/"this" right before counts on its own.
            if (w(3).is("never") && (w(2).is("so") || w(2).is("this")))
                || (w(1).is("so") || w(1).is("this"))
            {
                valence * 1.25
            } else if w(3).is("without") && (w(2).is("doubt") || w(1).is("doubt")) {
                valence
            } else if w(3).negated() {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

fn special_idioms_check(mut valence: f64, tokens: &[Token<'_>], i: usize) -> f64 {
    let n = tokens.len();
    let sequences: [&[Token<'_>]; 5] = [
        &tokens[i - 1..=i],
        &tokens[i - 2..=i],
        &tokens[i - 2..i],
        &tokens[i - 3..i],
        &tokens[i - 3..i - 1],
    ];
    if let Some(v) = sequences.iter().find_map(|s| special_case(s)) {
        valence = v;
    }
    if n - 1 > i {
        if let Some(v) = special_case(&tokens[i..=i + 1]) {
            valence = v;
        }
    }
    if n - 1 > i + 1 {
        if let Some(v) = special_case(&tokens[i..=i + 2]) {
            valence = v;
        }
    }
    for ngram in [&tokens[i - 3..i], &tokens[i - 3..i - 1], &tokens[i - 2..i]] {
        if let Some(b) = booster_phrase(ngram) {
            valence += b;
        }
    }
    valence
}

fn least_check(valence: f64, tokens: &[Token<'_>], i: usize) -> f64 {
    let least_before = |k: usize| !tokens[k].in_lexicon() && tokens[k].is("least");
    if i > 1 && least_before(i - 1) {
        if !tokens[i - 2].is("at") && !tokens[i - 2].is("very") {
            return valence * N_SCALAR;
        }
        valence
    } else if i > 0 && least_before(i - 1) {
        valence * N_SCALAR
    } else {
        valence
    }
}

/// `_but_check` of the package, `list.index` lookups included: each value is written back at
/// the first position holding an equal value.
fn but_check(tokens: &[Token<'_>], sentiments: &mut [f64]) {
    let Some(bi) = tokens.iter().position(|t| t.is("but")) else {
        return;
    };
    for k in 0..sentiments.len() {
        let s = sentiments[k];
        let si = sentiments.iter().position(|&x| x == s).unwrap_or(k);
        if si < bi {
            sentiments[si] = s * 0.5;
        } else if si > bi {
            sentiments[si] = s * 1.5;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.bytes().filter(|&b| b == b'!').count().min(4);
    let qm = text.bytes().filter(|&b| b == b'?').count();
    let qm_amp = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * 0.18,
        _ => 0.96,
    };
    ep as f64 * 0.292 + qm_amp
}

fn score_valence(sentiments: &[f64], text: &str) -> SentimentScore {
    if sentiments.is_empty() {
        return SentimentScore {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum = py_sum(sentiments);
    let amp = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += amp;
    } else if sum < 0.0 {
        sum -= amp;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let mut pos_sum = 0.0f64;
    let mut neg_sum = 0.0f64;
    let mut neu_count = 0u32;
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amp;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amp;
    }
    let total = pos_sum + neg_sum.abs() + f64::from(neu_count);
    SentimentScore {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((f64::from(neu_count) / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

impl SentimentModel for Vader {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, text: &str) -> SentimentScore {
        self.polarity_scores(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_helpers() {
        assert!(py_isupper("SUX"));
        assert!(py_isupper("BTC-100K"));
        assert!(!py_isupper("Sux"));
        assert!(!py_isupper("100"));
        assert!(!py_isupper("ǅA"));
        assert_eq!(py_round(0.0625, 3), 0.062);
        assert_eq!(py_round(0.1875, 3), 0.188);
        assert_eq!(py_round(0.12345, 4), 0.1235);
        assert!(py_space('\x1d') && py_space('\u{3000}') && !py_space('a'));
        // Compensated: ten times 0.1 is exactly 1 in Python ≥ 3.12 (0.9999999999999999 before).
        assert_eq!(py_sum(&[0.1; 10]), 1.0);
    }

    #[test]
    fn the_embedded_overlay_parses() {
        let overlay = LexiconOverlay::parse(CRYPTO_OVERLAY_TSV).expect("crypto overlay");
        assert!(overlay.len() >= 40, "{}", overlay.len());
        for w in [
            "surge", "soar", "rally", "crash", "plunge", "hack", "exploit", "rekt", "depeg",
        ] {
            assert!(overlay.entries().iter().any(|(e, _)| e == w), "{w} missing");
        }
    }

    #[test]
    fn overlay_errors_name_the_line() {
        assert_eq!(
            LexiconOverlay::parse("moon 2\nrekt\n"),
            Err(OverlayError::Malformed {
                line: 2,
                text: "rekt".into()
            })
        );
        assert!(matches!(
            LexiconOverlay::parse("# c\nrug 9\n"),
            Err(OverlayError::OutOfRange { line: 2, .. })
        ));
        let o = LexiconOverlay::parse("Moon\t2.5 # to the moon\n\n").expect("ok");
        assert_eq!(o.entries(), &[("moon".to_string(), 2.5)]);
    }

    #[test]
    fn overlay_changes_domain_words_only() {
        let plain = Vader::new();
        let crypto = Vader::crypto();
        assert_eq!(crypto.name(), "vader-3.3.2+crypto");
        let text = "Exchange hacked, stablecoin depegs as prices plunge";
        // Python: -0.4019 with VADER's own lexicon ("hacked" only).
        assert_eq!(plain.score(text).compound, -0.4019);
        assert!(crypto.score(text).compound < -0.8);
        let neutral = "The committee meets on Tuesday";
        assert_eq!(plain.score(neutral), crypto.score(neutral));
    }
}
