//! `/ws`: live pushes of committed records to subscribed clients.
//!
//! A client subscribes with `?symbols=BTCUSDT,ETHUSDT&kinds=trades,candles` on the URL or with a
//! text message `{"op":"subscribe","symbols":[…],"kinds":[…]}` (no symbols: all; no kinds: all;
//! each subscribe replaces the last), answered by `{"type":"subscribed",…}`. Every push is the
//! record's JSON-lines form (a `"type"` tag and its fields).
//!
//! The pipeline never waits for a client: records go out through a bounded broadcast buffer,
//! and a client that falls further behind than the buffer is closed with code
//! [`CLOSE_TOO_SLOW`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::api::{ApiError, AppState};
use super::board::{Push, PushKind};

/// Close code for a client that fell behind its buffer (application range 4000–4999).
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code for a client message that is not a subscription.
pub const CLOSE_POLICY: u16 = 1008;
/// Largest client message accepted.
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

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

    fn describe(&self) -> serde_json::Value {
        json!({
            "type": "subscribed",
            "symbols": self.symbols,
            "kinds": self.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        })
    }
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
    let rx = state.board.subscribe();
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| client(socket, sub, rx)))
}

/// One client: pushes what it subscribed to until it leaves or falls behind.
async fn client(
    mut socket: WebSocket,
    mut sub: Subscription,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Push>>,
) {
    let clients = ::metrics::gauge!("cryptoflow_ws_clients");
    clients.increment(1.0);
    if socket
        .send(Message::Text(sub.describe().to_string().into()))
        .await
        .is_err()
    {
        clients.decrement(1.0);
        return;
    }
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                Ok(p) => {
                    if sub.wants(&p) {
                        if socket.send(Message::Text(p.json.to_string().into())).await.is_err() {
                            break;
                        }
                        ::metrics::counter!("cryptoflow_ws_pushes_total").increment(1);
                        ::metrics::histogram!("cryptoflow_ws_push_seconds")
                            .record(p.committed.elapsed().as_secs_f64());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    ::metrics::counter!("cryptoflow_ws_slow_clients_closed_total").increment(1);
                    let frame = CloseFrame {
                        code: CLOSE_TOO_SLOW,
                        reason: format!("client too slow: {missed} pushes missed").into(),
                    };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                Err(RecvError::Closed) => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
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
                            sub = s;
                            sub.describe()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn push(kind: PushKind, key: Option<&str>) -> Push {
        Push {
            kind,
            key: key.map(str::to_string),
            json: Arc::from("{}"),
            committed: Instant::now(),
        }
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
}
