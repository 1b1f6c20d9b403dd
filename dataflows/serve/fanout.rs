//! Who gets which push: every WebSocket client's subscription, indexed by symbol, each with a
//! bounded queue of its own.
//!
//! A push goes only to the clients that subscribed to it (no wake-up for the others), by
//! `try_send`: the pipeline never waits. A client whose queue is full is dropped from the
//! fan-out and told so ([`ClientFeed::overflowed`]); its task closes it with code 4008.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

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

struct Slot {
    sub: Subscription,
    tx: mpsc::Sender<Arc<Push>>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Default)]
struct Clients {
    next: u64,
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
    /// Its pushes.
    pub rx: mpsc::Receiver<Arc<Push>>,
    overflowed: Arc<AtomicBool>,
}

impl ClientFeed {
    /// Whether its queue overflowed (it no longer gets pushes).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
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
        let (tx, rx) = mpsc::channel(self.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut c = self.lock();
        c.next += 1;
        let id = c.next;
        c.index(id, &sub);
        c.slots.insert(
            id,
            Slot {
                sub,
                tx,
                overflowed: overflowed.clone(),
            },
        );
        ClientFeed {
            id,
            fanout: self.clone(),
            rx,
            overflowed,
        }
    }

    /// Queues `push` for every client that wants it; never waits.
    pub fn push(&self, push: Arc<Push>) {
        let mut c = self.lock();
        if c.slots.is_empty() {
            return;
        }
        let keyed = push
            .key
            .as_ref()
            .and_then(|k| c.by_key.get(k))
            .into_iter()
            .flatten();
        let ids: Vec<u64> = c.unfiltered.iter().chain(keyed).copied().collect();
        let mut gone = Vec::new();
        for id in ids {
            let Some(slot) = c.slots.get(&id) else {
                continue;
            };
            if !slot.sub.wants(&push) {
                continue;
            }
            match slot.tx.try_send(push.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.overflowed.store(true, Ordering::Relaxed);
                    gone.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
            }
        }
        for id in gone {
            c.remove(id);
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
            json: Arc::from("{}"),
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

    #[test]
    fn each_client_gets_its_own_and_a_full_queue_drops_only_that_client() {
        let f = Fanout::new(2);
        let mut btc = f.register(Subscription::parse(["BTCUSDT"], []).unwrap());
        let mut all = f.register(Subscription::default());
        let eth = f.register(Subscription::parse(["ETHUSDT"], ["trades"]).unwrap());
        f.push(push(PushKind::Trades, Some("BTCUSDT")));
        f.push(push(PushKind::Candles, Some("ETHUSDT")));
        assert_eq!(btc.rx.try_recv().unwrap().key.as_deref(), Some("BTCUSDT"));
        assert!(btc.rx.try_recv().is_err());
        assert_eq!(all.rx.try_recv().unwrap().key.as_deref(), Some("BTCUSDT"));
        assert_eq!(all.rx.try_recv().unwrap().key.as_deref(), Some("ETHUSDT"));
        // eth wants trades only: its queue was empty; it does not read, and fills at 2; `all`
        // reads and keeps up.
        for _ in 0..2 {
            f.push(push(PushKind::Trades, Some("ETHUSDT")));
        }
        assert!(all.rx.try_recv().is_ok() && all.rx.try_recv().is_ok());
        f.push(push(PushKind::Trades, Some("ETHUSDT")));
        assert!(eth.overflowed());
        assert!(!all.overflowed());
        assert!(all.rx.try_recv().is_ok());
        // A new subscription takes effect at once.
        btc.resubscribe(Subscription::parse(["SOLUSDT"], []).unwrap());
        f.push(push(PushKind::Trades, Some("BTCUSDT")));
        f.push(push(PushKind::Trades, Some("SOLUSDT")));
        assert_eq!(btc.rx.try_recv().unwrap().key.as_deref(), Some("SOLUSDT"));
        drop(eth);
        drop(all);
        drop(btc);
        assert!(!f.has_clients());
    }
}
