//! Outgoing messages: the [`Notifier`] handle, its bounded queue, and the sender task that
//! keeps to the Bot API's rate limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use cryptoflow_operators::backoff::Backoff;

use super::{TelegramClient, TelegramError, TelegramStats};

/// Longest message text the Bot API takes, in characters (counted here, conservatively, in
/// UTF-16 code units of the HTML before entity parsing).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Messages (parts of split texts, per chat) the send queue holds.
pub const QUEUE_CAPACITY: usize = 1000;
/// Longest callback data of an inline button, bytes.
pub const MAX_CALLBACK_DATA: usize = 64;

/// `s` with `&`, `<` and `>` replaced by HTML entities, to put text into an HTML message.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// The text of a message: plain text (escaped when sent) or HTML the caller formatted (with
/// [`escape_html`] around every value put into it). `&str` and `String` convert to plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageText {
    /// Shown as it is: `<`, `>` and `&` are escaped.
    Plain(String),
    /// Telegram's HTML subset (`<b>`, `<i>`, `<code>`, `<pre>`, `<a href>`…). A text longer
    /// than [`MAX_MESSAGE_LEN`] is split preferably at line breaks, never inside a tag or an
    /// entity, but a tag left open at a split breaks the message: keep formatting within lines.
    Html(String),
}

impl MessageText {
    /// Plain text.
    pub fn plain(s: impl Into<String>) -> Self {
        MessageText::Plain(s.into())
    }

    /// Formatted HTML.
    pub fn html(s: impl Into<String>) -> Self {
        MessageText::Html(s.into())
    }

    fn into_html(self) -> String {
        match self {
            MessageText::Plain(s) => escape_html(&s),
            MessageText::Html(s) => s,
        }
    }
}

impl From<&str> for MessageText {
    fn from(s: &str) -> Self {
        MessageText::Plain(s.to_string())
    }
}

impl From<String> for MessageText {
    fn from(s: String) -> Self {
        MessageText::Plain(s)
    }
}

/// Where the atom (a tag, an entity or a character) starting at byte `pos` ends.
fn atom_end(s: &str, pos: usize) -> usize {
    let bytes = s.as_bytes();
    let next_char = pos + s[pos..].chars().next().map_or(1, char::len_utf8);
    match bytes[pos] {
        b'<' => s[pos..].find('>').map_or(next_char, |i| pos + i + 1),
        b'&' => {
            let tail = &bytes[pos + 1..bytes.len().min(pos + 12)];
            match tail.iter().position(|&b| b == b';') {
                Some(i)
                    if i > 0
                        && tail[..i]
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'#') =>
                {
                    pos + i + 2
                }
                _ => next_char,
            }
        }
        _ => next_char,
    }
}

/// Splits `html` into parts of at most `max` UTF-16 code units, cutting after a line break (or
/// else a space) in the last three quarters of a part when there is one, and never inside a tag
/// or an entity. The parts concatenate to `html`.
pub(crate) fn split_html(html: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut start, mut units, mut pos) = (0usize, 0usize, 0usize);
    // (byte after the break, units up to it) of the last line break / space of the current part.
    let mut at_nl: Option<(usize, usize)> = None;
    let mut at_ws: Option<(usize, usize)> = None;
    while pos < html.len() {
        let end = atom_end(html, pos);
        let atom = &html[pos..end];
        let au = atom.encode_utf16().count();
        if units + au > max && pos > start {
            let good = |c: &Option<(usize, usize)>| c.filter(|c| c.1 * 4 >= max);
            let (cut, cut_units) = good(&at_nl).or(good(&at_ws)).unwrap_or((pos, units));
            parts.push(html[start..cut].to_string());
            start = cut;
            units -= cut_units;
            at_nl = None;
            at_ws = None;
        }
        units += au;
        match atom {
            "\n" => at_nl = Some((end, units)),
            " " | "\t" => at_ws = Some((end, units)),
            _ => {}
        }
        pos = end;
    }
    if start < html.len() {
        parts.push(html[start..].to_string());
    }
    parts
}

/// `(chat_id, html, buttons)` of one queued part ([`Notifier::take_queued`]).
pub type QueuedPart = (i64, String, Vec<(String, String)>);

/// Whether a queued message may be dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// [`Notifier::send`] / [`Notifier::send_with_buttons`]: never dropped to make room.
    Direct,
    /// [`Notifier::notify`]: the oldest is dropped when the queue is full.
    Notification,
}

/// One part of a message to one chat.
#[derive(Debug)]
struct Queued {
    /// The message (to this chat) the part belongs to.
    seq: u64,
    chat_id: i64,
    html: String,
    /// Only on the last part.
    buttons: Vec<(String, String)>,
    kind: Kind,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Queued>,
    closed: bool,
    next_seq: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<QueueState>,
    wake: Notify,
    capacity: usize,
    notify_chats: Vec<i64>,
    stats: Arc<TelegramStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle that sends messages; cheap to clone, usable from any task or thread (nothing
/// awaits: messages are queued and a sender task delivers them).
///
/// # Queue and rate limits
///
/// Every message is split into parts of at most [`MAX_MESSAGE_LEN`] characters and each part
/// queued per chat. The sender task delivers them in order per chat, at most
/// `max_per_chat_per_s` per chat and `max_global_per_s` in all (token buckets, burst 1); a chat
/// waiting for its bucket does not hold up the others. A `429` with `retry_after` holds every
/// chat for that long, then the same part is sent again; transport errors and 5xx are retried
/// the same way with the shared backoff. A part refused for good (400 "chat not found", 403
/// "bot was blocked"…) is dropped with an error log and counted
/// ([`TelegramStats::send_failed`]). A part whose request timed out may have been delivered and
/// is sent again (the Bot API has no idempotency key).
///
/// The queue holds [`QUEUE_CAPACITY`] parts. When a new message does not fit, the oldest
/// *notifications* ([`notify`](Self::notify)) are dropped, whole, to make room, counted in
/// [`TelegramStats::notifications_dropped`] and `cryptoflow_telegram_notifications_dropped_total`.
/// Direct messages ([`send`](Self::send), [`send_with_buttons`](Self::send_with_buttons): command
/// replies and confirmations) are never dropped to make room; when the queue is full of them,
/// the new message is refused with [`TelegramError::QueueFull`] (a refused notification is also
/// counted as dropped).
#[derive(Debug, Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// A notifier whose queue holds `capacity` parts, notifying `notify_chats`. Nothing is sent
    /// until a sender task runs ([`super::TelegramBot::start`] starts one).
    pub(crate) fn new(capacity: usize, notify_chats: Vec<i64>, stats: Arc<TelegramStats>) -> Self {
        Notifier {
            shared: Arc::new(Shared {
                state: Mutex::new(QueueState::default()),
                wake: Notify::new(),
                capacity: capacity.max(1),
                notify_chats,
                stats,
            }),
        }
    }

    /// A notifier that only queues, for tests of code that sends: nothing delivers its queue;
    /// [`take_queued`](Self::take_queued) returns it.
    pub fn detached(notify_chats: Vec<i64>) -> Self {
        Notifier::new(
            QUEUE_CAPACITY,
            notify_chats,
            Arc::new(TelegramStats::default()),
        )
    }

    /// Removes and returns what is queued, as `(chat_id, html, buttons)` per part, in order.
    pub fn take_queued(&self) -> Vec<QueuedPart> {
        self.shared
            .lock()
            .items
            .drain(..)
            .map(|q| (q.chat_id, q.html, q.buttons))
            .collect()
    }

    /// Queues `text` to `chat_id` (a reply to a command: never dropped to make room).
    pub fn send(&self, chat_id: i64, text: impl Into<MessageText>) -> Result<(), TelegramError> {
        self.enqueue(&[chat_id], text.into(), Vec::new(), Kind::Direct)
    }

    /// Queues `text` to `chat_id` with inline buttons `(label, callback_data)` in one row under
    /// its last part; a pressed button comes back as a callback query
    /// ([`confirm_buttons`](super::confirm_buttons) makes the confirm / reject pair). Callback
    /// data must be 1 to 64 bytes.
    pub fn send_with_buttons(
        &self,
        chat_id: i64,
        text: impl Into<MessageText>,
        buttons: Vec<(String, String)>,
    ) -> Result<(), TelegramError> {
        self.enqueue(&[chat_id], text.into(), buttons, Kind::Direct)
    }

    /// Queues `text` to every notification chat (dropped first when the queue is full). With no
    /// notification chat configured it does nothing.
    pub fn notify(&self, text: impl Into<MessageText>) -> Result<(), TelegramError> {
        let chats = self.shared.notify_chats.clone();
        self.enqueue(&chats, text.into(), Vec::new(), Kind::Notification)
    }

    /// The chats [`notify`](Self::notify) writes to.
    pub fn notify_chats(&self) -> &[i64] {
        &self.shared.notify_chats
    }

    /// Parts waiting to be sent.
    pub fn queued(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Refuses new messages; the sender task delivers what is queued, then ends.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }

    fn enqueue(
        &self,
        chats: &[i64],
        text: MessageText,
        buttons: Vec<(String, String)>,
        kind: Kind,
    ) -> Result<(), TelegramError> {
        let html = text.into_html();
        if html.trim().is_empty() {
            return Err(TelegramError::EmptyMessage);
        }
        if let Some((_, d)) = buttons
            .iter()
            .find(|(_, d)| d.is_empty() || d.len() > MAX_CALLBACK_DATA)
        {
            return Err(TelegramError::InvalidButton { len: d.len() });
        }
        let parts = split_html(&html, MAX_MESSAGE_LEN);
        let need = parts.len() * chats.len();
        if need == 0 {
            return Ok(());
        }
        let stats = &self.shared.stats;
        let capacity = self.shared.capacity;
        let mut evicted = 0u64;
        let refused = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(TelegramError::Closed);
            }
            while st.items.len() + need > capacity {
                let Some(seq) = st
                    .items
                    .iter()
                    .find(|q| q.kind == Kind::Notification)
                    .map(|q| q.seq)
                else {
                    break;
                };
                st.items.retain(|q| q.seq != seq);
                evicted += 1;
            }
            if st.items.len() + need > capacity {
                true
            } else {
                let last = parts.len() - 1;
                for &chat_id in chats {
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    for (i, p) in parts.iter().enumerate() {
                        st.items.push_back(Queued {
                            seq,
                            chat_id,
                            html: p.clone(),
                            buttons: if i == last {
                                buttons.clone()
                            } else {
                                Vec::new()
                            },
                            kind,
                        });
                    }
                }
                false
            }
        };
        let dropped = evicted
            + if refused && kind == Kind::Notification {
                chats.len() as u64
            } else {
                0
            };
        if dropped > 0 {
            let before = stats
                .notifications_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            metrics::counter!("cryptoflow_telegram_notifications_dropped_total").increment(dropped);
            // The first drop and then every 100th: a full queue would log on every message.
            if before == 0 || before / 100 != (before + dropped) / 100 {
                tracing::warn!(
                    dropped,
                    total = before + dropped,
                    capacity,
                    "Telegram send queue full: notifications dropped."
                );
            }
        }
        if refused {
            return Err(TelegramError::QueueFull { capacity });
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    fn push_front(&self, q: Queued) {
        self.shared.lock().items.push_front(q);
    }
}

/// A token bucket with a burst of one: a token every `1/rate` seconds.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: 1.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(1.0);
            self.last = now;
        }
    }

    /// How long until a token is there (zero: now).
    fn ready_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 - 1e-9 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate)
                .unwrap_or(Duration::MAX)
                .clamp(Duration::from_millis(1), Duration::from_secs(3600))
        }
    }

    fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.ready_in(now).is_zero()
    }
}

enum Pick {
    Send(Queued),
    Wait(Option<Duration>),
    Done,
}

/// The sender task: delivers the queue of `notifier` through `client` until the notifier is
/// closed and its queue is empty.
pub(crate) async fn run_sender(
    client: TelegramClient,
    notifier: Notifier,
    per_chat_per_s: f64,
    global_per_s: f64,
) {
    let shared = notifier.shared.clone();
    let stats = shared.stats.clone();
    let mut global = TokenBucket::new(global_per_s, Instant::now());
    let mut chats: HashMap<i64, TokenBucket> = HashMap::new();
    let mut blocked_until: Option<Instant> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let now = Instant::now();
        let pick = {
            let mut st = shared.lock();
            if st.items.is_empty() {
                if st.closed {
                    Pick::Done
                } else {
                    Pick::Wait(None)
                }
            } else if let Some(b) = blocked_until.filter(|b| *b > now) {
                Pick::Wait(Some(b - now))
            } else if !global.ready_in(now).is_zero() {
                Pick::Wait(Some(global.ready_in(now)))
            } else {
                // The first part of each chat, in queue order: the first whose chat has a token.
                let mut seen = HashSet::new();
                let mut wait: Option<Duration> = None;
                let mut found = None;
                for (i, q) in st.items.iter().enumerate() {
                    if !seen.insert(q.chat_id) {
                        continue;
                    }
                    let w = chats
                        .entry(q.chat_id)
                        .or_insert_with(|| TokenBucket::new(per_chat_per_s, now))
                        .ready_in(now);
                    if w.is_zero() {
                        found = Some(i);
                        break;
                    }
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                }
                match found.and_then(|i| st.items.remove(i)) {
                    Some(q) => Pick::Send(q),
                    None => Pick::Wait(wait),
                }
            }
        };
        let q = match pick {
            Pick::Done => return,
            Pick::Wait(Some(d)) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shared.wake.notified() => {}
                }
                continue;
            }
            Pick::Wait(None) => {
                shared.wake.notified().await;
                continue;
            }
            Pick::Send(q) => q,
        };
        global.take(now);
        if let Some(b) = chats.get_mut(&q.chat_id) {
            b.take(now);
        }
        if chats.len() > 1000 {
            chats.retain(|_, b| !b.is_full(now));
        }
        match client.send_message(q.chat_id, &q.html, &q.buttons).await {
            Ok(()) => {
                backoff.reset();
                stats.sent.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cryptoflow_telegram_messages_sent_total").increment(1);
            }
            Err(TelegramError::RateLimited { retry_after, .. }) => {
                let drawn = backoff.next_delay();
                let wait = retry_after.unwrap_or(drawn);
                stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cryptoflow_telegram_rate_limited_total", "method" => "sendMessage")
                    .increment(1);
                tracing::warn!(
                    chat_id = q.chat_id,
                    retry_after = ?wait,
                    "Telegram rate limit (429): sending again after the wait."
                );
                blocked_until = Some(Instant::now() + wait);
                notifier.push_front(q);
            }
            Err(e) if e.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(chat_id = q.chat_id, error = %e, ?delay, "Telegram sendMessage failed; retrying.");
                blocked_until = Some(Instant::now() + delay);
                notifier.push_front(q);
            }
            Err(e) => {
                backoff.reset();
                stats.send_failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cryptoflow_telegram_messages_failed_total").increment(1);
                tracing::error!(chat_id = q.chat_id, error = %e, "Telegram refused a message; it is dropped.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(capacity: usize, chats: Vec<i64>) -> Notifier {
        Notifier::new(capacity, chats, Arc::new(TelegramStats::default()))
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_html("a<b> & c"), "a&lt;b&gt; &amp; c");
        assert_eq!(MessageText::from("<x>").into_html(), "&lt;x&gt;");
        assert_eq!(MessageText::html("<b>x</b>").into_html(), "<b>x</b>");
    }

    #[test]
    fn splitting() {
        let text = "a".repeat(10_000);
        let parts = split_html(&text, 4096);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            vec![4096, 4096, 1808]
        );
        // Lines: cut after a line break.
        let line = format!("{}\n", "x".repeat(99));
        let text = line.repeat(100);
        let parts = split_html(&text, 4096);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= 4096 && p.ends_with('\n')));
        assert_eq!(parts[0].len(), 4000);
        // Entities and tags stay whole.
        let text = "&amp;".repeat(30);
        let parts = split_html(&text, 12);
        assert!(parts.iter().all(|p| p == "&amp;&amp;"), "{parts:?}");
        let parts = split_html("ab<b>cd</b>", 4);
        assert_eq!(parts, vec!["ab", "<b>c", "d", "</b>"]);
        // Characters outside the BMP count twice.
        let parts = split_html("😀😀😀", 4);
        assert_eq!(parts, vec!["😀😀", "😀"]);
        assert_eq!(split_html("short", 4096), vec!["short"]);
    }

    #[test]
    fn notifications_are_dropped_oldest_first_and_direct_messages_never() {
        let n = notifier(3, vec![7]);
        n.notify("n1").unwrap();
        n.send(1, "r1").unwrap();
        n.notify("n2").unwrap();
        n.notify("n3").unwrap(); // drops n1
        assert_eq!(
            n.shared.stats.notifications_dropped.load(Ordering::Relaxed),
            1
        );
        n.send(1, "r2").unwrap(); // drops n2
        n.send(1, "r3").unwrap(); // drops n3
        let texts: Vec<String> = n
            .shared
            .lock()
            .items
            .iter()
            .map(|q| q.html.clone())
            .collect();
        assert_eq!(texts, vec!["r1", "r2", "r3"]);
        assert_eq!(
            n.shared.stats.notifications_dropped.load(Ordering::Relaxed),
            3
        );
        // Full of direct messages: refused, not dropped.
        assert_eq!(
            n.send(1, "r4"),
            Err(TelegramError::QueueFull { capacity: 3 })
        );
        assert_eq!(
            n.notify("n4"),
            Err(TelegramError::QueueFull { capacity: 3 })
        );
        assert_eq!(
            n.shared.stats.notifications_dropped.load(Ordering::Relaxed),
            4
        );
        assert_eq!(n.queued(), 3);
        n.close();
        assert_eq!(n.send(1, "x"), Err(TelegramError::Closed));
    }

    #[test]
    fn validation_of_messages() {
        let n = notifier(10, vec![]);
        assert_eq!(n.send(1, "  "), Err(TelegramError::EmptyMessage));
        let long = "x".repeat(65);
        assert_eq!(
            n.send_with_buttons(1, "t", vec![("b".into(), long)]),
            Err(TelegramError::InvalidButton { len: 65 })
        );
        // No notification chats: nothing queued.
        n.notify("hello").unwrap();
        assert_eq!(n.queued(), 0);
        // Buttons go with the last part only.
        n.send_with_buttons(1, "y".repeat(5000), vec![("ok".into(), "confirm:1".into())])
            .unwrap();
        let st = n.shared.lock();
        assert_eq!(st.items.len(), 2);
        assert!(st.items[0].buttons.is_empty());
        assert_eq!(st.items[1].buttons.len(), 1);
    }

    #[test]
    fn a_detached_notifier_only_queues() {
        let n = Notifier::detached(vec![5, 6]);
        n.notify("a&b").unwrap();
        n.send_with_buttons(
            1,
            MessageText::html("<b>x</b>"),
            vec![("ok".into(), "confirm:1".into())],
        )
        .unwrap();
        assert_eq!(
            n.take_queued(),
            vec![
                (5, "a&amp;b".to_string(), vec![]),
                (6, "a&amp;b".to_string(), vec![]),
                (
                    1,
                    "<b>x</b>".to_string(),
                    vec![("ok".to_string(), "confirm:1".to_string())]
                ),
            ]
        );
        assert_eq!(n.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_spacing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert!(b.ready_in(t0).is_zero());
        b.take(t0);
        assert_eq!(b.ready_in(t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.ready_in(t1).is_zero());
        // Idle time does not build a burst beyond one.
        let t2 = t1 + Duration::from_secs(10);
        b.take(t2);
        assert_eq!(b.ready_in(t2), Duration::from_millis(500));
    }
}
