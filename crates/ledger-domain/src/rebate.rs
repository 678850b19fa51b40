//! # Rebate account (stream `rebate-{partner_id}`)
//!
//! DOMAIN.md §6, 激励返点提现. A quarterly payment paid by `cloud_account_credit` credits the
//! partner's rebate balance here; the partner withdraws it to a bank account held in its own
//! real-name-certified name. The stream owns the guarded balance: withdrawable = credited −
//! withdrawn − held by pending withdrawals, per currency, so the check and the append share
//! one expected version.
//!
//! A withdrawal goes `requested` → `approved` | `rejected`; an approved one → `paid` |
//! `failed` (the bank returned it). The request holds its amount; rejection and failure
//! release it, payment moves it out.
//!
//! Facts from other streams (the partner's legal name, the working-day calendar) come in the
//! command.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::ids::{validate_id, validate_text};
use ledger_core::money::{MAX_AMOUNT, MONEY_SCALE};
use ledger_core::{business_date, CoreError, Currency, Money, WorkingCalendar};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::event::DecodeError;
use crate::partner::BankAccount;
use crate::postings::{self, Posting};
use crate::{Decider, DomainError, EventFamily};

/// Seed: "提现审核通过后,需要7个工作日到账" (after approval, the money arrives within 7
/// working days).
pub const ARRIVAL_WORKING_DAYS: u32 = 7;
/// Longest rejection or failure reason.
pub const MAX_REASON_CHARS: usize = 500;
/// The current schema version of `RebateCredited` (see [`legacy`]).
pub const REBATE_CREDITED_VERSION: u32 = 2;

pub fn stream_id(partner_id: &str) -> String {
    format!("rebate-{partner_id}")
}

pub fn rebate_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:rebate")
}

pub fn rebate_held_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:rebate_held")
}

pub const REBATE_CLEARING: &str = "vendor:rebate_clearing";
pub const BANK_PAYOUT: &str = "vendor:bank_payout";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalStatus {
    Requested,
    Approved,
    Rejected,
    Paid,
    Failed,
}

impl WithdrawalStatus {
    /// A pending withdrawal holds its amount.
    pub fn is_pending(self) -> bool {
        matches!(self, WithdrawalStatus::Requested | WithdrawalStatus::Approved)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RebateEvent {
    /// A quarterly payment paid by `cloud_account_credit` (激励返点返云账户). Schema version 2:
    /// version 1 stored the amount as a bare string with the currency beside it.
    RebateCredited {
        partner_id: String,
        /// The quarterly payment that was paid to the rebate account.
        source_id: String,
        amount: Money,
        credited_at: DateTime<Utc>,
    },
    WithdrawalRequested {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        bank_account: BankAccount,
        requested_at: DateTime<Utc>,
    },
    WithdrawalApproved {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        /// Approval business date (CST) + 7 working days.
        expected_arrival_date: NaiveDate,
        approved_at: DateTime<Utc>,
    },
    WithdrawalRejected {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        reason: Option<String>,
        rejected_at: DateTime<Utc>,
    },
    WithdrawalPaid {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        paid_at: DateTime<Utc>,
    },
    /// The bank returned the transfer: the amount is withdrawable again.
    WithdrawalFailed {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        reason: Option<String>,
        failed_at: DateTime<Utc>,
    },
}

impl EventFamily for RebateEvent {
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "RebateCredited" => REBATE_CREDITED_VERSION,
            _ => 1,
        }
    }

    fn upcast(event_type: &str, version: u32, payload: Value) -> Result<Value, DecodeError> {
        match (event_type, version) {
            ("RebateCredited", 1) => legacy::rebate_credited_v1_to_v2(payload),
            _ => Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version }),
        }
    }
}

/// Older schema versions and their upcasters.
pub mod legacy {
    use super::*;

    /// `RebateCredited` schema version 1: the amount as a bare decimal string with the
    /// currency beside it, as the quarterly payment row it was copied from. Version 2 carries
    /// one `Money` object like every other money event, so consumers read every amount the
    /// same way.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RebateCreditedV1 {
        pub partner_id: String,
        pub source_id: String,
        pub amount: Decimal,
        pub currency: Currency,
        pub credited_at: DateTime<Utc>,
    }

    pub fn rebate_credited_v1_to_v2(payload: Value) -> Result<Value, DecodeError> {
        let v1: RebateCreditedV1 = serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
        let current = RebateEvent::RebateCredited {
            partner_id: v1.partner_id,
            source_id: v1.source_id,
            amount: Money::new(v1.amount, v1.currency),
            credited_at: v1.credited_at,
        };
        Ok(crate::encode(&current).2)
    }

    /// A payload as version 1 stored it, and the event it must decode to.
    pub fn rebate_credited_v1_example() -> (Value, RebateEvent) {
        let payload = serde_json::json!({
            "partner_id": "P1",
            "source_id": "QP-P1-2026Q2",
            "amount": "1200.50",
            "currency": "CNY",
            "credited_at": "2026-07-20T02:00:00Z",
        });
        let event = RebateEvent::RebateCredited {
            partner_id: "P1".into(),
            source_id: "QP-P1-2026Q2".into(),
            amount: Money::new(Decimal::new(120050, 2), Currency::CNY),
            credited_at: "2026-07-20T02:00:00Z".parse().expect("a valid timestamp"),
        };
        (payload, event)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebateCommand {
    /// The application layer sends this when a quarterly payment `source_id` is paid with
    /// `cloud_account_credit`. A repeat with the same source is a no-op.
    CreditRebate { partner_id: String, source_id: String, amount: Money },
    /// `withdrawal_id` is generated by the application; `legal_name` is the partner's
    /// real-name-certified name (`None` if not certified), looked up by the application.
    RequestWithdrawal {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        bank_account: BankAccount,
        legal_name: Option<String>,
    },
    /// Operator. `calendar` is the working-day calendar in force (the built-in PRC one by
    /// default).
    ApproveWithdrawal { withdrawal_id: String, calendar: WorkingCalendar },
    /// Operator: releases the hold.
    RejectWithdrawal { withdrawal_id: String, reason: Option<String> },
    /// Operator: the bank transfer went through.
    MarkWithdrawalPaid { withdrawal_id: String },
    /// Operator: the bank returned the transfer; the amount is restored.
    MarkWithdrawalFailed { withdrawal_id: String, reason: Option<String> },
}

/// One withdrawal as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawal {
    pub withdrawal_id: String,
    pub partner_id: String,
    pub amount: Money,
    pub status: WithdrawalStatus,
    pub expected_arrival_date: Option<NaiveDate>,
    pub bank_account: BankAccount,
}

/// Sums of one currency. Withdrawable = credited − held − paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebateBalance {
    pub credited: Decimal,
    /// Held by pending (requested or approved) withdrawals.
    pub held: Decimal,
    /// Withdrawn: paid out to the bank.
    pub paid: Decimal,
}

impl RebateBalance {
    pub fn withdrawable(&self) -> Decimal {
        self.credited - self.held - self.paid
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebateState {
    /// Known from the first event on.
    pub partner_id: Option<String>,
    /// Credits by source (the quarterly payment id), for idempotency.
    pub credits: BTreeMap<String, Money>,
    pub balances: BTreeMap<Currency, RebateBalance>,
    pub withdrawals: BTreeMap<String, Withdrawal>,
}

impl RebateState {
    pub fn balance(&self, currency: Currency) -> RebateBalance {
        self.balances.get(&currency).copied().unwrap_or_default()
    }

    pub fn withdrawal(&self, withdrawal_id: &str) -> Option<&Withdrawal> {
        self.withdrawals.get(withdrawal_id)
    }
}

/// §6: what the partner may still withdraw in `currency`.
pub fn withdrawable(state: &RebateState, currency: Currency) -> Money {
    Money::new(state.balance(currency).withdrawable(), currency)
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

/// The expected arrival date of a withdrawal approved at `approved_at`.
pub fn expected_arrival_date(approved_at: DateTime<Utc>, calendar: &WorkingCalendar) -> NaiveDate {
    calendar.add_working_days(business_date(approved_at), ARRIVAL_WORKING_DAYS)
}

pub struct Rebate;

impl Decider for Rebate {
    type State = RebateState;
    type Command = RebateCommand;
    type Event = RebateEvent;

    fn decide(
        state: &RebateState,
        command: RebateCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<RebateEvent>, DomainError> {
        match command {
            RebateCommand::CreditRebate { partner_id, source_id, amount } => {
                credit(state, partner_id, source_id, amount, now)
            }
            RebateCommand::RequestWithdrawal { partner_id, withdrawal_id, amount, bank_account, legal_name } => {
                request(state, partner_id, withdrawal_id, amount, bank_account, legal_name, now)
            }
            RebateCommand::ApproveWithdrawal { withdrawal_id, calendar } => {
                let w = pending(state, &withdrawal_id, WithdrawalStatus::Requested, "approved")?;
                Ok(vec![RebateEvent::WithdrawalApproved {
                    partner_id: w.partner_id.clone(),
                    withdrawal_id,
                    amount: w.amount,
                    expected_arrival_date: expected_arrival_date(now, &calendar),
                    approved_at: now,
                }])
            }
            RebateCommand::RejectWithdrawal { withdrawal_id, reason } => {
                check_reason(&reason)?;
                let w = pending(state, &withdrawal_id, WithdrawalStatus::Requested, "rejected")?;
                Ok(vec![RebateEvent::WithdrawalRejected {
                    partner_id: w.partner_id.clone(),
                    withdrawal_id,
                    amount: w.amount,
                    reason,
                    rejected_at: now,
                }])
            }
            RebateCommand::MarkWithdrawalPaid { withdrawal_id } => {
                let w = pending(state, &withdrawal_id, WithdrawalStatus::Approved, "paid")?;
                Ok(vec![RebateEvent::WithdrawalPaid {
                    partner_id: w.partner_id.clone(),
                    withdrawal_id,
                    amount: w.amount,
                    paid_at: now,
                }])
            }
            RebateCommand::MarkWithdrawalFailed { withdrawal_id, reason } => {
                check_reason(&reason)?;
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

    fn evolve(mut state: RebateState, event: &RebateEvent) -> RebateState {
        let partner_id = event.partner_id();
        if state.partner_id.is_none() {
            state.partner_id = Some(partner_id.to_string());
        }
        match event {
            RebateEvent::RebateCredited { source_id, amount, .. } => {
                state.credits.insert(source_id.clone(), *amount);
                state.balances.entry(amount.currency).or_default().credited += amount.amount;
            }
            RebateEvent::WithdrawalRequested { withdrawal_id, amount, bank_account, .. } => {
                state.balances.entry(amount.currency).or_default().held += amount.amount;
                state.withdrawals.insert(
                    withdrawal_id.clone(),
                    Withdrawal {
                        withdrawal_id: withdrawal_id.clone(),
                        partner_id: partner_id.to_string(),
                        amount: *amount,
                        status: WithdrawalStatus::Requested,
                        expected_arrival_date: None,
                        bank_account: bank_account.clone(),
                    },
                );
            }
            RebateEvent::WithdrawalApproved { withdrawal_id, expected_arrival_date, .. } => {
                if let Some(w) = state.withdrawals.get_mut(withdrawal_id) {
                    w.status = WithdrawalStatus::Approved;
                    w.expected_arrival_date = Some(*expected_arrival_date);
                }
            }
            RebateEvent::WithdrawalRejected { withdrawal_id, amount, .. } => {
                state.balances.entry(amount.currency).or_default().held -= amount.amount;
                set_status(&mut state, withdrawal_id, WithdrawalStatus::Rejected);
            }
            RebateEvent::WithdrawalPaid { withdrawal_id, amount, .. } => {
                let balance = state.balances.entry(amount.currency).or_default();
                balance.held -= amount.amount;
                balance.paid += amount.amount;
                set_status(&mut state, withdrawal_id, WithdrawalStatus::Paid);
            }
            RebateEvent::WithdrawalFailed { withdrawal_id, amount, .. } => {
                state.balances.entry(amount.currency).or_default().held -= amount.amount;
                set_status(&mut state, withdrawal_id, WithdrawalStatus::Failed);
            }
        }
        state
    }
}

impl RebateEvent {
    pub fn partner_id(&self) -> &str {
        match self {
            RebateEvent::RebateCredited { partner_id, .. }
            | RebateEvent::WithdrawalRequested { partner_id, .. }
            | RebateEvent::WithdrawalApproved { partner_id, .. }
            | RebateEvent::WithdrawalRejected { partner_id, .. }
            | RebateEvent::WithdrawalPaid { partner_id, .. }
            | RebateEvent::WithdrawalFailed { partner_id, .. } => partner_id,
        }
    }
}

fn credit(
    state: &RebateState,
    partner_id: String,
    source_id: String,
    amount: Money,
    now: DateTime<Utc>,
) -> Result<Vec<RebateEvent>, DomainError> {
    validate_id("source_id", &source_id)?;
    validate_amount(amount)?;
    same_partner(state, &partner_id)?;
    match state.credits.get(&source_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::DuplicateRecordConflict { record_id: source_id }),
        None => Ok(vec![RebateEvent::RebateCredited { partner_id, source_id, amount, credited_at: now }]),
    }
}

fn request(
    state: &RebateState,
    partner_id: String,
    withdrawal_id: String,
    amount: Money,
    bank_account: BankAccount,
    legal_name: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<RebateEvent>, DomainError> {
    validate_id("withdrawal_id", &withdrawal_id)?;
    validate_amount(amount)?;
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

fn set_status(state: &mut RebateState, withdrawal_id: &str, status: WithdrawalStatus) {
    if let Some(w) = state.withdrawals.get_mut(withdrawal_id) {
        w.status = status;
    }
}

/// A stream belongs to one partner; a command naming another is the caller's mistake.
fn same_partner(state: &RebateState, partner_id: &str) -> Result<(), DomainError> {
    validate_id("partner_id", partner_id)?;
    match &state.partner_id {
        Some(owner) if owner != partner_id => Err(DomainError::Invalid(CoreError::InvalidField {
            field: "partner_id",
            reason: format!("this rebate account belongs to partner {owner}"),
        })),
        _ => Ok(()),
    }
}

/// Commands carry parsed money, but the rule still holds: > 0, at most 2 places, bounded.
fn validate_amount(amount: Money) -> Result<(), DomainError> {
    let bad = |reason| DomainError::Invalid(CoreError::InvalidAmount { value: amount.amount.to_string(), reason });
    if amount.amount <= Decimal::ZERO {
        return Err(bad("must be greater than zero"));
    }
    if amount.amount.normalize().scale() > MONEY_SCALE {
        return Err(bad("at most 2 decimal places"));
    }
    if amount.amount > MAX_AMOUNT {
        return Err(bad("must be at most 1000000000000"));
    }
    Ok(())
}

fn check_reason(reason: &Option<String>) -> Result<(), DomainError> {
    if let Some(r) = reason {
        validate_text("reason", r, MAX_REASON_CHARS)?;
    }
    Ok(())
}

/// How each event moves money: credit `vendor:rebate_clearing` → `partner:{P}:rebate`; a
/// request holds `rebate` → `rebate_held`; rejection or failure moves it back; payment
/// `rebate_held` → `vendor:bank_payout`. Approval moves nothing.
pub fn postings(event: &RebateEvent) -> Vec<Posting> {
    let p = event.partner_id();
    match event {
        RebateEvent::RebateCredited { amount, .. } => {
            postings::transfer(REBATE_CLEARING, rebate_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalRequested { amount, .. } => {
            postings::transfer(rebate_account(p), rebate_held_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalApproved { .. } => vec![],
        RebateEvent::WithdrawalRejected { amount, .. } | RebateEvent::WithdrawalFailed { amount, .. } => {
            postings::transfer(rebate_held_account(p), rebate_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalPaid { amount, .. } => {
            postings::transfer(rebate_held_account(p), BANK_PAYOUT, amount.amount, amount.currency)
        }
    }
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<RebateEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    let cny = |cents: i64| Money::new(Decimal::new(cents, 2), Currency::CNY);
    let p = || "P1".to_string();
    let w = || "W-0001".to_string();
    vec![
        RebateEvent::RebateCredited {
            partner_id: p(),
            source_id: "QP-P1-2026Q2".into(),
            amount: cny(120050),
            credited_at: at("2026-07-20T02:00:00Z"),
        },
        RebateEvent::WithdrawalRequested {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            bank_account: BankAccount {
                holder_name: "银河科技有限公司".into(),
                number: "6222000011112222".into(),
                bank: "ICBC".into(),
            },
            requested_at: at("2026-09-29T03:00:00Z"),
        },
        RebateEvent::WithdrawalApproved {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            expected_arrival_date: NaiveDate::from_ymd_opt(2026, 10, 15).expect("a valid date"),
            approved_at: at("2026-09-30T03:00:00Z"),
        },
        RebateEvent::WithdrawalRejected {
            partner_id: p(),
            withdrawal_id: "W-0002".into(),
            amount: cny(5000),
            reason: Some("bank account under review".into()),
            rejected_at: at("2026-09-30T04:00:00Z"),
        },
        RebateEvent::WithdrawalPaid {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            paid_at: at("2026-10-14T06:00:00Z"),
        },
        RebateEvent::WithdrawalFailed {
            partner_id: p(),
            withdrawal_id: "W-0003".into(),
            amount: cny(2000),
            reason: None,
            failed_at: at("2026-10-16T06:00:00Z"),
        },
    ]
}
