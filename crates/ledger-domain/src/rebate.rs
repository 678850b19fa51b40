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

impl Withdrawal {
    /// The withdrawal a `WithdrawalRequested` event creates (`None` for any other event).
    pub fn requested(event: &RebateEvent) -> Option<Withdrawal> {
        let RebateEvent::WithdrawalRequested { partner_id, withdrawal_id, amount, bank_account, .. } = event else {
            return None;
        };
        Some(Withdrawal {
            withdrawal_id: withdrawal_id.clone(),
            partner_id: partner_id.clone(),
            amount: *amount,
            status: WithdrawalStatus::Requested,
            expected_arrival_date: None,
            bank_account: bank_account.clone(),
        })
    }

    /// The part of an approval, rejection, payment or failure that concerns this
    /// withdrawal: the aggregate's evolve and the read model of withdrawals both run it.
    pub fn apply(&mut self, event: &RebateEvent) {
        if event.withdrawal_id() != Some(self.withdrawal_id.as_str()) {
            return;
        }
        match event {
            RebateEvent::WithdrawalApproved { expected_arrival_date, .. } => {
                self.status = WithdrawalStatus::Approved;
                self.expected_arrival_date = Some(*expected_arrival_date);
            }
            RebateEvent::WithdrawalRejected { .. } => self.status = WithdrawalStatus::Rejected,
            RebateEvent::WithdrawalPaid { .. } => self.status = WithdrawalStatus::Paid,
            RebateEvent::WithdrawalFailed { .. } => self.status = WithdrawalStatus::Failed,
            RebateEvent::RebateCredited { .. } | RebateEvent::WithdrawalRequested { .. } => {}
        }
    }
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
        if let Some(w) = event.withdrawal_id().and_then(|id| state.withdrawals.get_mut(id)) {
            w.apply(event);
        }
        match event {
            RebateEvent::RebateCredited { source_id, amount, .. } => {
                state.credits.insert(source_id.clone(), *amount);
                state.balances.entry(amount.currency).or_default().credited += amount.amount;
            }
            RebateEvent::WithdrawalRequested { amount, .. } => {
                state.balances.entry(amount.currency).or_default().held += amount.amount;
                if let Some(w) = Withdrawal::requested(event) {
                    state.withdrawals.insert(w.withdrawal_id.clone(), w);
                }
            }
            RebateEvent::WithdrawalApproved { .. } => {}
            RebateEvent::WithdrawalRejected { amount, .. } | RebateEvent::WithdrawalFailed { amount, .. } => {
                state.balances.entry(amount.currency).or_default().held -= amount.amount;
            }
            RebateEvent::WithdrawalPaid { amount, .. } => {
                let balance = state.balances.entry(amount.currency).or_default();
                balance.held -= amount.amount;
                balance.paid += amount.amount;
            }
        }
        state
    }
}

impl RebateEvent {
    /// The withdrawal the event is about (`None` for a credit).
    pub fn withdrawal_id(&self) -> Option<&str> {
        match self {
            RebateEvent::RebateCredited { .. } => None,
            RebateEvent::WithdrawalRequested { withdrawal_id, .. }
            | RebateEvent::WithdrawalApproved { withdrawal_id, .. }
            | RebateEvent::WithdrawalRejected { withdrawal_id, .. }
            | RebateEvent::WithdrawalPaid { withdrawal_id, .. }
            | RebateEvent::WithdrawalFailed { withdrawal_id, .. } => Some(withdrawal_id),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::harness::given;
    use crate::partner::tests::t;
    use proptest::prelude::*;

    const P: &str = "P1";
    const LEGAL: &str = "银河科技（北京）有限公司";
    const NOW: &str = "2026-07-20T02:00:00Z";

    fn cny(s: &str) -> Money {
        Money::new(Decimal::from_str_exact(s).unwrap(), Currency::CNY)
    }

    fn usd(s: &str) -> Money {
        Money::new(Decimal::from_str_exact(s).unwrap(), Currency::USD)
    }

    fn bank(holder: &str) -> BankAccount {
        BankAccount { holder_name: holder.into(), number: "6222000011112222".into(), bank: "ICBC".into() }
    }

    fn credited(source: &str, amount: Money) -> RebateEvent {
        RebateEvent::RebateCredited {
            partner_id: P.into(),
            source_id: source.into(),
            amount,
            credited_at: t("2026-07-01T00:00:00Z"),
        }
    }

    fn requested(id: &str, amount: Money) -> RebateEvent {
        RebateEvent::WithdrawalRequested {
            partner_id: P.into(),
            withdrawal_id: id.into(),
            amount,
            bank_account: bank(LEGAL),
            requested_at: t("2026-07-02T00:00:00Z"),
        }
    }

    fn approved(id: &str, amount: Money) -> RebateEvent {
        RebateEvent::WithdrawalApproved {
            partner_id: P.into(),
            withdrawal_id: id.into(),
            amount,
            expected_arrival_date: NaiveDate::from_ymd_opt(2026, 7, 13).unwrap(),
            approved_at: t("2026-07-03T00:00:00Z"),
        }
    }

    fn credit(source: &str, amount: Money) -> RebateCommand {
        RebateCommand::CreditRebate { partner_id: P.into(), source_id: source.into(), amount }
    }

    fn request(id: &str, amount: Money) -> RebateCommand {
        request_to(id, amount, bank(LEGAL), Some(LEGAL))
    }

    fn request_to(id: &str, amount: Money, bank_account: BankAccount, legal_name: Option<&str>) -> RebateCommand {
        RebateCommand::RequestWithdrawal {
            partner_id: P.into(),
            withdrawal_id: id.into(),
            amount,
            bank_account,
            legal_name: legal_name.map(String::from),
        }
    }

    fn approve(id: &str) -> RebateCommand {
        RebateCommand::ApproveWithdrawal { withdrawal_id: id.into(), calendar: WorkingCalendar::builtin() }
    }

    fn reject(id: &str) -> RebateCommand {
        RebateCommand::RejectWithdrawal { withdrawal_id: id.into(), reason: None }
    }

    fn paid(id: &str) -> RebateCommand {
        RebateCommand::MarkWithdrawalPaid { withdrawal_id: id.into() }
    }

    fn failed(id: &str) -> RebateCommand {
        RebateCommand::MarkWithdrawalFailed { withdrawal_id: id.into(), reason: Some("account closed".into()) }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Runs `commands` in order from `history`, keeping what succeeded.
    fn run(history: Vec<RebateEvent>, commands: Vec<RebateCommand>) -> (Vec<RebateEvent>, RebateState) {
        let mut events = history;
        let mut state = Rebate::replay(&events);
        for c in commands {
            if let Ok(new) = Rebate::decide(&state, c, t(NOW)) {
                for e in new {
                    state = Rebate::evolve(state, &e);
                    events.push(e);
                }
            }
        }
        (events, state)
    }

    // --- crediting ---

    #[test]
    fn a_cloud_account_credit_is_recorded_with_its_source() {
        given::<Rebate>([])
            .at(t("2026-07-01T00:00:00Z"))
            .when(credit("QP-1", cny("100.00")))
            .then([credited("QP-1", cny("100.00"))]);
    }

    #[test]
    fn crediting_the_same_payment_again_changes_nothing() {
        given::<Rebate>([credited("QP-1", cny("100.00"))]).when(credit("QP-1", cny("100.00"))).then([]);
        // The same source with another amount is not a repeat but a conflicting record.
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(credit("QP-1", cny("90.00")))
            .then_error("DUPLICATE_RECORD_CONFLICT");
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(credit("QP-1", usd("100.00")))
            .then_error("DUPLICATE_RECORD_CONFLICT");
    }

    #[test]
    fn amounts_are_positive_with_at_most_two_places() {
        for bad in ["0", "-1.00", "0.001", "1000000000000.01"] {
            given::<Rebate>([]).when(credit("QP-1", cny(bad))).then_error("INVALID_AMOUNT");
            given::<Rebate>([credited("QP-0", cny("5000000000000"))])
                .when(request("W1", cny(bad)))
                .then_error("INVALID_AMOUNT");
        }
        // Trailing zeros are not extra places.
        given::<Rebate>([])
            .at(t("2026-07-01T00:00:00Z"))
            .when(credit("QP-1", cny("1.500")))
            .then([credited("QP-1", cny("1.500"))]);
    }

    #[test]
    fn ids_are_checked_and_a_stream_serves_one_partner() {
        given::<Rebate>([]).when(credit("QP 1", cny("1.00"))).then_error("INVALID_FIELD");
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(request("W/1", cny("1.00")))
            .then_error("INVALID_FIELD");
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(RebateCommand::CreditRebate {
                partner_id: "P2".into(),
                source_id: "QP-2".into(),
                amount: cny("1.00"),
            })
            .then_error("INVALID_FIELD");
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(RebateCommand::RequestWithdrawal {
                partner_id: "P2".into(),
                withdrawal_id: "W1".into(),
                amount: cny("1.00"),
                bank_account: bank(LEGAL),
                legal_name: Some(LEGAL.into()),
            })
            .then_error("INVALID_FIELD");
    }

    // --- requesting ---

    #[test]
    fn a_withdrawal_above_the_withdrawable_amount_is_refused() {
        // §6: "A request above it is rejected INSUFFICIENT_BALANCE".
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(request("W1", cny("100.01")))
            .then_error("INSUFFICIENT_BALANCE");
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .at(t("2026-07-02T00:00:00Z"))
            .when(request("W1", cny("100.00")))
            .then([requested("W1", cny("100.00"))]);
        given::<Rebate>([]).when(request("W1", cny("0.01"))).then_error("INSUFFICIENT_BALANCE");
    }

    #[test]
    fn withdrawable_is_per_currency() {
        let history = [credited("QP-1", usd("500.00")), credited("QP-2", cny("10.00"))];
        given::<Rebate>(history.clone()).when(request("W1", cny("10.01"))).then_error("INSUFFICIENT_BALANCE");
        let state = Rebate::replay(&history);
        assert_eq!(withdrawable(&state, Currency::USD), usd("500.00"));
        assert_eq!(withdrawable(&state, Currency::CNY), cny("10.00"));
    }

    #[test]
    fn a_pending_withdrawal_holds_its_amount() {
        // §6: withdrawable = credited − withdrawn − held by pending withdrawals.
        let history = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        let err = Rebate::decide(&Rebate::replay(&history), request("W2", cny("40.01")), t(NOW)).unwrap_err();
        assert_eq!(err.code(), "INSUFFICIENT_BALANCE");
        assert!(err.to_string().contains("available 40.00 CNY"), "{err}");
        given::<Rebate>(history.clone()).when(request("W2", cny("40.00"))).events();

        // Approved still holds.
        let (_, state) = run(history.clone(), vec![approve("W1")]);
        assert_eq!(withdrawable(&state, Currency::CNY), cny("40.00"));
        assert_eq!(state.balance(Currency::CNY).held, Decimal::from_str_exact("60.00").unwrap());
    }

    #[test]
    fn rejection_releases_the_hold() {
        let (_, state) = run(vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))], vec![reject("W1")]);
        assert_eq!(withdrawable(&state, Currency::CNY), cny("100.00"));
        assert_eq!(state.withdrawal("W1").unwrap().status, WithdrawalStatus::Rejected);
    }

    #[test]
    fn a_paid_withdrawal_is_withdrawn_and_a_failed_one_is_restored() {
        let history = vec![
            credited("QP-1", cny("100.00")),
            requested("W1", cny("60.00")),
            approved("W1", cny("60.00")),
            requested("W2", cny("30.00")),
            approved("W2", cny("30.00")),
        ];
        let (_, state) = run(history, vec![paid("W1"), failed("W2")]);
        let b = state.balance(Currency::CNY);
        assert_eq!(b.paid, Decimal::from_str_exact("60.00").unwrap());
        assert_eq!(b.held, Decimal::ZERO);
        assert_eq!(withdrawable(&state, Currency::CNY), cny("40.00"));
        assert_eq!(state.withdrawal("W1").unwrap().status, WithdrawalStatus::Paid);
        assert_eq!(state.withdrawal("W2").unwrap().status, WithdrawalStatus::Failed);
    }

    #[test]
    fn the_holder_must_be_the_real_name_certified_name() {
        // Seed: "收款账号名称必须与实名认证一致" (the payee name must match the real-name certification).
        let history = [credited("QP-1", cny("100.00"))];
        given::<Rebate>(history.clone())
            .when(request_to("W1", cny("1.00"), bank("银河科技有限公司"), Some(LEGAL)))
            .then_error("ACCOUNT_NAME_MISMATCH");
        given::<Rebate>(history.clone())
            .when(request_to("W1", cny("1.00"), bank("Galaxy Tech"), Some("Galaxy  Tech")))
            .then_error("ACCOUNT_NAME_MISMATCH");
        given::<Rebate>(history.clone())
            .when(request_to("W1", cny("1.00"), bank("galaxy tech"), Some("Galaxy Tech")))
            .then_error("ACCOUNT_NAME_MISMATCH");
        // After NFKC and trimming: half-width brackets, an ideographic space, full-width letters.
        for holder in ["银河科技(北京)有限公司", "\u{3000}银河科技（北京）有限公司 ", " 银河科技(北京)有限公司  "]
        {
            given::<Rebate>(history.clone()).when(request_to("W1", cny("1.00"), bank(holder), Some(LEGAL))).events();
        }
        assert!(same_name("ＧＡＬＡＸＹ Tech", "GALAXY Tech"));
        assert!(!same_name("GALAXY Tech", "GALAXY Tech Ltd"));
    }

    #[test]
    fn a_partner_without_real_name_certification_cannot_withdraw() {
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(request_to("W1", cny("1.00"), bank(LEGAL), None))
            .then_error("CERTIFICATION_INCOMPLETE");
    }

    #[test]
    fn a_bank_account_needs_every_field() {
        let mut b = bank(LEGAL);
        b.bank = " ".into();
        given::<Rebate>([credited("QP-1", cny("100.00"))])
            .when(request_to("W1", cny("1.00"), b, Some(LEGAL)))
            .then_error("INVALID_FIELD");
    }

    #[test]
    fn a_withdrawal_id_is_used_once_and_must_exist() {
        given::<Rebate>([credited("QP-1", cny("100.00")), requested("W1", cny("1.00"))])
            .when(request("W1", cny("1.00")))
            .then_error("ALREADY_EXISTS");
        given::<Rebate>([credited("QP-1", cny("100.00"))]).when(approve("W9")).then_error("NOT_FOUND");
        given::<Rebate>([]).when(paid("W9")).then_error("NOT_FOUND");
    }

    // --- approval and the arrival date ---

    #[test]
    fn approval_sets_the_arrival_date_seven_working_days_later() {
        // Seed: "提现审核通过后,需要7个工作日到账".
        let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        // Wed 2026-09-30 10:00 CST: Oct 1–7 are National Day, Sat Oct 10 is a make-up day.
        // Working days after: Oct 8, 9, 10, 12, 13, 14, 15.
        given::<Rebate>(history.clone()).at(t("2026-09-30T02:00:00Z")).when(approve("W1")).then([
            RebateEvent::WithdrawalApproved {
                partner_id: P.into(),
                withdrawal_id: "W1".into(),
                amount: cny("60.00"),
                expected_arrival_date: date("2026-10-15"),
                approved_at: t("2026-09-30T02:00:00Z"),
            },
        ]);
    }

    #[test]
    fn the_approval_date_is_the_business_date_in_china() {
        let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        // 2026-09-29 16:30 UTC is already Wed 2026-09-30 00:30 CST.
        let at = t("2026-09-29T16:30:00Z");
        let events = given::<Rebate>(history.clone()).at(at).when(approve("W1")).events();
        assert!(
            matches!(events[0], RebateEvent::WithdrawalApproved { expected_arrival_date, .. } if expected_arrival_date == date("2026-10-15"))
        );
        // One day earlier in CST (Tue Sep 29): Sep 30, Oct 8, 9, 10, 12, 13, 14.
        assert_eq!(expected_arrival_date(t("2026-09-29T02:00:00Z"), &WorkingCalendar::builtin()), date("2026-10-14"));
    }

    #[test]
    fn a_make_up_weekend_day_counts_and_the_calendar_comes_with_the_command() {
        // Sat 2026-09-19: Sun Sep 20 is a make-up workday, Sep 25–27 are Mid-Autumn holidays.
        // Working days after: Sep 20, 21, 22, 23, 24, 28, 29.
        assert_eq!(expected_arrival_date(t("2026-09-19T02:00:00Z"), &WorkingCalendar::builtin()), date("2026-09-29"));
        // Fri 2026-09-25 (a holiday itself): Sep 28, 29, 30, Oct 8, 9, Sat Oct 10, Oct 12.
        let friday = t("2026-09-25T02:00:00Z");
        assert_eq!(expected_arrival_date(friday, &WorkingCalendar::builtin()), date("2026-10-12"));
        // The decider uses the calendar the command brings: without holidays it is Sep 28,
        // 29, 30, Oct 1, 2, 5, 6.
        let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        let events = given::<Rebate>(history)
            .at(friday)
            .when(RebateCommand::ApproveWithdrawal {
                withdrawal_id: "W1".into(),
                calendar: WorkingCalendar::weekdays_only(),
            })
            .events();
        assert!(matches!(
            events[0],
            RebateEvent::WithdrawalApproved { expected_arrival_date, .. } if expected_arrival_date == date("2026-10-06")
        ));
    }

    #[test]
    fn the_view_shows_status_arrival_date_and_bank_account() {
        let (_, state) = run(vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))], vec![]);
        let w = state.withdrawal("W1").unwrap();
        assert_eq!(w.status, WithdrawalStatus::Requested);
        assert_eq!(w.expected_arrival_date, None);
        let state = Rebate::evolve(state, &approved("W1", cny("60.00")));
        assert_eq!(
            state.withdrawal("W1").unwrap(),
            &Withdrawal {
                withdrawal_id: "W1".into(),
                partner_id: P.into(),
                amount: cny("60.00"),
                status: WithdrawalStatus::Approved,
                expected_arrival_date: Some(date("2026-07-13")),
                bank_account: bank(LEGAL),
            }
        );
        let json = serde_json::to_value(state.withdrawal("W1").unwrap()).unwrap();
        assert_eq!(json["status"], "approved");
        assert_eq!(json["expected_arrival_date"], "2026-07-13");
    }

    // --- wrong-state transitions ---

    #[test]
    fn each_step_needs_the_status_before_it() {
        let requested_w1 = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        let approved_w1 = [requested_w1.clone(), vec![approved("W1", cny("60.00"))]].concat();
        let (rejected_w1, _) = run(requested_w1.clone(), vec![reject("W1")]);
        let (paid_w1, _) = run(approved_w1.clone(), vec![paid("W1")]);
        let (failed_w1, _) = run(approved_w1.clone(), vec![failed("W1")]);

        // Requested: may be approved or rejected, not paid or failed.
        given::<Rebate>(requested_w1.clone()).when(paid("W1")).then_error("INVALID_STATE");
        given::<Rebate>(requested_w1.clone()).when(failed("W1")).then_error("INVALID_STATE");
        // Approved: may be paid or fail, not approved again or rejected.
        given::<Rebate>(approved_w1.clone()).when(approve("W1")).then_error("INVALID_STATE");
        given::<Rebate>(approved_w1.clone()).when(reject("W1")).then_error("INVALID_STATE");
        // Final statuses accept nothing.
        for history in [rejected_w1, paid_w1, failed_w1] {
            for command in [approve("W1"), reject("W1"), paid("W1"), failed("W1")] {
                given::<Rebate>(history.clone()).when(command).then_error("INVALID_STATE");
            }
        }
    }

    #[test]
    fn a_reason_is_bounded_text() {
        let history = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        given::<Rebate>(history.clone())
            .when(RebateCommand::RejectWithdrawal { withdrawal_id: "W1".into(), reason: Some(long.clone()) })
            .then_error("INVALID_FIELD");
        given::<Rebate>([history, vec![approved("W1", cny("60.00"))]].concat())
            .when(RebateCommand::MarkWithdrawalFailed { withdrawal_id: "W1".into(), reason: Some(long) })
            .then_error("INVALID_FIELD");
    }

    // --- postings and encoding ---

    #[test]
    fn every_event_posts_a_balanced_transfer_between_the_named_accounts() {
        let amount = |e: &RebateEvent| match e {
            RebateEvent::RebateCredited { amount, .. }
            | RebateEvent::WithdrawalRequested { amount, .. }
            | RebateEvent::WithdrawalApproved { amount, .. }
            | RebateEvent::WithdrawalRejected { amount, .. }
            | RebateEvent::WithdrawalPaid { amount, .. }
            | RebateEvent::WithdrawalFailed { amount, .. } => *amount,
        };
        for e in examples() {
            let ps = postings(&e);
            assert!(postings::is_balanced(&ps), "{e:?}");
            let flow: Option<(&str, &str)> = match &e {
                RebateEvent::RebateCredited { .. } => Some(("vendor:rebate_clearing", "partner:P1:rebate")),
                RebateEvent::WithdrawalRequested { .. } => Some(("partner:P1:rebate", "partner:P1:rebate_held")),
                RebateEvent::WithdrawalApproved { .. } => None,
                RebateEvent::WithdrawalRejected { .. } | RebateEvent::WithdrawalFailed { .. } => {
                    Some(("partner:P1:rebate_held", "partner:P1:rebate"))
                }
                RebateEvent::WithdrawalPaid { .. } => Some(("partner:P1:rebate_held", "vendor:bank_payout")),
            };
            let m = amount(&e);
            match flow {
                None => assert!(ps.is_empty()),
                Some((from, to)) => assert_eq!(
                    ps,
                    vec![Posting::debit(to, m.amount, m.currency), Posting::credit(from, m.amount, m.currency)],
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn events_round_trip_and_rebate_credited_v1_upcasts() {
        for e in examples() {
            let (ty, v, data) = crate::encode(&e);
            assert_eq!(crate::decode::<RebateEvent>(&ty, v, &data.to_string()).unwrap(), e);
        }
        let (ty, v, data) = crate::encode(&examples()[0]);
        assert_eq!((ty.as_str(), v), ("RebateCredited", 2));
        assert_eq!(data["amount"]["currency"], "CNY");

        let (v1, expected) = legacy::rebate_credited_v1_example();
        assert_eq!(crate::decode::<RebateEvent>("RebateCredited", 1, &v1.to_string()).unwrap(), expected);
        // A v1 payload that is not v1-shaped is refused, not guessed at.
        let mut broken = v1.clone();
        broken.as_object_mut().unwrap().remove("currency");
        assert!(matches!(
            crate::decode::<RebateEvent>("RebateCredited", 1, &broken.to_string()),
            Err(DecodeError::Payload(_))
        ));
        assert_eq!(
            crate::decode::<RebateEvent>("RebateCredited", 3, &v1.to_string()),
            Err(DecodeError::UnknownVersion { event_type: "RebateCredited".into(), version: 3 })
        );
        assert!(matches!(
            crate::decode::<RebateEvent>("WithdrawalPaid", 0, "{}"),
            Err(DecodeError::UnknownVersion { .. })
        ));
    }

    // --- properties ---

    fn money_strategy() -> impl Strategy<Value = Money> {
        (1i64..=20_000, prop_oneof![4 => Just(Currency::CNY), 1 => Just(Currency::USD)])
            .prop_map(|(cents, c)| Money::new(Decimal::new(cents, 2), c))
    }

    fn command_strategy() -> impl Strategy<Value = RebateCommand> {
        let id = || (0u8..6).prop_map(|i| format!("W{i}"));
        prop_oneof![
            2 => ((0u8..8), money_strategy()).prop_map(|(s, m)| credit(&format!("QP-{s}"), m)),
            3 => (id(), money_strategy(), any::<bool>()).prop_map(|(w, m, good_name)| {
                request_to(&w, m, bank(if good_name { LEGAL } else { "Someone Else" }), Some(LEGAL))
            }),
            2 => id().prop_map(|w| approve(&w)),
            1 => id().prop_map(|w| reject(&w)),
            1 => id().prop_map(|w| paid(&w)),
            1 => id().prop_map(|w| failed(&w)),
        ]
    }

    /// Sums of the postings of `events`, per (account, currency), as debits − credits.
    fn ledger(events: &[RebateEvent]) -> BTreeMap<(String, Currency), Decimal> {
        let mut sums = BTreeMap::new();
        for e in events {
            let ps = postings(e);
            assert!(postings::is_balanced(&ps), "{e:?}");
            for p in ps {
                let signed = match p.side {
                    postings::Side::Debit => p.amount,
                    postings::Side::Credit => -p.amount,
                };
                *sums.entry((p.account, p.currency)).or_insert(Decimal::ZERO) += signed;
            }
        }
        sums
    }

    proptest! {
        #[test]
        fn conservation_holds_and_withdrawable_never_goes_negative(
            commands in proptest::collection::vec(command_strategy(), 0..60)
        ) {
            let mut events = Vec::new();
            let mut state = RebateState::default();
            for c in commands {
                if let Ok(new) = Rebate::decide(&state, c, t(NOW)) {
                    for e in new {
                        state = Rebate::evolve(state, &e);
                        events.push(e);
                    }
                }
                for currency in Currency::ALL {
                    let b = state.balance(currency);
                    prop_assert!(withdrawable(&state, currency).amount >= Decimal::ZERO);
                    prop_assert!(b.held >= Decimal::ZERO);
                    // credited = withdrawable + held + paid.
                    prop_assert_eq!(b.credited, withdrawable(&state, currency).amount + b.held + b.paid);
                    // Held is exactly what the pending withdrawals of that currency hold.
                    let pending: Decimal = state
                        .withdrawals
                        .values()
                        .filter(|w| w.status.is_pending() && w.amount.currency == currency)
                        .map(|w| w.amount.amount)
                        .sum();
                    prop_assert_eq!(b.held, pending);
                }
            }
            // Postings balance and agree with the state, account by account.
            let sums = ledger(&events);
            let get = |account: &str, c: Currency| sums.get(&(account.to_string(), c)).copied().unwrap_or_default();
            for c in Currency::ALL {
                let b = state.balance(c);
                prop_assert_eq!(get("partner:P1:rebate", c), b.withdrawable());
                prop_assert_eq!(get("partner:P1:rebate_held", c), b.held);
                prop_assert_eq!(get("vendor:bank_payout", c), b.paid);
                prop_assert_eq!(get("vendor:rebate_clearing", c), -b.credited);
                let total: Decimal = sums.iter().filter(|((_, cur), _)| *cur == c).map(|(_, v)| *v).sum();
                prop_assert_eq!(total, Decimal::ZERO);
            }
            // Replaying the produced events, also through the envelope, gives the same state.
            prop_assert_eq!(Rebate::replay(&events), state.clone());
            let decoded: Vec<RebateEvent> = events
                .iter()
                .map(|e| {
                    let (ty, v, data) = crate::encode(e);
                    crate::decode(&ty, v, &data.to_string()).unwrap()
                })
                .collect();
            prop_assert_eq!(Rebate::replay(&decoded), state);
        }
    }
}
