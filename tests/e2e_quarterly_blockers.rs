//! Story 4, through the real binary: every blocker of a quarterly payment request (DOMAIN
//! §5) reached through HTTP. `GET /v1/quarterly-payments/eligibility` lists all that hold,
//! each with its months, and takes `at=` to evaluate at another time (the time-dependent
//! `MONTHS_STILL_APPLICABLE`, tested for a time inside the quarter without waiting);
//! `POST /v1/quarterly-payments` answers 409 with the first blocker's code and all of them
//! in `details`, storing nothing, until none holds. The quarter is 2026Q3: its months are
//! past their cut-offs, so they can be closed today.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

const P: &str = "QTR";
/// Inside 2026Q3 (CST): the open months may still be applied for.
const IN_QUARTER: &str = "2026-09-25T02:00:00Z";

fn blockers(e: &Value) -> Vec<(String, Vec<String>)> {
    e["blockers"]
        .as_array()
        .unwrap_or_else(|| panic!("{e}"))
        .iter()
        .map(|b| {
            let months = b["months"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect();
            (b["code"].as_str().unwrap().to_string(), months)
        })
        .collect()
}

fn b(code: &str, months: &[&str]) -> (String, Vec<String>) {
    (code.to_string(), months.iter().map(|m| m.to_string()).collect())
}

fn eligibility(s: &Server, token: &str, at: Option<&str>) -> Value {
    let at = at.map(|t| format!("&at={t}")).unwrap_or_default();
    let e = read(s, &format!("/v1/quarterly-payments/eligibility?quarter=2026Q3{at}"), token);
    assert_eq!(e["eligible"].as_bool(), Some(e["blockers"].as_array().unwrap().is_empty()), "{e}");
    e
}

/// The request is refused with the first blocker's code and every blocker in `details`,
/// exactly those the eligibility read lists now; nothing is stored.
#[track_caller]
fn refused(s: &Server, token: &str, expected: &[(String, Vec<String>)]) {
    assert_eq!(blockers(&eligibility(s, token, None)), expected);
    let before = s.events_total();
    let body =
        expect(s.call("POST", "/v1/quarterly-payments", Some(token), Some(json!({"quarter": "2026Q3"}))), 409, None);
    assert_eq!(body["error_code"].as_str(), Some(expected[0].0.as_str()), "{body}");
    assert_eq!(blockers(&body["details"]), expected, "{body}");
    assert_eq!(s.events_total(), before, "a refused request stores nothing");
}

#[test]
fn every_quarterly_blocker_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, P, "Quarter Ltd", "solution_provider", None);
    let token = s.credential("partner", Some(P));
    associate(&s, "QC1", P, "referral");
    publish_policy(&s, "2026-07", &[("ecs", "0.10")]);
    consume_ok(
        &s,
        vec![
            line("Q-JUL", "QC1", "ecs", "100.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"),
            line("Q-AUG", "QC1", "ecs", "200.00", "2026-08-10T02:00:00Z", "2026-08-11T02:00:00Z"),
            line("Q-SEP", "QC1", "ecs", "300.00", "2026-09-10T02:00:00Z", "2026-09-11T02:00:00Z"),
        ],
    );

    // Uncertified, nothing closed.
    refused(
        &s,
        &token,
        &[
            b("CERTIFICATION_INCOMPLETE", &[]),
            b("MONTH_NOT_CLOSED", &["2026-07", "2026-08", "2026-09"]),
            b("NO_APPROVED_INCENTIVE", &[]),
        ],
    );

    // Certified; August and September closed, September applied for.
    certify(&s, P, "Quarter Legal Ltd");
    close(&s, P, "2026-08");
    close(&s, P, "2026-09");
    apply(&s, &token, "2026-09");
    refused(
        &s,
        &token,
        &[b("MONTH_NOT_CLOSED", &["2026-07"]), b("REVIEW_PENDING", &["2026-09"]), b("NO_APPROVED_INCENTIVE", &[])],
    );
    // Inside the quarter, the open August may still be applied for.
    assert_eq!(
        blockers(&eligibility(&s, &token, Some(IN_QUARTER))),
        [
            b("MONTH_NOT_CLOSED", &["2026-07"]),
            b("MONTHS_STILL_APPLICABLE", &["2026-08"]),
            b("REVIEW_PENDING", &["2026-09"]),
            b("NO_APPROVED_INCENTIVE", &[]),
        ]
    );

    // July closed, September passed: it must be finalized first.
    close(&s, P, "2026-07");
    review(&s, P, "2026-09", "pass");
    refused(&s, &token, &[b("NOT_FINALIZED", &["2026-09"])]);
    assert_eq!(
        blockers(&eligibility(&s, &token, Some(IN_QUARTER))),
        [b("MONTHS_STILL_APPLICABLE", &["2026-07", "2026-08"]), b("NOT_FINALIZED", &["2026-09"])]
    );

    // September finalized: eligible now (July and August would be forfeited), not yet
    // inside the quarter.
    finalize(&s, P, "2026-09", json!({}));
    let e = eligibility(&s, &token, None);
    assert_eq!(e["eligible"], true, "{e}");
    assert_eq!(e["excluded_months"], json!(["2026-07", "2026-08"]));
    assert_eq!(cents(&e["payable"]), 3000);
    assert_eq!(e["included_months"][0]["month"], "2026-09");
    let inside = eligibility(&s, &token, Some(IN_QUARTER));
    assert_eq!(blockers(&inside), [b("MONTHS_STILL_APPLICABLE", &["2026-07", "2026-08"])]);
    // On the first day of the next quarter (CST) the open months no longer block.
    assert_eq!(eligibility(&s, &token, Some("2026-09-30T16:00:00Z"))["eligible"], true);
    assert_eq!(eligibility(&s, &token, Some("2026-09-30T15:59:59Z"))["eligible"], false);

    // The request forfeits the open months; a second request is ALREADY_REQUESTED.
    let payment = created(&s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    let id = payment["payment_id"].as_str().unwrap().to_string();
    assert_eq!(payment["excluded_months"], json!(["2026-07", "2026-08"]));
    let all = months(&s, &token, 2026, pos(&payment));
    let status = |m: &str| all[m]["status"].as_str().unwrap().to_string();
    assert_eq!(
        (status("2026-07"), status("2026-08"), status("2026-09")),
        ("forfeited".into(), "forfeited".into(), "finalized".into())
    );
    refused(&s, &token, &[b("ALREADY_REQUESTED", &["2026-07", "2026-08", "2026-09"])]);

    // Rejection reopens eligibility: September is back, and the forfeited months are open
    // again (docs/DOMAIN.md §5), so they still block a request within the quarter.
    let rejected = created(
        &s,
        "POST",
        &format!("/v1/quarterly-payments/{id}/reject"),
        ADMIN_TOKEN,
        Some(json!({"reason": "invoice title wrong"})),
    );
    assert_eq!(rejected["status"], "rejected");
    let e = eligibility(&s, &token, Some(IN_QUARTER));
    assert_eq!(e["blockers"], json!([{"code": "MONTHS_STILL_APPLICABLE", "months": ["2026-07", "2026-08"]}]), "{e}");
    assert_eq!(e["excluded_months"], json!(["2026-07", "2026-08"]), "{e}");
    let all = months(&s, &token, 2026, pos(&rejected));
    assert_eq!((all["2026-07"]["status"].as_str(), all["2026-08"]["status"].as_str()), (Some("open"), Some("open")));
    let again = created(&s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    assert_eq!(again["excluded_months"], json!(["2026-07", "2026-08"]), "forfeited again by the new request");
    assert_ne!(again["payment_id"], payment["payment_id"]);
    assert_eq!(cents(&again["payable"]), 3000);
    assert_eq!(read(&s, &format!("/v1/quarterly-payments/{id}"), &token)["status"], "rejected");
}

#[test]
fn a_certified_partner_with_nothing_approved_and_what_the_eligibility_read_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "EMPTY", "solution_provider", None);

    // Nothing at all in the quarter: only NO_APPROVED_INCENTIVE.
    refused(&s, &token, &[b("NO_APPROVED_INCENTIVE", &[])]);
    // A month closed empty changes nothing.
    let closed = close(&s, "EMPTY", "2026-07");
    assert_eq!(closed["status"], "closed_empty", "{closed}");
    refused(&s, &token, &[b("NO_APPROVED_INCENTIVE", &[])]);

    // A month cannot be closed before its cut-off.
    let before = s.events_total();
    expect(
        s.call("POST", "/v1/incentive-months/EMPTY/2099-01/close", Some(ADMIN_TOKEN), None),
        409,
        Some("INVALID_STATE"),
    );
    assert_eq!(s.events_total(), before);

    // The eligibility read: `at` is an RFC 3339 time (any offset), the quarter `YYYYQn`;
    // anything else is a 400 in docs/API.md's error shape.
    let ok = read(&s, "/v1/quarterly-payments/eligibility?quarter=2026Q3&at=2026-09-25T10:00:00%2B08:00", &token);
    assert_eq!(ok["eligible"], false);
    for (query, code) in [
        ("quarter=2026Q5", "INVALID_QUARTER"),
        ("quarter=2026-07", "INVALID_QUARTER"),
        ("quarter=2026Q3&currency=EUR", "INVALID_CURRENCY"),
        ("quarter=2026Q3&at=yesterday", "INVALID_FIELD"),
        ("quarter=2026Q3&at=2026-09-25", "INVALID_FIELD"),
        ("quarter=2026Q3&bogus=1", "INVALID_FIELD"),
        ("", "INVALID_FIELD"),
    ] {
        let (status, body) = s.call("GET", &format!("/v1/quarterly-payments/eligibility?{query}"), Some(&token), None);
        assert_eq!((status, body["error_code"].as_str()), (400, Some(code)), "{query}: {body}");
    }
    let (status, body) = s.call("POST", "/v1/quarterly-payments", Some(&token), Some(json!({"quarter": "2026Q9"})));
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_QUARTER")), "{body}");
    assert_eq!(s.events_total(), before);
}
