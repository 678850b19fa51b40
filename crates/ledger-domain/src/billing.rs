//! # Billing feed receipts (stream `billing-batches`)
//!
//! A billing batch (`POST /v1/consumption`) is many appends, one per line, each idempotent
//! by its `record_id`. docs/API.md also makes the batch's `X-Request-Id` an idempotency key: a
//! retried batch must get its first answer back, and another batch under the same id must
//! be refused. The store keeps one key per append, so the batch's key is held by a receipt:
//! one fact per batch sent with a request id, recording the answer it was given. It moves
//! no money and is not published to Kafka (its lines are, as `ConsumptionRecorded`); an
//! auditor reads it in the log as "what the feed sent under this id and what it was told".

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::guard::invalid;
use crate::{DomainError, EventFamily};

/// The one stream holding every receipt (appended with any expected version: receipts never
/// decide anything, so they need no ordering among themselves).
pub const STREAM: &str = "billing-batches";
/// Most lines one receipt records: the API's batch limit.
pub const MAX_LINES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum BillingEvent {
    /// The answer given to the billing batch sent under `request_id`.
    BillingBatchReceived {
        request_id: String,
        /// Each line's outcome, in the batch's order.
        lines: Vec<BatchLine>,
        /// The `position` the answer named: the last stored line's, or the head when none
        /// was stored.
        position: u64,
        received_at: DateTime<Utc>,
    },
}

impl EventFamily for BillingEvent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Stored,
    Duplicate,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchLine {
    pub record_id: String,
    pub status: LineStatus,
    /// Set exactly when `status` is `rejected`.
    pub error_code: Option<String>,
    /// The ledger's own message for the code (kept so a retry reads the same answer).
    pub error_msg: Option<String>,
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

/// At least one example of every event variant (JSON Schema generation and checks).
pub fn examples() -> Vec<BillingEvent> {
    let at = DateTime::parse_from_rfc3339("2026-08-01T02:00:00Z").expect("example time").with_timezone(&Utc);
    let line = |id: &str, status, code: Option<&str>| BatchLine {
        record_id: id.into(),
        status,
        error_code: code.map(str::to_string),
        error_msg: code.map(|_| "customer C-9 has no partner association".to_string()),
    };
    vec![BillingEvent::BillingBatchReceived {
        request_id: "bill-2026-08-01-0001".into(),
        lines: vec![
            line("R-1", LineStatus::Stored, None),
            line("R-2", LineStatus::Duplicate, None),
            line("R-3", LineStatus::Rejected, Some("NO_ASSOCIATION")),
        ],
        position: 42,
        received_at: at,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-08-01T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn line(status: LineStatus, code: Option<&str>) -> BatchLine {
        BatchLine { record_id: "R-1".into(), status, error_code: code.map(str::to_string), error_msg: None }
    }

    #[test]
    fn a_receipt_records_each_line_in_order() {
        let lines = vec![line(LineStatus::Stored, None), line(LineStatus::Rejected, Some("INVALID_AMOUNT"))];
        let BillingEvent::BillingBatchReceived { lines: kept, position, .. } =
            receipt("r-1", lines.clone(), 7, at()).unwrap();
        assert_eq!((kept, position), (lines, 7));
    }

    #[test]
    fn a_receipt_without_lines_or_above_the_batch_limit_is_refused() {
        assert!(receipt("r-1", vec![], 1, at()).is_err());
        assert!(receipt("r-1", vec![line(LineStatus::Stored, None); MAX_LINES + 1], 1, at()).is_err());
        assert!(receipt("r-1", vec![line(LineStatus::Stored, None); MAX_LINES], 1, at()).is_ok());
    }

    #[test]
    fn only_a_rejected_line_carries_an_error_code() {
        assert!(receipt("r-1", vec![line(LineStatus::Rejected, None)], 1, at()).is_err());
        assert!(receipt("r-1", vec![line(LineStatus::Stored, Some("X"))], 1, at()).is_err());
        assert!(receipt("r-1", vec![line(LineStatus::Duplicate, Some("X"))], 1, at()).is_err());
    }
}
