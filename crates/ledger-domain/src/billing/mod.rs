//! # Billing feed receipts (stream `billing-batches`)
//!
//! A billing batch (`POST /v1/consumption`) stores its lines in one append per partner
//! stream, each line idempotent by its `record_id` (the store's event keys). docs/API.md
//! also makes the batch's `X-Request-Id` an idempotency key: a retried batch must get its
//! first answer back, and another batch under the same id must be refused. That key is held
//! by a receipt: one fact per batch sent with a request id, recording the answer it was
//! given. It moves no money and is not published to Kafka (its lines are, as
//! `ConsumptionRecorded`); an auditor reads it in the log as "what the feed sent under this
//! id and what it was told".
//!
//! ## The rules, where they live
//! - [`decide`]: a receipt describes an answer the API can give (1 to [`MAX_LINES`] lines, a
//!   code exactly on a rejected line).
//! - [`state`]: none; receipts decide nothing among themselves.
//! - Receipts move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{BillingCommand, KeepReceipt};
pub use decide::receipt;
pub use event::{examples, BatchLine, BillingEvent, LineStatus};
pub use state::BillingState;

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// The one stream holding every receipt (appended with any expected version: receipts never
/// decide anything, so they need no ordering among themselves).
pub const STREAM: &str = "billing-batches";
/// Most lines one receipt records: the API's batch limit.
pub const MAX_LINES: usize = 1_000;

pub struct Billing;

impl Decider for Billing {
    const FAMILY: &'static str = "billing";

    type State = BillingState;
    type Command = BillingCommand;
    type Event = BillingEvent;

    fn decide(
        state: &BillingState,
        command: BillingCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<BillingEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: BillingState, event: &BillingEvent) -> BillingState {
        state::evolve(state, event)
    }
}
