//! Through the real binary: unbind reclaim (docs/DOMAIN.md §3) with the balances and the trial
//! balance, a reclaim batch replayed by its request id answering its first answer exactly,
//! and the partner's "why": the incentive detail of a month adding up to what the month
//! accrued, the policy in force, the list of payment applications, paging of months, blank
//! filters of adjustment records, and the operator's level change.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::sdk::{numbers, Sdk};
use support::{Server, ADMIN_TOKEN};

fn allocate(s: &Server, token: &str, kind: &str, id: &str, amount: &str) -> Value {
    created(
        s,
        "POST",
        "/v1/allocations",
        token,
        Some(json!({"counterparty": {"type": kind, "id": id}, "amount": amount, "currency": "CNY"})),
    )
}

#[test]
fn ending_an_association_returns_the_unspent_allocation_to_its_allocators() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "D1", "Distributor One", "distributor", None);
    register_partner(&s, "R1", "Reseller One", "reseller", Some("D1"));
    let (d1, r1) = (s.credential("partner", Some("D1")), s.credential("partner", Some("R1")));
    associate(&s, "C1", "D1", "resale");
    associate(&s, "C2", "R1", "resale");
    created(&s, "POST", "/v1/partners/D1/funds", ADMIN_TOKEN, Some(json!({"amount": "1000.00", "currency": "CNY"})));
    allocate(&s, &d1, "reseller", "R1", "300.00");
    allocate(&s, &d1, "customer", "C1", "40.00");
    allocate(&s, &r1, "customer", "C2", "100.00");
    // C2 spends 30.00 of its allocation.
    publish_policy(&s, "2026-01", &[("ecs", "0.05")]);
    consume_ok(&s, vec![line("L1", "C2", "ecs", "30.00", "2026-11-10T02:00:00Z", "2026-11-11T02:00:00Z")]);
    let sdk = Sdk::for_partner(&s, "D1");
    let pool = |sdk: &Sdk, who: &[(&str, &str)]| {
        let (status, text) = sdk.get_text("/v2/accounts/partner-accounts/balances", who);
        assert_eq!(status, 200, "{text}");
        numbers(&text, "amount")[0].clone()
    };
    assert_eq!(pool(&sdk, &[]), "660.00");
    assert_eq!(pool(&sdk, &[("indirect_partner_id", "R1")]), "200.00");

    // R1 ends its association with C2: the 70.00 left goes back to R1 with the end.
    let ended = created(&s, "POST", "/v1/customers/C2/end-association", &r1, Some(json!({})));
    let reclaims = ended["unbind_reclaims"].as_array().unwrap();
    assert_eq!(reclaims.len(), 1, "{ended}");
    assert_eq!(
        (reclaims[0]["kind"].as_str(), reclaims[0]["operator_partner_id"].as_str()),
        (Some("unbind_reclaim"), Some("R1"))
    );
    assert_eq!(cents(&reclaims[0]["amount"]), 7000);
    assert_eq!(pool(&sdk, &[("indirect_partner_id", "R1")]), "270.00");
    // The operator ends C1's: its 40.00 goes back to D1's pool.
    let ended = created(&s, "POST", "/v1/customers/C1/end-association", ADMIN_TOKEN, Some(json!({})));
    assert_eq!(ended["unbind_reclaims"][0]["operator_partner_id"], "D1");
    assert_eq!(pool(&sdk, &[]), "700.00");
    // Nothing is left stranded: an allocator may always take back what it gave a customer
    // who moved away, and R1 finds nothing left to take (it would be 201 otherwise).
    let (status, body) = s.call(
        "POST",
        "/v1/reclaims",
        Some(&r1),
        Some(json!({"counterparty": {"type": "customer", "id": "C2"}, "amount": "0.01", "currency": "CNY"})),
    );
    assert_eq!((status, body["error_code"].as_str()), (409, Some("NOT_YOUR_CUSTOMER")), "{body}");
    // The records, as the vendor names them, for the distributor and for its reseller.
    let path = "/v3/accounts/partner-accounts/adjust-records";
    let (_, own) = sdk.get(path, &[("operation_type", "SOURCE_OPERATION_BEUNBIND")]);
    assert_eq!(
        (own["total_count"].as_u64(), own["records"][0]["customer_id"].as_str()),
        (Some(1), Some("C1")),
        "{own}"
    );
    let (_, theirs) = sdk.get(path, &[("operation_type", "SOURCE_OPERATION_BEUNBIND"), ("indirect_partner_id", "R1")]);
    assert_eq!((theirs["total_count"].as_u64(), theirs["records"][0]["amount"].as_str()), (Some(1), Some("70.00")));
    let v1 = read(&s, "/v1/adjustment-records?kind=unbind_reclaim", &d1);
    assert_eq!(v1["total"], 2, "the distributor sees its tree's: {v1}");
    assert_balanced(&s, ADMIN_TOKEN, s.last_write_position());
    // A customer whose association ended cannot be allocated to any more.
    let (status, body) = s.call(
        "POST",
        "/v1/allocations",
        Some(&d1),
        Some(json!({"counterparty": {"type": "customer", "id": "C1"}, "amount": "1.00", "currency": "CNY"})),
    );
    assert_eq!((status, body["error_code"].as_str()), (409, Some("NOT_YOUR_CUSTOMER")), "{body}");
}

/// The end and its reclaim are one append (docs/DOMAIN.md §3): side by side in the log under one
/// request, replayed whole by its request id, and a refused end returns nothing.
#[test]
fn the_end_and_its_unbind_reclaim_are_one_append_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "D1", "Distributor One", "distributor", None);
    register_partner(&s, "R1", "Reseller One", "reseller", Some("D1"));
    let (d1, r1) = (s.credential("partner", Some("D1")), s.credential("partner", Some("R1")));
    associate(&s, "C1", "R1", "resale");
    associate(&s, "C2", "R1", "resale");
    created(&s, "POST", "/v1/partners/D1/funds", ADMIN_TOKEN, Some(json!({"amount": "500.00", "currency": "CNY"})));
    allocate(&s, &d1, "reseller", "R1", "300.00");
    allocate(&s, &r1, "customer", "C1", "100.00");
    allocate(&s, &r1, "customer", "C2", "50.00");
    let sdk = Sdk::for_partner(&s, "D1");
    let reseller_pool = || {
        let (status, text) = sdk.get_text("/v2/accounts/partner-accounts/balances", &[("indirect_partner_id", "R1")]);
        assert_eq!(status, 200, "{text}");
        numbers(&text, "amount")[0].clone()
    };
    assert_eq!(reseller_pool(), "150.00");

    // A refused end stores nothing: C2's type was switched just now (once in 3 months).
    let switched = s.call(
        "POST",
        "/v1/customers/C2/association-type",
        Some(ADMIN_TOKEN),
        Some(json!({"association_type": "referral"})),
    );
    assert_eq!(switched.0, 201, "{}", switched.1);
    let before = s.events_total();
    let (status, body) = s.call("POST", "/v1/customers/C2/end-association", Some(&r1), Some(json!({})));
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(s.events_total(), before, "nothing of the end nor of its reclaim: {body}");
    assert_eq!(reseller_pool(), "150.00");

    // C1's end under a request id: the end and the reclaim, next to each other in the log.
    let headers = [("X-Request-Id", "end-c1")];
    let (status, first) = s.send("POST", "/v1/customers/C1/end-association", Some(&r1), &headers, Some(&json!({})));
    assert_eq!(status, 201, "{first}");
    let end_at = last_event_position(&s, "AssociationEnded");
    let log = read(&s, &format!("/v1/events?from_position={end_at}&limit=10"), ADMIN_TOKEN);
    let items = log["items"].as_array().unwrap();
    let kinds: Vec<_> = items.iter().map(|e| (e["type"].as_str().unwrap(), e["stream"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("AssociationEnded", "customer-C1"), ("FundsUnbindReclaimed", "funds-D1")], "{log}");
    assert!(items.iter().all(|e| e["request_id"] == "end-c1" && e["correlation_id"] == items[0]["correlation_id"]));
    assert_eq!(pos(&first), end_at + 1, "the answer's position is the reclaim's");
    assert_eq!(reseller_pool(), "250.00");
    // The same request again: the first answer, nothing stored.
    let total = s.events_total();
    let (status, again) = s.send("POST", "/v1/customers/C1/end-association", Some(&r1), &headers, Some(&json!({})));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["unbind_reclaims"], first["unbind_reclaims"]);
    assert_eq!(again["position"], first["position"]);
    assert_eq!(s.events_total(), total);
    assert_eq!(reseller_pool(), "250.00");
    assert_balanced(&s, ADMIN_TOKEN, s.last_write_position());
}

#[test]
fn a_reclaim_batch_replayed_by_its_request_id_answers_exactly_its_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "P1", "Partner One", "distributor", None);
    let p1 = s.credential("partner", Some("P1"));
    associate(&s, "C1", "P1", "resale");
    created(
        &s,
        "POST",
        "/v1/partners/P1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    let issue = |id: &str| {
        created(
            &s,
            "POST",
            "/v1/coupons",
            &p1,
            Some(
                json!({"coupon_id": id, "customer_id": "C1", "amount": "4.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"}),
            ),
        )
    };
    issue("KA");
    let path = "/v2/promotions/benefits/partner-coupons/reclaim";
    let batch = json!({"coupon_ids": ["KA", "KB", "KU"]});
    let first = s.send("POST", path, Some(&p1), &[("X-Request-Id", "reclaim-1")], Some(&batch));
    assert_eq!(first.0, 201, "{}", first.1);
    let codes: Vec<(&str, &str)> = first.1["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["coupon_id"].as_str().unwrap(), r["error_code"].as_str().unwrap_or(r["status"].as_str().unwrap())))
        .collect();
    assert_eq!(codes, [("KA", "success"), ("KB", "COUPON_NOT_FOUND"), ("KU", "COUPON_NOT_FOUND")]);
    // KB is issued afterwards; the same request again must not re-decide it.
    issue("KB");
    let again = s.send("POST", path, Some(&p1), &[("X-Request-Id", "reclaim-1")], Some(&batch));
    assert_eq!(again.0, 200, "a replay stores nothing: {}", again.1);
    let strip = |v: &Value| v["results"].clone();
    assert_eq!(strip(&again.1), strip(&first.1), "word for word");
    assert_eq!(again.1["position"], first.1["position"]);
    let kb = read(&s, "/v1/coupons/KB", &p1);
    assert_eq!((kb["status"].as_str(), cents(&kb["remaining"])), (Some("active"), 400), "nothing was reclaimed: {kb}");
    // A batch whose every item failed keeps its answer too.
    let none = json!({"coupon_ids": ["KZ"]});
    let first = s.send("POST", path, Some(&p1), &[("X-Request-Id", "reclaim-2")], Some(&none));
    issue("KZ");
    let again = s.send("POST", path, Some(&p1), &[("X-Request-Id", "reclaim-2")], Some(&none));
    assert_eq!(strip(&again.1), strip(&first.1));
    assert_eq!(again.1["results"][0]["error_code"], "COUPON_NOT_FOUND");
    // Another batch under a used request id is refused, nothing stored.
    let other = s.send("POST", path, Some(&p1), &[("X-Request-Id", "reclaim-1")], Some(&json!({"coupon_ids": ["KZ"]})));
    assert_eq!((other.0, other.1["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{}", other.1);
    let kz = read(&s, "/v1/coupons/KZ", &p1);
    assert_eq!(kz["status"], "active");
}

#[test]
fn the_incentive_detail_of_a_month_adds_up_to_what_it_accrued_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05"), ("obs", "0.1")]);
    let paid = paid_partner(&s, "P1");
    let token = paid.token.clone();
    associate(&s, "C9", "P1", "resale");
    consume_ok(
        &s,
        vec![
            line("S1", "C9", "ecs", "123.45", "2026-10-10T02:00:00Z", "2026-10-11T02:00:00Z"),
            line("S2", "C9", "gpu", "50.00", "2026-10-12T02:00:00Z", "2026-10-12T03:00:00Z"),
            // Consumed in October, settled after its cut-off: counted in November.
            line("S3", "C9", "obs", "80.00", "2026-10-31T02:00:00Z", "2026-11-05T02:00:00Z"),
            line("S4", "C9", "obs", "33.33", "2026-10-15T02:00:00Z", "2026-10-16T02:00:00Z"),
        ],
    );
    created(
        &s,
        "POST",
        "/v1/consumption/S1/refunds",
        ADMIN_TOKEN,
        Some(json!({"refund_id": "RF1", "amount": "23.45", "settled_at": "2026-10-20T02:00:00Z"})),
    );
    let detail = read(&s, "/v1/incentive-details?month=2026-10", &token);
    let items = detail["items"].as_array().unwrap();
    assert_eq!(detail["total"], 5, "{detail}");
    let why: Vec<(&str, Option<&str>, bool)> = items
        .iter()
        .map(|i| {
            (
                i["refund_id"].as_str().or(i["record_id"].as_str()).unwrap(),
                i["reason"].as_str(),
                i["counted_here"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        why,
        [
            ("S1", Some("REFUNDED"), true),
            ("S2", Some("PRODUCT_NOT_ELIGIBLE"), true),
            ("S3", Some("COUNTED_IN_OTHER_MONTH"), false),
            ("S4", None, true),
            ("RF1", Some("REFUNDED"), true),
        ]
    );
    assert_eq!(items[2]["counted_in"], "2026-11");
    assert_eq!(items[0]["rate"], "0.05");
    assert!(items[1]["rate"].is_null() && cents(&items[1]["incentive"]) == 0, "{}", items[1]);
    assert_eq!(cents(&items[0]["refunded"]), 2345);
    // (Q3 is paid, so its months are sealed: the month read is October.)
    // The entries counted here add up, rounded once, to the month's accrued amount.
    let months = months(&s, &token, 2026, 0);
    let accrued = &months["2026-10"]["accrued"];
    assert_eq!(detail["accrued"], *accrued);
    let sum: rust_decimal::Decimal = items
        .iter()
        .filter(|i| i["counted_here"] == true)
        .map(|i| i["incentive"]["amount"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
        .sum();
    // 123.45 × 5 % + 0 + 33.33 × 10 % − 23.45 × 5 % = 6.1725 + 3.333 − 1.1725 = 8.333
    assert_eq!(sum, "8.333".parse::<rust_decimal::Decimal>().unwrap());
    assert_eq!(detail["counted_total"]["amount"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap(), sum);
    assert_eq!(amount(accrued, "CNY"), "8.33");
    // November lists S3, counted there.
    let november = read(&s, "/v1/incentive-details?month=2026-11", &token);
    assert_eq!((november["total"].as_u64(), november["items"][0]["reason"].is_null()), (Some(1), true), "{november}");
    // Paging, another partner's detail, a bad month.
    let page = read(&s, "/v1/incentive-details?month=2026-10&offset=4&limit=1", &token);
    assert_eq!((page["total"].as_u64(), page["items"][0]["refund_id"].as_str()), (Some(5), Some("RF1")));
    register_partner(&s, "P2", "Partner Two", "distributor", None);
    let p2 = s.credential("partner", Some("P2"));
    assert_eq!(s.call("GET", "/v1/incentive-details?month=2026-10&partner_id=P1", Some(&p2), None).0, 403);
    assert_eq!(read(&s, "/v1/incentive-details?month=2026-10", &p2)["total"], 0);
    let (status, body) = s.call("GET", "/v1/incentive-details?month=2026-13", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_MONTH")), "{body}");

    // The policy in force for a month, readable by the partner.
    let policy = read(&s, "/v1/policies?month=2026-10", &token);
    assert_eq!(policy["effective_month"], "2026-07");
    assert_eq!(policy["rates"], json!([{"product": "ecs", "rate": "0.05"}, {"product": "obs", "rate": "0.1"}]));
    assert_eq!(s.call("GET", "/v1/policies?month=2026-01", Some(&token), None).0, 404);

    // The partner's applications, each with the link to its invoice list.
    let payments = read(&s, "/v1/quarterly-payments", &token);
    assert_eq!(payments["total"], 1, "{payments}");
    let p = &payments["items"][0];
    assert_eq!(p["payment_id"], paid.payment_id.as_str());
    assert_eq!(p["invoice_list_url"], format!("/v1/quarterly-payments/{}", paid.payment_id));
    assert!(!p["invoice_list"].is_null());
    assert_eq!(read(&s, "/v1/quarterly-payments", &p2)["total"], 0);

    // Months take offset and limit like every list.
    let all = read(&s, "/v1/incentive-months?year=2026", &token);
    let page = read(&s, "/v1/incentive-months?year=2026&offset=1&limit=1", &token);
    assert_eq!(page["total"], all["total"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["month"], all["items"][1]["month"]);

    // Blank parameters of adjustment records are no filter.
    let blank = read(&s, "/v1/adjustment-records?kind=&counterparty_id=&from=&to=&offset=&limit=", &token);
    let none = read(&s, "/v1/adjustment-records", &token);
    assert_eq!(blank, none);

    // The operator changes a level; a partner may not.
    let level = created(&s, "POST", "/v1/partners/P1/level", ADMIN_TOKEN, Some(json!({"level": "core"})));
    assert_eq!(level["level"], "core");
    assert_eq!(s.call("POST", "/v1/partners/P1/level", Some(&token), Some(json!({"level": "leading"}))).0, 403);
    let (status, body) = s.call("POST", "/v1/partners/P1/level", Some(ADMIN_TOKEN), Some(json!({"level": "gold"})));
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
}

/// A credential carries the name of whom it was issued to, and what it writes names it: the
/// adjustment record's `actor` and the events' envelope. Blank parameters of adjustment
/// records are no filter, over records that are there.
#[test]
fn a_credentials_name_is_the_actor_of_what_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "D1", "Distributor One", "distributor", None);
    associate(&s, "C1", "D1", "resale");
    created(&s, "POST", "/v1/partners/D1/funds", ADMIN_TOKEN, Some(json!({"amount": "100.00", "currency": "CNY"})));
    let issued = created(
        &s,
        "POST",
        "/v1/credentials",
        ADMIN_TOKEN,
        Some(json!({"role": "partner", "partner_id": "D1", "name": "Li Wei, D1 finance"})),
    );
    let (id, token) = (issued["credential_id"].as_str().unwrap(), issued["token"].as_str().unwrap());
    assert_eq!(issued["name"], "Li Wei, D1 finance");
    let listed = read(&s, "/v1/credentials", ADMIN_TOKEN);
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["credential_id"] == id && c["name"] == issued["name"]));
    let unnamed = s.credential("partner", Some("D1"));

    let record = allocate(&s, token, "customer", "C1", "10.00");
    let actor = format!("Li Wei, D1 finance ({id})");
    assert_eq!(record["actor"], actor.as_str(), "{record}");
    allocate(&s, &unnamed, "customer", "C1", "5.00");
    let records = read(&s, "/v1/adjustment-records", token);
    let actors: Vec<&str> = records["items"].as_array().unwrap().iter().map(|r| r["actor"].as_str().unwrap()).collect();
    assert_eq!(actors.len(), 2, "{records}");
    assert!(actors.contains(&actor.as_str()), "{records}");
    assert!(actors.iter().any(|a| a.starts_with("cred-") && !a.contains(" ")), "an unnamed one is its id: {actors:?}");
    let log = read(&s, &format!("/v1/events?from_position={}&limit=1", pos(&record)), ADMIN_TOKEN);
    assert_eq!(log["items"][0]["actor"]["principal"], actor.as_str());
    // Blank parameters are no filter, over records that are there.
    let blank = read(&s, "/v1/adjustment-records?kind=&counterparty_id=&from=&to=&offset=&limit=", token);
    assert_eq!((blank["total"].as_u64(), &blank["items"]), (Some(2), &records["items"]));
    assert_eq!(read(&s, "/v1/adjustment-records?kind=allocate&counterparty_id=C1", token)["total"], 2);

    // A blank or too long name is refused, nothing issued.
    for name in [json!("  "), json!("x".repeat(101))] {
        let (status, body) =
            s.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(json!({"role": "auditor", "name": name})));
        assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    }
    assert_eq!(read(&s, "/v1/credentials", ADMIN_TOKEN)["total"], listed["total"].as_u64().unwrap() + 1);
}
