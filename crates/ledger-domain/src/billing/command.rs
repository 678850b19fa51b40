//! What may be asked of the receipts stream: one struct per command.

use super::BatchLine;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingCommand {
    KeepReceipt(KeepReceipt),
}

/// Keep the answer given to the batch sent under `request_id`: each line's outcome in the
/// batch's order, and the `position` the answer named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepReceipt {
    pub request_id: String,
    pub lines: Vec<BatchLine>,
    pub position: u64,
}
