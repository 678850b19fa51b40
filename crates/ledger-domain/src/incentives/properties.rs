//! Property tests: random sequences of consumption, refunds, month and opportunity steps
//! and quarterly payments, at a clock that only moves forward. Whatever the sequence:
//! no line is refunded beyond its amount, a month's total is the once-rounded sum of what
//! is counted in it and never moves after the close, postings balance and the payable
//! account equals what is finalized and not yet paid, an offering backs one application at
//! a time, a quarter has one live payment, and replaying the events gives the same state.
//! With refunds leaving months below zero: no payment ≤ 0 is ever requested, each payment's
//! payable is its months and opportunities less its carried deduction, no month is settled
//! twice, and the sum of all payments equals the sum of the finalized months (and
//! opportunities) they settled, less the deductions carried.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use ledger_core::{round_money, Currency, Money, Month, Quarter};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::command::*;
use super::testkit::{book, looked_up, t, P};
use super::{
    incentive_payable, postings, ConsumptionLine, IncentiveCommand, IncentiveEvent, Incentives, IncentivesState,
    LineAssociation, MonthStatus, OpportunityStatus, PaymentMethod, ReviewDecision,
};
use crate::postings::{is_balanced, Side};
use crate::{Decider, DomainError};

const MONTHS: [&str; 6] = ["2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"];
const QUARTERS: [&str; 2] = ["2026Q3", "2026Q4"];
const PRODUCTS: [&str; 3] = ["ecs", "obs", "unlisted"];

#[derive(Debug, Clone)]
enum Op {
    Advance {
        hours: i64,
    },
    Record {
        rec: u8,
        cents: i64,
        product: usize,
        back_hours: i64,
        settle_hours: i64,
    },
    Refund {
        refund: u8,
        rec: u8,
        cents: i64,
        settle_hours: i64,
    },
    /// A refund of all that is left of a line, settled now: once the line's month is closed,
    /// its whole incentive is clawed back in the month that accrues (negative months).
    RefundRest {
        refund: u8,
        rec: u8,
    },
    Close {
        month: usize,
        grace: u32,
    },
    Apply {
        month: usize,
        certified: bool,
    },
    Review {
        month: usize,
        pass: bool,
    },
    Finalize {
        month: usize,
        cents: Option<i64>,
    },
    Share {
        opp: u8,
        offering: u8,
        core_tag: bool,
        delivered: Option<i64>,
    },
    Deliver {
        opp: u8,
        days_ago: i64,
    },
    Accept {
        opp: u8,
    },
    ApplyOpportunity {
        opp: u8,
    },
    ReviewOpportunity {
        opp: u8,
        pass: bool,
    },
    FinalizeOpportunity {
        opp: u8,
        cents: i64,
    },
    Request {
        payment: u8,
        quarter: usize,
        certified: bool,
    },
    Approve {
        payment: u8,
    },
    Reject {
        payment: u8,
    },
    IssueInvoiceList {
        payment: u8,
    },
    InvoiceReceived {
        payment: u8,
    },
    Pay {
        payment: u8,
        cloud: bool,
    },
    /// Close, apply, pass and finalize one month, each step as its own command (any may be
    /// refused): keeps whole quarters reachable in a random walk.
    WalkMonth {
        month: usize,
    },
    /// Approve, issue the invoice list, receive the invoice and pay, likewise.
    WalkPayment {
        payment: u8,
        cloud: bool,
    },
    /// The year is over (a no-op before the last quarter has begun): the clock moves into
    /// 2027 (if not there yet), every month is walked,
    /// and the last quarter is requested and its payment walked, so a negative third quarter
    /// left unpaid can be carried into it.
    YearEnd {
        payment: u8,
        cloud: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..=24 * 20).prop_map(|hours| Op::Advance { hours }),
        2 => (0usize..6).prop_map(|month| Op::WalkMonth { month }),
        1 => (0u8..3, any::<bool>()).prop_map(|(payment, cloud)| Op::WalkPayment { payment, cloud }),
        1 => (0u8..3, any::<bool>()).prop_map(|(payment, cloud)| Op::YearEnd { payment, cloud }),
        5 => (0u8..8, 1i64..200_000, 0usize..3, 0i64..24 * 40, 0i64..24 * 8).prop_map(
            |(rec, cents, product, back_hours, settle_hours)| Op::Record { rec, cents, product, back_hours, settle_hours }
        ),
        3 => (0u8..6, 0u8..8, 1i64..150_000, 0i64..24 * 3)
            .prop_map(|(refund, rec, cents, settle_hours)| Op::Refund { refund, rec, cents, settle_hours }),
        2 => (6u8..12, 0u8..8).prop_map(|(refund, rec)| Op::RefundRest { refund, rec }),
        2 => (0usize..6, 0u32..3).prop_map(|(month, grace)| Op::Close { month, grace }),
        2 => (0usize..6, proptest::bool::weighted(0.9)).prop_map(|(month, certified)| Op::Apply { month, certified }),
        2 => (0usize..6, proptest::bool::weighted(0.7)).prop_map(|(month, pass)| Op::Review { month, pass }),
        2 => (0usize..6, proptest::option::weighted(0.3, prop_oneof![Just(0i64), 1i64..100_000])).prop_map(|(month, cents)| Op::Finalize { month, cents }),
        1 => (0u8..3, 0u8..2, proptest::bool::weighted(0.8), proptest::option::of(0i64..20))
            .prop_map(|(opp, offering, core_tag, delivered)| Op::Share { opp, offering, core_tag, delivered }),
        1 => (0u8..3, 0i64..5).prop_map(|(opp, days_ago)| Op::Deliver { opp, days_ago }),
        1 => (0u8..3).prop_map(|opp| Op::Accept { opp }),
        1 => (0u8..3).prop_map(|opp| Op::ApplyOpportunity { opp }),
        1 => (0u8..3, proptest::bool::weighted(0.7)).prop_map(|(opp, pass)| Op::ReviewOpportunity { opp, pass }),
        1 => (0u8..3, 1i64..100_000).prop_map(|(opp, cents)| Op::FinalizeOpportunity { opp, cents }),
        2 => (0u8..3, 0usize..2, proptest::bool::weighted(0.9))
            .prop_map(|(payment, quarter, certified)| Op::Request { payment, quarter, certified }),
        1 => (0u8..3).prop_map(|payment| Op::Approve { payment }),
        1 => (0u8..3).prop_map(|payment| Op::Reject { payment }),
        1 => (0u8..3).prop_map(|payment| Op::IssueInvoiceList { payment }),
        1 => (0u8..3).prop_map(|payment| Op::InvoiceReceived { payment }),
        1 => (0u8..3, any::<bool>()).prop_map(|(payment, cloud)| Op::Pay { payment, cloud }),
    ]
}

fn cny(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::CNY)
}

fn month(i: usize) -> Month {
    MONTHS[i].parse().unwrap()
}

fn gate(certified: bool) -> Result<(), DomainError> {
    if certified {
        Ok(())
    } else {
        Err(DomainError::CertificationIncomplete { missing: "real_name".into() })
    }
}

fn date_before(now: DateTime<Utc>, days: i64) -> NaiveDate {
    ledger_core::business_date(now) - Duration::days(days)
}

fn commands(op: &Op, now: DateTime<Utc>, state: &IncentivesState, events: &[IncentiveEvent]) -> Vec<IncentiveCommand> {
    match op {
        Op::RefundRest { refund, rec } => {
            let Some(line) = recorded(events).find(|l| l.record_id == format!("R{rec}")) else { return vec![] };
            let refunded: Decimal =
                state.refunds.values().filter(|r| r.record_id == line.record_id).map(|r| r.amount.amount).sum();
            vec![IncentiveCommand::RefundConsumption(RefundConsumption {
                refund_id: format!("F{refund}"),
                record_id: line.record_id.clone(),
                amount: Money::new(line.amount.amount - refunded, line.amount.currency),
                settled_at: now,
                line: None,
            })]
        }
        Op::Advance { .. } => vec![],
        Op::WalkMonth { month } => [
            Op::Close { month: *month, grace: 0 },
            Op::Apply { month: *month, certified: true },
            Op::Review { month: *month, pass: true },
            Op::Finalize { month: *month, cents: None },
        ]
        .iter()
        .filter_map(|o| command(o, now))
        .collect(),
        Op::WalkPayment { payment, cloud } => [
            Op::Approve { payment: *payment },
            Op::IssueInvoiceList { payment: *payment },
            Op::InvoiceReceived { payment: *payment },
            Op::Pay { payment: *payment, cloud: *cloud },
        ]
        .iter()
        .filter_map(|o| command(o, now))
        .collect(),
        Op::YearEnd { payment, cloud } => std::iter::once(IncentiveCommand::RecordConsumption(RecordConsumption {
            // December's business, billed late (counted in December while it accrues).
            partner_id: P.into(),
            record_id: format!("YE{payment}"),
            customer_id: "C1".into(),
            association_type: LineAssociation::Referral,
            product: "ecs".into(),
            amount: cny(100_000),
            consumed_at: t("2026-12-10T02:00:00Z"),
            settled_at: t("2026-12-11T02:00:00Z"),
            policies: std::sync::Arc::new(book()),
            recorded: None,
        }))
        .chain((0..MONTHS.len()).flat_map(|month| commands(&Op::WalkMonth { month }, now, state, events)))
        .chain(command(&Op::Request { payment: *payment, quarter: 1, certified: true }, now))
        .chain(commands(&Op::WalkPayment { payment: *payment, cloud: *cloud }, now, state, events))
        .collect(),
        single => command(single, now).into_iter().collect(),
    }
}

fn command(op: &Op, now: DateTime<Utc>) -> Option<IncentiveCommand> {
    use IncentiveCommand as C;
    let pid = |p: &u8| format!("QP{p}");
    let oid = |o: &u8| format!("O{o}");
    Some(match op {
        Op::Advance { .. }
        | Op::WalkMonth { .. }
        | Op::WalkPayment { .. }
        | Op::YearEnd { .. }
        | Op::RefundRest { .. } => return None,
        Op::Record { rec, cents, product, back_hours, settle_hours } => {
            let consumed_at = now - Duration::hours(*back_hours);
            // Settled by now at the latest: a fact is not from the future (INVALID_TIME).
            let settle_hours = settle_hours.min(back_hours);
            C::RecordConsumption(RecordConsumption {
                partner_id: P.into(),
                record_id: format!("R{rec}"),
                customer_id: "C1".into(),
                association_type: LineAssociation::Referral,
                product: PRODUCTS[*product].into(),
                amount: cny(*cents),
                consumed_at,
                settled_at: consumed_at + Duration::hours(*settle_hours),
                policies: std::sync::Arc::new(book()),
                recorded: None,
            })
        }
        Op::Refund { refund, rec, cents, settle_hours } => C::RefundConsumption(RefundConsumption {
            refund_id: format!("F{refund}"),
            record_id: format!("R{rec}"),
            amount: cny(*cents),
            settled_at: now - Duration::hours(*settle_hours),
            line: None,
        }),
        Op::Close { month: m, grace } => C::CloseMonth(CloseMonth {
            partner_id: P.into(),
            month: month(*m),
            currency: Currency::CNY,
            settlement_grace_days: *grace,
        }),
        Op::Apply { month: m, certified } => C::ApplyForMonth(ApplyForMonth {
            month: month(*m),
            currency: Currency::CNY,
            certification: gate(*certified),
        }),
        Op::Review { month: m, pass } => C::ReviewMonth(ReviewMonth {
            month: month(*m),
            currency: Currency::CNY,
            decision: if *pass { ReviewDecision::Pass } else { ReviewDecision::Reject },
            comment: None,
        }),
        Op::Finalize { month: m, cents } => C::FinalizeMonth(FinalizeMonth {
            month: month(*m),
            currency: Currency::CNY,
            amount: cents.map(cny),
            reason: Some("operator adjustment".into()),
        }),
        Op::Share { opp, offering, core_tag, delivered } => C::ShareOpportunity(ShareOpportunity {
            partner_id: P.into(),
            opportunity_id: oid(opp),
            offering: format!("OFF{offering}"),
            core_tag: *core_tag,
            delivery_end_date: delivered.map(|d| date_before(now, d)),
        }),
        Op::Deliver { opp, days_ago } => C::MarkOpportunityDelivered(MarkOpportunityDelivered {
            opportunity_id: oid(opp),
            delivery_end_date: date_before(now, *days_ago),
        }),
        Op::Accept { opp } => C::AcceptOpportunity(AcceptOpportunity { opportunity_id: oid(opp) }),
        Op::ApplyOpportunity { opp } => {
            C::ApplyForOpportunity(ApplyForOpportunity { opportunity_id: oid(opp), certification: Ok(()) })
        }
        Op::ReviewOpportunity { opp, pass } => C::ReviewOpportunity(ReviewOpportunity {
            opportunity_id: oid(opp),
            decision: if *pass { ReviewDecision::Pass } else { ReviewDecision::Reject },
            comment: None,
        }),
        Op::FinalizeOpportunity { opp, cents } => {
            C::FinalizeOpportunity(FinalizeOpportunity { opportunity_id: oid(opp), amount: cny(*cents), reason: None })
        }
        Op::Request { payment, quarter, certified } => C::RequestQuarterlyPayment(RequestQuarterlyPayment {
            payment_id: pid(payment),
            quarter: QUARTERS[*quarter].parse().unwrap(),
            currency: Currency::CNY,
            certification: gate(*certified),
        }),
        Op::Approve { payment } => C::ApprovePayment(ApprovePayment { payment_id: pid(payment) }),
        Op::Reject { payment } => C::RejectPayment(RejectPayment { payment_id: pid(payment), reason: None }),
        Op::IssueInvoiceList { payment } => C::IssueInvoiceList(IssueInvoiceList {
            payment_id: pid(payment),
            mailing_address: "1 Vendor Road".into(),
            mailbox: "invoices@vendor.example".into(),
        }),
        Op::InvoiceReceived { payment } => {
            C::ConfirmInvoiceReceived(ConfirmInvoiceReceived { payment_id: pid(payment) })
        }
        Op::Pay { payment, cloud } => C::PayQuarterlyPayment(PayQuarterlyPayment {
            payment_id: pid(payment),
            method: if *cloud { PaymentMethod::CloudAccountCredit } else { PaymentMethod::BankTransfer },
        }),
    })
}

/// Runs the ops; returns the events and the state folded one event at a time.
fn run(ops: &[Op]) -> (Vec<IncentiveEvent>, IncentivesState) {
    run_noting(ops, &mut Default::default())
}

/// [`run`], noting the codes of the refusals in `refused`.
fn run_noting(ops: &[Op], refused: &mut std::collections::BTreeSet<String>) -> (Vec<IncentiveEvent>, IncentivesState) {
    let mut now = t("2026-07-01T00:00:00Z");
    let mut state = IncentivesState::default();
    let mut events = Vec::new();
    for op in ops {
        if let Op::Advance { hours } = op {
            now += Duration::hours(*hours);
            continue;
        }
        if let Op::YearEnd { .. } = op {
            // Only once the last quarter has begun: earlier, the walk is not at its end yet.
            if now < t("2026-09-30T16:00:00Z") {
                continue;
            }
            now = now.max(t("2027-01-02T00:00:00Z"));
        }
        for cmd in commands(op, now, &state, &events) {
            // As the application does: a line, or a refund, brings the line kept under its
            // record id (the state keeps none).
            let cmd = looked_up(&events, cmd);
            match Incentives::decide(&state, cmd, now) {
                Ok(new) => {
                    for e in &new {
                        state = Incentives::evolve(state, e);
                    }
                    events.extend(new);
                }
                Err(e) => {
                    refused.insert(e.code().to_string());
                }
            }
            check_invariants(&events, &state);
        }
    }
    (events, state)
}

/// Every line the history recorded (the state keeps only those of months not closed).
fn recorded(events: &[IncentiveEvent]) -> impl Iterator<Item = ConsumptionLine> + '_ {
    events.iter().filter_map(ConsumptionLine::recorded)
}

fn check_invariants(events: &[IncentiveEvent], state: &IncentivesState) {
    // Every line once, never refunded beyond its amount.
    let mut lines: BTreeMap<String, ConsumptionLine> = BTreeMap::new();
    for line in recorded(events) {
        assert!(lines.insert(line.record_id.clone(), line).is_none(), "a line recorded twice");
    }
    for r in state.refunds.values() {
        lines.get_mut(&r.record_id).expect("a refund of a recorded line").refunded += r.amount.amount;
    }
    for line in lines.values() {
        assert!(line.unrefunded() >= Decimal::ZERO, "{line:?}");
    }
    // Each month's total is the once-rounded sum of what is counted in it.
    let mut sums: BTreeMap<(Month, Currency), (Decimal, u32)> = BTreeMap::new();
    for l in lines.values() {
        let e = sums.entry((l.incentive_month, l.amount.currency)).or_default();
        e.0 += l.incentive;
        e.1 += 1;
    }
    for r in state.refunds.values() {
        let e = sums.entry((r.incentive_month, r.amount.currency)).or_default();
        e.0 += r.incentive;
        e.1 += 1;
    }
    for (key, m) in &state.months {
        let (sum, n) = sums.get(key).copied().unwrap_or_default();
        assert_eq!((m.incentive_sum, m.entries), (sum, n), "{key:?}");
        assert_eq!(m.accrued().amount, round_money(sum));
    }
    // Nothing is counted in a month after its close.
    for e in events {
        if let IncentiveEvent::IncentiveMonthClosed { month, currency, accrued, .. } = e {
            assert_eq!(state.month(*month, *currency).unwrap().accrued(), *accrued, "{month} moved after its close");
        }
    }
    // Postings balance, and the payable account holds what is finalized and not paid.
    let all: Vec<_> = events.iter().flat_map(postings).collect();
    assert!(is_balanced(&all));
    let account = incentive_payable(P);
    let payable: Decimal = all
        .iter()
        .filter(|p| p.account == account)
        .map(|p| if p.side == Side::Debit { p.amount } else { -p.amount })
        .sum();
    let owed: Decimal = state
        .months
        .values()
        .filter(|m| m.status == MonthStatus::Finalized)
        .filter_map(|m| m.final_amount.map(|a| a.amount))
        .chain(
            state
                .opportunities
                .values()
                .filter(|o| o.status == OpportunityStatus::Finalized)
                .filter_map(|o| o.final_amount.map(|a| a.amount)),
        )
        .sum();
    assert_eq!(payable, owed);
    // One application per offering at a time.
    let mut busy: BTreeMap<&str, u32> = BTreeMap::new();
    for o in state.opportunities.values() {
        if matches!(o.status, OpportunityStatus::UnderReview | OpportunityStatus::Passed) {
            *busy.entry(o.offering.as_str()).or_default() += 1;
        }
    }
    assert!(busy.values().all(|n| *n <= 1), "{busy:?}");
    check_payments(events, state);
    // One live payment per quarter and currency.
    for q in QUARTERS {
        let q: Quarter = q.parse().unwrap();
        let live = state.payments.values().filter(|p| p.quarter == q && p.is_live()).count();
        assert!(live <= 1, "{q}: {live} live payments");
    }
}

/// docs/DOMAIN.md §5, negative months and the payable.
fn check_payments(events: &[IncentiveEvent], state: &IncentivesState) {
    let sum = |months: &[super::IncludedMonth]| months.iter().map(|m| m.amount.amount).sum::<Decimal>();
    let mut paid_total = Decimal::ZERO;
    let mut settled: BTreeMap<Month, u32> = BTreeMap::new();
    for e in events {
        match e {
            IncentiveEvent::QuarterlyPaymentRequested {
                included_months,
                included_opportunities,
                carried_months,
                carried_deduction,
                payable,
                ..
            } => {
                assert!(payable.amount > Decimal::ZERO, "a payment of {payable} was requested");
                assert_eq!(carried_deduction.amount, -sum(carried_months));
                assert!(carried_deduction.amount >= Decimal::ZERO);
                let opportunities: Decimal = included_opportunities.iter().map(|o| o.amount.amount).sum();
                assert_eq!(payable.amount, sum(included_months) + opportunities - carried_deduction.amount);
            }
            IncentiveEvent::QuarterlyPaymentPaid { amount, included_months, .. } => {
                assert!(amount.amount > Decimal::ZERO, "a payment of {amount} was paid");
                paid_total += amount.amount;
                for m in included_months {
                    *settled.entry(*m).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    assert!(settled.values().all(|n| *n == 1), "a month settled twice: {settled:?}");
    // The sum of the payments is the sum of what they settled: the finalized months (the
    // carried ones included, i.e. less the carried deductions) and the opportunities.
    let paid_months: Decimal = state
        .months
        .values()
        .filter(|m| m.status == MonthStatus::Paid)
        .filter_map(|m| m.final_amount.map(|a| a.amount))
        .sum();
    let paid_opportunities: Decimal = state
        .opportunities
        .values()
        .filter(|o| o.status == OpportunityStatus::Paid)
        .filter_map(|o| o.final_amount.map(|a| a.amount))
        .sum();
    assert_eq!(paid_total, paid_months + paid_opportunities);
    let (mut included, mut deducted) = (Decimal::ZERO, Decimal::ZERO);
    for p in state.payments.values().filter(|p| p.status == super::PaymentStatus::Paid) {
        included += sum(&p.included_months) + p.included_opportunities.iter().map(|o| o.amount.amount).sum::<Decimal>();
        deducted += p.carried_deduction.amount;
    }
    assert_eq!(paid_total, included - deducted);
    // A live payment holds its months: none is held by two.
    for m in state.months.values() {
        if let Some(id) = &m.payment_id {
            assert!(state.payments[id].is_live(), "{m:?} held by a rejected payment");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_histories_keep_every_invariant_and_replay_to_the_same_state(ops in proptest::collection::vec(op(), 1..120)) {
        let (events, state) = run(&ops);
        prop_assert_eq!(&Incentives::replay(&events), &state);
        prop_assert_eq!(Incentives::replay(&events), Incentives::replay(&events));
        // Through the envelope and back, the history replays to the same state.
        let decoded: Vec<IncentiveEvent> = events
            .iter()
            .map(|e| {
                let (ty, v, data) = crate::encode(e);
                crate::decode(&ty, v, &data.to_string()).unwrap()
            })
            .collect();
        prop_assert_eq!(&decoded, &events);
        // The same commands give the same events (decide is pure).
        prop_assert_eq!(run(&ops).0, events);
    }
}

#[test]
fn the_random_histories_reach_the_interesting_states() {
    // A guard on the generator: a long fixed-seed walk reaches paid payments, forfeited and
    // finalized months, deferred lines and refunds, so the properties above are not vacuous.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut refused = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let ops = proptest::collection::vec(op(), 100..200).new_tree(&mut runner).unwrap().current();
        let (events, _) = run_noting(&ops, &mut refused);
        for e in &events {
            let (ty, _, _) = crate::encode(e);
            seen.insert(ty);
            if let IncentiveEvent::QuarterlyPaymentRequested { carried_months, excluded_months, .. } = e {
                if !carried_months.is_empty() {
                    seen.insert("carried deduction".into());
                }
                if !excluded_months.is_empty() {
                    seen.insert("forfeited month".into());
                }
            }
            if let IncentiveEvent::IncentiveMonthFinalized { final_amount, .. } = e {
                if final_amount.amount < Decimal::ZERO {
                    seen.insert("negative month".into());
                }
            }
        }
        if refused.contains(super::payments::NOTHING_PAYABLE) {
            seen.insert("nothing payable".into());
        }
        if recorded(&events).any(|l| l.deferred_from.is_some()) {
            seen.insert("deferred line".into());
        }
        let moved = |e: &IncentiveEvent| {
            matches!(e, IncentiveEvent::ConsumptionRefunded { original_incentive_month, incentive_month, .. }
                if original_incentive_month != incentive_month)
        };
        if events.iter().any(moved) {
            seen.insert("refund of a line whose month no longer accrues".into());
        }
    }
    for wanted in [
        "ConsumptionRefunded",
        "IncentiveMonthFinalized",
        "OpportunityFinalized",
        "QuarterlyPaymentRequested",
        "QuarterlyPaymentRejected",
        "QuarterlyPaymentPaid",
        "deferred line",
        "forfeited month",
        "negative month",
        "nothing payable",
        "carried deduction",
        "refund of a line whose month no longer accrues",
    ] {
        assert!(seen.contains(wanted), "never reached {wanted}: {seen:?}");
    }
}
