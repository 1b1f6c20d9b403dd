//! [`Flow`]: the state the timely workers share with the tokio side about the flow of records:
//! the in-flight bound, a failed sink, and the data-quality ledger the pipeline's quality facts
//! are counted in.

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::Arc;

use cryptoflow_sources::ledger::Ledger;

/// Shared state between the feeding worker and the sink operators.
#[derive(Debug)]
pub(crate) struct Flow {
    /// Trades fed but not yet handed to the first sink (or dropped as repeats).
    pub in_flight: AtomicI64,
    /// Set when a sink task is gone (it failed); workers stop feeding.
    pub sink_failed: AtomicBool,
    /// The data-quality ledger (repeated trades, late trades and kline mismatches are counted
    /// here).
    pub ledger: Arc<Ledger>,
    /// Source name in the ledger.
    pub source: &'static str,
}

impl Flow {
    /// Flow state reporting into `ledger` under `source`.
    pub fn new(ledger: Arc<Ledger>, source: &'static str) -> Self {
        Flow {
            in_flight: AtomicI64::new(0),
            sink_failed: AtomicBool::new(false),
            ledger,
            source,
        }
    }
}
