//! The rebate account as its events leave it: balances per currency and withdrawals.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use ledger_core::{Currency, Money};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RebateEvent;
use crate::partner::BankAccount;

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

pub(super) fn evolve(mut state: RebateState, event: &RebateEvent) -> RebateState {
    let partner_id = event.partner_id();
    if state.partner_id.is_none() {
        state.partner_id = Some(partner_id.to_string());
    }
    // decide moves only a withdrawal it holds, so every stored step after the request names
    // a known one.
    debug_assert!(
        matches!(event, RebateEvent::RebateCredited { .. } | RebateEvent::WithdrawalRequested { .. })
            || event.withdrawal_id().is_some_and(|id| state.withdrawals.contains_key(id)),
        "rebate event for an unknown withdrawal: {event:?}"
    );
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
