//! When a poller fires: a fixed interval (with jitter) or a five-field cron expression in a time
//! zone.
//!
//! Cron fields: minute (0–59), hour (0–23), day of month (1–31), month (1–12), day of week (0–6,
//! Sunday = 0; 7 is accepted as Sunday). Each field is `*`, a number, a range `a-b`, a step
//! `*/n` or `a-b/n`, or a comma list of those. As in Vixie cron, when both day fields are
//! restricted a day matches if either does.
//!
//! Time-zone rules (the schedule is local wall-clock time):
//! - a local time that does not exist (the hour skipped when clocks go forward) fires at the same
//!   wall-clock reading on the offset in effect before the change, i.e. right after the jump
//!   (02:00 Europe/Madrid on the last Sunday of March fires at 03:00 CEST = 01:00 UTC);
//! - a local time that exists twice (the hour repeated when clocks go back) fires once, at its
//!   first occurrence.

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

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

/// A parsed five-field cron expression (bit sets per field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

fn parse_field(expr: &str, field: &str, lo: u32, hi: u32) -> Result<(u64, bool), String> {
    let mut set = 0u64;
    let mut restricted = true;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("bad step {s:?} in {part:?}"))?;
                if step == 0 {
                    return Err(format!("step 0 in {part:?}"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            if step == 1 && field == "*" {
                restricted = false;
            }
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a: u32 = a.parse().map_err(|_| format!("bad number {a:?}"))?;
            let b: u32 = b.parse().map_err(|_| format!("bad number {b:?}"))?;
            (a, b)
        } else {
            let a: u32 = range
                .parse()
                .map_err(|_| format!("bad number {range:?} in {expr:?}"))?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{part:?} is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            set |= 1 << v;
            v += step;
        }
    }
    Ok((set, restricted))
}

impl std::str::FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(expr: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            )));
        }
        let (minutes, _) = parse_field(expr, fields[0], 0, 59).map_err(err)?;
        let (hours, _) = parse_field(expr, fields[1], 0, 23).map_err(err)?;
        let (days, days_restricted) = parse_field(expr, fields[2], 1, 31).map_err(err)?;
        let (months, _) = parse_field(expr, fields[3], 1, 12).map_err(err)?;
        let (mut weekdays, weekdays_restricted) =
            parse_field(expr, fields[4], 0, 7).map_err(err)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            days_restricted,
            weekdays_restricted,
        })
    }
}

impl Cron {
    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first fire time strictly after `after`, in `tz` (`None`: none within 5 years).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let start_day = local.date();
        for day_offset in 0..(366 * 5) {
            let day = start_day + ChronoDuration::days(day_offset);
            if !self.day_matches(day) {
                continue;
            }
            for hour in 0..24u32 {
                if self.hours & (1 << hour) == 0 {
                    continue;
                }
                for minute in 0..60u32 {
                    if self.minutes & (1 << minute) == 0 {
                        continue;
                    }
                    let Some(naive) = day.and_hms_opt(hour, minute, 0) else {
                        continue;
                    };
                    if let Some(at) = resolve(naive, tz) {
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
        }
        None
    }
}

/// The instant of a local wall-clock time (see the module's time-zone rules).
fn resolve(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::offset::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: read the wall-clock time with the offset before the jump.
            let before = tz
                .from_local_datetime(&(naive - ChronoDuration::hours(3)))
                .earliest()?;
            let offset = before.offset().fix();
            Some(DateTime::<Utc>::from_naive_utc_and_offset(
                naive - ChronoDuration::seconds(i64::from(offset.local_minus_utc())),
                Utc,
            ))
        }
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
        // 7 is Sunday too.
        assert_eq!(
            "0 0 * * 7".parse::<Cron>().expect("valid"),
            "0 0 * * 0".parse::<Cron>().expect("valid")
        );
    }

    #[test]
    fn bad_expressions_are_explained() {
        for (expr, needle) in [
            ("0 2 * *", "5 fields"),
            ("60 2 * * *", "outside 0-59"),
            ("0 2 * * mon", "bad number"),
            ("*/0 * * * *", "step 0"),
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
