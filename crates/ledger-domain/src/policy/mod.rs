//! # Incentive policies (stream `policies-{currency}`)
//!
//! Which product codes earn an incentive, at which rate, and how many grace days after a
//! month's end a settlement still counts into that month (§2). Policies are versioned by
//! effective month; a month uses the latest version whose effective month is not after it.
//!
//! Versions only move forward: a new version takes effect after the latest one. Inserting
//! a version before an existing one would change, behind the back of lines already
//! recorded, which policy their month "used"; lines carry their rate, so history stays
//! readable either way, but the book must keep telling the same story.

//!
//! ## The rules, where they live
//! - [`decide`]: publishing a version (one currency per book, products listed once,
//!   bounded grace days, versions only forward).
//! - [`state`]: the book of versions, the policy in force for a month and its cut-off.
//! - Policies move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
pub(crate) mod tests;

pub use command::{PolicyCommand, PublishPolicy};
pub use event::{examples, PolicyEvent, ProductRate};
pub use state::{cut_off, Policy, PolicyBook};

use chrono::{DateTime, Utc};
use ledger_core::Currency;

use crate::{Decider, DomainError};

/// Most product codes one policy version lists.
pub const MAX_PRODUCTS_PER_POLICY: usize = 1_000;
/// Longest settlement grace after a month's end (ours): beyond this a month could never be
/// closed within the next one.
pub const MAX_SETTLEMENT_GRACE_DAYS: u32 = 27;

pub fn stream_id(currency: Currency) -> String {
    format!("{}-{currency}", Policies::FAMILY)
}

pub struct Policies;

impl Decider for Policies {
    const FAMILY: &'static str = "policies";

    type State = PolicyBook;
    type Command = PolicyCommand;
    type Event = PolicyEvent;

    fn decide(state: &PolicyBook, command: PolicyCommand, now: DateTime<Utc>) -> Result<Vec<PolicyEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: PolicyBook, event: &PolicyEvent) -> PolicyBook {
        state::evolve(state, event)
    }
}
