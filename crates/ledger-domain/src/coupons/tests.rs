use super::*;
use std::collections::{BTreeMap, BTreeSet};

use ledger_core::{Currency, Money};
use rust_decimal::Decimal;

use crate::customer::{Association, AssociationType};
use crate::decider::harness::given;
use crate::partner::tests::t;
use crate::postings::is_balanced;

const P: &str = "P1";
const NOW: &str = "2026-07-01T02:00:00Z";
const EXPIRES: &str = "2026-12-31T16:00:00Z";
/// When billing reports the uses of the tests: after all of them (a use may not lie in the
/// future of its report).
const BILLED: &str = "2027-01-02T00:00:00Z";

fn cny(s: &str) -> Money {
    Money::new(s.parse().unwrap(), Currency::CNY)
}

fn usd(s: &str) -> Money {
    Money::new(s.parse().unwrap(), Currency::USD)
}

fn resale(partner: &str) -> Option<Association> {
    Some(Association { partner_id: partner.into(), association_type: AssociationType::Resale })
}

fn referral(partner: &str) -> Option<Association> {
    Some(Association { partner_id: partner.into(), association_type: AssociationType::Referral })
}

fn granted(id: &str, amount: Money) -> CouponEvent {
    CouponEvent::CouponQuotaGranted { partner_id: P.into(), grant_id: id.into(), amount, granted_at: t(NOW) }
}

fn grant(id: &str, amount: Money) -> CouponCommand {
    CouponCommand::GrantQuota(GrantQuota { partner_id: P.into(), grant_id: id.into(), amount })
}

fn issued(coupon: &str, customer: &str, amount: Money) -> CouponEvent {
    CouponEvent::CouponIssued {
        partner_id: P.into(),
        coupon_id: coupon.into(),
        customer_id: customer.into(),
        amount,
        expires_at: t(EXPIRES),
        issued_at: t(NOW),
    }
}

fn issue(coupon: &str, customer: &str, amount: Money, association: Option<Association>) -> CouponCommand {
    CouponCommand::IssueCoupon(IssueCoupon {
        partner_id: P.into(),
        coupon_id: coupon.into(),
        customer_id: customer.into(),
        amount,
        expires_at: t(EXPIRES),
        association,
    })
}

fn used(coupon: &str, usage: &str, amount: Money, at: &str) -> CouponEvent {
    CouponEvent::CouponUsed {
        partner_id: P.into(),
        coupon_id: coupon.into(),
        customer_id: "C1".into(),
        usage_id: usage.into(),
        amount,
        used_at: t(at),
    }
}

fn use_coupon(coupon: &str, usage: &str, amount: Money, at: &str) -> CouponCommand {
    CouponCommand::UseCoupon(UseCoupon { coupon_id: coupon.into(), usage_id: usage.into(), amount, used_at: t(at) })
}

fn reclaimed(coupon: &str, customer: &str, amount: Money, at: &str) -> CouponEvent {
    CouponEvent::CouponReclaimed {
        partner_id: P.into(),
        coupon_id: coupon.into(),
        customer_id: customer.into(),
        amount,
        reclaimed_at: t(at),
    }
}

fn item(coupon: &str, association: Option<Association>) -> ReclaimItem {
    ReclaimItem { coupon_id: coupon.into(), association }
}

/// Quota 1000.00; coupon CP1 of 200.00 for resale customer C1.
fn one_coupon() -> Vec<CouponEvent> {
    vec![granted("G1", cny("1000.00")), issued("CP1", "C1", cny("200.00"))]
}

// ---- quota ----

#[test]
fn the_vendor_grants_quota_once_per_grant_id() {
    given::<Coupons>([]).at(t(NOW)).when(grant("G1", cny("1000.00"))).then([granted("G1", cny("1000.00"))]);
    given::<Coupons>([granted("G1", cny("1000.00"))]).at(t(NOW)).when(grant("G1", cny("1000.00"))).then([]);
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(grant("G1", cny("1.00")))
        .then_error("ALREADY_EXISTS");
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(CouponCommand::GrantQuota(GrantQuota {
            partner_id: "P2".into(),
            grant_id: "G2".into(),
            amount: cny("1.00"),
        }))
        .then_error("INVALID_STATE");
    for bad in ["0", "-5", "0.001"] {
        given::<Coupons>([]).at(t(NOW)).when(grant("G1", cny(bad))).then_error("INVALID_AMOUNT");
    }
}

// ---- issue ----

#[test]
fn a_partner_issues_a_coupon_to_its_resale_customer_within_its_quota() {
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(issue("CP1", "C1", cny("200.00"), resale(P)))
        .then([issued("CP1", "C1", cny("200.00"))]);
    let state = Coupons::replay(&one_coupon());
    assert_eq!(state.quota(Currency::CNY), cny("800.00"));
    let view = coupon_view(&state, "CP1", t(NOW)).unwrap();
    assert_eq!(
        view,
        CouponView {
            coupon_id: "CP1".into(),
            customer_id: "C1".into(),
            amount: cny("200.00"),
            remaining: cny("200.00"),
            status: CouponStatus::Active,
            expires_at: t(EXPIRES),
        }
    );
    assert_eq!(coupon_view(&state, "CP9", t(NOW)), None);
}

#[test]
fn a_coupon_goes_only_to_a_resale_customer() {
    // "only to customers whose association type is resale at issue time"
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(issue("CP1", "C1", cny("200.00"), referral(P)))
        .then_error("NOT_RESALE_CUSTOMER");
}

#[test]
fn a_coupon_goes_only_to_the_partners_own_customer() {
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(issue("CP1", "C1", cny("200.00"), resale("P2")))
        .then_error("NOT_YOUR_CUSTOMER");
    given::<Coupons>([granted("G1", cny("1000.00"))])
        .at(t(NOW))
        .when(issue("CP1", "C1", cny("200.00"), None))
        .then_error("NOT_YOUR_CUSTOMER");
}

#[test]
fn a_coupon_may_not_exceed_the_remaining_quota() {
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(issue("CP2", "C1", cny("800.01"), resale(P)))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Coupons>(one_coupon()).at(t(NOW)).when(issue("CP2", "C1", cny("800.00"), resale(P))).then([issued(
        "CP2",
        "C1",
        cny("800.00"),
    )]);
    // Per currency.
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(issue("CP2", "C1", usd("1.00"), resale(P)))
        .then_error("INSUFFICIENT_BALANCE");
}

#[test]
fn a_coupon_id_is_issued_once_and_expires_in_the_future() {
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(issue("CP1", "C1", cny("1.00"), resale(P)))
        .then_error("ALREADY_EXISTS");
    let mut expired = issue("CP2", "C1", cny("1.00"), resale(P));
    if let CouponCommand::IssueCoupon(IssueCoupon { expires_at, .. }) = &mut expired {
        *expires_at = t(NOW);
    }
    given::<Coupons>(one_coupon()).at(t(NOW)).when(expired).then_error("INVALID_FIELD");
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(issue("CP 2", "C1", cny("1.00"), resale(P)))
        .then_error("INVALID_FIELD");
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(issue("CP2", "C1", cny("0.00"), resale(P)))
        .then_error("INVALID_AMOUNT");
}

// ---- use ----

#[test]
fn billing_uses_a_coupon_partially_but_never_beyond_what_remains() {
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"))
        .then([used("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z")]);
    let mut history = one_coupon();
    history.push(used("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"));
    given::<Coupons>(history.clone())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U2", cny("120.01"), "2026-07-11T00:00:00Z"))
        .then_error("INSUFFICIENT_BALANCE");
    given::<Coupons>(history.clone())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U2", cny("120.00"), "2026-07-11T00:00:00Z"))
        .then([used("CP1", "U2", cny("120.00"), "2026-07-11T00:00:00Z")]);
    history.push(used("CP1", "U2", cny("120.00"), "2026-07-11T00:00:00Z"));
    let state = Coupons::replay(&history);
    assert_eq!(coupon_view(&state, "CP1", t(NOW)).unwrap().status, CouponStatus::UsedUp);
    given::<Coupons>(history)
        .at(t(BILLED))
        .when(use_coupon("CP1", "U3", cny("0.01"), "2026-07-12T00:00:00Z"))
        .then_error("COUPON_USED_UP");
}

#[test]
fn a_usage_is_recorded_once() {
    let mut history = one_coupon();
    history.push(used("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"));
    given::<Coupons>(history.clone())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"))
        .then([]);
    given::<Coupons>(history)
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("10.00"), "2026-07-10T00:00:00Z"))
        .then_error("ALREADY_EXISTS");
}

#[test]
fn a_coupon_is_not_used_from_its_expiry_on() {
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("1.00"), EXPIRES))
        .then_error("COUPON_EXPIRED");
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("1.00"), "2026-12-31T15:59:59Z"))
        .then([used("CP1", "U1", cny("1.00"), "2026-12-31T15:59:59Z")]);
    let state = Coupons::replay(&one_coupon());
    assert_eq!(coupon_view(&state, "CP1", t("2026-12-31T15:59:59Z")).unwrap().status, CouponStatus::Active);
    assert_eq!(coupon_view(&state, "CP1", t(EXPIRES)).unwrap().status, CouponStatus::Expired);
}

#[test]
fn a_use_may_lie_at_most_five_minutes_ahead_of_its_report() {
    // docs/DOMAIN.md, Conventions: a ledger records what happened.
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(use_coupon("CP1", "U1", cny("1.00"), "2026-07-01T02:05:01Z"))
        .then_error("INVALID_TIME");
    given::<Coupons>(one_coupon())
        .at(t(NOW))
        .when(use_coupon("CP1", "U1", cny("1.00"), "2026-07-01T02:05:00Z"))
        .then([used("CP1", "U1", cny("1.00"), "2026-07-01T02:05:00Z")]);
}

#[test]
fn a_use_names_a_known_coupon_in_its_currency_after_its_issue() {
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP9", "U1", cny("1.00"), "2026-07-10T00:00:00Z"))
        .then_error("COUPON_NOT_FOUND");
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", usd("1.00"), "2026-07-10T00:00:00Z"))
        .then_error("CURRENCY_MISMATCH");
    given::<Coupons>(one_coupon())
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("1.00"), "2026-06-30T00:00:00Z"))
        .then_error("INVALID_FIELD");
    let mut history = one_coupon();
    history.push(reclaimed("CP1", "C1", cny("200.00"), "2026-07-05T00:00:00Z"));
    given::<Coupons>(history)
        .at(t(BILLED))
        .when(use_coupon("CP1", "U1", cny("1.00"), "2026-07-10T00:00:00Z"))
        .then_error("INVALID_STATE");
}

// ---- reclaim ----

const LATER: &str = "2026-08-01T00:00:00Z";

fn reclaim(items: Vec<ReclaimItem>) -> CouponCommand {
    CouponCommand::ReclaimCoupons(ReclaimCoupons { items, request_id: None })
}

#[test]
fn partial_use_then_reclaim_returns_only_the_rest_to_the_quota() {
    let mut history = one_coupon();
    history.push(used("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"));
    given::<Coupons>(history.clone()).at(t(LATER)).when(reclaim(vec![item("CP1", resale(P))])).then([reclaimed(
        "CP1",
        "C1",
        cny("120.00"),
        LATER,
    )]);
    history.push(reclaimed("CP1", "C1", cny("120.00"), LATER));
    let state = Coupons::replay(&history);
    assert_eq!(state.quota(Currency::CNY), cny("920.00"));
    let view = coupon_view(&state, "CP1", t(LATER)).unwrap();
    assert_eq!((view.status, view.remaining), (CouponStatus::Reclaimed, cny("0")));
    // Reclaimed stays reclaimed, also after its expiry.
    assert_eq!(coupon_view(&state, "CP1", t(EXPIRES)).unwrap().status, CouponStatus::Reclaimed);
}

#[test]
fn a_batch_with_a_request_id_keeps_its_answer_in_the_same_append_even_when_every_item_failed() {
    // A retry under the request id answers this, not a decision against a later state.
    let command = |items| CouponCommand::ReclaimCoupons(ReclaimCoupons { items, request_id: Some("rq-1".into()) });
    let failed = |id: &str, code: &str, msg: &str| ReclaimResult {
        coupon_id: id.into(),
        reclaimed: None,
        error_code: Some(code.into()),
        error_msg: Some(msg.into()),
    };
    given::<Coupons>(one_coupon()).at(t(LATER)).when(command(vec![item("CP1", resale(P)), item("KB", None)])).then([
        reclaimed("CP1", "C1", cny("200.00"), LATER),
        CouponEvent::CouponReclaimAnswered {
            partner_id: P.into(),
            request_id: "rq-1".into(),
            results: vec![
                ReclaimResult {
                    coupon_id: "CP1".into(),
                    reclaimed: Some(cny("200.00")),
                    error_code: None,
                    error_msg: None,
                },
                failed("KB", "COUPON_NOT_FOUND", &DomainError::CouponNotFound { coupon_id: "KB".into() }.to_string()),
            ],
            answered_at: t(LATER),
        },
    ]);
    let state = Coupons::replay(&one_coupon());
    let events = Coupons::decide(&state, command(vec![item("KB", None)]), t(LATER)).unwrap();
    assert_eq!(events.len(), 1, "the answer alone is stored, so the request id is held: {events:?}");
    assert!(postings(&events[0]).is_empty(), "an answer moves no money");
    assert_eq!(Coupons::replay(&[one_coupon(), events].concat()), state, "and changes no state");
}

#[test]
fn a_coupon_issued_to_a_resale_customer_switched_to_referral_is_not_reclaimed() {
    // "only when its customer's association type is resale at the time of the reclaim"
    let state = Coupons::replay(&one_coupon());
    let outcomes = reclaim_outcomes(&state, &[item("CP1", referral(P))], t(LATER));
    assert_eq!(outcomes[0].1.as_ref().unwrap_err().code(), "NOT_RESALE_CUSTOMER");
    given::<Coupons>(one_coupon()).at(t(LATER)).when(reclaim(vec![item("CP1", referral(P))])).then([]);
}

#[test]
fn a_batch_answers_item_by_item_and_one_failure_never_blocks_the_others() {
    let history = vec![
        granted("G1", cny("1000.00")),
        issued("OK1", "C1", cny("100.00")),
        issued("USED", "C1", cny("50.00")),
        used("USED", "U1", cny("50.00"), "2026-07-02T00:00:00Z"),
        issued("REF", "C2", cny("10.00")),
        issued("MOVED", "C3", cny("10.00")),
        CouponEvent::CouponIssued {
            partner_id: P.into(),
            coupon_id: "OLD".into(),
            customer_id: "C1".into(),
            amount: cny("30.00"),
            expires_at: t("2026-07-20T00:00:00Z"),
            issued_at: t(NOW),
        },
        issued("OK2", "C1", cny("70.00")),
    ];
    let items = vec![
        item("OK1", resale(P)),
        item("NOPE", None),
        item("USED", resale(P)),
        item("REF", referral(P)),
        item("MOVED", resale("P2")),
        item("OLD", resale(P)),
        item("OK2", resale(P)),
    ];
    let state = Coupons::replay(&history);
    let outcomes: Vec<(String, Result<Money, &str>)> = reclaim_outcomes(&state, &items, t(LATER))
        .into_iter()
        .map(|(id, r)| (id, r.map_err(|e| e.code().to_string().leak() as &str)))
        .collect();
    let expected: Vec<(String, Result<Money, &str>)> = vec![
        ("OK1".into(), Ok(cny("100.00"))),
        ("NOPE".into(), Err("COUPON_NOT_FOUND")),
        ("USED".into(), Err("COUPON_USED_UP")),
        ("REF".into(), Err("NOT_RESALE_CUSTOMER")),
        ("MOVED".into(), Err("NOT_YOUR_CUSTOMER")),
        ("OLD".into(), Err("COUPON_EXPIRED")),
        ("OK2".into(), Ok(cny("70.00"))),
    ];
    assert_eq!(outcomes, expected);
    given::<Coupons>(history.clone())
        .at(t(LATER))
        .when(reclaim(items))
        .then([reclaimed("OK1", "C1", cny("100.00"), LATER), reclaimed("OK2", "C1", cny("70.00"), LATER)]);
    // A coupon reclaimed by an earlier call is used up too.
    let mut after = history;
    after.push(reclaimed("OK1", "C1", cny("100.00"), LATER));
    let outcomes = reclaim_outcomes(&Coupons::replay(&after), &[item("OK1", resale(P))], t(LATER));
    assert_eq!(outcomes[0].1.as_ref().unwrap_err().code(), "COUPON_USED_UP");
}

#[test]
fn a_reclaim_batch_names_one_to_a_hundred_coupons() {
    given::<Coupons>(one_coupon()).at(t(LATER)).when(reclaim(vec![])).then_error("INVALID_FIELD");
    let too_many = (0..=MAX_RECLAIM_BATCH).map(|_| item("CP1", resale(P))).collect();
    given::<Coupons>(one_coupon()).at(t(LATER)).when(reclaim(too_many)).then_error("INVALID_FIELD");
    let full = std::iter::once(item("CP1", resale(P)))
        .chain((1..MAX_RECLAIM_BATCH).map(|i| item(&format!("NOPE{i}"), None)))
        .collect();
    given::<Coupons>(one_coupon()).at(t(LATER)).when(reclaim(full)).then([reclaimed(
        "CP1",
        "C1",
        cny("200.00"),
        LATER,
    )]);
}

#[test]
fn a_reclaim_batch_that_names_a_coupon_twice_is_refused_whole() {
    // docs/DOMAIN.md §4: "a batch of distinct ids (a repeated id is a 400)": nothing is
    // reclaimed, not even the first mention.
    let twice = vec![item("CP1", resale(P)), item("NOPE", None), item("CP1", resale(P))];
    given::<Coupons>(one_coupon()).at(t(LATER)).when(reclaim(twice)).then_error("INVALID_FIELD");
}

#[test]
fn an_expired_coupon_is_not_reclaimed() {
    given::<Coupons>(one_coupon()).at(t(EXPIRES)).when(reclaim(vec![item("CP1", resale(P))])).then([]);
    let outcomes = reclaim_outcomes(&Coupons::replay(&one_coupon()), &[item("CP1", resale(P))], t(EXPIRES));
    assert_eq!(outcomes[0].1.as_ref().unwrap_err().code(), "COUPON_EXPIRED");
}

// ---- postings, examples, encoding ----

fn posted(events: &[CouponEvent]) -> BTreeMap<(String, Currency), Decimal> {
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
    let mut history = one_coupon();
    history.push(used("CP1", "U1", cny("80.00"), "2026-07-10T00:00:00Z"));
    history.push(reclaimed("CP1", "C1", cny("120.00"), LATER));
    history.push(issued("CP2", "C2", cny("10.00")));
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let expected: BTreeMap<(String, Currency), Decimal> = [
        ("vendor:coupon_source", "-1000.00"),
        ("partner:P1:coupon_quota", "910.00"),
        ("customer:C2:coupons", "10.00"),
        ("vendor:coupon_redeemed", "80.00"),
    ]
    .into_iter()
    .map(|(a, v)| ((a.to_string(), Currency::CNY), d(v)))
    .collect();
    assert_eq!(posted(&history), expected);
    for e in &history {
        assert!(is_balanced(&postings(e)), "{e:?}");
    }
}

#[test]
fn examples_cover_every_variant_and_round_trip() {
    let examples = examples();
    let types: BTreeSet<String> = examples.iter().map(|e| crate::encode(e).0).collect();
    assert_eq!(types.len(), 6, "{types:?}");
    for e in &examples {
        let (ty, version, data) = crate::encode(e);
        assert_eq!(&crate::decode::<CouponEvent>(&ty, version, &data.to_string()).unwrap(), e);
        assert!(is_balanced(&postings(e)));
    }
    let schema = serde_json::to_value(schemars::schema_for!(CouponEvent)).unwrap();
    assert!(schema.to_string().contains("CouponReclaimed"));
    let view = coupon_view(&Coupons::replay(&one_coupon()), "CP1", t(NOW)).unwrap();
    assert_eq!(serde_json::to_value(view).unwrap()["status"], "active");
}

// ---- properties ----

mod properties {
    use super::*;
    use proptest::prelude::*;

    const CUSTOMERS: [&str; 3] = ["C1", "C2", "C3"];

    #[derive(Debug, Clone)]
    enum Op {
        Grant {
            reuse_id: bool,
            currency: bool,
            cents: i64,
        },
        Issue {
            customer: usize,
            currency: bool,
            cents: i64,
            days_valid: i64,
        },
        Use {
            coupon: usize,
            reuse_id: bool,
            cents: i64,
        },
        Reclaim {
            coupons: Vec<usize>,
        },
        /// Customer `customer` becomes: 0 resale of P1, 1 referral of P1, 2 resale of P2, 3 none.
        Switch {
            customer: usize,
            to: usize,
        },
        Advance {
            days: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let cents = 1i64..30_000;
        prop_oneof![
            2 => (any::<bool>(), proptest::bool::weighted(0.2), 100_000i64..3_000_000)
                .prop_map(|(reuse_id, currency, cents)| Op::Grant { reuse_id, currency, cents }),
            4 => (0..3usize, proptest::bool::weighted(0.2), cents.clone(), 1i64..60)
                .prop_map(|(customer, currency, cents, days_valid)| Op::Issue { customer, currency, cents, days_valid }),
            4 => (0..12usize, any::<bool>(), cents).prop_map(|(coupon, reuse_id, cents)| Op::Use { coupon, reuse_id, cents }),
            2 => proptest::collection::vec(0..12usize, 1..5).prop_map(|coupons| Op::Reclaim { coupons }),
            1 => (0..3usize, 0..4usize).prop_map(|(customer, to)| Op::Switch { customer, to }),
            1 => (1i64..20).prop_map(|days| Op::Advance { days }),
        ]
    }

    /// Mostly an issued coupon (by position), sometimes an unknown one.
    fn some_coupon(state: &CouponsState, n: usize) -> String {
        match state.coupons.keys().nth(n % (state.coupons.len() + 1)) {
            Some(id) => id.clone(),
            None => format!("CP{n}"),
        }
    }

    fn association(kind: usize) -> Option<Association> {
        match kind {
            0 => resale(P),
            1 => referral(P),
            2 => resale("P2"),
            _ => None,
        }
    }

    fn sum_by_currency(entries: impl Iterator<Item = (Currency, Decimal)>) -> BTreeMap<Currency, Decimal> {
        let mut out = BTreeMap::new();
        for (c, d) in entries {
            *out.entry(c).or_default() += d;
        }
        out.retain(|_, v: &mut Decimal| !v.is_zero());
        out
    }

    fn check_invariants(state: &CouponsState, history: &[CouponEvent]) {
        assert!(state.quota.values().all(|v| *v >= Decimal::ZERO), "{state:?}");
        assert!(state.coupons.values().all(|c| c.remaining >= Decimal::ZERO && c.remaining <= c.amount.amount));
        // quota + outstanding coupons + used = granted, the grants counted from the events.
        let granted = sum_by_currency(history.iter().filter_map(|e| match e {
            CouponEvent::CouponQuotaGranted { amount, .. } => Some((amount.currency, amount.amount)),
            _ => None,
        }));
        let held = sum_by_currency(
            state
                .quota
                .iter()
                .map(|(c, d)| (*c, *d))
                .chain(state.coupons.values().map(|c| (c.amount.currency, c.remaining)))
                .chain(state.used.iter().map(|(c, d)| (*c, *d))),
        );
        assert_eq!(held, granted);
        assert_eq!(sum_by_currency(state.granted.iter().map(|(c, d)| (*c, *d))), granted);
        // Postings balance and match the state account by account.
        let mut posted = posted(history);
        for currency in Currency::ALL {
            let source = posted.remove(&(VENDOR_COUPON_SOURCE.to_string(), currency)).unwrap_or_default();
            assert_eq!(-source, state.granted.get(&currency).copied().unwrap_or_default());
            let redeemed = posted.remove(&(VENDOR_COUPON_REDEEMED.to_string(), currency)).unwrap_or_default();
            assert_eq!(redeemed, state.used.get(&currency).copied().unwrap_or_default());
        }
        assert_eq!(posted, state.balances());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_coupon_histories_conserve_the_quota(ops in proptest::collection::vec(op(), 1..100)) {
            let mut associations = [0usize, 0, 1];
            let mut now = t(NOW);
            let mut state = CouponsState::default();
            let mut history: Vec<CouponEvent> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                let money = |currency: bool, cents: i64| {
                    Money::new(Decimal::new(cents, 2), if currency { Currency::USD } else { Currency::CNY })
                };
                let decide = |state: &CouponsState, command| Coupons::decide(state, command, now).unwrap_or_default();
                let events = match op {
                    Op::Grant { reuse_id, currency, cents } => {
                        let id = if reuse_id { "G-0".to_string() } else { format!("G-{i}") };
                        decide(&state, grant(&id, money(currency, cents)))
                    }
                    Op::Issue { customer, currency, cents, days_valid } => decide(
                        &state,
                        CouponCommand::IssueCoupon(IssueCoupon {
                            partner_id: P.into(),
                            coupon_id: format!("CP{}", i % 12),
                            customer_id: CUSTOMERS[customer].into(),
                            amount: money(currency, cents),
                            expires_at: now + chrono::Duration::days(days_valid),
                            association: association(associations[customer]),
                        }),
                    ),
                    Op::Use { coupon, reuse_id, cents } => {
                        let id = some_coupon(&state, coupon);
                        let currency = state.coupons.get(&id).is_some_and(|c| c.amount.currency == Currency::USD);
                        let usage_id = if reuse_id { "U-0".to_string() } else { format!("U-{i}") };
                        decide(
                            &state,
                            CouponCommand::UseCoupon(UseCoupon { coupon_id: id, usage_id, amount: money(currency, cents), used_at: now }),
                        )
                    }
                    Op::Reclaim { coupons } => {
                        let items: Vec<ReclaimItem> = coupons
                            .iter()
                            .map(|n| {
                                let id = some_coupon(&state, *n);
                                let customer = state.coupons.get(&id).map(|c| c.customer_id.clone());
                                let association = customer
                                    .and_then(|c| CUSTOMERS.iter().position(|x| *x == c))
                                    .and_then(|k| association(associations[k]));
                                ReclaimItem { coupon_id: id, association }
                            })
                            .collect();
                        let distinct = items.iter().map(|i| &i.coupon_id).collect::<std::collections::BTreeSet<_>>().len();
                        let outcomes = reclaim_outcomes(&state, &items, now);
                        let decided = Coupons::decide(&state, CouponCommand::ReclaimCoupons(ReclaimCoupons { items, request_id: None }), now);
                        if distinct < outcomes.len() {
                            // A repeated id refuses the whole batch.
                            let code = decided.unwrap_err().code().to_string();
                            prop_assert_eq!(code, "INVALID_FIELD");
                            vec![]
                        } else {
                        let events = decided.unwrap();
                        // The events are exactly the successful outcomes.
                        let succeeded: Vec<(String, Money)> =
                            outcomes.into_iter().filter_map(|(id, r)| Some((id, r.ok()?))).collect();
                        let emitted: Vec<(String, Money)> = events
                            .iter()
                            .map(|e| match e {
                                CouponEvent::CouponReclaimed { coupon_id, amount, .. } => (coupon_id.clone(), *amount),
                                other => panic!("{other:?}"),
                            })
                            .collect();
                        prop_assert_eq!(succeeded, emitted);
                        events
                        }
                    }
                    Op::Switch { customer, to } => {
                        associations[customer] = to;
                        vec![]
                    }
                    Op::Advance { days } => {
                        now += chrono::Duration::days(days);
                        vec![]
                    }
                };
                for e in events {
                    prop_assert!(is_balanced(&postings(&e)), "{e:?}");
                    state = Coupons::evolve(state, &e);
                    history.push(e);
                }
                check_invariants(&state, &history);
            }
            prop_assert_eq!(&Coupons::replay(&history), &state);
            let decoded: Vec<CouponEvent> = history
                .iter()
                .map(|e| {
                    let (ty, version, data) = crate::encode(e);
                    crate::decode(&ty, version, &data.to_string()).unwrap()
                })
                .collect();
            prop_assert_eq!(&Coupons::replay(&decoded), &state);
        }
    }
}

#[test]
fn a_currencys_grants_are_spent_oldest_first_and_their_balances_add_up_to_the_quota() {
    let history = vec![
        granted("G1", cny("100.00")),
        granted("G2", cny("300.00")),
        granted("G3", usd("50.00")),
        issued("CP1", "C1", cny("150.00")),
    ];
    let state = Coupons::replay(&history);
    let balances: Vec<(String, Money)> =
        quota_balances(&state).into_iter().map(|(g, left)| (g.grant_id, left)).collect();
    assert_eq!(balances, vec![("G1".into(), cny("0.00")), ("G2".into(), cny("250.00")), ("G3".into(), usd("50.00"))]);
    let cny_left: Decimal = balances.iter().filter(|(_, m)| m.currency == Currency::CNY).map(|(_, m)| m.amount).sum();
    assert_eq!(cny_left, state.quota(Currency::CNY).amount);
    // A reclaim gives back to the quota, and so to the oldest grant first.
    let mut later = history.clone();
    later.push(reclaimed("CP1", "C1", cny("150.00"), LATER));
    let left: Vec<Money> = quota_balances(&Coupons::replay(&later)).into_iter().map(|(_, m)| m).collect();
    assert_eq!(left, vec![cny("100.00"), cny("300.00"), usd("50.00")]);
}

#[test]
fn an_issue_batch_keeps_its_answer_which_moves_no_money_and_changes_no_state() {
    let results = vec![
        IssueResult { customer_id: "C1".into(), coupon_id: Some("CP1".into()), error_code: None, error_msg: None },
        IssueResult {
            customer_id: "C9".into(),
            coupon_id: None,
            error_code: Some("NOT_RESALE_CUSTOMER".into()),
            error_msg: Some("customer C9 is not a resale customer".into()),
        },
    ];
    let answer = |request_id: &str, results: Vec<IssueResult>| {
        CouponCommand::AnswerCouponIssue(AnswerCouponIssue { request_id: request_id.into(), results })
    };
    given::<Coupons>(one_coupon()).at(t(LATER)).when(answer("rq-1", results.clone())).then([
        CouponEvent::CouponIssueAnswered {
            partner_id: P.into(),
            request_id: "rq-1".into(),
            results: results.clone(),
            answered_at: t(LATER),
        },
    ]);
    let state = Coupons::replay(&one_coupon());
    let events = Coupons::decide(&state, answer("rq-1", results.clone()), t(LATER)).unwrap();
    assert!(postings(&events[0]).is_empty(), "an answer moves no money");
    assert_eq!(Coupons::replay(&[one_coupon(), events].concat()), state, "and changes no state");
    // Nothing to answer, a bad request id, or a stream with no quota: refused.
    for (history, command) in [
        (one_coupon(), answer("rq-1", vec![])),
        (one_coupon(), answer("", results.clone())),
        (vec![], answer("rq-1", results)),
    ] {
        let err = Coupons::decide(&Coupons::replay(&history), command, t(LATER)).unwrap_err();
        assert_eq!(err.code(), "INVALID_FIELD", "{err}");
    }
}
