//! What the dataflow hands to sinks.

use cryptoflow_operators::dataflow::{EnrichedTrade, LateTrade};
use cryptoflow_operators::model::{Candle, DataQuality, Gap, KlineMismatch, WhaleAlert};
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
}
