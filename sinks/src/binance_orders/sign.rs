//! API credentials, HMAC-SHA256 request signing and the exact query strings that are signed.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use sha2::Sha256;

use super::error::OrderError;
use super::BinanceOrdersConfig;

/// The API key and secret of a Binance account, read from the environment only.
///
/// Its [`Debug`] output redacts both: they never reach a log line.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    api_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Credentials from values (tests, or a caller that read them from its own secret store).
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Credentials {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// Reads the key from `cfg.api_key_env` and the secret from `cfg.api_secret_env`; a missing
    /// or empty variable is an [`OrderError::MissingCredential`] naming it.
    pub fn from_env(cfg: &BinanceOrdersConfig) -> Result<Self, OrderError> {
        let read = |var: &str, what: &'static str| match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(OrderError::MissingCredential {
                var: var.to_string(),
                what,
            }),
        };
        Ok(Credentials {
            api_key: read(&cfg.api_key_env, "key")?,
            api_secret: read(&cfg.api_secret_env, "secret")?,
        })
    }

    /// The API key, for the `X-MBX-APIKEY` header.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The hex signature of `total_params` (the query string followed by the body) with this
    /// secret.
    pub fn sign(&self, total_params: &str) -> Result<String, OrderError> {
        sign(&self.api_secret, total_params)
    }
}

/// Binance's signature: HMAC-SHA256 of `total_params` (the exact query string, immediately
/// followed by the request body when there is one) keyed by the API secret, in lower-case hex.
pub fn sign(secret: &str, total_params: &str) -> Result<String, OrderError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| OrderError::Config(format!("unusable API secret: {e}")))?;
    mac.update(total_params.as_bytes());
    Ok(hex(&mac.finalize().into_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Percent-encodes everything but the unreserved characters (`A-Z a-z 0-9 - . _ ~`), so the
/// string sent is exactly the string signed (no HTTP library re-encodes it).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k1=v1&k2=v2…` in the given order, values percent-encoded.
pub(crate) fn query_string(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A decimal as Binance takes it: plain digits, trailing zeros removed, never an exponent
/// (`1E-8` is written `0.00000001`).
pub fn decimal_param(d: Decimal) -> String {
    // `Decimal`'s Display never uses exponent notation; normalize drops trailing zeros and the
    // sign of a negative zero.
    d.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    #[test]
    fn binance_documented_signature_example() {
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            sign(SECRET, query).unwrap(),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn query_and_body_are_concatenated_without_separator() {
        // Binance's third example (mixed query string and body): the body follows the query
        // string with no `&` between them.
        let total = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            sign(SECRET, total).unwrap(),
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        );
    }

    #[test]
    fn decimals_are_plain_and_normalized() {
        use std::str::FromStr;
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(decimal_param(d("0.00100000")), "0.001");
        assert_eq!(decimal_param(Decimal::new(1, 8)), "0.00000001");
        assert_eq!(decimal_param(d("25000.0")), "25000");
        assert_eq!(decimal_param(d("1000000")), "1000000");
        assert_eq!(
            decimal_param(Decimal::from_scientific("1e-8").unwrap()),
            "0.00000001"
        );
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(
            query_string(&[
                ("symbols", r#"["BTCUSDT","ETHBTC"]"#.to_string()),
                ("id", "a-b_c.d".into())
            ]),
            "symbols=%5B%22BTCUSDT%22%2C%22ETHBTC%22%5D&id=a-b_c.d"
        );
    }

    #[test]
    fn debug_redacts_the_credentials() {
        let c = Credentials::new("my-api-key-123", SECRET);
        let shown = format!("{c:?}");
        assert!(!shown.contains(SECRET));
        assert!(!shown.contains("my-api-key-123"));
    }

    #[test]
    fn missing_variable_is_named() {
        let cfg = BinanceOrdersConfig {
            api_key_env: "CRYPTOFLOW_UNIT_TEST_SURELY_UNSET_KEY".into(),
            ..BinanceOrdersConfig::default()
        };
        let err = Credentials::from_env(&cfg).unwrap_err();
        assert!(err
            .to_string()
            .contains("CRYPTOFLOW_UNIT_TEST_SURELY_UNSET_KEY"));
    }
}
