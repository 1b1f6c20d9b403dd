//! The user data stream: a listen key, a WebSocket at `{ws_base}/ws/{listenKey}`, keepalives,
//! and the account's execution reports turned into [`Fill`]s.

use std::time::Duration;

use cryptoflow_operators::model::{Millis, Side, Symbol};
use cryptoflow_operators::trading::Fill;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::client::{local_ms, BinanceOrders};
use super::error::OrderError;
use super::types::{
    dec_field, i64_field, quote_fee, side_field, str_field, symbol_field, u64_field, Commission,
    OrderStatus,
};

/// One `executionReport` of the user data stream (the fields cryptoflow reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    /// `E`: event time, ms.
    pub event_time: Millis,
    /// `s`: symbol.
    pub symbol: Symbol,
    /// `c`: client order id (for a cancel, the cancel request's own id).
    pub client_order_id: String,
    /// `C`: the cancelled order's client id (empty unless cancelled).
    pub orig_client_order_id: String,
    /// `S`: side.
    pub side: Side,
    /// `o`: order type (`MARKET`, `LIMIT`, …).
    pub order_type: String,
    /// `x`: execution type (`NEW`, `TRADE`, `CANCELED`, `REJECTED`, `EXPIRED`, …).
    pub execution_type: String,
    /// `X`: the order's status after this event.
    pub status: OrderStatus,
    /// `r`: reject reason (`NONE` unless rejected).
    pub reject_reason: String,
    /// `i`: Binance's order id.
    pub order_id: u64,
    /// `l`: quantity of this execution.
    pub last_qty: Decimal,
    /// `L`: price of this execution.
    pub last_price: Decimal,
    /// `z`: cumulative filled quantity of the order.
    pub cumulative_qty: Decimal,
    /// `n`: commission of this execution.
    pub commission: Decimal,
    /// `N`: its asset (`None` when no commission).
    pub commission_asset: Option<String>,
    /// `T`: transaction time, ms.
    pub transaction_time: Millis,
    /// `t`: trade id (`-1` unless a trade).
    pub trade_id: i64,
}

impl ExecutionReport {
    /// Reads an `executionReport` event.
    pub fn from_json(v: &Value) -> Result<Self, OrderError> {
        let text = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(ExecutionReport {
            event_time: i64_field(v, "E")?,
            symbol: symbol_field(v, "s")?,
            client_order_id: str_field(v, "c")?.to_string(),
            orig_client_order_id: text("C"),
            side: side_field(v, "S")?,
            order_type: text("o"),
            execution_type: str_field(v, "x")?.to_string(),
            status: OrderStatus::parse(str_field(v, "X")?),
            reject_reason: text("r"),
            order_id: u64_field(v, "i")?,
            last_qty: dec_field(v, "l")?,
            last_price: dec_field(v, "L")?,
            cumulative_qty: dec_field(v, "z")?,
            commission: dec_field(v, "n").unwrap_or(Decimal::ZERO),
            commission_asset: v.get("N").and_then(Value::as_str).map(str::to_string),
            transaction_time: i64_field(v, "T")?,
            trade_id: i64_field(v, "t").unwrap_or(-1),
        })
    }

    /// The client id of the order this report is about: `C` on a cancel (where `c` is the
    /// cancel's own id), else `c`. It is the intent's id for orders cryptoflow placed.
    pub fn intent_id(&self) -> &str {
        if self.orig_client_order_id.is_empty() {
            &self.client_order_id
        } else {
            &self.orig_client_order_id
        }
    }

    /// The fill of a `TRADE` execution (`None` for other execution types). Its fee is the
    /// commission when charged in `quote_asset`, else 0 (the raw commission is returned
    /// beside it; see [`OrderOutcome`](super::OrderOutcome)).
    pub fn to_fill(&self, quote_asset: Option<&str>) -> Option<(Fill, Commission)> {
        if self.execution_type != "TRADE" {
            return None;
        }
        let fill_id = u64::try_from(self.trade_id).ok()?;
        let asset = self.commission_asset.clone().unwrap_or_default();
        let fill = Fill {
            intent_id: self.intent_id().to_string(),
            symbol: self.symbol,
            side: self.side,
            qty: self.last_qty,
            price: self.last_price,
            fee: quote_fee(self.commission, &asset, quote_asset),
            ts: self.transaction_time,
            fill_id,
        };
        Some((
            fill,
            Commission {
                fill_id,
                amount: self.commission,
                asset,
            },
        ))
    }
}

/// What the user data stream delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// The stream is (re)connected with a fresh listen key. Events between a loss and this
    /// are not replayed by Binance: reconcile the open intents (query them) after it.
    Connected,
    /// One execution of an order (`executionReport` with `x == "TRADE"`).
    Fill {
        /// The fill (`intent_id` = the client order id, `fill_id` = the trade id).
        fill: Fill,
        /// Its commission as charged.
        commission: Commission,
        /// The whole report (order status after the fill, cumulative quantity…).
        report: ExecutionReport,
    },
    /// Any other execution report (`NEW`, `CANCELED`, `REJECTED`, `EXPIRED`…).
    Order(ExecutionReport),
    /// Any other event (`outboundAccountPosition`, `balanceUpdate`, `listStatus`, …), raw.
    Other {
        /// Its `e`.
        event_type: String,
        /// The event.
        raw: Value,
    },
}

/// A running user data stream task ([`BinanceOrders::spawn_user_stream`]). Dropping it stops
/// the task too.
#[derive(Debug)]
pub struct UserStream {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl UserStream {
    /// Stops the stream (closes the WebSocket and the listen key) and waits for the task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// True when the task has ended (stopped, or its receiver was dropped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Why a connected session ended.
enum SessionEnd {
    Stop,
    ReceiverGone,
    Lost(String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl BinanceOrders {
    /// Runs the user data stream on a task: gets a listen key, connects, keeps the key alive
    /// every `keepalive_interval_ms`, and sends every event on `tx`
    /// ([`UserEvent::Connected`] first, then fills and order updates). A lost connection (or
    /// an expired key) is reconnected with backoff and a **new** listen key. The task ends
    /// when stopped or when `tx`'s receiver is dropped.
    pub fn spawn_user_stream(&self, tx: mpsc::Sender<UserEvent>) -> UserStream {
        let (stop_tx, stop_rx) = watch::channel(false);
        let client = self.clone();
        let task = tokio::spawn(async move { run(client, tx, stop_rx).await });
        UserStream {
            stop: stop_tx,
            task,
        }
    }
}

/// True when stopped (or the stop handle dropped) within `delay`.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

async fn run(client: BinanceOrders, tx: mpsc::Sender<UserEvent>, mut stop: watch::Receiver<bool>) {
    let mut backoff = client.backoff();
    let timeout = Duration::from_millis(client.config().timeout_ms);
    loop {
        if *stop.borrow() {
            return;
        }
        let key = tokio::select! {
            r = client.new_listen_key() => r,
            _ = stop.changed() => return,
        };
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                let delay = backoff
                    .next_delay()
                    .max(e.retry_after(local_ms()).unwrap_or_default());
                tracing::warn!(error = %e, ?delay, "No listen key for the user data stream; retrying.");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let connected = tokio::select! {
            r = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(client.stream_url(&key))) => r,
            _ = stop.changed() => {
                let _ = client.close_listen_key(&key).await;
                return;
            }
        };
        let ws = match connected {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "User data stream connection failed; retrying.");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    ?delay,
                    "User data stream connection timed out; retrying."
                );
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!("User data stream connected.");
        if tx.send(UserEvent::Connected).await.is_err() {
            let _ = client.close_listen_key(&key).await;
            return;
        }
        let mut received = false;
        let end = session(&client, ws, &key, &tx, &mut stop, &mut received).await;
        match end {
            SessionEnd::Stop | SessionEnd::ReceiverGone => {
                let _ = client.close_listen_key(&key).await;
                tracing::info!("User data stream stopped.");
                return;
            }
            SessionEnd::Lost(reason) => {
                if received {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(reason = %reason, ?delay, "User data stream lost; reconnecting with a new listen key.");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
            }
        }
    }
}

async fn session(
    client: &BinanceOrders,
    mut ws: Ws,
    key: &str,
    tx: &mpsc::Sender<UserEvent>,
    stop: &mut watch::Receiver<bool>,
    received: &mut bool,
) -> SessionEnd {
    let every = Duration::from_millis(client.config().keepalive_interval_ms.max(1));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    let _ = ws.close(None).await;
                    return SessionEnd::Stop;
                }
            }
            _ = keepalive.tick() => match client.keepalive_listen_key(key).await {
                Ok(()) => tracing::debug!("Listen key kept alive."),
                Err(OrderError::Api { code: -1125, .. }) => {
                    let _ = ws.close(None).await;
                    return SessionEnd::Lost("the listen key no longer exists".into());
                }
                // The key lives 60 minutes: the next keepalive may still save it.
                Err(e) => tracing::warn!(error = %e, "Listen key keepalive failed."),
            },
            msg = ws.next() => {
                let text = match msg {
                    None => return SessionEnd::Lost("closed".into()),
                    Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                    Some(Ok(Message::Close(frame))) => {
                        return SessionEnd::Lost(format!("closed by the server: {frame:?}"))
                    }
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => continue,
                };
                *received = true;
                let (events, expired) = decode_frame(client, &text);
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        let _ = ws.close(None).await;
                        return SessionEnd::ReceiverGone;
                    }
                }
                if expired {
                    let _ = ws.close(None).await;
                    return SessionEnd::Lost("listenKeyExpired".into());
                }
            }
        }
    }
}

/// The events of one frame, and whether it said the listen key expired.
fn decode_frame(client: &BinanceOrders, text: &str) -> (Vec<UserEvent>, bool) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "Undecodable user data frame; skipped.");
            return (Vec::new(), false);
        }
    };
    // Combined streams wrap the event in `data`, the WebSocket API in `event`.
    let ev = v.get("data").or_else(|| v.get("event")).unwrap_or(&v);
    let kind = ev
        .get("e")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match kind.as_str() {
        "executionReport" => match ExecutionReport::from_json(ev) {
            Ok(report) => {
                let quote = client.quote_asset(&report.symbol);
                let event = match report.to_fill(quote.as_deref()) {
                    Some((fill, commission)) => {
                        tracing::info!(client_order_id = %fill.intent_id, trade_id = fill.fill_id, qty = %fill.qty, price = %fill.price, "Fill.");
                        UserEvent::Fill {
                            fill,
                            commission,
                            report,
                        }
                    }
                    None => UserEvent::Order(report),
                };
                (vec![event], false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Undecodable executionReport; skipped.");
                (Vec::new(), false)
            }
        },
        "listenKeyExpired" => (
            vec![UserEvent::Other {
                event_type: kind,
                raw: ev.clone(),
            }],
            true,
        ),
        _ => (
            vec![UserEvent::Other {
                event_type: kind,
                raw: ev.clone(),
            }],
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_trade_report_is_a_fill() {
        // Binance's documented executionReport, made a TRADE.
        let v: Value = serde_json::from_str(
            r#"{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW",
            "S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000",
            "F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,
            "l":"0.40000000","z":"0.40000000","L":"0.10264410","n":"0.00004106","N":"BTC",
            "T":1499405658657,"t":77,"I":8641984,"w":false,"m":true,"M":true,"O":1499405658657,
            "Z":"0.04105764","Y":"0.04105764","Q":"0.00000000","W":1499405658657,"V":"NONE"}"#,
        )
        .unwrap();
        let r = ExecutionReport::from_json(&v).unwrap();
        let (fill, c) = r.to_fill(Some("BTC")).unwrap();
        assert_eq!(fill.intent_id, "mUvoqJxFIILMdfAW5iGSOW");
        assert_eq!(fill.qty, Decimal::from_str("0.4").unwrap());
        assert_eq!(fill.price, Decimal::from_str("0.1026441").unwrap());
        assert_eq!(fill.fee, Decimal::from_str("0.00004106").unwrap());
        assert_eq!(fill.fill_id, 77);
        assert_eq!(fill.ts, 1499405658657);
        assert_eq!(c.asset, "BTC");
        // Commission in the base asset: no quote fee.
        let (fill, _) = r.to_fill(Some("USDT")).unwrap();
        assert_eq!(fill.fee, Decimal::ZERO);
    }

    #[test]
    fn a_cancel_report_names_the_original_order() {
        let v: Value = serde_json::from_str(
            r#"{"e":"executionReport","E":1,"s":"ETHBTC","c":"cancel-1","C":"intent-1","S":"SELL",
            "o":"LIMIT","x":"CANCELED","X":"CANCELED","r":"NONE","i":9,"l":"0","z":"0","L":"0",
            "n":"0","N":null,"T":2,"t":-1}"#,
        )
        .unwrap();
        let r = ExecutionReport::from_json(&v).unwrap();
        assert_eq!(r.intent_id(), "intent-1");
        assert!(r.to_fill(None).is_none());
        assert_eq!(r.status, OrderStatus::Canceled);
    }
}
