//! # Partner (stream `partner-{id}`)
//!
//! The facts the ledger needs about a partner (docs/DOMAIN.md, Actors and §1): its kind and
//! level, the reseller → distributor link, and the two certifications that open the
//! incentive gate. Membership, development paths and level upgrades live elsewhere; the
//! ledger only records their outcome.
//!
//! ## The rules, where they live
//! - [`decide`]: registration (a reseller belongs to exactly one distributor, only a
//!   reseller has a parent), both certifications, level changes, and
//!   [`certification_gate`] (docs/DOMAIN.md §1), which every incentive application runs.
//! - [`state`]: the profile the events build.
//! - Partner events move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
pub(crate) mod tests;

pub use command::{CertifyBusinessInfo, CertifyRealName, ChangeLevel, PartnerCommand, RegisterPartner};
pub use decide::certification_gate;
pub use event::{examples, BankAccount, BusinessInfo, PartnerEvent, PartnerKind, PartnerLevel};
pub use state::{PartnerProfile, PartnerState};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// Longest partner or legal name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest bank account number, bank name or tax id.
pub const MAX_ACCOUNT_FIELD_CHARS: usize = 100;

pub fn stream_id(partner_id: &str) -> String {
    format!("{}-{partner_id}", Partner::FAMILY)
}

pub struct Partner;

impl Decider for Partner {
    const FAMILY: &'static str = "partner";

    type State = PartnerState;
    type Command = PartnerCommand;
    type Event = PartnerEvent;

    fn decide(
        state: &PartnerState,
        command: PartnerCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<PartnerEvent>, DomainError> {
        decide::decide(state, &command, now)
    }

    fn evolve(state: PartnerState, event: &PartnerEvent) -> PartnerState {
        state::evolve(state, event)
    }
}
