//! A write retried under its `X-Request-Id` answers what its first call answered, word for
//! word (docs/API.md), even after later writes changed what it answered about: each test
//! keeps a chain of writes, each changing the resource of the ones before it, then sends
//! every one again under its id.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

/// Writes sent under request ids of their own, with their first answers.
struct Kept<'a> {
    s: &'a Server,
    writes: Vec<Write>,
}

struct Write {
    token: String,
    method: &'static str,
    path: String,
    body: Option<Value>,
    request_id: String,
    first: Value,
}

impl<'a> Kept<'a> {
    fn on(s: &'a Server) -> Kept<'a> {
        Kept { s, writes: vec![] }
    }

    /// Sends a write under a fresh request id; answers its answer (it must succeed).
    fn write(&mut self, token: &str, method: &'static str, path: &str, body: Option<Value>) -> Value {
        let request_id = format!("replay-{}", self.writes.len());
        let (status, first) = self.s.send(method, path, Some(token), &[("X-Request-Id", &request_id)], body.as_ref());
        assert!(status == 201, "{method} {path}: {status} {first}");
        self.writes.push(Write {
            token: token.to_string(),
            method,
            path: path.to_string(),
            body,
            request_id,
            first: first.clone(),
        });
        first
    }

    fn post(&mut self, token: &str, path: &str, body: Value) -> Value {
        self.write(token, "POST", path, Some(body))
    }

    /// Sends every write again under its request id: each answers 200 with its first
    /// answer, and nothing is stored. Every write that answers otherwise is named.
    fn replay_all(&self) {
        let head = self.s.events_total();
        let mut otherwise = vec![];
        for w in &self.writes {
            let (status, again) =
                self.s.send(w.method, &w.path, Some(&w.token), &[("X-Request-Id", &w.request_id)], w.body.as_ref());
            if (status, &again) != (200, &w.first) {
                otherwise.push(format!("{} {}: first {}\n  replayed {status} {again}", w.method, w.path, w.first));
            }
        }
        assert!(otherwise.is_empty(), "replays that did not answer the first answer:\n{}", otherwise.join("\n"));
        assert_eq!(self.s.events_total(), head, "a replay stores nothing");
    }
}

fn id_of(answer: &Value, field: &str) -> String {
    answer[field].as_str().unwrap_or_else(|| panic!("no {field} in {answer}")).to_string()
}

#[test]
fn a_fund_credit_and_an_allocation_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "RF", "distributor", None);
    associate(&s, "RF-C1", "RF", "resale");
    let mut kept = Kept::on(&s);
    // The pool the first credit answered grows with the second.
    kept.post(ADMIN_TOKEN, "/v1/partners/RF/funds", json!({"amount": "100.00", "currency": "CNY"}));
    kept.post(ADMIN_TOKEN, "/v1/partners/RF/funds", json!({"amount": "50.00", "currency": "CNY"}));
    let allocate = json!({"counterparty": {"type": "customer", "id": "RF-C1"}, "amount": "10.00", "currency": "CNY"});
    kept.post(&token, "/v1/allocations", allocate.clone());
    kept.post(&token, "/v1/allocations", allocate);
    kept.post(
        &token,
        "/v1/reclaims",
        json!({"counterparty": {"type": "customer", "id": "RF-C1"}, "amount": "5.00", "currency": "CNY"}),
    );
    kept.replay_all();
}

#[test]
fn coupon_writes_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "RC", "distributor", None);
    associate(&s, "RC-C1", "RC", "resale");
    let mut kept = Kept::on(&s);
    // Each grant changes the quota the one before answered.
    kept.post(ADMIN_TOKEN, "/v1/partners/RC/coupon-quota", json!({"amount": "100.00", "currency": "CNY"}));
    kept.post(ADMIN_TOKEN, "/v1/partners/RC/coupon-quota", json!({"amount": "50.00", "currency": "CNY"}));
    // Each use changes the balance the issue and the use before answered.
    kept.post(
        &token,
        "/v1/coupons",
        json!({"coupon_id": "RC-CP1", "customer_id": "RC-C1", "amount": "40.00", "currency": "CNY", "expires_at": "2099-12-31T16:00:00Z"}),
    );
    for (usage, amount) in [("U1", "10.00"), ("U2", "5.00")] {
        let used_at = chrono::Utc::now().to_rfc3339();
        kept.post(
            ADMIN_TOKEN,
            "/v1/coupons/RC-CP1/usage",
            json!({"usage_id": usage, "amount": amount, "used_at": used_at}),
        );
    }
    kept.replay_all();
}

#[test]
fn partner_writes_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let mut kept = Kept::on(&s);
    kept.post(ADMIN_TOKEN, "/v1/partners", json!({"partner_id": "RP", "name": "RP Ltd", "kind": "distributor"}));
    kept.post(ADMIN_TOKEN, "/v1/partners/RP/certifications", json!({"kind": "real_name", "legal_name": "RP Legal"}));
    kept.post(ADMIN_TOKEN, "/v1/partners/RP/level", json!({"level": "preferred"}));
    kept.post(
        ADMIN_TOKEN,
        "/v1/partners/RP/certifications",
        json!({"kind": "business_info", "bank_account": {"holder_name": "RP Legal", "number": "6222000011112222", "bank": "ICBC"}, "tax_id": "91110000MA0000000X"}),
    );
    kept.post(ADMIN_TOKEN, "/v1/partners/RP/level", json!({"level": "leading"}));
    kept.replay_all();
}

#[test]
fn customer_writes_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    certified_partner(&s, "RU1", "distributor", None);
    certified_partner(&s, "RU2", "distributor", None);
    let months_ahead = |n: i64| (chrono::Utc::now() + chrono::Duration::days(31 * n)).to_rfc3339();
    let mut kept = Kept::on(&s);
    // Each change adds to the timeline the changes before it answered.
    kept.post(
        ADMIN_TOKEN,
        "/v1/customers",
        json!({"customer_id": "RU-C1", "partner_id": "RU1", "association_type": "resale", "effective_at": SINCE}),
    );
    kept.post(ADMIN_TOKEN, "/v1/customers/RU-C1/association-type", json!({"association_type": "referral"}));
    kept.post(ADMIN_TOKEN, "/v1/customers/RU-C1/end-association", json!({"effective_at": months_ahead(4)}));
    kept.post(
        ADMIN_TOKEN,
        "/v1/customers",
        json!({"customer_id": "RU-C1", "partner_id": "RU2", "association_type": "resale", "effective_at": months_ahead(5)}),
    );
    kept.post(
        ADMIN_TOKEN,
        "/v1/customers/RU-C1/association-type",
        json!({"association_type": "referral", "effective_at": months_ahead(9)}),
    );
    kept.post(
        ADMIN_TOKEN,
        "/v1/policies",
        json!({"effective_month": "2026-07", "currency": "CNY", "rates": [{"product": "ecs", "rate": "0.05"}]}),
    );
    kept.replay_all();
}

#[test]
fn month_and_payment_steps_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let token = certified_partner(&s, "RM", "distributor", None);
    associate(&s, "RM-C1", "RM", "resale");
    consume_ok(&s, vec![line("RM-R1", "RM-C1", "ecs", "1000.00", "2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z")]);
    let mut kept = Kept::on(&s);
    // Each step moves the month, then the payment, past what the step before answered.
    kept.write(ADMIN_TOKEN, "POST", "/v1/incentive-months/RM/2026-07/close", None);
    kept.write(&token, "POST", "/v1/incentive-months/2026-07/apply", None);
    kept.post(ADMIN_TOKEN, "/v1/incentive-months/RM/2026-07/review", json!({"decision": "pass"}));
    kept.post(ADMIN_TOKEN, "/v1/incentive-months/RM/2026-07/finalize", json!({}));
    let payment = kept.post(&token, "/v1/quarterly-payments", json!({"quarter": "2026Q3"}));
    let id = id_of(&payment, "payment_id");
    for step in ["approve", "invoice-list", "invoice-received"] {
        kept.write(ADMIN_TOKEN, "POST", &format!("/v1/quarterly-payments/{id}/{step}"), None);
    }
    kept.post(ADMIN_TOKEN, &format!("/v1/quarterly-payments/{id}/pay"), json!({"method": "cloud_account_credit"}));
    kept.replay_all();
}

#[test]
fn opportunity_steps_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "RO", "distributor", None);
    let mut kept = Kept::on(&s);
    kept.post(
        ADMIN_TOKEN,
        "/v1/opportunities",
        json!({"opportunity_id": "RO-OPP", "partner_id": "RO", "offering": "ecs-migration", "core_tag": true}),
    );
    kept.post(ADMIN_TOKEN, "/v1/opportunities/RO-OPP/deliver", json!({"delivery_end_date": "2026-08-01"}));
    kept.write(&token, "POST", "/v1/opportunities/RO-OPP/accept", None);
    kept.write(&token, "POST", "/v1/opportunities/RO-OPP/apply", None);
    kept.post(ADMIN_TOKEN, "/v1/opportunities/RO-OPP/review", json!({"decision": "pass"}));
    kept.post(ADMIN_TOKEN, "/v1/opportunities/RO-OPP/finalize", json!({"amount": "300.00", "currency": "CNY"}));
    kept.replay_all();
}

#[test]
fn withdrawal_steps_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let (token, _, id) = invoice_received_partner(&s, "RW");
    created(
        &s,
        "POST",
        &format!("/v1/quarterly-payments/{id}/pay"),
        ADMIN_TOKEN,
        Some(json!({"method": "cloud_account_credit"})),
    );
    let request = json!({"amount": "10.00", "currency": "CNY",
        "bank_account": {"holder_name": "RW Legal Name Co., Ltd.", "number": "6222000011112222", "bank": "ICBC"}});
    let mut kept = Kept::on(&s);
    let paid = id_of(&kept.post(&token, "/v1/withdrawals", request.clone()), "withdrawal_id");
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/withdrawals/{paid}/approve"), None);
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/withdrawals/{paid}/paid"), None);
    let failed = id_of(&kept.post(&token, "/v1/withdrawals", request.clone()), "withdrawal_id");
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/withdrawals/{failed}/approve"), None);
    kept.post(ADMIN_TOKEN, &format!("/v1/withdrawals/{failed}/failed"), json!({"reason": "bank return"}));
    let rejected = id_of(&kept.post(&token, "/v1/withdrawals", request), "withdrawal_id");
    kept.post(ADMIN_TOKEN, &format!("/v1/withdrawals/{rejected}/reject"), json!({"reason": "no"}));
    kept.replay_all();
}

#[test]
fn lab_point_steps_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "RL", "distributor", None);
    let mut kept = Kept::on(&s);
    let first = id_of(&kept.post(&token, "/v1/lab-points", json!({"points": 50})), "application_id");
    kept.post(ADMIN_TOKEN, &format!("/v1/lab-points/{first}/reject"), json!({"comment": "too many"}));
    kept.write(&token, "PUT", &format!("/v1/lab-points/{first}"), Some(json!({"points": 20})));
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/lab-points/{first}/grant"), None);
    // The balance the grant answered grows with the next grant.
    let second = id_of(&kept.post(&token, "/v1/lab-points", json!({"points": 10})), "application_id");
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/lab-points/{second}/grant"), None);
    kept.replay_all();
}

#[test]
fn credential_writes_replayed_answer_their_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "RK", "RK Ltd", "distributor", None);
    let mut kept = Kept::on(&s);
    // The issue answered a live credential, its secrets included; the revoke ends it.
    let issued =
        kept.post(ADMIN_TOKEN, "/v1/credentials", json!({"role": "partner", "partner_id": "RK", "name": "rk"}));
    let id = id_of(&issued, "credential_id");
    kept.write(ADMIN_TOKEN, "POST", &format!("/v1/credentials/{id}/revoke"), None);
    kept.replay_all();
}
