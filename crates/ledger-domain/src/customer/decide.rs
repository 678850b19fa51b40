//! The customer's rules: one association at a time, forward in time, switched or ended at
//! most once in three months by its own partner.

use chrono::{DateTime, Months, TimeZone, Utc};
use ledger_core::ids::validate_id;
use ledger_core::CST;

use super::command::{AssociateCustomer, CustomerCommand, EndAssociation, SwitchAssociationType};
use super::{Association, CustomerEvent, CustomerState, MIN_MONTHS_BETWEEN_SWITCHES};
use crate::guard::{invalid, stream_owner_state};
use crate::DomainError;

pub(super) fn decide(
    state: &CustomerState,
    command: CustomerCommand,
    now: DateTime<Utc>,
) -> Result<Vec<CustomerEvent>, DomainError> {
    match command {
        CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id,
            partner_id,
            association_type,
            effective_at,
        }) => {
            validate_id("customer_id", &customer_id)?;
            validate_id("partner_id", &partner_id)?;
            stream_owner_state("customer_id", state.customer_id.as_ref(), &customer_id)?;
            if let Some(current) = state.latest() {
                return Err(DomainError::InvalidState(format!(
                    "customer {customer_id} is associated with partner {}; end that association first",
                    current.partner_id
                )));
            }
            let first = state.timeline.is_empty();
            let effective_at = effective_at.unwrap_or(now);
            check_forward(state, effective_at, now, first)?;
            Ok(vec![CustomerEvent::CustomerAssociated { customer_id, partner_id, association_type, effective_at }])
        }
        CustomerCommand::SwitchAssociationType(SwitchAssociationType {
            partner_id,
            association_type,
            effective_at,
        }) => {
            let (customer_id, current) = current_of(state, &partner_id)?;
            if current.association_type == association_type {
                return Err(DomainError::InvalidState(format!(
                    "customer {customer_id} is already a {association_type:?} customer"
                )));
            }
            let effective_at = effective_at.unwrap_or(now);
            check_forward(state, effective_at, now, false)?;
            check_frequency(state, &customer_id, &partner_id, effective_at)?;
            Ok(vec![CustomerEvent::AssociationTypeSwitched {
                customer_id,
                partner_id,
                from: current.association_type,
                to: association_type,
                effective_at,
            }])
        }
        CustomerCommand::EndAssociation(EndAssociation { partner_id, effective_at }) => {
            let (customer_id, _) = current_of(state, &partner_id)?;
            let effective_at = effective_at.unwrap_or(now);
            check_forward(state, effective_at, now, false)?;
            check_frequency(state, &customer_id, &partner_id, effective_at)?;
            Ok(vec![CustomerEvent::AssociationEnded { customer_id, partner_id, effective_at }])
        }
    }
}

/// "3 months" read as 3 calendar months in China Standard Time: a switch at 2026-01-31
/// 10:00 CST allows the next from 2026-04-30 10:00 CST on (the day is clamped to the end
/// of a shorter month), not after a fixed 90 days.
pub fn next_switch_allowed_from(previous: DateTime<Utc>) -> DateTime<Utc> {
    let local = previous.with_timezone(&CST).naive_local();
    let later = local.checked_add_months(Months::new(MIN_MONTHS_BETWEEN_SWITCHES)).expect("within chrono's range");
    CST.from_local_datetime(&later).single().expect("a fixed offset has no gaps").with_timezone(&Utc)
}

/// The customer's current association, which must be `partner_id`'s.
fn current_of<'a>(state: &'a CustomerState, partner_id: &str) -> Result<(String, &'a Association), DomainError> {
    validate_id("partner_id", partner_id)?;
    let customer_id = state.customer_id.clone().ok_or(DomainError::NotFound { what: "customer", id: String::new() })?;
    let current = state.latest().ok_or_else(|| DomainError::NoAssociation { customer_id: customer_id.clone() })?;
    if current.partner_id != partner_id {
        return Err(DomainError::NotYourCustomer { customer_id });
    }
    Ok((customer_id, current))
}

fn check_forward(
    state: &CustomerState,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
    first: bool,
) -> Result<(), DomainError> {
    if let Some(last) = state.timeline.last() {
        if effective_at <= last.effective_at {
            return Err(invalid_effective_at(format!("must be after the previous change at {}", last.effective_at)));
        }
    }
    if !first && effective_at < now {
        return Err(invalid_effective_at("a change may not take effect in the past".to_string()));
    }
    Ok(())
}

fn check_frequency(
    state: &CustomerState,
    customer_id: &str,
    partner_id: &str,
    effective_at: DateTime<Utc>,
) -> Result<(), DomainError> {
    match state.last_switch_by(partner_id) {
        Some(previous) if effective_at < next_switch_allowed_from(previous) => {
            Err(DomainError::SwitchTooFrequent { customer_id: customer_id.to_string() })
        }
        _ => Ok(()),
    }
}

fn invalid_effective_at(reason: String) -> DomainError {
    invalid("effective_at", reason)
}
