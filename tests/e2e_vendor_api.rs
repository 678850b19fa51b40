//! The vendor-compatible partner API (docs/API.md) through the real binary, in exactly the wire
//! form of the vendor's Python SDK (`support::sdk`): its signed headers, its JSON (amounts as
//! numbers), its query encoding. Every route of the table: success, each refusal, isolation
//! between partners and between a distributor and another's reseller, paging and filters.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::sdk::{numbers, Sdk};
use support::{Server, ADMIN_TOKEN};

/// D1 (distributor) with its reseller R1, D2 with its reseller R2. Customers: C1 resale and
/// CR referral of D1, C2 resale of R1, C3 resale of D2. D1's pool holds 1000.00 CNY.
fn world(s: &Server) {
    register_partner(s, "D1", "Distributor One", "distributor", None);
    register_partner(s, "R1", "Reseller One", "reseller", Some("D1"));
    register_partner(s, "D2", "Distributor Two", "distributor", None);
    register_partner(s, "R2", "Reseller Two", "reseller", Some("D2"));
    associate(s, "C1", "D1", "resale");
    associate(s, "CR", "D1", "referral");
    associate(s, "C2", "R1", "resale");
    associate(s, "C3", "D2", "resale");
    created(s, "POST", "/v1/partners/D1/funds", ADMIN_TOKEN, Some(json!({"amount": "1000.00", "currency": "CNY"})));
    created(s, "POST", "/v1/partners/D2/funds", ADMIN_TOKEN, Some(json!({"amount": "50.00", "currency": "CNY"})));
}

#[track_caller]
fn refused(answer: (u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!((got, body["error_code"].as_str()), (status, Some(code)), "{body}");
    assert!(body["error_msg"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[track_caller]
fn ok(answer: (u16, Value)) -> Value {
    let (status, body) = answer;
    assert_eq!(status, 200, "{body}");
    body
}

/// The balance of `account_id` (ListPartnerBalances, optionally for a reseller) as the
/// digits of the JSON number the server wrote.
fn balance_text(sdk: &Sdk, query: &[(&str, &str)], account_id: &str) -> String {
    let (status, text) = sdk.get_text("/v2/accounts/partner-accounts/balances", query);
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let balances = answer["account_balances"].as_array().unwrap();
    let at = balances.iter().position(|b| b["account_id"] == account_id);
    let b = &balances[at.unwrap_or_else(|| panic!("{account_id} in {answer}"))];
    assert!(b["amount"].is_number(), "{b}");
    assert_eq!((b["measure_id"].as_u64(), b["account_type"].as_u64()), (Some(1), Some(1)), "{b}");
    numbers(&text, "amount")[at.unwrap()].clone()
}

#[test]
fn allocations_reclaims_balances_and_adjustment_records_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    let (d1, d2) = (Sdk::for_partner(&s, "D1"), Sdk::for_partner(&s, "D2"));

    // UpdateIndirectPartnerAccount, UpdateCustomerAccountAmount: amounts are JSON numbers.
    let to_r1 = ok(d1.post(
        "/v2/accounts/partner-accounts/indirect-partner-adjust",
        r#"{"indirect_partner_id": "R1", "amount": 300}"#,
    ));
    assert!(to_r1["transfer_id"].as_str().is_some_and(|t| t.starts_with("ADJ-")), "{to_r1}");
    let to_c1 = ok(d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1", "amount": 12.30}"#));
    let c1_transfer = to_c1["transfer_id"].as_str().unwrap().to_string();
    // For its reseller's customer, with indirect_partner_id: the reseller allocates.
    ok(d1.post(
        "/v2/accounts/partner-accounts/adjust-amount",
        r#"{"customer_id": "C2", "amount": 50.00, "indirect_partner_id": "R1"}"#,
    ));
    // 1000 - 300 - 12.30, exactly: never through a float.
    assert_eq!(balance_text(&d1, &[], "partner:D1:fund_pool"), "687.70");
    assert_eq!(balance_text(&d1, &[("indirect_partner_id", "R1")], "partner:R1:fund_received"), "250.00");

    // Refusals: each with its code and a 4xx, nothing stored.
    let before = s.events_total();
    refused(
        d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C3", "amount": 1}"#),
        409,
        "NOT_YOUR_CUSTOMER",
    );
    refused(
        d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1", "amount": 1000}"#),
        409,
        "INSUFFICIENT_BALANCE",
    );
    refused(
        d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1", "amount": 1.005}"#),
        400,
        "INVALID_AMOUNT",
    );
    refused(
        d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1", "amount": -5}"#),
        400,
        "INVALID_AMOUNT",
    );
    refused(d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1"}"#), 400, "INVALID_FIELD");
    refused(
        d1.post("/v2/accounts/partner-accounts/adjust-amount", r#"{"customer_id": "C1", "amount": 1, "coupon": 1}"#),
        400,
        "INVALID_FIELD",
    );
    // A distributor acts only for its own resellers.
    refused(
        d1.post(
            "/v2/accounts/partner-accounts/adjust-amount",
            r#"{"customer_id": "C3", "amount": 1, "indirect_partner_id": "R2"}"#,
        ),
        403,
        "FORBIDDEN",
    );
    refused(d1.get("/v2/accounts/partner-accounts/balances", &[("indirect_partner_id", "R2")]), 403, "FORBIDDEN");
    refused(
        d2.post(
            "/v2/accounts/partner-accounts/indirect-partner-adjust",
            r#"{"indirect_partner_id": "R1", "amount": 1}"#,
        ),
        404,
        "NOT_FOUND",
    );
    // The admin's token is not a partner's SDK credential.
    refused(
        s.send_raw(
            "POST",
            "/v2/accounts/partner-accounts/adjust-amount",
            Some(ADMIN_TOKEN),
            &[("Content-Type", "application/json")],
            br#"{"customer_id": "C1", "amount": 1}"#,
        ),
        403,
        "FORBIDDEN",
    );
    assert_eq!(s.events_total(), before, "a refused call stores nothing");

    // ReclaimToPartnerAccount, ReclaimIndirectPartnerAccount.
    let back = ok(d1.post("/v2/accounts/partner-accounts/reclaim", r#"{"customer_id": "C1", "amount": 5.3}"#));
    assert!(back["trans_id"].as_str().is_some_and(|t| t.starts_with("ADJ-")), "{back}");
    refused(
        d1.post("/v2/accounts/partner-accounts/reclaim", r#"{"customer_id": "C1", "amount": 7.01}"#),
        409,
        "INSUFFICIENT_BALANCE",
    );
    ok(d1.post(
        "/v2/accounts/partner-accounts/indirect-partner-reclaim",
        r#"{"indirect_partner_id": "R1", "amount": 10}"#,
    ));
    refused(
        d2.post(
            "/v2/accounts/partner-accounts/indirect-partner-reclaim",
            r#"{"indirect_partner_id": "R1", "amount": 1}"#,
        ),
        404,
        "NOT_FOUND",
    );
    ok(d1.post(
        "/v2/accounts/partner-accounts/reclaim",
        r#"{"customer_id": "C2", "amount": 20, "indirect_partner_id": "R1"}"#,
    ));
    assert_eq!(balance_text(&d1, &[], "partner:D1:fund_pool"), "703.00");
    assert_eq!(balance_text(&d1, &[("indirect_partner_id", "R1")], "partner:R1:fund_received"), "260.00");

    // ListPartnerAdjustRecords: D1's own records, newest first, in the vendor's shape.
    let path = "/v3/accounts/partner-accounts/adjust-records";
    let mine = ok(d1.get(path, &[]));
    assert_eq!(mine["total_count"], 4, "{mine}");
    let kinds: Vec<&str> =
        mine["records"].as_array().unwrap().iter().map(|r| r["operation_type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "SOURCE_OPERATION_BERETRIEVE",
            "SOURCE_OPERATION_BERETRIEVE",
            "SOURCE_OPERATION_BEADJUST",
            "SOURCE_OPERATION_BEADJUST"
        ]
    );
    let first_c1 = mine["records"].as_array().unwrap().iter().find(|r| r["trans_id"] == c1_transfer.as_str()).unwrap();
    assert_eq!(first_c1["customer_id"], "C1");
    assert_eq!(first_c1["amount"], "12.30", "the vendor's amount is a string");
    assert_eq!((first_c1["currency"].as_str(), first_c1["measure_id"].as_u64()), (Some("CNY"), Some(1)));
    assert!(first_c1["operation_time"].as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z')), "{first_c1}");
    // Blank parameters are no filter; each filter narrows; paging.
    let blank = ok(d1.get(
        path,
        &[
            ("customer_id", ""),
            ("operation_type", ""),
            ("operation_time_begin", ""),
            ("operation_time_end", ""),
            ("trans_id", ""),
        ],
    ));
    assert_eq!(blank["total_count"], 4, "{blank}");
    assert_eq!(ok(d1.get(path, &[("operation_type", "SOURCE_OPERATION_BEADJUST")]))["total_count"], 2);
    assert_eq!(ok(d1.get(path, &[("customer_id", "C1")]))["total_count"], 2);
    assert_eq!(ok(d1.get(path, &[("trans_id", &c1_transfer)]))["total_count"], 1);
    assert_eq!(ok(d1.get(path, &[("operation_time_begin", "2099-01-01T00:00:00Z")]))["total_count"], 0);
    assert_eq!(ok(d1.get(path, &[("operation_time_end", "2099-01-01T00:00:00Z")]))["total_count"], 4);
    let page = ok(d1.get(path, &[("offset", "1"), ("limit", "2")]));
    assert_eq!((page["total_count"].as_u64(), page["records"].as_array().unwrap().len()), (Some(4), 2));
    assert_eq!(page["records"][0]["trans_id"], mine["records"][1]["trans_id"]);
    refused(d1.get(path, &[("operation_type", "SOURCE_OPERATION_BOGUS")]), 400, "INVALID_FIELD");
    refused(d1.get(path, &[("limit", "101")]), 400, "INVALID_FIELD");
    refused(d1.get(path, &[("operation_time_begin", "yesterday")]), 400, "INVALID_FIELD");
    // With indirect_partner_id: the records the reseller made for its customers.
    let r1_records = ok(d1.get(path, &[("indirect_partner_id", "R1")]));
    let r1_ids: Vec<&str> =
        r1_records["records"].as_array().unwrap().iter().map(|r| r["customer_id"].as_str().unwrap()).collect();
    assert_eq!(r1_ids, ["C2", "C2"], "{r1_records}");
    // Another's reseller: 200 and nothing (the vendor's documented answer), never its records.
    let theirs = ok(d1.get(path, &[("indirect_partner_id", "R2")]));
    assert_eq!((theirs["total_count"].as_u64(), theirs["records"].as_array().unwrap().len()), (Some(0), 0));
    // D2 sees none of D1's records.
    assert_eq!(ok(d2.get(path, &[]))["total_count"], 0);
    assert_balanced(&s, ADMIN_TOKEN, s.last_write_position());
}

#[test]
fn coupons_and_quotas_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    let (d1, d2) = (Sdk::for_partner(&s, "D1"), Sdk::for_partner(&s, "D2"));
    // A quota grant gets a quota_id.
    let grant = created(
        &s,
        "POST",
        "/v1/partners/D1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "1000.00", "currency": "CNY"})),
    );
    let quota_id = grant["quota_id"].as_str().unwrap().to_string();
    let r1_grant = created(
        &s,
        "POST",
        "/v1/partners/R1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    let r1_quota = r1_grant["quota_id"].as_str().unwrap().to_string();

    // ListQuotaCoupons.
    let quotas = ok(d1.post("/v2/partners/coupon-quotas/query", r#"{"offset": 0, "limit": 10}"#));
    assert_eq!(quotas["total_count"], 1, "{quotas}");
    let q = &quotas["quotas"][0];
    assert_eq!(
        (q["quota_id"].as_str(), q["quota_type"].as_u64(), q["quota_status"].as_u64()),
        (Some(quota_id.as_str()), Some(0), Some(0))
    );
    let (_, text) = d1.post_text("/v2/partners/coupon-quotas/query", "{}");
    assert_eq!(
        (numbers(&text, "quota_value"), numbers(&text, "balance")),
        (vec!["1000.00".into()], vec!["1000.00".into()])
    );
    assert_eq!(ok(d1.post("/v2/partners/coupon-quotas/query", r#"{"quota_type": 1}"#))["total_count"], 0);
    assert_eq!(ok(d1.post("/v2/partners/coupon-quotas/query", r#"{"quota_ids": ["CQ-nope"]}"#))["total_count"], 0);
    let r1_quotas = ok(d1.post("/v2/partners/coupon-quotas/query", r#"{"indirect_partner_id": "R1"}"#));
    assert_eq!(r1_quotas["quotas"][0]["quota_id"], r1_quota.as_str());
    refused(d1.post("/v2/partners/coupon-quotas/query", r#"{"indirect_partner_id": "R2"}"#), 403, "FORBIDDEN");
    // A query sent as POST is a read: the same signed query again is answered again.
    for (status, body) in d1.post_twice("/v2/partners/coupon-quotas/query", r#"{"limit": 5}"#) {
        assert_eq!(status, 200, "{body}");
    }

    // CreatePartnerCoupons: one coupon per customer, each customer on its own.
    let body = format!(
        r#"{{"quota_id": "{quota_id}", "customer_ids": ["C1", "CR", "C3"], "face_value": 5.5, "expire_time": "2099-01-01T00:00:00Z"}}"#
    );
    let issued = ok(d1.post("/v2/promotions/benefits/partner-coupons", &body));
    let infos = issued["coupon_infos"].as_array().unwrap();
    assert_eq!(infos.len(), 1, "{issued}");
    assert_eq!(infos[0]["id"], "C1");
    let coupon = infos[0]["coupon_id"].as_str().unwrap().to_string();
    let errors: Vec<(&str, &str)> = issued["error_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["error_code"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [("CR", "NOT_RESALE_CUSTOMER"), ("C3", "NOT_YOUR_CUSTOMER")]);
    let (_, text) = d1.post_text("/v2/partners/coupon-quotas/query", r#"{"limit": 10}"#);
    assert_eq!(numbers(&text, "balance"), ["994.50"], "1000 - 5.5, exactly");
    let unknown_quota =
        r#"{"quota_id": "CQ-nope", "customer_ids": ["C1"], "face_value": 1, "expire_time": "2099-01-01T00:00:00Z"}"#;
    refused(d1.post("/v2/promotions/benefits/partner-coupons", unknown_quota), 404, "NOT_FOUND");
    let no_expiry = format!(r#"{{"quota_id": "{quota_id}", "customer_ids": ["C1"], "face_value": 1}}"#);
    refused(d1.post("/v2/promotions/benefits/partner-coupons", &no_expiry), 400, "INVALID_FIELD");
    let too_precise = format!(
        r#"{{"quota_id": "{quota_id}", "customer_ids": ["C1"], "face_value": 0.001, "expire_time": "2099-01-01T00:00:00Z"}}"#
    );
    refused(d1.post("/v2/promotions/benefits/partner-coupons", &too_precise), 400, "INVALID_AMOUNT");
    // Another partner's quota id is not found in its own quotas.
    let with_d1_quota = format!(
        r#"{{"quota_id": "{quota_id}", "customer_ids": ["C3"], "face_value": 1, "expire_time": "2099-01-01T00:00:00Z"}}"#
    );
    refused(d2.post("/v2/promotions/benefits/partner-coupons", &with_d1_quota), 404, "NOT_FOUND");

    // ListIssuedPartnerCoupons with the SDK's filters; blank is no filter.
    let path = "/v2/promotions/benefits/partner-coupons";
    let list = ok(d1.get(path, &[("customer_id", ""), ("coupon_id", "")]));
    assert_eq!(list["total_count"], 1, "{list}");
    let c = &list["user_coupons"][0];
    assert_eq!(
        (c["coupon_id"].as_str(), c["status"].as_u64(), c["coupon_type"].as_u64()),
        (Some(coupon.as_str()), Some(2), Some(1))
    );
    let (_, text) = d1.get_text(path, &[("limit", "10")]);
    assert_eq!((numbers(&text, "face_value"), numbers(&text, "balance")), (vec!["5.50".into()], vec!["5.50".into()]));
    assert_eq!(c["expire_time"], "2099-01-01T00:00:00Z");
    assert_eq!(ok(d1.get(path, &[("status", "5")]))["total_count"], 0);
    assert_eq!(ok(d1.get(path, &[("customer_id", "C2")]))["total_count"], 0);
    assert_eq!(ok(d1.get(path, &[("expire_time_end", "2098-01-01T00:00:00Z")]))["total_count"], 0);
    assert_eq!(ok(d2.get(path, &[]))["total_count"], 0, "another partner's coupons are not listed");

    // ReclaimPartnerCoupons, the SDK's single form: 204 and no body, else the item's error.
    let reclaim = "/v2/promotions/benefits/partner-coupons/reclaim";
    refused(d2.post(reclaim, &format!(r#"{{"coupon_id": "{coupon}"}}"#)), 409, "COUPON_NOT_FOUND");
    let (status, body) = d1.post(reclaim, &format!(r#"{{"coupon_id": "{coupon}"}}"#));
    assert_eq!((status, body), (204, Value::String(String::new())));
    refused(d1.post(reclaim, &format!(r#"{{"coupon_id": "{coupon}"}}"#)), 409, "COUPON_USED_UP");
    refused(d1.post(reclaim, r#"{"coupon_id": "KX"}"#), 409, "COUPON_NOT_FOUND");
    refused(d1.post(reclaim, r#"{"coupon_id": "K1", "coupon_ids": ["K2"]}"#), 400, "INVALID_FIELD");
    assert_eq!(ok(d1.get(path, &[("status", "5")]))["total_count"], 1);

    // For a reseller: D1 issues out of R1's quota to R1's customer and reclaims it.
    let for_r1 = format!(
        r#"{{"quota_id": "{r1_quota}", "customer_ids": ["C2"], "face_value": 10, "expire_time": "2099-01-01T00:00:00Z", "indirect_partner_id": "R1"}}"#
    );
    let issued = ok(d1.post(path, &for_r1));
    let r1_coupon = issued["coupon_infos"][0]["coupon_id"].as_str().unwrap().to_string();
    assert_eq!(ok(d1.get(path, &[("indirect_partner_id", "R1")]))["total_count"], 1);
    refused(
        d2.post(reclaim, &format!(r#"{{"coupon_id": "{r1_coupon}", "indirect_partner_id": "R1"}}"#)),
        403,
        "FORBIDDEN",
    );
    let (status, _) = d1.post(reclaim, &format!(r#"{{"coupon_id": "{r1_coupon}", "indirect_partner_id": "R1"}}"#));
    assert_eq!(status, 204);
    assert_balanced(&s, ADMIN_TOKEN, s.last_write_position());
}

#[test]
fn create_partner_coupons_retried_under_its_request_id_answers_the_first_answer_word_for_word() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    let d1 = Sdk::for_partner(&s, "D1");
    let grant = created(
        &s,
        "POST",
        "/v1/partners/D1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    let quota_id = grant["quota_id"].as_str().unwrap();
    let path = "/v2/promotions/benefits/partner-coupons";
    // CN is nobody's customer yet: refused.
    let body = format!(
        r#"{{"quota_id": "{quota_id}", "customer_ids": ["C1", "CN"], "face_value": 5, "expire_time": "2099-01-01T00:00:00Z"}}"#
    );
    let (status, first) = d1.post_with(path, &body, &[("X-Request-Id", "issue-1")]);
    assert_eq!(status, 200, "{first}");
    let answer: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(answer["coupon_infos"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["error_details"][0]["id"], "CN", "{answer}");
    // CN becomes D1's resale customer; the retry answers the first answer, issuing nothing.
    associate(&s, "CN", "D1", "resale");
    let head = s.events_total();
    for _ in 0..2 {
        let (status, again) = d1.post_with(path, &body, &[("X-Request-Id", "issue-1")]);
        assert_eq!((status, again.as_str()), (200, first.as_str()));
    }
    assert_eq!(s.events_total(), head, "nothing stored by the retries");
    let (_, text) = d1.post_text("/v2/partners/coupon-quotas/query", "{}");
    assert_eq!(numbers(&text, "balance"), ["95.00"], "one coupon of 5 issued");
    // The same id for another body is refused; a new id decides again, and CN gets one.
    let other = body.replace(r#""face_value": 5"#, r#""face_value": 6"#);
    let (status, conflict) = d1.post_with(path, &other, &[("X-Request-Id", "issue-1")]);
    assert_eq!(status, 409, "{conflict}");
    let (status, fresh) = d1.post_with(path, &body, &[("X-Request-Id", "issue-2")]);
    let fresh: Value = serde_json::from_str(&fresh).unwrap();
    assert_eq!((status, fresh["coupon_infos"].as_array().unwrap().len()), (200, 2), "{fresh}");
    assert_balanced(&s, ADMIN_TOKEN, s.last_write_position());
}

#[test]
fn a_distributor_lists_its_own_resellers_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    register_partner(&s, "R3", "Reseller Three", "reseller", Some("D1"));
    let (d1, d2, r1) = (Sdk::for_partner(&s, "D1"), Sdk::for_partner(&s, "D2"), Sdk::for_partner(&s, "R1"));
    let path = "/v2/partners/indirect-partners/query";
    let all = ok(d1.post(path, r#"{"offset": 0, "limit": 10}"#));
    assert_eq!(all["count"], 2, "{all}");
    let r = &all["indirect_partners"][0];
    assert_eq!(
        (r["indirect_partner_id"].as_str(), r["name"].as_str(), r["account_name"].as_str()),
        (Some("R1"), Some("Reseller One"), Some("R1"))
    );
    assert!(r["associated_on"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    let page = ok(d1.post(path, r#"{"offset": 1, "limit": 1}"#));
    assert_eq!(
        (page["count"].as_u64(), page["indirect_partners"][0]["indirect_partner_id"].as_str()),
        (Some(2), Some("R3"))
    );
    assert_eq!(ok(d1.post(path, r#"{"account_name": "R3"}"#))["count"], 1);
    assert_eq!(ok(d1.post(path, r#"{"account_name": ""}"#))["count"], 2, "blank is no filter");
    assert_eq!(ok(d1.post(path, r#"{"associated_on_begin": "2099-01-01T00:00:00Z"}"#))["count"], 0);
    assert_eq!(ok(d1.post(path, r#"{"indirect_partner_id": "R2"}"#))["count"], 0, "another's reseller is never listed");
    let theirs = ok(d2.post(path, "{}"));
    assert_eq!(
        (theirs["count"].as_u64(), theirs["indirect_partners"][0]["indirect_partner_id"].as_str()),
        (Some(1), Some("R2"))
    );
    assert_eq!(ok(r1.post(path, "{}"))["count"], 0, "a reseller has no resellers");
    refused(d1.post(path, r#"{"limit": 0}"#), 400, "INVALID_FIELD");
}

#[test]
fn a_signature_the_sdk_did_not_make_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    let (status, body) = s.send_raw(
        "GET",
        "/v2/accounts/partner-accounts/balances",
        None,
        &[
            ("Content-Type", "application/json"),
            ("X-Sdk-Date", &chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()),
            (
                "Authorization",
                "SDK-HMAC-SHA256 Access=AKNOPE, SignedHeaders=content-type;host;x-sdk-date, Signature=00000000000000000000000000000000000000000000000000000000000000ff",
            ),
        ],
        b"",
    );
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
}

/// `indirect_partner_id` naming another distributor's reseller, on every route that takes it:
/// refused (or, for the two lists the vendor documents so, nothing), nothing stored, nothing
/// of R2's shown. A blank one in a query is no filter: the caller's own.
#[test]
fn a_distributor_never_acts_for_another_distributors_reseller() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    associate(&s, "C4", "R2", "resale");
    let grant = created(
        &s,
        "POST",
        "/v1/partners/R2/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "50.00", "currency": "CNY"})),
    );
    let r2_quota = grant["quota_id"].as_str().unwrap().to_string();
    let (d1, d2) = (Sdk::for_partner(&s, "D1"), Sdk::for_partner(&s, "D2"));
    ok(d2.post(
        "/v2/accounts/partner-accounts/indirect-partner-adjust",
        r#"{"indirect_partner_id": "R2", "amount": 20}"#,
    ));
    ok(d2.post(
        "/v2/accounts/partner-accounts/adjust-amount",
        r#"{"customer_id": "C4", "amount": 5, "indirect_partner_id": "R2"}"#,
    ));
    let coupon = format!(
        r#"{{"quota_id": "{r2_quota}", "customer_ids": ["C4"], "face_value": 3, "expire_time": "2099-01-01T00:00:00Z", "indirect_partner_id": "R2"}}"#
    );
    let issued = ok(d2.post("/v2/promotions/benefits/partner-coupons", &coupon));
    let r2_coupon = issued["coupon_infos"][0]["coupon_id"].as_str().unwrap().to_string();

    let before = s.events_total();
    let writes = [
        (
            "/v2/accounts/partner-accounts/adjust-amount",
            r#"{"customer_id": "C4", "amount": 1, "indirect_partner_id": "R2"}"#.to_string(),
        ),
        (
            "/v2/accounts/partner-accounts/reclaim",
            r#"{"customer_id": "C4", "amount": 1, "indirect_partner_id": "R2"}"#.to_string(),
        ),
        ("/v2/promotions/benefits/partner-coupons", coupon.clone()),
        (
            "/v2/promotions/benefits/partner-coupons/reclaim",
            format!(r#"{{"coupon_id": "{r2_coupon}", "indirect_partner_id": "R2"}}"#),
        ),
        ("/v2/partners/coupon-quotas/query", r#"{"indirect_partner_id": "R2"}"#.to_string()),
    ];
    for (path, body) in &writes {
        refused(d1.post(path, body), 403, "FORBIDDEN");
    }
    for (path, body) in [
        ("/v2/accounts/partner-accounts/indirect-partner-adjust", r#"{"indirect_partner_id": "R2", "amount": 1}"#),
        ("/v2/accounts/partner-accounts/indirect-partner-reclaim", r#"{"indirect_partner_id": "R2", "amount": 1}"#),
    ] {
        refused(d1.post(path, body), 404, "NOT_FOUND");
    }
    for path in ["/v2/accounts/partner-accounts/balances", "/v2/promotions/benefits/partner-coupons"] {
        refused(d1.get(path, &[("indirect_partner_id", "R2")]), 403, "FORBIDDEN");
    }
    let records = ok(d1.get("/v3/accounts/partner-accounts/adjust-records", &[("indirect_partner_id", "R2")]));
    assert_eq!(records["total_count"], 0, "{records}");
    let resellers = ok(d1.post("/v2/partners/indirect-partners/query", r#"{"indirect_partner_id": "R2"}"#));
    assert_eq!(resellers["count"], 0, "{resellers}");
    assert_eq!(s.events_total(), before, "nothing stored by any of them");
    // R2's own distributor sees what is there.
    assert_eq!(
        ok(d2.get("/v3/accounts/partner-accounts/adjust-records", &[("indirect_partner_id", "R2")]))["total_count"],
        1
    );
    assert_eq!(
        ok(d2.get("/v2/promotions/benefits/partner-coupons", &[("indirect_partner_id", "R2")]))["total_count"],
        1
    );

    // A blank indirect_partner_id in a query is no filter: the caller's own.
    assert_eq!(
        balance_text(&d2, &[("indirect_partner_id", "")], "partner:D2:fund_pool"),
        balance_text(&d2, &[], "partner:D2:fund_pool")
    );
    let path = "/v2/promotions/benefits/partner-coupons";
    assert_eq!(ok(d2.get(path, &[("indirect_partner_id", "")])), ok(d2.get(path, &[])));
    let path = "/v3/accounts/partner-accounts/adjust-records";
    let own = ok(d2.get(path, &[]));
    assert_eq!(own["total_count"], 1, "{own}");
    assert_eq!(ok(d2.get(path, &[("indirect_partner_id", "")])), own);
}

/// Paging of the coupon lists: ListIssuedPartnerCoupons (query) and ListQuotaCoupons (body)
/// take the vendor's offset and limit over a total that does not change with the page.
#[test]
fn the_coupon_lists_page_with_offset_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    world(&s);
    associate(&s, "C5", "D1", "resale");
    associate(&s, "C6", "D1", "resale");
    let mut quotas = vec![];
    for amount in ["100.00", "200.00", "300.00"] {
        let grant = created(
            &s,
            "POST",
            "/v1/partners/D1/coupon-quota",
            ADMIN_TOKEN,
            Some(json!({"amount": amount, "currency": "CNY"})),
        );
        quotas.push(grant["quota_id"].as_str().unwrap().to_string());
    }
    let d1 = Sdk::for_partner(&s, "D1");
    let body = format!(
        r#"{{"quota_id": "{}", "customer_ids": ["C1", "C5", "C6"], "face_value": 2, "expire_time": "2099-01-01T00:00:00Z"}}"#,
        quotas[0]
    );
    assert_eq!(
        ok(d1.post("/v2/promotions/benefits/partner-coupons", &body))["coupon_infos"].as_array().unwrap().len(),
        3
    );

    let path = "/v2/promotions/benefits/partner-coupons";
    let all = ok(d1.get(path, &[]));
    let ids = |v: &Value| -> Vec<String> {
        v["user_coupons"].as_array().unwrap().iter().map(|c| c["coupon_id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(all["total_count"], 3, "{all}");
    let page = ok(d1.get(path, &[("offset", "1"), ("limit", "1")]));
    assert_eq!((page["total_count"].as_u64(), ids(&page)), (Some(3), vec![ids(&all)[1].clone()]));
    assert_eq!(ids(&ok(d1.get(path, &[("offset", "3")]))).len(), 0);
    refused(d1.get(path, &[("limit", "0")]), 400, "INVALID_FIELD");
    refused(d1.get(path, &[("limit", "101")]), 400, "INVALID_FIELD");

    let query = "/v2/partners/coupon-quotas/query";
    let all = ok(d1.post(query, "{}"));
    let ids = |v: &Value| -> Vec<String> {
        v["quotas"].as_array().unwrap().iter().map(|q| q["quota_id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&all), quotas, "oldest grant first");
    let page = ok(d1.post(query, r#"{"offset": 1, "limit": 2}"#));
    assert_eq!((page["total_count"].as_u64(), ids(&page)), (Some(3), quotas[1..].to_vec()));
    refused(d1.post(query, r#"{"limit": 101}"#), 400, "INVALID_FIELD");
}
