//! The vendor-compatible partner API (docs/API.md, "Vendor-compatible partner API"): the routes
//! partners already call through the vendor's SDK (`huaweicloudsdkbss` and its Java and Go
//! twins), wire-compatible with it unchanged. They are another door to the same use cases
//! as `/v1`: every rule is the domain's, every read a projection's.
//!
//! What is particular to this door lives here, once:
//! - amounts arrive as JSON **numbers** (`{"amount": 12.30}`, the SDK's `decimal.Decimal`):
//!   their text is parsed as a decimal, never through a float ([`Amount`]); amounts go out
//!   as numbers the same way ([`number`]). The vendor's amounts are in yuan (`measure_id`
//!   1) and carry no currency: they are CNY;
//! - a blank query parameter is no filter ([`blank`]), `offset` defaults to 0 and `limit`
//!   to 10, at most 100 ([`page`]);
//! - times are `yyyy-MM-ddTHH:mm:ssZ` ([`vendor_time`]);
//! - a distributor acts for one of its resellers with `indirect_partner_id`, and only for
//!   its own ([`acting_for`]).
//!
//! Errors keep docs/API.md's shape (`{"error_code", "error_msg", ...}`) with a 4xx.

pub mod coupons;
pub mod funds;
pub mod partner;

use chrono::{DateTime, SecondsFormat, Utc};
use ledger_core::{Money, Role};
use ledger_domain::partner::PartnerKind;
use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::http::Caller;
use crate::AppState;

/// `offset` when none is given.
pub const DEFAULT_LIMIT: u64 = 10;
/// The vendor's largest page.
pub const MAX_LIMIT: u64 = 100;
/// The vendor's only unit: yuan (`measure_id` 1).
pub const MEASURE_YUAN: u8 = 1;

/// An amount as the SDK sends it: a JSON number, kept as the text of its digits (a JSON
/// string of digits is accepted too) and read exactly by [`Amount::money`]: at most two
/// decimal places, > 0, like every amount from outside (docs/DOMAIN.md), else `INVALID_AMOUNT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(String);

impl Amount {
    pub fn money(&self) -> Result<Money, ApiError> {
        Ok(Money::parse_positive(&self.0, "CNY")?)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(digits) => Ok(Amount(digits.to_string())),
            None if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(Amount(text.to_string())),
            None => Err(D::Error::custom("must be a number of yuan, e.g. 12.30")),
        }
    }
}

/// A decimal as a JSON number with exactly its digits (`12.30`, not `12.3` or
/// `12.300000000000001`).
pub fn number(d: Decimal) -> Box<RawValue> {
    RawValue::from_string(d.to_string()).expect("a decimal's text is a JSON number")
}

/// A time as the vendor writes it: `2026-07-01T02:00:00Z`.
pub fn vendor_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A blank parameter is no filter (the vendor: "不携带或携带值为空时，不作为筛选条件").
pub fn blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A time filter: blank is none, anything else must be RFC 3339.
pub fn time_filter(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    blank(value)
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(field, "must be a UTC time like 2016-03-28T14:45:38Z"))
        })
        .transpose()
}

/// `offset` and `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]).
pub fn page(offset: Option<u64>, limit: Option<u64>) -> Result<(usize, usize), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    Ok((offset.unwrap_or(0) as usize, limit as usize))
}

/// Reads through the SDK cannot name a `min_position` (the SDK has no such parameter), so
/// they read their writes by waiting for everything stored so far; `?min_position=` still
/// works for other clients.
pub async fn catch_up(state: &AppState, min_position: Option<u64>) -> Result<(), ApiError> {
    let head = *state.store.head().borrow();
    crate::http::wait_for_position(state, Some(min_position.unwrap_or(head))).await
}

/// The partner a vendor call acts for: the caller's own partner, or with
/// `indirect_partner_id` one of the caller's resellers. Another distributor's reseller, a
/// partner that is not a reseller, or one that does not exist is `FORBIDDEN` (an answer
/// never tells what exists elsewhere). These are partner routes: other roles are refused.
pub async fn acting_for(
    state: &AppState,
    caller: &Caller,
    indirect_partner_id: Option<&str>,
) -> Result<String, ApiError> {
    caller.require(&[Role::Partner])?;
    let own = caller.partner_scope(None)?;
    let Some(reseller) = indirect_partner_id else { return Ok(own) };
    if reseller.trim().is_empty() {
        return Err(caller.err(ApiError::invalid("indirect_partner_id", "must not be blank")));
    }
    if reseller == own {
        return Ok(own);
    }
    let theirs = match state.ledger.partner(reseller).await {
        Ok(p) => p.profile.is_some_and(|p| p.kind == PartnerKind::Reseller && p.parent_id.as_deref() == Some(&own)),
        Err(ledger_app::AppError::Domain(ledger_domain::DomainError::NotFound { .. })) => false,
        Err(ledger_app::AppError::Domain(ledger_domain::DomainError::Invalid(_))) => false,
        Err(e) => return Err(e.into()),
    };
    if theirs {
        Ok(reseller.to_string())
    } else {
        Err(caller.err(ApiError::forbidden()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        amount: Amount,
    }

    fn amount(json: &str) -> Result<String, String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let body = serde_path_to_error::deserialize::<_, Body>(de).map_err(|e| e.to_string())?;
        body.amount.money().map(|m| m.amount.to_string()).map_err(|e| e.code)
    }

    #[test]
    fn a_json_number_is_read_as_the_decimal_its_digits_write() {
        assert_eq!(amount(r#"{"amount": 12.30}"#).unwrap(), "12.30");
        assert_eq!(amount(r#"{"amount": 0.1}"#).unwrap(), "0.1");
        assert_eq!(amount(r#"{"amount": 1000000000000}"#).unwrap(), "1000000000000");
        assert_eq!(amount(r#"{"amount": "7.05"}"#).unwrap(), "7.05");
        // 0.1 + 0.2 through a float would be 0.30000000000000004; digits beyond cents are refused.
        assert!(amount(r#"{"amount": 0.30000000000000004}"#).is_err());
        assert!(amount(r#"{"amount": -1}"#).is_err());
        assert!(amount(r#"{"amount": 1e2}"#).is_err(), "an exponent is not an amount from outside");
        assert!(amount(r#"{"amount": true}"#).is_err());
    }

    #[test]
    fn numbers_go_out_with_exactly_their_digits() {
        let d: Decimal = "12.30".parse().unwrap();
        assert_eq!(serde_json::to_string(&number(d)).unwrap(), "12.30");
        assert_eq!(vendor_time("2026-07-01T02:00:00.123456Z".parse().unwrap()), "2026-07-01T02:00:00Z");
    }

    #[test]
    fn blank_is_no_filter_and_pages_are_the_vendors() {
        assert_eq!(blank(Some("  ".into())), None);
        assert_eq!(blank(Some("C1".into())), Some("C1".into()));
        assert_eq!(page(None, None).unwrap(), (0, 10));
        assert!(page(None, Some(101)).is_err() && page(None, Some(0)).is_err());
        assert_eq!(time_filter("t", Some(String::new())).unwrap(), None);
        assert!(time_filter("t", Some("yesterday".into())).is_err());
    }
}
