//! Input errors of the core types. Each variant has a stable code (docs/API.md) that clients
//! match on; the message says what was wrong with the value.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    #[error("invalid amount {value:?}: {reason}")]
    InvalidAmount { value: String, reason: &'static str },
    #[error("invalid currency {0:?}: expected one of CNY, USD")]
    InvalidCurrency(String),
    #[error("invalid rate {value:?}: {reason}")]
    InvalidRate { value: String, reason: &'static str },
    #[error("invalid month {0:?}: expected YYYY-MM")]
    InvalidMonth(String),
    #[error("invalid quarter {0:?}: expected YYYYQn with n in 1..=4")]
    InvalidQuarter(String),
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(String, String),
    #[error("calendar file line {line}: {reason}")]
    InvalidCalendar { line: usize, reason: String },
    /// A fact's time that cannot be (docs/DOMAIN.md, Conventions: not more than 5 minutes
    /// in the future).
    #[error("invalid {field}: {reason}")]
    InvalidTime { field: &'static str, reason: String },
    /// A working-day question about a year the loaded calendar does not hold: refused, never
    /// guessed from the weekdays alone.
    #[error("the working-day calendar does not know {date}: it holds the years {years}")]
    CalendarUnknown { date: chrono::NaiveDate, years: String },
}

impl CoreError {
    /// The stable error code of docs/API.md.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidAmount { .. } => "INVALID_AMOUNT",
            CoreError::InvalidCurrency(_) => "INVALID_CURRENCY",
            CoreError::InvalidRate { .. } => "INVALID_RATE",
            CoreError::InvalidMonth(_) => "INVALID_MONTH",
            CoreError::InvalidQuarter(_) => "INVALID_QUARTER",
            CoreError::InvalidField { .. } => "INVALID_FIELD",
            CoreError::CurrencyMismatch(..) => "CURRENCY_MISMATCH",
            CoreError::InvalidCalendar { .. } => "INVALID_CALENDAR",
            CoreError::InvalidTime { .. } => "INVALID_TIME",
            CoreError::CalendarUnknown { .. } => "CALENDAR_UNKNOWN",
        }
    }
}
