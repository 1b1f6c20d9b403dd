//! What the bot hands to the executor, and how updates are read into it.

use cryptoflow_operators::trading::command::Command;
use cryptoflow_operators::trading::conditional::Origin;
use serde::Deserialize;

/// The help text (HTML), also sent after "unknown command": the executor's commands
/// ([`Command::help`]) as `/name`.
pub fn help_text() -> String {
    Command::help("/", "Any other text is read as an order.")
}

/// Prefix of the callback data of a confirmation button (`confirm:<token>`).
pub const CONFIRM_PREFIX: &str = "confirm:";
/// Prefix of the callback data of a rejection button (`reject:<token>`).
pub const REJECT_PREFIX: &str = "reject:";

/// Something an allowed chat asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotInput {
    /// A command, a text order, or a press of a confirmation button.
    Command {
        /// The chat it came from (where the answer goes).
        chat_id: i64,
        /// Who sent it.
        from: BotUser,
        /// What was asked.
        command: BotCommand,
    },
}

/// The sender of a command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BotUser {
    /// Telegram user id (0 when the update had no sender, e.g. a channel post).
    pub id: i64,
    /// `@username` without the `@`, when the user has one.
    pub username: Option<String>,
    /// First and last name.
    pub name: String,
}

/// A command of the executor's bot: the executor's own [`Command`]. `/name` is a command of
/// [`NAMED`](cryptoflow_operators::trading::command::NAMED) (`/start`, which Telegram clients
/// send first, is `/help`), other text a [`Command::Text`] from `telegram:<chat id>` and the
/// sender's user id, a button [`Command::Confirm`] or [`Command::Reject`].
pub type BotCommand = Command;

/// The buttons `[("✅ Confirm", "confirm:<token>"), ("❌ Reject", "reject:<token>")]` that come
/// back as [`Command::Confirm`] / [`Command::Reject`]. The token must keep the callback
/// data within 64 bytes (56 bytes of token at most).
pub fn confirm_buttons(token: &str) -> Vec<(String, String)> {
    vec![
        ("✅ Confirm".to_string(), format!("{CONFIRM_PREFIX}{token}")),
        ("❌ Reject".to_string(), format!("{REJECT_PREFIX}{token}")),
    ]
}

/// What a message's text asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A command of the bot or a text order.
    Command(BotCommand),
    /// `/name` that is not a command of the bot (the name, without `/` and `@bot`).
    Unknown(String),
    /// Blank text.
    Nothing,
}

/// Reads a message's text: `/cmd` or `/cmd@BotName` (case-insensitive, arguments ignored), or
/// free text, a text order of `origin`.
pub(crate) fn parse_text(text: &str, origin: impl FnOnce() -> Origin) -> Parsed {
    let text = text.trim();
    if text.is_empty() {
        return Parsed::Nothing;
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Parsed::Command(Command::Text {
            text: text.to_string(),
            origin: origin(),
        });
    };
    let word = rest.split_whitespace().next().unwrap_or("");
    // `/cmd@BotName`: in groups, a command addressed to a bot. With privacy mode on (the
    // default) Telegram only delivers commands addressed to this bot or to no bot, so the name is
    // not compared.
    let name = word.split('@').next().unwrap_or("");
    let command = if name.eq_ignore_ascii_case("start") {
        Some(Command::Help)
    } else {
        Command::named(name)
    };
    match command {
        Some(c) => Parsed::Command(c),
        None => Parsed::Unknown(name.to_string()),
    }
}

/// Reads a button's callback data: `confirm:<token>` / `reject:<token>` (non-empty token).
pub(crate) fn parse_callback(data: &str) -> Option<Command> {
    if let Some(id) = data.strip_prefix(CONFIRM_PREFIX) {
        (!id.is_empty()).then(|| Command::Confirm { id: id.to_string() })
    } else if let Some(id) = data.strip_prefix(REJECT_PREFIX) {
        (!id.is_empty()).then(|| Command::Reject { id: id.to_string() })
    } else {
        None
    }
}

/// One update as the poller reads it, before its chat filter and without answering anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadUpdate {
    /// The update's `update_id`.
    pub update_id: i64,
    /// The chat it came from (`None`: neither a message nor a button press with a message).
    pub chat_id: Option<i64>,
    /// Who sent it (the default when nobody is named).
    pub from: BotUser,
    /// The command it carries, if any (unknown commands, blank text and unknown buttons carry
    /// none).
    pub command: Option<BotCommand>,
}

/// Reads one raw update (an element of `getUpdates`' `result`) the way the poller does: its
/// `update_id` first, then the message or callback query (see [`parse_text`],
/// [`parse_callback`]). An update that cannot be read is an error saying why. Pure, for tests and
/// fuzzing of the decoding.
pub fn read_update(raw: serde_json::Value) -> Result<ReadUpdate, String> {
    let Some(update_id) = raw.get("update_id").and_then(serde_json::Value::as_i64) else {
        return Err("an update without an update_id".into());
    };
    let u = serde_json::from_value::<Update>(raw).map_err(|e| e.to_string())?;
    let (chat_id, from, command) = if let Some(m) = u.message {
        let from = m.from.as_ref().map(BotUser::from).unwrap_or_default();
        let chat_id = m.chat.id;
        let origin = || Origin {
            channel: format!("telegram:{chat_id}"),
            user: from.id.to_string(),
        };
        let command = match parse_text(&m.text.unwrap_or_default(), origin) {
            Parsed::Command(c) => Some(c),
            Parsed::Unknown(_) | Parsed::Nothing => None,
        };
        (Some(m.chat.id), from, command)
    } else if let Some(q) = u.callback_query {
        let from = BotUser::from(&q.from);
        let chat_id = q.message.as_ref().map(|m| m.chat.id);
        let command = chat_id.and(q.data.as_deref().and_then(parse_callback));
        (chat_id, from, command)
    } else {
        (None, BotUser::default(), None)
    };
    Ok(ReadUpdate {
        update_id,
        chat_id,
        from,
        command,
    })
}

// The parts of the Bot API's update objects that the bot reads (everything else is ignored;
// `update_id` is read before these).

#[derive(Debug, Deserialize)]
pub(crate) struct Update {
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    pub chat: Chat,
    #[serde(default)]
    pub from: Option<User>,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Chat {
    pub id: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub id: i64,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<CallbackMessage>,
    #[serde(default)]
    pub data: Option<String>,
}

/// The message a button belongs to (possibly an "inaccessible" one: only its chat is read).
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackMessage {
    pub chat: Chat,
}

impl From<&User> for BotUser {
    fn from(u: &User) -> Self {
        let name = match &u.last_name {
            Some(l) if !l.is_empty() => format!("{} {l}", u.first_name),
            _ => u.first_name.clone(),
        };
        BotUser {
            id: u.id,
            username: u.username.clone(),
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_read_as_the_poller_reads_them() {
        let read = |v: &str| read_update(serde_json::from_str(v).expect("json"));
        let u = read(
            r#"{"update_id":7,"message":{"chat":{"id":42},"from":{"id":3,"first_name":"Ana","last_name":"Ruiz"},"text":" /PnL@Bot "}}"#,
        )
        .expect("message");
        assert_eq!((u.update_id, u.chat_id), (7, Some(42)));
        assert_eq!(u.command, Some(BotCommand::Pnl));
        assert_eq!(u.from.name, "Ana Ruiz");
        let u = read(
            r#"{"update_id":8,"callback_query":{"id":"q","from":{"id":3},"message":{"chat":{"id":42}},"data":"reject:t1"}}"#,
        )
        .expect("button");
        assert_eq!(u.command, Some(BotCommand::Reject { id: "t1".into() }));
        let u = read(
            r#"{"update_id":9,"callback_query":{"id":"q","from":{"id":3},"data":"confirm:t"}}"#,
        )
        .expect("button without a message");
        assert_eq!((u.chat_id, u.command), (None, None));
        assert!(
            read(r#"{"message":{"chat":{"id":1}}}"#).is_err(),
            "no update_id"
        );
        assert!(
            read(r#"{"update_id":1,"message":{"text":"x"}}"#).is_err(),
            "no chat"
        );
        let body = br#"{"ok":true,"result":[{"update_id":1,"message":{"chat":{"id":5},"text":"/kill"}},{"x":1}]}"#;
        let all = crate::telegram::read_updates(body).expect("ok answer");
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].as_ref().map(|u| u.command.clone()),
            Ok(Some(BotCommand::Kill))
        );
        assert!(all[1].is_err());
        assert!(matches!(
            crate::telegram::read_updates(br#"{"ok":true,"result":{}}"#),
            Err(crate::telegram::TelegramError::Decode { .. })
        ));
    }

    #[test]
    fn commands() {
        let origin = || Origin {
            channel: "telegram:1".into(),
            user: "2".into(),
        };
        let c = |s: &str| parse_text(s, origin);
        assert_eq!(c("/status"), Parsed::Command(BotCommand::Status));
        assert_eq!(c("/status@MyBot"), Parsed::Command(BotCommand::Status));
        assert_eq!(c("  /PnL  "), Parsed::Command(BotCommand::Pnl));
        assert_eq!(c("/positions now"), Parsed::Command(BotCommand::Positions));
        assert_eq!(c("/pause"), Parsed::Command(BotCommand::Pause));
        assert_eq!(c("/resume"), Parsed::Command(BotCommand::Resume));
        assert_eq!(c("/kill"), Parsed::Command(BotCommand::Kill));
        assert_eq!(c("/orders"), Parsed::Command(BotCommand::Orders));
        assert_eq!(c("/start"), Parsed::Command(BotCommand::Help));
        assert_eq!(c("/help@x_bot"), Parsed::Command(BotCommand::Help));
        assert_eq!(c("/xyz@MyBot arg"), Parsed::Unknown("xyz".into()));
        assert_eq!(c("/"), Parsed::Unknown("".into()));
        assert_eq!(c("   "), Parsed::Nothing);
        assert_eq!(
            c(" buy 0.1 BTCUSDT "),
            Parsed::Command(BotCommand::Text {
                text: "buy 0.1 BTCUSDT".into(),
                origin: origin()
            })
        );
    }

    #[test]
    fn callbacks() {
        assert_eq!(
            parse_callback("confirm:abc"),
            Some(BotCommand::Confirm { id: "abc".into() })
        );
        assert_eq!(
            parse_callback("reject:a:b"),
            Some(BotCommand::Reject { id: "a:b".into() })
        );
        assert_eq!(parse_callback("confirm:"), None);
        assert_eq!(parse_callback("other"), None);
        let b = confirm_buttons("t1");
        assert_eq!(
            parse_callback(&b[0].1),
            Some(BotCommand::Confirm { id: "t1".into() })
        );
        assert_eq!(
            parse_callback(&b[1].1),
            Some(BotCommand::Reject { id: "t1".into() })
        );
    }

    #[test]
    fn updates_deserialize() {
        let u: Update = serde_json::from_str(
            r#"{"update_id":7,"message":{"message_id":1,"date":0,"chat":{"id":-100,"type":"group"},
                "from":{"id":5,"is_bot":false,"first_name":"Ann","last_name":"Lee","username":"ann"},
                "text":"/kill"}}"#,
        )
        .unwrap();
        let m = u.message.unwrap();
        assert_eq!(m.chat.id, -100);
        let from = BotUser::from(m.from.as_ref().unwrap());
        assert_eq!(from.name, "Ann Lee");
        assert_eq!(from.username.as_deref(), Some("ann"));
        let u: Update = serde_json::from_str(
            r#"{"update_id":8,"callback_query":{"id":"cb1","from":{"id":5,"first_name":"Ann"},
                "message":{"chat":{"id":42},"date":0,"message_id":3},"chat_instance":"x","data":"confirm:1"}}"#,
        )
        .unwrap();
        assert_eq!(u.callback_query.unwrap().message.unwrap().chat.id, 42);
    }
}
