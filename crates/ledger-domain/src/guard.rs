//! The checks every aggregate makes on a command, written once: an amount from outside,
//! the stream's owner, and the shape of an `INVALID_FIELD` error.

use chrono::{DateTime, Duration, Utc};
use ledger_core::ids::validate_text;
use ledger_core::money::{MAX_AMOUNT, MONEY_SCALE};
use ledger_core::{CoreError, Money};
use rust_decimal::Decimal;

use crate::DomainError;

/// `INVALID_FIELD` for `field`, with the reason a caller can act on.
pub fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
    DomainError::Invalid(CoreError::InvalidField { field, reason: reason.into() })
}

/// Free text that must say something: not empty or only spaces, bounded, no control chars.
pub fn non_blank(field: &'static str, value: &str, max: usize) -> Result<(), CoreError> {
    validate_text(field, value, max)?;
    if value.trim().is_empty() {
        return Err(CoreError::InvalidField { field, reason: "must not be empty".into() });
    }
    Ok(())
}

/// Optional free text (a comment, a reason): when present, bounded and without control
/// characters.
pub fn optional_text(field: &'static str, value: &Option<String>, max: usize) -> Result<(), DomainError> {
    if let Some(v) = value {
        validate_text(field, v, max)?;
    }
    Ok(())
}

/// An amount from outside (docs/DOMAIN.md, Conventions): > 0, at most 2 decimal places, at
/// most [`MAX_AMOUNT`]; `INVALID_AMOUNT` otherwise. Commands carry parsed money, but the
/// rule still holds for every caller, not only the HTTP one.
pub fn external_amount(m: &Money) -> Result<(), DomainError> {
    if m.amount <= Decimal::ZERO {
        return Err(bad_amount(m, "must be greater than zero"));
    }
    amount_shape(m)
}

/// A month's final amount given by the operator: like [`external_amount`], but 0 is allowed
/// (docs/DOMAIN.md §5: "a month may be finalized at 0").
pub fn final_amount(m: &Money) -> Result<(), DomainError> {
    if m.amount < Decimal::ZERO {
        return Err(bad_amount(m, "must not be negative"));
    }
    amount_shape(m)
}

fn bad_amount(m: &Money, reason: &'static str) -> DomainError {
    DomainError::Invalid(CoreError::InvalidAmount { value: m.amount.to_string(), reason })
}

/// At most 2 decimal places and at most [`MAX_AMOUNT`].
fn amount_shape(m: &Money) -> Result<(), DomainError> {
    let bad = |reason| bad_amount(m, reason);
    if m.amount.normalize().scale() > MONEY_SCALE {
        return Err(bad("at most 2 decimal places"));
    }
    if m.amount > MAX_AMOUNT {
        return Err(bad("must be at most 1000000000000"));
    }
    Ok(())
}

/// How far past the ledger's clock a fact's time may lie: clocks drift a little, facts do
/// not come from the future (docs/DOMAIN.md, Conventions).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// A fact's time sent from outside (`consumed_at`, `settled_at`, `used_at`): not more than
/// [`MAX_FUTURE_SKEW`] after `now`, else `INVALID_TIME`. A ledger records what happened.
pub fn fact_time(field: &'static str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DomainError> {
    if at > now + MAX_FUTURE_SKEW {
        return Err(DomainError::Invalid(CoreError::InvalidTime {
            field,
            reason: format!(
                "{} lies in the future (now {}); a fact may be at most 5 minutes ahead",
                at.to_rfc3339(),
                now.to_rfc3339()
            ),
        }));
    }
    Ok(())
}

/// A stream belongs to the one owner its first event named (`partner_id`,
/// `distributor_id`, `customer_id`: `field`); a command naming another is the caller's
/// mistake (the application picks the stream by that very id, so it cannot happen
/// through it).
pub fn stream_owner(field: &'static str, owner: Option<&String>, named: &str) -> Result<(), DomainError> {
    match owner {
        Some(owner) if owner != named => Err(invalid(field, format!("this stream belongs to {field} {owner}"))),
        _ => Ok(()),
    }
}

/// [`stream_owner`] refused as `INVALID_STATE` (HTTP 409), as the funds, coupon and
/// customer streams have always answered it (their tests pin the code), where incentives,
/// rebate and lab points answer `INVALID_FIELD`.
pub fn stream_owner_state(field: &'static str, owner: Option<&String>, named: &str) -> Result<(), DomainError> {
    stream_owner(field, owner, named).map_err(|e| DomainError::InvalidState(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::Currency;

    #[test]
    fn external_amounts_are_positive_with_two_places_at_most() {
        let m = |s: &str| Money::new(Decimal::from_str_exact(s).unwrap(), Currency::CNY);
        assert!(external_amount(&m("0.01")).is_ok());
        assert!(external_amount(&m("1.10")).is_ok());
        for bad in ["0", "-1.00", "0.001", "1000000000000.01"] {
            assert_eq!(external_amount(&m(bad)).unwrap_err().code(), "INVALID_AMOUNT", "{bad}");
        }
        assert!(final_amount(&m("0")).is_ok());
        assert!(final_amount(&m("0.01")).is_ok());
        for bad in ["-0.01", "0.001", "1000000000000.01"] {
            assert_eq!(final_amount(&m(bad)).unwrap_err().code(), "INVALID_AMOUNT", "{bad}");
        }
    }

    #[test]
    fn a_fact_may_lie_at_most_five_minutes_ahead() {
        let now: DateTime<Utc> = "2026-08-01T00:00:00Z".parse().unwrap();
        assert!(fact_time("used_at", now - Duration::days(400), now).is_ok());
        assert!(fact_time("used_at", now + Duration::minutes(5), now).is_ok());
        let err = fact_time("used_at", now + Duration::minutes(5) + Duration::seconds(1), now).unwrap_err();
        assert_eq!(err.code(), "INVALID_TIME");
        assert!(err.to_string().contains("used_at"), "{err}");
    }

    #[test]
    fn a_stream_refuses_a_command_for_another_owner() {
        let owner = "P1".to_string();
        assert!(stream_owner("partner_id", None, "P2").is_ok());
        assert!(stream_owner("partner_id", Some(&owner), "P1").is_ok());
        assert_eq!(stream_owner("partner_id", Some(&owner), "P2").unwrap_err().code(), "INVALID_FIELD");
        assert_eq!(stream_owner_state("partner_id", Some(&owner), "P2").unwrap_err().code(), "INVALID_STATE");
        assert!(stream_owner_state("partner_id", Some(&owner), "P1").is_ok());
    }
}
