//! A partner's incentive state as text, kept beside the log so that a write after a restart
//! reads the snapshot and the events after it, not the partner's whole history. The state
//! keeps no lines (see `state.rs`), so a snapshot is as small as the months, payments,
//! opportunities and refunds.
//!
//! The text carries [`FORMAT`]: a change to the state's shape or to what `evolve` makes of
//! an event must raise it, and snapshots of another format are ignored (the stream is then
//! read from its start, and a new snapshot is written).

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
}
