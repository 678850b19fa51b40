//! Story 2, through the real binary: a distributor's fund pool, allocated to a reseller that
//! allocates to its customer, reclaimed back up the tree; a resale customer's consumption
//! drawing its allocation down; every over-reach refused with nothing stored; and who sees
//! which adjustment record (distributor, reseller, a sibling reseller, another
//! distributor, the auditor), with the list's filters and paging.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

fn counterparty(kind: &str, id: &str) -> Value {
    json!({"type": kind, "id": id})
}

fn adjust(s: &Server, token: &str, path: &str, cp: Value, amount: &str, remark: &str) -> (u16, Value) {
    s.call(
        "POST",
        path,
        Some(token),
        Some(json!({"counterparty": cp, "amount": amount, "currency": "CNY", "remark": remark})),
    )
}

#[track_caller]
fn allocate(s: &Server, token: &str, cp: Value, amount: &str, remark: &str) -> Value {
    let r = expect(adjust(s, token, "/v1/allocations", cp.clone(), amount, remark), 201, None);
    assert_eq!(
        (r["kind"].as_str(), r["counterparty"].clone(), r["remark"].as_str()),
        (Some("allocate"), cp, Some(remark)),
        "{r}"
    );
    r
}

#[track_caller]
fn reclaim(s: &Server, token: &str, cp: Value, amount: &str, remark: &str) -> Value {
    let r = expect(adjust(s, token, "/v1/reclaims", cp.clone(), amount, remark), 201, None);
    assert_eq!((r["kind"].as_str(), r["counterparty"].clone()), (Some("reclaim"), cp), "{r}");
    r
}

/// The record ids a caller sees with `query`.
fn seen(s: &Server, token: &str, query: &str) -> (Vec<String>, u64) {
    let list = read(s, &format!("/v1/adjustment-records?{query}"), token);
    let ids = list["items"].as_array().unwrap().iter().map(|r| r["record_id"].as_str().unwrap().to_string()).collect();
    (ids, list["total"].as_u64().unwrap())
}

fn ids(records: &[&Value]) -> Vec<String> {
    records.iter().map(|r| r["record_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_distributor_allocates_down_its_tree_and_reclaims_with_visibility_per_partner() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let auditor = s.credential("auditor", None);

    let d1 = certified_partner(&s, "D1", "distributor", None);
    let r1 = certified_partner(&s, "R1", "reseller", Some("D1"));
    let r2 = certified_partner(&s, "R2", "reseller", Some("D1"));
    let d2 = certified_partner(&s, "D2", "distributor", None);
    associate(&s, "D1-C1", "D1", "resale");
    associate(&s, "R1-C1", "R1", "resale");

    // The vendor credits D1's pool; a reseller holds no pool of its own.
    let credit = created(
        &s,
        "POST",
        "/v1/partners/D1/funds",
        ADMIN_TOKEN,
        Some(json!({"amount": "1000.00", "currency": "CNY"})),
    );
    assert_eq!(cents(&credit["pool"]), 100000, "{credit}");
    expect(
        s.call("POST", "/v1/partners/R1/funds", Some(ADMIN_TOKEN), Some(json!({"amount": "1.00", "currency": "CNY"}))),
        400,
        Some("INVALID_FIELD"),
    );

    // Down the tree: D1 → R1 300, D1 → its customer 100, D1 → R2 10, R1 → its customer 120.
    let a1 = allocate(&s, &d1, counterparty("reseller", "R1"), "300.00", "Q3 budget for R1");
    assert_eq!((a1["operator_partner_id"].as_str(), cents(&a1["amount"])), (Some("D1"), 30000));
    assert!(a1["actor"].as_str().is_some_and(|a| !a.is_empty()) && a1["occurred_at"].is_string(), "{a1}");
    let a2 = allocate(&s, &d1, counterparty("customer", "D1-C1"), "100.00", "direct customer");
    let a3 = allocate(&s, &d1, counterparty("reseller", "R2"), "10.00", "R2 starter");
    let a4 = allocate(&s, &r1, counterparty("customer", "R1-C1"), "120.00", "R1 to its customer");
    assert_eq!(a4["operator_partner_id"], "R1");

    // And back up: R1 takes 20 back from its customer, D1 takes 50 back from R1.
    let a5 = reclaim(&s, &r1, counterparty("customer", "R1-C1"), "20.00", "unused");
    let a6 = reclaim(&s, &d1, counterparty("reseller", "R1"), "50.00", "rebalance");

    // Pool 1000 − 300 − 100 − 10 + 50 = 640; R1 holds 300 − 120 + 20 − 50 = 150.
    let d1_balances = balances(&s, &d1, &format!("min_position={}", pos(&a6)));
    assert_eq!(cents(&d1_balances["partner:D1:fund_pool"]), 64000, "{d1_balances:?}");
    let r1_balances = balances(&s, &r1, &format!("min_position={}", pos(&a6)));
    assert_eq!(cents(&r1_balances["partner:R1:fund_received"]), 15000, "{r1_balances:?}");

    // The customer's consumption draws its allocation down first: 100 − 30 = 70 left.
    let used =
        consume_ok(&s, vec![line("R1-C1-L1", "R1-C1", "ecs", "30.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z")]);
    assert!(pos(&used) > pos(&a6));
    // The answer's position covers the drawdown, the line's last event (read-your-writes).
    assert!(pos(&used) >= last_event_position(&s, "AllocatedBalanceDrawnDown"), "{used}");

    // Over-reach of every kind is refused and stores nothing.
    let before = s.events_total();
    let (records_before, _) = seen(&s, ADMIN_TOKEN, &format!("limit=1000&min_position={before}"));
    expect(
        adjust(&s, &d1, "/v1/reclaims", counterparty("reseller", "R1"), "150.01", "too much"),
        409,
        Some("INSUFFICIENT_BALANCE"),
    );
    expect(
        adjust(&s, &r1, "/v1/reclaims", counterparty("customer", "R1-C1"), "70.01", "more than is left"),
        409,
        Some("INSUFFICIENT_BALANCE"),
    );
    expect(
        adjust(&s, &d1, "/v1/allocations", counterparty("customer", "D1-C1"), "640.01", "more than the pool"),
        409,
        Some("INSUFFICIENT_BALANCE"),
    );
    expect(
        adjust(&s, &r1, "/v1/allocations", counterparty("customer", "R1-C1"), "150.01", "more than received"),
        409,
        Some("INSUFFICIENT_BALANCE"),
    );
    // Not theirs: R1 to D1's customer, D1 reclaiming what R1 gave, D2 to D1's reseller.
    expect(
        adjust(&s, &r1, "/v1/allocations", counterparty("customer", "D1-C1"), "1.00", "x"),
        409,
        Some("NOT_YOUR_CUSTOMER"),
    );
    expect(
        adjust(&s, &d1, "/v1/reclaims", counterparty("customer", "R1-C1"), "1.00", "x"),
        409,
        Some("NOT_YOUR_CUSTOMER"),
    );
    created(&s, "POST", "/v1/partners/D2/funds", ADMIN_TOKEN, Some(json!({"amount": "5.00", "currency": "CNY"})));
    let before = s.events_total();
    expect(adjust(&s, &d2, "/v1/allocations", counterparty("reseller", "R1"), "1.00", "x"), 404, Some("NOT_FOUND"));
    // Exactly as an unknown reseller reads: nothing tells D2 that R1 exists.
    let theirs = adjust(&s, &d2, "/v1/allocations", counterparty("reseller", "R1"), "1.00", "x");
    let unknown = adjust(&s, &d2, "/v1/allocations", counterparty("reseller", "R404"), "1.00", "x");
    assert_eq!(
        (theirs.0, theirs.1["error_msg"].as_str().map(|m| m.replace("R1", "R?"))),
        (unknown.0, unknown.1["error_msg"].as_str().map(|m| m.replace("R404", "R?")))
    );
    // A reseller allocates to its own customers only, never to a reseller.
    expect(adjust(&s, &r1, "/v1/allocations", counterparty("reseller", "R2"), "1.00", "x"), 400, Some("INVALID_FIELD"));
    // A reseller cannot act for its distributor.
    let forbidden = s.call("POST", "/v1/allocations", Some(&r1), Some(json!({"counterparty": counterparty("reseller", "R1"), "amount": "1.00", "currency": "CNY", "partner_id": "D1"})));
    expect(forbidden, 403, Some("FORBIDDEN"));
    assert_eq!(s.events_total(), before, "refused adjustments store nothing");
    let (records_after, _) = seen(&s, ADMIN_TOKEN, &format!("limit=1000&min_position={before}"));
    assert_eq!(records_after, records_before);

    // What is left can be taken back exactly: R1 reclaims its customer's 70.
    let a7 = reclaim(&s, &r1, counterparty("customer", "R1-C1"), "70.00", "all of it");
    let r1_balances = balances(&s, &r1, &format!("min_position={}", pos(&a7)));
    assert_eq!(cents(&r1_balances["partner:R1:fund_received"]), 22000, "{r1_balances:?}");
    assert_balanced(&s, &auditor, pos(&a7));

    // Visibility (newest first). D1 sees its whole tree; R1 what it made and what concerns
    // it; R2 only its own; D2 nothing of D1's tree.
    let at = format!("min_position={}", pos(&a7));
    let (d1_sees, total) = seen(&s, &d1, &at);
    assert_eq!(d1_sees, ids(&[&a7, &a6, &a5, &a4, &a3, &a2, &a1]));
    assert_eq!(total, 7);
    let (r1_sees, _) = seen(&s, &r1, &at);
    assert_eq!(r1_sees, ids(&[&a7, &a6, &a5, &a4, &a1]));
    let (r2_sees, _) = seen(&s, &r2, &at);
    assert_eq!(r2_sees, ids(&[&a3]));
    let (d2_sees, total) = seen(&s, &d2, &at);
    assert_eq!((d2_sees, total), (vec![], 0));
    // Admin and auditor see everything, or one partner's view with partner_id.
    assert_eq!(seen(&s, ADMIN_TOKEN, &at).0, d1_sees);
    assert_eq!(seen(&s, &auditor, &format!("{at}&partner_id=R1")).0, r1_sees);
    assert_eq!(seen(&s, &auditor, &format!("{at}&partner_id=D2")).1, 0);
    // A partner cannot ask for another's view.
    expect(s.call("GET", "/v1/adjustment-records?partner_id=D1", Some(&r1), None), 403, Some("FORBIDDEN"));
    expect(s.call("GET", "/v1/adjustment-records?partner_id=R1", Some(&d2), None), 403, Some("FORBIDDEN"));

    // Filters and paging.
    assert_eq!(seen(&s, &d1, "kind=reclaim").0, ids(&[&a7, &a6, &a5]));
    assert_eq!(seen(&s, &d1, "kind=allocate&counterparty_id=R1").0, ids(&[&a1]));
    assert_eq!(seen(&s, &r1, "counterparty_id=R1-C1").0, ids(&[&a7, &a5, &a4]));
    let (page, total) = seen(&s, &d1, "offset=2&limit=3");
    assert_eq!((page, total), (ids(&[&a5, &a4, &a3]), 7));
    let (page, total) = seen(&s, &d1, "offset=6&limit=3");
    assert_eq!((page, total), (ids(&[&a1]), 7));
    let time = |r: &Value| r["occurred_at"].as_str().unwrap().replace('+', "%2B");
    assert_eq!(seen(&s, &d1, &format!("from={}&to={}", time(&a4), time(&a6))).0, ids(&[&a6, &a5, &a4]));
    let full = read(&s, "/v1/adjustment-records?kind=allocate&counterparty_id=R1-C1", &r1);
    let record = &full["items"][0];
    for field in
        ["record_id", "kind", "operator_partner_id", "counterparty", "amount", "occurred_at", "remark", "actor"]
    {
        assert!(!record[field].is_null(), "{field} in {record}");
    }
    assert_eq!(record["counterparty"], counterparty("customer", "R1-C1"));
    assert_eq!(amount(&record["amount"], "CNY"), "120.00");
    expect(s.call("GET", "/v1/adjustment-records?limit=1001", Some(&d1), None), 400, Some("INVALID_FIELD"));
}
