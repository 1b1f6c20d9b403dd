//! The errors of the order client, each classifying itself: retryable or not, and whether the
//! order's fate is unknown (the executor must [`reconcile`](super::BinanceOrders::reconcile)).

use std::time::Duration;

use cryptoflow_operators::model::Millis;

/// Why Binance refused to place an order (a permanent rejection: the order does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// `-2010` "Account has insufficient balance for requested action."
    InsufficientBalance,
    /// `-1013` "Filter failure: …" (LOT_SIZE, PRICE_FILTER, NOTIONAL, …).
    Filter,
    /// The request was not authorized: `-1022` (bad signature), `-2014`/`-2015` (API key).
    Auth,
    /// The client refused the intent before sending it (bad id, quantity, venue).
    Invalid,
    /// Any other rejection (`-2010` for another reason, `-1100`…`-1199` request errors).
    Other,
}

/// An error of the Binance order client.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A credential's environment variable is missing or empty.
    #[error("environment variable {var} is not set (the Binance API {what}); keys are read from the environment only")]
    MissingCredential {
        /// The variable that was read.
        var: String,
        /// `key` or `secret`.
        what: &'static str,
    },
    /// The configuration cannot work (a bad URL, a zero timeout, a recvWindow over 60 000).
    #[error("bad Binance order client configuration: {0}")]
    Config(String),
    /// Binance (or the client, before sending) refused the order: it was **not** placed.
    #[error("order rejected ({code}): {msg}")]
    Rejected {
        /// Binance's error code (0 when the client refused it before sending).
        code: i64,
        /// Binance's message, verbatim.
        msg: String,
        /// What kind of rejection.
        kind: RejectKind,
    },
    /// The symbol's `exchangeInfo` status is not `TRADING`: no order is sent.
    #[error("symbol {symbol} is not trading (status {status})")]
    NotTrading {
        /// The symbol.
        symbol: String,
        /// Its status (`BREAK`, `HALT`, …).
        status: String,
    },
    /// `-2013` / `-2011`: no order with that id exists.
    #[error("no order {client_order_id} on {symbol}")]
    NoSuchOrder {
        /// The symbol.
        symbol: String,
        /// The client order id asked for.
        client_order_id: String,
    },
    /// The request was rate limited (HTTP 429) longer than the client waits in place; it was
    /// not processed.
    #[error("rate limited by Binance; retry after {retry_after:?}")]
    RateLimited {
        /// The `Retry-After` asked for.
        retry_after: Duration,
    },
    /// HTTP 418: the IP is banned until `until` (Unix ms). No request is sent before then.
    #[error("IP banned by Binance until {until} (Unix ms)")]
    Banned {
        /// End of the ban, Unix ms (now + `Retry-After`).
        until: Millis,
    },
    /// The order may or may not exist: it was (maybe) sent, and the exchange could not tell
    /// whether it was placed. Never resend it blindly: resolve it with
    /// [`reconcile`](super::BinanceOrders::reconcile) later.
    #[error("outcome of order {client_order_id} on {symbol} unknown: {reason}")]
    Unknown {
        /// The symbol.
        symbol: String,
        /// The client order id (the intent's id).
        client_order_id: String,
        /// What happened.
        reason: String,
    },
    /// Binance could not be reached, or kept failing, for a request that placed nothing.
    #[error("Binance unavailable: {0}")]
    Unavailable(String),
    /// Binance answered an error to a request that is not an order placement.
    #[error("Binance refused the request (HTTP {status}, code {code}): {msg}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Binance's error code (0 when the body was not Binance's error JSON).
        code: i64,
        /// Binance's message.
        msg: String,
    },
    /// A response that does not have the documented shape.
    #[error("unexpected response from Binance: {0}")]
    Decode(String),
}

impl OrderError {
    /// True when the same call may succeed if made again later (nothing was placed, or the
    /// call is a read): [`Unavailable`](Self::Unavailable), [`RateLimited`](Self::RateLimited),
    /// [`Banned`](Self::Banned) (after its end) and 5xx-like [`Api`](Self::Api) errors.
    /// [`Unknown`](Self::Unknown) is **not** retryable: it needs
    /// [`needs_reconcile`](Self::needs_reconcile).
    pub fn is_retryable(&self) -> bool {
        match self {
            OrderError::Unavailable(_)
            | OrderError::RateLimited { .. }
            | OrderError::Banned { .. } => true,
            OrderError::Api { status, code, .. } => *status >= 500 || *code == -1021,
            _ => false,
        }
    }

    /// True when an order may exist on the exchange without the client knowing its outcome:
    /// the executor must call [`reconcile`](super::BinanceOrders::reconcile) before anything
    /// else is done for that intent.
    pub fn needs_reconcile(&self) -> bool {
        matches!(self, OrderError::Unknown { .. })
    }

    /// The delay the exchange asked for before the next request, if any (`Retry-After` of a
    /// 429; the rest of a ban, from `now_ms`).
    pub fn retry_after(&self, now_ms: Millis) -> Option<Duration> {
        match self {
            OrderError::RateLimited { retry_after } => Some(*retry_after),
            OrderError::Banned { until } => Some(Duration::from_millis(
                u64::try_from(until.saturating_sub(now_ms)).unwrap_or(0),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_themselves() {
        let unknown = OrderError::Unknown {
            symbol: "BTCUSDT".into(),
            client_order_id: "a".into(),
            reason: "timeout".into(),
        };
        assert!(unknown.needs_reconcile());
        assert!(!unknown.is_retryable());
        let rejected = OrderError::Rejected {
            code: -2010,
            msg: "Account has insufficient balance for requested action.".into(),
            kind: RejectKind::InsufficientBalance,
        };
        assert!(!rejected.is_retryable());
        assert!(!rejected.needs_reconcile());
        assert!(OrderError::Unavailable("x".into()).is_retryable());
        let banned = OrderError::Banned { until: 10_000 };
        assert!(banned.is_retryable());
        assert_eq!(banned.retry_after(4_000), Some(Duration::from_secs(6)));
        assert_eq!(banned.retry_after(20_000), Some(Duration::ZERO));
        let missing = OrderError::MissingCredential {
            var: "MY_KEY".into(),
            what: "key",
        };
        assert!(missing.to_string().contains("MY_KEY"));
        assert!(!missing.is_retryable());
    }
}
