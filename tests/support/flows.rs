//! Steps of the stories the end-to-end tests walk through HTTP: each asserts the step
//! succeeded and answers the body, so a test reads as the story it tells.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::{Server, ADMIN_TOKEN};

/// When test customers were first associated: before every consumption line of the tests.
pub const SINCE: &str = "2026-01-01T00:00:00Z";

/// Asserts `status`, and `error_code` when one is given; answers the body.
#[track_caller]
pub fn expect(answer: (u16, Value), status: u16, code: Option<&str>) -> Value {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    if let Some(code) = code {
        assert_eq!(body["error_code"].as_str(), Some(code), "{body}");
        assert!(body["error_msg"].is_string(), "an error says what went wrong: {body}");
    }
    body
}

/// A write that must store events: 201, and a `position`.
#[track_caller]
pub fn created(s: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    let body = expect(s.call(method, path, Some(token), body), 201, None);
    assert!(body["position"].as_u64().is_some_and(|p| p > 0), "a write answers its position: {body}");
    body
}

/// A read that must succeed.
#[track_caller]
pub fn read(s: &Server, path: &str, token: &str) -> Value {
    expect(s.call("GET", path, Some(token), None), 200, None)
}

/// The `position` of a write's answer.
pub fn pos(answer: &Value) -> u64 {
    answer["position"].as_u64().unwrap_or_else(|| panic!("no position in {answer}"))
}

/// The amount string of a money object, checked to be in `currency`.
#[track_caller]
pub fn amount(money: &Value, currency: &str) -> String {
    assert_eq!(money["currency"], currency, "{money}");
    money["amount"].as_str().unwrap_or_else(|| panic!("money amounts are strings: {money}")).to_string()
}

/// The amount of a CNY money object as a number of cents (so "5" and "5.00" compare equal).
#[track_caller]
pub fn cents(money: &Value) -> i64 {
    let a = amount(money, "CNY");
    let (whole, frac) = a.split_once('.').unwrap_or((&a, ""));
    let neg = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap_or_else(|_| panic!("{a}"));
    let frac = format!("{frac:0<2}");
    assert!(frac.len() == 2 || frac[2..].bytes().all(|b| b == b'0'), "more than 2 decimals: {a}");
    let c = whole * 100 + frac[..2].parse::<i64>().unwrap();
    if neg {
        -c
    } else {
        c
    }
}

pub fn register_partner(s: &Server, id: &str, name: &str, kind: &str, parent: Option<&str>) -> Value {
    let mut body = json!({"partner_id": id, "name": name, "kind": kind});
    if let Some(p) = parent {
        body["parent_id"] = json!(p);
    }
    created(s, "POST", "/v1/partners", ADMIN_TOKEN, Some(body))
}

pub fn certify_real_name(s: &Server, id: &str, legal_name: &str) -> Value {
    created(
        s,
        "POST",
        &format!("/v1/partners/{id}/certifications"),
        ADMIN_TOKEN,
        Some(json!({"kind": "real_name", "legal_name": legal_name})),
    )
}

pub fn certify_business_info(s: &Server, id: &str, holder_name: &str) -> Value {
    created(
        s,
        "POST",
        &format!("/v1/partners/{id}/certifications"),
        ADMIN_TOKEN,
        Some(json!({
            "kind": "business_info",
            "bank_account": {"holder_name": holder_name, "number": "6222000011112222", "bank": "ICBC"},
            "tax_id": "91110000MA0000000X",
        })),
    )
}

/// Both certifications of §1, the bank account in the legal name.
pub fn certify(s: &Server, id: &str, legal_name: &str) {
    certify_real_name(s, id, legal_name);
    certify_business_info(s, id, legal_name);
}

/// A partner with both certifications and a partner token.
pub fn certified_partner(s: &Server, id: &str, kind: &str, parent: Option<&str>) -> String {
    register_partner(s, id, &format!("{id} Ltd"), kind, parent);
    certify(s, id, &format!("{id} Legal Name Co., Ltd."));
    s.credential("partner", Some(id))
}

/// Associates a customer with a partner from [`SINCE`] on (so that consumption of the
/// past months finds its partner).
pub fn associate(s: &Server, customer: &str, partner: &str, association_type: &str) -> Value {
    created(
        s,
        "POST",
        "/v1/customers",
        ADMIN_TOKEN,
        Some(
            json!({"customer_id": customer, "partner_id": partner, "association_type": association_type, "effective_at": SINCE}),
        ),
    )
}

/// Associates a customer from now on (docs/API.md's body, nothing more).
pub fn associate_now(s: &Server, customer: &str, partner: &str, association_type: &str) -> Value {
    created(
        s,
        "POST",
        "/v1/customers",
        ADMIN_TOKEN,
        Some(json!({"customer_id": customer, "partner_id": partner, "association_type": association_type})),
    )
}

/// A CNY policy from `month` on.
pub fn publish_policy(s: &Server, month: &str, rates: &[(&str, &str)]) -> Value {
    let rates: Vec<Value> = rates.iter().map(|(p, r)| json!({"product": p, "rate": r})).collect();
    created(
        s,
        "POST",
        "/v1/policies",
        ADMIN_TOKEN,
        Some(json!({"effective_month": month, "currency": "CNY", "rates": rates})),
    )
}

/// One CNY consumption line.
pub fn line(
    record_id: &str,
    customer: &str,
    product: &str,
    amount: &str,
    consumed_at: &str,
    settled_at: &str,
) -> Value {
    json!({
        "record_id": record_id, "customer_id": customer, "product": product, "amount": amount,
        "currency": "CNY", "consumed_at": consumed_at, "settled_at": settled_at,
    })
}

/// Feeds lines; answers the whole answer (`results`, `position`).
pub fn consume(s: &Server, records: Vec<Value>) -> (u16, Value) {
    s.call("POST", "/v1/consumption", Some(ADMIN_TOKEN), Some(json!({ "records": records })))
}

/// Feeds lines that must all be stored.
#[track_caller]
pub fn consume_ok(s: &Server, records: Vec<Value>) -> Value {
    let n = records.len();
    let body = expect(consume(s, records), 201, None);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), n, "{body}");
    assert!(results.iter().all(|r| r["status"] == "stored"), "{body}");
    body
}

pub fn close(s: &Server, partner: &str, month: &str) -> Value {
    created(s, "POST", &format!("/v1/incentive-months/{partner}/{month}/close"), ADMIN_TOKEN, None)
}

pub fn apply(s: &Server, token: &str, month: &str) -> Value {
    created(s, "POST", &format!("/v1/incentive-months/{month}/apply"), token, None)
}

pub fn review(s: &Server, partner: &str, month: &str, decision: &str) -> Value {
    created(
        s,
        "POST",
        &format!("/v1/incentive-months/{partner}/{month}/review"),
        ADMIN_TOKEN,
        Some(json!({"decision": decision, "comment": "checked against the bills"})),
    )
}

pub fn finalize(s: &Server, partner: &str, month: &str, body: Value) -> Value {
    created(s, "POST", &format!("/v1/incentive-months/{partner}/{month}/finalize"), ADMIN_TOKEN, Some(body))
}

/// Close, apply, pass and finalize (at the accrued amount) one month.
pub fn finalize_month(s: &Server, partner: &str, token: &str, month: &str) -> Value {
    close(s, partner, month);
    apply(s, token, month);
    review(s, partner, month, "pass");
    finalize(s, partner, month, json!({}))
}

/// The partner's months of `year` by month (CNY), as the partner sees them.
pub fn months(s: &Server, token: &str, year: i32, min_position: u64) -> std::collections::BTreeMap<String, Value> {
    let list = read(s, &format!("/v1/incentive-months?year={year}&min_position={min_position}"), token);
    assert_eq!(list["total"].as_u64(), Some(list["items"].as_array().unwrap().len() as u64), "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["currency"] == "CNY")
        .map(|m| (m["month"].as_str().unwrap().to_string(), m.clone()))
        .collect()
}

/// The partner's balances by account (`?min_position=`), as amounts.
pub fn balances(s: &Server, token: &str, query: &str) -> std::collections::BTreeMap<String, Value> {
    let b = read(s, &format!("/v1/balances?{query}"), token);
    b["balances"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|x| (x["account"].as_str().unwrap().to_string(), x["balance"].clone()))
        .collect()
}

/// The trial balance must balance; answers it.
#[track_caller]
pub fn assert_balanced(s: &Server, token: &str, min_position: u64) -> Value {
    let tb = read(s, &format!("/v1/trial-balance?min_position={min_position}"), token);
    assert_eq!(tb["balanced"], true, "{tb}");
    for c in tb["currencies"].as_array().unwrap() {
        assert_eq!(c["debits"], c["credits"], "{tb}");
    }
    tb
}

/// A partner with a paid 2026Q3 (July finalized at 50.00 from a 1000.00 `ecs` line, paid by
/// cloud account credit), an approved withdrawal of 20.00 and a coupon; answers the ids.
/// A CNY policy for `ecs` at 5% from 2026-07 must be published.
pub struct PaidPartner {
    pub partner: String,
    pub token: String,
    pub customer: String,
    pub payment_id: String,
    pub withdrawal_id: String,
    pub coupon_id: String,
    pub position: u64,
}

/// A certified distributor whose 2026Q3 payment (July finalized at 50.00 from a 1000.00
/// `ecs` line of its resale customer `{partner}-C1`) is requested, approved and invoiced:
/// `invoice_received`. Answers (token, customer, payment id). A CNY policy for `ecs` at 5%
/// from 2026-07 must be published.
pub fn invoice_received_partner(s: &Server, partner: &str) -> (String, String, String) {
    let token = certified_partner(s, partner, "distributor", None);
    let customer = format!("{partner}-C1");
    associate(s, &customer, partner, "resale");
    consume_ok(
        s,
        vec![line(
            &format!("{partner}-R1"),
            &customer,
            "ecs",
            "1000.00",
            "2026-07-10T02:00:00Z",
            "2026-07-12T02:00:00Z",
        )],
    );
    finalize_month(s, partner, &token, "2026-07");
    let payment = created(s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    let payment_id = payment["payment_id"].as_str().unwrap().to_string();
    for step in ["approve", "invoice-list", "invoice-received"] {
        created(s, "POST", &format!("/v1/quarterly-payments/{payment_id}/{step}"), ADMIN_TOKEN, None);
    }
    (token, customer, payment_id)
}

pub fn paid_partner(s: &Server, partner: &str) -> PaidPartner {
    let (token, customer, payment_id) = invoice_received_partner(s, partner);
    created(
        s,
        "POST",
        &format!("/v1/quarterly-payments/{payment_id}/pay"),
        ADMIN_TOKEN,
        Some(json!({"method": "cloud_account_credit"})),
    );
    let legal_name = format!("{partner} Legal Name Co., Ltd.");
    let w = created(
        s,
        "POST",
        "/v1/withdrawals",
        &token,
        Some(json!({"amount": "20.00", "currency": "CNY",
            "bank_account": {"holder_name": legal_name, "number": "6222000011112222", "bank": "ICBC"}})),
    );
    let withdrawal_id = w["withdrawal_id"].as_str().unwrap().to_string();
    created(s, "POST", &format!("/v1/withdrawals/{withdrawal_id}/approve"), ADMIN_TOKEN, None);
    created(
        s,
        "POST",
        &format!("/v1/partners/{partner}/coupon-quota"),
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    let coupon_id = format!("{partner}-CP1");
    let c = created(
        s,
        "POST",
        "/v1/coupons",
        &token,
        Some(
            json!({"coupon_id": coupon_id, "customer_id": customer, "amount": "30.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"}),
        ),
    );
    PaidPartner {
        partner: partner.to_string(),
        token,
        customer,
        payment_id,
        withdrawal_id,
        coupon_id,
        position: pos(&c),
    }
}

/// The position of the last event of `event_type` in the global log.
pub fn last_event_position(s: &Server, event_type: &str) -> u64 {
    let mut from = 1;
    let mut found = None;
    loop {
        let page = read(s, &format!("/v1/events?from_position={from}&limit=1000"), ADMIN_TOKEN);
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        for e in items {
            if e["type"] == event_type {
                found = e["position"].as_u64();
            }
            from = e["position"].as_u64().unwrap() + 1;
        }
    }
    found.unwrap_or_else(|| panic!("no {event_type} in the log"))
}
