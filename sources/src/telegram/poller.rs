//! Long polling of `getUpdates`: updates become [`BotInput`]s, each at most once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use cryptoflow_operators::backoff::Backoff;

use super::input::{help_text, parse_callback, parse_text, Parsed, Update};
use super::{
    escape_html, BotInput, BotUser, MessageText, Notifier, TelegramClient, TelegramError,
    TelegramStats,
};

/// Chats whose ignored updates are logged (one warning each); beyond, they are only counted.
const MAX_WARNED_CHATS: usize = 1024;

/// The next `getUpdates` offset: the last handed-over update's id + 1. Shared, cheap to clone;
/// save [`get`](Self::get) when stopping and pass it to
/// [`TelegramBot::start`](super::TelegramBot::start) to resume without handling an update twice.
#[derive(Debug, Clone, Default)]
pub struct UpdateOffset(Arc<AtomicI64>);

impl UpdateOffset {
    /// An offset starting at `start` (`None` or a value ≤ 0: from the oldest update Telegram
    /// still holds for the bot).
    pub fn new(start: Option<i64>) -> Self {
        UpdateOffset(Arc::new(AtomicI64::new(start.unwrap_or(0).max(0))))
    }

    /// The offset of the next `getUpdates` (`None` before the first update).
    pub fn get(&self) -> Option<i64> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            o => Some(o),
        }
    }

    /// Moves the offset to `next` (never backwards).
    fn advance(&self, next: i64) {
        self.0.fetch_max(next, Ordering::SeqCst);
    }
}

/// Until `stop` says true or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The polling loop's state.
pub(crate) struct Poller {
    pub client: TelegramClient,
    pub allowed: HashSet<i64>,
    pub timeout_s: u64,
    pub offset: UpdateOffset,
    pub notifier: Notifier,
    pub stats: Arc<TelegramStats>,
    pub warned: HashSet<i64>,
}

impl Poller {
    /// Polls until `stop`, the receiver of `tx` is dropped, or an error that retrying cannot fix
    /// (409 conflict, refused token), which it returns.
    pub(crate) async fn run(
        mut self,
        tx: mpsc::Sender<BotInput>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), TelegramError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        loop {
            let res = tokio::select! {
                r = self.client.get_updates(self.offset.get(), self.timeout_s) => r,
                _ = stopped(&mut stop) => return Ok(()),
            };
            let wait = match res {
                Ok(updates) => {
                    backoff.reset();
                    for raw in updates {
                        if !self.handle(raw, &tx, &mut stop).await {
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(e @ (TelegramError::Conflict { .. } | TelegramError::Unauthorized { .. })) => {
                    self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "Telegram polling stopped.");
                    return Err(e);
                }
                Err(TelegramError::RateLimited { retry_after, .. }) => {
                    let drawn = backoff.next_delay();
                    let wait = retry_after.unwrap_or(drawn);
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("cryptoflow_telegram_rate_limited_total", "method" => "getUpdates")
                        .increment(1);
                    tracing::warn!(retry_after = ?wait, "Telegram getUpdates rate limited (429); waiting.");
                    wait
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("cryptoflow_telegram_poll_errors_total").increment(1);
                    tracing::warn!(error = %e, ?delay, "Telegram getUpdates failed; retrying.");
                    delay
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return Ok(()),
            }
        }
    }

    /// Handles one update; false when the bot must stop (stop asked, receiver gone). The offset
    /// moves past the update only once it is handled.
    async fn handle(
        &mut self,
        raw: Value,
        tx: &mpsc::Sender<BotInput>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(id) = raw.get("update_id").and_then(Value::as_i64) else {
            self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("Telegram update without an update_id; skipped.");
            return true;
        };
        if self.offset.get().is_some_and(|o| id < o) {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(update_id = id, "Telegram update already handled; skipped.");
            return true;
        }
        self.stats.updates.fetch_add(1, Ordering::Relaxed);
        let input = match serde_json::from_value::<Update>(raw) {
            Ok(u) => self.read(u),
            Err(e) => {
                self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(update_id = id, error = %e, "Unreadable Telegram update; skipped.");
                None
            }
        };
        if let Some(input) = input {
            tokio::select! {
                r = tx.send(input) => if r.is_err() {
                    return false;
                },
                _ = stopped(stop) => return false,
            }
            self.stats.inputs.fetch_add(1, Ordering::Relaxed);
        }
        self.offset.advance(id + 1);
        true
    }

    fn is_allowed(&mut self, chat_id: i64, what: &'static str) -> bool {
        if self.allowed.contains(&chat_id) {
            return true;
        }
        self.stats.ignored.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cryptoflow_telegram_ignored_updates_total").increment(1);
        if self.warned.len() < MAX_WARNED_CHATS && self.warned.insert(chat_id) {
            tracing::warn!(
                chat_id,
                kind = what,
                "Telegram update from a chat that is not allowed; ignored (logged once per chat)."
            );
        }
        false
    }

    /// The input an update makes, if any; answers unknown commands and button presses.
    fn read(&mut self, u: Update) -> Option<BotInput> {
        if let Some(m) = u.message {
            let chat_id = m.chat.id;
            if !self.is_allowed(chat_id, "message") {
                return None;
            }
            let from = m.from.as_ref().map(BotUser::from).unwrap_or_default();
            let text = m.text.unwrap_or_default();
            let origin = || cryptoflow_operators::trading::conditional::Origin {
                channel: format!("telegram:{chat_id}"),
                user: from.id.to_string(),
            };
            match parse_text(&text, origin) {
                Parsed::Command(command) => {
                    tracing::info!(chat_id, user_id = from.id, ?command, "Telegram command.");
                    Some(BotInput::Command {
                        chat_id,
                        from,
                        command,
                    })
                }
                Parsed::Unknown(name) => {
                    tracing::info!(chat_id, user_id = from.id, command = %name, "Unknown Telegram command.");
                    let reply = format!(
                        "Unknown command /{}.\n\n{}",
                        escape_html(&name),
                        help_text()
                    );
                    if let Err(e) = self.notifier.send(chat_id, MessageText::html(reply)) {
                        tracing::warn!(chat_id, error = %e, "Cannot answer an unknown command.");
                    }
                    None
                }
                Parsed::Nothing => {
                    tracing::debug!(chat_id, "Telegram message without text; ignored.");
                    None
                }
            }
        } else if let Some(q) = u.callback_query {
            let Some(chat_id) = q.message.as_ref().map(|m| m.chat.id) else {
                tracing::debug!("Telegram callback query without a message; ignored.");
                return None;
            };
            if !self.is_allowed(chat_id, "callback_query") {
                return None;
            }
            let command = q.data.as_deref().and_then(parse_callback);
            let answer = if command.is_some() {
                None
            } else {
                Some("Unknown action")
            };
            let client = self.client.clone();
            let id = q.id.clone();
            tokio::spawn(async move {
                if let Err(e) = client.answer_callback_query(&id, answer).await {
                    tracing::warn!(chat_id, error = %e, "Cannot answer a Telegram callback query.");
                }
            });
            let from = BotUser::from(&q.from);
            command.map(|command| {
                tracing::info!(chat_id, user_id = from.id, ?command, "Telegram button.");
                BotInput::Command {
                    chat_id,
                    from,
                    command,
                }
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::{BotCommand, BotToken};
    use serde_json::json;

    fn poller(allowed: &[i64]) -> (Poller, Notifier) {
        let stats = Arc::new(TelegramStats::default());
        let notifier = Notifier::new(100, vec![], stats.clone());
        let client =
            TelegramClient::new("http://127.0.0.1:1", BotToken::new("1:x").unwrap()).unwrap();
        (
            Poller {
                client,
                allowed: allowed.iter().copied().collect(),
                timeout_s: 0,
                offset: UpdateOffset::new(None),
                notifier: notifier.clone(),
                stats,
                warned: HashSet::new(),
            },
            notifier,
        )
    }

    fn msg(id: i64, chat: i64, text: &str) -> Value {
        json!({"update_id": id, "message": {"message_id": id, "date": 0, "chat": {"id": chat, "type": "private"},
            "from": {"id": 9, "is_bot": false, "first_name": "Bo"}, "text": text}})
    }

    #[tokio::test]
    async fn updates_are_handled_once_and_filtered() {
        let (mut p, notifier) = poller(&[42]);
        let (tx, mut rx) = mpsc::channel(10);
        let (_stop_tx, mut stop) = watch::channel(false);
        assert!(p.handle(msg(10, 42, "/status"), &tx, &mut stop).await);
        assert_eq!(p.offset.get(), Some(11));
        // The same id again (a server that redelivers): skipped.
        assert!(p.handle(msg(10, 42, "/status"), &tx, &mut stop).await);
        // Another chat: ignored, counted, not answered.
        assert!(p.handle(msg(11, 43, "/kill"), &tx, &mut stop).await);
        assert!(p.handle(msg(12, 43, "/kill"), &tx, &mut stop).await);
        assert_eq!(p.stats.ignored.load(Ordering::Relaxed), 2);
        assert_eq!(p.warned.len(), 1);
        // Unknown command: answered, no input.
        assert!(p.handle(msg(13, 42, "/xyz"), &tx, &mut stop).await);
        assert_eq!(notifier.queued(), 1);
        // No update_id, junk: skipped.
        assert!(p.handle(json!({"x": 1}), &tx, &mut stop).await);
        assert!(
            p.handle(json!({"update_id": 14, "message": 5}), &tx, &mut stop)
                .await
        );
        assert_eq!(p.offset.get(), Some(15));
        drop(tx);
        let mut got = Vec::new();
        while let Some(i) = rx.recv().await {
            got.push(i);
        }
        assert_eq!(
            got,
            vec![BotInput::Command {
                chat_id: 42,
                from: BotUser {
                    id: 9,
                    username: None,
                    name: "Bo".into()
                },
                command: BotCommand::Status
            }]
        );
        assert_eq!(p.stats.duplicates.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_closed_receiver_stops_without_moving_the_offset() {
        let (mut p, _n) = poller(&[42]);
        let (tx, rx) = mpsc::channel(10);
        let (_stop_tx, mut stop) = watch::channel(false);
        drop(rx);
        assert!(!p.handle(msg(5, 42, "/pnl"), &tx, &mut stop).await);
        assert_eq!(p.offset.get(), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(UpdateOffset::new(None).get(), None);
        assert_eq!(UpdateOffset::new(Some(-3)).get(), None);
        let o = UpdateOffset::new(Some(100));
        o.advance(50);
        assert_eq!(o.get(), Some(100));
        o.advance(101);
        assert_eq!(o.clone().get(), Some(101));
    }
}
