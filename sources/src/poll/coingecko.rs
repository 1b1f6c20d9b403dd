//! CoinGecko: `/coins/markets` and `/simple/price` for a list of coin ids, batched per request.
//!
//! Keys: a demo key goes in `x-cg-demo-api-key`, a pro key in `x-cg-pro-api-key` (and the pro
//! root `https://pro-api.coingecko.com/api/v3`). Nulls stay NULL; numbers are parsed as exact
//! decimals from the JSON text; a coin object that cannot be read is reported and skipped, the
//! others of the response still land. One row per (coin, currency, endpoint, CoinGecko's update
//! time): a poll that finds nothing updated emits nothing.

use std::collections::BTreeMap;

use cryptoflow_operators::polled::CoinMarket;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::driver::{PollOutput, Poller};
use super::fetch::{ApiPolicy, FetchError, FetchStats, Fetcher};
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

/// A JSON number (or numeric string) as an exact decimal; `None` for null or absent.
pub fn json_decimal(v: Option<&Value>) -> Result<Option<Decimal>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let s = n.to_string();
            s.parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(&s))
                .map(Some)
                .map_err(|_| format!("number {s} out of range"))
        }
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<Decimal>()
            .map(Some)
            .map_err(|_| format!("not a number: {s:?}")),
        Some(other) => Err(format!("not a number: {other}")),
    }
}

fn field(o: &Map<String, Value>, k: &str) -> Result<Option<Decimal>, String> {
    json_decimal(o.get(k)).map_err(|e| format!("{k}: {e}"))
}

fn text(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Decodes a `/coins/markets` body: good rows and one message per bad coin object.
pub fn decode_markets(
    body: &[u8],
    vs: &str,
    fetched_at: i64,
) -> Result<(Vec<CoinMarket>, Vec<String>), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("/coins/markets: not JSON ({e})"))?;
    let Value::Array(items) = v else {
        return Err(format!(
            "/coins/markets: expected an array, got {}",
            short(&v.to_string())
        ));
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match market_row(&item, vs, fetched_at) {
            Ok(m) => good.push(m),
            Err(e) => bad.push(format!("/coins/markets item {i}: {e}")),
        }
    }
    Ok((good, bad))
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

fn market_row(item: &Value, vs: &str, fetched_at: i64) -> Result<CoinMarket, String> {
    let o = item.as_object().ok_or("not an object")?;
    let coin_id = text(o, "id").filter(|s| !s.is_empty()).ok_or("no id")?;
    let last_updated = match o.get("last_updated") {
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| format!("{coin_id}: bad last_updated {s:?}"))?
            .timestamp_millis(),
        _ => fetched_at,
    };
    let f = |k: &str| field(o, k).map_err(|e| format!("{coin_id}: {e}"));
    Ok(CoinMarket {
        vs_currency: vs.to_string(),
        endpoint: "markets".into(),
        last_updated,
        symbol: text(o, "symbol"),
        name: text(o, "name"),
        price: f("current_price")?,
        market_cap: f("market_cap")?,
        market_cap_rank: o.get("market_cap_rank").and_then(Value::as_i64),
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
        raw: item.to_string(),
        coin_id,
    })
}

/// Decodes a `/simple/price` body for the requested `ids`: rows, and one message per bad or
/// missing coin.
pub fn decode_simple_price(
    body: &[u8],
    ids: &[String],
    vs: &str,
    fetched_at: i64,
) -> Result<(Vec<CoinMarket>, Vec<String>), String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("/simple/price: not JSON ({e})"))?;
    let Value::Object(map) = v else {
        return Err(format!(
            "/simple/price: expected an object, got {}",
            short(&v.to_string())
        ));
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for id in ids {
        let Some(entry) = map.get(id) else {
            bad.push(format!("/simple/price: no data for {id} (unknown id?)"));
            continue;
        };
        let row = (|| -> Result<CoinMarket, String> {
            let o = entry.as_object().ok_or("not an object")?;
            let last_updated = match o.get("last_updated_at") {
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(|s| s * 1000)
                    .ok_or(format!("bad last_updated_at {n}"))?,
                _ => fetched_at,
            };
            Ok(CoinMarket {
                coin_id: id.clone(),
                vs_currency: vs.to_string(),
                endpoint: "simple_price".into(),
                last_updated,
                symbol: None,
                name: None,
                price: field(o, vs)?,
                market_cap: field(o, &format!("{vs}_market_cap"))?,
                market_cap_rank: None,
                total_volume: field(o, &format!("{vs}_24h_vol"))?,
                high_24h: None,
                low_24h: None,
                price_change_24h: None,
                price_change_pct_24h: field(o, &format!("{vs}_24h_change"))?,
                circulating_supply: None,
                total_supply: None,
                max_supply: None,
                ath: None,
                atl: None,
                fetched_at,
                raw: entry.to_string(),
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
