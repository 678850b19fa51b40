//! The anchor stream's rules: anchors move forward along the log, and only the current key
//! signs them; a new key needs the current key's signature (and its own).

use chrono::{DateTime, Utc};
use ledger_core::envelope::{to_micros, ChainHash};

use super::command::{AnchorCommand, AnchorHead, RotateAnchorKey};
use super::key::Statement;
use super::{AnchorEvent, AnchorKey, AnchorState};
use crate::guard::invalid;
use crate::DomainError;

pub(super) fn decide(
    state: &AnchorState,
    command: AnchorCommand,
    now: DateTime<Utc>,
) -> Result<Vec<AnchorEvent>, DomainError> {
    match command {
        AnchorCommand::AnchorHead(AnchorHead { head_position, head_hash, key }) => {
            moves_forward(state, head_position)?;
            signed_by_current(state, &key)?;
            Ok(vec![anchored(&key, head_position, head_hash, now)])
        }
        AnchorCommand::RotateAnchorKey(RotateAnchorKey { head_position, head_hash, key, new_key }) => {
            if state.current_key.is_none() {
                return Err(DomainError::InvalidState(
                    "there is no anchor yet: the first anchor introduces its key, no rotation is needed".into(),
                ));
            }
            moves_forward(state, head_position)?;
            signed_by_current(state, &key)?;
            if new_key.public_hex() == key.public_hex() {
                return Err(invalid("new_key", "must differ from the current anchor key"));
            }
            Ok(vec![rotated(&key, &new_key, head_position, head_hash, now)])
        }
    }
}

/// An anchor covers a position after the last one: anchors never go back along the log.
fn moves_forward(state: &AnchorState, head_position: u64) -> Result<(), DomainError> {
    if head_position == 0 {
        return Err(invalid("head_position", "the log is empty: there is nothing to anchor"));
    }
    if head_position <= state.last_head_position {
        return Err(DomainError::InvalidState(format!(
            "position {head_position} is not after the last anchored position {}",
            state.last_head_position
        )));
    }
    Ok(())
}

/// Once a key signed an anchor, only it (until a rotation) may sign the next one.
fn signed_by_current(state: &AnchorState, key: &AnchorKey) -> Result<(), DomainError> {
    match &state.current_key {
        Some(current) if *current != key.public_hex() => Err(DomainError::InvalidState(format!(
            "anchor key {} is not the current anchor key {current}: introduce it with a key rotation \
             signed by the current key (`ledger anchor rotate`)",
            key.public_hex()
        ))),
        _ => Ok(()),
    }
}

/// A signed anchor of (position, hash) at `now`.
pub(super) fn anchored(key: &AnchorKey, head_position: u64, head_hash: ChainHash, now: DateTime<Utc>) -> AnchorEvent {
    let head_hash = head_hash.to_string();
    let public_key = key.public_hex();
    let signed_at = to_micros(now);
    let statement =
        Statement { head_position, head_hash: &head_hash, signed_at, public_key: &public_key, new_public_key: None };
    let signature = key.sign(&statement);
    AnchorEvent::ChainAnchored { head_position, head_hash, signed_at, public_key, signature }
}

/// A rotation anchor, signed by both keys over the same statement.
pub(super) fn rotated(
    key: &AnchorKey,
    new_key: &AnchorKey,
    head_position: u64,
    head_hash: ChainHash,
    now: DateTime<Utc>,
) -> AnchorEvent {
    let head_hash = head_hash.to_string();
    let public_key = key.public_hex();
    let new_public_key = new_key.public_hex();
    let signed_at = to_micros(now);
    let statement = Statement {
        head_position,
        head_hash: &head_hash,
        signed_at,
        public_key: &public_key,
        new_public_key: Some(&new_public_key),
    };
    let signature = key.sign(&statement);
    let new_key_signature = new_key.sign(&statement);
    AnchorEvent::AnchorKeyRotated {
        head_position,
        head_hash,
        signed_at,
        public_key,
        new_public_key,
        signature,
        new_key_signature,
    }
}
