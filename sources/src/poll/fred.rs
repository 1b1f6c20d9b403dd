//! FRED (`/fred/series/observations`) payloads → typed macro observations.
//!
//! Each observation is `{"realtime_start","realtime_end","date","value"}` with `value` a decimal
//! string and `"."` for a missing value (stored as NULL). `realtime_start` is kept: FRED revises
//! values, and storing each vintage keeps the table point-in-time correct. A bad observation is
//! reported and skipped; the others of the response still count.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One observation of one series in one vintage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
                    v => Some(
                        v.parse::<Decimal>()
                            .or_else(|_| Decimal::from_scientific(v))
                            .map_err(|_| format!("bad value {v:?}"))?,
                    ),
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
