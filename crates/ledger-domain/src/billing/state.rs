//! Receipts decide nothing among themselves (each is held by its request id's idempotency
//! key in the store), so the stream keeps no state.

use super::BillingEvent;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BillingState;

pub(super) fn evolve(state: BillingState, _event: &BillingEvent) -> BillingState {
    state
}
