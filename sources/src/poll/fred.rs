//! FRED (`/fred/series/observations`) payloads → typed macro observations.
//!
//! Each observation is `{"realtime_start","realtime_end","date","value"}` with `value` a decimal
//! string and `"."` for a missing value (stored as NULL). `realtime_start` is kept: FRED revises
//! values, and storing each vintage keeps the table point-in-time correct. A bad observation is
//! reported and skipped; the others of the response still count.

use chrono::NaiveDate;
use serde::Deserialize;

use super::number::parse_exact;

pub use cryptoflow_operators::polled::MacroObservation;

/// Why a response or an observation could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FredError {
    /// Not the observations envelope (truncated, HTML error page, wrong shape).
    #[error("FRED {series}: not an observations response: {reason}")]
    Envelope {
        /// Series id.
        series: String,
        /// What went wrong.
        reason: String,
    },
    /// One observation is malformed.
    #[error("FRED {series}: observation {index}: {reason}")]
    Observation {
        /// Series id.
        series: String,
        /// Its position in the response.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    observations: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Wire {
    realtime_start: String,
    realtime_end: String,
    date: String,
    value: String,
}

fn date(s: &str, what: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("bad {what} {s:?}"))
}

/// Decodes a response: the good observations, and an error for each bad one.
pub fn decode(
    series: &str,
    body: &[u8],
) -> Result<(Vec<MacroObservation>, Vec<FredError>), FredError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| FredError::Envelope {
        series: series.to_string(),
        reason: e.to_string(),
    })?;
    let mut good = Vec::with_capacity(env.observations.len());
    let mut bad = Vec::new();
    for (index, raw) in env.observations.into_iter().enumerate() {
        let one = serde_json::from_value::<Wire>(raw)
            .map_err(|e| e.to_string())
            .and_then(|w| {
                let value = match w.value.trim() {
                    "." | "" => None,
                    v => Some(parse_exact(v).map_err(|e| format!("bad value {v:?}: {e}"))?),
                };
                Ok(MacroObservation {
                    series_id: series.to_string(),
                    date: date(&w.date, "date")?,
                    value,
                    realtime_start: date(&w.realtime_start, "realtime_start")?,
                    realtime_end: date(&w.realtime_end, "realtime_end")?,
                })
            });
        match one {
            Ok(o) => good.push(o),
            Err(reason) => bad.push(FredError::Observation {
                series: series.to_string(),
                index,
                reason,
            }),
        }
    }
    Ok((good, bad))
}

/// The request URL for `series` from `start` on (incremental polling: the day after the last
/// stored date).
pub fn observations_url(
    base: &str,
    series: &str,
    api_key: &str,
    start: Option<NaiveDate>,
) -> String {
    let mut url = format!(
        "{}/fred/series/observations?series_id={series}&api_key={api_key}&file_type=json",
        base.trim_end_matches('/')
    );
    if let Some(d) = start {
        url.push_str(&format!("&observation_start={}", d.format("%Y-%m-%d")));
    }
    url
}

/// Settings of the FRED poller.
#[derive(Debug, Clone)]
pub struct FredConfig {
    /// API root (`https://api.stlouisfed.org`).
    pub base_url: String,
    /// The API key.
    pub api_key: String,
    /// Series ids.
    pub series: Vec<String>,
    /// First observation date fetched for a series with nothing stored.
    pub start: NaiveDate,
    /// Each poll re-reads this many days before the last stored date, to catch revisions.
    pub revision_lookback_days: i64,
    /// Requests per minute.
    pub per_minute: f64,
    /// User-Agent.
    pub user_agent: String,
}

fn redact(e: super::fetch::FetchError, key: &str) -> super::fetch::FetchError {
    use super::fetch::FetchError as E;
    let r = |s: String| s.replace(key, "<FRED_API_KEY>");
    match e {
        E::Rejected {
            api,
            url,
            status,
            body,
        } => E::Rejected {
            api,
            url: r(url),
            status,
            body,
        },
        E::Exhausted {
            api,
            url,
            attempts,
            last,
        } => E::Exhausted {
            api,
            url: r(url),
            attempts,
            last: r(last),
        },
        other => other,
    }
}

/// The FRED poller: incremental per series from the last stored date (cursor `series id →
/// last date`), every vintage kept.
pub struct Fred {
    cfg: FredConfig,
    fetcher: super::fetch::Fetcher,
}

impl Fred {
    /// A poller for `cfg`.
    pub fn new(cfg: FredConfig) -> Result<Self, super::fetch::FetchError> {
        let fetcher = super::fetch::Fetcher::new(
            super::fetch::ApiPolicy::new("fred", cfg.per_minute),
            &cfg.user_agent,
        )?;
        Ok(Fred { cfg, fetcher })
    }
}

impl super::driver::Poller for Fred {
    fn name(&self) -> &'static str {
        "fred"
    }

    async fn poll(
        &mut self,
        cursors: &std::collections::BTreeMap<String, String>,
    ) -> super::driver::PollOutput {
        let mut out = super::driver::PollOutput::default();
        for series in self.cfg.series.clone() {
            let last = cursors
                .get(&series)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let start = match last {
                Some(d) => d - chrono::Duration::days(self.cfg.revision_lookback_days.max(0)),
                None => self.cfg.start,
            };
            let url = observations_url(&self.cfg.base_url, &series, &self.cfg.api_key, Some(start));
            let fetched = self
                .fetcher
                .get(&url, &[])
                .await
                // The key is in the URL: keep it out of logs.
                .map_err(|e| redact(e, &self.cfg.api_key));
            let mut newest = None;
            out.absorb(fetched, |body| {
                let (good, bad) = decode(&series, body).map_err(|e| e.to_string())?;
                newest = good.iter().map(|o| o.date).max();
                Ok((good, bad.into_iter().map(|e| e.to_string()).collect()))
            });
            if let Some(d) = newest.filter(|d| last.is_none_or(|l| *d > l)) {
                out.cursors
                    .insert(series.clone(), d.format("%Y-%m-%d").to_string());
            }
        }
        out
    }

    fn apis(&self) -> Vec<(String, super::fetch::FetchStats, super::BreakerState)> {
        vec![(
            "fred".into(),
            self.fetcher.stats,
            self.fetcher.breaker_state(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_values_missing_values_and_vintages() {
        let body = br#"{"realtime_start":"2026-11-22","realtime_end":"2026-11-22","observation_start":"1600-01-01",
            "observation_end":"9999-12-31","units":"lin","output_type":1,"file_type":"json","order_by":"observation_date",
            "sort_order":"asc","count":4,"offset":0,"limit":100000,"observations":[
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-08-01","value":"4.33"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-09-01","value":"."},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-10-01","value":"abc"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-13-01","value":"4.1"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-11-01","value":"4.09"}]}"#;
        let (good, bad) = decode("FEDFUNDS", body).expect("envelope");
        assert_eq!(good.len(), 3);
        assert_eq!(good[0].value, Some("4.33".parse().expect("d")));
        assert_eq!(good[1].value, None, "\".\" is missing");
        assert_eq!(
            good[2].date,
            NaiveDate::from_ymd_opt(2026, 11, 1).expect("d")
        );
        assert_eq!(
            good[0].realtime_end,
            NaiveDate::from_ymd_opt(9999, 12, 31).expect("d")
        );
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].to_string().contains("bad value \"abc\""),
            "{}",
            bad[0]
        );
        assert!(bad[1].to_string().contains("bad date"), "{}", bad[1]);
    }

    #[test]
    fn values_are_exact_and_unrepresentable_ones_are_errors() {
        let body = br#"{"observations":[
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-08-01","value":"27720.709"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-09-01","value":"1.2e-7"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-10-01","value":"0.12345678901234567890123456789"},
            {"realtime_start":"2026-11-22","realtime_end":"9999-12-31","date":"2026-11-01","value":"-0.0000000000000000000000000001"}]}"#;
        let (good, bad) = decode("X", body).expect("envelope");
        // Python: format(decimal.Decimal(value), 'f').
        let got: Vec<String> = good
            .iter()
            .map(|o| o.value.expect("value").to_string())
            .collect();
        assert_eq!(
            got,
            vec!["27720.709", "0.00000012", "-0.0000000000000000000000000001"]
        );
        assert_eq!(bad.len(), 1, "29 decimal places are not rounded: {bad:?}");
        assert!(
            bad[0].to_string().contains("cannot be stored exactly"),
            "{}",
            bad[0]
        );
    }

    #[test]
    fn truncated_and_error_pages_are_clear_errors() {
        let e =
            decode("GDP", br#"{"observations":[{"date":"2026-01-01","val"#).expect_err("truncated");
        assert!(
            e.to_string()
                .starts_with("FRED GDP: not an observations response"),
            "{e}"
        );
        assert!(decode("GDP", b"<html>Bad Request</html>").is_err());
    }

    #[test]
    fn incremental_url() {
        assert_eq!(
            observations_url("http://127.0.0.1:1/", "DGS10", "k", NaiveDate::from_ymd_opt(2026, 11, 2)),
            "http://127.0.0.1:1/fred/series/observations?series_id=DGS10&api_key=k&file_type=json&observation_start=2026-11-02"
        );
    }
}
