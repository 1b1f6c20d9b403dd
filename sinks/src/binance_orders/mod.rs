//! The Binance spot order client: the executor's live broker.
//!
//! [`BinanceOrders`] places, queries and cancels orders over Binance's signed REST API
//! (`/api/v3/order`, `/api/v3/openOrders`, `/api/v3/myTrades`), reads symbol rules from
//! `/api/v3/exchangeInfo`, and runs the user data stream ([`BinanceOrders::spawn_user_stream`])
//! whose execution reports become [`Fill`](cryptoflow_operators::trading::Fill)s. Keys come from
//! the environment only ([`Credentials::from_env`]) and never reach a log line or a `Debug`
//! output.
//!
//! # Signing and time
//!
//! Signed requests carry every parameter in the query string, then `recvWindow` and
//! `timestamp`, then `signature` = lower-case hex of HMAC-SHA256(secret, query string) (with a
//! body, the query string immediately followed by the body, as Binance defines `totalParams`;
//! this client sends no body). Values are percent-encoded before signing, so the string signed
//! is byte for byte the string sent. The API key goes in the `X-MBX-APIKEY` header.
//! `timestamp` is local time plus the server-time offset measured by
//! [`BinanceOrders::sync_time`] (`GET /api/v3/time`, the server's clock taken as read at the
//! round trip's midpoint), synced before the first signed request; a `-1021` (timestamp outside
//! `recvWindow`, or more than 1 s ahead) resyncs and retries once — the request was refused,
//! not processed.
//!
//! # One order per intent
//!
//! The client order id (`newClientOrderId`) is the intent's id. After a send whose outcome is
//! unknown — a timeout or a dropped connection after sending, HTTP 5xx or 408, `-1007`
//! ("Timeout waiting for response from backend server. Send status unknown; execution status
//! unknown."), or a 2xx whose body cannot be read — the client never resends blindly:
//!
//! 1. wait `unknown_query_delay_ms`, then query `GET /api/v3/order?origClientOrderId=<id>`;
//! 2. found → that order is the outcome (`source == Query`, fills read from `myTrades`);
//! 3. `-2013 Order does not exist.` on `absent_checks` queries in a row → resend with the
//!    **same** client id, after a backoff, at most `max_attempts` sends in all;
//! 4. a query that fails, or sends exhausted → [`OrderError::Unknown`]: the executor keeps
//!    the intent as "sent, no answer" and calls [`BinanceOrders::reconcile`] (the same
//!    query-first flow) later and after a restart;
//! 5. once any send was unknown, every final failure of that call is `Unknown` too.
//!
//! Requests that were surely not processed are retried without a query: connection refused
//! (not sent), HTTP 429 (wait `Retry-After`, up to `max_retry_after_s`), `-1021` (resync once).
//! HTTP 418 (IP banned) returns [`OrderError::Banned`] and nothing at all is sent before the
//! ban's end. `-2010` ("Account has insufficient balance…" and the like) and `-1013`
//! ("Filter failure: …") are permanent rejections carrying Binance's message, except
//! `-2010 Duplicate order sent.`, which means the client id is taken: the order is read and
//! returned as the outcome.
//!
//! # Assumptions about Binance (from its documentation as remembered, not re-checked)
//!
//! - `newClientOrderId` is documented as "a unique id among **open** orders": a filled or
//!   cancelled order's id can be reused, and a resend of a filled market order would be a
//!   second order. The client therefore never relies on "Duplicate order sent." to prevent
//!   duplicates; the query before every resend does.
//! - An order sent just before a timeout may reach the matching engine after the first
//!   query answered `-2013`. The settle delay and the repeated absence checks make this
//!   unlikely, not impossible: Binance offers no way to fence an in-flight order.
//! - HTTP 5xx means "execution status unknown" (Binance: "It is important to NOT treat this as a
//!   failure operation"); a 429 request was not processed; a missing `Retry-After` is taken as
//!   1 s for a 429 and 120 s for a 418.
//! - `DELETE /api/v3/openOrders` with no open order answers `-2011` ("Unknown order sent."),
//!   read as an empty list.
//! - The listen-key endpoints (`/api/v3/userDataStream`) are the documented way of this
//!   brief; Binance has announced the WebSocket API's `userDataStream.subscribe` as their
//!   successor, so they may be retired.
//!
//! # Fees
//!
//! A fill's [`Fill::fee`](cryptoflow_operators::trading::Fill::fee) is in the quote asset: it is
//! the commission when `commissionAsset` is the symbol's quote asset (from
//! [`BinanceOrders::exchange_info`], else the symbol's suffix), and 0 otherwise (base asset or
//! BNB); the raw commission and its asset are kept beside it ([`Commission`]).

mod client;
mod error;
mod sign;
mod types;
mod user_stream;

use serde::{Deserialize, Serialize};

pub use client::BinanceOrders;
pub use error::{OrderError, RejectKind};
pub use sign::{decimal_param, sign, Credentials};
pub use types::{Commission, ExchangeInfo, OrderOutcome, OrderStatus, OutcomeSource, SymbolInfo};
pub use user_stream::{ExecutionReport, UserEvent, UserStream};

/// Configuration of the Binance order client. Keys are never in it: only the names of the
/// environment variables holding them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceOrdersConfig {
    /// REST base URL (`https://api.binance.com`; testnet `https://testnet.binance.vision`).
    pub rest_base: String,
    /// WebSocket base URL of the user data stream (`wss://stream.binance.com:9443`; testnet
    /// `wss://stream.testnet.binance.vision`).
    pub ws_base: String,
    /// `recvWindow` of signed requests, ms (at most 60 000).
    pub recv_window_ms: u64,
    /// Timeout of one HTTP request (and of the WebSocket connect), ms.
    pub timeout_ms: u64,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Environment variable holding the API secret.
    pub api_secret_env: String,
    /// Most sends of one order (and tries of one read), first included.
    pub max_attempts: u32,
    /// First retry delay, ms (doubling, with jitter).
    pub backoff_initial_ms: u64,
    /// Largest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Longest `Retry-After` of a 429 waited in place, s (a longer one fails with
    /// [`OrderError::RateLimited`]).
    pub max_retry_after_s: u64,
    /// Wait before querying an order whose send had no answer, and between absence checks, ms.
    pub unknown_query_delay_ms: u64,
    /// Consecutive `-2013` answers needed before an order counts as absent and is resent.
    pub absent_checks: u32,
    /// Interval of the listen key keepalive (`PUT /api/v3/userDataStream`), ms (30 minutes;
    /// the key expires after 60).
    pub keepalive_interval_ms: u64,
}

impl Default for BinanceOrdersConfig {
    fn default() -> Self {
        BinanceOrdersConfig {
            rest_base: "https://api.binance.com".into(),
            ws_base: "wss://stream.binance.com:9443".into(),
            recv_window_ms: 5_000,
            timeout_ms: 10_000,
            api_key_env: "BINANCE_API_KEY".into(),
            api_secret_env: "BINANCE_API_SECRET".into(),
            max_attempts: 3,
            backoff_initial_ms: 250,
            backoff_max_ms: 10_000,
            max_retry_after_s: 60,
            unknown_query_delay_ms: 1_000,
            absent_checks: 2,
            keepalive_interval_ms: 30 * 60 * 1_000,
        }
    }
}

impl BinanceOrdersConfig {
    /// The testnet's URLs, the rest default.
    pub fn testnet() -> Self {
        BinanceOrdersConfig {
            rest_base: "https://testnet.binance.vision".into(),
            ws_base: "wss://stream.testnet.binance.vision".into(),
            ..Self::default()
        }
    }

    /// Checks what cannot work: URLs without an `http(s)://` / `ws(s)://` scheme, a zero timeout
    /// or attempt count, a `recvWindow` of 0 or over 60 000 ms, empty variable names.
    pub fn validate(&self) -> Result<(), OrderError> {
        let bad = |m: String| Err(OrderError::Config(m));
        if !(self.rest_base.starts_with("http://") || self.rest_base.starts_with("https://")) {
            return bad(format!(
                "rest_base {:?} is not an http(s) URL",
                self.rest_base
            ));
        }
        if !(self.ws_base.starts_with("ws://") || self.ws_base.starts_with("wss://")) {
            return bad(format!("ws_base {:?} is not a ws(s) URL", self.ws_base));
        }
        if self.recv_window_ms == 0 || self.recv_window_ms > 60_000 {
            return bad(format!(
                "recv_window_ms {} is outside 1..=60000",
                self.recv_window_ms
            ));
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms is 0".into());
        }
        if self.max_attempts == 0 {
            return bad("max_attempts is 0".into());
        }
        if self.api_key_env.trim().is_empty() || self.api_secret_env.trim().is_empty() {
            return bad("api_key_env and api_secret_env must name variables".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let cfg: BinanceOrdersConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, BinanceOrdersConfig::default());
        assert_eq!(cfg.rest_base, "https://api.binance.com");
        assert_eq!(cfg.ws_base, "wss://stream.binance.com:9443");
        assert_eq!(cfg.recv_window_ms, 5000);
        assert_eq!(cfg.timeout_ms, 10000);
        assert_eq!(cfg.api_key_env, "BINANCE_API_KEY");
        assert_eq!(cfg.api_secret_env, "BINANCE_API_SECRET");
        assert!(cfg.validate().is_ok());
        let err = serde_json::from_str::<BinanceOrdersConfig>(r#"{"api_secret":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
        let cfg: BinanceOrdersConfig =
            serde_json::from_str(r#"{"rest_base":"https://testnet.binance.vision"}"#).unwrap();
        assert_eq!(cfg.rest_base, BinanceOrdersConfig::testnet().rest_base);
        let bad = BinanceOrdersConfig {
            recv_window_ms: 70_000,
            ..BinanceOrdersConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
