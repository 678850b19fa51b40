//! What may be asked of the anchor stream: one struct per command. The commands carry the
//! signing key; the decider signs (Ed25519 is deterministic, so deciding stays pure).

use ledger_core::envelope::ChainHash;

use super::AnchorKey;

#[derive(Debug, Clone)]
pub enum AnchorCommand {
    AnchorHead(AnchorHead),
    RotateAnchorKey(RotateAnchorKey),
}

/// The ledger itself: sign the chain head, the event at `head_position` and its hash.
#[derive(Debug, Clone)]
pub struct AnchorHead {
    pub head_position: u64,
    pub head_hash: ChainHash,
    pub key: AnchorKey,
}

/// An operator holding both keys: anchor the head with the current `key` and introduce
/// `new_key`, which signs every later anchor.
#[derive(Debug, Clone)]
pub struct RotateAnchorKey {
    pub head_position: u64,
    pub head_hash: ChainHash,
    pub key: AnchorKey,
    pub new_key: AnchorKey,
}
