//! What a source and the runtime tell each other about progress, for every source alike: the
//! source bounds event time ([`WatermarkCap`]: the Kafka source for a partition behind the others,
//! the WebSocket source for a hole being refilled or a connection that is down), and the runtime
//! reports how far the sinks have made the output durable ([`Durable`]: the Kafka source commits
//! offsets, the pollers save their state, only up to it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Event-time bound shared between a source and the feeding worker: the watermark never passes
/// it. The source computes it from what it still waits for (the least, over Kafka partitions still
/// delivering, of the newest exchange time read from each; the time of a hole being refilled; the
/// last time seen on a connection that is down). `i64::MAX`: no bound, nothing is waited for, and
/// only then may the wall clock move an idle watermark. Without it, one partition read ahead of
/// another, a pause for a rebalance while a backlog waits, or a refill would make trades late.
///
/// Each batch carries the bound computed when it was assembled (a later batch's bound could be
/// ahead of what the earlier one's slower part has delivered), plus a latest value for the idle
/// check between batches.
#[derive(Debug, Clone)]
pub struct WatermarkCap {
    latest: Arc<AtomicI64>,
    per_batch: Arc<Mutex<VecDeque<(i64, i64)>>>,
}

impl Default for WatermarkCap {
    fn default() -> Self {
        WatermarkCap {
            latest: Arc::new(AtomicI64::new(i64::MAX)),
            per_batch: Arc::default(),
        }
    }
}

impl WatermarkCap {
    /// The source: the bounds of the batch it is about to send (call before sending it): the one
    /// before its first event (for the watermark inside the batch, whose events of a slow part
    /// may come after those of a fast one) and the one after its last.
    pub fn for_batch(&self, before: i64, after: i64) {
        if let Ok(mut q) = self.per_batch.lock() {
            q.push_back((before, after));
        }
        self.set_latest(after);
    }

    /// The source: the bound now, between batches.
    pub fn set_latest(&self, cap: i64) {
        self.latest.store(cap, Ordering::SeqCst);
    }

    /// The feeding worker: the bounds (inside, after) of the batch it just received (in send
    /// order).
    pub fn next_batch(&self) -> (i64, i64) {
        self.per_batch
            .lock()
            .ok()
            .and_then(|mut q| q.pop_front())
            .unwrap_or_else(|| (self.latest(), self.latest()))
    }

    /// The bound now (`i64::MAX`: none; an idle watermark may follow the wall clock).
    pub fn latest(&self) -> i64 {
        self.latest.load(Ordering::SeqCst)
    }
}

/// The least ack over all sinks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable {
    /// Everything before this tick is durable in every sink.
    pub before: Option<u64>,
    /// Every sink has finished and committed everything.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_their_own_bounds_in_send_order() {
        let cap = WatermarkCap::default();
        assert_eq!(
            cap.latest(),
            i64::MAX,
            "no bound before the source sets one"
        );
        assert_eq!(cap.next_batch(), (i64::MAX, i64::MAX));
        cap.for_batch(100, 200);
        cap.for_batch(150, 300);
        cap.set_latest(250);
        // A clone is the same cap (the feeding worker's end).
        let worker = cap.clone();
        assert_eq!(worker.next_batch(), (100, 200));
        assert_eq!(worker.next_batch(), (150, 300));
        assert_eq!(
            worker.next_batch(),
            (250, 250),
            "between batches: the latest bound"
        );
    }
}
