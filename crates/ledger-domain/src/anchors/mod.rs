//! # Chain anchors (stream `anchors-chain`)
//!
//! The hash chain shows that no stored event was edited in place, but whoever can write the
//! store can also rewrite a tail of the log and compute every hash after it again. An anchor
//! is the ledger's signed statement "the event at position P had hash H at time T", signed
//! with an Ed25519 key that is kept outside the database. Copies of the anchors leave the
//! database (the `ledger.anchors.v1` topic, auditors' files), so a rewritten or dropped tail
//! disagrees with an anchor its writer cannot sign again.
//!
//! ## The rules, where they live
//! - [`decide`]: an anchor covers a later position than the last one, and is signed by the
//!   current key; a new key is introduced only by a rotation anchor signed by the current key
//!   (and by the new key, which proves its holder agreed).
//! - [`state`]: the current key and the last anchored position.
//! - [`key`]: the signed statement's bytes, signing and checking a signature.
//! - [`verify`]: an auditor's check of a log against anchors and trusted public keys.
//! - Anchors move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod key;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;
pub mod verify;

pub use command::{AnchorCommand, AnchorHead, RotateAnchorKey};
pub use event::{examples, AnchorEvent, ANCHOR_EVENT_TYPES};
pub use key::{AnchorKey, KeyError, PublicKey};
pub use state::AnchorState;
pub use verify::{read_anchor, AnchorVerifier, Disagreement, Verdict};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// The one anchor stream of a ledger: one chain, one sequence of anchors.
pub fn stream_id() -> String {
    format!("{}-chain", Anchors::FAMILY)
}

pub struct Anchors;

impl Decider for Anchors {
    const FAMILY: &'static str = "anchors";

    type State = AnchorState;
    type Command = AnchorCommand;
    type Event = AnchorEvent;

    fn decide(
        state: &AnchorState,
        command: AnchorCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<AnchorEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: AnchorState, event: &AnchorEvent) -> AnchorState {
        state::evolve(state, event)
    }
}
