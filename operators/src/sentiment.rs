//! Sentiment scoring behind one trait, [`SentimentModel`]. The default model is VADER, with the
//! scores of Python vaderSentiment 3.3.2 exactly (`neg`/`neu`/`pos` to 3 decimals, `compound` to
//! 4, as that package prints them; tested against the package on 260 texts).

use serde::{Deserialize, Serialize};

/// The scores of one text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentScore {
    /// Negative share.
    pub neg: f64,
    /// Neutral share.
    pub neu: f64,
    /// Positive share.
    pub pos: f64,
    /// Normalized composite in [-1, 1].
    pub compound: f64,
}

/// A sentiment model.
pub trait SentimentModel: Send + Sync {
    /// Name stored with each score (`vader-3.3.2`).
    fn name(&self) -> &str;
    /// Scores one text.
    fn score(&self, text: &str) -> SentimentScore;
}

/// VADER (vaderSentiment 3.3.2 parity).
pub struct Vader {
    analyzer: vader_parity::SentimentIntensityAnalyzer,
}

impl Default for Vader {
    fn default() -> Self {
        Vader {
            analyzer: vader_parity::SentimentIntensityAnalyzer::new(),
        }
    }
}

impl Vader {
    /// The analyzer over VADER's own lexicon.
    pub fn new() -> Self {
        Vader::default()
    }
}

impl SentimentModel for Vader {
    fn name(&self) -> &str {
        "vader-3.3.2"
    }

    fn score(&self, text: &str) -> SentimentScore {
        let s = self.analyzer.polarity_scores(text);
        SentimentScore {
            neg: s.neg,
            neu: s.neu,
            pos: s.pos,
            compound: s.compound,
        }
    }
}

/// The score of one news item or social post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentRow {
    /// The item's natural key (`news|…`, `social|reddit|t3_…`).
    pub item_key: String,
    /// `news` or `social`.
    pub kind: String,
    /// Model name.
    pub model: String,
    /// When the item was published, ms.
    pub published_at: crate::model::Millis,
    /// Coins the item mentions.
    pub coins: Vec<String>,
    /// The scores.
    #[serde(flatten)]
    pub score: SentimentScore,
}

/// Longest text scored, in characters (title and body together).
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Scores a polled news item or post (title, a newline, then the summary or body); `None` for
/// other items.
pub fn score_item(
    model: &dyn SentimentModel,
    item: &crate::polled::Polled,
) -> Option<SentimentRow> {
    use crate::polled::Polled;
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
