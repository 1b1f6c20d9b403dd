//! `[poll]`: the pollers' configuration, and building them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cryptoflow_sources::poll::coingecko::{CoinGecko, CoinGeckoConfig, DEFAULT_COINS};
use cryptoflow_sources::poll::driver::{run_poller, DriverConfig, PollLink, Poller};
use cryptoflow_sources::poll::fred::{Fred, FredConfig};
use cryptoflow_sources::poll::myinvestor::{MyInvestor, MyInvestorConfig};
use cryptoflow_sources::poll::reddit::{Reddit, RedditConfig};
use cryptoflow_sources::poll::rss::{Rss, RssConfig, DEFAULT_FEEDS};
use cryptoflow_sources::poll::schedule::Schedule;
use cryptoflow_sources::poll::text::CoinTagger;
use serde::{Deserialize, Serialize};

/// When a poller runs: `every_s` (with `jitter_s`), or `cron` in `tz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// Period, seconds (ignored when `cron` is set).
    #[serde(default)]
    pub every_s: u64,
    /// Random delay per run up to this, seconds.
    #[serde(default)]
    pub jitter_s: u64,
    /// Five-field cron expression ("" = use `every_s`).
    #[serde(default)]
    pub cron: String,
    /// IANA time zone of `cron`.
    #[serde(default = "utc")]
    pub tz: String,
}

fn utc() -> String {
    "UTC".into()
}

impl ScheduleSection {
    fn build(&self, what: &str) -> Result<Schedule> {
        if !self.cron.is_empty() {
            return Schedule::cron(&self.cron, &self.tz).with_context(|| format!("{what}.cron"));
        }
        if self.every_s == 0 {
            bail!("{what}: set every_s (seconds) or cron");
        }
        Ok(Schedule::Every {
            every: Duration::from_secs(self.every_s),
            jitter: Duration::from_secs(self.jitter_s),
        })
    }

    /// How long without a good poll before the ledger calls the poller stale, ms.
    fn stale_after_ms(&self) -> i64 {
        if self.cron.is_empty() {
            (self.every_s as i64 * 3 + 600) * 1000
        } else {
            2 * 86_400_000
        }
    }
}

/// `[poll]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSection {
    /// Run the enabled pollers with `cryptoflow run` / `consume`.
    pub enabled: bool,
    /// Where each poller keeps its state (`<dir>/<poller>.json`).
    pub state_dir: String,
    /// User-Agent of every request.
    pub user_agent: String,
    /// Keys no poll lists any more are forgotten after this many days.
    pub retention_days: u64,
    /// Most keys remembered per poller.
    pub max_keys: usize,
    /// A poll without any good response is retried after this many seconds.
    pub retry_after_failure_s: u64,
    /// At start, with a PostgreSQL sink, feed the stored sentiment of the last 49 hours per coin,
    /// the stored macro observations and the latest CoinGecko snapshot per coin back into the
    /// dataflow, so that the per-coin windows and the features carry on where the previous run
    /// stopped.
    pub restore_context: bool,
    /// Extra coin aliases for tagging news and posts: ticker → names.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Tickers that are common words: tagged only as cashtags (`$ONE`).
    #[serde(default)]
    pub ambiguous: Vec<String>,
    /// CoinGecko.
    pub coingecko: CoinGeckoSection,
    /// RSS/Atom.
    pub rss: RssSection,
    /// Reddit.
    pub reddit: RedditSection,
    /// FRED.
    pub fred: FredSection,
    /// MyInvestor.
    pub myinvestor: MyInvestorSection,
    /// Stop each poller after this many polls (`run --poll-once`); not read from files.
    #[serde(skip)]
    pub max_polls: Option<u64>,
}

/// `[poll.coingecko]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoinGeckoSection {
    /// Run it.
    pub enabled: bool,
    /// API root.
    pub base_url: String,
    /// `demo` or `pro`.
    pub plan: String,
    /// Environment variable holding the key (optional for `demo`).
    pub api_key_env: String,
    /// Coin ids ([] = the 92 largest).
    pub coins: Vec<String>,
    /// Quote currency.
    pub vs_currency: String,
    /// Ids per request.
    pub ids_per_request: usize,
    /// Also call `/simple/price`.
    pub simple_price: bool,
    /// Requests per minute.
    pub per_minute: f64,
    /// Schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

/// `[poll.rss]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RssSection {
    /// Run it.
    pub enabled: bool,
    /// Feed URLs ([] = the default list).
    pub feeds: Vec<String>,
    /// Requests per minute per feed.
    pub per_minute: f64,
    /// Schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

/// `[poll.reddit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedditSection {
    /// Run it.
    pub enabled: bool,
    /// Subreddits.
    pub subreddits: Vec<String>,
    /// Anonymous listings root.
    pub base_url: String,
    /// OAuth listings root.
    pub oauth_url: String,
    /// OAuth token endpoint.
    pub token_url: String,
    /// Environment variables of the OAuth client id and secret (OAuth when both are set).
    pub client_id_env: String,
    /// See `client_id_env`.
    pub client_secret_env: String,
    /// Pages per subreddit per poll at most.
    pub max_pages: usize,
    /// Requests per minute (0: 9 anonymous, 90 with OAuth; Reddit allows 10 and 100).
    pub per_minute: f64,
    /// Schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

/// `[poll.fred]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FredSection {
    /// Run it (needs a key).
    pub enabled: bool,
    /// API root.
    pub base_url: String,
    /// Environment variable holding the key.
    pub api_key_env: String,
    /// Series ids.
    pub series: Vec<String>,
    /// First date fetched for a new series (YYYY-MM-DD).
    pub start: String,
    /// Days re-read before the last stored date, for revisions.
    pub revision_lookback_days: i64,
    /// Requests per minute.
    pub per_minute: f64,
    /// Schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

/// `[poll.myinvestor]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MyInvestorSection {
    /// Run it.
    pub enabled: bool,
    /// The fund catalogue page.
    pub url: String,
    /// Requests per minute.
    pub per_minute: f64,
    /// Schedule.
    #[serde(flatten)]
    pub schedule: ScheduleSection,
}

/// A poller ready to run: its task and the ledger's stale time for it.
pub struct PollerTask {
    /// Poller name.
    pub name: &'static str,
    /// Ledger key (`poll`, NAME).
    pub ledger_symbol: String,
    /// Stale after, ms.
    pub stale_after_ms: i64,
    start: Box<dyn FnOnce(PollLink) -> tokio::task::JoinHandle<Result<()>> + Send>,
}

impl PollerTask {
    /// Spawns the poller on the current tokio runtime.
    pub fn spawn(self, link: PollLink) -> tokio::task::JoinHandle<Result<()>> {
        (self.start)(link)
    }
}

fn task<P: Poller>(
    poller: P,
    schedule: &ScheduleSection,
    what: &str,
    common: &PollSection,
    max_polls: Option<u64>,
) -> Result<PollerTask> {
    let name = poller.name();
    let cfg = DriverConfig {
        schedule: schedule.build(what)?,
        state_path: PathBuf::from(&common.state_dir).join(format!("{name}.json")),
        retention: Duration::from_secs(common.retention_days.max(1) * 86_400),
        max_keys: common.max_keys.max(1),
        retry_after_failure: Duration::from_secs(common.retry_after_failure_s.max(1)),
        max_polls,
    };
    Ok(PollerTask {
        name,
        ledger_symbol: name.to_uppercase(),
        stale_after_ms: schedule.stale_after_ms(),
        start: Box::new(move |link| {
            tokio::spawn(async move {
                run_poller(poller, cfg, link)
                    .await
                    .map_err(|e| anyhow!("poller {name}: {e}"))
            })
        }),
    })
}

fn env_nonempty(env: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let v = env(key).filter(|v| !v.trim().is_empty());
    if let Some(v) = &v {
        // API keys and client secrets never reach a log line or an error message.
        crate::secrets::remember(v);
    }
    v
}

impl PollSection {
    /// The coin tagger: the default table plus `aliases`.
    pub fn tagger(&self) -> CoinTagger {
        let mut t = CoinTagger::default_table();
        t.extend(
            self.aliases
                .iter()
                .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect())),
            &self
                .ambiguous
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        t
    }

    /// The enabled pollers (keys read through `env`). A poller that needs a key it does not have
    /// is skipped with a warning; a bad setting is an error.
    pub fn pollers(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<PollerTask>> {
        let max_polls = self.max_polls;
        let mut out = Vec::new();
        let ua = self.user_agent.clone();
        let c = &self.coingecko;
        if c.enabled {
            if c.plan != "demo" && c.plan != "pro" {
                bail!(
                    "poll.coingecko.plan must be \"demo\" or \"pro\", not {:?}",
                    c.plan
                );
            }
            let api_key = env_nonempty(env, &c.api_key_env);
            if c.plan == "pro" && api_key.is_none() {
                bail!(
                    "poll.coingecko.plan = \"pro\" needs a key in ${}",
                    c.api_key_env
                );
            }
            let poller = CoinGecko::new(CoinGeckoConfig {
                base_url: c.base_url.clone(),
                plan: c.plan.clone(),
                api_key,
                coins: if c.coins.is_empty() {
                    DEFAULT_COINS.iter().map(|s| s.to_string()).collect()
                } else {
                    c.coins.clone()
                },
                vs_currency: c.vs_currency.clone(),
                ids_per_request: c.ids_per_request,
                simple_price: c.simple_price,
                per_minute: c.per_minute,
                user_agent: ua.clone(),
            })?;
            out.push(task(
                poller,
                &c.schedule,
                "poll.coingecko",
                self,
                max_polls,
            )?);
        }
        let r = &self.rss;
        if r.enabled {
            let feeds = if r.feeds.is_empty() {
                DEFAULT_FEEDS.iter().map(|s| s.to_string()).collect()
            } else {
                r.feeds.clone()
            };
            let poller = Rss::new(
                RssConfig {
                    feeds,
                    per_minute: r.per_minute,
                    user_agent: ua.clone(),
                },
                self.tagger(),
            )?;
            out.push(task(poller, &r.schedule, "poll.rss", self, max_polls)?);
        }
        let rd = &self.reddit;
        if rd.enabled {
            let credentials =
                env_nonempty(env, &rd.client_id_env).zip(env_nonempty(env, &rd.client_secret_env));
            let poller = Reddit::new(
                RedditConfig {
                    subreddits: rd.subreddits.clone(),
                    base_url: rd.base_url.clone(),
                    oauth_url: rd.oauth_url.clone(),
                    token_url: rd.token_url.clone(),
                    credentials,
                    max_pages: rd.max_pages,
                    per_minute: rd.per_minute,
                    user_agent: ua.clone(),
                },
                self.tagger(),
            )?;
            out.push(task(poller, &rd.schedule, "poll.reddit", self, max_polls)?);
        }
        let f = &self.fred;
        if f.enabled {
            match env_nonempty(env, &f.api_key_env) {
                None => tracing::warn!(
                    "FRED poller skipped: no API key in ${} (free at fred.stlouisfed.org)",
                    f.api_key_env
                ),
                Some(api_key) => {
                    let start = chrono::NaiveDate::parse_from_str(&f.start, "%Y-%m-%d")
                        .with_context(|| format!("poll.fred.start {:?} (YYYY-MM-DD)", f.start))?;
                    let poller = Fred::new(FredConfig {
                        base_url: f.base_url.clone(),
                        api_key,
                        series: f.series.clone(),
                        start,
                        revision_lookback_days: f.revision_lookback_days,
                        per_minute: f.per_minute,
                        user_agent: ua.clone(),
                    })?;
                    out.push(task(poller, &f.schedule, "poll.fred", self, max_polls)?);
                }
            }
        }
        let m = &self.myinvestor;
        if m.enabled {
            let poller = MyInvestor::new(MyInvestorConfig {
                url: m.url.clone(),
                per_minute: m.per_minute,
                user_agent: ua,
            })?;
            out.push(task(
                poller,
                &m.schedule,
                "poll.myinvestor",
                self,
                max_polls,
            )?);
        }
        Ok(out)
    }

    /// Checks the schedules and settings without building clients.
    pub fn validate(&self) -> Result<()> {
        for (what, s) in [
            ("poll.coingecko", &self.coingecko.schedule),
            ("poll.rss", &self.rss.schedule),
            ("poll.reddit", &self.reddit.schedule),
            ("poll.fred", &self.fred.schedule),
            ("poll.myinvestor", &self.myinvestor.schedule),
        ] {
            s.build(what)?;
        }
        if self.coingecko.ids_per_request == 0 {
            bail!("poll.coingecko.ids_per_request must be at least 1");
        }
        chrono::NaiveDate::parse_from_str(&self.fred.start, "%Y-%m-%d")
            .with_context(|| format!("poll.fred.start {:?} (YYYY-MM-DD)", self.fred.start))?;
        Ok(())
    }
}
