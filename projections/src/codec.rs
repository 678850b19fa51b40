//! Columns to values and back for the read models that keep a domain entity per row:
//! exact decimals and money as text, enums by their API name, nested parts as JSON.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use ledger_core::RecordedEvent;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ProjectionError;

/// A stored row that does not read back: the read model is corrupt.
pub fn corrupt(what: &str, value: &str) -> ProjectionError {
    ProjectionError::Decode { position: 0, reason: format!("stored {what} {value:?} does not read back") }
}

/// An event of the family a read model follows that does not decode.
pub fn undecodable(e: &RecordedEvent, err: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Decode { position: e.position, reason: err.to_string() }
}

/// A unit enum by its serde name (`under_review`), or any value as JSON text.
pub fn to_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value).expect("serialises") {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The inverse of [`to_text`] for a unit enum.
pub fn enum_of<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ProjectionError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| corrupt(what, s))
}

pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialises")
}

pub fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ProjectionError> {
    serde_json::from_str(s).map_err(|_| corrupt(what, s))
}

pub fn parsed<T: FromStr>(what: &str, s: &str) -> Result<T, ProjectionError> {
    s.parse().map_err(|_| corrupt(what, s))
}

pub fn decimal(what: &str, s: &str) -> Result<Decimal, ProjectionError> {
    Decimal::from_str_exact(s).map_err(|_| corrupt(what, s))
}

/// A time as RFC 3339 with every digit it has (reads back to the same instant).
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn time_of(what: &str, s: &str) -> Result<DateTime<Utc>, ProjectionError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|_| corrupt(what, s))
}
