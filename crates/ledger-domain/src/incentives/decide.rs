//! The incentive ledger's decider: each command to the rule file that holds it, and the
//! checks those rules share. The rules: [`super::lines`], [`super::months`],
//! [`super::opportunities`], [`super::payments`].

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{CoreError, Currency};

use super::command::IncentiveCommand;
use super::{lines, months, opportunities, payments, IncentiveEvent, IncentivesState};
use crate::guard::{fact_time, stream_owner};
use crate::DomainError;

pub(super) fn decide(
    state: &IncentivesState,
    command: IncentiveCommand,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    use IncentiveCommand as C;
    match command {
        C::RecordConsumption(c) => {
            fact_time("consumed_at", c.consumed_at, now)?;
            fact_time("settled_at", c.settled_at, now)?;
            lines::record(state, &c)
        }
        C::RefundConsumption(c) => {
            fact_time("settled_at", c.settled_at, now)?;
            lines::refund(state, &c)
        }
        C::CloseMonth(c) => months::close(state, &c, now),
        C::ApplyForMonth(c) => months::apply(state, &c, now),
        C::ReviewMonth(c) => months::review(state, &c, now),
        C::FinalizeMonth(c) => months::finalize(state, &c, now),
        C::ShareOpportunity(c) => opportunities::share(state, &c, now),
        C::MarkOpportunityDelivered(c) => opportunities::deliver(state, &c, now),
        C::AcceptOpportunity(c) => opportunities::accept(state, &c, now),
        C::ApplyForOpportunity(c) => opportunities::apply(state, &c, now),
        C::ReviewOpportunity(c) => opportunities::review(state, &c, now),
        C::FinalizeOpportunity(c) => opportunities::finalize(state, &c, now),
        C::RequestQuarterlyPayment(c) => payments::request(state, &c, now),
        C::ApprovePayment(c) => payments::approve(state, &c, now),
        C::RejectPayment(c) => payments::reject(state, &c, now),
        C::IssueInvoiceList(c) => payments::issue_invoice_list(state, &c, now),
        C::ConfirmInvoiceReceived(c) => payments::confirm_invoice_received(state, &c, now),
        C::PayQuarterlyPayment(c) => payments::pay(state, &c, now),
    }
}

/// The partner the stream belongs to, once it has any event.
pub(super) fn stream_partner(state: &IncentivesState) -> Result<&str, DomainError> {
    state.partner_id.as_deref().ok_or_else(|| DomainError::NotFound { what: "incentive stream", id: String::new() })
}

/// A command that names its partner must name the stream's.
pub(super) fn check_partner(state: &IncentivesState, partner_id: &str) -> Result<(), DomainError> {
    validate_id("partner_id", partner_id)?;
    stream_owner("partner_id", state.partner_id.as_ref(), partner_id)
}

pub(super) fn same_currency(expected: Currency, got: Currency) -> Result<(), DomainError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::CurrencyMismatch(expected.to_string(), got.to_string()).into())
    }
}

pub(super) fn invalid_state(message: String) -> DomainError {
    DomainError::InvalidState(message)
}
