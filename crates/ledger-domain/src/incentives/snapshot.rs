//! A partner's incentive state as text, kept beside the log so that a write after a restart
//! reads the snapshot and the events after it, not the partner's whole history. The state
//! keeps no lines (see `state.rs`), so a snapshot is as small as the months, payments,
//! opportunities and refunds.
//!
//! The text carries [`FORMAT`]: a change to the state's shape or to what `evolve` makes of
//! an event must raise it, and snapshots of another format are ignored (the stream is then
//! read from its start, and a new snapshot is written). `snapshot_sample.json` beside this
//! file is a populated state's snapshot of the current format: a test fails when what is
//! written changes and the format does not.

use serde::{Deserialize, Serialize};

use super::state::{IncentiveMonth, IncentivesState, Opportunity, QuarterlyPayment, Refund};

/// The snapshot format; see the module doc.
pub const FORMAT: u32 = 2;

/// The state with its maps as lists (a month's key is a pair, which JSON cannot key by).
#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    partner_id: Option<String>,
    refunds: Vec<Refund>,
    months: Vec<IncentiveMonth>,
    opportunities: Vec<Opportunity>,
    payments: Vec<QuarterlyPayment>,
}

pub(super) fn write(state: &IncentivesState) -> Option<String> {
    let snapshot = Snapshot {
        format: FORMAT,
        partner_id: state.partner_id.clone(),
        refunds: state.refunds.values().cloned().collect(),
        months: state.months.values().cloned().collect(),
        opportunities: state.opportunities.values().cloned().collect(),
        payments: state.payments.values().cloned().collect(),
    };
    serde_json::to_string(&snapshot).ok()
}

pub(super) fn read(text: &str) -> Option<IncentivesState> {
    let s: Snapshot = serde_json::from_str(text).ok().filter(|s: &Snapshot| s.format == FORMAT)?;
    Some(IncentivesState {
        partner_id: s.partner_id,
        refunds: s.refunds.into_iter().map(|r| (r.refund_id.clone(), r)).collect(),
        months: s.months.into_iter().map(|m| ((m.month, m.currency), m)).collect(),
        opportunities: s.opportunities.into_iter().map(|o| (o.opportunity_id.clone(), o)).collect(),
        payments: s.payments.into_iter().map(|p| (p.payment_id.clone(), p)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::incentives::Incentives;
    use crate::Decider;

    #[test]
    fn a_snapshot_restores_the_state_it_was_written_from() {
        let s = requested_quarter_scenario()
            .at("2026-08-12T00:00:00Z", line_in("R2", "20.00", "2026-08"))
            .at("2026-10-12T00:00:00Z", line_in("R3", "30.00", "2026-10"))
            .at("2026-10-03T00:00:00Z", refund_cmd("F1", "R1", "10.00", "2026-10-03T00:00:00Z"))
            .at("2026-10-14T00:00:00Z", refund_cmd("F2", "R3", "1.00", "2026-10-14T00:00:00Z"));
        assert!(!s.state.months.is_empty() && !s.state.refunds.is_empty() && !s.state.payments.is_empty());
        let text = Incentives::snapshot(&s.state).unwrap();
        assert_eq!(Incentives::restore(&text), Some(s.state.clone()));
        // Another format, or not a snapshot at all, restores nothing.
        let other = text.replacen(&format!("\"format\":{FORMAT}"), &format!("\"format\":{}", FORMAT + 1), 1);
        assert_eq!(Incentives::restore(&other), None);
        assert_eq!(Incentives::restore("{}"), None);
    }

    /// The sample checked in beside this file: a populated state's snapshot, of format
    /// [`FORMAT`].
    const SAMPLE: &str = include_str!("snapshot_sample.json");
    const SAMPLE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/incentives/snapshot_sample.json");

    /// A state with something in every part: months in several statuses, a refund, an
    /// opportunity finalized, a payment paid.
    fn populated() -> IncentivesState {
        use super::super::command::{ApprovePayment, ConfirmInvoiceReceived, IssueInvoiceList};
        use super::super::opportunities::tests::{accept_cmd, apply_cmd, finalize_cmd, review_cmd, share_cmd};
        use super::super::{IncentiveCommand, PaymentMethod, ReviewDecision};
        let qp1 = || "QP1".to_string();
        requested_quarter_scenario()
            .at("2026-08-12T00:00:00Z", line_in("R2", "20.00", "2026-08"))
            .at("2026-10-01T00:00:00Z", share_cmd("O1", "OFF1", true, Some("2026-10-05")))
            .at("2026-10-02T00:00:00Z", accept_cmd("O1"))
            .at("2026-10-06T00:00:00Z", apply_cmd("O1"))
            .at("2026-10-07T00:00:00Z", review_cmd("O1", ReviewDecision::Pass))
            .at("2026-10-08T00:00:00Z", finalize_cmd("O1", "300.00"))
            .at("2026-10-09T00:00:00Z", IncentiveCommand::ApprovePayment(ApprovePayment { payment_id: qp1() }))
            .at(
                "2026-10-09T01:00:00Z",
                IncentiveCommand::IssueInvoiceList(IssueInvoiceList {
                    payment_id: qp1(),
                    mailing_address: "1 Cloud Avenue".into(),
                    mailbox: "invoices@vendor.example".into(),
                }),
            )
            .at(
                "2026-10-09T02:00:00Z",
                IncentiveCommand::ConfirmInvoiceReceived(ConfirmInvoiceReceived { payment_id: qp1() }),
            )
            .at("2026-10-10T00:00:00Z", pay("QP1", PaymentMethod::CloudAccountCredit))
            .at("2026-10-12T00:00:00Z", line_in("R3", "30.00", "2026-10"))
            .at("2026-10-14T00:00:00Z", refund_cmd("F1", "R3", "1.00", "2026-10-14T00:00:00Z"))
            .state
    }

    /// A change to the state's serialized shape (or to what `evolve` makes of an event) must
    /// raise [`FORMAT`], or a snapshot written before would restore into a wrong state. The
    /// sample holds the snapshot of [`populated`] as the current format writes it.
    #[test]
    fn the_snapshot_shape_changes_only_with_its_format() {
        let state = populated();
        assert!(state.months.len() >= 3 && !state.refunds.is_empty());
        assert!(!state.opportunities.is_empty() && !state.payments.is_empty());
        let text = write(&state).unwrap();
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        let refresh = "LEDGER_REFRESH_SNAPSHOT_SAMPLE=1 cargo test -p ledger-domain snapshot";
        if std::env::var("LEDGER_REFRESH_SNAPSHOT_SAMPLE").is_ok_and(|v| v == "1") {
            let pretty = serde_json::to_string_pretty(&written).unwrap();
            std::fs::write(SAMPLE_PATH, pretty + "\n").unwrap();
            return;
        }
        let sample: serde_json::Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
        assert_eq!(
            sample["format"],
            serde_json::json!(FORMAT),
            "FORMAT was raised to {FORMAT}: refresh the sample ({refresh}) and check it in"
        );
        assert!(
            written == sample,
            "the incentive state's snapshot shape changed (or what evolve makes of the events): bump \
             incentives::snapshot::FORMAT (now {FORMAT}) and refresh the sample ({refresh})\nwritten: {written}\nsample:  {sample}"
        );
        // The sample restores into the state it was written from.
        assert_eq!(read(SAMPLE), Some(state));
    }
}
