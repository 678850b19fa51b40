//! Who owns the thing a route names by id, and whether the caller may touch it. A partner
//! gets 403 both for another partner's thing and for an id that does not exist, so an
//! answer never tells it what exists elsewhere; admin and auditor get 404 for the latter.

use std::time::Duration;

use ledger_core::Role;

use crate::error::ApiError;
use crate::http::{Caller, MIN_POSITION_WAIT};
use crate::AppState;

/// Ids the lookup projection records (see `ledger_projections::lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Opportunity,
    Payment,
    Coupon,
    Withdrawal,
    LabPoints,
}

impl IdKind {
    fn field(self) -> &'static str {
        match self {
            IdKind::Opportunity => "opportunity_id",
            IdKind::Payment => "payment_id",
            IdKind::Coupon => "coupon_id",
            IdKind::Withdrawal => "withdrawal_id",
            IdKind::LabPoints => "application_id",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            IdKind::Opportunity => "opportunity",
            IdKind::Payment => "quarterly payment",
            IdKind::Coupon => "coupon",
            IdKind::Withdrawal => "withdrawal",
            IdKind::LabPoints => "lab point application",
        }
    }
}

/// The partner owning `id`, once the lookup has caught up with everything stored so far
/// (a thing created a moment ago is found).
pub async fn owner_of(state: &AppState, caller: &Caller, kind: IdKind, id: &str) -> Result<String, ApiError> {
    if ledger_core::ids::validate_id("id", id).is_err() {
        return Err(hidden(caller, kind));
    }
    let head = *state.store.head().borrow();
    state.progress.wait_for(head, MIN_POSITION_WAIT.max(Duration::from_secs(1))).await?;
    let (field, key) = (kind.field(), id.to_string());
    let owner = state.reads.read(move |c| ledger_projections::lookup::partner_of(c, field, &key)).await?;
    match owner {
        Some(p)
            if caller.principal.role != Role::Partner || caller.principal.partner_id.as_deref() == Some(p.as_str()) =>
        {
            Ok(p)
        }
        _ => Err(hidden(caller, kind)),
    }
}

/// The partner whose data a read concerns, like [`Caller::partner_scope`], except that a
/// distributor may also name one of its resellers (docs/DOMAIN.md: a distributor sees what
/// concerns its resellers). Anyone else's id reads as forbidden, as an unknown one does.
pub async fn partner_or_its_reseller(
    state: &AppState,
    caller: &Caller,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let own = caller.principal.partner_id.as_deref();
    match (caller.principal.role, asked) {
        (Role::Partner, Some(other))
            if Some(other) != own && ledger_core::ids::validate_id("partner_id", other).is_ok() =>
        {
            let parent = match state.ledger.partner(other).await {
                Ok(p) => p.profile.and_then(|p| p.parent_id),
                Err(ledger_app::AppError::Domain(ledger_domain::DomainError::NotFound { .. })) => None,
                Err(e) => return Err(caller.err(e.into())),
            };
            if parent.is_some() && parent.as_deref() == own {
                Ok(other.to_string())
            } else {
                Err(caller.err(ApiError::forbidden()))
            }
        }
        _ => caller.partner_scope(asked),
    }
}

fn hidden(caller: &Caller, kind: IdKind) -> ApiError {
    if caller.principal.role == Role::Partner {
        ApiError::forbidden()
    } else {
        ApiError::not_found(kind.noun())
    }
}
