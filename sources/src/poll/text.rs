//! Text helpers for pollers: plain text from HTML snippets (feed titles and summaries), coin
//! tagging of news and posts, and Spanish number and date formats (MyInvestor).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

/// Elements whose content is not text for a reader: dropped with everything inside.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "iframe", "object", "head", "title",
];

/// Elements that separate words: a space goes before and after them (`a<br>b` is `a b`; inline
/// elements such as `<b>` join with their neighbours, `Bit<b>coin</b>` is `Bitcoin`).
const BREAKING: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "img",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Plain text from an HTML fragment (a feed title or summary), read by an HTML5 parser
/// (html5ever): tags and comments removed, `<script>`/`<style>` (and similar) dropped with their
/// content, every HTML5 named and numeric character reference decoded (`&eacute;`, `&hellip;`,
/// `&#8217;`, `&#x1F680;`; the legacy forms without `;` too, as browsers do), block elements and
/// `<br>` turned into spaces, whitespace (also `&nbsp;`) collapsed to single spaces. A `<` that
/// does not open a tag (`1 < 2`) is text. Stray CDATA markers are removed.
///
/// The input is decoded once: `&amp;eacute;` is the text `&eacute;`. (A feed whose XML holds
/// `&amp;eacute;` reaches this function as `&eacute;`, after the XML layer, so it reads `é`.)
pub fn strip_html(input: &str) -> String {
    let s = input.replace("<![CDATA[", "").replace("]]>", "");
    let doc = scraper::Html::parse_fragment(&s);
    let mut out = String::with_capacity(s.len());
    push_text(doc.root_element(), &mut out);
    collapse_whitespace(&out)
}

fn push_text(element: scraper::ElementRef<'_>, out: &mut String) {
    for child in element.children() {
        match child.value() {
            scraper::Node::Text(t) => out.push_str(t),
            scraper::Node::Element(e) => {
                let name = e.name();
                if DROPPED.contains(&name) {
                    continue;
                }
                let breaking = BREAKING.contains(&name);
                if breaking {
                    out.push(' ');
                }
                if let Some(inner) = scraper::ElementRef::wrap(child) {
                    push_text(inner, out);
                }
                if breaking {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

/// Whitespace (Unicode, so also U+00A0) collapsed to single spaces, trimmed.
pub fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    // Exact: a value with more digits than a `Decimal` holds is unreadable, not rounded.
    super::number::parse_exact(&cleaned).ok()
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
        // Expected strings: Python's html.parser (convert_charrefs, script/style dropped, block
        // tags as spaces) then ' '.join(text.split()): `python3 tests/reference/html_text.py
        // fragment ...` (for the first, on the fragment without its CDATA markers).
        assert_eq!(
            strip_html("<![CDATA[<p>Bitcoin &amp; Ether <b>rally</b>&#8212;again&#x21;</p>]]>"),
            "Bitcoin & Ether rally\u{2014}again!"
        );
        assert_eq!(
            strip_html("a<script>var x = '<p>';</script>b <!-- c --> d &nbsp; e &bogus; 1 < 2"),
            "ab d e &bogus; 1 < 2"
        );
        assert_eq!(strip_html("Caf&eacute;"), "Caf\u{e9}");
        assert_eq!(
            strip_html("&copy; 2026 &trade; &hellip; &#8217; &#x1F680; &iexcl;Hola! a&nbsp;b"),
            "\u{a9} 2026 \u{2122} \u{2026} \u{2019} \u{1f680} \u{a1}Hola! a b"
        );
        assert_eq!(
            strip_html("&amp;eacute; &amp;lt;b&amp;gt;"),
            "&eacute; &lt;b&gt;"
        );
        assert_eq!(
            strip_html("&lt;b&gt;not a tag&lt;/b&gt;"),
            "<b>not a tag</b>"
        );
        assert_eq!(
            strip_html("<p>one</p><p>two<br>three</p><style>p{}</style><div>four</div>"),
            "one two three four"
        );
        assert_eq!(strip_html("Bit<b>coin</b>"), "Bitcoin");
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
        // Exact, never rounded: 18 decimals kept, 29 decimals (beyond Decimal) unreadable.
        assert_eq!(
            parse_es_number("1.234.567,123456789012345678"),
            Some(d("1234567.123456789012345678"))
        );
        assert_eq!(parse_es_number("0,12345678901234567890123456789"), None);
        assert_eq!(
            parse_es_date("21/11/2026"),
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
        );
        assert_eq!(parse_es_date("21.11.2026"), parse_es_date("2026-11-21"));
        assert_eq!(parse_es_date("31/02/2026"), None);
    }
}
