//! The receipt rules (see `decide`).

use chrono::{DateTime, Utc};

use super::*;
use crate::decider::harness::given;

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

#[test]
fn keeping_a_receipt_is_one_event_and_changes_no_state() {
    let lines = vec![line(LineStatus::Duplicate, None)];
    let command = |lines| BillingCommand::KeepReceipt(KeepReceipt { request_id: "r-1".into(), lines, position: 3 });
    given::<Billing>([]).at(at()).when(command(lines.clone())).then([BillingEvent::BillingBatchReceived {
        request_id: "r-1".into(),
        lines,
        position: 3,
        received_at: at(),
    }]);
    given::<Billing>([]).at(at()).when(command(vec![])).then_error("INVALID_FIELD");
}
