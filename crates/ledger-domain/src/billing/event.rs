//! The receipt's one event and the line outcomes it records.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EventFamily;

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
