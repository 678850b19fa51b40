//! A receipt is kept when it describes an answer the API can give.

use chrono::{DateTime, Utc};

use super::{BatchLine, BillingCommand, BillingEvent, BillingState, KeepReceipt, LineStatus, MAX_LINES};
use crate::guard::invalid;
use crate::DomainError;

pub(super) fn decide(
    _state: &BillingState,
    command: BillingCommand,
    now: DateTime<Utc>,
) -> Result<Vec<BillingEvent>, DomainError> {
    match command {
        BillingCommand::KeepReceipt(KeepReceipt { request_id, lines, position }) => {
            Ok(vec![receipt(&request_id, lines, position, now)?])
        }
    }
}

/// The receipt of a batch: refused when it does not describe an answer the API can give.
pub fn receipt(
    request_id: &str,
    lines: Vec<BatchLine>,
    position: u64,
    received_at: DateTime<Utc>,
) -> Result<BillingEvent, DomainError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(invalid("records", format!("must hold 1 to {MAX_LINES} lines")));
    }
    for line in &lines {
        let rejected = line.status == LineStatus::Rejected;
        if rejected != line.error_code.is_some() {
            return Err(invalid("error_code", format!("line {} must carry a code only when rejected", line.record_id)));
        }
    }
    Ok(BillingEvent::BillingBatchReceived { request_id: request_id.to_string(), lines, position, received_at })
}
