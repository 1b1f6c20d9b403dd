//! Text helpers for pollers: plain text from HTML snippets (feed titles and summaries), coin
//! tagging of news and posts, and Spanish number and date formats (MyInvestor).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

/// Plain text from an HTML snippet: CDATA unwrapped, tags, comments, scripts and styles removed,
/// entities decoded (named ones in common use and numeric ones), whitespace collapsed.
pub fn strip_html(input: &str) -> String {
    let mut s = input.replace("<![CDATA[", "").replace("]]>", "");
    for tag in ["script", "style"] {
        while let Some(start) = s.to_ascii_lowercase().find(&format!("<{tag}")) {
            let lower = s.to_ascii_lowercase();
            let end = lower[start..]
                .find(&format!("</{tag}>"))
                .map(|e| start + e + tag.len() + 3)
                .unwrap_or(s.len());
            s.replace_range(start..end, " ");
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let close = if after.starts_with("<!--") {
            after.find("-->").map(|e| e + 3)
        } else {
            after.find('>').map(|e| e + 1)
        };
        match close {
            Some(c) => {
                out.push(' ');
                rest = &after[c..];
            }
            None => {
                // A lone '<' is text.
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[1..e];
            let c = if let Some(num) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(num, 16).ok().and_then(char::from_u32)
            } else if let Some(num) = name.strip_prefix('#') {
                num.parse::<u32>().ok().and_then(char::from_u32)
            } else {
                match name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    "nbsp" => Some(' '),
                    "ndash" => Some('–'),
                    "mdash" => Some('—'),
                    "hellip" => Some('…'),
                    "lsquo" => Some('‘'),
                    "rsquo" => Some('’'),
                    "ldquo" => Some('“'),
                    "rdquo" => Some('”'),
                    "euro" => Some('€'),
                    _ => None,
                }
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Tags texts with the coins they mention.
///
/// Each coin (by its ticker, e.g. `BTC`) has aliases: names and other spellings matched as whole
/// words case-insensitively (`bitcoin`), and tickers matched as whole words in upper case (`BTC`)
/// or as cashtags in any case (`$btc`). Tickers that are common words (`ONE`, `NEAR`) only match as
/// cashtags when listed in `ambiguous`.
#[derive(Debug, Clone, Default)]
pub struct CoinTagger {
    names: BTreeMap<String, String>,
    tickers: BTreeMap<String, String>,
    ambiguous: BTreeSet<String>,
}

impl CoinTagger {
    /// A tagger from `(ticker, aliases)` pairs; `ambiguous` tickers need a `$`.
    pub fn new<'a>(
        coins: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
        ambiguous: &[&str],
    ) -> Self {
        let mut t = CoinTagger::default();
        t.extend(coins, ambiguous);
        t
    }

    /// Adds `(ticker, aliases)` pairs and more `ambiguous` tickers.
    pub fn extend<'a>(
        &mut self,
        coins: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
        ambiguous: &[&str],
    ) {
        for (ticker, aliases) in coins {
            let up = ticker.to_uppercase();
            self.tickers.insert(up.clone(), up.clone());
            for a in aliases {
                self.names.insert(a.to_lowercase(), up.clone());
            }
        }
        self.ambiguous
            .extend(ambiguous.iter().map(|a| a.to_uppercase()));
    }

    /// The default table: the largest coins by market cap with their common names.
    pub fn default_table() -> Self {
        CoinTagger::new(
            [
                ("BTC", vec!["bitcoin", "bitcoins"]),
                ("ETH", vec!["ethereum", "ether"]),
                ("USDT", vec!["tether"]),
                ("BNB", vec!["binance coin"]),
                ("SOL", vec!["solana"]),
                ("XRP", vec!["ripple"]),
                ("USDC", vec!["usd coin"]),
                ("DOGE", vec!["dogecoin"]),
                ("ADA", vec!["cardano"]),
                ("TRX", vec!["tron"]),
                ("AVAX", vec!["avalanche"]),
                ("LINK", vec!["chainlink"]),
                ("DOT", vec!["polkadot"]),
                ("LTC", vec!["litecoin"]),
                ("SHIB", vec!["shiba inu"]),
                ("XLM", vec!["stellar"]),
                ("UNI", vec!["uniswap"]),
                ("ATOM", vec!["cosmos"]),
                ("NEAR", vec!["near protocol"]),
                ("TON", vec!["toncoin"]),
            ],
            &["LINK", "DOT", "UNI", "ATOM", "NEAR", "TON", "SOL", "ADA"],
        )
    }

    /// The tickers mentioned in `text`, sorted.
    pub fn tag(&self, text: &str) -> Vec<String> {
        let mut found = BTreeSet::new();
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '$'))
            .filter(|w| !w.is_empty())
            .collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        for (i, w) in words.iter().enumerate() {
            if let Some(tag) = w.strip_prefix('$') {
                let up = tag.to_uppercase();
                if self.tickers.contains_key(&up) {
                    found.insert(up);
                }
                continue;
            }
            if self.tickers.contains_key(*w) && !self.ambiguous.contains(*w) {
                found.insert((*w).to_string());
            }
            // Names of one or two words.
            if let Some(t) = self.names.get(&lower[i]) {
                found.insert(t.clone());
            }
            if let Some(next) = lower.get(i + 1) {
                if let Some(t) = self.names.get(&format!("{} {next}", lower[i])) {
                    found.insert(t.clone());
                }
            }
        }
        found.into_iter().collect()
    }
}

/// A number in Spanish format: `1.234,56`, `-0,5`, `12,3456 €`, `1234`; spaces (also
/// non-breaking) and a currency sign or code are ignored.
pub fn parse_es_number(s: &str) -> Option<Decimal> {
    let cleaned: String = s
        .trim()
        .trim_end_matches(|c: char| c.is_alphabetic() || c == '€' || c == '$' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}' && *c != '.')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    if cleaned.is_empty() || cleaned.chars().filter(|c| *c == '.').count() > 1 {
        return None;
    }
    cleaned.parse().ok()
}

/// A date in Spanish format: `21/11/2026`, `21-11-2026` or `21.11.2026` (also ISO `2026-11-21`).
pub fn parse_es_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = s.trim();
    chrono::NaiveDate::parse_from_str(s, "%d/%m/%Y")
        .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%d-%m-%Y"))
        .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%d.%m.%Y"))
        .or_else(|_| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_to_text() {
        assert_eq!(
            strip_html("<![CDATA[<p>Bitcoin &amp; Ether <b>rally</b>&#8212;again&#x21;</p>]]>"),
            "Bitcoin & Ether rally —again!"
        );
        assert_eq!(
            strip_html("a<script>var x = '<p>';</script>b <!-- c --> d &nbsp; e &bogus; 1 < 2"),
            "a b d e &bogus; 1 < 2"
        );
        assert_eq!(
            strip_html("Caf&eacute;"),
            "Caf&eacute;",
            "unknown entities stay"
        );
    }

    #[test]
    fn coin_tags() {
        let t = CoinTagger::default_table();
        assert_eq!(
            t.tag("Bitcoin tops $100k as ETH and $sol climb; Shiba Inu flat"),
            vec!["BTC", "ETH", "SHIB", "SOL"]
        );
        assert_eq!(
            t.tag("We are NEAR the top, one LINK in the chain"),
            Vec::<String>::new()
        );
        assert_eq!(t.tag("$LINK and $near rally"), vec!["LINK", "NEAR"]);
        assert_eq!(
            t.tag("btc in lower case is not a ticker"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn spanish_numbers_and_dates() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        assert_eq!(parse_es_number("1.234,56"), Some(d("1234.56")));
        assert_eq!(parse_es_number("12,3456 €"), Some(d("12.3456")));
        assert_eq!(parse_es_number("-0,5"), Some(d("-0.5")));
        assert_eq!(parse_es_number("1\u{a0}234,5 EUR"), Some(d("1234.5")));
        assert_eq!(parse_es_number("1234"), Some(d("1234")));
        assert_eq!(parse_es_number("1,2,3"), None);
        assert_eq!(parse_es_number("n/d"), None);
        assert_eq!(
            parse_es_date("21/11/2026"),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
        );
        assert_eq!(parse_es_date("21.11.2026"), parse_es_date("2026-11-21"));
        assert_eq!(parse_es_date("31/02/2026"), None);
    }
}
