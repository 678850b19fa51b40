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
