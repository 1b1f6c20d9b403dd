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
