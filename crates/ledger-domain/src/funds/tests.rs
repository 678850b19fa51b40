use super::*;
use std::collections::BTreeMap;

use ledger_core::{Currency, Money};
use rust_decimal::Decimal;

use crate::decider::harness::given;
use crate::partner::tests::t;
use crate::postings::is_balanced;

const NOW: &str = "2026-07-01T02:00:00Z";
const D: &str = "D1";

fn cny(s: &str) -> Money {
    Money::new(s.parse().unwrap(), Currency::CNY)
}

fn usd(s: &str) -> Money {
    Money::new(s.parse().unwrap(), Currency::USD)
}

fn credited(id: &str, amount: Money) -> FundsEvent {
    FundsEvent::FundsCredited { partner_id: D.into(), credit_id: id.into(), amount, credited_at: t(NOW) }
}

fn credit(id: &str, amount: Money) -> FundsCommand {
    FundsCommand::CreditFunds(CreditFunds { distributor_id: D.into(), credit_id: id.into(), amount })
}

/// An adjustment by `operator` in D1's tree; `parent` is the counterparty's partner (a
/// customer) or distributor (a reseller) at `now`.
fn adj(record: &str, operator: &str, counterparty: Counterparty, amount: Money, parent: Option<&str>) -> Adjustment {
    Adjustment {
        record_id: record.into(),
        distributor_id: D.into(),
        operator_partner_id: operator.into(),
        counterparty,
        amount,
        remark: None,
        actor: "alice".into(),
        counterparty_parent: parent.map(str::to_string),
    }
}

fn allocated(record: &str, operator: &str, counterparty: Counterparty, amount: Money) -> FundsEvent {
    FundsEvent::FundsAllocated {
        partner_id: D.into(),
        record_id: record.into(),
        operator_partner_id: operator.into(),
        counterparty,
        amount,
        occurred_at: t(NOW),
        remark: None,
        actor: "alice".into(),
    }
}

fn reclaimed(record: &str, operator: &str, counterparty: Counterparty, amount: Money) -> FundsEvent {
    FundsEvent::FundsReclaimed {
        partner_id: D.into(),
        record_id: record.into(),
        operator_partner_id: operator.into(),
        counterparty,
        amount,
        occurred_at: t(NOW),
        remark: None,
        actor: "alice".into(),
    }
}

fn draw_down(record: &str, customer: &str, amount: Money) -> FundsCommand {
    FundsCommand::DrawDown(DrawDown {
        record_id: record.into(),
        customer_id: customer.into(),
        amount,
        consumed_at: t("2026-07-02T00:00:00Z"),
    })
}

/// D1 credited 1000, gave R1 300, R1 gave its customer C1 100.
fn chain() -> Vec<FundsEvent> {
    vec![
        credited("CR-1", cny("1000.00")),
        allocated("A1", D, Counterparty::reseller("R1"), cny("300.00")),
        allocated("A2", "R1", Counterparty::customer("C1"), cny("100.00")),
    ]
}

fn state_of(events: &[FundsEvent]) -> FundsState {
    Funds::replay(events)
}

// ---- crediting the pool ----

#[test]
fn the_vendor_credits_a_distributors_pool_once_per_credit_id() {
    given::<Funds>([]).at(t(NOW)).when(credit("CR-1", cny("1000.00"))).then([credited("CR-1", cny("1000.00"))]);
    // The same credit again is a no-op; the same id with another amount is refused.
    given::<Funds>([credited("CR-1", cny("1000.00"))]).at(t(NOW)).when(credit("CR-1", cny("1000.00"))).then([]);
    given::<Funds>([credited("CR-1", cny("1000.00"))])
        .at(t(NOW))
        .when(credit("CR-1", cny("999.00")))
        .then_error("ALREADY_EXISTS");
    let state = state_of(&[credited("CR-1", cny("1000.00")), credited("CR-2", usd("5.00"))]);
    assert_eq!(state.pool(Currency::CNY), cny("1000.00"));
    assert_eq!(state.pool(Currency::USD), usd("5.00"));
}

#[test]
fn amounts_must_be_positive_with_at_most_two_decimals() {
    for bad in ["0", "-1.00", "1.001"] {
        given::<Funds>([]).at(t(NOW)).when(credit("CR-1", cny(bad))).then_error("INVALID_AMOUNT");
        given::<Funds>(chain())
            .at(t(NOW))
            .when(FundsCommand::Allocate(adj("A9", D, Counterparty::customer("C0"), cny(bad), Some(D))))
            .then_error("INVALID_AMOUNT");
        given::<Funds>(chain())
            .at(t(NOW))
            .when(FundsCommand::Reclaim(adj("A9", D, Counterparty::reseller("R1"), cny(bad), Some(D))))
            .then_error("INVALID_AMOUNT");
        given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", cny(bad))).then_error("INVALID_AMOUNT");
    }
    // Trailing zeros are not extra precision.
    given::<Funds>([]).at(t(NOW)).when(credit("CR-1", cny("1.500"))).events();
    given::<Funds>([]).at(t(NOW)).when(credit("CR-1", cny("1000000000000.01"))).then_error("INVALID_AMOUNT");
}

#[test]
fn a_stream_holds_one_distributors_tree() {
    given::<Funds>([credited("CR-1", cny("1000.00"))])
        .at(t(NOW))
        .when(FundsCommand::CreditFunds(CreditFunds {
            distributor_id: "D2".into(),
            credit_id: "CR-2".into(),
            amount: cny("1.00"),
        }))
        .then_error("INVALID_STATE");
    let mut other = adj("A9", "D2", Counterparty::customer("C0"), cny("1.00"), Some("D2"));
    other.distributor_id = "D2".into();
    given::<Funds>(chain()).at(t(NOW)).when(FundsCommand::Allocate(other)).then_error("INVALID_STATE");
}

// ---- allocation ----

#[test]
fn allocation_chain_distributor_to_reseller_to_customer() {
    // "A distributor allocates from its pool to ... one of its resellers; a reseller
    // allocates from what it received to its own customers."
    given::<Funds>([credited("CR-1", cny("1000.00"))])
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A1", D, Counterparty::reseller("R1"), cny("300.00"), Some(D))))
        .then([allocated("A1", D, Counterparty::reseller("R1"), cny("300.00"))]);
    given::<Funds>(chain()[..2].to_vec())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A2", "R1", Counterparty::customer("C1"), cny("100.00"), Some("R1"))))
        .then([allocated("A2", "R1", Counterparty::customer("C1"), cny("100.00"))]);
    let state = state_of(&chain());
    assert_eq!(state.pool(Currency::CNY), cny("700.00"));
    assert_eq!(state.reseller_unspent("R1", Currency::CNY), cny("200.00"));
    assert_eq!(state.customer_allocated("C1", Currency::CNY), cny("100.00"));
    assert_eq!(state.customer_allocated_from("C1", "R1", Currency::CNY), cny("100.00"));
}

#[test]
fn a_distributor_allocates_to_its_own_customers() {
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C0"), cny("50.00"), Some(D))))
        .then([allocated("A3", D, Counterparty::customer("C0"), cny("50.00"))]);
    // Its reseller's customer is the reseller's, not the distributor's.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C1"), cny("50.00"), Some("R1"))))
        .then_error("NOT_YOUR_CUSTOMER");
    // A customer with no association at `now` is nobody's.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C9"), cny("50.00"), None)))
        .then_error("NOT_YOUR_CUSTOMER");
}

#[test]
fn a_reseller_allocates_only_to_its_own_customers() {
    // Another distributor's customer.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::customer("CX"), cny("10.00"), Some("DX"))))
        .then_error("NOT_YOUR_CUSTOMER");
    // Its own distributor's customer, or a sibling reseller's.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::customer("C0"), cny("10.00"), Some(D))))
        .then_error("NOT_YOUR_CUSTOMER");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::customer("C2"), cny("10.00"), Some("R2"))))
        .then_error("NOT_YOUR_CUSTOMER");
    // Never to a reseller.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::reseller("R2"), cny("10.00"), Some(D))))
        .then_error("INVALID_FIELD");
}

#[test]
fn a_distributor_allocates_only_to_its_own_resellers() {
    // Another distributor's reseller reads as an unknown one.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::reseller("RX"), cny("10.00"), Some("DX"))))
        .then_error("NOT_FOUND");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::reseller("R404"), cny("10.00"), None)))
        .then_error("NOT_FOUND");
}

#[test]
fn allocation_may_not_exceed_the_allocators_available_pool() {
    // Distributor: its pool (700.00 left after the chain).
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C0"), cny("700.01"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C0"), cny("700.00"), Some(D))))
        .then([allocated("A3", D, Counterparty::customer("C0"), cny("700.00"))]);
    // Reseller: what it received and has not allocated onward (200.00).
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::customer("C1"), cny("200.01"), Some("R1"))))
        .then_error("INSUFFICIENT_BALANCE");
    // Currencies never mix: the pool holds no USD.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", D, Counterparty::customer("C0"), usd("1.00"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
    // Nothing credited yet.
    given::<Funds>([])
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A1", D, Counterparty::reseller("R1"), cny("1.00"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
}

#[test]
fn adjustment_record_ids_are_unique_and_fields_are_checked() {
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A2", D, Counterparty::customer("C0"), cny("1.00"), Some(D))))
        .then_error("ALREADY_EXISTS");
    let mut long_remark = adj("A3", D, Counterparty::customer("C0"), cny("1.00"), Some(D));
    long_remark.remark = Some("x".repeat(MAX_REMARK_CHARS + 1));
    given::<Funds>(chain()).at(t(NOW)).when(FundsCommand::Allocate(long_remark)).then_error("INVALID_FIELD");
    let mut no_actor = adj("A3", D, Counterparty::customer("C0"), cny("1.00"), Some(D));
    no_actor.actor = " ".into();
    given::<Funds>(chain()).at(t(NOW)).when(FundsCommand::Allocate(no_actor)).then_error("INVALID_FIELD");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A 3", D, Counterparty::customer("C0"), cny("1.00"), Some(D))))
        .then_error("INVALID_FIELD");
    let mut remark = adj("A3", D, Counterparty::customer("C0"), cny("1.00"), Some(D));
    remark.remark = Some("预算调整".into());
    remark.actor = "bob".into();
    let events = given::<Funds>(chain()).at(t(NOW)).when(FundsCommand::Allocate(remark)).events();
    let record = events[0].adjustment_record().unwrap();
    assert_eq!(record.remark.as_deref(), Some("预算调整"));
    assert_eq!(record.actor, "bob");
}

// ---- reclaim ----

#[test]
fn reclaim_walks_the_chain_back() {
    let mut history = chain();
    // The reseller takes back from its customer: back into what it holds unspent.
    given::<Funds>(history.clone())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::customer("C1"), cny("100.00"), Some("R1"))))
        .then([reclaimed("B1", "R1", Counterparty::customer("C1"), cny("100.00"))]);
    history.push(reclaimed("B1", "R1", Counterparty::customer("C1"), cny("100.00")));
    assert_eq!(state_of(&history).reseller_unspent("R1", Currency::CNY), cny("300.00"));
    // The distributor takes everything the reseller holds unspent back into its pool.
    given::<Funds>(history.clone())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B2", D, Counterparty::reseller("R1"), cny("300.00"), Some(D))))
        .then([reclaimed("B2", D, Counterparty::reseller("R1"), cny("300.00"))]);
    history.push(reclaimed("B2", D, Counterparty::reseller("R1"), cny("300.00")));
    let state = state_of(&history);
    assert_eq!(state.pool(Currency::CNY), cny("1000.00"));
    assert_eq!(state.reseller_unspent("R1", Currency::CNY), cny("0"));
    assert_eq!(state.customer_allocated("C1", Currency::CNY), cny("0"));
}

#[test]
fn reclaim_may_not_exceed_what_the_counterparty_holds_unspent() {
    // R1 received 300.00 and allocated 100.00 onward: 200.00 unspent.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", D, Counterparty::reseller("R1"), cny("200.01"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", D, Counterparty::reseller("R1"), cny("200.00"), Some(D))))
        .then([reclaimed("B1", D, Counterparty::reseller("R1"), cny("200.00"))]);
    // Minus what was already reclaimed.
    let mut history = chain();
    history.push(reclaimed("B1", D, Counterparty::reseller("R1"), cny("150.00")));
    given::<Funds>(history)
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B2", D, Counterparty::reseller("R1"), cny("50.01"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
    // A customer: minus what its consumption drew down.
    let mut history = chain();
    history.push(FundsEvent::AllocatedBalanceDrawnDown {
        partner_id: D.into(),
        record_id: "L1".into(),
        customer_id: "C1".into(),
        consumption: cny("30.00"),
        drawn: cny("30.00"),
        drawn_from: vec![Draw { allocator_partner_id: "R1".into(), amount: cny("30.00") }],
        consumed_at: t(NOW),
    });
    given::<Funds>(history.clone())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::customer("C1"), cny("70.01"), Some("R1"))))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Funds>(history)
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::customer("C1"), cny("70.00"), Some("R1"))))
        .then([reclaimed("B1", "R1", Counterparty::customer("C1"), cny("70.00"))]);
}

#[test]
fn an_operator_reclaims_only_what_it_allocated() {
    // C1 is R1's customer and holds 100.00 from R1: the distributor gave C1 nothing.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", D, Counterparty::customer("C1"), cny("1.00"), Some("R1"))))
        .then_error("NOT_YOUR_CUSTOMER");
    // C0 is D1's customer but was never given anything.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", D, Counterparty::customer("C0"), cny("1.00"), Some(D))))
        .then_error("INSUFFICIENT_BALANCE");
    // Reclaim from a reseller is the distributor's; a reseller never reclaims from one.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::reseller("R2"), cny("1.00"), Some(D))))
        .then_error("INVALID_FIELD");
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", D, Counterparty::reseller("RX"), cny("1.00"), Some("DX"))))
        .then_error("NOT_FOUND");
}

#[test]
fn an_allocator_may_take_back_what_it_gave_a_customer_who_moved_away() {
    // C1 moved from R1 to another partner: R1's unspent allocation is still R1's (ours).
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::customer("C1"), cny("100.00"), Some("DX"))))
        .then([reclaimed("B1", "R1", Counterparty::customer("C1"), cny("100.00"))]);
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Reclaim(adj("B1", "R1", Counterparty::customer("C1"), cny("100.01"), None)))
        .then_error("INSUFFICIENT_BALANCE");
    // But it may not give it anything more.
    given::<Funds>(chain())
        .at(t(NOW))
        .when(FundsCommand::Allocate(adj("A3", "R1", Counterparty::customer("C1"), cny("1.00"), Some("DX"))))
        .then_error("NOT_YOUR_CUSTOMER");
}

// ---- drawdown ----

#[test]
fn consumption_draws_the_allocated_balance_down_first() {
    // "The consumption of a resale customer draws down its allocated balance first."
    given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", cny("30.00"))).then([
        FundsEvent::AllocatedBalanceDrawnDown {
            partner_id: D.into(),
            record_id: "L1".into(),
            customer_id: "C1".into(),
            consumption: cny("30.00"),
            drawn: cny("30.00"),
            drawn_from: vec![Draw { allocator_partner_id: "R1".into(), amount: cny("30.00") }],
            consumed_at: t("2026-07-02T00:00:00Z"),
        },
    ]);
    // More consumption than the balance: draws what there is.
    let events = given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", cny("250.00"))).events();
    let FundsEvent::AllocatedBalanceDrawnDown { drawn, consumption, .. } = &events[0] else { panic!("{events:?}") };
    assert_eq!((*drawn, *consumption), (cny("100.00"), cny("250.00")));
    let mut history = chain();
    history.extend(events);
    assert_eq!(state_of(&history).customer_allocated("C1", Currency::CNY), cny("0"));
}

#[test]
fn a_consumption_line_draws_once() {
    let mut history = chain();
    history.extend(given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", cny("30.00"))).events());
    given::<Funds>(history).at(t(NOW)).when(draw_down("L1", "C1", cny("30.00"))).then([]);
}

#[test]
fn a_line_with_nothing_to_draw_records_nothing() {
    given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C0", cny("30.00"))).then([]);
    given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", usd("30.00"))).then([]);
    given::<Funds>([]).at(t(NOW)).when(draw_down("L1", "C1", cny("30.00"))).then([]);
}

#[test]
fn a_customer_who_moved_within_the_tree_draws_from_every_allocator_in_id_order() {
    let mut history = chain();
    // C1 first was D1's own customer and received 40.00 from D1, then moved to R1.
    history.push(allocated("A0", D, Counterparty::customer("C1"), cny("40.00")));
    let events = given::<Funds>(history).at(t(NOW)).when(draw_down("L1", "C1", cny("120.00"))).events();
    let FundsEvent::AllocatedBalanceDrawnDown { drawn, drawn_from, .. } = &events[0] else { panic!("{events:?}") };
    assert_eq!(*drawn, cny("120.00"));
    assert_eq!(
        drawn_from,
        &vec![
            Draw { allocator_partner_id: D.into(), amount: cny("40.00") },
            Draw { allocator_partner_id: "R1".into(), amount: cny("80.00") },
        ]
    );
}

// ---- unbind reclaim ----

fn unbind(customer: &str, id: &str) -> FundsCommand {
    FundsCommand::UnbindReclaim(UnbindReclaim {
        distributor_id: D.into(),
        customer_id: customer.into(),
        unbind_id: id.into(),
        actor: "bob".into(),
    })
}

#[test]
fn an_ended_association_returns_what_the_customer_holds_to_each_allocator() {
    // §3: C1 holds 40.00 from D1 and 100.00 from R1, spent 30.00 of them (from D1 first).
    let mut history = chain();
    history.push(allocated("A0", D, Counterparty::customer("C1"), cny("40.00")));
    history.push(allocated("A3", D, Counterparty::customer("C2"), cny("5.00")));
    let state = state_of(&history);
    history.extend(Funds::decide(&state, draw_down("L1", "C1", cny("30.00")), t(NOW)).unwrap());
    let before = state_of(&history);
    let events = given::<Funds>(history.clone()).at(t(NOW)).when(unbind("C1", "UNB-9")).events();
    let returned: Vec<(&str, &str, Money)> = events
        .iter()
        .map(|e| {
            let FundsEvent::FundsUnbindReclaimed { record_id, operator_partner_id, amount, .. } = e else {
                panic!("{e:?}")
            };
            (record_id.as_str(), operator_partner_id.as_str(), *amount)
        })
        .collect();
    assert_eq!(returned, vec![("UNB-9-1", D, cny("10.00")), ("UNB-9-2", "R1", cny("100.00"))]);
    for e in &events {
        assert!(is_balanced(&postings(e)), "{e:?}");
        assert_eq!(e.adjustment_record().unwrap().kind, AdjustmentKind::UnbindReclaim);
    }
    history.extend(events);
    let after = state_of(&history);
    assert_eq!(after.customer_allocated("C1", Currency::CNY), cny("0"), "nothing is left stranded");
    assert_eq!(after.pool(Currency::CNY).amount - before.pool(Currency::CNY).amount, cny("10.00").amount);
    assert_eq!(after.reseller_unspent("R1", Currency::CNY), cny("300.00"), "R1 holds again what it gave C1");
    assert_eq!(after.customer_allocated("C2", Currency::CNY), cny("5.00"), "other customers keep theirs");
    // The same unbind again changes nothing; a customer holding nothing records nothing.
    given::<Funds>(history.clone()).at(t(NOW)).when(unbind("C1", "UNB-9")).then([]);
    given::<Funds>(history).at(t(NOW)).when(unbind("C9", "UNB-10")).then([]);
}

// ---- visibility ----

fn record(operator: &str, counterparty: Counterparty) -> AdjustmentRecord {
    allocated("A1", operator, counterparty, cny("1.00")).adjustment_record().unwrap()
}

#[test]
fn the_operator_sees_its_own_records() {
    assert!(visible_to(&record(D, Counterparty::customer("C0")), D, None));
    assert!(visible_to(&record("R1", Counterparty::customer("C1")), "R1", Some(D)));
}

#[test]
fn a_distributor_sees_what_it_made_for_its_resellers_and_what_they_made() {
    assert!(visible_to(&record(D, Counterparty::reseller("R1")), D, None));
    // Ours: the records its resellers made for their customers.
    assert!(visible_to(&record("R1", Counterparty::customer("C1")), D, None));
    // Not another distributor's tree.
    assert!(!visible_to(&record(D, Counterparty::reseller("R1")), "D2", None));
    assert!(!visible_to(&record("R1", Counterparty::customer("C1")), "D2", None));
}

#[test]
fn a_reseller_sees_only_the_records_that_concern_it() {
    // It is the counterparty.
    assert!(visible_to(&record(D, Counterparty::reseller("R1")), "R1", Some(D)));
    // Not the distributor's records with its customers, nor with a sibling reseller.
    assert!(!visible_to(&record(D, Counterparty::customer("C0")), "R1", Some(D)));
    assert!(!visible_to(&record(D, Counterparty::reseller("R2")), "R1", Some(D)));
    // Nor a sibling's records with its customers.
    assert!(!visible_to(&record("R2", Counterparty::customer("C2")), "R1", Some(D)));
}

#[test]
fn every_allocation_and_reclaim_is_an_adjustment_record() {
    let a = allocated("A1", D, Counterparty::reseller("R1"), cny("300.00")).adjustment_record().unwrap();
    assert_eq!(a.kind, AdjustmentKind::Allocate);
    assert_eq!(a.distributor_id, D);
    let r = reclaimed("B1", "R1", Counterparty::customer("C1"), cny("1.00")).adjustment_record().unwrap();
    assert_eq!(
        (r.kind, r.operator_partner_id.as_str(), r.counterparty.id.as_str()),
        (AdjustmentKind::Reclaim, "R1", "C1")
    );
    assert_eq!(credited("CR-1", cny("1.00")).adjustment_record(), None);
    // docs/API.md shape: counterparty is {type, id}.
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["counterparty"], serde_json::json!({"type": "reseller", "id": "R1"}));
    assert_eq!(json["kind"], "allocate");
    assert_eq!(json["amount"], serde_json::json!({"amount": "300.00", "currency": "CNY"}));
}

// ---- postings, examples, encoding ----

fn posted(events: &[FundsEvent]) -> BTreeMap<(String, Currency), Decimal> {
    let mut balances: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
    for p in events.iter().flat_map(postings) {
        let signed = match p.side {
            crate::Side::Debit => p.amount,
            crate::Side::Credit => -p.amount,
        };
        *balances.entry((p.account, p.currency)).or_default() += signed;
    }
    balances.retain(|_, v| !v.is_zero());
    balances
}

#[test]
fn postings_follow_the_chart_of_accounts() {
    let money = |d: &str| d.parse::<Decimal>().unwrap();
    let mut history = chain();
    history.push(reclaimed("B1", D, Counterparty::reseller("R1"), cny("50.00")));
    history.extend(given::<Funds>(chain()).at(t(NOW)).when(draw_down("L1", "C1", cny("30.00"))).events());
    let balances = posted(&history);
    let expected: BTreeMap<(String, Currency), Decimal> = [
        ("vendor:fund_source", "-1000.00"),
        ("partner:D1:fund_pool", "750.00"),
        ("partner:R1:fund_received", "150.00"),
        ("customer:C1:allocated", "70.00"),
        ("vendor:consumption_settled", "30.00"),
    ]
    .into_iter()
    .map(|(a, v)| ((a.to_string(), Currency::CNY), money(v)))
    .collect();
    assert_eq!(balances, expected);
    for e in &history {
        assert!(is_balanced(&postings(e)), "{e:?}");
    }
}

#[test]
fn examples_cover_every_variant_and_round_trip() {
    let examples = examples();
    let mut types: Vec<String> = examples.iter().map(|e| crate::encode(e).0).collect();
    types.dedup();
    assert_eq!(types.len(), 5, "{types:?}");
    for e in &examples {
        let (ty, version, data) = crate::encode(e);
        assert_eq!(&crate::decode::<FundsEvent>(&ty, version, &data.to_string()).unwrap(), e);
        assert!(is_balanced(&postings(e)));
    }
    let schema = serde_json::to_value(schemars::schema_for!(FundsEvent)).unwrap();
    assert!(schema.to_string().contains("FundsAllocated"));
}

// ---- properties ----

mod properties {
    use super::*;
    use proptest::prelude::*;

    const OPERATORS: [&str; 3] = [D, "R1", "R2"];
    /// Partners a customer may belong to; `None` for no association.
    const PARTNERS: [Option<&str>; 5] = [Some(D), Some("R1"), Some("R2"), Some("DX"), None];
    const CUSTOMERS: [&str; 4] = ["C0", "C1", "C2", "C3"];
    /// Resellers with their distributor.
    const RESELLERS: [(&str, &str); 3] = [("R1", D), ("R2", D), ("RX", "DX")];

    #[derive(Debug, Clone)]
    enum Op {
        Credit { reuse_id: bool, currency: bool, cents: i64 },
        Allocate { operator: usize, counterparty: usize, currency: bool, cents: i64 },
        Reclaim { operator: usize, counterparty: usize, currency: bool, cents: i64 },
        DrawDown { customer: usize, reuse_id: bool, currency: bool, cents: i64 },
        Move { customer: usize, partner: usize },
    }

    /// Mostly CNY, so that most commands meet a balance in their currency.
    fn usd() -> impl Strategy<Value = bool> {
        proptest::bool::weighted(0.2)
    }

    /// Counterparty indexes 0..4 are customers, 4..7 resellers; 7..10 stand for "one the
    /// operator may deal with" (see [`counterparty_of`]), so that most adjustments pass the
    /// relationship checks and reach the balance checks.
    fn op() -> impl Strategy<Value = Op> {
        let cents = 1i64..50_000;
        prop_oneof![
            2 => (any::<bool>(), usd(), 10_000i64..2_000_000)
                .prop_map(|(reuse_id, currency, cents)| Op::Credit { reuse_id, currency, cents }),
            5 => (0..3usize, 0..10usize, usd(), cents.clone()).prop_map(|(operator, counterparty, currency, cents)| {
                Op::Allocate { operator, counterparty, currency, cents }
            }),
            3 => (0..3usize, 0..10usize, usd(), cents.clone()).prop_map(|(operator, counterparty, currency, cents)| {
                Op::Reclaim { operator, counterparty, currency, cents }
            }),
            3 => (0..4usize, any::<bool>(), usd(), cents)
                .prop_map(|(customer, reuse_id, currency, cents)| Op::DrawDown { customer, reuse_id, currency, cents }),
            1 => (0..4usize, 0..5usize).prop_map(|(customer, partner)| Op::Move { customer, partner }),
        ]
    }

    /// Maps 7..10 to a counterparty the operator deals with: D1 → C0, R1 or R2; a reseller
    /// → its own customer (C1 for R1, C2 for R2).
    fn counterparty_of(operator: usize, index: usize) -> usize {
        match (operator, index) {
            (_, 0..=6) => index,
            (0, 7) => 0,
            (0, 8) => 4,
            (0, _) => 5,
            (r, _) => r,
        }
    }

    fn money(currency: bool, cents: i64) -> Money {
        Money::new(Decimal::new(cents, 2), if currency { Currency::USD } else { Currency::CNY })
    }

    /// Counterparties 0..4 are customers, 4..7 resellers.
    fn counterparty(index: usize, customers_partner: &[Option<&'static str>]) -> (Counterparty, Option<String>) {
        if index < CUSTOMERS.len() {
            (Counterparty::customer(CUSTOMERS[index]), customers_partner[index].map(str::to_string))
        } else {
            let (reseller, parent) = RESELLERS[index - CUSTOMERS.len()];
            (Counterparty::reseller(reseller), Some(parent.to_string()))
        }
    }

    fn sum_by_currency<'a>(entries: impl Iterator<Item = (Currency, Decimal)> + 'a) -> BTreeMap<Currency, Decimal> {
        let mut out = BTreeMap::new();
        for (c, d) in entries {
            *out.entry(c).or_default() += d;
        }
        out.retain(|_, v: &mut Decimal| !v.is_zero());
        out
    }

    fn check_invariants(state: &FundsState, history: &[FundsEvent]) {
        // No guarded balance below zero.
        assert!(state.pool.values().all(|v| *v >= Decimal::ZERO), "{state:?}");
        assert!(state.reseller_unspent.values().all(|v| *v >= Decimal::ZERO), "{state:?}");
        assert!(state.customer_allocated.values().all(|v| *v > Decimal::ZERO), "{state:?}");
        // Conservation: Σ balances = credits − drawdowns, counted from the events themselves.
        let credits = history.iter().filter_map(|e| match e {
            FundsEvent::FundsCredited { amount, .. } => Some((amount.currency, amount.amount)),
            _ => None,
        });
        let drawdowns = history.iter().filter_map(|e| match e {
            FundsEvent::AllocatedBalanceDrawnDown { drawn, .. } => Some((drawn.currency, -drawn.amount)),
            _ => None,
        });
        let expected = sum_by_currency(credits.chain(drawdowns));
        let held = sum_by_currency(state.balances().into_iter().map(|((_, c), d)| (c, d)));
        assert_eq!(held, expected);
        let totals = sum_by_currency(
            state.credited.iter().map(|(c, d)| (*c, *d)).chain(state.drawn.iter().map(|(c, d)| (*c, -*d))),
        );
        assert_eq!(totals, expected);
        // Postings balance and match the state's balances account by account.
        let mut posted = posted(history);
        for currency in Currency::ALL {
            let source = posted.remove(&(VENDOR_FUND_SOURCE.to_string(), currency)).unwrap_or_default();
            assert_eq!(-source, state.credited.get(&currency).copied().unwrap_or_default());
            let settled = posted.remove(&(VENDOR_CONSUMPTION_SETTLED.to_string(), currency)).unwrap_or_default();
            assert_eq!(settled, state.drawn.get(&currency).copied().unwrap_or_default());
        }
        assert_eq!(posted, state.balances());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_trees_conserve_money_and_never_go_negative(ops in proptest::collection::vec(op(), 1..100)) {
            let mut customers_partner: Vec<Option<&'static str>> = vec![Some(D), Some("R1"), Some("R2"), Some("DX")];
            let mut state = FundsState::default();
            let mut history: Vec<FundsEvent> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                let command = match op {
                    Op::Credit { reuse_id, currency, cents } => {
                        let id = if reuse_id { "CR-0".to_string() } else { format!("CR-{i}") };
                        credit(&id, money(currency, cents))
                    }
                    Op::Allocate { operator, counterparty: index, currency, cents }
                    | Op::Reclaim { operator, counterparty: index, currency, cents } => {
                        let (cp, parent) = counterparty(counterparty_of(operator, index), &customers_partner);
                        let adjustment = adj(&format!("A{i}"), OPERATORS[operator], cp, money(currency, cents), parent.as_deref());
                        if matches!(op, Op::Allocate { .. }) {
                            FundsCommand::Allocate(adjustment)
                        } else {
                            FundsCommand::Reclaim(adjustment)
                        }
                    }
                    Op::DrawDown { customer, reuse_id, currency, cents } => {
                        let id = if reuse_id { "L-0".to_string() } else { format!("L-{i}") };
                        draw_down(&id, CUSTOMERS[customer], money(currency, cents))
                    }
                    Op::Move { customer, partner } => {
                        customers_partner[customer] = PARTNERS[partner];
                        continue;
                    }
                };
                if let Ok(events) = Funds::decide(&state, command, t(NOW)) {
                    for e in events {
                        prop_assert!(is_balanced(&postings(&e)), "{e:?}");
                        state = Funds::evolve(state, &e);
                        history.push(e);
                    }
                }
                check_invariants(&state, &history);
            }
            // Replay, also through the stored encoding, gives the same state.
            prop_assert_eq!(&Funds::replay(&history), &state);
            let decoded: Vec<FundsEvent> = history
                .iter()
                .map(|e| {
                    let (ty, version, data) = crate::encode(e);
                    crate::decode(&ty, version, &data.to_string()).unwrap()
                })
                .collect();
            prop_assert_eq!(&Funds::replay(&decoded), &state);
        }
    }
}
