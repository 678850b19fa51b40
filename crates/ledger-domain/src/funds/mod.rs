//! # Funds (stream `funds-{distributor_id}`): allocation and reclaim, docs/DOMAIN.md §3
//!
//! One stream holds the whole tree of one distributor, per currency:
//! - the distributor's **fund pool** (`partner:{D}:fund_pool`), credited by the vendor;
//! - what each of its resellers **received and holds unspent** (`partner:{R}:fund_received`);
//! - what each customer (of the distributor or of one of its resellers) **holds allocated**
//!   (`customer:{C}:allocated`), kept apart by who allocated it.
//!
//! So every limit (the allocator's available funds, what a counterparty holds unspent) is
//! checked against the same stream version the append expects.
//!
//! Every allocation and reclaim event *is* the adjustment record (调账记录) of §3
//! ([`FundsEvent::adjustment_record`]); [`visible_to`] says who may list it. The
//! consumption of a resale customer draws its allocated balance down first
//! ([`FundsCommand::DrawDown`]).
//!
//! Facts from other streams (a customer's partner, a reseller's distributor, at `now`) are
//! resolved by the application layer and passed in the command.

//!
//! ## The rules, where they live
//! - [`decide`]: credits (idempotent by id), allocation and reclaim (who may give to whom,
//!   limits, `NOT_YOUR_CUSTOMER`), the drawdown of a resale customer's line, and
//!   [`visible_to`] (who may list a record).
//! - [`state`]: the fund tree per currency: pool, resellers' unspent funds, customers'
//!   allocations by allocator.
//! - [`postings`]: fund source → pool → reseller / customer → consumption settled.

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{Adjustment, CreditFunds, DrawDown, FundsCommand, UnbindReclaim};
pub use decide::visible_to;
pub use event::{examples, AdjustmentKind, AdjustmentRecord, Counterparty, CounterpartyType, Draw, FundsEvent};
pub use postings::{postings, VENDOR_CONSUMPTION_SETTLED, VENDOR_FUND_SOURCE};
pub use state::FundsState;

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// Longest remark on an adjustment record.
pub const MAX_REMARK_CHARS: usize = 500;
/// Longest acting-user name on an adjustment record.
pub const MAX_ACTOR_CHARS: usize = 128;

pub fn stream_id(distributor_id: &str) -> String {
    format!("{}-{distributor_id}", Funds::FAMILY)
}

pub struct Funds;

impl Decider for Funds {
    const FAMILY: &'static str = "funds";

    type State = FundsState;
    type Command = FundsCommand;
    type Event = FundsEvent;

    fn decide(state: &FundsState, command: FundsCommand, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: FundsState, event: &FundsEvent) -> FundsState {
        state::evolve(state, event)
    }
}
