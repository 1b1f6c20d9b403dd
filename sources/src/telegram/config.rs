//! The bot's settings and its token.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::TelegramError;

/// Settings of the Telegram bot (the `[telegram]` table of a configuration file).
///
/// The token is never part of the configuration: it is read from the environment variable named
/// by [`token_env`](Self::token_env) ([`TelegramConfig::token`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Base URL of the Bot API, without the `/bot<token>/` part.
    pub api_base: String,
    /// Environment variable holding the bot token.
    pub token_env: String,
    /// Chats whose commands are accepted (in an allowed group, every member's). Empty:
    /// nobody's. Updates from other chats never
    /// become a [`BotInput`](super::BotInput): they are counted
    /// (`cryptoflow_telegram_ignored_updates_total`) and logged once per chat, and not answered.
    pub allowed_chat_ids: Vec<i64>,
    /// Chats that [`Notifier::notify`](super::Notifier::notify) writes to. Absent: the allowed
    /// chats; an empty list: none.
    pub notify_chat_ids: Option<Vec<i64>>,
    /// Long-poll timeout of `getUpdates`, seconds, 1 to 600 (the HTTP timeout of that request
    /// is 10 s longer).
    pub poll_timeout_s: u64,
    /// Messages per second to one chat (token bucket, burst 1).
    pub max_per_chat_per_s: f64,
    /// Messages per second over all chats (token bucket, burst 1).
    pub max_global_per_s: f64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_base: "https://api.telegram.org".to_string(),
            token_env: "TELEGRAM_BOT_TOKEN".to_string(),
            allowed_chat_ids: Vec::new(),
            notify_chat_ids: None,
            poll_timeout_s: 25,
            max_per_chat_per_s: 1.0,
            max_global_per_s: 30.0,
        }
    }
}

impl TelegramConfig {
    /// The chats notifications go to: [`notify_chat_ids`](Self::notify_chat_ids), or the allowed
    /// chats when it is absent.
    pub fn notify_chats(&self) -> &[i64] {
        self.notify_chat_ids
            .as_deref()
            .unwrap_or(&self.allowed_chat_ids)
    }

    /// The bot token, read from the environment variable [`token_env`](Self::token_env).
    pub fn token(&self) -> Result<BotToken, TelegramError> {
        BotToken::from_env(&self.token_env)
    }

    /// Checks the values that cannot be used (rates that are not positive, a base URL that is
    /// not http(s)).
    pub fn validate(&self) -> Result<(), TelegramError> {
        let bad = |what: String| Err(TelegramError::Config(what));
        for (name, v) in [
            ("max_per_chat_per_s", self.max_per_chat_per_s),
            ("max_global_per_s", self.max_global_per_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!(
                    "telegram.{name} must be a positive number, got {v}"
                ));
            }
        }
        if !(1..=600).contains(&self.poll_timeout_s) {
            return bad(format!(
                "telegram.poll_timeout_s must be 1 to 600 (seconds of long polling), got {}",
                self.poll_timeout_s
            ));
        }
        match reqwest::Url::parse(&self.api_base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => bad(format!(
                "telegram.api_base must be an http(s) URL, got {:?}",
                self.api_base
            )),
        }
    }
}

/// A bot token. It is part of every request's URL path (`/bot<token>/method`), so it is kept out
/// of every log line, error message and `Debug` output: `Debug` prints `BotToken(<redacted>)` and
/// there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken(Arc<str>);

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

impl BotToken {
    /// A token given directly (tests; a secret store). Surrounding whitespace is trimmed; a token
    /// that is empty or holds characters that cannot be in a URL path segment is refused (the
    /// error does not repeat it).
    pub fn new(token: impl AsRef<str>) -> Result<Self, TelegramError> {
        let t = token.as_ref().trim();
        if t.is_empty() {
            return Err(TelegramError::InvalidToken("it is empty"));
        }
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
        {
            return Err(TelegramError::InvalidToken(
                "it may only hold ASCII letters, digits, ':', '_' and '-'",
            ));
        }
        Ok(BotToken(Arc::from(t)))
    }

    /// The token from the environment variable `var`; a missing or empty variable is an error
    /// naming it.
    pub fn from_env(var: &str) -> Result<Self, TelegramError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => BotToken::new(v),
            _ => Err(TelegramError::MissingToken {
                var: var.to_string(),
            }),
        }
    }

    /// The secret itself: only for building request URLs and for redacting.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: TelegramConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, TelegramConfig::default());
        assert_eq!(c.api_base, "https://api.telegram.org");
        assert_eq!(c.token_env, "TELEGRAM_BOT_TOKEN");
        assert_eq!(c.poll_timeout_s, 25);
        assert!(c.allowed_chat_ids.is_empty());
        assert!(c.validate().is_ok());
        let e = serde_json::from_str::<TelegramConfig>(r#"{"alowed_chat_ids":[1]}"#);
        assert!(e.is_err());
    }

    #[test]
    fn notify_chats_default_to_the_allowed_ones() {
        let mut c = TelegramConfig {
            allowed_chat_ids: vec![1, 2],
            ..Default::default()
        };
        assert_eq!(c.notify_chats(), &[1, 2]);
        c.notify_chat_ids = Some(vec![3]);
        assert_eq!(c.notify_chats(), &[3]);
        c.notify_chat_ids = Some(vec![]);
        assert!(c.notify_chats().is_empty());
    }

    #[test]
    fn validation() {
        let c = TelegramConfig {
            max_per_chat_per_s: 0.0,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_per_chat_per_s"));
        let c = TelegramConfig {
            api_base: "ftp://x".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn token_from_env_names_the_variable_and_is_redacted() {
        let var = "CRYPTOFLOW_TEST_TELEGRAM_TOKEN_SURELY_UNSET";
        let e = BotToken::from_env(var).unwrap_err();
        assert!(e.to_string().contains(var), "{e}");
        let t = BotToken::new(" 123:ABC-def_9\n").unwrap();
        assert_eq!(t.expose(), "123:ABC-def_9");
        assert_eq!(format!("{t:?}"), "BotToken(<redacted>)");
        let e = BotToken::new("123:abc/../x").unwrap_err();
        assert!(!e.to_string().contains("abc"), "{e}");
        assert!(BotToken::new("  ").is_err());
    }
}
