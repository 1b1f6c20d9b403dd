//! When a poller fires: a fixed interval (with jitter) or a five-field cron expression in a time
//! zone.
//!
//! Cron expressions are parsed and evaluated by the `croner` crate: minute (0–59), hour (0–23),
//! day of month (1–31), month (1–12 or `JAN`–`DEC`), day of week (0–6 or `SUN`–`SAT`, Sunday = 0;
//! 7 is Sunday too). Each field is `*`, a number or name, a range `a-b`, a step `*/n` or `a-b/n`,
//! or a comma list of those (`L`, `W` and `#` as croner reads them). The nicknames `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily` and `@hourly` stand for their expressions. As in
//! Vixie cron, when both day fields are restricted a day matches if either does.
//!
//! Time-zone rules (the schedule is local wall-clock time):
//! - a local time that does not exist (the hour skipped when clocks go forward) fires at the
//!   first instant after the jump (02:00 Europe/Madrid on the last Sunday of March fires at
//!   03:00 CEST = 01:00 UTC);
//! - a local time that exists twice (the hour repeated when clocks go back) fires once, at its
//!   first occurrence.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};

/// A schedule error, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed.
    #[error("cron expression {expr:?}: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// The time zone is unknown.
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Madrid)")]
    TimeZone(String),
}

/// The nicknames a cron expression may be.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A parsed five-field cron expression (or a nickname such as `@daily`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron(Box<croner::Cron>);

impl std::str::FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        let fields = expr.split_whitespace().count();
        let nickname = expr.trim_start().starts_with('@');
        if nickname
            && !NICKNAMES
                .iter()
                .any(|n| n.eq_ignore_ascii_case(expr.trim()))
        {
            return Err(err(format!(
                "unknown nickname (use one of {})",
                NICKNAMES.join(", ")
            )));
        }
        if !nickname && fields != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or a nickname \
                 such as @daily, got {fields} fields"
            )));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map(|c| Cron(Box::new(c)))
            .map_err(|e| {
                err(format!(
                    "{e} (fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or \
                     JAN-DEC, day of week 0-7 or SUN-SAT)"
                ))
            })
    }
}

impl Cron {
    /// The first fire time strictly after `after`, in `tz` (`None`: none within 5 years).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let next = self
            .0
            .find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()?
            .with_timezone(&Utc);
        (next - after <= ChronoDuration::days(366 * 5)).then_some(next)
    }
}

/// When a poller fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Every `every`, each run delayed by a random part of `jitter`.
    Every {
        /// Period.
        every: std::time::Duration,
        /// Up to this much random delay per run (spreads load over pollers).
        jitter: std::time::Duration,
    },
    /// A cron expression in a time zone.
    Cron {
        /// The expression.
        cron: Cron,
        /// The zone its wall-clock times are in.
        tz: Tz,
    },
}

impl Schedule {
    /// A cron schedule from `expr` in the IANA zone `tz`.
    pub fn cron(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        Ok(Schedule::Cron {
            cron: expr.parse()?,
            tz: tz
                .parse()
                .map_err(|_| ScheduleError::TimeZone(tz.to_string()))?,
        })
    }

    /// The next fire time after `after` (without jitter; `None`: never).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every { every, .. } => Some(
                after
                    + ChronoDuration::from_std(*every)
                        .ok()?
                        .max(ChronoDuration::milliseconds(1)),
            ),
            Schedule::Cron { cron, tz } => cron.next_after(after, *tz),
        }
    }

    /// The jitter bound.
    pub fn jitter(&self) -> std::time::Duration {
        match self {
            Schedule::Every { jitter, .. } => *jitter,
            Schedule::Cron { .. } => std::time::Duration::ZERO,
        }
    }
}

/// The time of `day` at `h:m` UTC (for tests and callers that build instants).
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap_or_else(|| {
            DateTime::<Utc>::from_naive_utc_and_offset(NaiveDateTime::default(), Utc)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next `n` fire times after `from`.
    fn fires(s: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut t = from;
        (0..n)
            .map(|_| {
                t = s.next_after(t).expect("fires");
                t
            })
            .collect()
    }

    fn madrid_2am() -> Schedule {
        Schedule::cron("0 2 * * *", "Europe/Madrid").expect("valid")
    }

    #[test]
    fn daily_2am_madrid_in_winter_and_summer() {
        let s = madrid_2am();
        // Winter (CET, UTC+1): 02:00 local = 01:00 UTC.
        assert_eq!(
            s.next_after(utc(2026, 1, 15, 12, 0)),
            Some(utc(2026, 1, 16, 1, 0))
        );
        // Summer (CEST, UTC+2): 02:00 local = 00:00 UTC.
        assert_eq!(
            s.next_after(utc(2026, 7, 15, 12, 0)),
            Some(utc(2026, 7, 16, 0, 0))
        );
    }

    #[test]
    fn spring_forward_fires_once_right_after_the_jump() {
        // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC); 02:00 does not exist.
        assert_eq!(
            fires(&madrid_2am(), utc(2026, 3, 27, 12, 0), 4),
            vec![
                utc(2026, 3, 28, 1, 0), // 02:00 CET
                utc(2026, 3, 29, 1, 0), // the jump itself: 03:00 CEST
                utc(2026, 3, 30, 0, 0), // 02:00 CEST
                utc(2026, 3, 31, 0, 0),
            ]
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC); 02:xx happens twice.
        assert_eq!(
            fires(&madrid_2am(), utc(2026, 10, 23, 12, 0), 4),
            vec![
                utc(2026, 10, 24, 0, 0), // 02:00 CEST
                utc(2026, 10, 25, 0, 0), // first 02:00 (CEST); not again at 01:00 UTC
                utc(2026, 10, 26, 1, 0), // 02:00 CET
                utc(2026, 10, 27, 1, 0),
            ]
        );
    }

    #[test]
    fn cron_fields() {
        let s = Schedule::cron("*/15 9-17 * * 1-5", "UTC").expect("valid");
        // Friday 17:50 → Monday 09:00.
        assert_eq!(
            s.next_after(utc(2026, 11, 20, 17, 50)),
            Some(utc(2026, 11, 23, 9, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 11, 23, 9, 0)),
            Some(utc(2026, 11, 23, 9, 15))
        );
        // Day of month OR day of week when both are restricted: the 1st, or any Sunday.
        let s = Schedule::cron("0 0 1 * 0", "UTC").expect("valid");
        assert_eq!(
            s.next_after(utc(2026, 11, 2, 0, 0)),
            Some(utc(2026, 11, 8, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 11, 29, 0, 0)),
            Some(utc(2026, 12, 1, 0, 0))
        );
        // 7 is Sunday too: both fire on the same instants.
        let (sun7, sun0) = (
            Schedule::cron("0 0 * * 7", "UTC").expect("valid"),
            Schedule::cron("0 0 * * 0", "UTC").expect("valid"),
        );
        assert_eq!(
            fires(&sun7, utc(2026, 11, 2, 0, 0), 5),
            fires(&sun0, utc(2026, 11, 2, 0, 0), 5)
        );
        // 2026-11-08 is a Sunday (outside reference: any calendar).
        assert_eq!(
            sun7.next_after(utc(2026, 11, 2, 0, 0)),
            Some(utc(2026, 11, 8, 0, 0))
        );
    }

    #[test]
    fn names_and_nicknames() {
        // Monday 2026-11-23 (a calendar says so), 09:30 in Madrid (CET, UTC+1) = 08:30 UTC.
        let s = Schedule::cron("30 9 * * MON", "Europe/Madrid").expect("valid");
        assert_eq!(
            fires(&s, utc(2026, 11, 20, 12, 0), 2),
            vec![utc(2026, 11, 23, 8, 30), utc(2026, 11, 30, 8, 30)]
        );
        // Lower case and ranges of names; months by name.
        let s = Schedule::cron("0 12 1 jan,jul mon-fri", "UTC").expect("valid");
        // Day of month OR day of week: Friday 2027-01-01 (both), Monday 2027-01-04 (weekday).
        assert_eq!(
            fires(&s, utc(2026, 12, 31, 13, 0), 2),
            vec![utc(2027, 1, 1, 12, 0), utc(2027, 1, 4, 12, 0)]
        );
        // @daily is midnight local time; in Madrid summer that is 22:00 UTC the day before.
        let s = Schedule::cron("@daily", "Europe/Madrid").expect("valid");
        assert_eq!(
            fires(&s, utc(2026, 7, 15, 12, 0), 2),
            vec![utc(2026, 7, 15, 22, 0), utc(2026, 7, 16, 22, 0)]
        );
        let s = Schedule::cron("@hourly", "UTC").expect("valid");
        assert_eq!(
            s.next_after(utc(2026, 7, 15, 12, 0)),
            Some(utc(2026, 7, 15, 13, 0))
        );
        let s = Schedule::cron("@weekly", "UTC").expect("valid");
        // Sunday 2026-07-19 00:00.
        assert_eq!(
            s.next_after(utc(2026, 7, 15, 12, 0)),
            Some(utc(2026, 7, 19, 0, 0))
        );
    }

    #[test]
    fn bad_expressions_are_explained() {
        for (expr, needle) in [
            ("0 2 * *", "5 fields"),
            ("60 2 * * *", "out of bounds. (fields: minute 0-59"),
            ("0 2 * * moon", "illegal character 'M' in part 'MOON'"),
            ("@fortnightly", "unknown nickname (use one of @yearly"),
            ("0 0 2 * * *", "5 fields"),
            ("*/0 * * * *", "Step cannot be zero"),
        ] {
            let e = expr.parse::<Cron>().expect_err(expr).to_string();
            assert!(e.contains(needle), "{expr}: {e}");
        }
        assert!(Schedule::cron("0 2 * * *", "Europe/Madird")
            .expect_err("typo")
            .to_string()
            .contains("IANA"));
    }
}
