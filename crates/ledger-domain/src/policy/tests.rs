use super::*;
use crate::decider::harness::given;
use crate::partner::tests::t;
use ledger_core::{Month, Rate};

pub fn month(s: &str) -> Month {
    s.parse().unwrap()
}

pub fn rate(s: &str) -> Rate {
    Rate::parse(s).unwrap()
}

pub fn published(m: &str, rates: &[(&str, &str)], grace: u32) -> PolicyEvent {
    PolicyEvent::PolicyPublished {
        currency: Currency::CNY,
        effective_month: month(m),
        rates: rates.iter().map(|(p, r)| ProductRate { product: p.to_string(), rate: rate(r) }).collect(),
        settlement_grace_days: grace,
        published_at: t("2026-01-01T00:00:00Z"),
    }
}

fn publish(m: &str, rates: &[(&str, &str)], grace: Option<u32>) -> PolicyCommand {
    PolicyCommand::PublishPolicy(PublishPolicy {
        currency: Currency::CNY,
        effective_month: month(m),
        rates: rates.iter().map(|(p, r)| ProductRate { product: p.to_string(), rate: rate(r) }).collect(),
        settlement_grace_days: grace,
    })
}

#[test]
fn a_policy_is_published_with_zero_grace_days_by_default() {
    given::<Policies>([])
        .at(t("2026-01-01T00:00:00Z"))
        .when(publish("2026-01", &[("ecs", "0.05")], None))
        .then([published("2026-01", &[("ecs", "0.05")], 0)]);
}

#[test]
fn the_policy_of_a_month_is_the_latest_effective_by_then() {
    let book =
        Policies::replay(&[published("2026-01", &[("ecs", "0.05")], 0), published("2026-07", &[("ecs", "0.08")], 3)]);
    assert!(book.policy_for(month("2025-12")).is_none());
    assert_eq!(book.policy_for(month("2026-06")).unwrap().rate("ecs"), Some(rate("0.05")));
    assert_eq!(book.policy_for(month("2026-07")).unwrap().rate("ecs"), Some(rate("0.08")));
    assert_eq!(book.policy_for(month("2027-03")).unwrap().effective_month, month("2026-07"));
    assert_eq!(book.policy_for(month("2027-03")).unwrap().rate("obs"), None);
    assert_eq!(book.settlement_grace_days(month("2026-08")), 3);
    assert_eq!(book.settlement_grace_days(month("2025-08")), 0);
}

#[test]
fn the_cut_off_is_the_end_of_the_month_in_cst_plus_grace_days() {
    // July ends 2026-08-01 00:00 CST = 2026-07-31 16:00 UTC.
    assert_eq!(cut_off(month("2026-07"), 0), t("2026-07-31T16:00:00Z"));
    assert_eq!(cut_off(month("2026-07"), 3), t("2026-08-03T16:00:00Z"));
}

#[test]
fn versions_only_move_forward_and_are_never_replaced() {
    let history = [published("2026-07", &[("ecs", "0.05")], 0)];
    given::<Policies>(history.clone()).when(publish("2026-07", &[], None)).then_error("ALREADY_EXISTS");
    given::<Policies>(history).when(publish("2026-06", &[], None)).then_error("INVALID_STATE");
}

#[test]
fn bad_policies_are_refused() {
    given::<Policies>([])
        .when(publish("2026-07", &[("ecs", "0.05"), ("ecs", "0.06")], None))
        .then_error("INVALID_FIELD");
    given::<Policies>([]).when(publish("2026-07", &[("e cs", "0.05")], None)).then_error("INVALID_FIELD");
    given::<Policies>([])
        .when(publish("2026-07", &[], Some(MAX_SETTLEMENT_GRACE_DAYS + 1)))
        .then_error("INVALID_FIELD");
    given::<Policies>([published("2026-01", &[], 0)])
        .when(PolicyCommand::PublishPolicy(PublishPolicy {
            currency: Currency::USD,
            effective_month: month("2026-02"),
            rates: vec![],
            settlement_grace_days: None,
        }))
        .then_error("INVALID_FIELD");
    let too_many: Vec<(String, &str)> = (0..=MAX_PRODUCTS_PER_POLICY).map(|i| (format!("p{i}"), "0.01")).collect();
    let too_many: Vec<(&str, &str)> = too_many.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    given::<Policies>([]).when(publish("2026-07", &too_many, None)).then_error("INVALID_FIELD");
}

#[test]
fn rates_are_stored_as_strings() {
    let (ty, v, data) = crate::encode(&published("2026-07", &[("ecs", "0.035")], 2));
    assert_eq!(ty, "PolicyPublished");
    assert_eq!(data["rates"][0]["rate"], "0.035");
    assert_eq!(data["effective_month"], "2026-07");
    assert_eq!(
        crate::decode::<PolicyEvent>(&ty, v, &data.to_string()).unwrap(),
        published("2026-07", &[("ecs", "0.035")], 2)
    );
}
