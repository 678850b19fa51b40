//! # Cloud lab points (stream `lab-points-{partner_id}`)
//!
//! docs/DOMAIN.md §7, 云实验点数. A partner applies for points in one of the fixed denominations;
//! the operator grants or rejects the application with an optional comment; a rejected
//! application may be edited (new points, same rule) and resubmitted, which makes it pending
//! again. Granted points form a balance of their own, unit `LAB_POINT`: they are not money,
//! so they are a plain integer, never a `Money`, and they post nothing to the ledger.

//!
//! ## The rules, where they live
//! - [`decide`]: apply (denominations only), grant or reject a pending application,
//!   resubmit a rejected one.
//! - [`state`]: the applications and the granted balance.
//! - Lab points are not money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{ApplyForLabPoints, GrantLabPoints, LabPointsCommand, RejectLabPoints, ResubmitLabPoints};
pub use event::{examples, LabPointsEvent};
pub use state::{balance, ApplicationStatus, LabPointsApplication, LabPointsBalance, LabPointsState};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// Seed: "实验点数,请按照10点、20点、50点、100点、250点、500点进行申请".
pub const DENOMINATIONS: [u32; 6] = [10, 20, 50, 100, 250, 500];
/// The unit of the balance, kept apart from every currency.
pub const UNIT: &str = "LAB_POINT";
/// Longest operator comment.
pub const MAX_COMMENT_CHARS: usize = 500;

pub fn stream_id(partner_id: &str) -> String {
    format!("{}-{partner_id}", LabPoints::FAMILY)
}

pub struct LabPoints;

impl Decider for LabPoints {
    const FAMILY: &'static str = "lab-points";

    type State = LabPointsState;
    type Command = LabPointsCommand;
    type Event = LabPointsEvent;

    fn decide(
        state: &LabPointsState,
        command: LabPointsCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<LabPointsEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: LabPointsState, event: &LabPointsEvent) -> LabPointsState {
        state::evolve(state, event)
    }
}
