//! The executor's controls: the requests an operator may make of a running `cryptoflow execute`
//! (status, positions, PnL, pause, resume, the kill switch, text orders and their confirmation),
//! from three places that all end in the same code:
//!
//! - the control API, HTTP on `[trading.execute] control` (127.0.0.1:8091 by default), bearer
//!   token from `CRYPTOFLOW_CONTROL_TOKEN` (required when the address is not loopback);
//! - `cryptoflow control …`, a client of that API;
//! - Telegram (`/status`, `/pause`, `/kill`, a text order and its confirm button).
//!
//! Every request goes through one channel to the executor's loop, which owns the positions and
//! the journal. The kill switch also takes a faster path: [`Controls::call`] raises a shared flag
//! at once, which stops any order not yet on the wire, and wakes a task that cancels the open
//! orders on the exchange while the loop may still be waiting on an answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cryptoflow_operators::trading::conditional::Origin;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

/// Environment variable holding the control API's bearer token.
pub const TOKEN_ENV: &str = "CRYPTOFLOW_CONTROL_TOKEN";

pub use cryptoflow_operators::trading::command::Command;

/// The answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether it was done (a refused order, an unknown id, a question back: `false`).
    pub ok: bool,
    /// In words, for a person (Telegram, the CLI).
    pub message: String,
    /// The same, as data (the API).
    pub data: serde_json::Value,
    /// A proposal waiting for confirmation: its id (Telegram shows confirm buttons).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirm: Option<String>,
}

impl Reply {
    /// A reply that did what was asked.
    pub fn ok(message: impl Into<String>, data: serde_json::Value) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            data,
            confirm: None,
        }
    }

    /// A reply that did not.
    pub fn refused(message: impl Into<String>) -> Reply {
        let message = message.into();
        Reply {
            ok: false,
            data: serde_json::json!({ "error": message }),
            message,
            confirm: None,
        }
    }
}

/// A command with the way back to its caller.
#[derive(Debug)]
pub struct Call {
    /// What is asked.
    pub request: Command,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// The callers' side of the controls (cheap to clone).
#[derive(Clone, Debug)]
pub struct Controls {
    tx: mpsc::Sender<Call>,
    killed: Arc<AtomicBool>,
    kill: Arc<Notify>,
}

impl Controls {
    /// Controls and the receiver the executor's loop reads.
    pub fn new() -> (Controls, mpsc::Receiver<Call>) {
        let (tx, rx) = mpsc::channel(64);
        (
            Controls {
                tx,
                killed: Arc::new(AtomicBool::new(false)),
                kill: Arc::new(Notify::new()),
            },
            rx,
        )
    }

    /// Whether the kill switch was pulled (by any caller).
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// The shared kill flag (the executor checks it before every order it sends).
    pub fn kill_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.killed)
    }

    /// Waits until the kill switch is pulled.
    pub async fn killed_wait(&self) {
        loop {
            let notified = self.kill.notified();
            if self.killed() {
                return;
            }
            notified.await;
        }
    }

    /// Pulls the kill switch: the flag goes up and the waiters of
    /// [`killed_wait`](Self::killed_wait) wake, before any request is handled.
    pub fn pull_kill(&self) {
        if !self.killed.swap(true, Ordering::SeqCst) {
            tracing::warn!("Kill switch pulled.");
        }
        self.kill.notify_waiters();
    }

    /// Sends a request to the executor and waits for its reply. The kill switch takes effect
    /// before the request is queued.
    pub async fn call(&self, request: Command) -> Reply {
        if request == Command::Kill {
            self.pull_kill();
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Call { request, reply }).await.is_err() {
            return Reply::refused("the executor is stopping");
        }
        rx.await
            .unwrap_or_else(|_| Reply::refused("the executor is stopping"))
    }
}

/// The control API's address and token: an error when the address is not loopback and no token
/// is set.
pub fn control_access(addr: &str, token: Option<String>) -> Result<(SocketAddr, Option<String>)> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("the control address `{addr}` is not ip:port"))?;
    let token = token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if token.is_none() && !addr.ip().is_loopback() {
        bail!("the control API on {addr} is not on a loopback address: set a bearer token in {TOKEN_ENV}");
    }
    Ok((addr, token))
}

#[derive(Clone)]
struct Api {
    controls: Controls,
    token: Option<String>,
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

/// Serves the control API on `addr` until the returned task is aborted; returns the bound
/// address (the real port when 0 was asked).
pub async fn serve(
    addr: SocketAddr,
    token: Option<String>,
    controls: Controls,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let api = Api { controls, token };
    let mut app = Router::new();
    for (name, _) in cryptoflow_operators::trading::command::NAMED {
        let Some(command) = Command::named(name) else {
            continue;
        };
        let (method, path, _) = route(&command);
        let orders = command == Command::Orders;
        let handler = move |s, h| simple(s, h, command.clone());
        let mut methods = if method == reqwest::Method::GET {
            get(handler)
        } else {
            post(handler)
        };
        if orders {
            // A text order: `POST /orders {"text": …}`.
            methods = methods.post(text);
        }
        app = app.route(&path, methods);
    }
    let app = app
        .route("/orders/{id}/confirm", post(confirm))
        .route("/orders/{id}/reject", post(reject))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (the control API)"))?;
    let bound = listener.local_addr().context("the control API's address")?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "The control API stopped.");
        }
    });
    tracing::info!(%bound, "Control API listening.");
    Ok((bound, task))
}

fn authorized(api: &Api, headers: &HeaderMap) -> bool {
    let Some(expected) = &api.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    // Compared without an early exit on the first differing byte.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn answer(api: &Api, headers: &HeaderMap, request: Command) -> Response {
    if !authorized(api, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(Reply::refused("a valid bearer token is required")),
        )
            .into_response();
    }
    let reply = api.controls.call(request).await;
    let status = if reply.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(reply)).into_response()
}

/// `GET /health`: the process and its control API are up. No token: it tells nothing but that.
async fn health() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// How long `GET /ready` waits for the executor's loop to answer.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /ready`: the executor's loop answers `status` within [`READY_WAIT`] (the journal is
/// recovered and no order hangs it); 503 otherwise. No token: only the status code is told.
async fn ready(State(api): State<Api>) -> Response {
    match tokio::time::timeout(READY_WAIT, api.controls.call(Command::Status)).await {
        Ok(reply) if reply.ok => (StatusCode::OK, "ready\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

async fn simple(State(api): State<Api>, headers: HeaderMap, request: Command) -> Response {
    answer(&api, &headers, request).await
}

async fn text(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Json<TextBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => {
            let request = Command::Text {
                text: body.text,
                origin: Origin {
                    channel: "api".into(),
                    user: "api".into(),
                },
            };
            answer(&api, &headers, request).await
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(Reply::refused(format!(
                "the body must be JSON {{\"text\": \"…\"}}: {e}"
            ))),
        )
            .into_response(),
    }
}

async fn confirm(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    answer(&api, &headers, Command::Confirm { id }).await
}

async fn reject(State(api): State<Api>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    answer(&api, &headers, Command::Reject { id }).await
}

/// The control API's method and path of `command`, and the JSON body it sends: `GET /name` for
/// a command that only reads, `POST /name` for one that acts, `POST /orders {"text": …}` for a
/// text order, `POST /orders/{id}/confirm` and `…/reject` for a proposal.
pub fn route(command: &Command) -> (reqwest::Method, String, Option<serde_json::Value>) {
    match command {
        Command::Text { text, .. } => (
            reqwest::Method::POST,
            "/orders".to_string(),
            Some(serde_json::json!({ "text": text })),
        ),
        Command::Confirm { id } => (reqwest::Method::POST, format!("/orders/{id}/confirm"), None),
        Command::Reject { id } => (reqwest::Method::POST, format!("/orders/{id}/reject"), None),
        named if named.reads_only() => (reqwest::Method::GET, format!("/{}", named.name()), None),
        named => (reqwest::Method::POST, format!("/{}", named.name()), None),
    }
}

/// `cryptoflow control`: sends one command to a running executor's control API and returns its
/// reply (the token from [`TOKEN_ENV`] when set).
pub async fn client(base: &str, request: &Command) -> Result<Reply> {
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let (method, path, body) = route(request);
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(body) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        if !token.trim().is_empty() {
            req = req.bearer_auth(token.trim());
        }
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("no executor answers at {base}"))?;
    let status = resp.status();
    let text = resp.text().await.context("read the executor's answer")?;
    serde_json::from_str(&text)
        .with_context(|| format!("the executor answered {status} with: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_token() {
        assert!(control_access("0.0.0.0:8091", None).is_err());
        assert!(control_access("0.0.0.0:8091", Some(" ".into())).is_err());
        assert!(control_access("0.0.0.0:8091", Some("t".into())).is_ok());
        assert!(control_access("127.0.0.1:8091", None).is_ok());
        assert!(control_access("localhost", None).is_err());
    }

    #[test]
    fn routes_of_the_commands() {
        use reqwest::Method;
        let r = |c: Command| {
            let (m, p, b) = route(&c);
            (m, p, b.map(|b| b.to_string()))
        };
        assert_eq!(r(Command::Status), (Method::GET, "/status".into(), None));
        assert_eq!(r(Command::Orders), (Method::GET, "/orders".into(), None));
        assert_eq!(r(Command::Kill), (Method::POST, "/kill".into(), None));
        assert_eq!(r(Command::Pause), (Method::POST, "/pause".into(), None));
        assert_eq!(
            r(Command::Text {
                text: "buy 1 BTC".into(),
                origin: Origin {
                    channel: "cli".into(),
                    user: "cli".into()
                }
            }),
            (
                Method::POST,
                "/orders".into(),
                Some(r#"{"text":"buy 1 BTC"}"#.into())
            )
        );
        assert_eq!(
            r(Command::Confirm { id: "x1".into() }),
            (Method::POST, "/orders/x1/confirm".into(), None)
        );
    }

    #[tokio::test]
    async fn kill_raises_the_flag_before_the_loop_answers() {
        let (controls, mut rx) = Controls::new();
        let waiter = {
            let c = controls.clone();
            tokio::spawn(async move { c.killed_wait().await })
        };
        let c = controls.clone();
        let call = tokio::spawn(async move { c.call(Command::Kill).await });
        // The flag is up and the waiter woken while the request still waits in the channel.
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(controls.killed());
        let got = rx.recv().await.expect("queued");
        assert_eq!(got.request, Command::Kill);
        got.reply
            .send(Reply::ok("killed", serde_json::Value::Null))
            .expect("reply");
        assert!(call.await.expect("task").ok);
    }

    #[tokio::test]
    async fn health_and_ready_need_no_token_and_ready_asks_the_loop() {
        let (controls, mut rx) = Controls::new();
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (bound, task) = serve(addr, Some("secret".into()), controls)
            .await
            .expect("serve");
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("http://{bound}{path}")).send();
        assert_eq!(get("/health").await.expect("health").status(), 200);
        // The orders and the status themselves still need the token.
        assert_eq!(get("/status").await.expect("status").status(), 401);
        // A loop that does not answer: not ready (after the wait), though alive.
        let hung = get("/ready").await.expect("ready");
        assert_eq!(hung.status(), 503);
        // The loop answers: ready.
        let answering = tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                let ok = call.request == Command::Status;
                let reply = match ok {
                    true => Reply::ok("up", serde_json::Value::Null),
                    false => Reply::refused("unexpected"),
                };
                let _ = call.reply.send(reply);
            }
        });
        // The call the hung probe left in the channel is answered first; then ours.
        assert_eq!(get("/ready").await.expect("ready").status(), 200);
        task.abort();
        answering.abort();
    }
}
