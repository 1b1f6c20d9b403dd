//! Sentiment scoring behind one trait, [`SentimentModel`]. The default model is VADER, with the
//! scores of Python vaderSentiment 3.3.2 exactly (`neg`/`neu`/`pos` to 3 decimals, `compound` to
//! 4, as that package prints them; tested against the package on 260 texts), optionally with a
//! crypto/finance lexicon overlay ([`LexiconOverlay`]). A transformer scorer over ONNX Runtime
//! is behind the cargo feature `sentiment-onnx`.

use crate::model::Polled;
pub use crate::model::{SentimentRow, SentimentScore};

#[cfg(feature = "sentiment-onnx")]
pub mod onnx;
mod vader;
pub mod windows;

pub use vader::{LexiconOverlay, OverlayError, Vader, CRYPTO_OVERLAY_TSV};

/// A sentiment model.
pub trait SentimentModel: Send + Sync {
    /// Name stored with each score (`vader-3.3.2`).
    fn name(&self) -> &str;
    /// Scores one text.
    fn score(&self, text: &str) -> SentimentScore;
}

/// Longest text scored, in characters (title and body together).
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Scores a polled news item or post (title, a newline, then the summary or body); `None` for
/// other items.
pub fn score_item(model: &dyn SentimentModel, item: &Polled) -> Option<SentimentRow> {
    let (kind, title, body, published_at, coins) = match item {
        Polled::News(n) => ("news", &n.title, &n.summary, n.published_at, &n.coins),
        Polled::Social(s) => ("social", &s.title, &s.body, s.created_at, &s.coins),
        _ => return None,
    };
    let text: String = if body.is_empty() {
        title.chars().take(MAX_TEXT_CHARS).collect()
    } else {
        format!("{title}\n{body}")
            .chars()
            .take(MAX_TEXT_CHARS)
            .collect()
    };
    Some(SentimentRow {
        item_key: item.natural_key(),
        kind: kind.to_string(),
        model: model.name().to_string(),
        published_at,
        coins: coins.clone(),
        score: model.score(&text),
    })
}

/// A hand label of a text's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Polarity {
    /// Negative news.
    Negative,
    /// Neither.
    Neutral,
    /// Positive news.
    Positive,
}

impl Polarity {
    /// VADER's own convention: compound ≥ 0.05 positive, ≤ −0.05 negative, neutral between.
    pub fn of_compound(compound: f64) -> Polarity {
        if compound >= 0.05 {
            Polarity::Positive
        } else if compound <= -0.05 {
            Polarity::Negative
        } else {
            Polarity::Neutral
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Parses a labelled set: `positive|negative|neutral<TAB>text` lines, `#` comment lines. A newline
/// inside a text (a feed item's title and summary) is written as the two characters `\n`.
pub fn parse_labelled(text: &str) -> Result<Vec<(Polarity, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, body)) = line.split_once('\t') else {
            return Err(format!("line {}: expected label<TAB>text", n + 1));
        };
        let label = match label.trim() {
            "positive" => Polarity::Positive,
            "negative" => Polarity::Negative,
            "neutral" => Polarity::Neutral,
            other => return Err(format!("line {}: unknown label {other:?}", n + 1)),
        };
        out.push((label, body.replace("\\n", "\n")));
    }
    Ok(out)
}

/// How a model does on a labelled set (three classes through [`Polarity::of_compound`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Texts scored.
    pub n: usize,
    /// Share labelled correctly.
    pub accuracy: f64,
    /// Mean of the three classes' F1.
    pub macro_f1: f64,
    /// `confusion[label][predicted]`, in the order negative, neutral, positive.
    pub confusion: [[usize; 3]; 3],
}

/// Scores every labelled text with `model`.
pub fn evaluate(model: &dyn SentimentModel, labelled: &[(Polarity, String)]) -> Evaluation {
    let mut confusion = [[0usize; 3]; 3];
    for (label, text) in labelled {
        let predicted = Polarity::of_compound(model.score(text).compound);
        confusion[label.index()][predicted.index()] += 1;
    }
    let n = labelled.len();
    let correct: usize = (0..3).map(|k| confusion[k][k]).sum();
    let f1 = |k: usize| {
        let tp = confusion[k][k] as f64;
        let predicted: usize = (0..3).map(|l| confusion[l][k]).sum();
        let actual: usize = confusion[k].iter().sum();
        if tp == 0.0 {
            0.0
        } else {
            let p = tp / predicted as f64;
            let r = tp / actual as f64;
            2.0 * p * r / (p + r)
        }
    };
    Evaluation {
        n,
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        macro_f1: (f1(0) + f1(1) + f1(2)) / 3.0,
        confusion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labelled_text_keeps_its_title_and_summary_apart() {
        let rows = parse_labelled(
            "# comment\npositive\tBTC climbs\\nETF inflows return.\nneutral\tNo newline here\n",
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Polarity::Positive,
                    "BTC climbs\nETF inflows return.".to_string()
                ),
                (Polarity::Neutral, "No newline here".to_string()),
            ]
        );
        assert!(parse_labelled("bullish\tBTC").is_err());
    }
}
