//! Story 5, through the real binary: isolation between partners. Partner A has a paid
//! quarter, a withdrawal, a coupon, months, statements, balances, lab points; partner B's
//! token gets 403 `FORBIDDEN` for every one of them — never 404, never data — and the same
//! 403 for an id that does not exist, so an answer never tells B what exists. Admin gets
//! 404 for the missing ids. The auditor reads everything and writes nothing (403).

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

#[track_caller]
fn forbidden(s: &Server, method: &str, path: &str, token: &str, body: Option<Value>) {
    let (status, answer) = s.call(method, path, Some(token), body);
    assert_eq!((status, answer["error_code"].as_str()), (403, Some("FORBIDDEN")), "{method} {path}: {answer}");
    let text = answer.to_string();
    assert!(!text.contains("\"A\"") && !text.contains("A-C1"), "a refusal tells nothing: {text}");
}

#[test]
fn another_partner_gets_403_for_everything_and_the_auditor_reads_but_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let a = paid_partner(&s, "A");
    let b = certified_partner(&s, "B", "distributor", None);
    associate(&s, "B-C1", "B", "resale");
    let lab = created(&s, "POST", "/v1/lab-points", &a.token, Some(json!({"points": 50})));
    let lab_id = lab["application_id"].as_str().expect("an application id").to_string();
    created(
        &s,
        "POST",
        "/v1/opportunities",
        ADMIN_TOKEN,
        Some(json!({"opportunity_id": "OPP-A", "partner_id": "A", "offering": "ecs-migration", "core_tag": true})),
    );
    let auditor = s.credential("auditor", None);
    let month = ledger_core::Month::of(chrono::Utc::now()).to_string();

    // A sees its own.
    let mine = read(&s, &format!("/v1/quarterly-payments/{}", a.payment_id), &a.token);
    assert_eq!(mine["status"], "paid");
    assert_eq!(read(&s, &format!("/v1/withdrawals/{}", a.withdrawal_id), &a.token)["status"], "approved");
    assert_eq!(read(&s, &format!("/v1/coupons/{}", a.coupon_id), &a.token)["customer_id"], a.customer.as_str());

    let before = s.events_total();
    // B reads A's things by id: 403, and 403 for ids that exist nowhere.
    let (pid, wid, cid) = (&a.payment_id, &a.withdrawal_id, &a.coupon_id);
    for path in [
        format!("/v1/quarterly-payments/{pid}"),
        "/v1/quarterly-payments/QP-2026Q3-CNY-nothing".to_string(),
        format!("/v1/withdrawals/{wid}"),
        "/v1/withdrawals/W-nothing".to_string(),
        format!("/v1/coupons/{cid}"),
        "/v1/coupons/nothing".to_string(),
        "/v1/partners/A".to_string(),
        "/v1/partners/NOBODY".to_string(),
    ] {
        forbidden(&s, "GET", &path, &b, None);
    }
    // B asks for A's data by partner_id: 403.
    for path in [
        "/v1/incentive-months?year=2026&partner_id=A".to_string(),
        "/v1/rollover?month=2026-07&partner_id=A".to_string(),
        "/v1/quarterly-payments/eligibility?quarter=2026Q3&partner_id=A".to_string(),
        format!("/v1/statements/{month}?partner_id=A"),
        format!("/v1/statements/{month}?partner_id=A&format=csv"),
        "/v1/balances?partner_id=A".to_string(),
        "/v1/withdrawals/withdrawable?currency=CNY&partner_id=A".to_string(),
        "/v1/coupons?partner_id=A".to_string(),
        "/v1/adjustment-records?partner_id=A".to_string(),
        "/v1/lab-points?partner_id=A".to_string(),
    ] {
        forbidden(&s, "GET", &path, &b, None);
    }
    // B may not act on A's things or in A's name.
    forbidden(&s, "POST", "/v1/quarterly-payments", &b, Some(json!({"quarter": "2026Q3", "partner_id": "A"})));
    forbidden(&s, "POST", "/v1/incentive-months/2026-07/apply?partner_id=A", &b, None);
    forbidden(
        &s,
        "POST",
        "/v1/withdrawals",
        &b,
        Some(json!({"amount": "1.00", "currency": "CNY", "partner_id": "A",
        "bank_account": {"holder_name": "A Legal Name Co., Ltd.", "number": "1", "bank": "ICBC"}})),
    );
    forbidden(
        &s,
        "POST",
        "/v1/coupons",
        &b,
        Some(json!({"coupon_id": "X1", "customer_id": a.customer, "amount": "1.00",
        "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z", "partner_id": "A"})),
    );
    forbidden(
        &s,
        "POST",
        "/v1/allocations",
        &b,
        Some(json!({"counterparty": {"type": "customer", "id": a.customer},
        "amount": "1.00", "currency": "CNY", "partner_id": "A"})),
    );
    forbidden(&s, "POST", "/v1/lab-points", &b, Some(json!({"points": 10, "partner_id": "A"})));
    forbidden(&s, "PUT", &format!("/v1/lab-points/{lab_id}"), &b, Some(json!({"points": 20})));
    forbidden(&s, "PUT", "/v1/lab-points/LP-nothing", &b, Some(json!({"points": 20})));
    for path in ["/v1/opportunities/OPP-A/accept", "/v1/opportunities/OPP-A/apply", "/v1/opportunities/OPP-NONE/accept"]
    {
        forbidden(&s, "POST", path, &b, None);
    }
    forbidden(
        &s,
        "POST",
        &format!("/v1/customers/{}/association-type", a.customer),
        &b,
        Some(json!({"association_type": "referral"})),
    );
    forbidden(&s, "POST", "/v1/customers/NOBODY/association-type", &b, Some(json!({"association_type": "referral"})));
    // Operator-only steps, for any partner: 403.
    forbidden(&s, "POST", &format!("/v1/quarterly-payments/{pid}/approve"), &b, None);
    forbidden(&s, "POST", &format!("/v1/withdrawals/{wid}/paid"), &b, None);
    forbidden(
        &s,
        "POST",
        &format!("/v1/coupons/{cid}/usage"),
        &b,
        Some(json!({"usage_id": "U1", "amount": "1.00", "used_at": "2026-11-01T00:00:00Z"})),
    );
    forbidden(&s, "POST", "/v1/incentive-months/A/2026-08/close", &b, None);
    forbidden(&s, "POST", "/v1/partners/A/funds", &b, Some(json!({"amount": "1.00", "currency": "CNY"})));
    // B's own writes cannot reach A's things either: A's coupon in B's batch is not found.
    let (status, batch) =
        s.call("POST", "/v2/promotions/benefits/partner-coupons/reclaim", Some(&b), Some(json!({"coupon_ids": [cid]})));
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["results"][0]["error_code"], "COUPON_NOT_FOUND");
    // B's own customer is fine, A's is not B's: allocation refused without telling more.
    let (status, answer) = s.call(
        "POST",
        "/v1/allocations",
        Some(&b),
        Some(json!({"counterparty": {"type": "customer", "id": a.customer}, "amount": "1.00", "currency": "CNY"})),
    );
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("NOT_YOUR_CUSTOMER")), "{answer}");
    // The global log and the trial balance are not for partners.
    forbidden(&s, "GET", "/v1/events", &b, None);
    forbidden(&s, "GET", "/v1/streams/partner-A/events", &b, None);
    forbidden(&s, "GET", "/v1/trial-balance", &b, None);
    forbidden(&s, "GET", "/v1/audit/verify", &b, None);
    assert_eq!(s.events_total(), before, "nothing B tried stored anything");

    // The token works as a bearer token too; a wrong one is 401.
    let bearer = format!("Bearer {b}");
    let (status, own) = s.send("GET", "/v1/coupons", None, &[("Authorization", &bearer)], None);
    assert_eq!((status, own["total"].as_u64()), (200, Some(0)), "{own}");
    let (status, own) = s.send("GET", "/v1/coupons?partner_id=A", None, &[("Authorization", &bearer)], None);
    assert_eq!((status, own["error_code"].as_str()), (403, Some("FORBIDDEN")), "{own}");
    let (status, own) = s.send("GET", "/v1/coupons", None, &[("Authorization", "Bearer not-a-token")], None);
    assert_eq!((status, own["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{own}");

    // B's own views hold nothing of A's.
    let own = read(&s, "/v1/incentive-months?year=2026", &b);
    assert_eq!(own["total"], 0, "{own}");
    let own = read(&s, "/v1/coupons", &b);
    assert_eq!(own["total"], 0, "{own}");
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &b)), 0);

    // Admin: the missing ids are 404, A's things are there.
    for path in [
        "/v1/quarterly-payments/QP-2026Q3-CNY-nothing",
        "/v1/withdrawals/W-nothing",
        "/v1/coupons/nothing",
        "/v1/partners/NOBODY",
    ] {
        let (status, body) = s.call("GET", path, Some(ADMIN_TOKEN), None);
        assert_eq!((status, body["error_code"].as_str()), (404, Some("NOT_FOUND")), "{path}: {body}");
    }

    // The auditor reads A's everything...
    let at = format!("min_position={}", s.events_total());
    assert_eq!(read(&s, &format!("/v1/quarterly-payments/{pid}"), &auditor), mine);
    assert_eq!(read(&s, &format!("/v1/withdrawals/{wid}"), &auditor)["partner_id"], "A");
    assert_eq!(read(&s, &format!("/v1/coupons/{cid}"), &auditor)["coupon_id"], cid.as_str());
    assert_eq!(read(&s, &format!("/v1/incentive-months?year=2026&partner_id=A&{at}"), &auditor)["total"], 1);
    assert_eq!(read(&s, &format!("/v1/statements/{month}?partner_id=A&{at}"), &auditor)["partner_id"], "A");
    assert!(!read(&s, &format!("/v1/balances?partner_id=A&{at}"), &auditor)["balances"].as_array().unwrap().is_empty());
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY&partner_id=A", &auditor)), 3000);
    assert_eq!(read(&s, "/v1/lab-points?partner_id=A", &auditor)["total"], 1);
    assert_eq!(read(&s, "/v1/partners/A", &auditor)["partner_id"], "A");
    assert!(read(&s, "/v1/events?limit=1000", &auditor)["items"].as_array().unwrap().len() as u64 == s.events_total());
    assert_eq!(read(&s, "/v1/streams/partner-A/events", &auditor)["total"], 3);
    assert_balanced(&s, &auditor, s.events_total());
    assert_eq!(read(&s, "/v1/audit/verify", &auditor)["ok"], true);
    // ...but partner-scoped reads need a partner_id.
    let (status, body) = s.call("GET", "/v1/incentive-months?year=2026", Some(&auditor), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");

    // ...and writes nothing, through any door.
    let before = s.events_total();
    for (method, path, body) in [
        ("POST", "/v1/credentials".to_string(), Some(json!({"role": "auditor"}))),
        ("POST", "/v1/partners".to_string(), Some(json!({"partner_id": "Z", "name": "Z", "kind": "distributor"}))),
        ("POST", "/v1/partners/A/certifications".to_string(), Some(json!({"kind": "real_name", "legal_name": "Z"}))),
        ("POST", "/v1/partners/A/funds".to_string(), Some(json!({"amount": "1.00", "currency": "CNY"}))),
        ("POST", "/v1/partners/A/coupon-quota".to_string(), Some(json!({"amount": "1.00", "currency": "CNY"}))),
        (
            "POST",
            "/v1/customers".to_string(),
            Some(json!({"customer_id": "Z1", "partner_id": "A", "association_type": "resale"})),
        ),
        (
            "POST",
            format!("/v1/customers/{}/association-type", a.customer),
            Some(json!({"association_type": "referral"})),
        ),
        (
            "POST",
            "/v1/policies".to_string(),
            Some(json!({"effective_month": "2026-12", "currency": "CNY", "rates": []})),
        ),
        (
            "POST",
            "/v1/consumption".to_string(),
            Some(
                json!({"records": [line("Z-R1", "A-C1", "ecs", "1.00", "2026-08-01T00:00:00Z", "2026-08-01T00:00:00Z")]}),
            ),
        ),
        (
            "POST",
            "/v1/consumption/A-R1/refunds".to_string(),
            Some(json!({"refund_id": "Z", "amount": "1.00", "settled_at": "2026-08-01T00:00:00Z"})),
        ),
        ("POST", "/v1/incentive-months/A/2026-08/close".to_string(), None),
        ("POST", "/v1/incentive-months/2026-08/apply?partner_id=A".to_string(), None),
        ("POST", "/v1/quarterly-payments".to_string(), Some(json!({"quarter": "2026Q3", "partner_id": "A"}))),
        ("POST", format!("/v1/quarterly-payments/{pid}/approve"), None),
        ("POST", format!("/v1/withdrawals/{wid}/paid"), None),
        (
            "POST",
            "/v1/withdrawals".to_string(),
            Some(
                json!({"amount": "1.00", "currency": "CNY", "partner_id": "A", "bank_account": {"holder_name": "A Legal Name Co., Ltd.", "number": "1", "bank": "ICBC"}}),
            ),
        ),
        (
            "POST",
            "/v1/allocations".to_string(),
            Some(
                json!({"counterparty": {"type": "customer", "id": "A-C1"}, "amount": "1.00", "currency": "CNY", "partner_id": "A"}),
            ),
        ),
        (
            "POST",
            "/v1/reclaims".to_string(),
            Some(
                json!({"counterparty": {"type": "customer", "id": "A-C1"}, "amount": "1.00", "currency": "CNY", "partner_id": "A"}),
            ),
        ),
        (
            "POST",
            "/v1/coupons".to_string(),
            Some(
                json!({"coupon_id": "Z", "customer_id": "A-C1", "amount": "1.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z", "partner_id": "A"}),
            ),
        ),
        (
            "POST",
            format!("/v1/coupons/{cid}/usage"),
            Some(json!({"usage_id": "Z", "amount": "1.00", "used_at": "2026-11-01T00:00:00Z"})),
        ),
        (
            "POST",
            "/v2/promotions/benefits/partner-coupons/reclaim".to_string(),
            Some(json!({"coupon_ids": [cid], "partner_id": "A"})),
        ),
        (
            "POST",
            "/v1/opportunities".to_string(),
            Some(json!({"opportunity_id": "O1", "partner_id": "A", "offering": "x", "core_tag": true})),
        ),
        ("POST", "/v1/lab-points".to_string(), Some(json!({"points": 10, "partner_id": "A"}))),
        ("POST", format!("/v1/lab-points/{lab_id}/grant"), None),
        ("POST", "/v1/opportunities/OPP-A/accept".to_string(), None),
        ("POST", "/v1/opportunities/OPP-A/deliver".to_string(), Some(json!({"delivery_end_date": "2026-08-01"}))),
        ("PUT", format!("/v1/lab-points/{lab_id}"), Some(json!({"points": 20}))),
    ] {
        forbidden(&s, method, &path, &auditor, body);
    }
    assert_eq!(s.events_total(), before, "the auditor stored nothing");
}
