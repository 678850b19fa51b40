//! Working days: Monday to Friday, minus public holidays, plus make-up working days (调休).
//! The calendar is data (see `calendar/cn.txt` for the format), loaded from a file with
//! `ledger serve --calendar FILE`; a built-in one ships for 2026 and 2027 of the People's
//! Republic of China. A calendar knows the years its file lists: a date of another year is
//! `CALENDAR_UNKNOWN` (docs/DOMAIN.md, Conventions), never guessed from the weekdays.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The years the calendar holds (those its file lists a day of); `None`: every year
    /// follows the week alone ([`WorkingCalendar::weekdays_only`]).
    years: Option<BTreeSet<i32>>,
}

impl WorkingCalendar {
    /// The built-in PRC calendar for 2026 and 2027.
    pub fn builtin() -> WorkingCalendar {
        WorkingCalendar::parse(BUILTIN_CN).expect("the built-in calendar parses")
    }

    /// A calendar that knows only the week (no holidays) in every year: for tests and
    /// markets without public holidays.
    pub fn weekdays_only() -> WorkingCalendar {
        WorkingCalendar { exceptions: BTreeMap::new(), years: None }
    }

    /// Reads a calendar file (the format of `calendar/cn.txt`).
    pub fn load(path: &std::path::Path) -> Result<WorkingCalendar, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        WorkingCalendar::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses `YYYY-MM-DD holiday|workday [name]` lines; `#` starts a comment. A make-up
    /// workday must fall on a weekend and a holiday must not be listed twice. The years
    /// listed are the years the calendar holds; a file that lists none is refused.
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
        let years: BTreeSet<i32> = exceptions.keys().map(|d| d.year()).collect();
        if years.is_empty() {
            return Err(CoreError::InvalidCalendar { line: 0, reason: "the file lists no day".into() });
        }
        Ok(WorkingCalendar { exceptions, years: Some(years) })
    }

    /// The years the calendar holds, e.g. `2026, 2027` (`every year` for weekdays only).
    pub fn years(&self) -> String {
        match &self.years {
            None => "every year".into(),
            Some(years) => years.iter().map(i32::to_string).collect::<Vec<_>>().join(", "),
        }
    }

    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CoreError> {
        if self.years.as_ref().is_some_and(|years| !years.contains(&date.year())) {
            return Err(CoreError::CalendarUnknown { date, years: self.years() });
        }
        Ok(match self.exceptions.get(&date) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::Workday) => true,
            None => !is_weekend(date),
        })
    }

    /// The `n`-th working day after `date` (`date` itself never counts); `CALENDAR_UNKNOWN`
    /// when a day on the way lies in a year the calendar does not hold.
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> Result<NaiveDate, CoreError> {
        assert!(n <= MAX_WORKING_DAYS, "asked for {n} working days");
        let mut day = date;
        let mut left = n;
        while left > 0 {
            day += Duration::days(1);
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
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
        let works = |d: &str| cal.is_working_day(day(d)).unwrap();
        assert!(works("2026-07-01")); // a Wednesday
        assert!(!works("2026-07-04")); // a Saturday
        assert!(!works("2026-10-05")); // National Day, a Monday
        assert!(works("2026-10-10")); // make-up Saturday
        assert!(works("2026-01-04")); // make-up Sunday
    }

    #[test]
    fn seven_working_days_skip_the_national_day_week() {
        let cal = WorkingCalendar::builtin();
        // Approved Wed 2026-09-30: Oct 1–7 are off, Sat Oct 10 is worked.
        // Working days after: Oct 8, 9, 10, 12, 13, 14, 15.
        assert_eq!(cal.add_working_days(day("2026-09-30"), 7), Ok(day("2026-10-15")));
        // Without holidays it would be Oct 9.
        assert_eq!(WorkingCalendar::weekdays_only().add_working_days(day("2026-09-30"), 7), Ok(day("2026-10-09")));
        // An approval on a Friday counts from the Monday.
        assert_eq!(cal.add_working_days(day("2026-07-03"), 7), Ok(day("2026-07-14")));
    }

    #[test]
    fn a_date_beyond_the_loaded_years_is_unknown_never_guessed() {
        let cal = WorkingCalendar::builtin();
        assert_eq!(cal.years(), "2026, 2027");
        assert_eq!(cal.is_working_day(day("2028-01-03")).unwrap_err().code(), "CALENDAR_UNKNOWN");
        assert_eq!(cal.is_working_day(day("2025-12-31")).unwrap_err().code(), "CALENDAR_UNKNOWN");
        // Seven working days from the last days of the last year known run past it.
        assert_eq!(cal.add_working_days(day("2027-12-27"), 7).unwrap_err().code(), "CALENDAR_UNKNOWN");
        assert_eq!(cal.add_working_days(day("2027-12-20"), 7), Ok(day("2027-12-29")));
        // A file holds the years it lists, and only those.
        let one_year = WorkingCalendar::parse("2030-10-01 holiday\n").unwrap();
        assert!(one_year.is_working_day(day("2030-10-02")).unwrap());
        assert_eq!(one_year.is_working_day(day("2031-01-02")).unwrap_err().code(), "CALENDAR_UNKNOWN");
        assert!(WorkingCalendar::weekdays_only().is_working_day(day("2099-01-02")).unwrap());
    }

    #[test]
    fn a_calendar_file_is_checked() {
        assert!(WorkingCalendar::parse("2026-07-06 workday").is_err()); // a Monday
        assert!(WorkingCalendar::parse("2026-07-06 vacation").is_err());
        assert!(WorkingCalendar::parse("2026-13-01 holiday").is_err());
        assert!(WorkingCalendar::parse("2026-07-06 holiday\n2026-07-06 holiday").is_err());
        assert_eq!(WorkingCalendar::parse("# nothing but a comment\n").unwrap_err().code(), "INVALID_CALENDAR");
        let cal = WorkingCalendar::parse("# comment\n2026-07-06 holiday Founders' day\n").unwrap();
        assert!(!cal.is_working_day(day("2026-07-06")).unwrap());
    }
}
