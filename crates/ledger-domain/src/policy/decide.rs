//! Publishing a policy version.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;

use super::command::{PolicyCommand, PublishPolicy};
use super::{PolicyBook, PolicyEvent, MAX_PRODUCTS_PER_POLICY, MAX_SETTLEMENT_GRACE_DAYS};
use crate::guard::invalid;
use crate::DomainError;

pub(super) fn decide(
    state: &PolicyBook,
    command: PolicyCommand,
    now: DateTime<Utc>,
) -> Result<Vec<PolicyEvent>, DomainError> {
    let PolicyCommand::PublishPolicy(PublishPolicy { currency, effective_month, rates, settlement_grace_days }) =
        command;
    if let Some(existing) = state.versions.values().next() {
        if existing.currency != currency {
            return Err(invalid("currency", format!("this policy book is for {}", existing.currency)));
        }
    }
    if rates.len() > MAX_PRODUCTS_PER_POLICY {
        return Err(invalid("rates", format!("at most {MAX_PRODUCTS_PER_POLICY} products")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &rates {
        validate_id("product", &r.product)?;
        if !seen.insert(r.product.as_str()) {
            return Err(invalid("rates", format!("product {} is listed twice", r.product)));
        }
    }
    let settlement_grace_days = settlement_grace_days.unwrap_or(0);
    if settlement_grace_days > MAX_SETTLEMENT_GRACE_DAYS {
        return Err(invalid("settlement_grace_days", format!("at most {MAX_SETTLEMENT_GRACE_DAYS}")));
    }
    if state.versions.contains_key(&effective_month) {
        return Err(DomainError::AlreadyExists { what: "policy version", id: format!("{currency} {effective_month}") });
    }
    if let Some(latest) = state.versions.keys().next_back() {
        if effective_month < *latest {
            return Err(DomainError::InvalidState(format!(
                "a new policy version must take effect after the latest one ({latest})"
            )));
        }
    }
    Ok(vec![PolicyEvent::PolicyPublished {
        currency,
        effective_month,
        rates,
        settlement_grace_days,
        published_at: now,
    }])
}
