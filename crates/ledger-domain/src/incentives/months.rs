//! The incentive month lifecycle (docs/DOMAIN.md §2), per partner × month × currency:
//!
//! `accruing` → close (operator, only at/after the cut-off; total 0 → `closed_empty`) →
//! `open` → apply (partner, certification gate) → `under_review` → review pass → `passed`,
//! or reject → back to `open` → finalize (operator, optional final amount; a difference
//! from the accrued needs a reason and is an explicit adjustment) → `finalized` → `paid`
//! with its quarterly payment. An `open` month becomes `forfeited` when a payment of its
//! quarter is requested ([`super::payments`]).

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money, Month};

use super::command::*;
use super::{
    check_partner, invalid, invalid_state, optional_text, same_currency, stream_partner, Adjustment, IncentiveEvent,
    IncentiveMonth, IncentivesState, MonthStatus, MAX_COMMENT_CHARS,
};
use crate::guard::{final_amount, non_blank};
use crate::policy::cut_off;
use crate::DomainError;

fn existing(state: &IncentivesState, month: Month, currency: Currency) -> Result<&IncentiveMonth, DomainError> {
    state
        .month(month, currency)
        .ok_or_else(|| DomainError::NotFound { what: "incentive month", id: format!("{month} {currency}") })
}

fn expect_status(m: &IncentiveMonth, expected: MonthStatus, action: &str) -> Result<(), DomainError> {
    if m.status == expected {
        Ok(())
    } else {
        Err(invalid_state(format!(
            "cannot {action} incentive month {} {}: it is {:?}, not {:?}",
            m.month, m.currency, m.status, expected
        )))
    }
}

pub(super) fn close(
    state: &IncentivesState,
    c: &CloseMonth,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let CloseMonth { partner_id, month, currency, settlement_grace_days } = c.clone();
    check_partner(state, &partner_id)?;
    let status = state.month_status(month, currency);
    if status != MonthStatus::Accruing {
        return Err(invalid_state(format!("incentive month {month} {currency} is already closed ({status:?})")));
    }
    let cut = cut_off(month, settlement_grace_days);
    if now < cut {
        return Err(invalid_state(format!("incentive month {month} can be closed only from its cut-off {cut}")));
    }
    let accrued = state.month(month, currency).map_or(Money::zero(currency), IncentiveMonth::accrued);
    let status = if accrued.is_zero() { MonthStatus::ClosedEmpty } else { MonthStatus::Open };
    Ok(vec![IncentiveEvent::IncentiveMonthClosed { partner_id, month, currency, accrued, status, closed_at: now }])
}

pub(super) fn apply(
    state: &IncentivesState,
    c: &ApplyForMonth,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ApplyForMonth { month, currency, certification } = c.clone();
    let m = existing(state, month, currency)?;
    certification?;
    expect_status(m, MonthStatus::Open, "apply for")?;
    Ok(vec![IncentiveEvent::IncentiveMonthApplied {
        partner_id: stream_partner(state)?.to_string(),
        month,
        currency,
        applied_at: now,
    }])
}

pub(super) fn review(
    state: &IncentivesState,
    c: &ReviewMonth,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ReviewMonth { month, currency, decision, comment } = c.clone();
    optional_text("comment", &comment, MAX_COMMENT_CHARS)?;
    let m = existing(state, month, currency)?;
    expect_status(m, MonthStatus::UnderReview, "review")?;
    Ok(vec![IncentiveEvent::IncentiveMonthReviewed {
        partner_id: stream_partner(state)?.to_string(),
        month,
        currency,
        decision,
        comment,
        reviewed_at: now,
    }])
}

pub(super) fn finalize(
    state: &IncentivesState,
    c: &FinalizeMonth,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let FinalizeMonth { month, currency, amount, reason } = c.clone();
    if let Some(a) = &amount {
        final_amount(a)?;
        same_currency(currency, a.currency)?;
    }
    let m = existing(state, month, currency)?;
    expect_status(m, MonthStatus::Passed, "finalize")?;
    let accrued = m.accrued();
    let final_amount = amount.unwrap_or(accrued);
    let adjustment = if final_amount == accrued {
        None
    } else {
        let reason = reason
            .ok_or_else(|| invalid("reason", "a reason is required when the final amount differs from the accrued"))?;
        non_blank("reason", &reason, MAX_COMMENT_CHARS)?;
        Some(Adjustment { amount: Money::new(final_amount.amount - accrued.amount, currency), reason })
    };
    Ok(vec![IncentiveEvent::IncentiveMonthFinalized {
        partner_id: stream_partner(state)?.to_string(),
        month,
        currency,
        accrued,
        final_amount,
        adjustment,
        finalized_at: now,
    }])
}

#[cfg(test)]
mod tests {
    use crate::decider::harness::given;
    use crate::incentives::command::*;
    use crate::incentives::testkit::*;
    use crate::incentives::{Adjustment, IncentiveEvent, MonthStatus, ReviewDecision, MAX_COMMENT_CHARS};
    use crate::incentives::{IncentiveCommand, Incentives};
    use ledger_core::{Currency, Money};

    fn july_with_line() -> Scenario {
        scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00"))
    }

    fn status(s: &Scenario, m: &str) -> MonthStatus {
        s.state.month_status(month(m), Currency::CNY)
    }

    #[test]
    fn a_month_closes_at_its_cut_off_into_open() {
        // The cut-off of July with no grace days is 2026-08-01 00:00 CST = 07-31 16:00 UTC.
        given::<Incentives>(july_with_line().events)
            .at(t("2026-07-31T15:59:59Z"))
            .when(close("2026-07"))
            .then_error("INVALID_STATE");
        given::<Incentives>(july_with_line().events).at(t("2026-07-31T16:00:00Z")).when(close("2026-07")).then([
            IncentiveEvent::IncentiveMonthClosed {
                partner_id: P.into(),
                month: month("2026-07"),
                currency: Currency::CNY,
                accrued: cny("5.00"),
                status: MonthStatus::Open,
                closed_at: t("2026-07-31T16:00:00Z"),
            },
        ]);
    }

    #[test]
    fn grace_days_push_the_close_later() {
        let mut cmd = close("2026-07");
        if let IncentiveCommand::CloseMonth(CloseMonth { settlement_grace_days, .. }) = &mut cmd {
            *settlement_grace_days = 3;
        }
        given::<Incentives>(july_with_line().events)
            .at(t("2026-08-03T15:59:59Z"))
            .when(cmd.clone())
            .then_error("INVALID_STATE");
        assert_eq!(
            given::<Incentives>(july_with_line().events).at(t("2026-08-03T16:00:00Z")).when(cmd).events().len(),
            1
        );
    }

    #[test]
    fn a_month_whose_total_is_zero_closes_straight_to_closed_empty() {
        let only_ineligible = scenario().at(
            "2026-07-20T00:00:00Z",
            record("R1", "100.00", "unlisted", "2026-07-10T00:00:00Z", "2026-07-10T00:00:00Z"),
        );
        let events =
            given::<Incentives>(only_ineligible.events).at(t("2026-08-01T00:00:00Z")).when(close("2026-07")).events();
        assert!(matches!(&events[0], IncentiveEvent::IncentiveMonthClosed { status: MonthStatus::ClosedEmpty, .. }));
        // Nothing at all in the month: also closed_empty.
        let events = given::<Incentives>([]).at(t("2026-08-01T00:00:00Z")).when(close("2026-07")).events();
        assert!(
            matches!(&events[0], IncentiveEvent::IncentiveMonthClosed { status: MonthStatus::ClosedEmpty, accrued, .. } if accrued.is_zero())
        );
    }

    #[test]
    fn a_month_closes_once() {
        let s = july_with_line().at("2026-08-01T00:00:00Z", close("2026-07"));
        given::<Incentives>(s.events).at(t("2026-08-02T00:00:00Z")).when(close("2026-07")).then_error("INVALID_STATE");
    }

    #[test]
    fn the_partner_applies_for_an_open_month_and_it_goes_under_review() {
        let s = july_with_line().at("2026-08-01T00:00:00Z", close("2026-07"));
        given::<Incentives>(s.events.clone()).at(t("2026-08-02T00:00:00Z")).when(apply("2026-07")).then([
            IncentiveEvent::IncentiveMonthApplied {
                partner_id: P.into(),
                month: month("2026-07"),
                currency: Currency::CNY,
                applied_at: t("2026-08-02T00:00:00Z"),
            },
        ]);
        let s = s.at("2026-08-02T00:00:00Z", apply("2026-07"));
        assert_eq!(status(&s, "2026-07"), MonthStatus::UnderReview);
    }

    #[test]
    fn applying_needs_both_certifications() {
        // Seed: "两者都完成,才可以申请激励".
        let s = july_with_line().at("2026-08-01T00:00:00Z", close("2026-07"));
        given::<Incentives>(s.events)
            .when(IncentiveCommand::ApplyForMonth(ApplyForMonth {
                month: month("2026-07"),
                currency: Currency::CNY,
                certification: uncertified(),
            }))
            .then_error("CERTIFICATION_INCOMPLETE");
    }

    #[test]
    fn only_an_open_month_can_be_applied_for() {
        given::<Incentives>(july_with_line().events).when(apply("2026-07")).then_error("INVALID_STATE");
        given::<Incentives>(july_with_line().events).when(apply("2026-06")).then_error("NOT_FOUND");
        let s =
            july_with_line().at("2026-08-01T00:00:00Z", close("2026-07")).at("2026-08-02T00:00:00Z", apply("2026-07"));
        given::<Incentives>(s.events).when(apply("2026-07")).then_error("INVALID_STATE");
        let empty = scenario().at("2026-08-01T00:00:00Z", close("2026-07"));
        given::<Incentives>(empty.events).when(apply("2026-07")).then_error("INVALID_STATE");
    }

    #[test]
    fn a_passed_review_makes_the_month_passed() {
        let s = july_with_line()
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-08-02T00:00:00Z", apply("2026-07"))
            .at("2026-08-03T00:00:00Z", pass("2026-07"));
        assert_eq!(status(&s, "2026-07"), MonthStatus::Passed);
    }

    #[test]
    fn a_rejected_month_returns_to_open_and_may_be_applied_for_again() {
        let s = july_with_line()
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-08-02T00:00:00Z", apply("2026-07"))
            .at("2026-08-03T00:00:00Z", reject("2026-07"));
        assert_eq!(status(&s, "2026-07"), MonthStatus::Open);
        let s = s.at("2026-08-04T00:00:00Z", apply("2026-07"));
        assert_eq!(status(&s, "2026-07"), MonthStatus::UnderReview);
    }

    #[test]
    fn only_a_month_under_review_can_be_reviewed() {
        let s = july_with_line().at("2026-08-01T00:00:00Z", close("2026-07"));
        given::<Incentives>(s.events.clone()).when(pass("2026-07")).then_error("INVALID_STATE");
        let s = s.at("2026-08-02T00:00:00Z", apply("2026-07"));
        let long = IncentiveCommand::ReviewMonth(ReviewMonth {
            month: month("2026-07"),
            currency: Currency::CNY,
            decision: ReviewDecision::Pass,
            comment: Some("x".repeat(MAX_COMMENT_CHARS + 1)),
        });
        given::<Incentives>(s.events).when(long).then_error("INVALID_FIELD");
    }

    fn passed_july() -> Scenario {
        july_with_line()
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-08-02T00:00:00Z", apply("2026-07"))
            .at("2026-08-03T00:00:00Z", pass("2026-07"))
    }

    fn finalize_with(amount: Option<&str>, reason: Option<&str>) -> IncentiveCommand {
        IncentiveCommand::FinalizeMonth(FinalizeMonth {
            month: month("2026-07"),
            currency: Currency::CNY,
            amount: amount.map(cny),
            reason: reason.map(str::to_string),
        })
    }

    #[test]
    fn finalizing_without_an_amount_takes_the_accrued() {
        given::<Incentives>(passed_july().events).at(t("2026-08-04T00:00:00Z")).when(finalize("2026-07")).then([
            IncentiveEvent::IncentiveMonthFinalized {
                partner_id: P.into(),
                month: month("2026-07"),
                currency: Currency::CNY,
                accrued: cny("5.00"),
                final_amount: cny("5.00"),
                adjustment: None,
                finalized_at: t("2026-08-04T00:00:00Z"),
            },
        ]);
    }

    #[test]
    fn a_final_amount_that_differs_is_an_explicit_adjustment_with_a_reason() {
        given::<Incentives>(passed_july().events).when(finalize_with(Some("4.50"), None)).then_error("INVALID_FIELD");
        given::<Incentives>(passed_july().events)
            .when(finalize_with(Some("4.50"), Some("  ")))
            .then_error("INVALID_FIELD");
        let events = given::<Incentives>(passed_july().events)
            .when(finalize_with(Some("4.50"), Some("late cancellation")))
            .events();
        let IncentiveEvent::IncentiveMonthFinalized { final_amount, adjustment, accrued, .. } = &events[0] else {
            panic!()
        };
        assert_eq!((*accrued, *final_amount), (cny("5.00"), cny("4.50")));
        assert_eq!(adjustment, &Some(Adjustment { amount: cny("-0.50"), reason: "late cancellation".into() }));
        // The same amount as the accrued needs no reason.
        let events = given::<Incentives>(passed_july().events).when(finalize_with(Some("5.00"), None)).events();
        assert!(matches!(&events[0], IncentiveEvent::IncentiveMonthFinalized { adjustment: None, .. }));
    }

    #[test]
    fn a_final_amount_is_a_valid_amount_of_the_month_currency() {
        given::<Incentives>(passed_july().events)
            .when(finalize_with(Some("-1.00"), Some("r")))
            .then_error("INVALID_AMOUNT");
        given::<Incentives>(passed_july().events)
            .when(finalize_with(Some("1.234"), Some("r")))
            .then_error("INVALID_AMOUNT");
        let usd = IncentiveCommand::FinalizeMonth(FinalizeMonth {
            month: month("2026-07"),
            currency: Currency::CNY,
            amount: Some(Money::new(dec("5.00"), Currency::USD)),
            reason: None,
        });
        given::<Incentives>(passed_july().events).when(usd).then_error("CURRENCY_MISMATCH");
    }

    #[test]
    fn a_month_may_be_finalized_at_zero_with_a_reason() {
        // docs/DOMAIN.md §5: "A month may be finalized at 0."
        given::<Incentives>(passed_july().events).when(finalize_with(Some("0"), None)).then_error("INVALID_FIELD");
        let events =
            given::<Incentives>(passed_july().events).when(finalize_with(Some("0.00"), Some("disputed"))).events();
        let IncentiveEvent::IncentiveMonthFinalized { final_amount, adjustment, .. } = &events[0] else { panic!() };
        assert_eq!(*final_amount, cny("0.00"));
        assert_eq!(adjustment.as_ref().map(|a| a.amount), Some(cny("-5.00")));
    }

    #[test]
    fn only_a_passed_month_can_be_finalized() {
        let s =
            july_with_line().at("2026-08-01T00:00:00Z", close("2026-07")).at("2026-08-02T00:00:00Z", apply("2026-07"));
        given::<Incentives>(s.events).when(finalize("2026-07")).then_error("INVALID_STATE");
        let s = passed_july().at("2026-08-04T00:00:00Z", finalize("2026-07"));
        assert_eq!(status(&s, "2026-07"), MonthStatus::Finalized);
        assert_eq!(s.state.month_view(month("2026-07"), Currency::CNY).unwrap().final_amount, Some(cny("5.00")));
        given::<Incentives>(s.events).when(finalize("2026-07")).then_error("INVALID_STATE");
    }

    #[test]
    fn the_month_view_shows_final_only_once_finalized() {
        let s = passed_july();
        let v = s.state.month_view(month("2026-07"), Currency::CNY).unwrap();
        assert_eq!((v.status, v.accrued, v.final_amount), (MonthStatus::Passed, cny("5.00"), None));
        let json = serde_json::to_value(&v).unwrap();
        assert!(json["final"].is_null());
        assert_eq!(json["status"], "passed");
        assert_eq!(s.state.months_of_year(2026).len(), 1);
        assert!(s.state.months_of_year(2025).is_empty());
    }

    #[test]
    fn a_close_for_another_partner_is_refused() {
        let cmd = IncentiveCommand::CloseMonth(CloseMonth {
            partner_id: "P2".into(),
            month: month("2026-07"),
            currency: Currency::CNY,
            settlement_grace_days: 0,
        });
        given::<Incentives>(july_with_line().events)
            .at(t("2026-08-01T00:00:00Z"))
            .when(cmd)
            .then_error("INVALID_FIELD");
    }
}
