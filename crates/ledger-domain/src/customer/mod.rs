//! # Customer (stream `customer-{id}`)
//!
//! A sub-customer (子客户) and its association with one partner over time. Every change
//! has an effective time, so a rule asks "which partner, which type, at time t"
//! ([`CustomerState::association_at`]) and gets the answer that held then, not today's.
//!
//! The timeline only grows forward: a change must take effect after the previous one, and
//! a switch or an end may not be back-dated before `now` (a rule may already have looked
//! at the type in force). Only the very first association may be back-dated, so a billing
//! feed can bring consumption from before the customer was entered here.

//!
//! ## The rules, where they live
//! - [`decide`]: associate (once, only the first may be back-dated), switch the type and
//!   end the association (its own partner only, forward in time, at most once in
//!   [`MIN_MONTHS_BETWEEN_SWITCHES`] months: docs/DOMAIN.md, Actors).
//! - [`state`]: the association timeline and "which partner, which type, at time t".
//! - Customer events move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
pub(crate) mod tests;

pub use command::{AssociateCustomer, CustomerCommand, EndAssociation, SwitchAssociationType};
pub use decide::next_switch_allowed_from;
pub use event::{examples, Association, AssociationType, CustomerEvent};
pub use state::{AssociationChange, CustomerState};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// A partner may switch (or end) the association with the same customer at most once in
/// this many calendar months (vendor docs; docs/DOMAIN.md, Actors).
pub const MIN_MONTHS_BETWEEN_SWITCHES: u32 = 3;

pub fn stream_id(customer_id: &str) -> String {
    format!("{}-{customer_id}", Customer::FAMILY)
}

pub struct Customer;

impl Decider for Customer {
    const FAMILY: &'static str = "customer";

    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;

    fn decide(
        state: &CustomerState,
        command: CustomerCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CustomerEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: CustomerState, event: &CustomerEvent) -> CustomerState {
        state::evolve(state, event)
    }
}
