//! The anchor stream's events. Each one carries everything needed to check it: the
//! statement's fields, the public key and the signature, so a copy (a Kafka message, a line
//! of an auditor's file) verifies on its own.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::key::Statement;
use crate::EventFamily;

/// Every event type of the family, for readers that pick anchors out of a log.
pub const ANCHOR_EVENT_TYPES: [&str; 2] = ["ChainAnchored", "AnchorKeyRotated"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum AnchorEvent {
    /// The event at `head_position` had `head_hash` when `public_key` signed at `signed_at`.
    ChainAnchored {
        head_position: u64,
        #[schemars(extend("pattern" = "^[0-9a-f]{64}$"))]
        head_hash: String,
        signed_at: DateTime<Utc>,
        #[schemars(extend("pattern" = "^[0-9a-f]{64}$"))]
        public_key: String,
        #[schemars(extend("pattern" = "^[0-9a-f]{128}$"))]
        signature: String,
    },
    /// An anchor like [`AnchorEvent::ChainAnchored`] that also introduces `new_public_key`:
    /// the current key signs it (`signature`) and so does the new one (`new_key_signature`,
    /// over the same statement). Later anchors are signed by the new key.
    AnchorKeyRotated {
        head_position: u64,
        #[schemars(extend("pattern" = "^[0-9a-f]{64}$"))]
        head_hash: String,
        signed_at: DateTime<Utc>,
        #[schemars(extend("pattern" = "^[0-9a-f]{64}$"))]
        public_key: String,
        #[schemars(extend("pattern" = "^[0-9a-f]{64}$"))]
        new_public_key: String,
        #[schemars(extend("pattern" = "^[0-9a-f]{128}$"))]
        signature: String,
        #[schemars(extend("pattern" = "^[0-9a-f]{128}$"))]
        new_key_signature: String,
    },
}

impl EventFamily for AnchorEvent {}

impl AnchorEvent {
    pub fn head_position(&self) -> u64 {
        match self {
            AnchorEvent::ChainAnchored { head_position, .. } | AnchorEvent::AnchorKeyRotated { head_position, .. } => {
                *head_position
            }
        }
    }

    pub fn head_hash(&self) -> &str {
        match self {
            AnchorEvent::ChainAnchored { head_hash, .. } | AnchorEvent::AnchorKeyRotated { head_hash, .. } => head_hash,
        }
    }

    pub fn signed_at(&self) -> DateTime<Utc> {
        match self {
            AnchorEvent::ChainAnchored { signed_at, .. } | AnchorEvent::AnchorKeyRotated { signed_at, .. } => {
                *signed_at
            }
        }
    }

    /// The key that signed the anchor.
    pub fn public_key(&self) -> &str {
        match self {
            AnchorEvent::ChainAnchored { public_key, .. } | AnchorEvent::AnchorKeyRotated { public_key, .. } => {
                public_key
            }
        }
    }

    /// The key a rotation introduces.
    pub fn new_public_key(&self) -> Option<&str> {
        match self {
            AnchorEvent::ChainAnchored { .. } => None,
            AnchorEvent::AnchorKeyRotated { new_public_key, .. } => Some(new_public_key),
        }
    }

    /// The statement the signatures are over.
    pub fn statement(&self) -> Statement<'_> {
        Statement {
            head_position: self.head_position(),
            head_hash: self.head_hash(),
            signed_at: self.signed_at(),
            public_key: self.public_key(),
            new_public_key: self.new_public_key(),
        }
    }
}

/// One example of every event, for the JSON Schema catalogue (signed with two fixed example
/// keys, so the examples are real, checkable anchors).
pub fn examples() -> Vec<AnchorEvent> {
    use super::AnchorKey;
    use ledger_core::envelope::ChainHash;
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    let old = AnchorKey::from_seed([1; 32]);
    let new = AnchorKey::from_seed([2; 32]);
    vec![
        super::decide::anchored(&old, 1000, ChainHash([0xab; 32]), at("2026-08-01T02:00:00Z")),
        super::decide::rotated(&old, &new, 2000, ChainHash([0xcd; 32]), at("2026-08-02T02:00:00Z")),
    ]
}
