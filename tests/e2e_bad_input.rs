//! Story 6, through the real binary: each class of bad input gets its status and error code
//! in docs/API.md's error shape, and stores nothing (the global log's `total` is unchanged):
//! malformed JSON, wrong types, unknown fields (also nested), an oversized body (413), a
//! body that is not JSON (415), bad months, bad amounts (3 decimals, negative, zero,
//! exponent, ...), unknown ids (404 for admin), over-long strings, control characters. And
//! idempotency by `X-Request-Id`: the same body again answers 200 with the first result
//! and stores nothing new; another body with the same id is `IDEMPOTENCY_CONFLICT`.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

const P: &str = "BAD";

/// Sends `body` as given with `content_type` (none if `None`); asserts the status and error
/// code, the request id echoed, and that nothing was stored.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn refused_raw(
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &[u8],
    status: u16,
    code: &str,
) -> Value {
    let before = s.events_total();
    let mut headers = vec![("X-Request-Id", "bad-1")];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    let (got, answer) = s.send_raw(method, path, Some(token), &headers, body);
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
    assert_eq!((got, answer["error_code"].as_str()), (status, Some(code)), "{method} {path} {shown}: {answer}");
    assert!(answer["error_msg"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    assert_eq!(answer["request_id"], "bad-1", "{answer}");
    assert_eq!(s.events_total(), before, "{method} {path} {shown} stored something");
    answer
}

/// A JSON body that must be refused with `status` and `code`, storing nothing.
#[track_caller]
fn refused(s: &Server, method: &str, path: &str, token: &str, body: Value, status: u16, code: &str) -> Value {
    refused_raw(s, method, path, token, Some("application/json"), body.to_string().as_bytes(), status, code)
}

#[track_caller]
fn refused_no_body(s: &Server, method: &str, path: &str, token: &str, status: u16, code: &str) {
    let before = s.events_total();
    let (got, answer) = s.call(method, path, Some(token), None);
    assert_eq!((got, answer["error_code"].as_str()), (status, Some(code)), "{method} {path}: {answer}");
    assert_eq!(s.events_total(), before, "{method} {path} stored something");
}

struct Fixture {
    s: Server,
    token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, P, "distributor", None);
    associate(&s, "BAD-C1", P, "resale");
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    consume_ok(&s, vec![line("BAD-R1", "BAD-C1", "ecs", "100.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")]);
    created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        Some(json!({"amount": "1000.00", "currency": "CNY"})),
    );
    created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/coupon-quota"),
        ADMIN_TOKEN,
        Some(json!({"amount": "1000.00", "currency": "CNY"})),
    );
    Fixture { s, token, _dir: dir }
}

#[test]
fn malformed_mistyped_unknown_oversized_and_non_json_bodies() {
    let Fixture { s, token, _dir } = fixture();
    let partners = "/v1/partners";
    // Malformed JSON.
    for body in [&b"{not json"[..], b"{\"partner_id\": \"X\"", b"", b"[]", b"null", b"{}x", b"\"X\""] {
        refused_raw(&s, "POST", partners, ADMIN_TOKEN, Some("application/json"), body, 400, "INVALID_FIELD");
    }
    refused_raw(
        &s,
        "POST",
        "/v1/allocations",
        &token,
        Some("application/json"),
        b"{\"counterparty\":",
        400,
        "INVALID_FIELD",
    );
    // Nested far deeper than any body of docs/API.md; a field given twice.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    refused_raw(&s, "POST", partners, ADMIN_TOKEN, Some("application/json"), deep.as_bytes(), 400, "INVALID_FIELD");
    let twice = br#"{"partner_id":"X1","partner_id":"X2","name":"n","kind":"distributor"}"#;
    refused_raw(&s, "POST", partners, ADMIN_TOKEN, Some("application/json"), twice, 400, "INVALID_FIELD");
    // Invalid UTF-8 inside a string.
    refused_raw(
        &s,
        "POST",
        partners,
        ADMIN_TOKEN,
        Some("application/json"),
        b"{\"partner_id\":\"X\xff\",\"name\":\"n\",\"kind\":\"distributor\"}",
        400,
        "INVALID_FIELD",
    );

    // Wrong types: the message names the field.
    let answer = refused(
        &s,
        "POST",
        partners,
        ADMIN_TOKEN,
        json!({"partner_id": 7, "name": "X", "kind": "distributor"}),
        400,
        "INVALID_FIELD",
    );
    assert!(answer["error_msg"].as_str().unwrap().contains("partner_id"), "{answer}");
    refused(
        &s,
        "POST",
        partners,
        ADMIN_TOKEN,
        json!({"partner_id": "X", "name": "X", "kind": "emperor"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        partners,
        ADMIN_TOKEN,
        json!({"partner_id": "X", "name": ["X"], "kind": "distributor"}),
        400,
        "INVALID_FIELD",
    );
    refused(&s, "POST", partners, ADMIN_TOKEN, json!({"partner_id": "X", "kind": "distributor"}), 400, "INVALID_FIELD");
    let answer = refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        json!({"amount": 10.5, "currency": "CNY"}),
        400,
        "INVALID_FIELD",
    );
    assert!(answer["error_msg"].as_str().unwrap().contains("amount"), "money amounts are strings: {answer}");
    refused(&s, "POST", "/v1/consumption", ADMIN_TOKEN, json!({"records": {"record_id": "X"}}), 400, "INVALID_FIELD");
    let answer = refused(
        &s,
        "POST",
        "/v1/consumption",
        ADMIN_TOKEN,
        json!({"records": [line("BAD-R9", "BAD-C1", "ecs", "1.00", "last tuesday", "2026-07-11T02:00:00Z")]}),
        400,
        "INVALID_FIELD",
    );
    assert!(answer["error_msg"].as_str().unwrap().contains("consumed_at"), "{answer}");
    refused(&s, "POST", "/v1/consumption", ADMIN_TOKEN, json!({"records": []}), 400, "INVALID_FIELD");
    refused(&s, "POST", "/v1/lab-points", &token, json!({"points": "50"}), 400, "INVALID_FIELD");
    refused(&s, "POST", "/v1/lab-points", &token, json!({"points": -10}), 400, "INVALID_FIELD");
    refused(&s, "POST", "/v1/lab-points", &token, json!({"points": 5_000_000_000u64}), 400, "INVALID_FIELD");
    refused(&s, "POST", "/v1/lab-points", &token, json!({"points": 50.5}), 400, "INVALID_FIELD");
    refused(&s, "POST", "/v1/lab-points", &token, json!({"points": 30}), 400, "INVALID_LAB_POINTS");
    refused(
        &s,
        "POST",
        "/v1/customers",
        ADMIN_TOKEN,
        json!({"customer_id": "X", "partner_id": P, "association_type": "resale", "effective_at": "soon"}),
        400,
        "INVALID_FIELD",
    );
    refused(&s, "POST", "/v1/quarterly-payments", &token, json!({"quarter": 20263}), 400, "INVALID_FIELD");

    // Unknown fields, at the top and nested.
    refused(
        &s,
        "POST",
        partners,
        ADMIN_TOKEN,
        json!({"partner_id": "X", "name": "X", "kind": "distributor", "extra": 1}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/consumption",
        ADMIN_TOKEN,
        json!({"records": [{"record_id": "BAD-R9", "customer_id": "BAD-C1", "product": "ecs", "amount": "1.00", "currency": "CNY", "consumed_at": "2026-07-10T02:00:00Z", "settled_at": "2026-07-11T02:00:00Z", "partner_id": P}]}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/policies",
        ADMIN_TOKEN,
        json!({"effective_month": "2026-12", "currency": "CNY", "rates": [{"product": "ecs", "rate": "0.1", "cap": "5"}]}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/certifications"),
        ADMIN_TOKEN,
        json!({"kind": "real_name", "legal_name": "X", "tax_id": "1"}),
        400,
        "INVALID_FIELD",
    );
    let bank = json!({"holder_name": "BAD Legal Name Co., Ltd.", "number": "1", "bank": "ICBC", "swift": "ICBKCNBJ"});
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/certifications"),
        ADMIN_TOKEN,
        json!({"kind": "business_info", "bank_account": bank, "tax_id": "1"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/withdrawals",
        &token,
        json!({"amount": "1.00", "currency": "CNY", "bank_account": bank}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/allocations",
        &token,
        json!({"counterparty": {"type": "customer", "id": "BAD-C1", "name": "x"}, "amount": "1.00", "currency": "CNY"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/allocations",
        &token,
        json!({"counterparty": {"type": "vendor", "id": "BAD-C1"}, "amount": "1.00", "currency": "CNY"}),
        400,
        "INVALID_FIELD",
    );
    // Read-your-writes: a position never written is waited for, then 503; a position that
    // is not a number is bad input.
    let (status, body) = s.call("GET", "/v1/balances?min_position=abc", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    let (status, body) = s.call("GET", "/v1/balances?min_position=-1", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    let (status, body) = s.call("GET", "/v1/statements/2026-07?min_position=1000000", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (503, Some("PROJECTION_LAGGING")), "{body}");
    // Unknown query parameters too.
    let (status, body) = s.call("GET", "/v1/incentive-months?year=2026&colour=red", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");

    // Oversized (413), before anything else is looked at. Just over the limit: the server
    // answers without reading the rest, and a much larger body could still be in the
    // client's write when the connection closes (a transport error, not an answer).
    let mut big = br#"{"records": ["#.to_vec();
    let one = line("BAD-BIG", "BAD-C1", "ecs", "1.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z").to_string();
    while big.len() < 1024 * 1024 - one.len() {
        big.extend_from_slice(one.as_bytes());
        big.push(b',');
    }
    big.extend_from_slice(one.as_bytes());
    big.extend_from_slice(b"]}");
    assert!(big.len() > 1024 * 1024 && big.len() < 1024 * 1024 + 1024);
    refused_raw(&s, "POST", "/v1/consumption", ADMIN_TOKEN, Some("application/json"), &big, 413, "PAYLOAD_TOO_LARGE");
    refused_raw(
        &s,
        "POST",
        "/v1/withdrawals",
        &token,
        Some("application/json"),
        &vec![b' '; 1024 * 1024 + 1],
        413,
        "PAYLOAD_TOO_LARGE",
    );

    // Not JSON (415): another type, none at all, a form.
    let fine = json!({"partner_id": "X", "name": "X", "kind": "distributor"}).to_string();
    refused_raw(&s, "POST", partners, ADMIN_TOKEN, Some("text/plain"), fine.as_bytes(), 415, "UNSUPPORTED_MEDIA_TYPE");
    refused_raw(&s, "POST", partners, ADMIN_TOKEN, None, fine.as_bytes(), 415, "UNSUPPORTED_MEDIA_TYPE");
    refused_raw(
        &s,
        "POST",
        "/v1/allocations",
        &token,
        Some("application/x-www-form-urlencoded"),
        b"amount=1.00&currency=CNY",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    refused_raw(
        &s,
        "POST",
        "/v1/withdrawals",
        &token,
        Some("application/xml"),
        b"<withdrawal/>",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    // With a charset it is JSON.
    let ok = s.send_raw(
        "POST",
        partners,
        Some(ADMIN_TOKEN),
        &[("Content-Type", "application/json; charset=utf-8")],
        fine.as_bytes(),
    );
    assert_eq!(ok.0, 201, "{}", ok.1);
}

#[test]
fn bad_months_and_bad_amounts() {
    let Fixture { s, token, _dir } = fixture();
    // Months: `YYYY-MM` only, a real month.
    for month in ["2026-13", "2026-00", "2026-7", "26-07", "2026_07", "July", "2026-07-01", "2026-1a", "２０２６-０７"]
    {
        refused_no_body(
            &s,
            "POST",
            &format!("/v1/incentive-months/{P}/{month}/close"),
            ADMIN_TOKEN,
            400,
            "INVALID_MONTH",
        );
        refused_no_body(&s, "POST", &format!("/v1/incentive-months/{month}/apply"), &token, 400, "INVALID_MONTH");
        refused(
            &s,
            "POST",
            &format!("/v1/incentive-months/{P}/{month}/review"),
            ADMIN_TOKEN,
            json!({"decision": "pass"}),
            400,
            "INVALID_MONTH",
        );
        refused(
            &s,
            "POST",
            &format!("/v1/incentive-months/{P}/{month}/finalize"),
            ADMIN_TOKEN,
            json!({}),
            400,
            "INVALID_MONTH",
        );
        refused(
            &s,
            "POST",
            "/v1/policies",
            ADMIN_TOKEN,
            json!({"effective_month": month, "currency": "CNY", "rates": []}),
            400,
            "INVALID_MONTH",
        );
        for path in [format!("/v1/statements/{month}"), format!("/v1/rollover?month={month}")] {
            let (status, body) = s.call("GET", &path, Some(&token), None);
            assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_MONTH")), "{path}: {body}");
        }
    }

    // Amounts: a plain decimal string, > 0, at most 2 decimals.
    let bad_amounts = [
        "10.001",
        "0.001",
        "-5.00",
        "-0.01",
        "0",
        "0.00",
        "1e3",
        "1E3",
        "1.5e2",
        "+5",
        " 10",
        "10 ",
        "10.",
        ".5",
        "NaN",
        "inf",
        "1,000.00",
        "１０",
        "0x10",
        "",
        "10000000000000",
        "12.34.56",
    ];
    let bank = json!({"holder_name": "BAD Legal Name Co., Ltd.", "number": "1", "bank": "ICBC"});
    for a in bad_amounts {
        let cases: Vec<(&str, String, &str, Value)> = vec![
            ("POST", format!("/v1/partners/{P}/funds"), ADMIN_TOKEN, json!({"amount": a, "currency": "CNY"})),
            ("POST", format!("/v1/partners/{P}/coupon-quota"), ADMIN_TOKEN, json!({"amount": a, "currency": "CNY"})),
            (
                "POST",
                "/v1/allocations".into(),
                &token,
                json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": a, "currency": "CNY"}),
            ),
            (
                "POST",
                "/v1/reclaims".into(),
                &token,
                json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": a, "currency": "CNY"}),
            ),
            (
                "POST",
                "/v1/coupons".into(),
                &token,
                json!({"coupon_id": "BAD-CP", "customer_id": "BAD-C1", "amount": a, "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"}),
            ),
            ("POST", "/v1/withdrawals".into(), &token, json!({"amount": a, "currency": "CNY", "bank_account": bank})),
            (
                "POST",
                "/v1/consumption/BAD-R1/refunds".into(),
                ADMIN_TOKEN,
                json!({"refund_id": "BAD-F", "amount": a, "settled_at": "2026-07-12T00:00:00Z"}),
            ),
            (
                "POST",
                format!("/v1/incentive-months/{P}/2026-07/finalize"),
                ADMIN_TOKEN,
                json!({"amount": a, "reason": "r"}),
            ),
        ];
        for (method, path, tok, body) in cases {
            if path.ends_with("/finalize") && matches!(a, "0" | "0.00") {
                continue; // a month may be finalized at 0 (docs/DOMAIN.md §5; e2e_money_edges)
            }
            refused(&s, method, &path, tok, body, 400, "INVALID_AMOUNT");
        }
        // A consumption batch answers line by line: the bad line is rejected, nothing stored.
        let before = s.events_total();
        let (status, answer) =
            consume(&s, vec![line("BAD-R2", "BAD-C1", "ecs", a, "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")]);
        assert_eq!(status, 200, "{a:?}: {answer}");
        assert_eq!(
            (answer["results"][0]["status"].as_str(), answer["results"][0]["error_code"].as_str()),
            (Some("rejected"), Some("INVALID_AMOUNT")),
            "{a:?}: {answer}"
        );
        assert_eq!(s.events_total(), before);
    }
    // Currencies: CNY or USD.
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        json!({"amount": "1.00", "currency": "EUR"}),
        400,
        "INVALID_CURRENCY",
    );
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        json!({"amount": "1.00", "currency": "cny"}),
        400,
        "INVALID_CURRENCY",
    );
    // Rates: at most 6 decimals, between 0 and 1.
    for rate in ["0.0000001", "1.5", "-0.1", "5%"] {
        refused(
            &s,
            "POST",
            "/v1/policies",
            ADMIN_TOKEN,
            json!({"effective_month": "2026-12", "currency": "CNY", "rates": [{"product": "ecs", "rate": rate}]}),
            400,
            "INVALID_RATE",
        );
    }
    // The largest amount and two decimals are fine.
    created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        Some(json!({"amount": "1000000000000", "currency": "CNY"})),
    );
    created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/funds"),
        ADMIN_TOKEN,
        Some(json!({"amount": "0.01", "currency": "CNY"})),
    );
}

#[test]
fn unknown_ids_long_strings_and_control_characters() {
    let Fixture { s, token, _dir } = fixture();
    // Unknown ids: 404 NOT_FOUND for the operator.
    for (method, path, body) in [
        ("POST", "/v1/partners/NOPE/funds", Some(json!({"amount": "1.00", "currency": "CNY"}))),
        ("POST", "/v1/partners/NOPE/coupon-quota", Some(json!({"amount": "1.00", "currency": "CNY"}))),
        ("POST", "/v1/partners/NOPE/certifications", Some(json!({"kind": "real_name", "legal_name": "X"}))),
        (
            "POST",
            "/v1/customers",
            Some(json!({"customer_id": "NEW-C", "partner_id": "NOPE", "association_type": "resale"})),
        ),
        ("POST", "/v1/customers/NOPE/association-type", Some(json!({"association_type": "referral"}))),
        (
            "POST",
            "/v1/consumption/NOPE/refunds",
            Some(json!({"refund_id": "F1", "amount": "1.00", "settled_at": "2026-07-12T00:00:00Z"})),
        ),
        ("POST", "/v1/incentive-months/NOPE/2026-07/close", None),
        ("POST", "/v1/incentive-months/NOPE/2026-07/review", Some(json!({"decision": "pass"}))),
        ("POST", "/v1/incentive-months/NOPE/2026-07/finalize", Some(json!({}))),
        ("POST", "/v1/quarterly-payments/NOPE/approve", None),
        ("POST", "/v1/quarterly-payments/NOPE/pay", Some(json!({"method": "bank_transfer"}))),
        ("POST", "/v1/withdrawals/NOPE/approve", None),
        (
            "POST",
            "/v1/coupons/NOPE/usage",
            Some(json!({"usage_id": "U1", "amount": "1.00", "used_at": "2026-11-01T00:00:00Z"})),
        ),
        ("POST", "/v1/lab-points/NOPE/grant", None),
        (
            "POST",
            "/v1/opportunities",
            Some(json!({"opportunity_id": "O1", "partner_id": "NOPE", "offering": "x", "core_tag": true})),
        ),
        ("POST", "/v1/opportunities/NOPE/deliver", Some(json!({"delivery_end_date": "2026-08-01"}))),
        ("GET", "/v1/partners/NOPE", None),
        ("GET", "/v1/quarterly-payments/NOPE", None),
        ("GET", "/v1/withdrawals/NOPE", None),
        ("GET", "/v1/coupons/NOPE", None),
        ("GET", "/v1/streams/partner-NOPE/events", None),
    ] {
        let before = s.events_total();
        let (status, answer) = s.call(method, path, Some(ADMIN_TOKEN), body);
        assert_eq!((status, answer["error_code"].as_str()), (404, Some("NOT_FOUND")), "{method} {path}: {answer}");
        assert_eq!(s.events_total(), before);
    }
    // The month of a known partner that has nothing: nothing to review.
    refused(
        &s,
        "POST",
        &format!("/v1/incentive-months/{P}/2026-08/review"),
        ADMIN_TOKEN,
        json!({"decision": "pass"}),
        404,
        "NOT_FOUND",
    );
    // Unknown actions are unknown routes.
    refused_no_body(&s, "POST", "/v1/withdrawals/NOPE/teleport", ADMIN_TOKEN, 404, "NOT_FOUND");

    // Over-long strings.
    let long = |n: usize| "x".repeat(n);
    refused(
        &s,
        "POST",
        "/v1/partners",
        ADMIN_TOKEN,
        json!({"partner_id": long(65), "name": "X", "kind": "distributor"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/partners",
        ADMIN_TOKEN,
        json!({"partner_id": "LONG", "name": long(201), "kind": "distributor"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/certifications"),
        ADMIN_TOKEN,
        json!({"kind": "real_name", "legal_name": long(201)}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        &format!("/v1/partners/{P}/certifications"),
        ADMIN_TOKEN,
        json!({"kind": "business_info", "bank_account": {"holder_name": "X", "number": long(101), "bank": "ICBC"}, "tax_id": "1"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/customers",
        ADMIN_TOKEN,
        json!({"customer_id": long(65), "partner_id": P, "association_type": "resale"}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/allocations",
        &token,
        json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": "1.00", "currency": "CNY", "remark": long(501)}),
        400,
        "INVALID_FIELD",
    );
    refused(
        &s,
        "POST",
        "/v1/coupons",
        &token,
        json!({"coupon_id": long(65), "customer_id": "BAD-C1", "amount": "1.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"}),
        400,
        "INVALID_FIELD",
    );
    let (status, answer) =
        consume(&s, vec![line(&long(65), "BAD-C1", "ecs", "1.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")]);
    assert_eq!((status, answer["results"][0]["error_code"].as_str()), (200, Some("INVALID_FIELD")), "{answer}");
    close(&s, P, "2026-07");
    apply(&s, &token, "2026-07");
    refused(
        &s,
        "POST",
        &format!("/v1/incentive-months/{P}/2026-07/review"),
        ADMIN_TOKEN,
        json!({"decision": "pass", "comment": long(1001)}),
        400,
        "INVALID_FIELD",
    );
    review(&s, P, "2026-07", "pass");
    refused(
        &s,
        "POST",
        &format!("/v1/incentive-months/{P}/2026-07/finalize"),
        ADMIN_TOKEN,
        json!({"amount": "1.00", "reason": long(1001)}),
        400,
        "INVALID_FIELD",
    );
    // A request id is at most 128 printable characters.
    let before = s.events_total();
    let (status, answer) =
        s.send("POST", "/v1/lab-points", Some(&token), &[("X-Request-Id", &long(129))], Some(&json!({"points": 10})));
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{answer}");
    assert_eq!(s.events_total(), before);

    // Control characters in text and ids.
    for text in ["Galaxy\u{0}Tech", "Galaxy\nTech", "Galaxy\tTech", "Galaxy\u{7}", "\u{1b}[31mRed", "Galaxy\u{85}"] {
        refused(
            &s,
            "POST",
            "/v1/partners",
            ADMIN_TOKEN,
            json!({"partner_id": "CTL", "name": text, "kind": "distributor"}),
            400,
            "INVALID_FIELD",
        );
        refused(
            &s,
            "POST",
            &format!("/v1/partners/{P}/certifications"),
            ADMIN_TOKEN,
            json!({"kind": "real_name", "legal_name": text}),
            400,
            "INVALID_FIELD",
        );
        refused(
            &s,
            "POST",
            &format!("/v1/partners/{P}/certifications"),
            ADMIN_TOKEN,
            json!({"kind": "business_info", "bank_account": {"holder_name": text, "number": "1", "bank": "ICBC"}, "tax_id": "1"}),
            400,
            "INVALID_FIELD",
        );
        refused(
            &s,
            "POST",
            "/v1/allocations",
            &token,
            json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": "1.00", "currency": "CNY", "remark": text}),
            400,
            "INVALID_FIELD",
        );
        refused(
            &s,
            "POST",
            "/v1/withdrawals",
            &token,
            json!({"amount": "1.00", "currency": "CNY", "bank_account": {"holder_name": text, "number": "1", "bank": "ICBC"}}),
            400,
            "INVALID_FIELD",
        );
    }
    for id in ["P 1", "P/1", "P\u{0}", "ＰＩ", "P:1", ""] {
        refused(
            &s,
            "POST",
            "/v1/partners",
            ADMIN_TOKEN,
            json!({"partner_id": id, "name": "X", "kind": "distributor"}),
            400,
            "INVALID_FIELD",
        );
        refused(
            &s,
            "POST",
            "/v1/customers",
            ADMIN_TOKEN,
            json!({"customer_id": id, "partner_id": P, "association_type": "resale"}),
            400,
            "INVALID_FIELD",
        );
    }
    // Blank where something must be said.
    refused(
        &s,
        "POST",
        "/v1/partners",
        ADMIN_TOKEN,
        json!({"partner_id": "BLANK", "name": "   ", "kind": "distributor"}),
        400,
        "INVALID_FIELD",
    );
}

#[test]
fn a_request_id_replays_the_first_result_and_refuses_another_body() {
    let Fixture { s, token, _dir } = fixture();
    let rid = |id: &'static str| [("X-Request-Id", id)];

    // An operator write.
    let body = json!({"partner_id": "IDEM", "name": "Idem Ltd", "kind": "distributor"});
    let (status, first) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid("r-partner"), Some(&body));
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid("r-partner"), Some(&body));
    assert_eq!((status, &again), (200, &first), "the same request answers the first result");
    assert_eq!(s.events_total(), before, "and stores nothing new");
    let other = json!({"partner_id": "IDEM2", "name": "Idem Ltd", "kind": "distributor"});
    let (status, answer) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid("r-partner"), Some(&other));
    assert_eq!(
        (status, answer["error_code"].as_str(), answer["request_id"].as_str()),
        (409, Some("IDEMPOTENCY_CONFLICT"), Some("r-partner")),
        "{answer}"
    );
    assert_eq!(s.events_total(), before);
    // Without a request id, the same registration again is a business conflict.
    let (status, answer) = s.call("POST", "/v1/partners", Some(ADMIN_TOKEN), Some(body.clone()));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("ALREADY_EXISTS")), "{answer}");

    // A partner write that creates an id: the replay names the same thing.
    let alloc = json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": "10.00", "currency": "CNY", "remark": "once"});
    let (status, first) = s.send("POST", "/v1/allocations", Some(&token), &rid("r-alloc"), Some(&alloc));
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send("POST", "/v1/allocations", Some(&token), &rid("r-alloc"), Some(&alloc));
    assert_eq!((status, &again), (200, &first), "a replay answers exactly the first answer, its time included");
    assert_eq!(s.events_total(), before);
    let more = json!({"counterparty": {"type": "customer", "id": "BAD-C1"}, "amount": "11.00", "currency": "CNY", "remark": "once"});
    let (status, answer) = s.send("POST", "/v1/allocations", Some(&token), &rid("r-alloc"), Some(&more));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
    // The same id on another path is another request.
    let (status, answer) = s.send("POST", "/v1/reclaims", Some(&token), &rid("r-alloc"), Some(&alloc));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
    assert_eq!(s.events_total(), before);
    // Request ids are scoped to the credential: another partner's r-alloc is its own.
    let other_token = certified_partner(&s, "IDEM-D", "distributor", None);
    let (status, answer) =
        s.send("POST", "/v1/lab-points", Some(&other_token), &rid("r-alloc"), Some(&json!({"points": 10})));
    assert_eq!(status, 201, "{answer}");

    // A coupon issue and a batch reclaim: the replay answers the same results.
    let coupon = json!({"coupon_id": "IDEM-CP", "customer_id": "BAD-C1", "amount": "5.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"});
    let (status, first) = s.send("POST", "/v1/coupons", Some(&token), &rid("r-coupon"), Some(&coupon));
    assert_eq!(status, 201, "{first}");
    let (status, again) = s.send("POST", "/v1/coupons", Some(&token), &rid("r-coupon"), Some(&coupon));
    assert_eq!((status, &again), (200, &first));
    let batch = json!({"coupon_ids": ["IDEM-CP", "NOPE"]});
    let (status, first) = s.send(
        "POST",
        "/v2/promotions/benefits/partner-coupons/reclaim",
        Some(&token),
        &rid("r-reclaim"),
        Some(&batch),
    );
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["results"][0]["status"], "success", "{first}");
    let before = s.events_total();
    let (status, again) = s.send(
        "POST",
        "/v2/promotions/benefits/partner-coupons/reclaim",
        Some(&token),
        &rid("r-reclaim"),
        Some(&batch),
    );
    assert_eq!((status, &again), (200, &first), "a replayed batch answers its first results");
    assert_eq!(s.events_total(), before);

    // A quarterly payment request replayed: the same payment, not ALREADY_REQUESTED.
    finalize_month(&s, P, &token, "2026-07");
    let q = json!({"quarter": "2026Q3"});
    let (status, first) = s.send("POST", "/v1/quarterly-payments", Some(&token), &rid("r-pay"), Some(&q));
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send("POST", "/v1/quarterly-payments", Some(&token), &rid("r-pay"), Some(&q));
    assert_eq!((status, &again), (200, &first));
    assert_eq!(s.events_total(), before);
    let (status, answer) = s.call("POST", "/v1/quarterly-payments", Some(&token), Some(q.clone()));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("ALREADY_REQUESTED")), "{answer}");

    // Operator steps replayed, the payment to the cloud account included (two streams).
    let id = first["payment_id"].as_str().unwrap().to_string();
    for (step, key) in [("approve", "r-approve"), ("invoice-list", "r-list"), ("invoice-received", "r-received")] {
        let path = format!("/v1/quarterly-payments/{id}/{step}");
        let (status, first) = s.send("POST", &path, Some(ADMIN_TOKEN), &[("X-Request-Id", key)], None);
        assert_eq!(status, 201, "{first}");
        let before = s.events_total();
        let (status, again) = s.send("POST", &path, Some(ADMIN_TOKEN), &[("X-Request-Id", key)], None);
        assert_eq!((status, &again), (200, &first), "{step}");
        assert_eq!(s.events_total(), before);
    }
    let pay = json!({"method": "cloud_account_credit"});
    let path = format!("/v1/quarterly-payments/{id}/pay");
    let (status, first) = s.send("POST", &path, Some(ADMIN_TOKEN), &rid("r-paid"), Some(&pay));
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send("POST", &path, Some(ADMIN_TOKEN), &rid("r-paid"), Some(&pay));
    assert_eq!((status, &again), (200, &first), "a replayed payment answers the first result");
    assert_eq!(s.events_total(), before, "and credits nothing twice");
    let other = json!({"method": "bank_transfer"});
    let (status, answer) = s.send("POST", &path, Some(ADMIN_TOKEN), &rid("r-paid"), Some(&other));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 500);

    // A withdrawal request replayed: the same withdrawal.
    let w = json!({"amount": "1.00", "currency": "CNY", "bank_account": {"holder_name": "BAD Legal Name Co., Ltd.", "number": "1", "bank": "ICBC"}});
    let (status, first) = s.send("POST", "/v1/withdrawals", Some(&token), &rid("r-withdraw"), Some(&w));
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send("POST", "/v1/withdrawals", Some(&token), &rid("r-withdraw"), Some(&w));
    assert_eq!((status, &again), (200, &first));
    assert_eq!(s.events_total(), before);
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 400, "held once");

    // An operator step without a body (close) replayed.
    let (status, first) =
        s.send("POST", "/v1/incentive-months/IDEM/2026-08/close", Some(ADMIN_TOKEN), &rid("r-close"), None);
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) =
        s.send("POST", "/v1/incentive-months/IDEM/2026-08/close", Some(ADMIN_TOKEN), &rid("r-close"), None);
    assert_eq!((status, &again["status"], &again["position"]), (200, &first["status"], &first["position"]), "{again}");
    assert_eq!(s.events_total(), before);
}

/// What a correct client may do and must not be refused for (issue 17, item 6).
#[test]
fn correct_clients_are_served() {
    let Fixture { s, token, _dir } = fixture();
    // The auth scheme is case-insensitive (RFC 7235).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (status, answer) = s.send(
            "GET",
            "/v1/withdrawals/withdrawable?currency=CNY",
            None,
            &[("Authorization", &format!("{scheme} {token}"))],
            None,
        );
        assert_eq!(status, 200, "{scheme}: {answer}");
    }
    // The same request with other key order and whitespace under one request id is a retry.
    let rid = [("X-Request-Id", "r-order"), ("Content-Type", "application/json")];
    let compact = br#"{"counterparty":{"type":"customer","id":"BAD-C1"},"amount":"2.00","currency":"CNY"}"#;
    let spaced = b"{ \"currency\" : \"CNY\",\n  \"amount\": \"2.00\",\n  \"counterparty\": {\"id\": \"BAD-C1\", \"type\": \"customer\"} }";
    let (status, first) = s.send_raw("POST", "/v1/allocations", Some(&token), &rid, compact);
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, again) = s.send_raw("POST", "/v1/allocations", Some(&token), &rid, spaced);
    assert_eq!((status, &again), (200, &first), "the same JSON, reordered, is the same request");
    assert_eq!(s.events_total(), before);
    // A month close replayed with a body it did not have is another request.
    let close = "/v1/incentive-months/BAD/2026-09/close";
    let (status, first) = s.send("POST", close, Some(ADMIN_TOKEN), &[("X-Request-Id", "r-close-2")], None);
    assert_eq!(status, 201, "{first}");
    let before = s.events_total();
    let (status, answer) =
        s.send("POST", close, Some(ADMIN_TOKEN), &[("X-Request-Id", "r-close-2")], Some(&json!({"month": "2026-10"})));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
    let (status, again) = s.send("POST", close, Some(ADMIN_TOKEN), &[("X-Request-Id", "r-close-2")], None);
    assert_eq!((status, &again["position"]), (200, &first["position"]), "{again}");
    assert_eq!(s.events_total(), before);
}

/// The billing feed's batch is one append per line (each idempotent by its `record_id`);
/// its `X-Request-Id` is kept by a receipt holding the answer: a retry answers the first
/// answer, rejected lines included, and another batch under the same id is refused whole.
#[test]
fn a_billing_batch_honours_its_request_id() {
    let Fixture { s, token: _, _dir } = fixture();
    let rid = |id: &'static str| [("X-Request-Id", id)];
    let stored = line("IDEM-R1", "BAD-C1", "ecs", "7.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z");
    let rejected = line("IDEM-R0", "NOBODY", "ecs", "7.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z");
    let lines = vec![stored.clone(), rejected];
    let (status, first) =
        s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &rid("r-bill"), Some(&json!({"records": lines})));
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["results"][0]["status"], "stored", "{first}");
    assert_eq!(first["results"][1]["status"], "rejected", "{first}");
    let before = s.events_total();
    // The same batch again: the first answer, word for word, and nothing stored.
    let (status, again) =
        s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &rid("r-bill"), Some(&json!({"records": lines})));
    assert_eq!((status, &again), (200, &first));
    assert_eq!(s.events_total(), before);
    // Another batch under the same id: refused before any of its lines is stored.
    let other = vec![line("IDEM-R2", "BAD-C1", "ecs", "8.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z")];
    let (status, answer) =
        s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &rid("r-bill"), Some(&json!({"records": other})));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
    assert_eq!(s.events_total(), before);
    let (status, fresh) = s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &[], Some(&json!({"records": other})));
    assert_eq!((status, &fresh["results"][0]["status"]), (201, &json!("stored")), "{fresh}");
    // A batch of duplicates under a new id stores no line; its answer is still kept.
    let (status, dup) =
        s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &rid("r-dup"), Some(&json!({"records": [stored]})));
    assert_eq!((status, &dup["results"][0]["status"]), (200, &json!("duplicate")), "{dup}");
    let (status, dup_again) =
        s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &rid("r-dup"), Some(&json!({"records": [stored]})));
    assert_eq!((status, &dup_again), (200, &dup));
    // Without a request id a batch keeps no receipt: its lines are one event each.
    let before = s.events_total();
    let third = vec![line("IDEM-R3", "BAD-C1", "ecs", "9.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z")];
    let (status, _) = s.send("POST", "/v1/consumption", Some(ADMIN_TOKEN), &[], Some(&json!({"records": third})));
    assert_eq!(status, 201);
    assert_eq!(s.events_total(), before + 1);
}
