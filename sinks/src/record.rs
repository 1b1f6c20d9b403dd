//! What the dataflow hands to sinks.

use cryptoflow_operators::dataflow::{EnrichedTrade, IndicatorRow, LateTrade};
use cryptoflow_operators::features::FeatureRow;
use cryptoflow_operators::model::{Candle, DataQuality, Gap, KlineMismatch, WhaleAlert};
use cryptoflow_operators::polled::Polled;
use cryptoflow_operators::sentiment::windows::SentimentWindowRow;
use cryptoflow_operators::sentiment::SentimentRow;
use serde::{Deserialize, Serialize};

/// One output row of the pipeline. Serialized with a `"type"` tag in JSON lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkRecord {
    /// A trade with its analytics.
    Trade(EnrichedTrade),
    /// A candle update (forming or final).
    Candle(Candle),
    /// A whale alert.
    Whale(WhaleAlert),
    /// A possible hole in a stream.
    Gap(Gap),
    /// A trade that arrived after its candle was final.
    Late(LateTrade),
    /// A closed exchange kline that disagrees with the computed candle.
    Mismatch(KlineMismatch),
    /// A data-quality ledger snapshot row.
    Quality(DataQuality),
    /// An item of a poller.
    Polled(Box<Polled>),
    /// Technical indicators at a final candle.
    Indicators(Box<IndicatorRow>),
    /// The sentiment of a news item or social post.
    Sentiment(Box<SentimentRow>),
    /// The new value of a per-coin rolling sentiment window.
    SentimentWindow(Box<SentimentWindowRow>),
    /// A point-in-time ML feature vector at a final candle.
    Features(Box<FeatureRow>),
}

/// The candle updates of a batch reduced to one per (venue, symbol, interval, open time): the
/// last one, except that a final candle is never replaced by a forming one. Sorted by key, so
/// that upserts lock rows in a stable order.
pub fn latest_candles(records: &[SinkRecord]) -> Vec<&Candle> {
    let mut latest: std::collections::HashMap<_, &Candle> = std::collections::HashMap::new();
    for r in records {
        if let SinkRecord::Candle(c) = r {
            let key = (c.venue, c.symbol, c.interval, c.open_time);
            match latest.get(&key) {
                Some(prev) if prev.is_final && !c.is_final => {}
                _ => {
                    latest.insert(key, c);
                }
            }
        }
    }
    let mut out: Vec<&Candle> = latest.into_values().collect();
    out.sort_by_key(|c| (c.venue, c.symbol, c.interval, c.open_time));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::polled::FundNav;

    #[test]
    fn polled_json_line_shape() {
        let r = SinkRecord::Polled(Box::new(Polled::FundNav(FundNav {
            isin: "IE00B03HD191".into(),
            name: "V".into(),
            currency: "EUR".into(),
            nav: "45.6789".parse().expect("d"),
            nav_date: "2026-11-20".parse().expect("date"),
            source: "myinvestor".into(),
            fetched_at: 1,
        })));
        let line = serde_json::to_string(&r).expect("json");
        assert!(
            line.starts_with(r#"{"type":"polled","kind":"fund_nav","isin":"IE00B03HD191""#),
            "{line}"
        );
        assert!(
            line.contains(r#""nav":"45.6789","nav_date":"2026-11-20""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<SinkRecord>(&line).expect("back"), r);
    }
}
