//! Money at the edges (issue 16), through the real binary: a month finalized at 0; facts
//! from the future refused `INVALID_TIME` with nothing stored; the working-day calendar
//! loaded from a file (`--calendar FILE`), a make-up working day moving a withdrawal's
//! arrival date and a date beyond the file's years refused `CALENDAR_UNKNOWN`.

mod support;

use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

const P: &str = "EDGE";

/// Now plus `minutes`, as an RFC 3339 UTC time.
fn from_now(minutes: i64) -> String {
    (Utc::now() + Duration::minutes(minutes)).to_rfc3339()
}

#[test]
fn a_month_is_finalized_at_zero_and_facts_from_the_future_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-01", &[("ecs", "0.05")]);
    let token = certified_partner(&s, P, "distributor", None);
    associate(&s, "EDGE-C1", P, "resale");
    consume_ok(&s, vec![line("EDGE-R1", "EDGE-C1", "ecs", "100.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")]);

    // docs/DOMAIN.md, Conventions: a fact's time may lie at most 5 minutes in the future.
    let before = s.events_total();
    for (consumed_at, settled_at) in [(from_now(60 * 24), from_now(60 * 24)), (from_now(-60), from_now(10))] {
        let (status, answer) = consume(&s, vec![line("EDGE-R2", "EDGE-C1", "ecs", "10.00", &consumed_at, &settled_at)]);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            (answer["results"][0]["status"].as_str(), answer["results"][0]["error_code"].as_str()),
            (Some("rejected"), Some("INVALID_TIME")),
            "{answer}"
        );
    }
    // A line settled a minute ahead (clock drift) is a fact like any other.
    consume_ok(&s, vec![line("EDGE-R3", "EDGE-C1", "ecs", "10.00", &from_now(-60), &from_now(1))]);
    let before_refund = s.events_total();
    assert!(before_refund > before);
    let refund = json!({"refund_id": "EDGE-F1", "amount": "1.00", "settled_at": "2030-01-01T00:00:00Z"});
    expect(
        s.call("POST", "/v1/consumption/EDGE-R1/refunds", Some(ADMIN_TOKEN), Some(refund)),
        400,
        Some("INVALID_TIME"),
    );
    created(
        &s,
        "POST",
        &format!("/v1/partners/{P}/coupon-quota"),
        ADMIN_TOKEN,
        Some(json!({"amount": "50.00", "currency": "CNY"})),
    );
    created(
        &s,
        "POST",
        "/v1/coupons",
        &token,
        Some(
            json!({"coupon_id": "EDGE-CP", "customer_id": "EDGE-C1", "amount": "20.00", "currency": "CNY", "expires_at": "2099-01-01T00:00:00Z"}),
        ),
    );
    let before_usage = s.events_total();
    let usage = json!({"usage_id": "EDGE-U1", "amount": "5.00", "used_at": from_now(60 * 24 * 200)});
    let answer =
        expect(s.call("POST", "/v1/coupons/EDGE-CP/usage", Some(ADMIN_TOKEN), Some(usage)), 400, Some("INVALID_TIME"));
    assert!(answer["error_msg"].as_str().unwrap().contains("used_at"), "{answer}");
    assert_eq!(s.events_total(), before_usage, "nothing stored");
    assert_eq!(cents(&read(&s, "/v1/coupons/EDGE-CP", &token)["remaining"]), 2000);

    // docs/DOMAIN.md §5: "A month may be finalized at 0" (with a reason: it differs from the
    // accrued 5.00); a negative final amount is still bad input.
    close(&s, P, "2026-07");
    apply(&s, &token, "2026-07");
    review(&s, P, "2026-07", "pass");
    let path = format!("/v1/incentive-months/{P}/2026-07/finalize");
    expect(
        s.call("POST", &path, Some(ADMIN_TOKEN), Some(json!({"amount": "-1.00", "reason": "r"}))),
        400,
        Some("INVALID_AMOUNT"),
    );
    expect(s.call("POST", &path, Some(ADMIN_TOKEN), Some(json!({"amount": "0"}))), 400, Some("INVALID_FIELD"));
    let month = finalize(&s, P, "2026-07", json!({"amount": "0", "reason": "usage disputed by the customer"}));
    assert_eq!((month["status"].as_str(), amount(&month["final"], "CNY")), (Some("finalized"), "0.00".into()));
    assert_eq!(cents(&month["accrued"]), 500, "{month}");
    assert_balanced(&s, ADMIN_TOKEN, pos(&month));
}

/// A partner with 50.00 on its rebate account (its 2026Q3 paid by cloud account credit);
/// answers its token.
fn partner_with_rebate(s: &Server) -> String {
    publish_policy(s, "2026-07", &[("ecs", "0.05")]);
    paid_partner(s, P).token
}

fn request_withdrawal(s: &Server, token: &str, amount: &str) -> String {
    let legal_name = format!("{P} Legal Name Co., Ltd.");
    let w = created(
        s,
        "POST",
        "/v1/withdrawals",
        token,
        Some(json!({"amount": amount, "currency": "CNY",
            "bank_account": {"holder_name": legal_name, "number": "6222000011112222", "bank": "ICBC"}})),
    );
    w["withdrawal_id"].as_str().unwrap().to_string()
}

fn serve_with_calendar(dir: &std::path::Path, calendar: &std::path::Path) -> Server {
    Server::start_with_args(dir, &["--calendar".as_ref(), calendar.as_os_str()])
}

fn date(v: &Value) -> NaiveDate {
    NaiveDate::parse_from_str(v.as_str().unwrap_or_else(|| panic!("a date: {v}")), "%Y-%m-%d").unwrap()
}

#[test]
fn the_calendar_is_a_file_a_make_up_day_moves_the_arrival_and_an_unknown_year_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let token = {
        let s = Server::start(dir.path());
        let token = partner_with_rebate(&s);
        s.stop();
        token
    };

    // A calendar that holds only 2020: today's approval cannot count its working days.
    let old = files.path().join("old.txt");
    std::fs::write(&old, "# only 2020\n2020-10-01 holiday National Day\n").unwrap();
    let s = serve_with_calendar(dir.path(), &old);
    let w = request_withdrawal(&s, &token, "5.00");
    let before = s.events_total();
    let answer = expect(
        s.call("POST", &format!("/v1/withdrawals/{w}/approve"), Some(ADMIN_TOKEN), None),
        409,
        Some("CALENDAR_UNKNOWN"),
    );
    assert!(answer["error_msg"].as_str().unwrap().contains("2020"), "{answer}");
    assert_eq!(s.events_total(), before, "nothing stored");
    assert_eq!(read(&s, &format!("/v1/withdrawals/{w}"), &token)["status"], "requested");
    s.stop();

    // A calendar whose next Saturday is a make-up working day (调休): the arrival is one
    // working day sooner than the week alone gives.
    let today = ledger_core::business_date(Utc::now());
    let saturday = (1..=7).map(|d| today + Duration::days(d)).find(|d| d.weekday() == Weekday::Sat).unwrap();
    // The next year is held too, however close to its end today is.
    let text = format!("{saturday} workday make-up day\n{}-01-01 holiday New Year's Day\n", saturday.year() + 1);
    let made_up = files.path().join("made-up.txt");
    std::fs::write(&made_up, &text).unwrap();
    let s = serve_with_calendar(dir.path(), &made_up);
    let w = request_withdrawal(&s, &token, "6.00");
    let day_before = ledger_core::business_date(Utc::now());
    let approved = created(&s, "POST", &format!("/v1/withdrawals/{w}/approve"), ADMIN_TOKEN, None);
    let day_after = ledger_core::business_date(Utc::now());
    let arrival = date(&approved["expected_arrival_date"]);
    let file = ledger_core::WorkingCalendar::parse(&text).unwrap();
    let week = ledger_core::WorkingCalendar::weekdays_only();
    // Whichever side of midnight CST the approval fell on.
    let expected: Vec<(NaiveDate, NaiveDate)> = [day_before, day_after]
        .into_iter()
        .map(|day| (file.add_working_days(day, 7).unwrap(), week.add_working_days(day, 7).unwrap()))
        .collect();
    assert!(expected.iter().any(|(with_file, _)| *with_file == arrival), "{arrival}, expected one of {expected:?}");
    assert!(expected.iter().all(|(with_file, week)| with_file < week), "{expected:?}");
    s.stop();
}

#[test]
fn a_calendar_file_that_cannot_be_read_stops_the_start() {
    let files = tempfile::tempdir().unwrap();
    let bad = files.path().join("bad.txt");
    std::fs::write(&bad, "2026-07-06 workday\n").unwrap(); // a Monday
    for (args, says) in [
        (vec!["serve", "--listen", "127.0.0.1:0", "--calendar"], "line 1"),
        (vec!["demo", "seed", "--partners", "1", "--months", "1", "--calendar"], "line 1"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(&args)
            .arg(&bad)
            .arg("--data")
            .arg(data.path())
            .env("LEDGER_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains("bad.txt"), "{args:?}: {stderr}");
    }
    // A file that lists a year seeds through it (the demo approves withdrawals with it).
    let good = files.path().join("good.txt");
    let year = ledger_core::business_date(Utc::now()).year();
    std::fs::write(&good, format!("{year}-10-01 holiday\n{}-01-01 holiday\n{}-12-31 holiday\n", year + 1, year - 1))
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["demo", "seed", "--partners", "5", "--months", "3", "--calendar"])
        .arg(&good)
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The months of `partner` by month, as the admin reads them.
fn months_of(s: &Server, partner: &str) -> std::collections::BTreeMap<String, Value> {
    let list = read(s, &format!("/v1/incentive-months?year=2026&partner_id={partner}"), ADMIN_TOKEN);
    list["items"].as_array().unwrap().iter().map(|m| (m["month"].as_str().unwrap().to_string(), m.clone())).collect()
}

fn step(s: &Server, payment_id: &str, action: &str, body: Option<Value>) -> Value {
    created(s, "POST", &format!("/v1/quarterly-payments/{payment_id}/{action}"), ADMIN_TOKEN, body)
}

#[test]
fn a_negative_month_is_never_paid_negative_it_is_deducted_from_the_next_payment() {
    // The issue's story: a May line of 10.00 at rate 0.5, May closed, a 6.00 refund settled
    // in June: June is finalized at −3.00.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-01", &[("ecs", "0.5")]);
    let token = certified_partner(&s, "NEG", "distributor", None);
    associate(&s, "NEG-C1", "NEG", "referral");
    consume_ok(&s, vec![line("NEG-R1", "NEG-C1", "ecs", "10.00", "2026-05-10T02:00:00Z", "2026-05-12T02:00:00Z")]);
    close(&s, "NEG", "2026-05");
    created(
        &s,
        "POST",
        "/v1/consumption/NEG-R1/refunds",
        ADMIN_TOKEN,
        Some(json!({"refund_id": "NEG-F1", "amount": "6.00", "settled_at": "2026-06-15T02:00:00Z"})),
    );
    let june = finalize_month(&s, "NEG", &token, "2026-06");
    assert_eq!(amount(&june["final"], "CNY"), "-3.00", "{june}");

    // Q2 has nothing payable: refused, and May (open) is not forfeited for it.
    let e = read(&s, "/v1/quarterly-payments/eligibility?quarter=2026Q2", &token);
    assert_eq!(e["eligible"], false, "{e}");
    assert_eq!(e["blockers"], json!([{"code": "NOTHING_PAYABLE", "months": ["2026-06"]}]), "{e}");
    assert_eq!((cents(&e["payable"]), cents(&e["carried_deduction"])), (-300, 0), "{e}");
    let before = s.events_total();
    expect(
        s.call("POST", "/v1/quarterly-payments", Some(&token), Some(json!({"quarter": "2026Q2"}))),
        409,
        Some("NOTHING_PAYABLE"),
    );
    assert_eq!(s.events_total(), before, "nothing stored");
    assert_eq!(months_of(&s, "NEG")["2026-05"]["status"], "open");

    // Q3 earns 50.00; its payment deducts June's 3.00 and settles June.
    consume_ok(&s, vec![line("NEG-R2", "NEG-C1", "ecs", "100.00", "2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z")]);
    finalize_month(&s, "NEG", &token, "2026-07");
    let e = read(&s, "/v1/quarterly-payments/eligibility?quarter=2026Q3", &token);
    assert_eq!(e["eligible"], true, "{e}");
    assert_eq!((cents(&e["payable"]), cents(&e["carried_deduction"])), (4700, 300), "{e}");
    let payment = created(&s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    let id = payment["payment_id"].as_str().unwrap().to_string();
    assert_eq!((cents(&payment["payable"]), cents(&payment["carried_deduction"])), (4700, 300), "{payment}");
    assert_eq!(payment["carried_months"][0]["month"], "2026-06", "{payment}");
    step(&s, &id, "approve", None);
    let listed = step(&s, &id, "invoice-list", None);
    let lines = listed["invoice_list"]["lines"].as_array().unwrap();
    assert_eq!(lines.iter().map(|l| cents(&l["amount"])).sum::<i64>(), 4700, "{listed}");
    step(&s, &id, "invoice-received", None);
    let month_paid = ledger_core::Month::of(Utc::now());
    let paid = step(&s, &id, "pay", Some(json!({"method": "bank_transfer"})));
    assert_eq!((paid["status"].as_str(), cents(&paid["payable"])), (Some("paid"), 4700), "{paid}");

    // June and July read paid with that payment's id; May is still open, never forfeited.
    let months = months_of(&s, "NEG");
    for m in ["2026-06", "2026-07"] {
        assert_eq!((months[m]["status"].as_str(), months[m]["payment_id"].as_str()), (Some("paid"), Some(id.as_str())));
    }
    assert_eq!(months["2026-05"]["status"], "open");
    // What the vendor owed (−3.00 + 50.00) is what it paid: the payable account is empty.
    assert_balanced(&s, ADMIN_TOKEN, pos(&paid));
    let b = balances(&s, &token, &format!("min_position={}", pos(&paid)));
    assert_eq!(cents(&b["partner:NEG:incentive_payable"]), 0, "{b:?}");
    // The statement of the month it was paid shows the deduction.
    let statement = read(&s, &format!("/v1/statements/{month_paid}?currency=CNY"), &token);
    let carried = &statement["carried_deductions"];
    assert_eq!(carried.as_array().map(Vec::len), Some(1), "{statement}");
    assert_eq!((carried[0]["payment_id"].as_str(), cents(&carried[0]["amount"])), (Some(id.as_str()), 300));
    assert_eq!(carried[0]["months"][0]["month"], "2026-06", "{statement}");
    let (status, csv) =
        s.call("GET", &format!("/v1/statements/{month_paid}?currency=CNY&format=csv"), Some(&token), None);
    assert_eq!(status, 200);
    let row = format!("NEG,{month_paid},CNY,,carried_deduction,{id},,3.00");
    assert!(csv.as_str().unwrap().lines().any(|l| l == row), "{row} in {csv}");
}

#[test]
fn a_rejected_payment_returns_the_months_it_forfeited() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-01", &[("ecs", "0.05")]);
    let token = certified_partner(&s, "REJ", "distributor", None);
    associate(&s, "REJ-C1", "REJ", "referral");
    consume_ok(
        &s,
        vec![
            line("REJ-R1", "REJ-C1", "ecs", "1000.00", "2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z"),
            line("REJ-R2", "REJ-C1", "ecs", "200.00", "2026-08-10T02:00:00Z", "2026-08-12T02:00:00Z"),
        ],
    );
    finalize_month(&s, "REJ", &token, "2026-07");
    close(&s, "REJ", "2026-08");
    // Requested after the quarter: the open August is forfeited.
    let payment = created(&s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    let id = payment["payment_id"].as_str().unwrap().to_string();
    assert_eq!(payment["excluded_months"], json!(["2026-08"]), "{payment}");
    assert_eq!(months_of(&s, "REJ")["2026-08"]["status"], "forfeited");

    let rejected = step(&s, &id, "reject", Some(json!({"reason": "the partner wants August too"})));
    assert_eq!(rejected["status"], "rejected");
    let months = months_of(&s, "REJ");
    assert_eq!(months["2026-08"]["status"], "open", "the forfeited month is back");
    assert_eq!(
        (months["2026-07"]["status"].as_str(), months["2026-07"]["payment_id"].as_str()),
        (Some("finalized"), None)
    );
    // August can be applied for again, and then the quarter is paid whole.
    finalize_month_after_close(&s, "REJ", &token, "2026-08");
    let again = created(&s, "POST", "/v1/quarterly-payments", &token, Some(json!({"quarter": "2026Q3"})));
    assert_eq!((cents(&again["payable"]), again["excluded_months"].clone()), (6000, json!([])), "{again}");
}

/// Apply, pass and finalize a month already closed.
fn finalize_month_after_close(s: &Server, partner: &str, token: &str, month: &str) -> Value {
    apply(s, token, month);
    review(s, partner, month, "pass");
    finalize(s, partner, month, json!({}))
}

/// Appends `event` to `stream` directly in the store of `dir` (the server stopped): a
/// history the API would not write, to see what a step does with it.
fn inject<E: ledger_domain::EventFamily>(dir: &std::path::Path, stream: &str, event: &E) {
    use ledger_store::{AppendRequest, ExpectedVersion};
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // The server's store: the embedded one in `dir`, or its schema when on PostgreSQL.
        let spec = support::postgres::store_of(dir).unwrap_or_else(|| dir.display().to_string());
        let store = ledger_store::open_store(&spec).await.unwrap();
        let (event_type, version, payload) = ledger_domain::encode(event);
        let new = ledger_core::NewEvent::new(&event_type, version, Utc::now(), &payload).unwrap();
        let meta = ledger_core::CommandMeta::new(ledger_core::Actor::system("test"));
        let req = AppendRequest {
            stream: stream.to_string(),
            expected: ExpectedVersion::Any,
            events: vec![new],
            meta,
            idempotency: None,
            event_keys: vec![],
        };
        store.append(req).await.unwrap();
        drop(store); // the embedded store closes (its WAL checkpointed) before the server starts
    });
}

#[test]
fn a_pay_step_any_decider_refuses_stores_nothing() {
    // The rebate stream already credited this payment with another amount: the credit would
    // be refused, so the payment is not paid either (docs/DOMAIN.md §5, all-or-nothing).
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let (token, _, id) = invoice_received_partner(&s, "ALL");
    s.stop();
    let odd = ledger_domain::rebate::RebateEvent::RebateCredited {
        partner_id: "ALL".into(),
        source_id: id.clone(),
        amount: ledger_core::Money::new(rust_decimal::Decimal::ONE, ledger_core::Currency::CNY),
        credited_at: Utc::now(),
    };
    inject(dir.path(), &ledger_domain::rebate::stream_id("ALL"), &odd);
    let s = Server::start(dir.path());
    let head = s.events_total();
    expect(
        s.call(
            "POST",
            &format!("/v1/quarterly-payments/{id}/pay"),
            Some(ADMIN_TOKEN),
            Some(json!({"method": "cloud_account_credit"})),
        ),
        409,
        Some("DUPLICATE_RECORD_CONFLICT"),
    );
    assert_eq!(s.events_total(), head, "the log head is unchanged");
    assert_eq!(read(&s, &format!("/v1/quarterly-payments/{id}"), &token)["status"], "invoice_received");
    assert_eq!(months_of(&s, "ALL")["2026-07"]["status"], "finalized");
    // Another way to pay, whose deciders all agree, goes through.
    let paid = step(&s, &id, "pay", Some(json!({"method": "bank_transfer"})));
    assert_eq!(paid["status"], "paid");
}

/// Opens the store of `dir` (the server stopped) for a look or a write of the test's own.
fn with_store<T, F: std::future::Future<Output = T>>(
    dir: &std::path::Path,
    f: impl FnOnce(std::sync::Arc<dyn ledger_store::EventStore>) -> F,
) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let spec = support::postgres::store_of(dir).unwrap_or_else(|| dir.display().to_string());
        let store = ledger_store::open_store(&spec).await.unwrap();
        let answer = f(store.clone()).await;
        drop(store); // the embedded store closes (its WAL checkpointed) before the server starts
        answer
    })
}

/// The idempotency key the server keeps for the admin token's request id `request_id`.
fn admin_key(request_id: &str) -> String {
    format!("req:admin-env:{request_id}")
}

/// A payment paid by `cloud_account_credit` as a log written before the pay and its credit
/// went into one append may hold it: the paid event stored alone under the first call's
/// request id (`pay-{partner}-1`), the process dead before the credit's own append.
/// Answers the partner's token and the payment id.
fn pay_cut_short(dir: &std::path::Path, partner: &str) -> (String, String) {
    use ledger_domain::incentives::{self, IncentiveCommand, Incentives, PayQuarterlyPayment, PaymentMethod};
    let s = Server::start(dir);
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let (token, _, id) = invoice_received_partner(&s, partner);
    s.stop();
    let path = format!("/v1/quarterly-payments/{id}/pay");
    let body = serde_json::to_vec(&json!({"method": "cloud_account_credit"})).unwrap();
    let request_id = format!("pay-{partner}-1");
    let mut meta = ledger_core::CommandMeta::new(ledger_core::Actor::system("admin-env"));
    meta.request_id = Some(request_id.clone());
    let ctx = ledger_app::CommandContext {
        meta,
        now: Utc::now(),
        idempotency: Some(ledger_store::IdempotencyKey {
            key: admin_key(&request_id),
            fingerprint: ledger_api::http::RequestFingerprint::of("POST", &path, None, &body).0,
        }),
    };
    let pay = IncentiveCommand::PayQuarterlyPayment(PayQuarterlyPayment {
        payment_id: id.clone(),
        method: PaymentMethod::CloudAccountCredit,
    });
    with_store(dir, |store| async move {
        let exec = ledger_app::Executor::new(store);
        let paid = exec.execute::<Incentives>(&incentives::stream_id(partner), pay, &ctx).await.unwrap();
        assert!(paid.is_stored(), "{paid:?}");
    });
    (token, id)
}

#[test]
fn a_pay_by_credit_stores_the_pay_and_its_credit_in_one_append() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let (token, _, id) = invoice_received_partner(&s, "ONE");
    let head = s.events_total();
    let (status, paid) = pay_with_id(&s, &id, "pay-ONE-1");
    assert_eq!((status, paid["status"].as_str()), (201, Some("paid")), "{paid}");
    // The paid event and the credit, one after the other; the answer's position is the credit's.
    assert_eq!(s.events_total(), head + 2);
    let log = read(&s, &format!("/v1/events?from_position={}&limit=2", head + 1), ADMIN_TOKEN);
    assert_eq!(
        (log["items"][0]["type"].as_str(), log["items"][1]["type"].as_str()),
        (Some("QuarterlyPaymentPaid"), Some("RebateCredited")),
        "{log}"
    );
    assert_eq!(pos(&paid), head + 2);
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
    assert_balanced(&s, ADMIN_TOKEN, pos(&paid));
    // A retry answers the first answer and stores nothing; a pay under another id is refused.
    let (status, again) = pay_with_id(&s, &id, "pay-ONE-1");
    assert_eq!((status, &again), (200, &paid));
    expect(pay_with_id(&s, &id, "pay-ONE-2"), 409, Some("INVALID_STATE"));
    assert_eq!(s.events_total(), head + 2);
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
    s.stop();
    // One append: the request's kept result spans both events (a credit stored by an append
    // of its own would lie outside it).
    let kept =
        with_store(dir.path(), |store| async move { store.idempotency_key(&admin_key("pay-ONE-1")).await.unwrap() });
    let (_, first) = kept.expect("the request's key is kept");
    assert_eq!((first.first_position, first.last_position), (head + 1, head + 2));
}

/// The server on a log holding a pay cut short, leaving the credit to the API (not
/// completed at start).
fn restart_without_start_completion(dir: &std::path::Path) -> Server {
    Server::start_with_env(dir, &[("LEDGER_START_COMPLETION", "off")])
}

fn pay_with_id(s: &Server, id: &str, request_id: &str) -> (u16, Value) {
    let body = json!({"method": "cloud_account_credit"});
    s.send(
        "POST",
        &format!("/v1/quarterly-payments/{id}/pay"),
        Some(ADMIN_TOKEN),
        &[("X-Request-Id", request_id)],
        Some(&body),
    )
}

#[test]
fn a_pay_step_cut_short_between_its_appends_is_completed_by_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (token, id) = pay_cut_short(dir.path(), "CUT");
    let s = restart_without_start_completion(dir.path());
    assert_eq!(read(&s, &format!("/v1/quarterly-payments/{id}"), &token)["status"], "paid");
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 0, "not credited yet");
    // The retry under the same request id completes the step: credited once, balanced.
    for _ in 0..2 {
        let (status, answer) = pay_with_id(&s, &id, "pay-CUT-1");
        assert_eq!((status, answer["status"].as_str()), (200, Some("paid")), "{answer}");
        assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
        assert_balanced(&s, ADMIN_TOKEN, pos(&answer));
    }
}

#[test]
fn a_pay_step_cut_short_is_completed_by_a_pay_under_another_request_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let (token, id) = pay_cut_short(dir.path(), "CUX");
    let s = restart_without_start_completion(dir.path());
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 0, "not credited yet");
    let head = s.events_total();
    let (status, answer) = pay_with_id(&s, &id, "pay-CUX-2");
    assert_eq!((status, answer["status"].as_str()), (200, Some("paid")), "{answer}");
    // One event more, the credit, and the answer's position is its position.
    assert_eq!(s.events_total(), head + 1);
    let credit = pos(&answer);
    let log = read(&s, &format!("/v1/events?from_position={credit}&limit=1"), ADMIN_TOKEN);
    assert_eq!(log["items"][0]["type"], "RebateCredited", "{log}");
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
    assert_balanced(&s, ADMIN_TOKEN, credit);
    // Its retry answers the same; the first call's retry completes nothing more.
    for request_id in ["pay-CUX-2", "pay-CUX-1"] {
        let (status, again) = pay_with_id(&s, &id, request_id);
        assert_eq!((status, again["status"].as_str()), (200, Some("paid")), "{again}");
    }
    assert_eq!(pos(&pay_with_id(&s, &id, "pay-CUX-2").1), credit);
    // Paid and credited: another pay is refused, nothing stored.
    expect(pay_with_id(&s, &id, "pay-CUX-3"), 409, Some("INVALID_STATE"));
    assert_eq!(s.events_total(), head + 1);
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
}

#[test]
fn a_pay_step_cut_short_is_completed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (token, id) = pay_cut_short(dir.path(), "CUS");
    let s = Server::start(dir.path());
    // The start completes the credit in the background, once the read models caught up.
    let mut credited = 0;
    for _ in 0..400 {
        credited = cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token));
        if credited != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(credited, 5000, "credited once, at start");
    assert_balanced(&s, ADMIN_TOKEN, s.events_total());
    let head = s.events_total();
    expect(pay_with_id(&s, &id, "pay-CUS-2"), 409, Some("INVALID_STATE"));
    // The first call's retry still answers its step (the credit is idempotent by payment).
    let (status, answer) = pay_with_id(&s, &id, "pay-CUS-1");
    assert_eq!((status, answer["status"].as_str()), (200, Some("paid")), "{answer}");
    assert_eq!(s.events_total(), head);
    s.stop();
    // A second start finds nothing to complete.
    let s = Server::start(dir.path());
    assert_eq!(s.events_total(), head);
    assert_eq!(cents(&read(&s, "/v1/withdrawals/withdrawable?currency=CNY", &token)), 5000);
}
