//! `/ws`: live pushes of committed records to subscribed clients.
//!
//! A client subscribes with `?symbols=BTCUSDT,ETHUSDT&kinds=trades,candles` on the URL or with a
//! text message `{"op":"subscribe","symbols":[…],"kinds":[…]}` (no symbols: all; no kinds: all;
//! each subscribe replaces the last), answered by `{"type":"subscribed",…}`. Every push is an
//! envelope `{"kind", "symbol", "committed_at_us", "data"}` whose `data` is the record's Kafka
//! topic message ([`super::push::Push`]).
//!
//! The pipeline never waits for a client: each client has a bounded queue of its own
//! ([`super::fanout`]); a client whose queue fills is closed with code [`CLOSE_TOO_SLOW`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::fanout::{ClientFeed, Subscription};
use super::push::Push;
use super::status::AppState;

/// Close code for a client that fell behind its buffer (application range 4000–4999).
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code for a client message that is not a subscription.
pub const CLOSE_POLICY: u16 = 1008;
/// Largest client message accepted.
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// The reply to a subscription.
fn describe(sub: &Subscription) -> serde_json::Value {
    json!({
        "type": "subscribed",
        "symbols": sub.symbols,
        "kinds": sub.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
    })
}

/// A client's message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    op: String,
    #[serde(default)]
    symbols: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
}

/// The upgrade: the URL's subscription is checked before the handshake (400 when wrong).
pub async fn upgrade(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if let Some(k) = params
        .keys()
        .find(|k| !["symbols", "kinds", "access_token"].contains(&k.as_str()))
    {
        return Err(ApiError::bad(
            k,
            "unknown parameter (allowed: symbols, kinds)",
        ));
    }
    let list = |k: &str| -> Vec<String> {
        params
            .get(k)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (symbols, kinds) = (list("symbols"), list("kinds"));
    let sub = Subscription::parse(
        symbols.iter().map(String::as_str),
        kinds.iter().map(String::as_str),
    )
    .map_err(|e| ApiError::bad("kinds", e))?;
    let feed = state.board.subscribe(sub.clone());
    // Small buffers: a thousand clients must not cost 128 KiB each (tungstenite's default).
    Ok(ws
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| client(socket, sub, feed)))
}

/// One client: its pushes until it leaves or falls behind. Everything queued since its last
/// wake-up goes out together, with one flush.
async fn client(mut socket: WebSocket, mut sub: Subscription, feed: ClientFeed) {
    let clients = ::metrics::gauge!("cryptoflow_ws_clients");
    clients.increment(1.0);
    let pushed = ::metrics::counter!("cryptoflow_ws_pushes_total");
    let latency = ::metrics::histogram!("cryptoflow_ws_push_seconds");
    if socket
        .send(Message::Text(describe(&sub).to_string().into()))
        .await
        .is_err()
    {
        clients.decrement(1.0);
        return;
    }
    // Reused between wake-ups: no allocation per push or per batch once grown.
    let mut batch: Vec<Arc<Push>> = Vec::new();
    loop {
        tokio::select! {
            more = feed.next_batch(&mut batch) => {
                if !more {
                    // Dropped from the fan-out: its queue was full.
                    if feed.overflowed() {
                        ::metrics::counter!("cryptoflow_ws_slow_clients_closed_total").increment(1);
                        let frame = CloseFrame {
                            code: CLOSE_TOO_SLOW,
                            reason: format!(
                                "client too slow: more than {} pushes queued",
                                feed.capacity()
                            )
                            .into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                    } else {
                        let _ = socket.send(Message::Close(None)).await;
                    }
                    break;
                }
                // Everything queued goes out with one flush; each frame shares the push's
                // bytes with every other client's.
                let mut failed = false;
                for p in &batch {
                    if socket.feed(Message::Text(p.json.clone())).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || socket.flush().await.is_err() {
                    break;
                }
                let now = Instant::now();
                pushed.increment(batch.len() as u64);
                for p in batch.drain(..) {
                    latency.record(now.saturating_duration_since(p.committed).as_secs_f64());
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let reply = match serde_json::from_str::<ClientMessage>(&t) {
                        Ok(m) if m.op == "subscribe" => Subscription::parse(
                            m.symbols.iter().map(String::as_str),
                            m.kinds.iter().map(String::as_str),
                        )
                        .map(|s| {
                            feed.resubscribe(s.clone());
                            sub = s;
                            describe(&sub)
                        }),
                        Ok(m) => Err(format!("unknown op `{}` (known: subscribe)", m.op)),
                        Err(e) => Err(format!("not a subscription: {e}")),
                    };
                    let text = match reply {
                        Ok(v) => v.to_string(),
                        Err(e) => json!({ "type": "error", "error": e }).to_string(),
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let frame = CloseFrame {
                        code: CLOSE_POLICY,
                        reason: "binary messages are not accepted".into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    clients.decrement(1.0);
}
