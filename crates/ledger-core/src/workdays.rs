//! Working days: Monday to Friday, minus public holidays, plus make-up working days (调休).
//! The calendar is data (see `calendar/cn.txt` for the format); a built-in one ships for
//! 2026 and 2027 of the People's Republic of China.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::CoreError;

/// The built-in calendar text.
pub const BUILTIN_CN: &str = include_str!("../calendar/cn.txt");

/// Counting more working days than this is a caller's bug, not a business rule.
pub const MAX_WORKING_DAYS: u32 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayKind {
    Holiday,
    Workday,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCalendar {
    exceptions: BTreeMap<NaiveDate, DayKind>,
}

impl WorkingCalendar {
    /// The built-in PRC calendar for 2026 and 2027.
    pub fn builtin() -> WorkingCalendar {
        WorkingCalendar::parse(BUILTIN_CN).expect("the built-in calendar parses")
    }

    /// A calendar that knows only the week (no holidays): for tests and other markets.
    pub fn weekdays_only() -> WorkingCalendar {
        WorkingCalendar { exceptions: BTreeMap::new() }
    }

    /// Parses `YYYY-MM-DD holiday|workday [name]` lines; `#` starts a comment. A make-up
    /// workday must fall on a weekend and a holiday must not be listed twice.
    pub fn parse(text: &str) -> Result<WorkingCalendar, CoreError> {
        let mut exceptions = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| CoreError::InvalidCalendar { line: i + 1, reason };
            let mut parts = line.split_whitespace();
            let date = parts.next().unwrap_or("");
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| bad(format!("{date:?} is not a YYYY-MM-DD date")))?;
            let kind = match parts.next() {
                Some("holiday") => DayKind::Holiday,
                Some("workday") => {
                    if !is_weekend(date) {
                        return Err(bad(format!("{date} is a weekday; a make-up workday is a Saturday or Sunday")));
                    }
                    DayKind::Workday
                }
                other => return Err(bad(format!("expected holiday or workday, found {other:?}"))),
            };
            if exceptions.insert(date, kind).is_some() {
                return Err(bad(format!("{date} is listed twice")));
            }
        }
        Ok(WorkingCalendar { exceptions })
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.exceptions.get(&date) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::Workday) => true,
            None => !is_weekend(date),
        }
    }

    /// The `n`-th working day after `date` (`date` itself never counts).
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> NaiveDate {
        assert!(n <= MAX_WORKING_DAYS, "asked for {n} working days");
        let mut day = date;
        let mut left = n;
        while left > 0 {
            day += Duration::days(1);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weekends_holidays_and_make_up_days() {
        let cal = WorkingCalendar::builtin();
        assert!(cal.is_working_day(day("2026-07-01"))); // a Wednesday
        assert!(!cal.is_working_day(day("2026-07-04"))); // a Saturday
        assert!(!cal.is_working_day(day("2026-10-05"))); // National Day, a Monday
        assert!(cal.is_working_day(day("2026-10-10"))); // make-up Saturday
        assert!(cal.is_working_day(day("2026-01-04"))); // make-up Sunday
    }

    #[test]
    fn seven_working_days_skip_the_national_day_week() {
        let cal = WorkingCalendar::builtin();
        // Approved Wed 2026-09-30: Oct 1–7 are off, Sat Oct 10 is worked.
        // Working days after: Oct 8, 9, 10, 12, 13, 14, 15.
        assert_eq!(cal.add_working_days(day("2026-09-30"), 7), day("2026-10-15"));
        // Without holidays it would be Oct 9.
        assert_eq!(WorkingCalendar::weekdays_only().add_working_days(day("2026-09-30"), 7), day("2026-10-09"));
        // An approval on a Friday counts from the Monday.
        assert_eq!(cal.add_working_days(day("2026-07-03"), 7), day("2026-07-14"));
    }

    #[test]
    fn a_calendar_file_is_checked() {
        assert!(WorkingCalendar::parse("2026-07-06 workday").is_err()); // a Monday
        assert!(WorkingCalendar::parse("2026-07-06 vacation").is_err());
        assert!(WorkingCalendar::parse("2026-13-01 holiday").is_err());
        assert!(WorkingCalendar::parse("2026-07-06 holiday\n2026-07-06 holiday").is_err());
        let cal = WorkingCalendar::parse("# comment\n2026-07-06 holiday Founders' day\n").unwrap();
        assert!(!cal.is_working_day(day("2026-07-06")));
    }
}
