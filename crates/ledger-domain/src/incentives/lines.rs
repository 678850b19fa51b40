//! Consumption lines and refunds (docs/DOMAIN.md §2).
//!
//! - A line repeated with the same `record_id` and content is a no-op; with other content
//!   it is refused `DUPLICATE_RECORD_CONFLICT`.
//! - Month rollover: the line's incentive month is the month of `consumed_at` when
//!   `settled_at` falls before that month's cut-off (end of month in CST + grace days),
//!   else the month of `settled_at`. When that month no longer accrues the line is counted
//!   in the next month that does (ours, module doc).
//! - Line incentive = amount × rate at full precision; a product the policy does not list
//!   earns 0 and the line is kept with `PRODUCT_NOT_ELIGIBLE`.
//! - A refund (amount ≤ the unrefunded remainder, else `INSUFFICIENT_BALANCE`) claws back
//!   at the line's rate, in the original incentive month while it accrues, else as a
//!   negative line in the month of the refund's `settled_at`.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{Currency, Money, Month};
use rust_decimal::Decimal;

use super::command::*;
use super::{
    check_partner, external_amount, invalid, invalid_state, same_currency, stream_partner, ConsumptionLine,
    IncentiveEvent, IncentivesState, LineReason, MAX_DEFERRAL_MONTHS,
};
use crate::policy::cut_off;
use crate::DomainError;

/// The month the rollover rule names: the consumption month when the line settled before
/// its cut-off, else the month of `settled_at`.
pub fn rollover_month(consumed_at: DateTime<Utc>, settled_at: DateTime<Utc>, grace_days: u32) -> Month {
    let consumption_month = Month::of(consumed_at);
    if settled_at < cut_off(consumption_month, grace_days) {
        consumption_month
    } else {
        Month::of(settled_at)
    }
}

/// The first month from `month` on that still accepts lines, and whether it had to move.
fn counting_month(
    state: &IncentivesState,
    month: Month,
    currency: Currency,
) -> Result<(Month, Option<Month>), DomainError> {
    let mut candidate = month;
    for _ in 0..=MAX_DEFERRAL_MONTHS {
        if state.accepts_lines(candidate, currency) {
            return Ok((candidate, (candidate != month).then_some(month)));
        }
        candidate = candidate.next();
    }
    Err(invalid_state(format!("no month within {MAX_DEFERRAL_MONTHS} months after {month} accepts lines")))
}

pub(super) fn record(state: &IncentivesState, line: &RecordConsumption) -> Result<Vec<IncentiveEvent>, DomainError> {
    let policies = &line.policies;
    check_partner(state, &line.partner_id)?;
    validate_id("record_id", &line.record_id)?;
    validate_id("customer_id", &line.customer_id)?;
    validate_id("product", &line.product)?;
    external_amount(&line.amount)?;
    if line.settled_at < line.consumed_at {
        return Err(invalid("settled_at", "must not be before consumed_at"));
    }
    if let Some(policy) = policies.versions.values().next() {
        if policy.currency != line.amount.currency {
            return Err(invalid("policies", format!("the policy book is for {}", policy.currency)));
        }
    }
    if let Some(existing) = line.recorded.as_ref().filter(|l| l.record_id == line.record_id) {
        return if same_content(existing, line) {
            Ok(vec![])
        } else {
            Err(DomainError::DuplicateRecordConflict { record_id: line.record_id.clone() })
        };
    }

    let currency = line.amount.currency;
    let consumption_month = Month::of(line.consumed_at);
    let rule_month =
        rollover_month(line.consumed_at, line.settled_at, policies.settlement_grace_days(consumption_month));
    let (incentive_month, deferred_from) = counting_month(state, rule_month, currency)?;
    let rate = policies.policy_for(incentive_month).and_then(|p| p.rate(&line.product));
    let incentive = rate.map_or(Decimal::ZERO, |r| line.amount.amount * r.value());
    Ok(vec![IncentiveEvent::ConsumptionRecorded {
        partner_id: line.partner_id.clone(),
        record_id: line.record_id.clone(),
        customer_id: line.customer_id.clone(),
        association_type: line.association_type,
        product: line.product.clone(),
        amount: line.amount,
        consumed_at: line.consumed_at,
        settled_at: line.settled_at,
        consumption_month,
        incentive_month,
        deferred_from,
        rate,
        incentive,
        reason: rate.is_none().then_some(LineReason::ProductNotEligible),
    }])
}

/// The content a repeated record must match: what billing sent (the association is
/// resolved here, not sent).
fn same_content(existing: &super::ConsumptionLine, line: &RecordConsumption) -> bool {
    existing.customer_id == line.customer_id
        && existing.product == line.product
        && existing.amount == line.amount
        && existing.consumed_at == line.consumed_at
        && existing.settled_at == line.settled_at
}

/// The line a refund names, as the command brings it, with what the stream's refunds took
/// from it so far.
fn refunded_line(state: &IncentivesState, c: &RefundConsumption) -> Option<ConsumptionLine> {
    let line = c.line.as_ref().filter(|l| l.record_id == c.record_id)?;
    let refunded = state.refunds.values().filter(|r| r.record_id == c.record_id).map(|r| r.amount.amount).sum();
    Some(ConsumptionLine { refunded, ..line.clone() })
}

pub(super) fn refund(state: &IncentivesState, c: &RefundConsumption) -> Result<Vec<IncentiveEvent>, DomainError> {
    let RefundConsumption { refund_id, record_id, amount, settled_at, .. } = c.clone();
    validate_id("refund_id", &refund_id)?;
    validate_id("record_id", &record_id)?;
    external_amount(&amount)?;
    let partner_id = stream_partner(state)?;
    if let Some(existing) = state.refunds.get(&refund_id) {
        return if existing.record_id == record_id && existing.amount == amount && existing.settled_at == settled_at {
            Ok(vec![])
        } else {
            Err(DomainError::DuplicateRecordConflict { record_id: refund_id })
        };
    }
    let line = &refunded_line(state, c)
        .ok_or_else(|| DomainError::NotFound { what: "consumption record", id: record_id.clone() })?;
    same_currency(line.amount.currency, amount.currency)?;
    if settled_at < line.consumed_at {
        return Err(invalid("settled_at", "a refund cannot settle before the consumption"));
    }
    if amount.amount > line.unrefunded() {
        return Err(DomainError::InsufficientBalance {
            requested: amount.to_string(),
            available: Money::new(line.unrefunded(), amount.currency).to_string(),
        });
    }
    let currency = amount.currency;
    let incentive_month = if state.accepts_lines(line.incentive_month, currency) {
        line.incentive_month
    } else {
        counting_month(state, Month::of(settled_at), currency)?.0
    };
    let incentive = line.rate.map_or(Decimal::ZERO, |r| -(amount.amount * r.value()));
    Ok(vec![IncentiveEvent::ConsumptionRefunded {
        partner_id: partner_id.to_string(),
        refund_id,
        record_id,
        amount,
        settled_at,
        original_incentive_month: line.incentive_month,
        incentive_month,
        rate: line.rate,
        incentive,
    }])
}

#[cfg(test)]
mod tests {
    use super::rollover_month;
    use crate::decider::harness::given;
    use crate::incentives::command::*;
    use crate::incentives::testkit::*;
    use crate::incentives::{ConsumptionLine, IncentiveEvent, LineReason, RolloverLine, RolloverReport};
    use crate::incentives::{IncentiveCommand, Incentives, MonthStatus};
    use crate::Decider;
    use ledger_core::Currency;
    use rust_decimal::Decimal;

    #[test]
    fn a_line_earns_amount_times_rate_at_full_precision() {
        let events = given::<Incentives>([])
            .at(t("2026-07-20T00:00:00Z"))
            .when(record("R1", "123.45", "ecs", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"))
            .events();
        let IncentiveEvent::ConsumptionRecorded { incentive, rate, reason, incentive_month, deferred_from, .. } =
            &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*incentive, dec("6.1725"), "0.05 × 123.45, not rounded");
        assert_eq!(*rate, Some(rate_of("0.05")));
        assert_eq!((*reason, *incentive_month, *deferred_from), (None, month("2026-07"), None));
    }

    #[test]
    fn a_product_the_policy_does_not_list_earns_nothing_and_the_line_is_kept() {
        let events = given::<Incentives>([])
            .when(record("R1", "100.00", "unlisted", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"))
            .events();
        let IncentiveEvent::ConsumptionRecorded { incentive, rate, reason, .. } = &events[0] else { panic!() };
        assert_eq!((*incentive, *rate, *reason), (Decimal::ZERO, None, Some(LineReason::ProductNotEligible)));
        let state = Incentives::replay(&events);
        assert_eq!(state.month(month("2026-07"), Currency::CNY).unwrap().entries, 1);
    }

    #[test]
    fn the_rate_comes_from_the_policy_of_the_incentive_month() {
        // Rates change in August; a July line rolling over into August earns August's rate.
        let book = book_with(&[("2026-01", &[("ecs", "0.05")], 0), ("2026-08", &[("ecs", "0.08")], 0)]);
        let events = given::<Incentives>([])
            .when(record_in(&book, "R1", "100.00", "ecs", "2026-07-31T10:00:00Z", "2026-08-02T10:00:00Z"))
            .events();
        let IncentiveEvent::ConsumptionRecorded { incentive, incentive_month, consumption_month, .. } = &events[0]
        else {
            panic!()
        };
        assert_eq!((*consumption_month, *incentive_month), (month("2026-07"), month("2026-08")));
        assert_eq!(*incentive, dec("8.00"));
    }

    #[test]
    fn a_repeated_record_with_the_same_content_is_a_no_op() {
        let history = scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00")).events;
        given::<Incentives>(history.clone()).when(looked_up(&history, line("R1", "100.00"))).then([]);
        // The state keeps no lines: the repeat is known by the line the command brings.
        assert_eq!(given::<Incentives>(history).when(line("R1", "100.00")).events().len(), 1);
    }

    #[test]
    fn a_repeated_record_with_other_content_is_a_conflict() {
        let history = scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00")).events;
        given::<Incentives>(history.clone())
            .when(looked_up(&history, line("R1", "100.01")))
            .then_error("DUPLICATE_RECORD_CONFLICT");
        given::<Incentives>(history.clone())
            .when(looked_up(&history, record("R1", "100.00", "ecs", "2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z")))
            .then_error("DUPLICATE_RECORD_CONFLICT");
    }

    #[test]
    fn bad_lines_are_refused() {
        given::<Incentives>([]).when(line("R1", "0")).then_error("INVALID_AMOUNT");
        given::<Incentives>([]).when(line("R1", "1.001")).then_error("INVALID_AMOUNT");
        given::<Incentives>([]).when(line("R 1", "1.00")).then_error("INVALID_FIELD");
        given::<Incentives>([])
            .when(record("R1", "1.00", "ecs", "2026-07-10T02:00:00Z", "2026-07-09T02:00:00Z"))
            .then_error("INVALID_FIELD");
        let mut usd = line("R1", "1.00");
        if let IncentiveCommand::RecordConsumption(RecordConsumption { amount, .. }) = &mut usd {
            amount.currency = Currency::USD;
        }
        given::<Incentives>([]).when(usd).then_error("INVALID_FIELD");
        let history = scenario().at("2026-07-20T00:00:00Z", line("R1", "1.00")).events;
        let mut other_partner = line("R2", "1.00");
        if let IncentiveCommand::RecordConsumption(RecordConsumption { partner_id, .. }) = &mut other_partner {
            *partner_id = "P2".into();
        }
        given::<Incentives>(history).when(other_partner).then_error("INVALID_FIELD");
    }

    /// Seed: "part of this month's consumption counts into next month's incentive".
    #[test]
    fn rollover_with_no_grace_days_turns_at_midnight_cst() {
        // 23:59 CST on July 31 is 15:59 UTC: still July.
        assert_eq!(rollover_month(t("2026-07-31T10:00:00Z"), t("2026-07-31T15:59:59Z"), 0), month("2026-07"));
        // 00:00:30 CST on August 1 is 16:00:30 UTC on July 31: August.
        assert_eq!(rollover_month(t("2026-07-31T10:00:00Z"), t("2026-07-31T16:00:30Z"), 0), month("2026-08"));

        let events = given::<Incentives>([])
            .when(record("R1", "100.00", "ecs", "2026-07-31T10:00:00Z", "2026-07-31T16:00:30Z"))
            .events();
        let state = Incentives::replay(&events);
        let line = ConsumptionLine::recorded(&events[0]).unwrap();
        assert!(line.is_rollover());
        assert_eq!((line.consumption_month, line.incentive_month), (month("2026-07"), month("2026-08")));
        assert_eq!(state.month_view(month("2026-08"), Currency::CNY).unwrap().rollover_in, cny("5.00"));
        assert_eq!(state.month_view(month("2026-07"), Currency::CNY).unwrap().rollover_out, cny("5.00"));
        let report = |m: &str| RolloverReport::of(month(m), Currency::CNY, [RolloverLine::of(&line)]);
        assert_eq!(report("2026-08").counted_here_from_earlier.len(), 1);
        assert!(report("2026-08").counted_later.is_empty());
        assert_eq!(report("2026-07").counted_later[0].record_id, "R1");
    }

    #[test]
    fn rollover_with_grace_days_keeps_early_settlements_in_the_consumption_month() {
        // 3 grace days: the cut-off of July is 2026-08-04 00:00 CST (08-03 16:00 UTC).
        assert_eq!(rollover_month(t("2026-07-31T10:00:00Z"), t("2026-07-31T16:00:30Z"), 3), month("2026-07"));
        assert_eq!(rollover_month(t("2026-07-31T10:00:00Z"), t("2026-08-03T15:59:59Z"), 3), month("2026-07"));
        assert_eq!(rollover_month(t("2026-07-31T10:00:00Z"), t("2026-08-03T16:00:00Z"), 3), month("2026-08"));

        let book = book_with(&[("2026-01", &[("ecs", "0.05")], 3)]);
        let events = given::<Incentives>([])
            .when(record_in(&book, "R1", "100.00", "ecs", "2026-07-31T10:00:00Z", "2026-07-31T16:00:30Z"))
            .events();
        assert!(
            matches!(&events[0], IncentiveEvent::ConsumptionRecorded { incentive_month, .. } if *incentive_month == month("2026-07"))
        );
    }

    #[test]
    fn a_line_whose_month_is_closed_is_counted_in_the_next_accruing_month() {
        let s =
            scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00")).at("2026-08-01T00:00:00Z", close("2026-07"));
        let events = given::<Incentives>(s.events)
            .at(t("2026-08-05T00:00:00Z"))
            .when(record("R2", "10.00", "ecs", "2026-07-15T00:00:00Z", "2026-07-16T00:00:00Z"))
            .events();
        let IncentiveEvent::ConsumptionRecorded { consumption_month, incentive_month, deferred_from, .. } = &events[0]
        else {
            panic!()
        };
        assert_eq!(
            (*consumption_month, *incentive_month, *deferred_from),
            (month("2026-07"), month("2026-08"), Some(month("2026-07")))
        );
    }

    #[test]
    fn a_line_for_a_quarter_with_a_live_payment_moves_past_that_quarter() {
        let s = requested_quarter_scenario();
        // September was never touched and is still accruing, but Q3 has a live payment.
        let events = given::<Incentives>(s.events)
            .when(record("R9", "10.00", "ecs", "2026-09-10T00:00:00Z", "2026-09-11T00:00:00Z"))
            .events();
        assert!(matches!(&events[0],
            IncentiveEvent::ConsumptionRecorded { incentive_month, deferred_from: Some(from), .. }
                if *incentive_month == month("2026-10") && *from == month("2026-09")));
    }

    #[test]
    fn three_lines_of_half_a_cent_round_once_to_two_cents() {
        // 0.10 × 0.05 = 0.005 each; rounding each line would give 0.01 × 3 (or 0.00 × 3 with
        // banker's rounding); rounding the month once gives round(0.015) = 0.02.
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "0.10"))
            .at("2026-07-20T00:00:00Z", line("R2", "0.10"))
            .at("2026-07-20T00:00:00Z", line("R3", "0.10"));
        let m = s.state.month(month("2026-07"), Currency::CNY).unwrap();
        assert_eq!(m.incentive_sum, dec("0.015"));
        assert_eq!(m.accrued(), cny("0.02"));
        let closed = given::<Incentives>(s.events).at(t("2026-08-01T00:00:00Z")).when(close("2026-07")).events();
        assert!(matches!(&closed[0], IncentiveEvent::IncentiveMonthClosed { accrued, .. } if *accrued == cny("0.02")));
    }

    #[test]
    fn a_refund_in_an_accruing_month_claws_back_there() {
        let s = scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00"));
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F1", "R1", "40.00", "2026-07-25T00:00:00Z")))
            .then([IncentiveEvent::ConsumptionRefunded {
                partner_id: P.into(),
                refund_id: "F1".into(),
                record_id: "R1".into(),
                amount: cny("40.00"),
                settled_at: t("2026-07-25T00:00:00Z"),
                original_incentive_month: month("2026-07"),
                incentive_month: month("2026-07"),
                rate: Some(rate_of("0.05")),
                incentive: dec("-2.00"),
            }]);
    }

    #[test]
    fn a_refund_after_the_month_closed_is_a_negative_line_in_the_month_of_its_settlement() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .at("2026-08-01T00:00:00Z", close("2026-07"))
            .at("2026-09-02T00:00:00Z", refund_cmd("F1", "R1", "40.00", "2026-09-01T00:00:00Z"));
        let july = s.state.month(month("2026-07"), Currency::CNY).unwrap();
        assert_eq!((july.status, july.accrued()), (MonthStatus::Open, cny("5.00")));
        let sept = s.state.month(month("2026-09"), Currency::CNY).unwrap();
        assert_eq!((sept.accrued(), sept.entries), (cny("-2.00"), 1));
        assert_eq!(s.state.refunds["F1"].incentive_month, month("2026-09"));
    }

    #[test]
    fn closing_a_month_keeps_its_count_and_sum() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .at("2026-08-01T00:00:00Z", record("R2", "10.00", "ecs", "2026-07-31T10:00:00Z", "2026-07-31T16:00:30Z"))
            .at("2026-08-01T00:00:00Z", close("2026-07"));
        let july = s.state.month(month("2026-07"), Currency::CNY).unwrap();
        assert_eq!((july.accrued(), july.entries), (cny("5.00"), 1), "the month keeps its count");
    }

    /// Issue 11: a refund of a line whose month was settled long ago (the line cut from the
    /// state) still claws back at the line's rate, never above what is left of it.
    #[test]
    fn a_refund_of_a_line_settled_long_ago_claws_back_at_its_rate_within_its_remainder() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .finalized("2026-07", "2026-08-01T00:00:00Z")
            .at("2026-10-05T00:00:00Z", request("QP1", "2026Q3"))
            .at("2027-03-02T00:00:00Z", refund_cmd("F1", "R1", "60.00", "2027-03-01T00:00:00Z"));
        let IncentiveEvent::ConsumptionRefunded { rate, incentive, original_incentive_month, incentive_month, .. } =
            s.events.last().unwrap()
        else {
            panic!()
        };
        assert_eq!((*rate, *incentive), (Some(rate_of("0.05")), dec("-3.00")), "the line's rate");
        assert_eq!((*original_incentive_month, *incentive_month), (month("2026-07"), month("2027-03")));
        let later = t("2027-03-04T00:00:00Z");
        // 40.00 is left of the line: more is refused, what is left is not.
        let refund = |amount: &str| looked_up(&s.events, refund_cmd("F2", "R1", amount, "2027-03-03T00:00:00Z"));
        given::<Incentives>(s.events.clone()).at(later).when(refund("40.01")).then_error("INSUFFICIENT_BALANCE");
        assert_eq!(given::<Incentives>(s.events.clone()).at(later).when(refund("40.00")).events().len(), 1);
        // Without the line, or with another record's line, there is nothing to refund.
        given::<Incentives>(s.events.clone())
            .at(later)
            .when(refund_cmd("F2", "R1", "1.00", "2027-03-03T00:00:00Z"))
            .then_error("NOT_FOUND");
        let mut other = refund("1.00");
        if let IncentiveCommand::RefundConsumption(RefundConsumption { line: Some(l), .. }) = &mut other {
            l.record_id = "R9".into();
        }
        given::<Incentives>(s.events).at(later).when(other).then_error("NOT_FOUND");
    }

    #[test]
    fn a_refund_never_exceeds_what_is_left_unrefunded() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .at("2026-07-21T00:00:00Z", refund_cmd("F1", "R1", "60.00", "2026-07-21T00:00:00Z"));
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F2", "R1", "40.01", "2026-07-22T00:00:00Z")))
            .then_error("INSUFFICIENT_BALANCE");
        let events = given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F2", "R1", "40.00", "2026-07-22T00:00:00Z")))
            .events();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn refund_ids_are_unique() {
        let s = scenario()
            .at("2026-07-20T00:00:00Z", line("R1", "100.00"))
            .at("2026-07-21T00:00:00Z", refund_cmd("F1", "R1", "10.00", "2026-07-21T00:00:00Z"));
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F1", "R1", "10.00", "2026-07-21T00:00:00Z")))
            .then([]);
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F1", "R1", "11.00", "2026-07-21T00:00:00Z")))
            .then_error("DUPLICATE_RECORD_CONFLICT");
    }

    #[test]
    fn bad_refunds_are_refused() {
        let s = scenario().at("2026-07-20T00:00:00Z", line("R1", "100.00"));
        given::<Incentives>([]).when(refund_cmd("F1", "R1", "1.00", "2026-07-21T00:00:00Z")).then_error("NOT_FOUND");
        given::<Incentives>(s.events.clone())
            .when(refund_cmd("F1", "R2", "1.00", "2026-07-21T00:00:00Z"))
            .then_error("NOT_FOUND");
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F1", "R1", "0", "2026-07-21T00:00:00Z")))
            .then_error("INVALID_AMOUNT");
        given::<Incentives>(s.events.clone())
            .when(looked_up(&s.events, refund_cmd("F1", "R1", "1.00", "2026-07-01T00:00:00Z")))
            .then_error("INVALID_FIELD");
        let mut usd = refund_cmd("F1", "R1", "1.00", "2026-07-21T00:00:00Z");
        if let IncentiveCommand::RefundConsumption(RefundConsumption { amount, .. }) = &mut usd {
            amount.currency = Currency::USD;
        }
        given::<Incentives>(s.events.clone()).when(looked_up(&s.events, usd)).then_error("CURRENCY_MISMATCH");
    }
}
