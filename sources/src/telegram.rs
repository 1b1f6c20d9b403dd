//! The Telegram Bot API client of the order executor: commands in, notifications out.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), cryptoflow_sources::telegram::TelegramError> {
//! use cryptoflow_sources::telegram::{confirm_buttons, BotCommand, BotInput, TelegramBot, TelegramConfig};
//! let cfg = TelegramConfig { allowed_chat_ids: vec![123456], ..Default::default() };
//! let (bot, mut inputs) = TelegramBot::start(&cfg, cfg.token()?, None)?;
//! let notifier = bot.notifier();
//! notifier.notify("executor started")?;
//! while let Some(BotInput::Command { chat_id, command, .. }) = inputs.recv().await {
//!     match command {
//!         BotCommand::Text { text: order, .. } => notifier.send_with_buttons(
//!             chat_id,
//!             format!("Place {order}?"),
//!             confirm_buttons("ord-1"),
//!         )?,
//!         _ => notifier.send(chat_id, "ok")?,
//!     }
//! }
//! // The inputs end when polling stops; `shutdown` says why and gives the offset to resume from.
//! let resume_from = bot.shutdown(std::time::Duration::from_secs(5)).await?;
//! # let _ = resume_from;
//! # Ok(()) }
//! ```
//!
//! # Parts
//!
//! - [`TelegramConfig`] and [`BotToken`]: settings; the token comes from the environment only,
//!   and never reaches a log line, an error message or `Debug` output (it is part of every
//!   request's URL path, `/bot<token>/method`, and that URL is never kept).
//! - Polling ([`TelegramBot::start`]): `getUpdates` long polls with `offset` = last update id +
//!   1 (kept in memory, exposed as [`UpdateOffset`] to resume after a restart), only `message` and
//!   `callback_query` updates; errors retried with the shared
//!   [`Backoff`](cryptoflow_operators::backoff::Backoff); `429` waits `retry_after`; `409
//!   Conflict` (another poller or a webhook) and a refused token end polling with an error.
//! - Inputs ([`BotInput`]): commands (`/status`, `/status@BotName`, …), free text (a text order),
//!   and the confirm / reject buttons (answered with `answerCallbackQuery`). Only chats in
//!   `allowed_chat_ids` produce inputs; other chats are ignored, counted and logged once per chat,
//!   never answered. An unknown `/command` is answered with the help.
//! - Sending ([`Notifier`]): a queue with per-chat and global token buckets, `429` honoured,
//!   long texts split, HTML with [`escape_html`]; see [`Notifier`] for the queue's bound.

mod api;
mod config;
mod input;
mod outbox;
mod poller;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use api::{read_updates, TelegramClient, TelegramError};
pub use config::{BotToken, TelegramConfig};
pub use input::{
    confirm_buttons, help_text, read_update, BotCommand, BotInput, BotUser, ReadUpdate,
    CONFIRM_PREFIX, REJECT_PREFIX,
};
pub use outbox::{
    escape_html, MessageText, Notifier, QueuedPart, MAX_CALLBACK_DATA, MAX_MESSAGE_LEN,
    QUEUE_CAPACITY,
};
pub use poller::UpdateOffset;

/// Capacity of the channel of [`BotInput`]s (polling waits when it is full).
pub const INPUT_CHANNEL_CAPACITY: usize = 64;

/// Counters of the bot (also exported as `cryptoflow_telegram_*` metrics where noted).
#[derive(Debug, Default)]
pub struct TelegramStats {
    /// Updates read (new ones: not below the offset).
    pub updates: AtomicU64,
    /// Inputs handed to the executor.
    pub inputs: AtomicU64,
    /// Updates from chats that are not allowed (`cryptoflow_telegram_ignored_updates_total`).
    pub ignored: AtomicU64,
    /// Updates below the offset, already handled (skipped).
    pub duplicates: AtomicU64,
    /// Updates that could not be read (skipped).
    pub unreadable: AtomicU64,
    /// Failed `getUpdates` calls (`cryptoflow_telegram_poll_errors_total`).
    pub poll_errors: AtomicU64,
    /// `429` answers, polls and sends (`cryptoflow_telegram_rate_limited_total`).
    pub rate_limited: AtomicU64,
    /// Message parts delivered (`cryptoflow_telegram_messages_sent_total`).
    pub sent: AtomicU64,
    /// Message parts refused for good and dropped (`cryptoflow_telegram_messages_failed_total`).
    pub send_failed: AtomicU64,
    /// Notifications dropped because the queue was full
    /// (`cryptoflow_telegram_notifications_dropped_total`).
    pub notifications_dropped: AtomicU64,
}

/// A running bot: the polling task and the sender task. Dropping it stops polling and lets the
/// sender deliver what is queued in the background; [`shutdown`](Self::shutdown) does the same
/// and waits.
#[derive(Debug)]
pub struct TelegramBot {
    notifier: Notifier,
    offset: UpdateOffset,
    stats: Arc<TelegramStats>,
    stop: watch::Sender<bool>,
    poller: Option<JoinHandle<Result<(), TelegramError>>>,
    sender: Option<JoinHandle<()>>,
}

impl TelegramBot {
    /// Starts polling and sending (on the current tokio runtime). `resume_offset` is a saved
    /// [`UpdateOffset::get`] (`None`: from the oldest update Telegram still holds). Returns the
    /// bot and the inputs of the allowed chats; the inputs end when polling stops.
    pub fn start(
        cfg: &TelegramConfig,
        token: BotToken,
        resume_offset: Option<i64>,
    ) -> Result<(TelegramBot, mpsc::Receiver<BotInput>), TelegramError> {
        cfg.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            TelegramError::Config("the Telegram bot must be started within a tokio runtime".into())
        })?;
        let client = TelegramClient::new(&cfg.api_base, token)?;
        let stats = Arc::new(TelegramStats::default());
        let notifier = Notifier::new(QUEUE_CAPACITY, cfg.notify_chats().to_vec(), stats.clone());
        let offset = UpdateOffset::new(resume_offset);
        let (tx, rx) = mpsc::channel(INPUT_CHANNEL_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let poller = poller::Poller {
            client: client.clone(),
            allowed: cfg.allowed_chat_ids.iter().copied().collect(),
            timeout_s: cfg.poll_timeout_s,
            offset: offset.clone(),
            notifier: notifier.clone(),
            stats: stats.clone(),
            warned: Default::default(),
        };
        if cfg.allowed_chat_ids.is_empty() {
            tracing::warn!("telegram.allowed_chat_ids is empty: every command will be ignored.");
        }
        let poller = rt.spawn(poller.run(tx, stop_rx));
        let sender = rt.spawn(outbox::run_sender(
            client,
            notifier.clone(),
            cfg.max_per_chat_per_s,
            cfg.max_global_per_s,
        ));
        Ok((
            TelegramBot {
                notifier,
                offset,
                stats,
                stop,
                poller: Some(poller),
                sender: Some(sender),
            },
            rx,
        ))
    }

    /// A handle to send messages (cheap clone).
    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    /// The offset of the next `getUpdates`: save [`UpdateOffset::get`] to resume after a restart.
    pub fn offset(&self) -> UpdateOffset {
        self.offset.clone()
    }

    /// The bot's counters.
    pub fn stats(&self) -> Arc<TelegramStats> {
        self.stats.clone()
    }

    /// Whether the polling task still runs (it ends on a 409 conflict or a refused token).
    pub fn is_polling(&self) -> bool {
        self.poller.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Stops polling, then delivers the queued messages for at most `flush` (what is left then
    /// is logged and dropped). Returns the offset to resume from, or the error that had ended
    /// polling (a 409 conflict, a refused token).
    pub async fn shutdown(mut self, flush: Duration) -> Result<Option<i64>, TelegramError> {
        let _ = self.stop.send(true);
        let polled = match self.poller.take() {
            Some(p) => match p.await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "The Telegram polling task failed.");
                    Ok(())
                }
            },
            None => Ok(()),
        };
        self.notifier.close();
        if let Some(mut sender) = self.sender.take() {
            if tokio::time::timeout(flush, &mut sender).await.is_err() {
                sender.abort();
                tracing::warn!(
                    unsent = self.notifier.queued(),
                    ?flush,
                    "Telegram messages not sent before shutdown; dropped."
                );
            }
        }
        polled.map(|()| self.offset.get())
    }
}

impl Drop for TelegramBot {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.notifier.close();
    }
}
