//! A fake Telegram Bot API on 127.0.0.1: `/bot<token>/getUpdates` (long polls; `offset`
//! confirms the updates below it; a newer `getUpdates` ends an older waiting one with 409 like
//! Telegram does), `sendMessage` (checks the length and, with `parse_mode` HTML, that the text
//! parses), `answerCallbackQuery`; a wrong token gets 401. Tests queue updates, script errors
//! (429 with `retry_after`, 409, …) and read what the bot sent, with arrival times.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One message the bot sent.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    /// `(label, callback_data)` of every inline button, row by row.
    pub buttons: Vec<(String, String)>,
    /// When the request arrived.
    pub at: Instant,
}

/// `(chat_id, text, buttons)` of a delivered message.
pub type Sent = (i64, String, Vec<(String, String)>);

/// One `sendMessage` request, answered or refused.
#[derive(Debug, Clone)]
pub struct SendAttempt {
    pub chat_id: i64,
    pub text: String,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct FakeState {
    /// Updates not confirmed yet, by increasing id.
    pending: Vec<Value>,
    /// Every update ever queued.
    all: Vec<Value>,
    next_update_id: i64,
    next_message_id: i64,
    sent: Vec<SentMessage>,
    attempts: Vec<SendAttempt>,
    answered: Vec<(String, Option<String>)>,
    /// `offset` of every getUpdates request.
    poll_offsets: Vec<Option<i64>>,
    /// Generation of the newest getUpdates: an older one still waiting gets 409.
    poll_gen: u64,
    /// Scripted answers per method, used before the normal handling.
    injected: HashMap<String, VecDeque<(StatusCode, Value)>>,
    unauthorized: u64,
}

struct Inner {
    token: String,
    state: Mutex<FakeState>,
    /// Bumped on every change a waiting getUpdates may care about.
    changed: watch::Sender<u64>,
}

impl Inner {
    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A running fake Bot API.
#[derive(Clone)]
pub struct FakeTelegram {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FakeTelegram {
    /// Starts a fake that accepts `token`.
    pub async fn start(token: &str) -> FakeTelegram {
        let inner = Arc::new(Inner {
            token: token.to_string(),
            state: Mutex::new(FakeState {
                next_update_id: 1000,
                next_message_id: 1,
                ..Default::default()
            }),
            changed: watch::channel(0).0,
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(api).get(api))
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTelegram { addr, inner }
    }

    /// The `api_base` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn push(&self, make: impl FnOnce(i64, i64) -> Value) -> i64 {
        let id = {
            let mut st = self.inner.state.lock().unwrap();
            st.next_update_id += 1;
            st.next_message_id += 1;
            let (id, mid) = (st.next_update_id, st.next_message_id);
            let u = make(id, mid);
            st.pending.push(u.clone());
            st.all.push(u);
            id
        };
        self.inner.bump();
        id
    }

    /// Queues a text message from user `chat_id` in the private chat `chat_id`; its update id.
    pub fn push_message(&self, chat_id: i64, text: &str) -> i64 {
        self.push(|id, mid| {
            json!({"update_id": id, "message": {
                "message_id": mid, "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
                "from": {"id": chat_id, "is_bot": false, "first_name": "Test", "last_name": "User",
                         "username": format!("user{chat_id}")},
                "text": text,
                "entities": if text.starts_with('/') {
                    json!([{"type": "bot_command", "offset": 0,
                            "length": text.split_whitespace().next().unwrap_or("").encode_utf16().count()}])
                } else { json!([]) },
            }})
        })
    }

    /// Queues a press of a button with `data` under a bot message in chat `chat_id`; its update
    /// id. The callback query id is `cb<update id>`.
    pub fn push_callback(&self, chat_id: i64, data: &str) -> i64 {
        self.push(|id, mid| {
            json!({"update_id": id, "callback_query": {
                "id": format!("cb{id}"),
                "from": {"id": chat_id, "is_bot": false, "first_name": "Test", "username": format!("user{chat_id}")},
                "message": {"message_id": mid, "date": 1_700_000_000,
                            "chat": {"id": chat_id, "type": "private"}, "text": "Confirm?"},
                "chat_instance": "42",
                "data": data,
            }})
        })
    }

    /// As if the server had never seen an offset: every update ever queued is pending again.
    pub fn forget_confirmations(&self) {
        {
            let mut st = self.inner.state.lock().unwrap();
            st.pending = st.all.clone();
        }
        self.inner.bump();
    }

    /// The next call of `method` is answered `{"ok":false,"error_code":code,…}` with HTTP status
    /// `code` (and `parameters.retry_after` when given).
    pub fn inject_error(
        &self,
        method: &str,
        code: u16,
        description: &str,
        retry_after: Option<u64>,
    ) {
        let mut body = json!({"ok": false, "error_code": code, "description": description});
        if let Some(r) = retry_after {
            body["parameters"] = json!({ "retry_after": r });
        }
        self.inner
            .state
            .lock()
            .unwrap()
            .injected
            .entry(method.to_string())
            .or_default()
            .push_back((StatusCode::from_u16(code).unwrap(), body));
    }

    /// The next call of `method` gets `429 Too Many Requests` with `retry_after` seconds.
    pub fn inject_429(&self, method: &str, retry_after: u64) {
        self.inject_error(
            method,
            429,
            &format!("Too Many Requests: retry after {retry_after}"),
            Some(retry_after),
        );
    }

    /// `(chat_id, text, buttons)` of every delivered message, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent_messages()
            .into_iter()
            .map(|m| (m.chat_id, m.text, m.buttons))
            .collect()
    }

    /// Every delivered message with its arrival time.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.inner.state.lock().unwrap().sent.clone()
    }

    /// Every sendMessage request, refused ones too.
    pub fn send_attempts(&self) -> Vec<SendAttempt> {
        self.inner.state.lock().unwrap().attempts.clone()
    }

    /// `(callback_query_id, text)` of every answerCallbackQuery.
    pub fn answered(&self) -> Vec<(String, Option<String>)> {
        self.inner.state.lock().unwrap().answered.clone()
    }

    /// The `offset` of every getUpdates, in order.
    pub fn poll_offsets(&self) -> Vec<Option<i64>> {
        self.inner.state.lock().unwrap().poll_offsets.clone()
    }

    /// Requests refused for a wrong token.
    pub fn unauthorized(&self) -> u64 {
        self.inner.state.lock().unwrap().unauthorized
    }

    /// Waits until `n` messages were delivered (panics after `timeout`).
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.sent_messages();
            if sent.len() >= n {
                return sent;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} messages; got {sent:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` callback queries were answered (panics after `timeout`).
    pub async fn wait_answered(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<(String, Option<String>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.answered();
            if a.len() >= n {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} answers; got {a:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` getUpdates requests arrived (panics after `timeout`).
    pub async fn wait_polls(&self, n: usize, timeout: Duration) -> Vec<Option<i64>> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.poll_offsets();
            if p.len() >= n {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} polls; got {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn ok(result: Value) -> Response {
    reply(StatusCode::OK, json!({"ok": true, "result": result}))
}

fn bad_request(description: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")}),
    )
}

/// The call's parameters: the JSON body, or else the query string (values read as JSON when
/// they parse, like Telegram does).
fn params(query: HashMap<String, String>, body: &Bytes) -> Value {
    if !body.is_empty() {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            return v;
        }
    }
    Value::Object(
        query
            .into_iter()
            .map(|(k, v)| {
                let parsed = serde_json::from_str(&v).unwrap_or(Value::String(v));
                (k, parsed)
            })
            .collect(),
    )
}

/// Whether `text` parses as Telegram HTML: known tags only, `&` only in entities.
fn html_parses(text: &str) -> bool {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "span",
        "tg-spoiler",
        "blockquote",
        "tg-emoji",
    ];
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&', '>']) {
        let tail = &rest[i..];
        if tail.starts_with('>') {
            return false;
        }
        if tail.starts_with('&') {
            let Some(end) = tail.find(';') else {
                return false;
            };
            let name = &tail[1..end];
            let known = matches!(name, "lt" | "gt" | "amp" | "quot")
                || name.strip_prefix('#').is_some_and(|n| {
                    !n.is_empty()
                        && (n.chars().all(|c| c.is_ascii_digit())
                            || n.strip_prefix('x').is_some_and(|h| {
                                !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())
                            }))
                });
            if !known {
                return false;
            }
            rest = &tail[end + 1..];
        } else {
            let Some(end) = tail.find('>') else {
                return false;
            };
            let inner = tail[1..end].trim_start_matches('/');
            let name = inner.split_whitespace().next().unwrap_or("");
            if !TAGS.contains(&name) {
                return false;
            }
            rest = &tail[end + 1..];
        }
    }
    true
}

async fn api(
    State(f): State<Arc<Inner>>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if bot.strip_prefix("bot") != Some(f.token.as_str()) {
        f.state.lock().unwrap().unauthorized += 1;
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    }
    let p = params(query, &body);
    let injected = f
        .state
        .lock()
        .unwrap()
        .injected
        .get_mut(&method)
        .and_then(VecDeque::pop_front);
    match method.as_str() {
        "getUpdates" => get_updates(&f, &p, injected).await,
        "sendMessage" => send_message(&f, &p, injected),
        "answerCallbackQuery" => {
            if let Some((status, body)) = injected {
                return reply(status, body);
            }
            let Some(id) = p["callback_query_id"].as_str() else {
                return bad_request("callback_query_id is required");
            };
            let text = p["text"].as_str().map(str::to_string);
            f.state
                .lock()
                .unwrap()
                .answered
                .push((id.to_string(), text));
            ok(json!(true))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ),
    }
}

async fn get_updates(f: &Arc<Inner>, p: &Value, injected: Option<(StatusCode, Value)>) -> Response {
    let offset = p["offset"].as_i64();
    f.state.lock().unwrap().poll_offsets.push(offset);
    if let Some((status, body)) = injected {
        return reply(status, body);
    }
    if let Some(types) = p["allowed_updates"].as_array() {
        let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        assert_eq!(types, ["message", "callback_query"], "allowed_updates");
    }
    let timeout = Duration::from_secs(p["timeout"].as_u64().unwrap_or(0));
    let mut rx = f.changed.subscribe();
    let gen = {
        let mut st = f.state.lock().unwrap();
        st.poll_gen += 1;
        if let Some(o) = offset {
            st.pending
                .retain(|u| u["update_id"].as_i64().is_some_and(|id| id >= o));
        }
        st.poll_gen
    };
    f.bump();
    rx.borrow_and_update();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        {
            let st = f.state.lock().unwrap();
            if st.poll_gen != gen {
                return reply(
                    StatusCode::CONFLICT,
                    json!({"ok": false, "error_code": 409, "description":
                        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}),
                );
            }
            let fresh: Vec<Value> = st
                .pending
                .iter()
                .filter(|u| {
                    offset.is_none_or(|o| u["update_id"].as_i64().is_some_and(|id| id >= o))
                })
                .take(100)
                .cloned()
                .collect();
            if !fresh.is_empty() {
                return ok(Value::Array(fresh));
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return ok(json!([]));
        }
    }
}

fn send_message(f: &Arc<Inner>, p: &Value, injected: Option<(StatusCode, Value)>) -> Response {
    let at = Instant::now();
    let chat_id = p["chat_id"].as_i64().unwrap_or(0);
    let text = p["text"].as_str().unwrap_or("").to_string();
    let parse_mode = p["parse_mode"].as_str().map(str::to_string);
    let refusal = if let Some((status, body)) = injected {
        Some(reply(status, body))
    } else if chat_id == 0 {
        Some(bad_request("chat not found"))
    } else if text.trim().is_empty() {
        Some(bad_request("message text is empty"))
    } else if text.encode_utf16().count() > 4096 {
        Some(bad_request("message is too long"))
    } else if parse_mode.as_deref() == Some("HTML") && !html_parses(&text) {
        Some(bad_request("can't parse entities"))
    } else {
        None
    };
    let status = refusal.as_ref().map_or(200, |r| r.status().as_u16());
    let mut st = f.state.lock().unwrap();
    st.attempts.push(SendAttempt {
        chat_id,
        text: text.clone(),
        status,
        at,
    });
    if let Some(r) = refusal {
        return r;
    }
    let buttons = p["reply_markup"]["inline_keyboard"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(|b| {
                    (
                        b["text"].as_str().unwrap_or("").to_string(),
                        b["callback_data"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    st.next_message_id += 1;
    let message_id = st.next_message_id;
    st.sent.push(SentMessage {
        chat_id,
        text: text.clone(),
        parse_mode,
        buttons,
        at,
    });
    ok(json!({"message_id": message_id, "date": 1_700_000_000,
              "chat": {"id": chat_id, "type": "private"}, "text": text}))
}
