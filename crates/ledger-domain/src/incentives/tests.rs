use super::*;
use ledger_core::{Currency, Money};
use rust_decimal::Decimal;

use crate::postings::is_balanced;
use crate::postings::Posting;

#[test]
fn examples_cover_every_event_type_and_round_trip_through_the_envelope() {
    let mut types = std::collections::BTreeSet::new();
    for e in examples() {
        let (ty, v, data) = crate::encode(&e);
        assert_eq!(crate::decode::<IncentiveEvent>(&ty, v, &data.to_string()).unwrap(), e);
        assert!(data["partner_id"].is_string(), "{ty} carries partner_id");
        types.insert(ty);
    }
    assert_eq!(types.len(), 18, "{types:?}");
}

#[test]
fn money_and_months_are_strings_in_events() {
    let (_, _, data) = crate::encode(&examples()[0]);
    assert_eq!(data["amount"]["amount"], "1000.00");
    assert_eq!(data["incentive"], "50.0000");
    assert_eq!(data["rate"], "0.05");
    assert_eq!(data["incentive_month"], "2026-08");
    let (_, _, data) = crate::encode(&examples()[1]);
    assert_eq!(data["reason"], "PRODUCT_NOT_ELIGIBLE");
    assert_eq!(data["association_type"], "referral");
}

#[test]
fn every_example_posts_balanced_entries() {
    for e in examples() {
        assert!(is_balanced(&postings(&e)), "{e:?}");
    }
}

#[test]
fn finalization_and_payment_post_to_the_chart_of_accounts() {
    let ex = examples();
    let finalized = ex.iter().find(|e| matches!(e, IncentiveEvent::IncentiveMonthFinalized { .. })).unwrap();
    let p = postings(finalized);
    assert_eq!(p[0], Posting::debit("partner:P-1:incentive_payable", Decimal::new(4000, 2), Currency::CNY));
    assert_eq!(p[1], Posting::credit("vendor:incentive_expense", Decimal::new(4000, 2), Currency::CNY));
    let paid = ex.iter().find(|e| matches!(e, IncentiveEvent::QuarterlyPaymentPaid { .. })).unwrap();
    let p = postings(paid);
    assert_eq!(p[0], Posting::debit("vendor:rebate_clearing", Decimal::new(33700, 2), Currency::CNY));
    assert_eq!(p[1], Posting::credit("partner:P-1:incentive_payable", Decimal::new(33700, 2), Currency::CNY));
    assert_eq!(rebate_credit_for(paid), Some(("QP-1".to_string(), Money::new(Decimal::new(33700, 2), Currency::CNY))));
    let mut by_bank = paid.clone();
    if let IncentiveEvent::QuarterlyPaymentPaid { method, .. } = &mut by_bank {
        *method = PaymentMethod::BankTransfer;
    }
    assert_eq!(postings(&by_bank)[0].account, "vendor:bank_payout");
    assert_eq!(rebate_credit_for(&by_bank), None);
    assert!(ex.iter().filter(|e| rebate_credit_for(e).is_some()).count() == 1);
}

#[test]
fn a_negative_final_amount_reverses_the_finalization_posting() {
    let e = IncentiveEvent::IncentiveMonthFinalized {
        partner_id: "P".into(),
        month: "2026-08".parse().unwrap(),
        currency: Currency::CNY,
        accrued: Money::new(Decimal::new(-150, 2), Currency::CNY),
        final_amount: Money::new(Decimal::new(-150, 2), Currency::CNY),
        adjustment: None,
        finalized_at: Utc::now(),
    };
    let p = postings(&e);
    assert_eq!(p[0], Posting::debit("vendor:incentive_expense", Decimal::new(150, 2), Currency::CNY));
    assert!(is_balanced(&p));
}

#[test]
fn every_example_validates_against_the_strict_schema_of_its_type() {
    // What `schema::families()` will generate once the family is registered there.
    let family = crate::schema::family::<IncentiveEvent>("incentives", examples());
    assert_eq!(family.schemas.len(), 18);
    for example in &family.examples {
        assert!(example.round_trips, "{}", example.event);
        let schema = family.schemas.iter().find(|s| s.event_type == example.event_type).unwrap();
        let validator = jsonschema::draft202012::new(&schema.schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(&example.payload).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", example.event_type);
        let mut extra = example.payload.clone();
        extra["unexpected"] = serde_json::json!(1);
        assert!(!validator.is_valid(&extra), "{} is closed", example.event_type);
    }
}
