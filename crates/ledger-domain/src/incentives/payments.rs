//! Quarterly payment application (季度付款申请, docs/DOMAIN.md §5).
//!
//! [`eligibility`] evaluates the blockers in docs/DOMAIN.md's order, each with the months it
//! concerns; a request is refused with all of them (`PaymentBlocked`, first one first)
//! unless none holds. An eligible request records the included (finalized) months with
//! their amounts, the opportunities finalized within the quarter, the months carried in
//! from earlier quarters, and the excluded `open` months, which become `forfeited` in the
//! same event. Lifecycle: `requested → approved | rejected` (rejection releases the months
//! and opportunities and returns the forfeited months to `open`) `→ invoice_list_issued →
//! invoice_received → paid` by bank transfer or cloud account credit (the months, carried
//! ones included, and the opportunities become `paid`).
//!
//! **Negative months** (docs/DOMAIN.md §5). A payment is never ≤ 0: when the payable is,
//! the request is refused `NOTHING_PAYABLE` (the 8th blocker) and nothing is forfeited.
//! Ours, where the text leaves it open: the deduction carried into a payment of quarter Q
//! is made of the earlier quarters (in the currency) whose finalized months that no
//! payment holds add up to ≤ 0; those months are the payment's `carried_months`, held by it
//! like its included months, and `carried_deduction = −Σ carried`. An earlier quarter whose
//! unpaid months add up to more than 0 is not swept in: it is still requested on its own.
//! Opportunities are never carried (their amounts are > 0; they stay with their quarter).
//! `NOTHING_PAYABLE` is evaluated once the quarter's amounts are known: when none of
//! `ALREADY_REQUESTED`, `MONTH_NOT_CLOSED`, `REVIEW_PENDING`, `NO_APPROVED_INCENTIVE` and
//! `NOT_FINALIZED` holds.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{Currency, Money, Month, Quarter};
use rust_decimal::Decimal;
use serde::Serialize;

use super::command::*;
use super::{
    invalid, invalid_state, optional_text, stream_partner, IncentiveEvent, IncentivesState, IncludedMonth,
    IncludedOpportunity, InvoiceLine, InvoiceList, MonthStatus, OpportunityStatus, PaymentStatus, QuarterlyPayment,
    RestoredMonth, MAX_ADDRESS_CHARS, MAX_COMMENT_CHARS, MAX_MAILBOX_CHARS,
};
use crate::guard::non_blank;
use crate::{Blocker, DomainError};

pub const CERTIFICATION_INCOMPLETE: &str = "CERTIFICATION_INCOMPLETE";
pub const ALREADY_REQUESTED: &str = "ALREADY_REQUESTED";
pub const MONTH_NOT_CLOSED: &str = "MONTH_NOT_CLOSED";
pub const MONTHS_STILL_APPLICABLE: &str = "MONTHS_STILL_APPLICABLE";
pub const REVIEW_PENDING: &str = "REVIEW_PENDING";
pub const NO_APPROVED_INCENTIVE: &str = "NO_APPROVED_INCENTIVE";
pub const NOT_FINALIZED: &str = "NOT_FINALIZED";
pub const NOTHING_PAYABLE: &str = "NOTHING_PAYABLE";

/// What a quarterly payment request would do now, or why it cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eligibility {
    pub eligible: bool,
    /// Every blocker that holds, in docs/DOMAIN.md's order.
    pub blockers: Vec<Blocker>,
    /// Sum of the included months' final amounts and the included opportunities, less the
    /// carried deduction.
    pub payable: Money,
    pub included_months: Vec<IncludedMonth>,
    /// The `open` months the request would forfeit.
    pub excluded_months: Vec<Month>,
    pub included_opportunities: Vec<IncludedOpportunity>,
    /// Earlier quarters' finalized months whose total is ≤ 0, settled by this payment.
    pub carried_months: Vec<IncludedMonth>,
    /// `−Σ carried_months` (≥ 0), deducted from the payable.
    pub carried_deduction: Money,
}

/// The months carried into a payment of `quarter` in `currency` (module doc): per earlier
/// quarter, the finalized months no payment holds, when they add up to ≤ 0.
fn carried_months(state: &IncentivesState, quarter: Quarter, currency: Currency) -> Vec<IncludedMonth> {
    let mut by_quarter: std::collections::BTreeMap<Quarter, Vec<IncludedMonth>> = Default::default();
    for m in state.months.values() {
        let unpaid = m.status == MonthStatus::Finalized && m.payment_id.is_none();
        if m.currency == currency && m.month.quarter() < quarter && unpaid {
            if let Some(amount) = m.final_amount {
                by_quarter.entry(m.month.quarter()).or_default().push(IncludedMonth { month: m.month, amount });
            }
        }
    }
    by_quarter
        .into_values()
        .filter(|months| months.iter().map(|m| m.amount.amount).sum::<Decimal>() <= Decimal::ZERO)
        .flatten()
        .collect()
}

/// docs/DOMAIN.md §5 for this partner, `quarter` and `currency`, evaluated at `at`;
/// `certification` is the outcome of `partner::certification_gate` (any refusal of the gate,
/// an unknown partner included, is reported as `CERTIFICATION_INCOMPLETE`).
pub fn eligibility(
    state: &IncentivesState,
    quarter: Quarter,
    currency: Currency,
    at: DateTime<Utc>,
    certification: &Result<(), DomainError>,
) -> Eligibility {
    let months: Vec<_> = quarter.months().into_iter().filter_map(|m| state.month(m, currency)).collect();
    let with = |pred: &dyn Fn(&super::IncentiveMonth) -> bool| -> Vec<Month> {
        months.iter().filter(|m| pred(m)).map(|m| m.month).collect()
    };
    let included_opportunities: Vec<IncludedOpportunity> = state
        .opportunities
        .values()
        .filter(|o| o.status == OpportunityStatus::Finalized && o.finalized_quarter == Some(quarter))
        .filter(|o| o.payment_id.is_none())
        .filter_map(|o| {
            let amount = o.final_amount.filter(|a| a.currency == currency)?;
            Some(IncludedOpportunity { opportunity_id: o.opportunity_id.clone(), amount })
        })
        .collect();
    let opportunity_finalized_in_quarter = state
        .opportunities
        .values()
        .any(|o| o.finalized_quarter == Some(quarter) && o.final_amount.is_some_and(|a| a.currency == currency));

    let mut blockers = Vec::new();
    let mut block = |code: &str, months: Vec<Month>| blockers.push(Blocker { code: code.to_string(), months });
    if certification.is_err() {
        block(CERTIFICATION_INCOMPLETE, vec![]);
    }
    if let Some(p) = state.live_payment(quarter, currency) {
        let mut held: Vec<Month> =
            p.included_months.iter().map(|m| m.month).chain(p.excluded_months.iter().copied()).collect();
        held.sort();
        block(ALREADY_REQUESTED, held);
    }
    let not_closed = with(&|m| m.status == MonthStatus::Accruing && m.has_accruals());
    if !not_closed.is_empty() {
        block(MONTH_NOT_CLOSED, not_closed);
    }
    let open = with(&|m| m.status == MonthStatus::Open);
    if at < quarter.end() && !open.is_empty() {
        block(MONTHS_STILL_APPLICABLE, open.clone());
    }
    let under_review = with(&|m| m.status == MonthStatus::UnderReview);
    if !under_review.is_empty() {
        block(REVIEW_PENDING, under_review);
    }
    let approved = with(&|m| matches!(m.status, MonthStatus::Passed | MonthStatus::Finalized | MonthStatus::Paid));
    if approved.is_empty() && !opportunity_finalized_in_quarter {
        block(NO_APPROVED_INCENTIVE, vec![]);
    }
    let passed = with(&|m| m.status == MonthStatus::Passed);
    if !passed.is_empty() {
        block(NOT_FINALIZED, passed);
    }

    let included_months: Vec<IncludedMonth> = months
        .iter()
        .filter(|m| m.status == MonthStatus::Finalized && m.payment_id.is_none())
        .filter_map(|m| Some(IncludedMonth { month: m.month, amount: m.final_amount? }))
        .collect();
    let carried = carried_months(state, quarter, currency);
    // Written 0.00 rather than −0.00 when nothing is carried.
    let carried_deduction = Decimal::ZERO - carried.iter().map(|m| m.amount.amount).sum::<Decimal>();
    let payable = included_months
        .iter()
        .map(|m| m.amount.amount)
        .chain(included_opportunities.iter().map(|o| o.amount.amount))
        .sum::<Decimal>()
        - carried_deduction;
    // Once the quarter's amounts are known (module doc), a payable ≤ 0 is nothing to pay.
    let amounts_known = !blockers.iter().any(|b| {
        [ALREADY_REQUESTED, MONTH_NOT_CLOSED, REVIEW_PENDING, NO_APPROVED_INCENTIVE, NOT_FINALIZED]
            .contains(&b.code.as_str())
    });
    if amounts_known && payable <= Decimal::ZERO {
        let mut concerned: Vec<Month> = included_months.iter().chain(&carried).map(|m| m.month).collect();
        concerned.sort();
        blockers.push(Blocker { code: NOTHING_PAYABLE.to_string(), months: concerned });
    }
    Eligibility {
        eligible: blockers.is_empty(),
        blockers,
        payable: Money::new(payable, currency),
        included_months,
        excluded_months: open,
        included_opportunities,
        carried_months: carried,
        carried_deduction: Money::new(carried_deduction, currency),
    }
}

pub(super) fn request(
    state: &IncentivesState,
    c: &RequestQuarterlyPayment,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let RequestQuarterlyPayment { payment_id, quarter, currency, certification } = c.clone();
    let certification = &certification;
    validate_id("payment_id", &payment_id)?;
    if state.payments.contains_key(&payment_id) {
        return Err(DomainError::AlreadyExists { what: "quarterly payment", id: payment_id });
    }
    let e = eligibility(state, quarter, currency, now, certification);
    if !e.eligible {
        return Err(DomainError::PaymentBlocked(e.blockers));
    }
    Ok(vec![IncentiveEvent::QuarterlyPaymentRequested {
        partner_id: stream_partner(state)?.to_string(),
        payment_id,
        quarter,
        currency,
        included_months: e.included_months,
        excluded_months: e.excluded_months,
        included_opportunities: e.included_opportunities,
        carried_months: e.carried_months,
        carried_deduction: e.carried_deduction,
        payable: e.payable,
        requested_at: now,
    }])
}

fn existing<'a>(state: &'a IncentivesState, payment_id: &str) -> Result<&'a QuarterlyPayment, DomainError> {
    state
        .payments
        .get(payment_id)
        .ok_or_else(|| DomainError::NotFound { what: "quarterly payment", id: payment_id.to_string() })
}

fn in_status<'a>(
    state: &'a IncentivesState,
    payment_id: &str,
    expected: PaymentStatus,
    action: &str,
) -> Result<&'a QuarterlyPayment, DomainError> {
    let p = existing(state, payment_id)?;
    if p.status == expected {
        Ok(p)
    } else {
        Err(invalid_state(format!(
            "cannot {action} quarterly payment {payment_id}: it is {:?}, not {expected:?}",
            p.status
        )))
    }
}

pub(super) fn approve(
    state: &IncentivesState,
    c: &ApprovePayment,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ApprovePayment { payment_id } = c.clone();
    let p = in_status(state, &payment_id, PaymentStatus::Requested, "approve")?;
    Ok(vec![IncentiveEvent::QuarterlyPaymentApproved {
        partner_id: stream_partner(state)?.to_string(),
        quarter: p.quarter,
        payment_id,
        approved_at: now,
    }])
}

pub(super) fn reject(
    state: &IncentivesState,
    c: &RejectPayment,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let RejectPayment { payment_id, reason } = c.clone();
    optional_text("reason", &reason, MAX_COMMENT_CHARS)?;
    let p = in_status(state, &payment_id, PaymentStatus::Requested, "reject")?;
    // docs/DOMAIN.md §5: the months the request forfeited return to the status they had
    // (a request forfeits only `open` months, and nothing moves a forfeited month since).
    let restored_months = p
        .excluded_months
        .iter()
        .filter(|m| state.month_status(**m, p.currency) == MonthStatus::Forfeited)
        .map(|m| RestoredMonth { month: *m, currency: p.currency, status: MonthStatus::Open })
        .collect();
    Ok(vec![IncentiveEvent::QuarterlyPaymentRejected {
        partner_id: stream_partner(state)?.to_string(),
        quarter: p.quarter,
        payment_id,
        reason,
        restored_months,
        rejected_at: now,
    }])
}

pub(super) fn issue_invoice_list(
    state: &IncentivesState,
    c: &IssueInvoiceList,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let IssueInvoiceList { payment_id, mailing_address, mailbox } = c.clone();
    non_blank("mailing_address", &mailing_address, MAX_ADDRESS_CHARS)?;
    non_blank("mailbox", &mailbox, MAX_MAILBOX_CHARS)?;
    if !mailbox.contains('@') {
        return Err(invalid("mailbox", "must be an e-mail address"));
    }
    let p = in_status(state, &payment_id, PaymentStatus::Approved, "issue the invoice list of")?;
    let month_lines = p.included_months.iter().map(|m| InvoiceLine {
        item: format!("monthly incentive {}", m.month),
        month: Some(m.month),
        opportunity_id: None,
        amount: m.amount,
    });
    let opportunity_lines = p.included_opportunities.iter().map(|o| InvoiceLine {
        item: format!("opportunity incentive {}", o.opportunity_id),
        month: None,
        opportunity_id: Some(o.opportunity_id.clone()),
        amount: o.amount,
    });
    // The carried months are lines too (≤ 0), so the lines add up to the total.
    let carried_lines = p.carried_months.iter().map(|m| InvoiceLine {
        item: format!("carried deduction {}", m.month),
        month: Some(m.month),
        opportunity_id: None,
        amount: m.amount,
    });
    Ok(vec![IncentiveEvent::InvoiceListIssued {
        partner_id: stream_partner(state)?.to_string(),
        quarter: p.quarter,
        payment_id,
        invoice_list: InvoiceList {
            lines: month_lines.chain(opportunity_lines).chain(carried_lines).collect(),
            total: p.payable,
            mailing_address,
            mailbox,
        },
        issued_at: now,
    }])
}

pub(super) fn confirm_invoice_received(
    state: &IncentivesState,
    c: &ConfirmInvoiceReceived,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let ConfirmInvoiceReceived { payment_id } = c.clone();
    let p = in_status(state, &payment_id, PaymentStatus::InvoiceListIssued, "confirm the invoice of")?;
    Ok(vec![IncentiveEvent::InvoiceReceived {
        partner_id: stream_partner(state)?.to_string(),
        quarter: p.quarter,
        payment_id,
        received_at: now,
    }])
}

pub(super) fn pay(
    state: &IncentivesState,
    c: &PayQuarterlyPayment,
    now: DateTime<Utc>,
) -> Result<Vec<IncentiveEvent>, DomainError> {
    let PayQuarterlyPayment { payment_id, method } = c.clone();
    let p = in_status(state, &payment_id, PaymentStatus::InvoiceReceived, "pay")?;
    // A payment is never ≤ 0 (docs/DOMAIN.md §5); only one requested before that rule (a
    // `QuarterlyPaymentRequested` v1) can hold such a payable: it is rejected, never paid.
    if p.payable.amount <= Decimal::ZERO {
        return Err(DomainError::PaymentBlocked(vec![Blocker {
            code: NOTHING_PAYABLE.to_string(),
            months: p.included_months.iter().map(|m| m.month).collect(),
        }]));
    }
    Ok(vec![IncentiveEvent::QuarterlyPaymentPaid {
        partner_id: stream_partner(state)?.to_string(),
        quarter: p.quarter,
        method,
        amount: p.payable,
        // The carried months are settled by this payment too (they read `paid`).
        included_months: p.included_months.iter().chain(&p.carried_months).map(|m| m.month).collect(),
        included_opportunities: p.included_opportunities.iter().map(|o| o.opportunity_id.clone()).collect(),
        payment_id,
        paid_at: now,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::harness::given;
    use crate::incentives::opportunities::tests::{
        accept_cmd, accepted, apply_cmd, finalize_cmd, review_cmd, share_cmd,
    };
    use crate::incentives::testkit::{self as kit, *};
    use crate::incentives::PaymentMethod;
    use crate::incentives::{IncentiveCommand, Incentives, ReviewDecision};
    use crate::postings::{is_balanced, totals};
    use crate::Decider;

    fn codes(e: &Eligibility) -> Vec<&str> {
        e.blockers.iter().map(|b| b.code.as_str()).collect()
    }

    fn eligibility_at(s: &Scenario, q: &str, at: &str) -> Eligibility {
        eligibility(&s.state, quarter(q), Currency::CNY, t(at), &certified())
    }

    fn blocker(code: &str, months: &[&str]) -> Blocker {
        Blocker { code: code.into(), months: months.iter().map(|m| month(m)).collect() }
    }

    /// July finalized (50.00), nothing else in Q3.
    fn july_finalized() -> Scenario {
        scenario().at("2026-07-20T00:00:00Z", line("R1", "1000.00")).finalized("2026-07", "2026-08-01T00:00:00Z")
    }

    #[test]
    fn a_quarter_with_every_month_finalized_is_eligible() {
        let s = july_finalized();
        let e = eligibility_at(&s, "2026Q3", "2026-08-10T00:00:00Z");
        assert_eq!(
            e,
            Eligibility {
                eligible: true,
                blockers: vec![],
                payable: cny("50.00"),
                included_months: vec![IncludedMonth { month: month("2026-07"), amount: cny("50.00") }],
                excluded_months: vec![],
                included_opportunities: vec![],
                carried_months: vec![],
                carried_deduction: cny("0"),
            }
        );
        assert_eq!(serde_json::to_value(e.carried_deduction).unwrap()["amount"], "0.00", "never -0.00");
    }

    #[test]
    fn blocker_certification_incomplete_alone() {
        let s = july_finalized();
        let e = eligibility(&s.state, quarter("2026Q3"), Currency::CNY, t("2026-08-10T00:00:00Z"), &uncertified());
        assert_eq!(e.blockers, vec![blocker(CERTIFICATION_INCOMPLETE, &[])]);
        let cmd = IncentiveCommand::RequestQuarterlyPayment(RequestQuarterlyPayment {
            payment_id: "QP1".into(),
            quarter: quarter("2026Q3"),
            currency: Currency::CNY,
            certification: uncertified(),
        });
        given::<Incentives>(s.events).at(t("2026-08-10T00:00:00Z")).when(cmd).then_error(CERTIFICATION_INCOMPLETE);
    }

    #[test]
    fn blocker_already_requested_alone_and_atomic_with_the_request() {
        let s = requested_quarter_scenario();
        let e = eligibility_at(&s, "2026Q3", "2026-08-11T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(ALREADY_REQUESTED, &["2026-07"])]);
        given::<Incentives>(s.events)
            .at(t("2026-08-11T00:00:00Z"))
            .when(kit::request("QP2", "2026Q3"))
            .then_error(ALREADY_REQUESTED);
    }

    #[test]
    fn blocker_month_not_closed_alone() {
        let s = july_finalized().at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"));
        let e = eligibility_at(&s, "2026Q3", "2026-08-21T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(MONTH_NOT_CLOSED, &["2026-08"])]);
        given::<Incentives>(s.events)
            .at(t("2026-08-21T00:00:00Z"))
            .when(kit::request("QP1", "2026Q3"))
            .then_error(MONTH_NOT_CLOSED);
    }

    #[test]
    fn blocker_months_still_applicable_alone_until_the_first_of_the_next_quarter() {
        // Seed: "本季度内仍有部分月份可申请激励 ... 可于下个季度1号发起付款申请".
        let s = july_finalized()
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-08"));
        let e = eligibility_at(&s, "2026Q3", "2026-09-30T15:59:59Z");
        assert_eq!(e.blockers, vec![blocker(MONTHS_STILL_APPLICABLE, &["2026-08"])]);
        given::<Incentives>(s.events.clone())
            .at(t("2026-09-30T15:59:59Z"))
            .when(kit::request("QP1", "2026Q3"))
            .then_error(MONTHS_STILL_APPLICABLE);
        // 2026-09-30T16:00Z is October 1st, 00:00 CST.
        let e = eligibility_at(&s, "2026Q3", "2026-09-30T16:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!(e.excluded_months, vec![month("2026-08")]);
    }

    #[test]
    fn an_open_month_is_forfeited_by_the_request_of_its_quarter() {
        let s = july_finalized()
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-08"));
        given::<Incentives>(s.events.clone()).at(t("2026-10-01T00:00:00Z")).when(kit::request("QP1", "2026Q3")).then([
            IncentiveEvent::QuarterlyPaymentRequested {
                partner_id: P.into(),
                payment_id: "QP1".into(),
                quarter: quarter("2026Q3"),
                currency: Currency::CNY,
                included_months: vec![IncludedMonth { month: month("2026-07"), amount: cny("50.00") }],
                excluded_months: vec![month("2026-08")],
                included_opportunities: vec![],
                carried_months: vec![],
                carried_deduction: cny("0"),
                payable: cny("50.00"),
                requested_at: t("2026-10-01T00:00:00Z"),
            },
        ]);
        let s = s.at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"));
        assert_eq!(s.state.month_status(month("2026-08"), Currency::CNY), MonthStatus::Forfeited);
        assert_eq!(s.state.month_status(month("2026-07"), Currency::CNY), MonthStatus::Finalized);
        given::<Incentives>(s.events).when(apply("2026-08")).then_error("INVALID_STATE");
    }

    #[test]
    fn blocker_review_pending_alone() {
        let s = july_finalized()
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-08"))
            .at("2026-09-01T00:00:00Z", apply("2026-08"));
        let e = eligibility_at(&s, "2026Q3", "2026-10-01T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(REVIEW_PENDING, &["2026-08"])]);
    }

    #[test]
    fn blocker_no_approved_incentive_alone() {
        // Seed: "本季度内申请的月度激励都未初审通过".
        let s = scenario().at("2026-08-01T00:00:00Z", close("2026-07"));
        let e = eligibility_at(&s, "2026Q3", "2026-10-01T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(NO_APPROVED_INCENTIVE, &[])]);
        given::<Incentives>(s.events)
            .at(t("2026-10-01T00:00:00Z"))
            .when(kit::request("QP1", "2026Q3"))
            .then_error(NO_APPROVED_INCENTIVE);
        let empty = eligibility(
            &IncentivesState::default(),
            quarter("2026Q3"),
            Currency::CNY,
            t("2026-10-01T00:00:00Z"),
            &certified(),
        );
        assert_eq!(codes(&empty), [NO_APPROVED_INCENTIVE]);
        assert_eq!(empty.payable, cny("0"));
    }

    #[test]
    fn blocker_not_finalized_alone() {
        // Seed: "一个季度内的激励全部定稿后,伙伴可以发起季度付款申请".
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "1000.00"))
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-08-01T00:00:00Z", apply("2026-07"))
            .at("2026-08-01T00:00:00Z", pass("2026-07"));
        let e = eligibility_at(&s, "2026Q3", "2026-08-10T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(NOT_FINALIZED, &["2026-07"])]);
    }

    #[test]
    fn every_blocker_that_can_hold_together_is_reported_in_domain_order() {
        // Through the decider: July open, August under review, September accruing with a
        // line, before the end of the quarter, certification missing. NO_APPROVED_INCENTIVE
        // and NOT_FINALIZED exclude each other (a passed month is both "approved" and "not
        // finalized"), and a live payment seals its quarter, so this is the most a real
        // history can show at once.
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line_in("R1", "10.00", "2026-07"))
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-07"))
            .at("2026-09-01T00:00:00Z", close("2026-08"))
            .at("2026-09-01T00:00:00Z", apply("2026-08"))
            .at("2026-09-20T00:00:00Z", line_in("R3", "10.00", "2026-09"));
        let e = eligibility(&s.state, quarter("2026Q3"), Currency::CNY, t("2026-09-25T00:00:00Z"), &uncertified());
        assert_eq!(
            e.blockers,
            vec![
                blocker(CERTIFICATION_INCOMPLETE, &[]),
                blocker(MONTH_NOT_CLOSED, &["2026-09"]),
                blocker(MONTHS_STILL_APPLICABLE, &["2026-07"]),
                blocker(REVIEW_PENDING, &["2026-08"]),
                blocker(NO_APPROVED_INCENTIVE, &[]),
            ]
        );
        let cmd = IncentiveCommand::RequestQuarterlyPayment(RequestQuarterlyPayment {
            payment_id: "QP1".into(),
            quarter: quarter("2026Q3"),
            currency: Currency::CNY,
            certification: uncertified(),
        });
        match Incentives::decide(&s.state, cmd, t("2026-09-25T00:00:00Z")) {
            Err(err @ DomainError::PaymentBlocked(_)) => {
                assert_eq!(err.code(), CERTIFICATION_INCOMPLETE);
                assert_eq!(err, DomainError::PaymentBlocked(e.blockers));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_evaluator_reports_all_seven_codes_in_order() {
        // A hand-made history (evolve takes any fact) where a live payment coexists with
        // months in every other state, to pin the order of the first seven codes (the eighth,
        // NOTHING_PAYABLE, is evaluated only when none of 2, 3, 5, 6, 7 holds).
        let at = t("2026-09-01T00:00:00Z");
        let m = |s: &str| month(s);
        let closed = |mm: &str, status| IncentiveEvent::IncentiveMonthClosed {
            partner_id: P.into(),
            month: m(mm),
            currency: Currency::CNY,
            accrued: cny("1.00"),
            status,
            closed_at: at,
        };
        let base = scenario().at("2026-07-20T00:00:00Z", line_in("R1", "10.00", "2026-07")).events;
        let mut history = base.clone();
        history.extend([
            closed("2026-08", MonthStatus::Open),
            closed("2026-09", MonthStatus::Open),
            IncentiveEvent::IncentiveMonthApplied {
                partner_id: P.into(),
                month: m("2026-09"),
                currency: Currency::CNY,
                applied_at: at,
            },
            IncentiveEvent::QuarterlyPaymentRequested {
                partner_id: P.into(),
                payment_id: "QP0".into(),
                quarter: quarter("2026Q3"),
                currency: Currency::CNY,
                included_months: vec![],
                excluded_months: vec![],
                included_opportunities: vec![],
                carried_months: vec![],
                carried_deduction: cny("0"),
                payable: cny("0"),
                requested_at: at,
            },
        ]);
        let state = Incentives::replay(&history);
        let e = eligibility(&state, quarter("2026Q3"), Currency::CNY, at, &uncertified());
        assert_eq!(
            codes(&e),
            [
                CERTIFICATION_INCOMPLETE,
                ALREADY_REQUESTED,
                MONTH_NOT_CLOSED,
                MONTHS_STILL_APPLICABLE,
                REVIEW_PENDING,
                NO_APPROVED_INCENTIVE
            ]
        );
        history.push(IncentiveEvent::IncentiveMonthReviewed {
            partner_id: P.into(),
            month: m("2026-09"),
            currency: Currency::CNY,
            decision: ReviewDecision::Pass,
            comment: None,
            reviewed_at: at,
        });
        let state = Incentives::replay(&history);
        let e = eligibility(&state, quarter("2026Q3"), Currency::CNY, at, &uncertified());
        assert_eq!(
            codes(&e),
            [CERTIFICATION_INCOMPLETE, ALREADY_REQUESTED, MONTH_NOT_CLOSED, MONTHS_STILL_APPLICABLE, NOT_FINALIZED]
        );
        assert_eq!(e.blockers[4].months, vec![m("2026-09")]);
    }

    #[test]
    fn rejection_reopens_eligibility_and_returns_the_forfeited_months_to_open() {
        let s = july_finalized()
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-08"))
            .at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"));
        assert_eq!(codes(&eligibility_at(&s, "2026Q3", "2026-10-02T00:00:00Z")), [ALREADY_REQUESTED]);
        assert_eq!(s.state.month_status(month("2026-08"), Currency::CNY), MonthStatus::Forfeited);
        let reject_qp1 = IncentiveCommand::RejectPayment(RejectPayment {
            payment_id: "QP1".into(),
            reason: Some("bank details".into()),
        });
        let events =
            given::<Incentives>(s.events.clone()).at(t("2026-10-02T00:00:00Z")).when(reject_qp1.clone()).events();
        let IncentiveEvent::QuarterlyPaymentRejected { restored_months, .. } = &events[0] else { panic!() };
        assert_eq!(
            restored_months,
            &vec![RestoredMonth { month: month("2026-08"), currency: Currency::CNY, status: MonthStatus::Open }]
        );
        let s = s.at("2026-10-02T00:00:00Z", reject_qp1);
        assert_eq!(s.state.payment_view("QP1").unwrap().status, PaymentStatus::Rejected);
        // docs/DOMAIN.md §5: the forfeited month is back where it was, and may be applied for.
        assert_eq!(s.state.month_status(month("2026-08"), Currency::CNY), MonthStatus::Open);
        let july = s.state.month(month("2026-07"), Currency::CNY).unwrap();
        assert_eq!((july.status, july.payment_id.as_deref()), (MonthStatus::Finalized, None));
        let e = eligibility_at(&s, "2026Q3", "2026-10-03T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!((e.payable, e.excluded_months.clone()), (cny("50.00"), vec![month("2026-08")]));
        let applied = s.clone().at("2026-10-03T00:00:00Z", apply("2026-08"));
        assert_eq!(applied.state.month_status(month("2026-08"), Currency::CNY), MonthStatus::UnderReview);
        let s = s.at("2026-10-03T00:00:00Z", kit::request("QP2", "2026Q3"));
        assert_eq!(s.state.payment_view("QP2").unwrap().included_months[0].month, month("2026-07"));
        assert_eq!(s.state.month_status(month("2026-08"), Currency::CNY), MonthStatus::Forfeited);
    }

    #[test]
    fn a_version_1_rejection_restores_nothing() {
        // The rule of its time: a rejection stored before restoring existed left the
        // forfeited months forfeited, and replaying it must too.
        let s = july_finalized()
            .at("2026-08-20T00:00:00Z", line_in("R2", "10.00", "2026-08"))
            .at("2026-09-01T00:00:00Z", close("2026-08"))
            .at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"));
        let v1 = serde_json::json!({
            "partner_id": P, "payment_id": "QP1", "quarter": "2026Q3", "reason": null,
            "rejected_at": "2026-10-02T00:00:00Z",
        });
        let rejected: IncentiveEvent = crate::decode("QuarterlyPaymentRejected", 1, &v1.to_string()).unwrap();
        let state = Incentives::evolve(s.state, &rejected);
        assert_eq!(state.month_status(month("2026-08"), Currency::CNY), MonthStatus::Forfeited);
        assert_eq!(state.payment_view("QP1").unwrap().status, PaymentStatus::Rejected);
    }

    /// The issue's story at 5 %: May's 100.00 line (5.00) closes and is left `open`; a
    /// 60.00 refund settled in June claws 3.00 back there (May no longer accrues): June closes
    /// at −3.00 and is finalized so.
    fn negative_june() -> Scenario {
        scenario()
            .at("2026-05-20T00:00:00Z", line_in("R1", "100.00", "2026-05"))
            .at("2026-06-01T00:00:00Z", close("2026-05"))
            .at("2026-06-15T00:00:00Z", refund_cmd("F1", "R1", "60.00", "2026-06-12T00:00:00Z"))
            .finalized("2026-06", "2026-07-01T00:00:00Z")
    }

    #[test]
    fn a_payable_at_or_below_zero_is_nothing_payable_and_forfeits_nothing() {
        let s = negative_june();
        let june = s.state.month(month("2026-06"), Currency::CNY).unwrap();
        assert_eq!((june.status, june.final_amount), (MonthStatus::Finalized, Some(cny("-3.00"))));
        let e = eligibility_at(&s, "2026Q2", "2026-07-02T00:00:00Z");
        assert_eq!(e.blockers, vec![blocker(NOTHING_PAYABLE, &["2026-06"])]);
        assert_eq!((e.payable, e.excluded_months.clone()), (cny("-3.00"), vec![month("2026-05")]));
        given::<Incentives>(s.events.clone())
            .at(t("2026-07-02T00:00:00Z"))
            .when(kit::request("QP1", "2026Q2"))
            .then_error(NOTHING_PAYABLE);
        // Nothing forfeited: May may still be applied for, and then Q2 pays 5.00 − 3.00.
        let s = s
            .at("2026-07-03T00:00:00Z", apply("2026-05"))
            .at("2026-07-03T00:00:00Z", pass("2026-05"))
            .at("2026-07-03T00:00:00Z", finalize("2026-05"));
        let e = eligibility_at(&s, "2026Q2", "2026-07-04T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!(e.payable, cny("2.00"));
    }

    #[test]
    fn a_month_finalized_at_zero_alone_is_nothing_payable() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-08-01T00:00:00Z", apply("2026-07"))
            .at("2026-08-01T00:00:00Z", pass("2026-07"))
            .at(
                "2026-08-02T00:00:00Z",
                IncentiveCommand::FinalizeMonth(FinalizeMonth {
                    month: month("2026-07"),
                    currency: Currency::CNY,
                    amount: Some(cny("0")),
                    reason: Some("disputed".into()),
                }),
            );
        let e = eligibility_at(&s, "2026Q3", "2026-10-01T00:00:00Z");
        assert_eq!(codes(&e), [NOTHING_PAYABLE]);
        assert_eq!(e.payable, cny("0"));
    }

    /// [`negative_june`], then July 1000.00 (50.00) finalized.
    fn negative_june_then_july() -> Scenario {
        negative_june()
            .at("2026-07-20T00:00:00Z", line_in("R2", "1000.00", "2026-07"))
            .finalized("2026-07", "2026-08-01T00:00:00Z")
    }

    #[test]
    fn a_negative_quarter_is_carried_into_the_next_payment_which_settles_it() {
        let s = negative_june_then_july();
        let e = eligibility_at(&s, "2026Q3", "2026-10-01T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!(e.carried_months, vec![IncludedMonth { month: month("2026-06"), amount: cny("-3.00") }]);
        assert_eq!((e.carried_deduction, e.payable), (cny("3.00"), cny("47.00")));
        let s = s.at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"));
        let v = s.state.payment_view("QP1").unwrap();
        assert_eq!((v.carried_deduction, v.payable, v.carried_months.len()), (cny("3.00"), cny("47.00"), 1));
        // The carried month is held by the payment: no other request carries it again.
        assert_eq!(s.state.month(month("2026-06"), Currency::CNY).unwrap().payment_id.as_deref(), Some("QP1"));
        assert_eq!(eligibility_at(&s, "2026Q4", "2027-01-02T00:00:00Z").carried_deduction, cny("0"));
        let s = s
            .at("2026-10-02T00:00:00Z", approve_cmd("QP1"))
            .at("2026-10-03T00:00:00Z", invoice_cmd("QP1"))
            .at("2026-10-04T00:00:00Z", received_cmd("QP1"));
        let list = s.state.payment_view("QP1").unwrap().invoice_list.unwrap();
        assert_eq!(list.lines.iter().map(|l| l.amount.amount).sum::<Decimal>(), list.total.amount);
        assert_eq!(list.lines.last().unwrap().item, "carried deduction 2026-06");
        let s = s.at("2026-10-05T00:00:00Z", kit::pay("QP1", PaymentMethod::BankTransfer));
        for m in ["2026-06", "2026-07"] {
            let view = s.state.month_view(month(m), Currency::CNY).unwrap();
            assert_eq!((view.status, view.payment_id.as_deref()), (MonthStatus::Paid, Some("QP1")), "{m}");
        }
        // May is still open (never forfeited): Q2 may be requested once it is finalized.
        assert_eq!(s.state.month_status(month("2026-05"), Currency::CNY), MonthStatus::Open);
        // The payable account is back to 0: 50.00 − 3.00 owed, 47.00 paid.
        let all: Vec<_> = s.events.iter().flat_map(crate::incentives::postings).collect();
        assert!(is_balanced(&all));
        let owed: Decimal = all
            .iter()
            .filter(|p| p.account == "partner:P1:incentive_payable")
            .map(|p| if p.side == crate::Side::Debit { p.amount } else { -p.amount })
            .sum();
        assert_eq!(owed, Decimal::ZERO);
    }

    #[test]
    fn a_rejected_payment_lets_go_of_its_carried_months() {
        let s = negative_june_then_july().at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3")).at(
            "2026-10-02T00:00:00Z",
            IncentiveCommand::RejectPayment(RejectPayment { payment_id: "QP1".into(), reason: None }),
        );
        let june = s.state.month(month("2026-06"), Currency::CNY).unwrap();
        assert_eq!((june.status, june.payment_id.as_deref()), (MonthStatus::Finalized, None));
        let e = eligibility_at(&s, "2026Q3", "2026-10-03T00:00:00Z");
        assert_eq!((e.carried_deduction, e.payable), (cny("3.00"), cny("47.00")));
    }

    #[test]
    fn a_deduction_that_exceeds_the_quarter_is_nothing_payable_and_waits_for_the_next() {
        // Q3 earns 2.00 (40.00 at 5 %), less the 3.00 carried in: nothing payable; Q4's
        // 50.00 then carries June's −3.00 alone (Q3's own months add up to more than 0 and
        // are still requested on their own).
        let s = negative_june()
            .at("2026-07-20T00:00:00Z", line_in("R2", "40.00", "2026-07"))
            .finalized("2026-07", "2026-08-01T00:00:00Z");
        let e = eligibility_at(&s, "2026Q3", "2026-10-01T00:00:00Z");
        assert_eq!((codes(&e), e.payable), (vec![NOTHING_PAYABLE], cny("-1.00")));
        assert_eq!(e.blockers[0].months, vec![month("2026-06"), month("2026-07")]);
        let s = s
            .at("2026-10-20T00:00:00Z", line_in("R3", "1000.00", "2026-10"))
            .finalized("2026-10", "2026-11-01T00:00:00Z");
        let e = eligibility_at(&s, "2026Q4", "2027-01-02T00:00:00Z");
        assert_eq!((e.carried_deduction, e.payable), (cny("3.00"), cny("47.00")));
        let s = s.at("2027-01-02T00:00:00Z", kit::request("QP4", "2026Q4"));
        let e = eligibility_at(&s, "2026Q3", "2027-01-03T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!((e.carried_deduction, e.payable), (cny("0"), cny("2.00")));
    }

    #[test]
    fn a_payment_requested_before_the_rule_with_nothing_payable_is_never_paid() {
        // A v1 request could hold a payable ≤ 0; paying it is refused, rejecting it works.
        let s = negative_june();
        let v1 = serde_json::json!({
            "partner_id": P, "payment_id": "QP0", "quarter": "2026Q2", "currency": "CNY",
            "included_months": [{"month": "2026-06", "amount": {"amount": "-3.00", "currency": "CNY"}}],
            "excluded_months": ["2026-05"], "included_opportunities": [],
            "payable": {"amount": "-3.00", "currency": "CNY"}, "requested_at": "2026-07-02T00:00:00Z",
        });
        let mut events = s.events;
        events.push(crate::decode("QuarterlyPaymentRequested", 1, &v1.to_string()).unwrap());
        let s = Scenario { state: Incentives::replay(&events), events }
            .at("2026-07-03T00:00:00Z", approve_cmd("QP0"))
            .at("2026-07-03T00:00:00Z", invoice_cmd("QP0"))
            .at("2026-07-03T00:00:00Z", received_cmd("QP0"));
        for method in [PaymentMethod::BankTransfer, PaymentMethod::CloudAccountCredit] {
            given::<Incentives>(s.events.clone()).when(kit::pay("QP0", method)).then_error(NOTHING_PAYABLE);
        }
    }

    #[test]
    fn payment_ids_are_unique() {
        let s = requested_quarter_scenario();
        given::<Incentives>(s.events).when(kit::request("QP1", "2026Q4")).then_error("ALREADY_EXISTS");
        given::<Incentives>([]).when(kit::request("QP 1", "2026Q4")).then_error("INVALID_FIELD");
    }

    #[test]
    fn payments_are_per_currency() {
        let s = requested_quarter_scenario();
        let usd = IncentiveCommand::RequestQuarterlyPayment(RequestQuarterlyPayment {
            payment_id: "QP2".into(),
            quarter: quarter("2026Q3"),
            currency: Currency::USD,
            certification: certified(),
        });
        // Nothing in USD: not ALREADY_REQUESTED, but nothing approved either.
        given::<Incentives>(s.events).when(usd).then_error(NO_APPROVED_INCENTIVE);
    }

    fn with_opportunity_finalized_in_q3() -> Scenario {
        july_finalized()
            .at("2026-08-02T00:00:00Z", share_cmd("O1", "OFF1", true, Some("2026-08-20")))
            .at("2026-08-02T00:00:00Z", accept_cmd("O1"))
            .at("2026-09-01T00:00:00Z", apply_cmd("O1"))
            .at("2026-09-02T00:00:00Z", review_cmd("O1", ReviewDecision::Pass))
            .at("2026-09-03T00:00:00Z", finalize_cmd("O1", "300.00"))
    }

    #[test]
    fn opportunities_finalized_within_the_quarter_are_included() {
        let s = with_opportunity_finalized_in_q3();
        let e = eligibility_at(&s, "2026Q3", "2026-09-10T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!(
            e.included_opportunities,
            vec![IncludedOpportunity { opportunity_id: "O1".into(), amount: cny("300.00") }]
        );
        assert_eq!(e.payable, cny("350.00"));
        // Not in another quarter.
        assert!(eligibility_at(&s, "2026Q4", "2027-01-10T00:00:00Z").included_opportunities.is_empty());
    }

    #[test]
    fn an_opportunity_alone_counts_as_an_approved_incentive() {
        let s = accepted("O1", "OFF1")
            .at("2026-09-01T00:00:00Z", apply_cmd("O1"))
            .at("2026-09-02T00:00:00Z", review_cmd("O1", ReviewDecision::Pass))
            .at("2026-09-03T00:00:00Z", finalize_cmd("O1", "300.00"));
        let e = eligibility_at(&s, "2026Q3", "2026-09-10T00:00:00Z");
        assert!(e.eligible, "{e:?}");
        assert_eq!(e.payable, cny("300.00"));
    }

    fn approve_cmd(id: &str) -> IncentiveCommand {
        IncentiveCommand::ApprovePayment(ApprovePayment { payment_id: id.into() })
    }

    fn invoice_cmd(id: &str) -> IncentiveCommand {
        IncentiveCommand::IssueInvoiceList(IssueInvoiceList {
            payment_id: id.into(),
            mailing_address: "1 Vendor Road, Shenzhen".into(),
            mailbox: "invoices@vendor.example".into(),
        })
    }

    fn received_cmd(id: &str) -> IncentiveCommand {
        IncentiveCommand::ConfirmInvoiceReceived(ConfirmInvoiceReceived { payment_id: id.into() })
    }

    fn through_invoice_received() -> Scenario {
        with_opportunity_finalized_in_q3()
            .at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"))
            .at("2026-10-02T00:00:00Z", approve_cmd("QP1"))
            .at("2026-10-03T00:00:00Z", invoice_cmd("QP1"))
            .at("2026-10-04T00:00:00Z", received_cmd("QP1"))
    }

    #[test]
    fn the_invoice_list_lists_what_the_partner_must_invoice_with_the_vendor_address() {
        // Seed: "伙伴可以在开票通知邮件或开票清单页面查看到发票邮寄地址和公共邮箱".
        let s = through_invoice_received();
        let v = s.state.payment_view("QP1").unwrap();
        let list = v.invoice_list.unwrap();
        assert_eq!(list.total, cny("350.00"));
        assert_eq!(list.mailing_address, "1 Vendor Road, Shenzhen");
        assert_eq!(list.mailbox, "invoices@vendor.example");
        let items: Vec<_> = list.lines.iter().map(|l| (l.item.as_str(), l.amount)).collect();
        assert_eq!(items, [("monthly incentive 2026-07", cny("50.00")), ("opportunity incentive O1", cny("300.00"))]);
    }

    #[test]
    fn an_invoice_list_needs_an_address_and_a_mailbox() {
        let s = with_opportunity_finalized_in_q3()
            .at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"))
            .at("2026-10-02T00:00:00Z", approve_cmd("QP1"));
        for (address, mailbox) in [("", "a@b"), ("addr", "no-at-sign"), ("addr", " ")] {
            let cmd = IncentiveCommand::IssueInvoiceList(IssueInvoiceList {
                payment_id: "QP1".into(),
                mailing_address: address.into(),
                mailbox: mailbox.into(),
            });
            given::<Incentives>(s.events.clone()).when(cmd).then_error("INVALID_FIELD");
        }
    }

    #[test]
    fn paying_makes_the_months_and_opportunities_paid() {
        let s = through_invoice_received().at("2026-10-05T00:00:00Z", kit::pay("QP1", PaymentMethod::BankTransfer));
        let v = s.state.payment_view("QP1").unwrap();
        assert_eq!(
            (v.status, v.method, v.payable),
            (PaymentStatus::Paid, Some(PaymentMethod::BankTransfer), cny("350.00"))
        );
        assert_eq!(v.partner_id, P);
        assert_eq!(s.state.month_status(month("2026-07"), Currency::CNY), MonthStatus::Paid);
        assert_eq!(s.state.opportunities["O1"].status, OpportunityStatus::Paid);
        // Finalizations owed 350.00; the payment settled it: the payable account is back to 0.
        let all: Vec<_> = s.events.iter().flat_map(crate::incentives::postings).collect();
        assert!(is_balanced(&all));
        let payable: Decimal = all
            .iter()
            .filter(|p| p.account == "partner:P1:incentive_payable")
            .map(|p| if p.side == crate::Side::Debit { p.amount } else { -p.amount })
            .sum();
        assert_eq!(payable, Decimal::ZERO);
        assert_eq!(totals(&all)[&Currency::CNY], (dec("700.00"), dec("700.00")));
    }

    #[test]
    fn paying_to_the_cloud_account_asks_for_a_rebate_credit() {
        let s = through_invoice_received();
        let events = given::<Incentives>(s.events)
            .at(t("2026-10-05T00:00:00Z"))
            .when(kit::pay("QP1", PaymentMethod::CloudAccountCredit))
            .events();
        assert_eq!(crate::incentives::rebate_credit_for(&events[0]), Some(("QP1".to_string(), cny("350.00"))));
    }

    #[test]
    fn every_wrong_state_transition_is_invalid_state() {
        let requested = with_opportunity_finalized_in_q3().at("2026-10-01T00:00:00Z", kit::request("QP1", "2026Q3"));
        let reject_cmd = || IncentiveCommand::RejectPayment(RejectPayment { payment_id: "QP1".into(), reason: None });
        for cmd in [invoice_cmd("QP1"), received_cmd("QP1"), kit::pay("QP1", PaymentMethod::BankTransfer)] {
            given::<Incentives>(requested.events.clone()).when(cmd).then_error("INVALID_STATE");
        }
        let approved = requested.clone().at("2026-10-02T00:00:00Z", approve_cmd("QP1"));
        for cmd in [approve_cmd("QP1"), reject_cmd(), received_cmd("QP1"), kit::pay("QP1", PaymentMethod::BankTransfer)]
        {
            given::<Incentives>(approved.events.clone()).when(cmd).then_error("INVALID_STATE");
        }
        let issued = approved.at("2026-10-03T00:00:00Z", invoice_cmd("QP1"));
        for cmd in [invoice_cmd("QP1"), kit::pay("QP1", PaymentMethod::BankTransfer)] {
            given::<Incentives>(issued.events.clone()).when(cmd).then_error("INVALID_STATE");
        }
        let paid = through_invoice_received().at("2026-10-05T00:00:00Z", kit::pay("QP1", PaymentMethod::BankTransfer));
        for cmd in [kit::pay("QP1", PaymentMethod::BankTransfer), reject_cmd(), approve_cmd("QP1")] {
            given::<Incentives>(paid.events.clone()).when(cmd).then_error("INVALID_STATE");
        }
        let rejected = requested.at("2026-10-02T00:00:00Z", reject_cmd());
        given::<Incentives>(rejected.events).when(approve_cmd("QP1")).then_error("INVALID_STATE");
        given::<Incentives>([]).when(approve_cmd("QP9")).then_error("NOT_FOUND");
    }
}
