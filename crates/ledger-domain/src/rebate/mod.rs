//! # Rebate account (stream `rebate-{partner_id}`)
//!
//! docs/DOMAIN.md §6, 激励返点提现. A quarterly payment paid by `cloud_account_credit` credits the
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

//!
//! ## The rules, where they live
//! - [`decide`]: credits (idempotent by source), the withdrawal request (withdrawable,
//!   the holder must be the real-name-certified name), approval with the arrival date
//!   [`ARRIVAL_WORKING_DAYS`] working days later, rejection, payment, failure.
//! - [`state`]: balances per currency (credited, held, paid) and the withdrawals.
//! - [`postings`]: clearing → rebate → held → bank payout.

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{
    ApproveWithdrawal, CreditRebate, MarkWithdrawalFailed, MarkWithdrawalPaid, RebateCommand, RejectWithdrawal,
    RequestWithdrawal,
};
pub use decide::{expected_arrival_date, same_name};
pub use event::{examples, legacy, RebateEvent};
pub use postings::{postings, rebate_account, rebate_held_account, BANK_PAYOUT, REBATE_CLEARING};
pub use state::{withdrawable, RebateBalance, RebateState, Withdrawal, WithdrawalStatus};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// Seed: "提现审核通过后,需要7个工作日到账" (after approval, the money arrives within 7
/// working days).
pub const ARRIVAL_WORKING_DAYS: u32 = 7;
/// Longest rejection or failure reason.
pub const MAX_REASON_CHARS: usize = 500;
/// The current schema version of `RebateCredited` (see [`legacy`]).
pub const REBATE_CREDITED_VERSION: u32 = 2;

pub fn stream_id(partner_id: &str) -> String {
    format!("{}-{partner_id}", Rebate::FAMILY)
}

pub struct Rebate;

impl Decider for Rebate {
    const FAMILY: &'static str = "rebate";

    type State = RebateState;
    type Command = RebateCommand;
    type Event = RebateEvent;

    fn decide(
        state: &RebateState,
        command: RebateCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<RebateEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: RebateState, event: &RebateEvent) -> RebateState {
        state::evolve(state, event)
    }
}
