//! Business time. The vendor's business runs in China Standard Time (UTC+08:00, no daylight
//! saving): months, quarters and "the day after" are computed there, while instants are
//! stored and sent in UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

/// China Standard Time, UTC+08:00.
pub const CST: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(tz) => tz,
    None => panic!("UTC+08:00 is a valid offset"),
};

/// The calendar date of an instant in business time.
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&CST).date_naive()
}

/// The instant a business day begins (00:00 CST).
pub fn start_of_business_day(date: NaiveDate) -> DateTime<Utc> {
    CST.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

/// A calendar month, written `2026-07`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Month, CoreError> {
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(CoreError::InvalidMonth(format!("{year:04}-{month:02}")));
        }
        Ok(Month { year, month })
    }

    /// The business month an instant falls in.
    pub fn of(at: DateTime<Utc>) -> Month {
        Month::of_date(business_date(at))
    }

    pub fn of_date(date: NaiveDate) -> Month {
        Month { year: date.year(), month: date.month() }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn number(self) -> u32 {
        self.month
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    /// The first instant of the month in business time.
    pub fn start(self) -> DateTime<Utc> {
        start_of_business_day(self.first_day())
    }

    /// The first instant after the month in business time.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month { year: self.year - 1, month: 12 }
        } else {
            Month { year: self.year, month: self.month - 1 }
        }
    }

    pub fn quarter(self) -> Quarter {
        Quarter { year: self.year, q: (self.month - 1) / 3 + 1 }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Month, CoreError> {
        let bad = || CoreError::InvalidMonth(s.chars().take(20).collect());
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(bad());
        }
        let digits = |r: std::ops::Range<usize>| {
            let part = &s[r];
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse::<u32>().ok()).flatten()
        };
        let (year, month) = (digits(0..4).ok_or_else(bad)?, digits(5..7).ok_or_else(bad)?);
        Month::new(year as i32, month).map_err(|_| bad())
    }
}

/// A calendar quarter, written `2026Q3`: Q1 = Jan–Mar … Q4 = Oct–Dec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quarter {
    year: i32,
    q: u32,
}

impl Quarter {
    pub fn new(year: i32, q: u32) -> Result<Quarter, CoreError> {
        if !(1..=4).contains(&q) || !(1970..=9999).contains(&year) {
            return Err(CoreError::InvalidQuarter(format!("{year}Q{q}")));
        }
        Ok(Quarter { year, q })
    }

    pub fn of(at: DateTime<Utc>) -> Quarter {
        Month::of(at).quarter()
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn number(self) -> u32 {
        self.q
    }

    pub fn months(self) -> [Month; 3] {
        let first = (self.q - 1) * 3 + 1;
        [0, 1, 2].map(|i| Month { year: self.year, month: first + i })
    }

    pub fn contains(self, month: Month) -> bool {
        month.quarter() == self
    }

    /// The first instant of the quarter in business time.
    pub fn start(self) -> DateTime<Utc> {
        self.months()[0].start()
    }

    /// The first instant after the quarter: "the 1st of the next quarter".
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    pub fn next(self) -> Quarter {
        if self.q == 4 {
            Quarter { year: self.year + 1, q: 1 }
        } else {
            Quarter { year: self.year, q: self.q + 1 }
        }
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}Q{}", self.year, self.q)
    }
}

impl FromStr for Quarter {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Quarter, CoreError> {
        let bad = || CoreError::InvalidQuarter(s.chars().take(20).collect());
        let b = s.as_bytes();
        if b.len() != 6 || b[4] != b'Q' || !b[..4].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let year: i32 = s[..4].parse().map_err(|_| bad())?;
        let q = match b[5] {
            c @ b'1'..=b'4' => u32::from(c - b'0'),
            _ => return Err(bad()),
        };
        Quarter::new(year, q).map_err(|_| bad())
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(Month);
string_serde!(Quarter);

impl schemars::JsonSchema for Month {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Month".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"})
    }
}

impl schemars::JsonSchema for Quarter {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quarter".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]{4}Q[1-4]$"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn months_are_taken_in_china_standard_time() {
        // 2026-06-30T16:00Z is 2026-07-01 00:00 in Beijing.
        assert_eq!(Month::of(utc("2026-06-30T16:00:00Z")).to_string(), "2026-07");
        assert_eq!(Month::of(utc("2026-06-30T15:59:59Z")).to_string(), "2026-06");
        assert_eq!("2026-07".parse::<Month>().unwrap().start(), utc("2026-06-30T16:00:00Z"));
    }

    #[test]
    fn month_and_quarter_parse_strictly() {
        for bad in ["2026-7", "2026-13", "2026-00", "26-07", "2026/07", "2026-07-01", "", "२०२६-07"] {
            assert_eq!(bad.parse::<Month>().unwrap_err().code(), "INVALID_MONTH", "{bad:?}");
        }
        for bad in ["2026Q0", "2026Q5", "2026q3", "2026-Q3", "Q3", ""] {
            assert_eq!(bad.parse::<Quarter>().unwrap_err().code(), "INVALID_QUARTER", "{bad:?}");
        }
        assert_eq!("2026Q3".parse::<Quarter>().unwrap().to_string(), "2026Q3");
    }

    #[test]
    fn quarters_hold_three_months_and_roll_over_the_year() {
        let q: Quarter = "2026Q4".parse().unwrap();
        let months: Vec<String> = q.months().iter().map(Month::to_string).collect();
        assert_eq!(months, ["2026-10", "2026-11", "2026-12"]);
        assert_eq!(q.next().to_string(), "2027Q1");
        assert_eq!(q.end(), "2027-01".parse::<Month>().unwrap().start());
        assert_eq!("2026-12".parse::<Month>().unwrap().next().to_string(), "2027-01");
        assert_eq!("2026-01".parse::<Month>().unwrap().prev().to_string(), "2025-12");
        assert_eq!("2026-05".parse::<Month>().unwrap().quarter().to_string(), "2026Q2");
    }

    #[test]
    fn month_serialises_as_its_text() {
        let m: Month = "2026-07".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2026-07\"");
        assert!(serde_json::from_str::<Month>("\"2026-7\"").is_err());
    }
}
