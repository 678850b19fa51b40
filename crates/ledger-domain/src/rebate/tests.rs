use super::*;
use std::collections::BTreeMap;

use chrono::NaiveDate;
use ledger_core::{Currency, Money, WorkingCalendar};
use rust_decimal::Decimal;

use crate::decider::harness::given;
use crate::event::DecodeError;
use crate::partner::tests::t;
use crate::partner::BankAccount;
use crate::postings::{is_balanced, Posting, Side};
use proptest::prelude::*;

const P: &str = "P1";
const LEGAL: &str = "银河科技（北京）有限公司";
const NOW: &str = "2026-07-20T02:00:00Z";

fn cny(s: &str) -> Money {
    Money::new(Decimal::from_str_exact(s).unwrap(), Currency::CNY)
}

fn usd(s: &str) -> Money {
    Money::new(Decimal::from_str_exact(s).unwrap(), Currency::USD)
}

fn bank(holder: &str) -> BankAccount {
    BankAccount { holder_name: holder.into(), number: "6222000011112222".into(), bank: "ICBC".into() }
}

fn credited(source: &str, amount: Money) -> RebateEvent {
    RebateEvent::RebateCredited {
        partner_id: P.into(),
        source_id: source.into(),
        amount,
        credited_at: t("2026-07-01T00:00:00Z"),
    }
}

fn requested(id: &str, amount: Money) -> RebateEvent {
    RebateEvent::WithdrawalRequested {
        partner_id: P.into(),
        withdrawal_id: id.into(),
        amount,
        bank_account: bank(LEGAL),
        requested_at: t("2026-07-02T00:00:00Z"),
    }
}

fn approved(id: &str, amount: Money) -> RebateEvent {
    RebateEvent::WithdrawalApproved {
        partner_id: P.into(),
        withdrawal_id: id.into(),
        amount,
        expected_arrival_date: NaiveDate::from_ymd_opt(2026, 7, 13).unwrap(),
        approved_at: t("2026-07-03T00:00:00Z"),
    }
}

fn credit(source: &str, amount: Money) -> RebateCommand {
    RebateCommand::CreditRebate(CreditRebate { partner_id: P.into(), source_id: source.into(), amount })
}

fn request(id: &str, amount: Money) -> RebateCommand {
    request_to(id, amount, bank(LEGAL), Some(LEGAL))
}

fn request_to(id: &str, amount: Money, bank_account: BankAccount, legal_name: Option<&str>) -> RebateCommand {
    RebateCommand::RequestWithdrawal(RequestWithdrawal {
        partner_id: P.into(),
        withdrawal_id: id.into(),
        amount,
        bank_account,
        legal_name: legal_name.map(String::from),
    })
}

fn approve(id: &str) -> RebateCommand {
    RebateCommand::ApproveWithdrawal(ApproveWithdrawal {
        withdrawal_id: id.into(),
        calendar: WorkingCalendar::builtin(),
    })
}

fn reject(id: &str) -> RebateCommand {
    RebateCommand::RejectWithdrawal(RejectWithdrawal { withdrawal_id: id.into(), reason: None })
}

fn paid(id: &str) -> RebateCommand {
    RebateCommand::MarkWithdrawalPaid(MarkWithdrawalPaid { withdrawal_id: id.into() })
}

fn failed(id: &str) -> RebateCommand {
    RebateCommand::MarkWithdrawalFailed(MarkWithdrawalFailed {
        withdrawal_id: id.into(),
        reason: Some("account closed".into()),
    })
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Runs `commands` in order from `history`, keeping what succeeded.
fn run(history: Vec<RebateEvent>, commands: Vec<RebateCommand>) -> (Vec<RebateEvent>, RebateState) {
    let mut events = history;
    let mut state = Rebate::replay(&events);
    for c in commands {
        if let Ok(new) = Rebate::decide(&state, c, t(NOW)) {
            for e in new {
                state = Rebate::evolve(state, &e);
                events.push(e);
            }
        }
    }
    (events, state)
}

// --- crediting ---

#[test]
fn a_cloud_account_credit_is_recorded_with_its_source() {
    given::<Rebate>([])
        .at(t("2026-07-01T00:00:00Z"))
        .when(credit("QP-1", cny("100.00")))
        .then([credited("QP-1", cny("100.00"))]);
}

#[test]
fn crediting_the_same_payment_again_changes_nothing() {
    given::<Rebate>([credited("QP-1", cny("100.00"))]).when(credit("QP-1", cny("100.00"))).then([]);
    // The same source with another amount is not a repeat but a conflicting record.
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(credit("QP-1", cny("90.00")))
        .then_error("DUPLICATE_RECORD_CONFLICT");
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(credit("QP-1", usd("100.00")))
        .then_error("DUPLICATE_RECORD_CONFLICT");
}

#[test]
fn amounts_are_positive_with_at_most_two_places() {
    for bad in ["0", "-1.00", "0.001", "1000000000000.01"] {
        given::<Rebate>([]).when(credit("QP-1", cny(bad))).then_error("INVALID_AMOUNT");
        given::<Rebate>([credited("QP-0", cny("5000000000000"))])
            .when(request("W1", cny(bad)))
            .then_error("INVALID_AMOUNT");
    }
    // Trailing zeros are not extra places.
    given::<Rebate>([])
        .at(t("2026-07-01T00:00:00Z"))
        .when(credit("QP-1", cny("1.500")))
        .then([credited("QP-1", cny("1.500"))]);
}

#[test]
fn ids_are_checked_and_a_stream_serves_one_partner() {
    given::<Rebate>([]).when(credit("QP 1", cny("1.00"))).then_error("INVALID_FIELD");
    given::<Rebate>([credited("QP-1", cny("100.00"))]).when(request("W/1", cny("1.00"))).then_error("INVALID_FIELD");
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(RebateCommand::CreditRebate(CreditRebate {
            partner_id: "P2".into(),
            source_id: "QP-2".into(),
            amount: cny("1.00"),
        }))
        .then_error("INVALID_FIELD");
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(RebateCommand::RequestWithdrawal(RequestWithdrawal {
            partner_id: "P2".into(),
            withdrawal_id: "W1".into(),
            amount: cny("1.00"),
            bank_account: bank(LEGAL),
            legal_name: Some(LEGAL.into()),
        }))
        .then_error("INVALID_FIELD");
}

// --- requesting ---

#[test]
fn a_withdrawal_above_the_withdrawable_amount_is_refused() {
    // §6: "A request above it is rejected INSUFFICIENT_BALANCE".
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(request("W1", cny("100.01")))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .at(t("2026-07-02T00:00:00Z"))
        .when(request("W1", cny("100.00")))
        .then([requested("W1", cny("100.00"))]);
    given::<Rebate>([]).when(request("W1", cny("0.01"))).then_error("INSUFFICIENT_BALANCE");
}

#[test]
fn withdrawable_is_per_currency() {
    let history = [credited("QP-1", usd("500.00")), credited("QP-2", cny("10.00"))];
    given::<Rebate>(history.clone()).when(request("W1", cny("10.01"))).then_error("INSUFFICIENT_BALANCE");
    let state = Rebate::replay(&history);
    assert_eq!(withdrawable(&state, Currency::USD), usd("500.00"));
    assert_eq!(withdrawable(&state, Currency::CNY), cny("10.00"));
}

#[test]
fn a_pending_withdrawal_holds_its_amount() {
    // §6: withdrawable = credited − withdrawn − held by pending withdrawals.
    let history = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    let err = Rebate::decide(&Rebate::replay(&history), request("W2", cny("40.01")), t(NOW)).unwrap_err();
    assert_eq!(err.code(), "INSUFFICIENT_BALANCE");
    assert!(err.to_string().contains("available 40.00 CNY"), "{err}");
    given::<Rebate>(history.clone()).when(request("W2", cny("40.00"))).events();

    // Approved still holds.
    let (_, state) = run(history.clone(), vec![approve("W1")]);
    assert_eq!(withdrawable(&state, Currency::CNY), cny("40.00"));
    assert_eq!(state.balance(Currency::CNY).held, Decimal::from_str_exact("60.00").unwrap());
}

#[test]
fn rejection_releases_the_hold() {
    let (_, state) = run(vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))], vec![reject("W1")]);
    assert_eq!(withdrawable(&state, Currency::CNY), cny("100.00"));
    assert_eq!(state.withdrawal("W1").unwrap().status, WithdrawalStatus::Rejected);
}

#[test]
fn a_paid_withdrawal_is_withdrawn_and_a_failed_one_is_restored() {
    let history = vec![
        credited("QP-1", cny("100.00")),
        requested("W1", cny("60.00")),
        approved("W1", cny("60.00")),
        requested("W2", cny("30.00")),
        approved("W2", cny("30.00")),
    ];
    let (_, state) = run(history, vec![paid("W1"), failed("W2")]);
    let b = state.balance(Currency::CNY);
    assert_eq!(b.paid, Decimal::from_str_exact("60.00").unwrap());
    assert_eq!(b.held, Decimal::ZERO);
    assert_eq!(withdrawable(&state, Currency::CNY), cny("40.00"));
    assert_eq!(state.withdrawal("W1").unwrap().status, WithdrawalStatus::Paid);
    assert_eq!(state.withdrawal("W2").unwrap().status, WithdrawalStatus::Failed);
}

#[test]
fn the_holder_must_be_the_real_name_certified_name() {
    // Seed: "收款账号名称必须与实名认证一致" (the payee name must match the real-name certification).
    let history = [credited("QP-1", cny("100.00"))];
    given::<Rebate>(history.clone())
        .when(request_to("W1", cny("1.00"), bank("银河科技有限公司"), Some(LEGAL)))
        .then_error("ACCOUNT_NAME_MISMATCH");
    given::<Rebate>(history.clone())
        .when(request_to("W1", cny("1.00"), bank("Galaxy Tech"), Some("Galaxy  Tech")))
        .then_error("ACCOUNT_NAME_MISMATCH");
    given::<Rebate>(history.clone())
        .when(request_to("W1", cny("1.00"), bank("galaxy tech"), Some("Galaxy Tech")))
        .then_error("ACCOUNT_NAME_MISMATCH");
    // After NFKC and trimming: half-width brackets, an ideographic space, full-width letters.
    for holder in ["银河科技(北京)有限公司", "\u{3000}银河科技（北京）有限公司 ", " 银河科技(北京)有限公司  "]
    {
        given::<Rebate>(history.clone()).when(request_to("W1", cny("1.00"), bank(holder), Some(LEGAL))).events();
    }
    assert!(same_name("ＧＡＬＡＸＹ Tech", "GALAXY Tech"));
    assert!(!same_name("GALAXY Tech", "GALAXY Tech Ltd"));
}

#[test]
fn a_partner_without_real_name_certification_cannot_withdraw() {
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(request_to("W1", cny("1.00"), bank(LEGAL), None))
        .then_error("CERTIFICATION_INCOMPLETE");
}

#[test]
fn a_bank_account_needs_every_field() {
    let mut b = bank(LEGAL);
    b.bank = " ".into();
    given::<Rebate>([credited("QP-1", cny("100.00"))])
        .when(request_to("W1", cny("1.00"), b, Some(LEGAL)))
        .then_error("INVALID_FIELD");
}

#[test]
fn a_withdrawal_id_is_used_once_and_must_exist() {
    given::<Rebate>([credited("QP-1", cny("100.00")), requested("W1", cny("1.00"))])
        .when(request("W1", cny("1.00")))
        .then_error("ALREADY_EXISTS");
    given::<Rebate>([credited("QP-1", cny("100.00"))]).when(approve("W9")).then_error("NOT_FOUND");
    given::<Rebate>([]).when(paid("W9")).then_error("NOT_FOUND");
}

// --- approval and the arrival date ---

#[test]
fn approval_sets_the_arrival_date_seven_working_days_later() {
    // Seed: "提现审核通过后,需要7个工作日到账".
    let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    // Wed 2026-09-30 10:00 CST: Oct 1–7 are National Day, Sat Oct 10 is a make-up day.
    // Working days after: Oct 8, 9, 10, 12, 13, 14, 15.
    given::<Rebate>(history.clone()).at(t("2026-09-30T02:00:00Z")).when(approve("W1")).then([
        RebateEvent::WithdrawalApproved {
            partner_id: P.into(),
            withdrawal_id: "W1".into(),
            amount: cny("60.00"),
            expected_arrival_date: date("2026-10-15"),
            approved_at: t("2026-09-30T02:00:00Z"),
        },
    ]);
}

#[test]
fn the_approval_date_is_the_business_date_in_china() {
    let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    // 2026-09-29 16:30 UTC is already Wed 2026-09-30 00:30 CST.
    let at = t("2026-09-29T16:30:00Z");
    let events = given::<Rebate>(history.clone()).at(at).when(approve("W1")).events();
    assert!(
        matches!(events[0], RebateEvent::WithdrawalApproved { expected_arrival_date, .. } if expected_arrival_date == date("2026-10-15"))
    );
    // One day earlier in CST (Tue Sep 29): Sep 30, Oct 8, 9, 10, 12, 13, 14.
    assert_eq!(expected_arrival_date(t("2026-09-29T02:00:00Z"), &WorkingCalendar::builtin()), Ok(date("2026-10-14")));
}

#[test]
fn a_make_up_weekend_day_counts_and_the_calendar_comes_with_the_command() {
    // Sat 2026-09-19: Sun Sep 20 is a make-up workday, Sep 25–27 are Mid-Autumn holidays.
    // Working days after: Sep 20, 21, 22, 23, 24, 28, 29.
    assert_eq!(expected_arrival_date(t("2026-09-19T02:00:00Z"), &WorkingCalendar::builtin()), Ok(date("2026-09-29")));
    // Fri 2026-09-25 (a holiday itself): Sep 28, 29, 30, Oct 8, 9, Sat Oct 10, Oct 12.
    let friday = t("2026-09-25T02:00:00Z");
    assert_eq!(expected_arrival_date(friday, &WorkingCalendar::builtin()), Ok(date("2026-10-12")));
    // The decider uses the calendar the command brings: without holidays it is Sep 28,
    // 29, 30, Oct 1, 2, 5, 6.
    let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    let events = given::<Rebate>(history)
        .at(friday)
        .when(RebateCommand::ApproveWithdrawal(ApproveWithdrawal {
            withdrawal_id: "W1".into(),
            calendar: WorkingCalendar::weekdays_only(),
        }))
        .events();
    assert!(matches!(
        events[0],
        RebateEvent::WithdrawalApproved { expected_arrival_date, .. } if expected_arrival_date == date("2026-10-06")
    ));
}

#[test]
fn an_approval_whose_arrival_runs_past_the_calendar_is_calendar_unknown_and_stores_nothing() {
    // Mon 2027-12-27 + 7 working days reaches into 2028, which the built-in does not hold.
    let history = [credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    given::<Rebate>(history).at(t("2027-12-27T02:00:00Z")).when(approve("W1")).then_error("CALENDAR_UNKNOWN");
}

#[test]
fn the_view_shows_status_arrival_date_and_bank_account() {
    let (_, state) = run(vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))], vec![]);
    let w = state.withdrawal("W1").unwrap();
    assert_eq!(w.status, WithdrawalStatus::Requested);
    assert_eq!(w.expected_arrival_date, None);
    let state = Rebate::evolve(state, &approved("W1", cny("60.00")));
    assert_eq!(
        state.withdrawal("W1").unwrap(),
        &Withdrawal {
            withdrawal_id: "W1".into(),
            partner_id: P.into(),
            amount: cny("60.00"),
            status: WithdrawalStatus::Approved,
            expected_arrival_date: Some(date("2026-07-13")),
            bank_account: bank(LEGAL),
        }
    );
    let json = serde_json::to_value(state.withdrawal("W1").unwrap()).unwrap();
    assert_eq!(json["status"], "approved");
    assert_eq!(json["expected_arrival_date"], "2026-07-13");
}

// --- wrong-state transitions ---

#[test]
fn each_step_needs_the_status_before_it() {
    let requested_w1 = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    let approved_w1 = [requested_w1.clone(), vec![approved("W1", cny("60.00"))]].concat();
    let (rejected_w1, _) = run(requested_w1.clone(), vec![reject("W1")]);
    let (paid_w1, _) = run(approved_w1.clone(), vec![paid("W1")]);
    let (failed_w1, _) = run(approved_w1.clone(), vec![failed("W1")]);

    // Requested: may be approved or rejected, not paid or failed.
    given::<Rebate>(requested_w1.clone()).when(paid("W1")).then_error("INVALID_STATE");
    given::<Rebate>(requested_w1.clone()).when(failed("W1")).then_error("INVALID_STATE");
    // Approved: may be paid or fail, not approved again or rejected.
    given::<Rebate>(approved_w1.clone()).when(approve("W1")).then_error("INVALID_STATE");
    given::<Rebate>(approved_w1.clone()).when(reject("W1")).then_error("INVALID_STATE");
    // Final statuses accept nothing.
    for history in [rejected_w1, paid_w1, failed_w1] {
        for command in [approve("W1"), reject("W1"), paid("W1"), failed("W1")] {
            given::<Rebate>(history.clone()).when(command).then_error("INVALID_STATE");
        }
    }
}

#[test]
fn a_reason_is_bounded_text() {
    let history = vec![credited("QP-1", cny("100.00")), requested("W1", cny("60.00"))];
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    given::<Rebate>(history.clone())
        .when(RebateCommand::RejectWithdrawal(RejectWithdrawal {
            withdrawal_id: "W1".into(),
            reason: Some(long.clone()),
        }))
        .then_error("INVALID_FIELD");
    given::<Rebate>([history, vec![approved("W1", cny("60.00"))]].concat())
        .when(RebateCommand::MarkWithdrawalFailed(MarkWithdrawalFailed {
            withdrawal_id: "W1".into(),
            reason: Some(long),
        }))
        .then_error("INVALID_FIELD");
}

// --- postings and encoding ---

#[test]
fn every_event_posts_a_balanced_transfer_between_the_named_accounts() {
    let amount = |e: &RebateEvent| match e {
        RebateEvent::RebateCredited { amount, .. }
        | RebateEvent::WithdrawalRequested { amount, .. }
        | RebateEvent::WithdrawalApproved { amount, .. }
        | RebateEvent::WithdrawalRejected { amount, .. }
        | RebateEvent::WithdrawalPaid { amount, .. }
        | RebateEvent::WithdrawalFailed { amount, .. } => *amount,
    };
    for e in examples() {
        let ps = postings(&e);
        assert!(is_balanced(&ps), "{e:?}");
        let flow: Option<(&str, &str)> = match &e {
            RebateEvent::RebateCredited { .. } => Some(("vendor:rebate_clearing", "partner:P1:rebate")),
            RebateEvent::WithdrawalRequested { .. } => Some(("partner:P1:rebate", "partner:P1:rebate_held")),
            RebateEvent::WithdrawalApproved { .. } => None,
            RebateEvent::WithdrawalRejected { .. } | RebateEvent::WithdrawalFailed { .. } => {
                Some(("partner:P1:rebate_held", "partner:P1:rebate"))
            }
            RebateEvent::WithdrawalPaid { .. } => Some(("partner:P1:rebate_held", "vendor:bank_payout")),
        };
        let m = amount(&e);
        match flow {
            None => assert!(ps.is_empty()),
            Some((from, to)) => assert_eq!(
                ps,
                vec![Posting::debit(to, m.amount, m.currency), Posting::credit(from, m.amount, m.currency)],
                "{e:?}"
            ),
        }
    }
}

#[test]
fn events_round_trip_and_rebate_credited_v1_upcasts() {
    for e in examples() {
        let (ty, v, data) = crate::encode(&e);
        assert_eq!(crate::decode::<RebateEvent>(&ty, v, &data.to_string()).unwrap(), e);
    }
    let (ty, v, data) = crate::encode(&examples()[0]);
    assert_eq!((ty.as_str(), v), ("RebateCredited", 2));
    assert_eq!(data["amount"]["currency"], "CNY");

    let (v1, expected) = legacy::rebate_credited_v1_example();
    assert_eq!(crate::decode::<RebateEvent>("RebateCredited", 1, &v1.to_string()).unwrap(), expected);
    // A v1 payload that is not v1-shaped is refused, not guessed at.
    let mut broken = v1.clone();
    broken.as_object_mut().unwrap().remove("currency");
    assert!(matches!(
        crate::decode::<RebateEvent>("RebateCredited", 1, &broken.to_string()),
        Err(DecodeError::Payload(_))
    ));
    assert_eq!(
        crate::decode::<RebateEvent>("RebateCredited", 3, &v1.to_string()),
        Err(DecodeError::UnknownVersion { event_type: "RebateCredited".into(), version: 3 })
    );
    assert!(matches!(crate::decode::<RebateEvent>("WithdrawalPaid", 0, "{}"), Err(DecodeError::UnknownVersion { .. })));
}

// --- properties ---

fn money_strategy() -> impl Strategy<Value = Money> {
    (1i64..=20_000, prop_oneof![4 => Just(Currency::CNY), 1 => Just(Currency::USD)])
        .prop_map(|(cents, c)| Money::new(Decimal::new(cents, 2), c))
}

fn command_strategy() -> impl Strategy<Value = RebateCommand> {
    let id = || (0u8..6).prop_map(|i| format!("W{i}"));
    prop_oneof![
        2 => ((0u8..8), money_strategy()).prop_map(|(s, m)| credit(&format!("QP-{s}"), m)),
        3 => (id(), money_strategy(), any::<bool>()).prop_map(|(w, m, good_name)| {
            request_to(&w, m, bank(if good_name { LEGAL } else { "Someone Else" }), Some(LEGAL))
        }),
        2 => id().prop_map(|w| approve(&w)),
        1 => id().prop_map(|w| reject(&w)),
        1 => id().prop_map(|w| paid(&w)),
        1 => id().prop_map(|w| failed(&w)),
    ]
}

/// Sums of the postings of `events`, per (account, currency), as debits − credits.
fn ledger(events: &[RebateEvent]) -> BTreeMap<(String, Currency), Decimal> {
    let mut sums = BTreeMap::new();
    for e in events {
        let ps = postings(e);
        assert!(is_balanced(&ps), "{e:?}");
        for p in ps {
            let signed = match p.side {
                Side::Debit => p.amount,
                Side::Credit => -p.amount,
            };
            *sums.entry((p.account, p.currency)).or_insert(Decimal::ZERO) += signed;
        }
    }
    sums
}

proptest! {
    #[test]
    fn conservation_holds_and_withdrawable_never_goes_negative(
        commands in proptest::collection::vec(command_strategy(), 0..60)
    ) {
        let mut events = Vec::new();
        let mut state = RebateState::default();
        for c in commands {
            if let Ok(new) = Rebate::decide(&state, c, t(NOW)) {
                for e in new {
                    state = Rebate::evolve(state, &e);
                    events.push(e);
                }
            }
            for currency in Currency::ALL {
                let b = state.balance(currency);
                prop_assert!(withdrawable(&state, currency).amount >= Decimal::ZERO);
                prop_assert!(b.held >= Decimal::ZERO);
                // credited = withdrawable + held + paid.
                prop_assert_eq!(b.credited, withdrawable(&state, currency).amount + b.held + b.paid);
                // Held is exactly what the pending withdrawals of that currency hold.
                let pending: Decimal = state
                    .withdrawals
                    .values()
                    .filter(|w| w.status.is_pending() && w.amount.currency == currency)
                    .map(|w| w.amount.amount)
                    .sum();
                prop_assert_eq!(b.held, pending);
            }
        }
        // Postings balance and agree with the state, account by account.
        let sums = ledger(&events);
        let get = |account: &str, c: Currency| sums.get(&(account.to_string(), c)).copied().unwrap_or_default();
        for c in Currency::ALL {
            let b = state.balance(c);
            prop_assert_eq!(get("partner:P1:rebate", c), b.withdrawable());
            prop_assert_eq!(get("partner:P1:rebate_held", c), b.held);
            prop_assert_eq!(get("vendor:bank_payout", c), b.paid);
            prop_assert_eq!(get("vendor:rebate_clearing", c), -b.credited);
            let total: Decimal = sums.iter().filter(|((_, cur), _)| *cur == c).map(|(_, v)| *v).sum();
            prop_assert_eq!(total, Decimal::ZERO);
        }
        // Replaying the produced events, also through the envelope, gives the same state.
        prop_assert_eq!(Rebate::replay(&events), state.clone());
        let decoded: Vec<RebateEvent> = events
            .iter()
            .map(|e| {
                let (ty, v, data) = crate::encode(e);
                crate::decode(&ty, v, &data.to_string()).unwrap()
            })
            .collect();
        prop_assert_eq!(Rebate::replay(&decoded), state);
    }
}
