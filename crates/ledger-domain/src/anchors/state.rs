//! Where the anchors stand: the key that signs the next one and the last anchored position.

use super::AnchorEvent;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorState {
    /// The public key (hex) that must sign the next anchor; `None` before the first.
    pub current_key: Option<String>,
    /// The highest position an anchor covers (0: none yet).
    pub last_head_position: u64,
    /// Every key that has signed anchors, oldest first.
    pub keys: Vec<String>,
    pub anchors: u64,
}

pub(super) fn evolve(mut state: AnchorState, event: &AnchorEvent) -> AnchorState {
    if state.current_key.is_none() {
        state.current_key = Some(event.public_key().to_string());
        state.keys.push(event.public_key().to_string());
    }
    if let Some(new_key) = event.new_public_key() {
        state.current_key = Some(new_key.to_string());
        state.keys.push(new_key.to_string());
    }
    state.last_head_position = state.last_head_position.max(event.head_position());
    state.anchors += 1;
    state
}
