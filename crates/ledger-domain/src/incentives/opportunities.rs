//! Opportunity incentives (机会点, docs/DOMAIN.md §2, seed).
//!
//! The vendor shares an opportunity (offering, core tag, maybe a delivery end date) and may
//! later mark it delivered with its delivery end date; the partner accepts it, then applies
//! — only if it has the core tag and its delivery is complete, and only from the day after
//! the delivery end date in CST, never on that day ("由于涉及订单结算,项目交付结束当天,不可以
//! 申请机会点激励") — else `OPPORTUNITY_NOT_APPLICABLE` with the reason. An offering backs
//! one application at a time: applying with an offering used by another opportunity's
//! application under review or passed is `OFFERING_IN_USE`. Review and finalize go as for
//! months; the final amount is paid with the quarter of the finalization.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{business_date, Quarter};

use super::command::*;
use super::{
    check_partner, external_amount, invalid_state, optional_text, stream_partner, IncentiveEvent, IncentivesState,
    Opportunity, OpportunityStatus, MAX_COMMENT_CHARS,
};
use crate::DomainError;

fn existing<'a>(state: &'a IncentivesState, opportunity_id: &str) -> Result<&'a Opportunity, DomainError> {
    state
        .opportunities
        .get(opportunity_id)
        .ok_or_else(|| DomainError::NotFound { what: "opportunity", id: opportunity_id.to_string() })
}

fn expect_status(o: &Opportunity, expected: OpportunityStatus, action: &str) -> Result<(), DomainError> {
    if o.status == expected {
        Ok(())
    } else {
        Err(invalid_state(format!(
            "cannot {action} opportunity {}: it is {:?}, not {:?}",
            o.opportunity_id, o.status, expected
        )))
    }
}

fn not_applicable(o: &Opportunity, reason: String) -> DomainError {
    DomainError::OpportunityNotApplicable { opportunity_id: o.opportunity_id.clone(), reason }
}

pub(super) fn share(
    state: &IncentivesState,
    c: &ShareOpportunity,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ShareOpportunity { partner_id, opportunity_id, offering, core_tag, delivery_end_date } = c.clone();
    check_partner(state, &partner_id)?;
    validate_id("opportunity_id", &opportunity_id)?;
    validate_id("offering", &offering)?;
    if state.opportunities.contains_key(&opportunity_id) {
        return Err(DomainError::AlreadyExists { what: "opportunity", id: opportunity_id });
    }
    Ok(vec![IncentiveEvent::OpportunityShared {
        partner_id,
        opportunity_id,
        offering,
        core_tag,
        delivery_end_date,
        shared_at: now,
    }])
}

pub(super) fn deliver(
    state: &IncentivesState,
    c: &MarkOpportunityDelivered,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let MarkOpportunityDelivered { opportunity_id, delivery_end_date } = c.clone();
    let o = existing(state, &opportunity_id)?;
    if let Some(date) = o.delivery_end_date {
        return Err(invalid_state(format!("opportunity {opportunity_id} was already delivered on {date}")));
    }
    Ok(vec![IncentiveEvent::OpportunityDelivered {
        partner_id: stream_partner(state)?.to_string(),
        opportunity_id,
        delivery_end_date,
        delivered_at: now,
    }])
}

pub(super) fn accept(
    state: &IncentivesState,
    c: &AcceptOpportunity,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let AcceptOpportunity { opportunity_id } = c.clone();
    let o = existing(state, &opportunity_id)?;
    expect_status(o, OpportunityStatus::Shared, "accept")?;
    Ok(vec![IncentiveEvent::OpportunityAccepted {
        partner_id: stream_partner(state)?.to_string(),
        opportunity_id,
        accepted_at: now,
    }])
}

pub(super) fn apply(
    state: &IncentivesState,
    c: &ApplyForOpportunity,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ApplyForOpportunity { opportunity_id, certification } = c.clone();
    let o = existing(state, &opportunity_id)?;
    certification?;
    expect_status(o, OpportunityStatus::Accepted, "apply for")?;
    if !o.core_tag {
        return Err(not_applicable(o, "the opportunity does not have the core tag".into()));
    }
    let Some(end) = o.delivery_end_date else {
        return Err(not_applicable(o, "its delivery is not completed".into()));
    };
    if business_date(now) <= end {
        let from = end.succ_opt().unwrap_or(end);
        return Err(not_applicable(
            o,
            format!("it may be applied for from {from}, the day after the delivery end date {end} (CST)"),
        ));
    }
    let in_use = state.opportunities.values().any(|other| {
        other.opportunity_id != o.opportunity_id
            && other.offering == o.offering
            && matches!(other.status, OpportunityStatus::UnderReview | OpportunityStatus::Passed)
    });
    if in_use {
        return Err(DomainError::OfferingInUse { offering: o.offering.clone() });
    }
    Ok(vec![IncentiveEvent::OpportunityApplied {
        partner_id: stream_partner(state)?.to_string(),
        opportunity_id,
        offering: o.offering.clone(),
        applied_at: now,
    }])
}

pub(super) fn review(
    state: &IncentivesState,
    c: &ReviewOpportunity,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ReviewOpportunity { opportunity_id, decision, comment } = c.clone();
    optional_text("comment", &comment, MAX_COMMENT_CHARS)?;
    let o = existing(state, &opportunity_id)?;
    expect_status(o, OpportunityStatus::UnderReview, "review")?;
    Ok(vec![IncentiveEvent::OpportunityReviewed {
        partner_id: stream_partner(state)?.to_string(),
        opportunity_id,
        decision,
        comment,
        reviewed_at: now,
    }])
}

pub(super) fn finalize(
    state: &IncentivesState,
    c: &FinalizeOpportunity,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let FinalizeOpportunity { opportunity_id, amount, reason } = c.clone();
    external_amount(&amount)?;
    optional_text("reason", &reason, MAX_COMMENT_CHARS)?;
    let o = existing(state, &opportunity_id)?;
    expect_status(o, OpportunityStatus::Passed, "finalize")?;
    Ok(vec![IncentiveEvent::OpportunityFinalized {
        partner_id: stream_partner(state)?.to_string(),
        opportunity_id,
        final_amount: amount,
        quarter: Quarter::of(now),
        reason,
        finalized_at: now,
    }])
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::decider::harness::given;
    use crate::incentives::command::*;
    use crate::incentives::testkit::*;
    use crate::incentives::{IncentiveCommand, Incentives};
    use crate::incentives::{IncentiveEvent, OpportunityStatus, ReviewDecision};
    use crate::Decider;
    use chrono::NaiveDate;

    pub fn share_cmd(id: &str, offering: &str, core_tag: bool, delivered: Option<&str>) -> IncentiveCommand {
        IncentiveCommand::ShareOpportunity(ShareOpportunity {
            partner_id: P.into(),
            opportunity_id: id.into(),
            offering: offering.into(),
            core_tag,
            delivery_end_date: delivered.map(date),
        })
    }

    pub fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    pub fn accept_cmd(id: &str) -> IncentiveCommand {
        IncentiveCommand::AcceptOpportunity(AcceptOpportunity { opportunity_id: id.into() })
    }

    pub fn apply_cmd(id: &str) -> IncentiveCommand {
        IncentiveCommand::ApplyForOpportunity(ApplyForOpportunity {
            opportunity_id: id.into(),
            certification: certified(),
        })
    }

    pub fn review_cmd(id: &str, decision: ReviewDecision) -> IncentiveCommand {
        IncentiveCommand::ReviewOpportunity(ReviewOpportunity { opportunity_id: id.into(), decision, comment: None })
    }

    pub fn finalize_cmd(id: &str, amount: &str) -> IncentiveCommand {
        IncentiveCommand::FinalizeOpportunity(FinalizeOpportunity {
            opportunity_id: id.into(),
            amount: cny(amount),
            reason: None,
        })
    }

    /// A core-tagged opportunity delivered on 2026-08-20, accepted.
    pub fn accepted(id: &str, offering: &str) -> Scenario {
        scenario()
            .at("2026-07-01T00:00:00Z", share_cmd(id, offering, true, Some("2026-08-20")))
            .at("2026-07-02T00:00:00Z", accept_cmd(id))
    }

    #[test]
    fn an_opportunity_is_shared_once() {
        given::<Incentives>([]).at(t("2026-07-01T00:00:00Z")).when(share_cmd("O1", "OFF1", true, None)).then([
            IncentiveEvent::OpportunityShared {
                partner_id: P.into(),
                opportunity_id: "O1".into(),
                offering: "OFF1".into(),
                core_tag: true,
                delivery_end_date: None,
                shared_at: t("2026-07-01T00:00:00Z"),
            },
        ]);
        let s = scenario().at("2026-07-01T00:00:00Z", share_cmd("O1", "OFF1", true, None));
        given::<Incentives>(s.events).when(share_cmd("O1", "OFF2", true, None)).then_error("ALREADY_EXISTS");
        given::<Incentives>([]).when(share_cmd("O 1", "OFF1", true, None)).then_error("INVALID_FIELD");
    }

    #[test]
    fn the_partner_accepts_a_shared_opportunity_once() {
        let s = scenario().at("2026-07-01T00:00:00Z", share_cmd("O1", "OFF1", true, None));
        given::<Incentives>([]).when(accept_cmd("O1")).then_error("NOT_FOUND");
        let s = s.at("2026-07-02T00:00:00Z", accept_cmd("O1"));
        assert_eq!(s.state.opportunities["O1"].status, OpportunityStatus::Accepted);
        given::<Incentives>(s.events).when(accept_cmd("O1")).then_error("INVALID_STATE");
    }

    #[test]
    fn only_a_core_tagged_delivered_opportunity_is_applicable() {
        let untagged = scenario()
            .at("2026-07-01T00:00:00Z", share_cmd("O1", "OFF1", false, Some("2026-08-20")))
            .at("2026-07-02T00:00:00Z", accept_cmd("O1"));
        let err = Incentives::decide(&untagged.state, apply_cmd("O1"), t("2026-09-01T00:00:00Z")).unwrap_err();
        assert_eq!(err.code(), "OPPORTUNITY_NOT_APPLICABLE");
        assert!(err.to_string().contains("core tag"), "{err}");

        let undelivered = scenario()
            .at("2026-07-01T00:00:00Z", share_cmd("O1", "OFF1", true, None))
            .at("2026-07-02T00:00:00Z", accept_cmd("O1"));
        let err = Incentives::decide(&undelivered.state, apply_cmd("O1"), t("2026-09-01T00:00:00Z")).unwrap_err();
        assert_eq!(err.code(), "OPPORTUNITY_NOT_APPLICABLE");
        assert!(err.to_string().contains("delivery is not completed"), "{err}");

        let delivered = undelivered.at(
            "2026-08-20T00:00:00Z",
            IncentiveCommand::MarkOpportunityDelivered(MarkOpportunityDelivered {
                opportunity_id: "O1".into(),
                delivery_end_date: date("2026-08-20"),
            }),
        );
        assert_eq!(delivered.state.opportunities["O1"].delivery_end_date, Some(date("2026-08-20")));
        assert!(Incentives::decide(&delivered.state, apply_cmd("O1"), t("2026-09-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn applying_is_possible_only_from_the_day_after_the_delivery_end_date_in_cst() {
        // Delivery ended 2026-08-20. 2026-08-20 23:59 CST = 15:59 UTC: still that day.
        given::<Incentives>(accepted("O1", "OFF1").events)
            .at(t("2026-08-20T15:59:59Z"))
            .when(apply_cmd("O1"))
            .then_error("OPPORTUNITY_NOT_APPLICABLE");
        // 2026-08-20T17:00Z is already 2026-08-21 01:00 CST: the day after.
        given::<Incentives>(accepted("O1", "OFF1").events).at(t("2026-08-20T17:00:00Z")).when(apply_cmd("O1")).then([
            IncentiveEvent::OpportunityApplied {
                partner_id: P.into(),
                opportunity_id: "O1".into(),
                offering: "OFF1".into(),
                applied_at: t("2026-08-20T17:00:00Z"),
            },
        ]);
        let err =
            Incentives::decide(&accepted("O1", "OFF1").state, apply_cmd("O1"), t("2026-08-19T17:00:00Z")).unwrap_err();
        assert!(err.to_string().contains("from 2026-08-21"), "{err}");
    }

    #[test]
    fn applying_needs_the_certifications_and_an_accepted_opportunity() {
        let s = accepted("O1", "OFF1");
        given::<Incentives>(s.events)
            .at(t("2026-09-01T00:00:00Z"))
            .when(IncentiveCommand::ApplyForOpportunity(ApplyForOpportunity {
                opportunity_id: "O1".into(),
                certification: uncertified(),
            }))
            .then_error("CERTIFICATION_INCOMPLETE");
        let shared = scenario().at("2026-07-01T00:00:00Z", share_cmd("O1", "OFF1", true, Some("2026-08-20")));
        given::<Incentives>(shared.events)
            .at(t("2026-09-01T00:00:00Z"))
            .when(apply_cmd("O1"))
            .then_error("INVALID_STATE");
    }

    fn two_on_one_offering() -> Scenario {
        accepted("O1", "OFF1")
            .at("2026-07-01T00:00:00Z", share_cmd("O2", "OFF1", true, Some("2026-08-20")))
            .at("2026-07-02T00:00:00Z", accept_cmd("O2"))
            .at("2026-09-01T00:00:00Z", apply_cmd("O1"))
    }

    #[test]
    fn an_offering_backs_one_pending_or_passed_application_at_a_time() {
        // Seed: "若同一offering正在用于其他机会点..."
        let pending = two_on_one_offering();
        given::<Incentives>(pending.events.clone())
            .at(t("2026-09-02T00:00:00Z"))
            .when(apply_cmd("O2"))
            .then_error("OFFERING_IN_USE");
        let passed = pending.clone().at("2026-09-03T00:00:00Z", review_cmd("O1", ReviewDecision::Pass));
        given::<Incentives>(passed.events.clone())
            .at(t("2026-09-04T00:00:00Z"))
            .when(apply_cmd("O2"))
            .then_error("OFFERING_IN_USE");
        // A rejected application frees the offering.
        let rejected = pending.at("2026-09-03T00:00:00Z", review_cmd("O1", ReviewDecision::Reject));
        assert_eq!(rejected.state.opportunities["O1"].status, OpportunityStatus::Accepted);
        assert!(Incentives::decide(&rejected.state, apply_cmd("O2"), t("2026-09-04T00:00:00Z")).is_ok());
        // So does a finalized one.
        let finalized = passed.at("2026-09-05T00:00:00Z", finalize_cmd("O1", "300.00"));
        assert!(Incentives::decide(&finalized.state, apply_cmd("O2"), t("2026-09-06T00:00:00Z")).is_ok());
    }

    #[test]
    fn a_rejected_opportunity_may_be_applied_for_again() {
        let s = accepted("O1", "OFF1")
            .at("2026-09-01T00:00:00Z", apply_cmd("O1"))
            .at("2026-09-02T00:00:00Z", review_cmd("O1", ReviewDecision::Reject))
            .at("2026-09-03T00:00:00Z", apply_cmd("O1"));
        assert_eq!(s.state.opportunities["O1"].status, OpportunityStatus::UnderReview);
    }

    #[test]
    fn finalizing_records_the_amount_and_the_quarter_of_the_finalization() {
        let s = accepted("O1", "OFF1")
            .at("2026-09-01T00:00:00Z", apply_cmd("O1"))
            .at("2026-09-02T00:00:00Z", review_cmd("O1", ReviewDecision::Pass));
        given::<Incentives>(s.events.clone()).when(finalize_cmd("O1", "0")).then_error("INVALID_AMOUNT");
        // 2026-09-30T17:00Z is 2026-10-01 01:00 CST: Q4.
        given::<Incentives>(s.events.clone()).at(t("2026-09-30T17:00:00Z")).when(finalize_cmd("O1", "300.00")).then([
            IncentiveEvent::OpportunityFinalized {
                partner_id: P.into(),
                opportunity_id: "O1".into(),
                final_amount: cny("300.00"),
                quarter: quarter("2026Q4"),
                reason: None,
                finalized_at: t("2026-09-30T17:00:00Z"),
            },
        ]);
        let done = s.at("2026-09-03T00:00:00Z", finalize_cmd("O1", "300.00"));
        given::<Incentives>(done.events).when(finalize_cmd("O1", "300.00")).then_error("INVALID_STATE");
    }

    #[test]
    fn only_an_opportunity_under_review_can_be_reviewed_and_delivery_is_set_once() {
        given::<Incentives>(accepted("O1", "OFF1").events)
            .when(review_cmd("O1", ReviewDecision::Pass))
            .then_error("INVALID_STATE");
        given::<Incentives>(accepted("O1", "OFF1").events)
            .when(IncentiveCommand::MarkOpportunityDelivered(MarkOpportunityDelivered {
                opportunity_id: "O1".into(),
                delivery_end_date: date("2026-08-21"),
            }))
            .then_error("INVALID_STATE");
        given::<Incentives>([])
            .when(IncentiveCommand::MarkOpportunityDelivered(MarkOpportunityDelivered {
                opportunity_id: "O1".into(),
                delivery_end_date: date("2026-08-21"),
            }))
            .then_error("NOT_FOUND");
    }
}
