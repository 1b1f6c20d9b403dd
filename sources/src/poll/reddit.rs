//! Reddit: the newest posts of configured subreddits (`/r/<sub>/new`), 100 per page, paged by
//! `after` until a page holds only posts already emitted (or `max_pages`). With a client id and
//! secret it uses OAuth client credentials against `oauth.reddit.com` (100 requests/min);
//! otherwise the anonymous `.json` listings (10 requests/min). `X-Ratelimit-*` headers are
//! honoured by the fetcher; the User-Agent is descriptive, as Reddit requires. Posts are keyed by
//! their fullname (`t3_…`); a child that cannot be read is reported, the others land. Listings
//! are requested with `raw_json=1`, so titles and selftext arrive unescaped and are stored as
//! written (no `&amp;`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cryptoflow_operators::polled::{Polled, SocialPost};
use serde_json::Value;

use super::driver::{PollOutput, Poller};
use super::fetch::{ApiPolicy, FetchError, FetchStats, Fetched, Fetcher};
use super::text::CoinTagger;
use super::BreakerState;

/// Settings of the Reddit poller.
#[derive(Debug, Clone)]
pub struct RedditConfig {
    /// Subreddits (without `r/`).
    pub subreddits: Vec<String>,
    /// Root of the anonymous listings (`https://www.reddit.com`).
    pub base_url: String,
    /// Root of the OAuth listings (`https://oauth.reddit.com`).
    pub oauth_url: String,
    /// Token endpoint (`https://www.reddit.com/api/v1/access_token`).
    pub token_url: String,
    /// OAuth client id and secret (client credentials), when configured.
    pub credentials: Option<(String, String)>,
    /// Pages per subreddit per poll at most.
    pub max_pages: usize,
    /// Requests per minute (0: 9 anonymous, 90 with OAuth).
    pub per_minute: f64,
    /// User-Agent (`<platform>:<app id>:<version> (by /u/<user>)`).
    pub user_agent: String,
}

/// The Reddit poller.
pub struct Reddit {
    cfg: RedditConfig,
    fetcher: Fetcher,
    http: reqwest::Client,
    token: Option<(String, tokio::time::Instant)>,
    /// Fullnames emitted in earlier polls of this process (paging stops at them).
    known: BTreeSet<String>,
    tagger: CoinTagger,
}

impl Reddit {
    /// A poller for `cfg`, tagging coins with `tagger`.
    pub fn new(cfg: RedditConfig, tagger: CoinTagger) -> Result<Self, FetchError> {
        let per_minute = match (cfg.per_minute, cfg.credentials.is_some()) {
            (p, _) if p > 0.0 => p,
            (_, true) => 90.0,
            (_, false) => 9.0,
        };
        let fetcher = Fetcher::new(ApiPolicy::new("reddit", per_minute), &cfg.user_agent)?;
        let http = reqwest::Client::builder()
            .user_agent(&cfg.user_agent)
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| FetchError::Exhausted {
                api: "reddit".into(),
                url: cfg.token_url.clone(),
                attempts: 0,
                last: e.to_string(),
            })?;
        Ok(Reddit {
            cfg,
            fetcher,
            http,
            token: None,
            known: BTreeSet::new(),
            tagger,
        })
    }

    async fn bearer(&mut self) -> Result<Option<String>, String> {
        let Some((id, secret)) = self.cfg.credentials.clone() else {
            return Ok(None);
        };
        if let Some((t, until)) = &self.token {
            if tokio::time::Instant::now() < *until {
                return Ok(Some(t.clone()));
            }
        }
        let resp = self
            .http
            .post(&self.cfg.token_url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| format!("reddit token: {e}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reddit token: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "reddit token: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| format!("reddit token: not JSON ({e})"))?;
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("reddit token: no access_token in the answer")?
            .to_string();
        let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        // Renew a minute early.
        let until = tokio::time::Instant::now() + Duration::from_secs(ttl.saturating_sub(60));
        self.token = Some((token.clone(), until));
        Ok(Some(token))
    }
}

/// The URL of a listing page. `raw_json=1` makes Reddit send titles and selftext as written:
/// without it they come HTML-escaped (`&amp;`, `&lt;`, `&gt;`) and would be stored so.
pub fn listing_url(root: &str, sub: &str, suffix: &str, after: Option<&str>) -> String {
    let mut url = format!("{root}/r/{sub}/new{suffix}?limit=100&raw_json=1");
    if let Some(a) = after {
        url.push_str(&format!("&after={a}"));
    }
    url
}

/// One decoded listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The posts.
    pub posts: Vec<SocialPost>,
    /// One message per child that could not be read.
    pub errors: Vec<String>,
    /// The paging cursor (`None`: last page).
    pub after: Option<String>,
}

/// Decodes a listing page.
pub fn decode_listing(
    body: &[u8],
    fetched_at: i64,
    tagger: &CoinTagger,
) -> Result<Listing, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let data = v
        .get("data")
        .filter(|_| v.get("kind").and_then(Value::as_str) == Some("Listing"))
        .ok_or("not a Listing")?;
    let children = data
        .get("children")
        .and_then(Value::as_array)
        .ok_or("Listing without children")?;
    let after = data
        .get("after")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, c) in children.iter().enumerate() {
        match post(c, fetched_at, tagger) {
            Ok(p) => good.push(p),
            Err(e) => bad.push(format!("child {i}: {e}")),
        }
    }
    Ok(Listing {
        posts: good,
        errors: bad,
        after,
    })
}

fn post(c: &Value, fetched_at: i64, tagger: &CoinTagger) -> Result<SocialPost, String> {
    if c.get("kind").and_then(Value::as_str) != Some("t3") {
        return Err("not a post (kind t3)".into());
    }
    let d = c.get("data").and_then(Value::as_object).ok_or("no data")?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let name = s("name")
        .filter(|n| n.starts_with("t3_"))
        .ok_or("no name")?;
    let title = s("title").ok_or(format!("{name}: no title"))?;
    let created = d
        .get("created_utc")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && *t > 0.0)
        .ok_or(format!("{name}: no created_utc"))?;
    let body = s("selftext").unwrap_or_default();
    let coins = tagger.tag(&format!("{title}\n{body}"));
    Ok(SocialPost {
        platform: "reddit".into(),
        post_id: name,
        community: s("subreddit").unwrap_or_default(),
        author: s("author"),
        title,
        body,
        url: s("url"),
        permalink: s("permalink").map(|p| format!("https://www.reddit.com{p}")),
        score: d.get("score").and_then(Value::as_i64).unwrap_or(0),
        num_comments: d.get("num_comments").and_then(Value::as_i64).unwrap_or(0),
        created_at: (created * 1000.0).round() as i64,
        fetched_at,
        coins,
    })
}

impl Poller for Reddit {
    fn name(&self) -> &'static str {
        "reddit"
    }

    async fn poll(&mut self, _cursors: &BTreeMap<String, String>) -> PollOutput {
        let mut out = PollOutput::default();
        for sub in self.cfg.subreddits.clone() {
            let mut after: Option<String> = None;
            for _ in 0..self.cfg.max_pages.max(1) {
                let token = match self.bearer().await {
                    Ok(t) => t,
                    Err(e) => {
                        out.failed_requests += 1;
                        out.errors.push(e);
                        return out;
                    }
                };
                let (root, suffix) = if token.is_some() {
                    (self.cfg.oauth_url.trim_end_matches('/'), "")
                } else {
                    (self.cfg.base_url.trim_end_matches('/'), ".json")
                };
                let url = listing_url(root, &sub, suffix, after.as_deref());
                let auth = token.map(|t| format!("bearer {t}"));
                let headers: Vec<(&str, &str)> = auth
                    .as_deref()
                    .map(|a| vec![("authorization", a)])
                    .unwrap_or_default();
                match self.fetcher.get(&url, &headers).await {
                    Ok(Fetched::NotModified) => {
                        out.responses += 1;
                        break;
                    }
                    Ok(Fetched::Body(body)) => {
                        out.responses += 1;
                        match decode_listing(&body, crate::now_ms(), &self.tagger) {
                            Ok(Listing {
                                posts,
                                errors: bad,
                                after: next,
                            }) => {
                                let all_known = !posts.is_empty()
                                    && posts.iter().all(|p| self.known.contains(&p.post_id));
                                let empty = posts.is_empty();
                                for p in posts {
                                    self.known.insert(p.post_id.clone());
                                    out.items.push(Polled::Social(p));
                                }
                                out.errors
                                    .extend(bad.into_iter().map(|e| format!("reddit r/{sub} {e}")));
                                if all_known || empty || next.is_none() {
                                    break;
                                }
                                after = next;
                            }
                            Err(e) => {
                                out.errors.push(format!("reddit r/{sub}: {e}"));
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        out.failed_requests += 1;
                        out.errors.push(e.to_string());
                        if let FetchError::Rejected { status: 401, .. } = e {
                            // An expired or revoked token: get a new one next time.
                            self.token = None;
                        }
                        break;
                    }
                }
            }
        }
        // Keep the paging memory bounded.
        if self.known.len() > 50_000 {
            self.known.clear();
        }
        out
    }

    fn apis(&self) -> Vec<(String, FetchStats, BreakerState)> {
        vec![(
            "reddit".into(),
            self.fetcher.stats,
            self.fetcher.breaker_state(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_with_a_bad_child() {
        let body = br#"{"kind":"Listing","data":{"after":"t3_b","dist":3,"children":[
            {"kind":"t3","data":{"id":"a","name":"t3_a","title":"BTC to the moon","selftext":"and $eth",
             "author":"u1","created_utc":1795330000.0,"score":12,"num_comments":3,"permalink":"/r/Bitcoin/comments/a/x/",
             "url":"https://www.reddit.com/r/Bitcoin/comments/a/x/","subreddit":"Bitcoin"}},
            {"kind":"t3","data":{"id":"b","name":"t3_b","selftext":"no title"}},
            {"kind":"t1","data":{}}]}}"#;
        let Listing {
            posts,
            errors: bad,
            after,
        } = decode_listing(body, 0, &CoinTagger::default_table()).expect("listing");
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].post_id, "t3_a");
        assert_eq!(posts[0].created_at, 1_795_330_000_000);
        assert_eq!(posts[0].coins, vec!["BTC", "ETH"]);
        assert_eq!(
            posts[0].permalink.as_deref(),
            Some("https://www.reddit.com/r/Bitcoin/comments/a/x/")
        );
        assert_eq!(bad.len(), 2);
        assert_eq!(after.as_deref(), Some("t3_b"));
        // With raw_json=1 Reddit sends text as written: `&`, `<`, `>` and a literal `&amp;` are
        // kept as they are, not decoded a second time.
        let body = br#"{"kind":"Listing","data":{"after":null,"children":[
            {"kind":"t3","data":{"name":"t3_c","title":"AT&T <3 BTC & ETH > 1 &amp; more","selftext":"a < b && c > d",
             "created_utc":1795330000}}]}}"#;
        let l = decode_listing(body, 0, &CoinTagger::default_table()).expect("listing");
        assert_eq!(l.posts[0].title, "AT&T <3 BTC & ETH > 1 &amp; more");
        assert_eq!(l.posts[0].body, "a < b && c > d");
        assert!(
            listing_url("https://oauth.reddit.com", "Bitcoin", "", Some("t3_b"))
                .contains("raw_json=1"),
            "escaped text is never requested"
        );
        assert!(decode_listing(
            b"{\"kind\":\"Listing\",\"da",
            0,
            &CoinTagger::default_table()
        )
        .is_err());
    }
}
