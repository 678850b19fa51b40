//! Story 3, through the real binary: a partner's coupon quota, coupons issued to resale
//! customers only and within the quota, billing's usage (partial, full, too much), a
//! customer switched to referral (and the 3-month rule stopping a switch back), then one
//! batch reclaim with mixed results item by item: success, `COUPON_NOT_FOUND` (unknown, and
//! another partner's coupon), `NOT_RESALE_CUSTOMER`, `COUPON_USED_UP` (fully used). A batch
//! that names a coupon twice is a 400 and stores nothing. The unused balance returns to the
//! quota; failed items store nothing.
//!
//! `NOT_YOUR_CUSTOMER` (a coupon whose customer is no longer the partner's) is in
//! `e2e_customers.rs`, where the association is ended.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

const P: &str = "CPN";

fn issue(s: &Server, token: &str, coupon: &str, customer: &str, amount: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/coupons",
        Some(token),
        Some(json!({"coupon_id": coupon, "customer_id": customer, "amount": amount, "currency": "CNY", "expires_at": "2099-12-31T16:00:00Z"})),
    )
}

fn usage(s: &Server, coupon: &str, usage_id: &str, amount: &str) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/coupons/{coupon}/usage"),
        Some(ADMIN_TOKEN),
        Some(json!({"usage_id": usage_id, "amount": amount, "used_at": chrono::Utc::now().to_rfc3339()})),
    )
}

fn reclaim(s: &Server, token: &str, ids: &[&str]) -> (u16, Value) {
    s.call("POST", "/v2/promotions/benefits/partner-coupons/reclaim", Some(token), Some(json!({ "coupon_ids": ids })))
}

fn quota(s: &Server, token: &str, min_position: u64) -> i64 {
    let b = balances(s, token, &format!("min_position={min_position}"));
    b.get(&format!("partner:{P}:coupon_quota")).map(cents).unwrap_or(0)
}

#[test]
fn a_batch_reclaim_answers_item_by_item() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let auditor = s.credential("auditor", None);
    let token = certified_partner(&s, P, "distributor", None);
    let other = certified_partner(&s, "OTHER", "distributor", None);
    for c in ["K1", "K2", "K3", "K5"] {
        associate_now(&s, c, P, "resale");
    }
    associate_now(&s, "K4", P, "referral");
    associate_now(&s, "OT-K1", "OTHER", "resale");

    // Quota: 300 for CPN; OTHER has its own.
    let granted = created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/coupon-quota"),
        ADMIN_TOKEN,
        Some(json!({"amount": "300.00", "currency": "CNY"})),
    );
    assert_eq!(cents(&granted["quota"]), 30000, "{granted}");
    created(
        &s,
        "POST",
        "/v1/partners/OTHER/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "50.00", "currency": "CNY"})),
    );
    let ot = expect(issue(&s, &other, "OT-1", "OT-K1", "20.00"), 201, None);

    // Issue: only to resale customers, only within the quota, only to one's own customers.
    let before = s.events_total();
    expect(issue(&s, &token, "CP-X", "K4", "10.00"), 409, Some("NOT_RESALE_CUSTOMER"));
    expect(issue(&s, &token, "CP-X", "K1", "300.01"), 409, Some("INSUFFICIENT_BALANCE"));
    expect(issue(&s, &token, "CP-X", "OT-K1", "10.00"), 409, Some("NOT_YOUR_CUSTOMER"));
    assert_eq!(s.events_total(), before, "refused issues store nothing");
    let cp1 = expect(issue(&s, &token, "CP-1", "K1", "100.00"), 201, None);
    assert_eq!(
        (cp1["coupon_id"].as_str(), cp1["customer_id"].as_str(), cp1["status"].as_str()),
        (Some("CP-1"), Some("K1"), Some("active"))
    );
    assert_eq!((cents(&cp1["amount"]), cents(&cp1["remaining"])), (10000, 10000));
    assert!(cp1["expires_at"].is_string());
    expect(issue(&s, &token, "CP-2", "K2", "50.00"), 201, None);
    expect(issue(&s, &token, "CP-3", "K3", "80.00"), 201, None);
    let cp4 = expect(issue(&s, &token, "CP-4", "K1", "40.00"), 201, None);
    // 300 − 100 − 50 − 80 − 40.
    assert_eq!(quota(&s, &token, pos(&cp4)), 3000);
    expect(issue(&s, &token, "CP-1", "K1", "1.00"), 409, Some("ALREADY_EXISTS"));

    // Billing: CP-1 used in part, CP-2 used up; never more than what remains.
    let used = expect(usage(&s, "CP-1", "U-1", "30.00"), 201, None);
    assert_eq!((used["status"].as_str(), cents(&used["remaining"])), (Some("active"), 7000));
    let used = expect(usage(&s, "CP-2", "U-2", "50.00"), 201, None);
    assert_eq!((used["status"].as_str(), cents(&used["remaining"])), (Some("used_up"), 0));
    let before = s.events_total();
    expect(usage(&s, "CP-1", "U-3", "70.01"), 409, Some("INSUFFICIENT_BALANCE"));
    expect(usage(&s, "CP-2", "U-4", "0.01"), 409, Some("COUPON_USED_UP"));
    assert_eq!(s.events_total(), before);

    // K3 becomes a referral customer (the partner switches it); switching back within 3
    // months is refused for this partner and customer.
    let switched =
        created(&s, "POST", "/v1/customers/K3/association-type", &token, Some(json!({"association_type": "referral"})));
    assert_eq!(switched["association_type"], "referral", "{switched}");
    let before = s.events_total();
    expect(
        s.call("POST", "/v1/customers/K3/association-type", Some(&token), Some(json!({"association_type": "resale"}))),
        409,
        Some("SWITCH_TOO_FREQUENT"),
    );
    expect(
        s.call(
            "POST",
            "/v1/customers/K3/association-type",
            Some(ADMIN_TOKEN),
            Some(json!({"association_type": "resale"})),
        ),
        409,
        Some("SWITCH_TOO_FREQUENT"),
    );
    assert_eq!(s.events_total(), before);
    // Another customer of the same partner may still be switched: the rule is per customer.
    let k5 =
        created(&s, "POST", "/v1/customers/K5/association-type", &token, Some(json!({"association_type": "referral"})));
    assert_eq!(k5["association_type"], "referral", "{k5}");
    // Another partner may not switch CPN's customer.
    expect(
        s.call(
            "POST",
            "/v1/customers/K1/association-type",
            Some(&other),
            Some(json!({"association_type": "referral"})),
        ),
        403,
        Some("FORBIDDEN"),
    );

    // A batch that names a coupon twice is refused whole (docs/DOMAIN.md §4): 400, nothing
    // stored, the coupon still active.
    let before = s.events_total();
    let answer = expect(reclaim(&s, &token, &["CP-1", "NOPE", "CP-1"]), 400, Some("INVALID_FIELD"));
    assert!(answer["error_msg"].as_str().unwrap().contains("CP-1"), "{answer}");
    assert_eq!(s.events_total(), before);
    assert_eq!(read(&s, "/v1/coupons/CP-1", &token)["status"], "active");

    // The batch.
    let before = s.events_total();
    let (status, answer) = reclaim(&s, &token, &["CP-1", "NOPE", "CP-3", "CP-2", "OT-1"]);
    assert_eq!(status, 201, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let got: Vec<(&str, &str, Option<&str>)> = results
        .iter()
        .map(|r| (r["coupon_id"].as_str().unwrap(), r["status"].as_str().unwrap(), r["error_code"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("CP-1", "success", None),
            ("NOPE", "failed", Some("COUPON_NOT_FOUND")),
            ("CP-3", "failed", Some("NOT_RESALE_CUSTOMER")),
            ("CP-2", "failed", Some("COUPON_USED_UP")),
            ("OT-1", "failed", Some("COUPON_NOT_FOUND")),
        ]
    );
    assert_eq!(cents(&results[0]["reclaimed"]), 7000, "{answer}");
    assert!(results[1..].iter().all(|r| r.get("reclaimed").is_none_or(Value::is_null)), "{answer}");
    assert!(s.events_total() > before);

    // CP-1 is reclaimed; its 70.00 is back in the quota (30 + 70); the others unchanged.
    let cp1 = read(&s, "/v1/coupons/CP-1", &token);
    assert_eq!((cp1["status"].as_str(), cents(&cp1["remaining"])), (Some("reclaimed"), 0), "{cp1}");
    assert_eq!(read(&s, "/v1/coupons/CP-3", &token)["status"], "active");
    assert_eq!(read(&s, "/v1/coupons/CP-2", &token)["status"], "used_up");
    assert_eq!(quota(&s, &token, pos(&answer)), 10000);
    // OTHER's coupon was not touched.
    let ot1 = read(&s, "/v1/coupons/OT-1", &other);
    assert_eq!((ot1["status"].as_str(), cents(&ot1["remaining"])), (Some("active"), 2000));
    assert!(pos(&ot) < pos(&answer));

    // A batch where every item fails stores nothing.
    let before = s.events_total();
    let (status, answer) = reclaim(&s, &token, &["CP-1", "CP-3", "NOPE"]);
    assert_eq!(status, 200, "{answer}");
    let codes: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["error_code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [("failed", "COUPON_USED_UP"), ("failed", "NOT_RESALE_CUSTOMER"), ("failed", "COUPON_NOT_FOUND")]
    );
    assert_eq!(s.events_total(), before);

    // The list of the partner's coupons; the trial balance holds.
    let list = read(&s, "/v1/coupons", &token);
    assert_eq!(list["total"], 4, "{list}");
    let list = read(&s, "/v1/coupons?partner_id=OTHER", &auditor);
    assert_eq!(list["total"], 1, "{list}");
    assert_balanced(&s, &auditor, s.events_total());

    // Bad batches: empty, more than 100 ids.
    expect(reclaim(&s, &token, &[]), 400, Some("INVALID_FIELD"));
    let many: Vec<String> = (0..101).map(|i| format!("C{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    expect(reclaim(&s, &token, &many), 400, Some("INVALID_FIELD"));
}
