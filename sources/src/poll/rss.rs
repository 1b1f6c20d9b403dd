//! RSS 2.0 / Atom / RDF news feeds, parsed with `feed-rs` from the raw bytes (so the encoding the
//! XML declares is honoured). Titles and summaries become plain text: feed-rs decodes the XML
//! layer, then RSS titles and descriptions and Atom `html`/`xhtml` texts are read as HTML
//! ([`strip_html`]: an HTML5 parser, every named and numeric entity), while Atom `text` constructs
//! are kept as written (only whitespace collapsed), so `&amp;lt;` in them stays `&lt;`. So an RSS
//! title holding `&amp;#8217;` (as many feeds double-escape) reads `’`, and `&amp;amp;eacute;`
//! reads `&eacute;`: each layer is decoded once. (feed-rs hands `xhtml` content over with its
//! text already XML-decoded, so there, and only there, a literal `&amp;lt;` reads `<`.)
//!
//! The publication time is `published`, else `updated`, else the fetch time (dates that cannot be
//! read, or lie more than ten minutes in the future, fall back too). The key is the guid / Atom
//! id, else a SHA-256 of the link, else of feed and title. Every item is tagged with the coins it
//! mentions.
//!
//! Each feed has its own fetcher (conditional GET, breaker), so one dead feed slows nobody else.

use std::collections::BTreeMap;

use cryptoflow_operators::polled::NewsItem;
use sha2::{Digest, Sha256};

use super::driver::{PollOutput, Poller};
use super::fetch::{ApiPolicy, FetchError, FetchStats, Fetcher};
use super::text::{collapse_whitespace, strip_html, CoinTagger};
use super::BreakerState;

/// The default feeds: widely read crypto news sites.
pub const DEFAULT_FEEDS: &[&str] = &[
    "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
    "https://www.theblock.co/rss.xml",
    "https://bitcoinmagazine.com/.rss/full/",
    "https://cryptoslate.com/feed/",
    "https://cryptopotato.com/feed/",
    "https://www.newsbtc.com/feed/",
    "https://bitcoinist.com/feed/",
    "https://u.today/rss",
    "https://beincrypto.com/feed/",
    "https://cryptonews.com/news/feed/",
    "https://crypto.news/feed/",
    "https://dailyhodl.com/feed/",
    "https://cryptobriefing.com/feed/",
    "https://ambcrypto.com/feed/",
    "https://coingape.com/feed/",
    "https://blockworks.co/feed",
    "https://coinjournal.net/feed/",
    "https://zycrypto.com/feed/",
    "https://cryptodaily.co.uk/feed",
    "https://www.coinspeaker.com/feed/",
    "https://news.bitcoin.com/feed/",
    "https://finbold.com/feed/",
    "https://thecryptobasic.com/feed/",
    "https://www.cryptopolitan.com/feed/",
];

/// Longest summary kept, in characters.
const SUMMARY_MAX: usize = 4_000;

/// Settings of the RSS poller.
#[derive(Debug, Clone)]
pub struct RssConfig {
    /// Feed URLs.
    pub feeds: Vec<String>,
    /// Requests per minute per feed.
    pub per_minute: f64,
    /// User-Agent.
    pub user_agent: String,
}

/// The RSS/Atom poller.
pub struct Rss {
    feeds: Vec<(String, Fetcher)>,
    tagger: CoinTagger,
}

impl Rss {
    /// A poller for `cfg`, tagging coins with `tagger`.
    pub fn new(cfg: RssConfig, tagger: CoinTagger) -> Result<Self, FetchError> {
        let mut feeds = Vec::new();
        for url in cfg.feeds {
            let mut policy = ApiPolicy::new(&url, cfg.per_minute);
            // A feed is polled every few minutes: do not wait for minutes on one of them.
            policy.max_retries = 2;
            policy.max_retry_after = std::time::Duration::from_secs(60);
            feeds.push((url, Fetcher::new(policy, &cfg.user_agent)?));
        }
        Ok(Rss { feeds, tagger })
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The natural key of an item.
pub fn item_key(feed: &str, guid: Option<&str>, link: Option<&str>, title: &str) -> String {
    match (guid, link) {
        (Some(g), _) if g.len() <= 200 => format!("guid:{g}"),
        (Some(g), _) => format!("guid-sha256:{}", sha256_hex(&[g])),
        (None, Some(l)) => format!("link-sha256:{}", sha256_hex(&[l.trim()])),
        (None, None) => format!("title-sha256:{}", sha256_hex(&[feed, title])),
    }
}

/// Parses a feed body into news items (and one message per item that could not be used).
pub fn parse_feed(
    feed_url: &str,
    body: &[u8],
    fetched_at: i64,
    tagger: &CoinTagger,
) -> Result<(Vec<NewsItem>, Vec<String>), String> {
    // Missing ids stay empty so that the key falls back to the link (not feed-rs's own hash).
    let parser = feed_rs::parser::Builder::new()
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(body)
        .map_err(|e| format!("feed {feed_url}: cannot parse: {e}"))?;
    // RSS titles and descriptions are HTML (feeds escape markup and entities in both, e.g.
    // `&amp;#8217;`); Atom and JSON Feed say per text whether it is HTML.
    let rss = matches!(
        feed.feed_type,
        feed_rs::model::FeedType::RSS0
            | feed_rs::model::FeedType::RSS1
            | feed_rs::model::FeedType::RSS2
    );
    let clean = |content: &str, mime: &str| {
        if rss || mime != "text/plain" {
            strip_html(content)
        } else {
            collapse_whitespace(content)
        }
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, entry) in feed.entries.into_iter().enumerate() {
        let title = entry
            .title
            .as_ref()
            .map(|t| clean(&t.content, t.content_type.as_str()))
            .unwrap_or_default();
        let summary = entry
            .summary
            .as_ref()
            .map(|t| clean(&t.content, t.content_type.as_str()))
            .or_else(|| {
                entry
                    .content
                    .as_ref()
                    .and_then(|c| c.body.as_deref().map(|b| clean(b, c.content_type.as_str())))
            })
            .unwrap_or_default();
        let summary: String = summary.chars().take(SUMMARY_MAX).collect();
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .or(entry.links.first())
            .map(|l| l.href.trim().to_string())
            .filter(|l| !l.is_empty());
        let guid = Some(entry.id.trim().to_string()).filter(|g| !g.is_empty());
        if title.is_empty() && summary.is_empty() {
            bad.push(format!("feed {feed_url} item {i}: no title and no summary"));
            continue;
        }
        let title = if title.is_empty() {
            summary.chars().take(120).collect()
        } else {
            title
        };
        let limit = fetched_at + 10 * 60_000;
        let plausible = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.timestamp_millis())
                .filter(|ms| *ms <= limit && *ms > 0)
        };
        let (published_at, published_from) =
            match (plausible(entry.published), plausible(entry.updated)) {
                (Some(p), _) => (p, "published"),
                (None, Some(u)) => (u, "updated"),
                (None, None) => (fetched_at, "fetched"),
            };
        let coins = tagger.tag(&format!("{title}\n{summary}"));
        good.push(NewsItem {
            item_key: item_key(feed_url, guid.as_deref(), link.as_deref(), &title),
            feed: feed_url.to_string(),
            guid,
            title,
            link,
            summary,
            published_at,
            published_from: published_from.into(),
            fetched_at,
            coins,
        });
    }
    Ok((good, bad))
}

impl Poller for Rss {
    fn name(&self) -> &'static str {
        "rss"
    }

    async fn poll(&mut self, _cursors: &BTreeMap<String, String>) -> PollOutput {
        let mut out = PollOutput::default();
        for (url, fetcher) in &mut self.feeds {
            let fetched = fetcher.get(url, &[]).await;
            out.absorb(fetched, |body| {
                parse_feed(url, body, crate::now_ms(), &self.tagger)
            });
        }
        out
    }

    fn apis(&self) -> Vec<(String, FetchStats, BreakerState)> {
        self.feeds
            .iter()
            .map(|(u, f)| (u.clone(), f.stats, f.breaker_state()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_with_cdata_entities_missing_guid_and_bad_date() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>T</title><link>https://n.example/</link><description>d</description>
<item><title><![CDATA[<b>Bitcoin</b> tops $100K &amp; ETH follows]]></title><link>https://n.example/a</link>
  <description>&lt;p&gt;The $sol rally&lt;/p&gt;</description><pubDate>Sat, 21 Nov 2026 10:00:00 GMT</pubDate>
  <guid isPermaLink="false">n-1</guid></item>
<item><title>No guid here</title><link>https://n.example/b</link><pubDate>yesterday-ish</pubDate></item>
<item><description></description></item>
</channel></rss>"#;
        let fetched = 1_795_330_000_000;
        let (items, bad) = parse_feed(
            "https://n.example/rss",
            body,
            fetched,
            &CoinTagger::default_table(),
        )
        .expect("feed");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].title, "Bitcoin tops $100K & ETH follows");
        assert_eq!(items[0].summary, "The $sol rally");
        assert_eq!(items[0].item_key, "guid:n-1");
        assert_eq!(items[0].published_at, 1_795_255_200_000);
        assert_eq!(items[0].published_from, "published");
        assert_eq!(items[0].coins, vec!["BTC", "ETH", "SOL"]);
        assert!(items[1].item_key.starts_with("link-sha256:"));
        assert_eq!(items[1].guid, None);
        assert_eq!(items[1].published_from, "fetched");
        assert_eq!(items[1].published_at, fetched);
        assert_eq!(bad.len(), 1, "{bad:?}");
    }

    #[test]
    fn atom_and_latin1() {
        let atom = br#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id><updated>2026-11-21T12:00:00Z</updated>
<entry><id>urn:a:1</id><title type="html">Ether &lt;em&gt;soars&lt;/em&gt;</title><updated>2026-11-21T12:00:00Z</updated>
<link href="https://a.example/1"/><summary>Solana too</summary></entry></feed>"#;
        let (items, _) =
            parse_feed("a", atom, 1_795_330_000_000, &CoinTagger::default_table()).expect("atom");
        assert_eq!(items[0].title, "Ether soars");
        assert_eq!(items[0].published_from, "updated");
        assert_eq!(items[0].coins, vec!["ETH", "SOL"]);
        let mut latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss version=\"2.0\"><channel><title>L</title><item><title>Caf".to_vec();
        latin.push(0xE9);
        latin.extend_from_slice(b" y bitcoin</title><guid>l1</guid></item></channel></rss>");
        let (items, _) = parse_feed("l", &latin, 0, &CoinTagger::default_table()).expect("latin-1");
        assert_eq!(items[0].title, "Café y bitcoin");
        assert!(parse_feed(
            "x",
            b"<rss><channel><item><title>cut",
            0,
            &CoinTagger::default_table()
        )
        .is_err());
    }

    /// Titles and summaries of entity-rich feeds (RSS 2.0 with CDATA HTML and double-escaped
    /// titles, `content:encoded`; Atom `html`, `text` and `xhtml` constructs; Spanish text).
    /// Expected: `python3 tests/reference/html_text.py feed FILE` (xml.etree for the XML layer,
    /// html.parser / html.unescape for the HTML layer).
    #[test]
    fn entity_rich_feeds_match_an_independent_parser() {
        let tagger = CoinTagger::default_table();
        let texts = |body: &[u8]| -> Vec<(String, String)> {
            let (items, bad) = parse_feed("f", body, 1_795_330_000_000, &tagger).expect("feed");
            assert!(bad.is_empty(), "{bad:?}");
            items.into_iter().map(|i| (i.title, i.summary)).collect()
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            texts(include_bytes!("../../../tests/fixtures/news/rss_entities.xml")),
            vec![
                pair(
                    "La Comisi\u{f3}n Nacional del Mercado de Valores avisa: \u{a1}cuidado con los \u{2018}chiringuitos\u{2019}!",
                    "La Comisi\u{f3}n Nacional del Mercado de Valores (CNMV) advierte: el bitcoin cay\u{f3} a 1.234,56 \u{20ac} en Espa\u{f1}a\u{2026} \u{a9} 2026 Diario\u{2122} M\u{e1}s informaci\u{f3}n \u{bb}"
                ),
                pair(
                    "Bitcoin\u{2019}s rally \u{2014} \"to the moon\" \u{1f680}",
                    "Ether & Solana <3 traders. Fees < 1% Caf\u{e9} &eacute; \u{20ac} 5 end"
                ),
                pair(
                    "Dogecoin jumps 10% \u{2013} \u{2018}meme season\u{2019}",
                    "Why Volume \u{d7}3 $DOGE > $0.50"
                ),
            ]
        );
        assert_eq!(
            texts(include_bytes!(
                "../../../tests/fixtures/news/atom_entities.xml"
            )),
            vec![
                pair(
                    "Bitcoin & Ether: \u{a1}Se\u{f1}ales! 1.234,56 \u{20ac}",
                    "Caf\u{e9} \u{2026} \u{a9} Espa\u{f1}a \u{201c}Ok\u{201d}"
                ),
                pair(
                    "Fees &lt; 1% at AT&amp;T <b> solana",
                    "Solana\u{2019}s fees & Caf\u{e9} M\u{e1}s info \u{20ac}"
                ),
                pair("Plain & simple", "Caf&eacute; stays as written"),
            ]
        );
    }
}
