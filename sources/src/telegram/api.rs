//! The Bot API calls: `getUpdates`, `sendMessage`, `answerCallbackQuery`, their errors, and
//! keeping the token (which is part of the URL path) out of every error.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::BotToken;

/// Extra HTTP time on top of the long-poll timeout before a `getUpdates` request is abandoned.
pub(crate) const POLL_HTTP_MARGIN: Duration = Duration::from_secs(10);
/// HTTP timeout of the other calls.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong with the Telegram bot. No variant ever holds the bot token: request URLs are
/// not kept, and any text coming from the HTTP stack has the token replaced by `<token>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    /// The token's environment variable is not set (or empty).
    #[error("the Telegram bot token is missing: set the environment variable {var}")]
    MissingToken {
        /// The variable's name.
        var: String,
    },
    /// The token cannot be a Bot API token (it is not repeated here).
    #[error("the Telegram bot token is malformed: {0}")]
    InvalidToken(&'static str),
    /// An unusable setting.
    #[error("invalid Telegram configuration: {0}")]
    Config(String),
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("Telegram {method}: request failed: {reason}")]
    Transport {
        /// Bot API method.
        method: &'static str,
        /// What the HTTP client said (token redacted).
        reason: String,
    },
    /// The answer is not a Bot API response (a proxy's error page, …).
    #[error("Telegram {method}: HTTP {status} with an unreadable body: {reason}")]
    Decode {
        /// Bot API method.
        method: &'static str,
        /// HTTP status.
        status: u16,
        /// Why it could not be read.
        reason: String,
    },
    /// The token was refused (401, or 404 for a token of the wrong shape).
    #[error(
        "Telegram {method}: the bot token was refused ({code} {description}); check the token \
         variable"
    )]
    Unauthorized {
        /// Bot API method.
        method: &'static str,
        /// `error_code` (401 or 404).
        code: i64,
        /// Telegram's description.
        description: String,
    },
    /// 409 Conflict: another `getUpdates` with this token is running (only one bot instance may
    /// poll), or a webhook is set (remove it with `deleteWebhook` to use long polling).
    #[error(
        "Telegram {method}: 409 conflict: {description}. Another process is polling getUpdates \
         with this bot token, or a webhook is set (deleteWebhook removes it); only one poller \
         per token can run"
    )]
    Conflict {
        /// Bot API method.
        method: &'static str,
        /// Telegram's description.
        description: String,
    },
    /// 429 Too Many Requests.
    #[error("Telegram {method}: rate limited (429), retry after {retry_after:?}")]
    RateLimited {
        /// Bot API method.
        method: &'static str,
        /// `parameters.retry_after` or the `Retry-After` header, when given.
        retry_after: Option<Duration>,
    },
    /// Any other error answer (`{"ok":false,…}`), e.g. 400 "chat not found", 403 "bot was
    /// blocked by the user", 5xx.
    #[error("Telegram {method}: error {code}: {description}")]
    Api {
        /// Bot API method.
        method: &'static str,
        /// `error_code` (or the HTTP status).
        code: i64,
        /// Telegram's description.
        description: String,
    },
    /// A message without any text (Telegram refuses them).
    #[error("a Telegram message needs some text")]
    EmptyMessage,
    /// An inline button whose callback data is not 1 to 64 bytes.
    #[error("inline button callback data must be 1 to 64 bytes, got {len}")]
    InvalidButton {
        /// Its length in bytes.
        len: usize,
    },
    /// The send queue is full and holds no notification that could make room.
    #[error("the Telegram send queue is full ({capacity} messages)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The bot was shut down: nothing more is sent.
    #[error("the Telegram bot is shut down")]
    Closed,
}

impl TelegramError {
    /// Whether trying the same request again later can succeed (transport errors, unreadable
    /// answers, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            TelegramError::Transport { .. }
            | TelegramError::Decode { .. }
            | TelegramError::RateLimited { .. } => true,
            TelegramError::Api { code, .. } => *code >= 500,
            _ => false,
        }
    }
}

/// The answer envelope of every Bot API method.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Reads a `getUpdates` answer body: each update of an `ok` answer as [`read_update`] reads it,
/// or the error of an answer that is not `ok` or not JSON. Pure (no HTTP, no token), for tests
/// and fuzzing of the decoding.
///
/// [`read_update`]: super::input::read_update
pub fn read_updates(
    body: &[u8],
) -> Result<Vec<Result<super::input::ReadUpdate, String>>, TelegramError> {
    let decode = |reason: String| TelegramError::Decode {
        method: "getUpdates",
        status: 200,
        reason,
    };
    let env = serde_json::from_slice::<Envelope>(body).map_err(|e| decode(e.to_string()))?;
    if !env.ok {
        let retry_after = env
            .parameters
            .and_then(|p| p.retry_after)
            .map(Duration::from_secs);
        return Err(classify(
            "getUpdates",
            env.error_code.unwrap_or(200),
            env.description.unwrap_or_default(),
            retry_after,
        ));
    }
    match env.result.unwrap_or(Value::Null) {
        Value::Array(updates) => Ok(updates.into_iter().map(super::input::read_update).collect()),
        other => Err(decode(format!(
            "the result is not an array but {}",
            kind(&other)
        ))),
    }
}

/// A Bot API client: one HTTP connection pool, the base URL and the token. Cheap to clone.
/// `Debug` does not show the token.
#[derive(Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    base: String,
    token: BotToken,
}

impl std::fmt::Debug for TelegramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramClient")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

/// `s` with every occurrence of the token replaced by `<token>`.
pub(crate) fn redact(s: &str, token: &BotToken) -> String {
    let t = token.expose();
    if t.is_empty() {
        s.to_string()
    } else {
        s.replace(t, "<token>")
    }
}

impl TelegramClient {
    /// A client of the Bot API at `api_base` (e.g. `https://api.telegram.org`).
    pub fn new(api_base: &str, token: BotToken) -> Result<Self, TelegramError> {
        match reqwest::Url::parse(api_base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(TelegramError::Config(format!(
                    "telegram.api_base must be an http(s) URL, got {api_base:?}"
                )))
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cryptoflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TelegramError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(TelegramClient {
            http,
            base: api_base.trim_end_matches('/').to_string(),
            token,
        })
    }

    fn transport(&self, method: &'static str, e: reqwest::Error) -> TelegramError {
        let timeout = e.is_timeout();
        let e = e.without_url();
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        if timeout && !reason.contains("timed out") {
            reason.push_str(" (timed out)");
        }
        TelegramError::Transport {
            method,
            reason: redact(&reason, &self.token),
        }
    }

    /// Calls `method` with a JSON body; the `result` of an `ok` answer.
    pub async fn call(
        &self,
        method: &'static str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, TelegramError> {
        // The only place the token is used: the URL never leaves this function.
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let body = serde_json::to_vec(body).map_err(|e| TelegramError::Decode {
            method,
            status: 0,
            reason: e.to_string(),
        })?;
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport(method, e))?;
        let status = resp.status().as_u16();
        let header_retry = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| self.transport(method, e))?;
        match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(env) if env.ok => Ok(env.result.unwrap_or(Value::Null)),
            Ok(env) => {
                let code = env.error_code.unwrap_or(i64::from(status));
                let description = redact(&env.description.unwrap_or_default(), &self.token);
                let retry_after = env
                    .parameters
                    .and_then(|p| p.retry_after)
                    .or(header_retry)
                    .map(Duration::from_secs);
                Err(classify(method, code, description, retry_after))
            }
            Err(e) => match status {
                429 | 401 | 404 | 409 | 500..=599 => Err(classify(
                    method,
                    i64::from(status),
                    format!("HTTP {status}"),
                    header_retry.map(Duration::from_secs),
                )),
                _ => Err(TelegramError::Decode {
                    method,
                    status,
                    reason: redact(&e.to_string(), &self.token),
                }),
            },
        }
    }

    /// `getUpdates`: long polls for up to `timeout_s` seconds for updates from `offset` on
    /// (which confirms every update below it), messages and callback queries only.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_s: u64,
    ) -> Result<Vec<Value>, TelegramError> {
        let mut body = json!({
            "timeout": timeout_s,
            "allowed_updates": ["message", "callback_query"],
        });
        if let (Some(o), Some(m)) = (offset, body.as_object_mut()) {
            m.insert("offset".into(), json!(o));
        }
        let timeout = Duration::from_secs(timeout_s) + POLL_HTTP_MARGIN;
        match self.call("getUpdates", &body, timeout).await? {
            Value::Array(updates) => Ok(updates),
            other => Err(TelegramError::Decode {
                method: "getUpdates",
                status: 200,
                reason: format!("the result is not an array but {}", kind(&other)),
            }),
        }
    }

    /// `sendMessage` of `html` (parse mode HTML, at most 4096 characters) to `chat_id`, with
    /// the inline buttons `(label, callback_data)` in one row when there are any.
    pub async fn send_message(
        &self,
        chat_id: i64,
        html: &str,
        buttons: &[(String, String)],
    ) -> Result<(), TelegramError> {
        let mut body = json!({
            "chat_id": chat_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if !buttons.is_empty() {
            let row: Vec<Value> = buttons
                .iter()
                .map(|(label, data)| json!({"text": label, "callback_data": data}))
                .collect();
            if let Some(m) = body.as_object_mut() {
                m.insert("reply_markup".into(), json!({ "inline_keyboard": [row] }));
            }
        }
        self.call("sendMessage", &body, CALL_TIMEOUT)
            .await
            .map(drop)
    }

    /// `answerCallbackQuery`: stops the button's progress indicator, showing `text` when given.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), TelegramError> {
        let mut body = json!({ "callback_query_id": callback_query_id });
        if let (Some(t), Some(m)) = (text, body.as_object_mut()) {
            m.insert("text".into(), json!(t));
        }
        self.call("answerCallbackQuery", &body, CALL_TIMEOUT)
            .await
            .map(drop)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn classify(
    method: &'static str,
    code: i64,
    description: String,
    retry_after: Option<Duration>,
) -> TelegramError {
    match code {
        429 => TelegramError::RateLimited {
            method,
            retry_after,
        },
        401 | 404 => TelegramError::Unauthorized {
            method,
            code,
            description,
        },
        409 => TelegramError::Conflict {
            method,
            description,
        },
        _ => TelegramError::Api {
            method,
            code,
            description,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_debug() {
        let t = BotToken::new("123:SECRET").unwrap();
        assert_eq!(
            redact("GET http://x/bot123:SECRET/getMe", &t),
            "GET http://x/bot<token>/getMe"
        );
        let c = TelegramClient::new("http://127.0.0.1:1", t).unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify("getUpdates", 409, "x".into(), None),
            TelegramError::Conflict { .. }
        ));
        let e = classify("sendMessage", 429, "x".into(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        assert!(!classify("sendMessage", 400, "chat not found".into(), None).is_retryable());
        assert!(classify("sendMessage", 502, "bad gateway".into(), None).is_retryable());
        assert!(!classify("getMe", 401, "Unauthorized".into(), None).is_retryable());
    }

    #[tokio::test]
    async fn a_transport_error_does_not_show_the_token() {
        // Nothing listens on port 1.
        let t = BotToken::new("999:NOT-IN-ERRORS").unwrap();
        let c = TelegramClient::new("http://127.0.0.1:1", t).unwrap();
        let e = c.get_updates(None, 0).await.unwrap_err();
        assert!(matches!(e, TelegramError::Transport { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("Telegram getUpdates: request failed: "),
            "{e}"
        );
        assert!(!e.to_string().contains("NOT-IN-ERRORS"), "{e}");
        assert!(!format!("{e:?}").contains("NOT-IN-ERRORS"), "{e:?}");
    }
}
