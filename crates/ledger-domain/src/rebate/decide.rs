//! docs/DOMAIN.md §6: credits, and the withdrawal from request to payment.

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{business_date, WorkingCalendar};
use unicode_normalization::UnicodeNormalization;

use super::command::{
    ApproveWithdrawal, CreditRebate, MarkWithdrawalFailed, MarkWithdrawalPaid, RebateCommand, RejectWithdrawal,
    RequestWithdrawal,
};
use super::{
    withdrawable, RebateEvent, RebateState, Withdrawal, WithdrawalStatus, ARRIVAL_WORKING_DAYS, MAX_REASON_CHARS,
};
use crate::guard::{external_amount, optional_text, stream_owner};
use crate::DomainError;

pub(super) fn decide(
    state: &RebateState,
    command: RebateCommand,
    now: DateTime<Utc>,
) -> Result<Vec<RebateEvent>, DomainError> {
    match command {
        RebateCommand::CreditRebate(c) => credit(state, &c, now),
        RebateCommand::RequestWithdrawal(c) => request(state, &c, now),
        RebateCommand::ApproveWithdrawal(ApproveWithdrawal { withdrawal_id, calendar }) => {
            let w = pending(state, &withdrawal_id, WithdrawalStatus::Requested, "approved")?;
            Ok(vec![RebateEvent::WithdrawalApproved {
                partner_id: w.partner_id.clone(),
                withdrawal_id,
                amount: w.amount,
                expected_arrival_date: expected_arrival_date(now, &calendar)?,
                approved_at: now,
            }])
        }
        RebateCommand::RejectWithdrawal(RejectWithdrawal { withdrawal_id, reason }) => {
            optional_text("reason", &reason, MAX_REASON_CHARS)?;
            let w = pending(state, &withdrawal_id, WithdrawalStatus::Requested, "rejected")?;
            Ok(vec![RebateEvent::WithdrawalRejected {
                partner_id: w.partner_id.clone(),
                withdrawal_id,
                amount: w.amount,
                reason,
                rejected_at: now,
            }])
        }
        RebateCommand::MarkWithdrawalPaid(MarkWithdrawalPaid { withdrawal_id }) => {
            let w = pending(state, &withdrawal_id, WithdrawalStatus::Approved, "paid")?;
            Ok(vec![RebateEvent::WithdrawalPaid {
                partner_id: w.partner_id.clone(),
                withdrawal_id,
                amount: w.amount,
                paid_at: now,
            }])
        }
        RebateCommand::MarkWithdrawalFailed(MarkWithdrawalFailed { withdrawal_id, reason }) => {
            optional_text("reason", &reason, MAX_REASON_CHARS)?;
            let w = pending(state, &withdrawal_id, WithdrawalStatus::Approved, "failed")?;
            Ok(vec![RebateEvent::WithdrawalFailed {
                partner_id: w.partner_id.clone(),
                withdrawal_id,
                amount: w.amount,
                reason,
                failed_at: now,
            }])
        }
    }
}

fn credit(state: &RebateState, c: &CreditRebate, now: DateTime<Utc>) -> Result<Vec<RebateEvent>, DomainError> {
    let CreditRebate { partner_id, source_id, amount } = c.clone();
    validate_id("source_id", &source_id)?;
    external_amount(&amount)?;
    same_partner(state, &partner_id)?;
    match state.credits.get(&source_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::DuplicateRecordConflict { record_id: source_id }),
        None => Ok(vec![RebateEvent::RebateCredited { partner_id, source_id, amount, credited_at: now }]),
    }
}

fn request(state: &RebateState, c: &RequestWithdrawal, now: DateTime<Utc>) -> Result<Vec<RebateEvent>, DomainError> {
    let RequestWithdrawal { partner_id, withdrawal_id, amount, bank_account, legal_name } = c.clone();
    validate_id("withdrawal_id", &withdrawal_id)?;
    external_amount(&amount)?;
    bank_account.validate()?;
    same_partner(state, &partner_id)?;
    if state.withdrawals.contains_key(&withdrawal_id) {
        return Err(DomainError::AlreadyExists { what: "withdrawal", id: withdrawal_id });
    }
    // Seed: "付款方式为银行转账至实名同人的银行账号,收款账号名称必须与实名认证一致".
    let Some(legal_name) = legal_name else {
        return Err(DomainError::CertificationIncomplete { missing: "real_name".into() });
    };
    if !same_name(&bank_account.holder_name, &legal_name) {
        return Err(DomainError::AccountNameMismatch);
    }
    let available = withdrawable(state, amount.currency);
    if amount.amount > available.amount {
        return Err(DomainError::InsufficientBalance {
            requested: amount.to_string(),
            available: available.to_string(),
        });
    }
    Ok(vec![RebateEvent::WithdrawalRequested { partner_id, withdrawal_id, amount, bank_account, requested_at: now }])
}

/// The withdrawal `id`, which must be in status `from` to become `to`.
fn pending<'a>(
    state: &'a RebateState,
    id: &str,
    from: WithdrawalStatus,
    to: &str,
) -> Result<&'a Withdrawal, DomainError> {
    let w = state.withdrawals.get(id).ok_or_else(|| DomainError::NotFound { what: "withdrawal", id: id.into() })?;
    if w.status != from {
        return Err(DomainError::InvalidState(format!(
            "withdrawal {id} is {:?}; only a {:?} withdrawal can be {to}",
            w.status, from
        )));
    }
    Ok(w)
}

/// A stream belongs to one partner; a command naming another is the caller's mistake.
fn same_partner(state: &RebateState, partner_id: &str) -> Result<(), DomainError> {
    validate_id("partner_id", partner_id)?;
    stream_owner("partner_id", state.partner_id.as_ref(), partner_id)
}

/// §6: the holder name must be the real-name-certified name, compared after Unicode NFKC
/// normalisation and trimming (so full-width brackets or an ideographic space do not count
/// as a difference, while any other character does).
pub fn same_name(holder_name: &str, legal_name: &str) -> bool {
    fn normal(s: &str) -> String {
        s.nfkc().collect::<String>().trim().to_string()
    }
    normal(holder_name) == normal(legal_name)
}

/// The expected arrival date of a withdrawal approved at `approved_at`; `CALENDAR_UNKNOWN`
/// when the days to count run beyond the years the calendar holds.
pub fn expected_arrival_date(approved_at: DateTime<Utc>, calendar: &WorkingCalendar) -> Result<NaiveDate, DomainError> {
    Ok(calendar.add_working_days(business_date(approved_at), ARRIVAL_WORKING_DAYS)?)
}
