//! CoinGecko: `/coins/markets` and `/simple/price` for a list of coin ids, batched per request.
//!
//! Keys: a demo key goes in `x-cg-demo-api-key`, a pro key in `x-cg-pro-api-key` (and the pro
//! root `https://pro-api.coingecko.com/api/v3`). Nulls stay NULL; numbers are parsed as exact
//! decimals from their text in the payload (never through `f64`), and `raw` keeps each coin
//! object's bytes exactly as sent; a coin object that cannot be read (also a number no `Decimal`
//! holds exactly) is reported and skipped, the others of the response still land. One row per (coin, currency, endpoint, CoinGecko's update
//! time): a poll that finds nothing updated emits nothing.

use std::collections::BTreeMap;

use cryptoflow_operators::polled::CoinMarket;
use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::driver::{PollOutput, Poller};
use super::fetch::{ApiPolicy, FetchError, FetchStats, Fetcher};
use super::number::{raw_decimal, raw_i64, raw_str};
use super::BreakerState;

/// The default coin list: the largest coins by market capitalization (CoinGecko ids).
pub const DEFAULT_COINS: &[&str] = &[
    "bitcoin",
    "ethereum",
    "tether",
    "binancecoin",
    "solana",
    "ripple",
    "usd-coin",
    "dogecoin",
    "cardano",
    "tron",
    "staked-ether",
    "avalanche-2",
    "wrapped-bitcoin",
    "shiba-inu",
    "toncoin",
    "chainlink",
    "polkadot",
    "bitcoin-cash",
    "near",
    "litecoin",
    "uniswap",
    "leo-token",
    "dai",
    "matic-network",
    "internet-computer",
    "ethereum-classic",
    "aptos",
    "stellar",
    "monero",
    "hyperliquid",
    "okb",
    "filecoin",
    "cosmos",
    "hedera-hashgraph",
    "arbitrum",
    "optimism",
    "crypto-com-chain",
    "vechain",
    "maker",
    "the-graph",
    "injective-protocol",
    "render-token",
    "immutable-x",
    "mantle",
    "sui",
    "kaspa",
    "algorand",
    "aave",
    "quant-network",
    "the-sandbox",
    "decentraland",
    "axie-infinity",
    "elrond-erd-2",
    "theta-token",
    "fantom",
    "tezos",
    "eos",
    "flow",
    "chiliz",
    "bitcoin-cash-sv",
    "neo",
    "kucoin-shares",
    "iota",
    "gala",
    "pepe",
    "bonk",
    "floki",
    "thorchain",
    "lido-dao",
    "rocket-pool",
    "curve-dao-token",
    "pancakeswap-token",
    "havven",
    "1inch",
    "compound-governance-token",
    "zcash",
    "dash",
    "mina-protocol",
    "helium",
    "conflux-token",
    "xdce-crowd-sale",
    "trust-wallet-token",
    "frax",
    "true-usd",
    "first-digital-usd",
    "ethena-usde",
    "worldcoin-wld",
    "celestia",
    "sei-network",
    "starknet",
    "jupiter-exchange-solana",
    "pyth-network",
];

/// Settings of the CoinGecko poller.
#[derive(Debug, Clone)]
pub struct CoinGeckoConfig {
    /// API root (`https://api.coingecko.com/api/v3`).
    pub base_url: String,
    /// `demo` or `pro` (which key header; `pro` also changes the default root).
    pub plan: String,
    /// The key, if any.
    pub api_key: Option<String>,
    /// Coin ids.
    pub coins: Vec<String>,
    /// Quote currency.
    pub vs_currency: String,
    /// Ids per request.
    pub ids_per_request: usize,
    /// Also call `/simple/price`.
    pub simple_price: bool,
    /// Requests per minute.
    pub per_minute: f64,
    /// User-Agent.
    pub user_agent: String,
}

/// The CoinGecko poller.
pub struct CoinGecko {
    cfg: CoinGeckoConfig,
    fetcher: Fetcher,
}

impl CoinGecko {
    /// A poller for `cfg`.
    pub fn new(cfg: CoinGeckoConfig) -> Result<Self, FetchError> {
        let fetcher = Fetcher::new(ApiPolicy::new("coingecko", cfg.per_minute), &cfg.user_agent)?;
        Ok(CoinGecko { cfg, fetcher })
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match &self.cfg.api_key {
            Some(k) if self.cfg.plan == "pro" => vec![("x-cg-pro-api-key", k.clone())],
            Some(k) => vec![("x-cg-demo-api-key", k.clone())],
            None => Vec::new(),
        }
    }
}

/// The members of a JSON object, each with its exact text in the payload.
type RawObject<'a> = BTreeMap<String, &'a RawValue>;

fn field(o: &RawObject<'_>, k: &str) -> Result<Option<Decimal>, String> {
    raw_decimal(o.get(k).copied()).map_err(|e| format!("{k}: {e}"))
}

fn text(o: &RawObject<'_>, k: &str) -> Option<String> {
    raw_str(o.get(k).copied())
}

/// Decodes a `/coins/markets` body: good rows and one message per bad coin object.
///
/// Each row's `raw` is the coin object's bytes exactly as they are in `body`.
pub fn decode_markets(
    body: &[u8],
    vs: &str,
    fetched_at: i64,
) -> Result<(Vec<CoinMarket>, Vec<String>), String> {
    let whole: &RawValue =
        serde_json::from_slice(body).map_err(|e| format!("/coins/markets: not JSON ({e})"))?;
    if !whole.get().starts_with('[') {
        return Err(format!(
            "/coins/markets: expected an array, got {}",
            short(whole.get())
        ));
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(whole.get()).map_err(|e| format!("/coins/markets: not JSON ({e})"))?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match market_row(item, vs, fetched_at) {
            Ok(m) => good.push(m),
            Err(e) => bad.push(format!("/coins/markets item {i}: {e}")),
        }
    }
    Ok((good, bad))
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

fn object<'a>(item: &'a RawValue) -> Result<RawObject<'a>, String> {
    if !item.get().starts_with('{') {
        return Err("not an object".into());
    }
    serde_json::from_str(item.get()).map_err(|e| format!("not an object ({e})"))
}

fn market_row(item: &RawValue, vs: &str, fetched_at: i64) -> Result<CoinMarket, String> {
    let o = object(item)?;
    let coin_id = text(&o, "id").filter(|s| !s.is_empty()).ok_or("no id")?;
    let last_updated = match text(&o, "last_updated") {
        Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map_err(|_| format!("{coin_id}: bad last_updated {s:?}"))?
            .timestamp_millis(),
        None => fetched_at,
    };
    let f = |k: &str| field(&o, k).map_err(|e| format!("{coin_id}: {e}"));
    Ok(CoinMarket {
        vs_currency: vs.to_string(),
        endpoint: "markets".into(),
        last_updated,
        symbol: text(&o, "symbol"),
        name: text(&o, "name"),
        price: f("current_price")?,
        market_cap: f("market_cap")?,
        market_cap_rank: raw_i64(o.get("market_cap_rank").copied()),
        total_volume: f("total_volume")?,
        high_24h: f("high_24h")?,
        low_24h: f("low_24h")?,
        price_change_24h: f("price_change_24h")?,
        price_change_pct_24h: f("price_change_percentage_24h")?,
        circulating_supply: f("circulating_supply")?,
        total_supply: f("total_supply")?,
        max_supply: f("max_supply")?,
        ath: f("ath")?,
        atl: f("atl")?,
        fetched_at,
        raw: item.get().to_string(),
        coin_id,
    })
}

/// Decodes a `/simple/price` body for the requested `ids`: rows, and one message per bad or
/// missing coin. Each row's `raw` is the coin's object exactly as it is in `body`.
pub fn decode_simple_price(
    body: &[u8],
    ids: &[String],
    vs: &str,
    fetched_at: i64,
) -> Result<(Vec<CoinMarket>, Vec<String>), String> {
    let whole: &RawValue =
        serde_json::from_slice(body).map_err(|e| format!("/simple/price: not JSON ({e})"))?;
    if !whole.get().starts_with('{') {
        return Err(format!(
            "/simple/price: expected an object, got {}",
            short(whole.get())
        ));
    }
    let map: RawObject<'_> =
        serde_json::from_str(whole.get()).map_err(|e| format!("/simple/price: not JSON ({e})"))?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for id in ids {
        let Some(entry) = map.get(id) else {
            bad.push(format!("/simple/price: no data for {id} (unknown id?)"));
            continue;
        };
        let row = (|| -> Result<CoinMarket, String> {
            let o = object(entry)?;
            let last_updated = match o.get("last_updated_at").map(|r| r.get()) {
                Some(t) if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => t
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or(format!("bad last_updated_at {}", short(t)))?,
                _ => fetched_at,
            };
            Ok(CoinMarket {
                coin_id: id.clone(),
                vs_currency: vs.to_string(),
                endpoint: "simple_price".into(),
                last_updated,
                symbol: None,
                name: None,
                price: field(&o, vs)?,
                market_cap: field(&o, &format!("{vs}_market_cap"))?,
                market_cap_rank: None,
                total_volume: field(&o, &format!("{vs}_24h_vol"))?,
                high_24h: None,
                low_24h: None,
                price_change_24h: None,
                price_change_pct_24h: field(&o, &format!("{vs}_24h_change"))?,
                circulating_supply: None,
                total_supply: None,
                max_supply: None,
                ath: None,
                atl: None,
                fetched_at,
                raw: entry.get().to_string(),
            })
        })();
        match row {
            Ok(r) => good.push(r),
            Err(e) => bad.push(format!("/simple/price {id}: {e}")),
        }
    }
    Ok((good, bad))
}

impl Poller for CoinGecko {
    fn name(&self) -> &'static str {
        "coingecko"
    }

    async fn poll(&mut self, _cursors: &BTreeMap<String, String>) -> PollOutput {
        let mut out = PollOutput::default();
        let base = self.cfg.base_url.trim_end_matches('/').to_string();
        let vs = self.cfg.vs_currency.to_lowercase();
        let headers = self.headers();
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let chunks: Vec<Vec<String>> = self
            .cfg
            .coins
            .chunks(self.cfg.ids_per_request.max(1))
            .map(|c| c.to_vec())
            .collect();
        for ids in chunks {
            let joined = ids.join(",");
            let markets = format!(
                "{base}/coins/markets?vs_currency={vs}&ids={joined}&per_page=250&page=1&price_change_percentage=24h"
            );
            let simple = format!(
                "{base}/simple/price?ids={joined}&vs_currencies={vs}&include_market_cap=true&include_24hr_vol=true&include_24hr_change=true&include_last_updated_at=true"
            );
            let mut calls = vec![(markets, true)];
            if self.cfg.simple_price {
                calls.push((simple, false));
            }
            for (url, is_markets) in calls {
                let fetched = self.fetcher.get(&url, &hdrs).await;
                out.absorb(fetched, |body| {
                    let now = crate::now_ms();
                    if is_markets {
                        decode_markets(body, &vs, now)
                    } else {
                        decode_simple_price(body, &ids, &vs, now)
                    }
                    .map_err(|e| format!("coingecko {e}"))
                });
            }
        }
        out
    }

    fn apis(&self) -> Vec<(String, FetchStats, BreakerState)> {
        vec![(
            "coingecko".into(),
            self.fetcher.stats,
            self.fetcher.breaker_state(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markets_nulls_exact_decimals_and_bad_items() {
        let body = br#"[
          {"id":"bitcoin","symbol":"btc","name":"Bitcoin","current_price":97123.45,"market_cap":1923456789012,
           "market_cap_rank":1,"total_volume":45678901234,"high_24h":98000.1,"low_24h":95000,"price_change_24h":-512.3,
           "price_change_percentage_24h":-0.52,"circulating_supply":19790000.0,"total_supply":21000000.0,
           "max_supply":21000000.0,"ath":108000,"atl":67.81,"last_updated":"2026-11-22T06:59:48.123Z"},
          {"id":"pepe","symbol":"pepe","name":"Pepe","current_price":1.234e-05,"market_cap":null,"market_cap_rank":null,
           "total_volume":null,"high_24h":null,"low_24h":null,"price_change_24h":null,"price_change_percentage_24h":null,
           "circulating_supply":420690000000000,"total_supply":null,"max_supply":null,"ath":null,"atl":null,"last_updated":null},
          {"symbol":"x"},
          {"id":"bad","current_price":"abc"}
        ]"#;
        let (good, bad) = decode_markets(body, "usd", 5).expect("array");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].price, Some("97123.45".parse().expect("d")));
        assert_eq!(good[0].last_updated, 1_795_330_788_123);
        assert_eq!(good[0].market_cap_rank, Some(1));
        assert_eq!(good[1].price, Some("0.00001234".parse().expect("d")));
        assert_eq!(good[1].market_cap, None);
        assert_eq!(good[1].last_updated, 5, "no update time: the fetch time");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].contains("no id"), "{bad:?}");
        assert!(bad[1].contains("current_price"), "{bad:?}");
        assert!(decode_markets(br#"[{"id":"bitcoin","curr"#, "usd", 0).is_err());
        assert!(
            decode_markets(br#"{"status":{"error_code":429}}"#, "usd", 0)
                .expect_err("object")
                .contains("expected an array")
        );
    }

    #[test]
    fn numbers_from_their_text_and_raw_bytes_kept() {
        let item = r#"{"id":"x","symbol":"x","name":"X \u00e9","current_price":0.00000001234567890123,
           "market_cap":589264883286605.2, "market_cap_rank":7,"total_volume":1234567890123456789012345,
           "high_24h":1.2e-7,"low_24h":null,"circulating_supply":1820486547.6280346,
           "total_supply":4.2069e14,"max_supply":4.2069E+14,"ath":"12.5","atl":1e-20,"last_updated":null}"#;
        let body = format!("[ {item} ,\n {item}  ]");
        let (good, bad) = decode_markets(body.as_bytes(), "usd", 1).expect("array");
        assert!(bad.is_empty(), "{bad:?}");
        let m = &good[0];
        // Expected: Python `format(decimal.Decimal(text), 'f')` of each number's text.
        let s = |d: Option<Decimal>| d.map(|d| d.to_string());
        assert_eq!(s(m.price).as_deref(), Some("0.00000001234567890123"));
        assert_eq!(s(m.market_cap).as_deref(), Some("589264883286605.2"));
        assert_eq!(
            s(m.total_volume).as_deref(),
            Some("1234567890123456789012345")
        );
        assert_eq!(s(m.high_24h).as_deref(), Some("0.00000012"));
        assert_eq!(m.low_24h, None);
        assert_eq!(
            s(m.circulating_supply).as_deref(),
            Some("1820486547.6280346")
        );
        assert_eq!(s(m.total_supply).as_deref(), Some("420690000000000"));
        assert_eq!(s(m.max_supply).as_deref(), Some("420690000000000"));
        assert_eq!(s(m.ath).as_deref(), Some("12.5"));
        assert_eq!(s(m.atl).as_deref(), Some("0.00000000000000000001"));
        assert_eq!(m.name.as_deref(), Some("X \u{e9}"));
        assert_eq!(m.market_cap_rank, Some(7));
        // The raw column is the item's bytes in the payload, whitespace and escapes included.
        assert_eq!(m.raw, item);
        assert_eq!(good[1].raw, item);

        // Numbers no Decimal holds exactly: the coin is reported, never rounded; the others land.
        let body = br#"[{"id":"big","current_price":1e40},{"id":"tiny","current_price":1e-30},
            {"id":"long","circulating_supply":0.12345678901234567890123456789},{"id":"ok","current_price":1}]"#;
        let (good, bad) = decode_markets(body, "usd", 1).expect("array");
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].coin_id, "ok");
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(
            bad.iter().all(|e| e.contains("cannot be stored exactly")),
            "{bad:?}"
        );

        let body = br#"{"x":{"usd":4.2069e14,"usd_market_cap":1820486547.6280346,"last_updated_at":1795330788}}"#;
        let (good, _) = decode_simple_price(body, &["x".to_string()], "usd", 0).expect("object");
        assert_eq!(
            good[0].price.map(|d| d.to_string()).as_deref(),
            Some("420690000000000")
        );
        assert_eq!(
            good[0].market_cap.map(|d| d.to_string()).as_deref(),
            Some("1820486547.6280346")
        );
        assert_eq!(
            good[0].raw,
            r#"{"usd":4.2069e14,"usd_market_cap":1820486547.6280346,"last_updated_at":1795330788}"#
        );
    }

    #[test]
    fn simple_price() {
        let body = br#"{"bitcoin":{"usd":97123.45,"usd_market_cap":1923456789012.5,"usd_24h_vol":45678901234.1,
            "usd_24h_change":-0.5213,"last_updated_at":1795330788},"ethereum":{"usd":null,"last_updated_at":1795330700}}"#;
        let ids = vec!["bitcoin".to_string(), "ethereum".into(), "nope".into()];
        let (good, bad) = decode_simple_price(body, &ids, "usd", 0).expect("object");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].last_updated, 1_795_330_788_000);
        assert_eq!(
            good[0].price_change_pct_24h,
            Some("-0.5213".parse().expect("d"))
        );
        assert_eq!(good[1].price, None);
        assert_eq!(
            bad,
            vec!["/simple/price: no data for nope (unknown id?)".to_string()]
        );
    }

    #[test]
    fn default_list_has_92_distinct_coins() {
        let set: std::collections::BTreeSet<_> = DEFAULT_COINS.iter().collect();
        assert_eq!(set.len(), DEFAULT_COINS.len());
        assert_eq!(DEFAULT_COINS.len(), 92);
    }
}
