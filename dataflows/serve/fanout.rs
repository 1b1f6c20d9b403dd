//! Who gets which push: every WebSocket client's subscription, indexed by symbol, each with a
//! bounded queue of its own.
//!
//! A push goes only to the clients that subscribed to it (no wake-up for the others); a
//! committed batch is queued in one pass, with one wake-up per client that got something
//! ([`Fanout::push_all`]). Queuing never waits: the pipeline never waits for a client. A client
//! whose queue is full is dropped from the fan-out and told so ([`ClientFeed::overflowed`]); its
//! task closes it with code 4008.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::push::{Push, PushKind};

/// What a client receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Upper-case symbols or coins; empty: all.
    pub symbols: BTreeSet<String>,
    /// Kinds; empty: all.
    pub kinds: BTreeSet<PushKind>,
}

impl Subscription {
    /// Whether `push` is for this client.
    pub fn wants(&self, push: &Push) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&push.kind))
            && (self.symbols.is_empty()
                || push.key.as_ref().is_some_and(|k| self.symbols.contains(k)))
    }

    /// From lists of names; an unknown kind or a malformed symbol is an error naming it.
    pub fn parse<'a>(
        symbols: impl IntoIterator<Item = &'a str>,
        kinds: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let mut sub = Subscription::default();
        for s in symbols.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            if s.len() > 23 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{s}` is not a symbol"));
            }
            sub.symbols.insert(s.to_ascii_uppercase());
        }
        for k in kinds.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            let kind = PushKind::parse(k).ok_or_else(|| {
                let names: Vec<&str> = PushKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind `{k}` (known: {})", names.join(", "))
            })?;
            sub.kinds.insert(kind);
        }
        Ok(sub)
    }
}

/// A client's pending pushes: the fan-out appends, the client's task takes them all at once.
#[derive(Default)]
struct Queue {
    items: Mutex<Vec<Arc<Push>>>,
    ready: Notify,
    overflowed: AtomicBool,
    /// No longer in the fan-out: nothing more will come.
    detached: AtomicBool,
}

impl Queue {
    fn items(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Push>>> {
        match self.items.lock() {
            Ok(q) => q,
            Err(p) => p.into_inner(),
        }
    }
}

struct Slot {
    sub: Subscription,
    queue: Arc<Queue>,
    /// The last delivery that queued something for it (one wake-up per delivery).
    round: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Out of the fan-out (its queue overflowed, or the fan-out is gone): wake its task to
        // drain what is queued and close.
        self.queue.detached.store(true, Ordering::Release);
        self.queue.ready.notify_one();
    }
}

#[derive(Default)]
struct Clients {
    next: u64,
    round: u64,
    slots: HashMap<u64, Slot>,
    by_key: HashMap<String, HashSet<u64>>,
    unfiltered: HashSet<u64>,
}

impl Clients {
    fn index(&mut self, id: u64, sub: &Subscription) {
        if sub.symbols.is_empty() {
            self.unfiltered.insert(id);
        }
        for k in &sub.symbols {
            self.by_key.entry(k.clone()).or_default().insert(id);
        }
    }

    fn unindex(&mut self, id: u64, sub: &Subscription) {
        self.unfiltered.remove(&id);
        for k in &sub.symbols {
            if let Some(ids) = self.by_key.get_mut(k) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.slots.remove(&id) {
            self.unindex(id, &slot.sub);
        }
    }
}

/// The keys the connected clients subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Some client takes every key.
    All,
    /// Only these keys (empty: no client).
    Keys(HashSet<String>),
}

impl Interest {
    /// Whether a push with `key` may reach a client (keyless pushes go to every client).
    pub fn wants(&self, key: Option<&str>) -> bool {
        match (self, key) {
            (Interest::All, _) => true,
            (Interest::Keys(keys), _) if keys.is_empty() => false,
            (Interest::Keys(_), None) => true,
            (Interest::Keys(keys), Some(k)) => keys.contains(k),
        }
    }
}

/// The clients of one server.
#[derive(Clone)]
pub struct Fanout {
    clients: Arc<Mutex<Clients>>,
    buffer: usize,
}

/// A client's end: its pushes, and whether it fell behind. Unregisters when dropped.
pub struct ClientFeed {
    id: u64,
    fanout: Fanout,
    queue: Arc<Queue>,
}

impl ClientFeed {
    /// Whether its queue overflowed (it no longer gets pushes).
    pub fn overflowed(&self) -> bool {
        self.queue.overflowed.load(Ordering::Relaxed)
    }

    /// Pushes queued at most (the fan-out's buffer).
    pub fn capacity(&self) -> usize {
        self.fanout.buffer
    }

    /// Moves every push queued so far into `out` (after what it holds), in order, without
    /// waiting; how many it moved.
    pub fn take(&self, out: &mut Vec<Arc<Push>>) -> usize {
        let mut items = self.queue.items();
        let n = items.len();
        if out.is_empty() {
            // Swap buffers: neither side allocates once both have grown.
            std::mem::swap(out, &mut *items);
        } else {
            out.append(&mut items);
        }
        n
    }

    /// Waits until pushes are queued and moves them all into `out` (after what it holds);
    /// `false` once the client is out of the fan-out (its queue overflowed) and nothing is
    /// left. Cancel-safe: nothing is lost when the wait is dropped.
    pub async fn next_batch(&self, out: &mut Vec<Arc<Push>>) -> bool {
        loop {
            // The flag first: pushes queued before it was set are still taken below.
            let detached = self.queue.detached.load(Ordering::Acquire);
            if self.take(out) > 0 {
                return true;
            }
            if detached {
                return false;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Replaces its subscription.
    pub fn resubscribe(&self, sub: Subscription) {
        let mut c = self.fanout.lock();
        let old = match c.slots.get_mut(&self.id) {
            Some(slot) => std::mem::replace(&mut slot.sub, sub.clone()),
            None => return,
        };
        c.unindex(self.id, &old);
        c.index(self.id, &sub);
    }
}

impl Drop for ClientFeed {
    fn drop(&mut self) {
        self.fanout.lock().remove(self.id);
    }
}

impl Fanout {
    /// No clients; each will queue at most `buffer` pushes.
    pub fn new(buffer: usize) -> Self {
        Fanout {
            clients: Arc::default(),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clients> {
        match self.clients.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// Pushes queued per client at most.
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// Whether any client is connected.
    pub fn has_clients(&self) -> bool {
        !self.lock().slots.is_empty()
    }

    /// Which keys (symbols, coins) some client wants now: records of other keys need no push
    /// message.
    pub fn interest(&self) -> Interest {
        let c = self.lock();
        if !c.unfiltered.is_empty() {
            return Interest::All;
        }
        Interest::Keys(c.by_key.keys().cloned().collect())
    }

    /// A new client with `sub`.
    pub fn register(&self, sub: Subscription) -> ClientFeed {
        let queue = Arc::new(Queue::default());
        let mut c = self.lock();
        c.next += 1;
        let id = c.next;
        c.index(id, &sub);
        c.slots.insert(
            id,
            Slot {
                sub,
                queue: queue.clone(),
                round: 0,
            },
        );
        ClientFeed {
            id,
            fanout: self.clone(),
            queue,
        }
    }

    /// Queues `push` for every client that wants it; never waits.
    pub fn push(&self, push: Arc<Push>) {
        self.push_all(std::slice::from_ref(&push));
    }

    /// Queues each of `pushes`, in order, for every client that wants it, and wakes each such
    /// client once; never waits. A client whose queue would pass the buffer is dropped from
    /// the fan-out (and closed by its task).
    pub fn push_all(&self, pushes: &[Arc<Push>]) {
        let mut wake = Vec::new();
        let mut guard = self.lock();
        if guard.slots.is_empty() || pushes.is_empty() {
            return;
        }
        guard.round += 1;
        let c = &mut *guard;
        let round = c.round;
        let mut gone = Vec::new();
        for push in pushes {
            let keyed = push
                .key
                .as_ref()
                .and_then(|k| c.by_key.get(k))
                .into_iter()
                .flatten();
            for id in c.unfiltered.iter().chain(keyed) {
                let Some(slot) = c.slots.get_mut(id) else {
                    continue;
                };
                if !slot.sub.wants(push) || slot.queue.overflowed.load(Ordering::Relaxed) {
                    continue;
                }
                let mut items = slot.queue.items();
                if items.len() >= self.buffer {
                    drop(items);
                    // Dropping the slot (below) wakes its task.
                    slot.queue.overflowed.store(true, Ordering::Relaxed);
                    gone.push(*id);
                    continue;
                }
                items.push(push.clone());
                drop(items);
                if slot.round != round {
                    slot.round = round;
                    wake.push(slot.queue.clone());
                }
            }
        }
        for id in gone {
            c.remove(id);
        }
        drop(guard);
        for q in wake {
            q.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn push(kind: PushKind, key: Option<&str>) -> Arc<Push> {
        Arc::new(Push {
            kind,
            key: key.map(str::to_string),
            json: "{}".into(),
            committed: Instant::now(),
        })
    }

    #[test]
    fn subscriptions_filter_by_symbol_and_kind() {
        let all = Subscription::default();
        assert!(all.wants(&push(PushKind::Trades, Some("BTCUSDT"))));
        let sub = Subscription::parse(["btcusdt"], ["trades", "whales"]).unwrap();
        assert!(sub.wants(&push(PushKind::Trades, Some("BTCUSDT"))));
        assert!(!sub.wants(&push(PushKind::Trades, Some("ETHUSDT"))));
        assert!(!sub.wants(&push(PushKind::Candles, Some("BTCUSDT"))));
        assert!(!sub.wants(&push(PushKind::Trades, None)));
        let err = Subscription::parse(["BTCUSDT"], ["trade"]).unwrap_err();
        assert!(err.contains("unknown kind `trade`"), "{err}");
        assert!(Subscription::parse(["BTC/USDT"], [""]).is_err());
    }

    /// The keys of every push queued for `feed`, taken.
    fn keys(feed: &ClientFeed) -> Vec<Option<String>> {
        let mut got = Vec::new();
        feed.take(&mut got);
        got.iter().map(|p| p.key.clone()).collect()
    }

    fn some(k: &str) -> Option<String> {
        Some(k.to_string())
    }

    #[test]
    fn each_client_gets_its_own_and_a_full_queue_drops_only_that_client() {
        let f = Fanout::new(2);
        let btc = f.register(Subscription::parse(["BTCUSDT"], []).unwrap());
        let all = f.register(Subscription::default());
        let eth = f.register(Subscription::parse(["ETHUSDT"], ["trades"]).unwrap());
        f.push(push(PushKind::Trades, Some("BTCUSDT")));
        f.push(push(PushKind::Candles, Some("ETHUSDT")));
        assert_eq!(keys(&btc), [some("BTCUSDT")]);
        assert_eq!(keys(&all), [some("BTCUSDT"), some("ETHUSDT")]);
        assert!(keys(&eth).is_empty());
        // eth wants trades only: its queue was empty; it does not read, and fills at 2; `all`
        // reads and keeps up.
        for _ in 0..2 {
            f.push(push(PushKind::Trades, Some("ETHUSDT")));
        }
        assert_eq!(keys(&all).len(), 2);
        f.push(push(PushKind::Trades, Some("ETHUSDT")));
        assert!(eth.overflowed());
        assert!(!all.overflowed());
        assert_eq!(keys(&all), [some("ETHUSDT")]);
        // What eth had queued is still there; nothing more comes.
        assert_eq!(keys(&eth).len(), 2);
        f.push(push(PushKind::Trades, Some("ETHUSDT")));
        assert!(keys(&eth).is_empty());
        // A new subscription takes effect at once.
        btc.resubscribe(Subscription::parse(["SOLUSDT"], []).unwrap());
        f.push(push(PushKind::Trades, Some("BTCUSDT")));
        f.push(push(PushKind::Trades, Some("SOLUSDT")));
        assert_eq!(keys(&btc), [some("SOLUSDT")]);
        drop(eth);
        drop(all);
        drop(btc);
        assert!(!f.has_clients());
    }

    #[test]
    fn a_batch_is_queued_in_order_and_a_dropped_client_drains_then_ends() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let f = Fanout::new(3);
        let btc = f.register(Subscription::parse(["BTCUSDT"], ["trades"]).unwrap());
        let slow = f.register(Subscription::default());
        let batch: Vec<Arc<Push>> = ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
            .into_iter()
            .map(|k| push(PushKind::Trades, Some(k)))
            .collect();
        f.push_all(&batch);
        let mut got = Vec::new();
        rt.block_on(async {
            assert!(btc.next_batch(&mut got).await);
        });
        assert_eq!(got.len(), 2);
        assert!(Arc::ptr_eq(&got[0], &batch[0]) && Arc::ptr_eq(&got[1], &batch[2]));
        // `slow` holds 3 of 3; one more overflows it: it still gets the 3, then the end.
        f.push_all(&batch[..1]);
        assert!(slow.overflowed() && !btc.overflowed());
        got.clear();
        assert_eq!(btc.take(&mut got), 1);
        got.clear();
        let mut held = Vec::new();
        rt.block_on(async {
            assert!(slow.next_batch(&mut held).await);
            assert!(!slow.next_batch(&mut held).await);
        });
        assert_eq!(held.len(), 3);
        // btc waits for its next push: a wait dropped midway loses nothing.
        rt.block_on(async {
            let waited = tokio::time::timeout(
                std::time::Duration::from_millis(20),
                btc.next_batch(&mut got),
            )
            .await;
            assert!(waited.is_err(), "nothing was queued");
        });
        f.push_all(&batch[2..]);
        rt.block_on(async {
            assert!(btc.next_batch(&mut got).await);
        });
        assert_eq!(got.len(), 1);
        assert!(Arc::ptr_eq(&got[0], &batch[2]));
    }
}
