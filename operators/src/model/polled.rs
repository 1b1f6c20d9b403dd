//! Items the pollers emit into the dataflow: CoinGecko market snapshots, news items, social
//! posts, macro observations and fund NAVs. Each has a natural key that the sinks use to insert it
//! at most once and the pollers use to emit it at most once.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::market::Millis;

/// One CoinGecko market snapshot of a coin (from `/coins/markets` or `/simple/price`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CoinMarket {
    /// CoinGecko coin id (`bitcoin`).
    pub coin_id: String,
    /// Quote currency (`usd`).
    pub vs_currency: String,
    /// `markets` or `simple_price`.
    pub endpoint: String,
    /// When CoinGecko last updated the values, ms (the fetch time where CoinGecko gave none).
    pub last_updated: Millis,
    /// Ticker (`btc`), markets only.
    pub symbol: Option<String>,
    /// Name (`Bitcoin`), markets only.
    pub name: Option<String>,
    /// Price.
    pub price: Option<Decimal>,
    /// Market capitalization.
    pub market_cap: Option<Decimal>,
    /// Rank by market capitalization.
    pub market_cap_rank: Option<i64>,
    /// 24 h volume.
    pub total_volume: Option<Decimal>,
    /// 24 h high.
    pub high_24h: Option<Decimal>,
    /// 24 h low.
    pub low_24h: Option<Decimal>,
    /// 24 h price change.
    pub price_change_24h: Option<Decimal>,
    /// 24 h price change, percent.
    pub price_change_pct_24h: Option<Decimal>,
    /// Circulating supply.
    pub circulating_supply: Option<Decimal>,
    /// Total supply.
    pub total_supply: Option<Decimal>,
    /// Maximum supply.
    pub max_supply: Option<Decimal>,
    /// All-time high.
    pub ath: Option<Decimal>,
    /// All-time low.
    pub atl: Option<Decimal>,
    /// When it was fetched, ms.
    pub fetched_at: Millis,
    /// The coin's object as CoinGecko sent it (JSON text).
    pub raw: String,
}

/// One news item of an RSS or Atom feed.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NewsItem {
    /// Natural key: `guid:<guid>`, else `link:<sha256 of the link>`, else `title:<sha256>`.
    pub item_key: String,
    /// The feed's URL.
    pub feed: String,
    /// The item's guid / Atom id, when it had one.
    pub guid: Option<String>,
    /// Title, HTML stripped.
    pub title: String,
    /// Link.
    pub link: Option<String>,
    /// Summary, HTML stripped.
    pub summary: String,
    /// Publication time, ms (published, else updated, else the fetch time).
    pub published_at: Millis,
    /// `published`, `updated` or `fetched`: where `published_at` came from.
    pub published_from: String,
    /// When it was fetched, ms.
    pub fetched_at: Millis,
    /// Coins mentioned (upper-case tickers), sorted.
    pub coins: Vec<String>,
}

/// One social-media post (Reddit).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SocialPost {
    /// `reddit`.
    pub platform: String,
    /// Natural key within the platform (Reddit fullname `t3_…`).
    pub post_id: String,
    /// Subreddit.
    pub community: String,
    /// Author.
    pub author: Option<String>,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Link target.
    pub url: Option<String>,
    /// Permalink.
    pub permalink: Option<String>,
    /// Score when fetched.
    pub score: i64,
    /// Comments when fetched.
    pub num_comments: i64,
    /// Creation time, ms.
    pub created_at: Millis,
    /// When it was fetched, ms.
    pub fetched_at: Millis,
    /// Coins mentioned (upper-case tickers), sorted.
    pub coins: Vec<String>,
}

/// One observation of one macro series in one vintage (FRED).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MacroObservation {
    /// Series id (`FEDFUNDS`).
    pub series_id: String,
    /// Observation date.
    pub date: NaiveDate,
    /// The value; `None` where FRED has `"."`.
    pub value: Option<Decimal>,
    /// First day this value was the published one.
    pub realtime_start: NaiveDate,
    /// Last day it was (`9999-12-31` while current).
    pub realtime_end: NaiveDate,
}

/// The net asset value per share of a fund on one day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FundNav {
    /// ISIN.
    pub isin: String,
    /// Fund name.
    pub name: String,
    /// Currency of the NAV (ISO 4217).
    pub currency: String,
    /// NAV per share.
    pub nav: Decimal,
    /// The day the NAV is for.
    pub nav_date: NaiveDate,
    /// Where it came from (`myinvestor`).
    pub source: String,
    /// When it was fetched, ms.
    pub fetched_at: Millis,
}

/// Anything a poller emits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Polled {
    /// CoinGecko market data.
    Market(CoinMarket),
    /// A news item.
    News(NewsItem),
    /// A social post.
    Social(SocialPost),
    /// A macro observation.
    Macro(MacroObservation),
    /// A fund NAV.
    FundNav(FundNav),
}

macro_rules! into_polled {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Polled {
            fn from(x: $t) -> Self {
                Polled::$v(x)
            }
        }
    )*};
}
into_polled!(CoinMarket => Market, NewsItem => News, SocialPost => Social, MacroObservation => Macro, FundNav => FundNav);

pub(crate) fn day_ms(d: NaiveDate) -> Millis {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

impl Polled {
    /// Event time, ms: when the fact became known at its source.
    pub fn event_time(&self) -> Millis {
        match self {
            Polled::Market(m) => m.last_updated,
            Polled::News(n) => n.published_at,
            Polled::Social(s) => s.created_at,
            // A vintage is known from its first real-time day on.
            Polled::Macro(m) => day_ms(m.realtime_start),
            Polled::FundNav(f) => day_ms(f.nav_date),
        }
    }

    /// The natural key: unique per item kind, stable across polls and restarts.
    pub fn natural_key(&self) -> String {
        match self {
            Polled::Market(m) => format!(
                "market|{}|{}|{}|{}",
                m.endpoint, m.coin_id, m.vs_currency, m.last_updated
            ),
            Polled::News(n) => format!("news|{}", n.item_key),
            Polled::Social(s) => format!("social|{}|{}", s.platform, s.post_id),
            Polled::Macro(m) => format!("macro|{}|{}|{}", m.series_id, m.date, m.realtime_start),
            Polled::FundNav(f) => format!("fund|{}|{}", f.isin, f.nav_date),
        }
    }

    /// The kind's name (`market`, `news`, `social`, `macro`, `fund_nav`).
    pub fn kind(&self) -> &'static str {
        match self {
            Polled::Market(_) => "market",
            Polled::News(_) => "news",
            Polled::Social(_) => "social",
            Polled::Macro(_) => "macro",
            Polled::FundNav(_) => "fund_nav",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_times() {
        let m = Polled::Macro(MacroObservation {
            series_id: "GDP".into(),
            date: NaiveDate::from_ymd_opt(2026, 7, 1).expect("d"),
            value: None,
            realtime_start: NaiveDate::from_ymd_opt(2026, 10, 30).expect("d"),
            realtime_end: NaiveDate::from_ymd_opt(9999, 12, 31).expect("d"),
        });
        assert_eq!(m.natural_key(), "macro|GDP|2026-07-01|2026-10-30");
        // 2026-10-30T00:00:00Z
        assert_eq!(m.event_time(), 1_793_318_400_000);
        assert_eq!(m.kind(), "macro");
    }
}
