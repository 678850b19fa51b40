//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
//! clicking through the seed's stories on the real `ledger serve`: a fresh store set up
//! through the API, and `serve --demo`. After every page the browser's console must hold no
//! error; every page is saved as a PNG under `target/console-screenshots/`.
//!
//! Without chromium or chromedriver these tests FAIL (they name what to install).

mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use serde_json::json;
use support::flows::*;
use support::{Server, ADMIN_TOKEN};
use webdriver::Browser;

fn sign_in(b: &Browser, s: &Server, token: &str) {
    b.goto(&s.url("/login"));
    b.fill("#token", token);
    b.click_to_page("form[action='/login'] button[type=submit]");
    b.find("nav.side");
    b.assert_no_console_errors("sign-in");
}

fn sign_out(b: &Browser) {
    b.click_to_page("form[action='/logout'] button");
    b.find("#token");
}

/// A certified distributor whose July (2026Q3) is closed with 50.00 accrued, ready to be
/// applied for; answers its token.
fn partner_with_a_closed_month(s: &Server, partner: &str) -> String {
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
    close(s, partner, "2026-07");
    token
}

/// The seed's incentive story, page by page: apply for a month (the review blocker shows),
/// the operator passes and finalizes it, the partner requests the quarter and opens the
/// invoice list; paid as rebate, a withdrawal to a wrongly named account is refused on the
/// page with nothing stored, the right one goes through and gets its arrival date.
#[test]
fn a_month_from_application_to_invoice_list_and_withdrawal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let token = partner_with_a_closed_month(&s, "WB1");
    let b = Browser::start("zh-CN,zh");

    // Signed out, a page sends to the sign-in page.
    b.goto(&s.url("/partner/months"));
    b.find("#token");
    b.assert_no_console_errors("/login");
    b.screenshot("01-login");

    // A wrong token is refused in words.
    b.fill("#token", "not-a-token");
    b.click_to_page("form[action='/login'] button[type=submit]");
    assert!(b.find("[data-code=UNAUTHENTICATED]").text().contains("未登录"));

    sign_in(&b, &s, &token);
    b.visit(&s.url("/partner/months?year=2026"), "02-partner-months");
    assert_eq!(b.find("#months tr[data-month='2026-07'] [data-status]").attr("data-status").as_deref(), Some("open"));
    // 待申请激励: apply for July.
    b.click_to_page("form[action='/partner/months/apply'] button");
    b.find("#eligibility");
    b.assert_no_console_errors("apply");
    assert!(b.find("p.notice.done").text().contains("初审"));
    let blocker = b.find("#blockers li[data-code=REVIEW_PENDING]").text();
    assert!(blocker.contains("初审中") && blocker.contains("2026-07"), "{blocker}");
    b.screenshot("03-quarter-review-pending");
    // Requesting now is refused with the blocker's meaning, nothing stored.
    let before = s.events_total();
    b.click_to_page("#request-form button");
    assert!(b.find("div.notice.refused[data-code=REVIEW_PENDING]").text().contains("初审"));
    assert_eq!(s.events_total(), before, "a refused form stores nothing");
    b.assert_no_console_errors("refused payment");
    sign_out(&b);

    // The operator passes and finalizes it.
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/reviews"), "04-ops-review-queue");
    let row = "#review-queue tr[data-partner=WB1][data-month='2026-07']";
    b.fill(&format!("{row} input[name=comment]"), "核对无误");
    b.click_to_page(&format!("{row} button[value=pass]"));
    b.find("p.notice.done");
    let row = "#finalize-queue tr[data-partner=WB1][data-month='2026-07']";
    b.screenshot("05-ops-finalize-queue");
    b.click_to_page(&format!("{row} button"));
    b.find("p.notice.done");
    assert_eq!(b.count("#finalize-queue tr[data-partner=WB1]"), 0);
    b.assert_no_console_errors("finalize");
    sign_out(&b);

    // The partner applies for the quarter.
    sign_in(&b, &s, &token);
    b.visit(&s.url("/partner/quarter?quarter=2026Q3"), "06-quarter-eligible");
    assert_eq!(b.find("#eligibility").attr("data-eligible").as_deref(), Some("true"));
    assert!(b.text("#payable").starts_with("50.00"), "{}", b.text("#payable"));
    b.click_to_page("#request-form button");
    let status = b.find("#payments [data-status]").attr("data-status");
    assert_eq!(status.as_deref(), Some("requested"));
    b.screenshot("07-applications");
    sign_out(&b);

    // The operator approves and issues the invoice list.
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/payments"), "08-ops-payments");
    for step in ["approve", "invoice-list"] {
        b.click_to_page(&format!("#payment-queue button[value='{step}']"));
        b.find("p.notice.done");
        b.assert_no_console_errors(step);
    }
    sign_out(&b);

    // 伙伴账务 > 激励申付管理 > 申请记录 → 查看开票清单.
    sign_in(&b, &s, &token);
    b.goto(&s.url("/partner/payments"));
    b.click_to_page("#payments a[href$='/invoice']");
    b.find("#invoice-lines");
    b.assert_no_console_errors("invoice list");
    assert!(!b.text("#mailing-address").trim().is_empty(), "the mailing address is shown");
    assert!(b.text("#mailbox").contains('@'), "the public mailbox is shown");
    assert!(b.text("#invoice-total").starts_with("50.00"));
    b.find("button[data-print]"); // shown by the page's script
    assert_eq!(b.find("button[data-print]").attr("hidden"), None, "the print button is shown by the script");
    b.screenshot("09-invoice-list");
    sign_out(&b);

    // Paid as rebate credit (激励返点返云账户).
    sign_in(&b, &s, ADMIN_TOKEN);
    b.goto(&s.url("/ops/payments"));
    b.click_to_page("#payment-queue button[value='invoice-received']");
    b.find("p.notice.done");
    b.select("#payment-queue select[name=method]", "cloud_account_credit");
    b.click_to_page("#payment-queue button[value=pay]");
    b.find("p.notice.done");
    sign_out(&b);

    // A withdrawal to an account in another name is refused on the page, nothing stored.
    sign_in(&b, &s, &token);
    b.visit(&s.url("/partner/withdrawals"), "10-withdrawals");
    assert!(b.text("#withdrawable").starts_with("50.00"));
    let before = s.events_total();
    b.fill("#amount", "20.00");
    b.fill("#holder_name", "Somebody Else Ltd.");
    b.fill("#number", "6222000011112222");
    b.fill("#bank", "ICBC");
    b.click_to_page("#withdrawal-form button[type=submit]");
    let refused = b.find("div.notice.refused[data-code=ACCOUNT_NAME_MISMATCH]").text();
    assert!(refused.contains("实名认证"), "{refused}");
    b.assert_no_console_errors("refused withdrawal");
    b.screenshot("11-withdrawal-refused");
    assert_eq!(s.events_total(), before, "nothing stored");
    assert!(b.text("#withdrawable").starts_with("50.00"));
    assert_eq!(b.count("#withdrawals [data-status]"), 0);
    // The form kept what was typed; correct the name.
    assert_eq!(b.find("#amount").attr("value").as_deref(), Some("20.00"));
    b.fill("#holder_name", "WB1 Legal Name Co., Ltd.");
    b.click_to_page("#withdrawal-form button[type=submit]");
    b.find("p.notice.done");
    assert!(b.text("#withdrawable").starts_with("30.00"));
    assert_eq!(b.find("#withdrawals [data-status]").attr("data-status").as_deref(), Some("requested"));
    sign_out(&b);

    // Approved: the expected arrival date appears for the partner.
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/withdrawals"), "12-ops-withdrawals");
    b.click_to_page("#withdrawal-queue button[value=approve]");
    b.find("p.notice.done");
    sign_out(&b);
    sign_in(&b, &s, &token);
    b.goto(&s.url("/partner/withdrawals"));
    let row = b.text("#withdrawals tbody tr");
    assert!(row.contains("已审批") && (row.contains("2026-") || row.contains("2027-")), "{row}");
    b.assert_no_console_errors("withdrawals");
}

/// 拨款 to a reseller shows in the reseller's 调账记录; switching a customer's association
/// type twice within 3 months is refused on the page (the 3-month rule), nothing stored;
/// a form without the CSRF token does nothing.
#[test]
fn allocation_in_reseller_records_and_the_three_month_switch_rule() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "WD1", "WD1 Distribution", "distributor", None);
    register_partner(&s, "WR1", "WR1 Reseller", "reseller", Some("WD1"));
    created(&s, "POST", "/v1/partners/WD1/funds", ADMIN_TOKEN, Some(json!({"amount": "1000.00", "currency": "CNY"})));
    associate_now(&s, "WC1", "WD1", "resale");
    let distributor = s.credential("partner", Some("WD1"));
    let reseller = s.credential("partner", Some("WR1"));
    let b = Browser::start("en-US,en");

    sign_in(&b, &s, &distributor);
    b.visit(&s.url("/partner/funds"), "20-funds");
    assert_eq!(b.find("html").attr("lang").as_deref(), Some("en"), "Accept-Language picks English");
    b.select("#direction", "allocate");
    b.select("#cp_type", "reseller");
    b.fill("#cp_id", "WR1");
    b.fill("#f-amount", "120.00");
    b.fill("#remark", "Q4 campaign");
    b.click_to_page("#adjust-form button[type=submit]");
    assert!(b.find("p.notice.done").text().contains("Allocated"));
    assert_eq!(b.count("#adjustment-records tr[data-kind=allocate]"), 1);
    // Reclaiming more than the reseller holds is refused in words, nothing stored.
    let before = s.events_total();
    b.select("#direction", "reclaim");
    b.select("#cp_type", "reseller");
    b.fill("#cp_id", "WR1");
    b.fill("#f-amount", "500.00");
    b.click_to_page("#adjust-form button[type=submit]");
    assert!(b.find("div.notice.refused[data-code=INSUFFICIENT_BALANCE]").text().contains("Insufficient"));
    assert_eq!(s.events_total(), before);
    b.assert_no_console_errors("refused reclaim");

    // The customer's association: the first switch goes through, the second is refused.
    b.visit(&s.url("/partner/customers?customer_id=WC1"), "21-customer");
    assert_eq!(b.text("#association-type"), "resale");
    b.select("#association_type", "referral");
    b.click_to_page("#switch-form button[value=switch]");
    b.find("p.notice.done");
    assert_eq!(b.text("#association-type"), "referral");
    let before = s.events_total();
    b.select("#association_type", "resale");
    b.click_to_page("#switch-form button[value=switch]");
    let refused = b.find("div.notice.refused[data-code=SWITCH_TOO_FREQUENT]").text();
    assert!(refused.contains("3 months"), "{refused}");
    b.screenshot("22-switch-refused");
    b.assert_no_console_errors("refused switch");
    assert_eq!(s.events_total(), before, "nothing stored");
    b.goto(&s.url("/partner/customers?customer_id=WC1"));
    assert_eq!(b.text("#association-type"), "referral");

    // The language switch: Chinese from now on, whatever the browser asks.
    b.click_to_page("nav.lang a[lang=zh-CN]");
    assert_eq!(b.find("html").attr("lang").as_deref(), Some("zh-CN"));
    assert!(b.text("h1").contains("客户管理"));
    b.click_to_page("nav.lang a[lang=en]");
    sign_out(&b);

    // The reseller sees the allocation in its adjustment records, filtered by kind.
    sign_in(&b, &s, &reseller);
    b.visit(&s.url("/partner/funds?kind=allocate"), "23-reseller-records");
    let row = b.text("#adjustment-records tr[data-kind=allocate]");
    assert!(row.contains("WD1") && row.contains("120.00") && row.contains("Q4 campaign"), "{row}");
    b.visit(&s.url("/partner/funds?kind=reclaim"), "24-reseller-records-reclaim");
    assert_eq!(b.count("#adjustment-records tr[data-kind]"), 0, "the kind filter applies");
    // A partner cannot look at another partner's data by naming it.
    b.goto(&s.url("/partner/funds?partner_id=WD1&kind=reclaim"));
    assert_eq!(b.count("#adjustment-records tr[data-kind]"), 0);
    assert_eq!(b.count("input[name=partner_id]"), 0, "a partner is never asked for a partner id");

    // A form posted without this session's CSRF token does nothing.
    let before = s.events_total();
    let answer =
        ureq::post(&s.url("/partner/funds")).set("Cookie", &format!("ledger_session={distributor}")).send_form(&[
            ("direction", "allocate"),
            ("counterparty_type", "reseller"),
            ("counterparty", "WR1"),
            ("amount", "1.00"),
            ("currency", "CNY"),
        ]);
    match answer {
        Err(ureq::Error::Status(403, r)) => assert!(r.into_string().unwrap().contains("CSRF")),
        other => panic!("expected 403, got {:?}", other.map(|r| r.status())),
    }
    assert_eq!(s.events_total(), before, "nothing stored without the CSRF token");
}

/// Every page of the console on `serve --demo`, as operator, auditor and partner: no page
/// logs a console error, and each is saved as a screenshot.
#[test]
fn every_page_on_the_demo_has_no_console_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_args(dir.path(), &["--demo".as_ref()]);
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, ADMIN_TOKEN);
    let last_quarter = {
        let v = read(&s, "/v1/quarterly-payments?partner_id=P00002&limit=1", ADMIN_TOKEN);
        v["items"][0]["quarter"].as_str().unwrap_or("2026Q3").to_string()
    };
    let admin_pages = [
        ("/", "30-admin-home"),
        ("/ops/reviews", "31-ops-reviews"),
        ("/ops/payments?all=1", "32-ops-payments"),
        ("/ops/withdrawals", "33-ops-withdrawals"),
        ("/ops/lab-points", "34-ops-lab-points"),
        ("/ops/credentials", "35-ops-credentials"),
        ("/finance/trial-balance", "36-trial-balance"),
        ("/finance/statement?partner_id=P00001", "37-statement"),
        ("/finance/balances?partner_id=P00001", "38-balances"),
        ("/finance/charts", "39-charts"),
        ("/finance/charts?partner_id=P00001", "40-charts-distributor"),
        ("/finance/chain", "41-chain"),
        ("/finance/events", "42-events"),
        ("/partner/months?partner_id=P00001", "43-admin-partner-months"),
        ("/partner/details?partner_id=P00001", "44-admin-details"),
    ];
    for (path, shot) in admin_pages {
        b.visit(&s.url(path), shot);
    }
    b.goto(&s.url("/finance/trial-balance"));
    assert_eq!(b.find("#balanced").attr("data-balanced").as_deref(), Some("true"), "the demo's books balance");
    b.goto(&s.url("/finance/chain"));
    assert_eq!(b.find("#chain-result").attr("data-ok").as_deref(), Some("true"), "the demo's chain holds");
    b.goto(&s.url("/finance/charts?partner_id=P00001"));
    assert!(b.count("#incentive-chart svg rect") > 0, "the chart has bars");

    // The operator issues a partner token on its page; the partner signs in with it.
    b.goto(&s.url("/ops/credentials"));
    b.select("#role", "partner");
    b.fill("#cred-partner", "P00002");
    b.click_to_page("#credential-form button[type=submit]");
    let partner_token = b.text("#issued-token");
    assert!(partner_token.starts_with("lt_"), "{partner_token}");
    b.screenshot("46-token-issued");
    // And an auditor's: finance and audit pages, no operator page, no write button.
    b.goto(&s.url("/ops/credentials"));
    b.select("#role", "auditor");
    b.click_to_page("#credential-form button[type=submit]");
    let auditor_token = b.text("#issued-token");
    sign_out(&b);
    sign_in(&b, &s, &auditor_token);
    for (path, shot) in [
        ("/finance/trial-balance", "47-auditor-trial-balance"),
        ("/finance/events?stream=incentives-P00001", "48-auditor-stream-events"),
        ("/partner/quarter?partner_id=P00002", "49-auditor-quarter"),
    ] {
        b.visit(&s.url(path), shot);
    }
    assert_eq!(b.count("#request-form"), 0, "an auditor changes nothing");
    b.goto(&s.url("/ops/payments"));
    b.find("div.notice.refused[data-code=FORBIDDEN]");
    sign_out(&b);

    sign_in(&b, &s, &partner_token);
    let partner_pages = [
        ("/", "50-partner-home"),
        ("/partner/months", "51-months"),
        ("/partner/details", "52-details"),
        ("/partner/opportunities", "53-opportunities"),
        (&format!("/partner/quarter?quarter={last_quarter}") as &str, "54-quarter"),
        ("/partner/payments", "55-applications"),
        ("/partner/withdrawals", "56-withdrawals"),
        ("/partner/funds", "57-funds"),
        ("/partner/customers", "58-customers"),
        ("/partner/coupons", "59-coupons"),
        ("/partner/lab-points", "60-lab-points"),
        ("/finance/statement", "61-partner-statement"),
        ("/finance/balances", "62-partner-balances"),
        ("/finance/charts", "63-partner-charts"),
    ];
    for (path, shot) in partner_pages {
        b.visit(&s.url(path), shot);
    }
    if let Some(link) = b.try_find("#payments a[href$='/invoice']").or_else(|| {
        b.goto(&s.url("/partner/payments"));
        b.try_find("#payments a[href$='/invoice']")
    }) {
        link.click();
        b.find("#invoice-lines");
        b.assert_no_console_errors("demo invoice list");
        b.screenshot("64-demo-invoice-list");
    }
    // Operator pages are not a partner's.
    b.goto(&s.url("/ops/reviews"));
    b.find("div.notice.refused[data-code=FORBIDDEN]");
    b.goto(&s.url("/finance/events"));
    b.find("div.notice.refused[data-code=FORBIDDEN]");
    b.assert_no_console_errors("refused pages");
}

/// Coupons (quota, issue to a resale customer only, reclaim the picked ones) and lab points
/// (apply in a fixed denomination; rejected with a comment, edited and resubmitted); the
/// monthly statement downloads as CSV.
#[test]
fn coupons_lab_points_and_the_statement_csv() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "WK1", "WK1 Ltd", "distributor", None);
    created(
        &s,
        "POST",
        "/v1/partners/WK1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    associate_now(&s, "WK-RES", "WK1", "resale");
    associate_now(&s, "WK-REF", "WK1", "referral");
    let token = s.credential("partner", Some("WK1"));
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, &token);

    b.visit(&s.url("/partner/coupons"), "70-coupons");
    assert!(b.text("#quotas tbody").contains("100"), "{}", b.text("#quotas tbody"));
    // To a referral customer: refused in words, nothing stored.
    let before = s.events_total();
    b.fill("#coupon_id", "WK-CP0");
    b.fill("#c-customer", "WK-REF");
    b.fill("#c-amount", "30.00");
    b.click_to_page("#issue-form button[type=submit]");
    assert!(b.find("div.notice.refused[data-code=NOT_RESALE_CUSTOMER]").text().contains("代售"));
    assert_eq!(s.events_total(), before, "nothing stored");
    b.assert_no_console_errors("refused coupon");
    // To the resale customer: issued and listed.
    b.fill("#coupon_id", "WK-CP1");
    b.fill("#c-customer", "WK-RES");
    b.fill("#c-amount", "30.00");
    b.click_to_page("#issue-form button[type=submit]");
    b.find("p.notice.done");
    assert!(b.text("#quotas tbody").contains("70"), "the quota went down: {}", b.text("#quotas tbody"));
    assert_eq!(b.find("#coupons [data-status]").attr("data-status").as_deref(), Some("active"));
    // Reclaim it: the item's result is shown, the quota restored.
    b.find("#pick-WK-CP1").click();
    b.click_to_page("#reclaim-form button[type=submit]");
    assert!(b.text("#reclaim-results").contains("已回收"), "{}", b.text("#reclaim-results"));
    assert_eq!(b.find("#coupons [data-status]").attr("data-status").as_deref(), Some("reclaimed"));
    b.screenshot("71-coupon-reclaimed");
    b.assert_no_console_errors("coupon reclaim");

    // Lab points: 100 applied; the operator rejects with a comment.
    b.visit(&s.url("/partner/lab-points"), "72-lab-points");
    b.select("#points", "100");
    b.click_to_page("#lab-form button[type=submit]");
    assert!(b.find("p.notice.done").text().contains("提交成功"));
    assert_eq!(b.find("#lab-applications [data-status]").attr("data-status").as_deref(), Some("pending"));
    sign_out(&b);
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/lab-points?partner_id=WK1"), "73-ops-lab-points");
    b.fill("#lab-queue input[name=comment]", "请补充实验用途");
    b.click_to_page("#lab-queue button[value=reject]");
    b.find("p.notice.done");
    sign_out(&b);
    // The partner reads the comment, edits the points and submits again.
    sign_in(&b, &s, &token);
    b.goto(&s.url("/partner/lab-points"));
    let row = b.text("#lab-applications tbody tr");
    assert!(row.contains("已驳回") && row.contains("请补充实验用途"), "{row}");
    b.select("#lab-applications select[name=points]", "250");
    b.click_to_page("#lab-applications button[type=submit]");
    b.find("p.notice.done");
    let row = b.text("#lab-applications tbody tr");
    assert!(row.contains("250") && row.contains("待审核"), "{row}");
    b.screenshot("74-lab-points-resubmitted");
    b.assert_no_console_errors("lab points");

    // The statement as CSV, with the session cookie.
    let month = read(&s, "/v1/incentive-months?year=2026", &token); // any read: the session works
    assert!(month["items"].is_array());
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    let csv = ureq::get(&s.url(&format!("/finance/statement.csv?month={this_month}&currency=CNY")))
        .set("Cookie", &format!("ledger_session={token}"))
        .call()
        .unwrap();
    assert!(csv.content_type().starts_with("text/csv"));
    assert!(csv.header("content-disposition").unwrap_or_default().contains("attachment"));
    let text = csv.into_string().unwrap();
    assert!(text.starts_with("partner_id,month,currency,account"), "{text}");
    assert!(text.contains("WK1"), "{text}");
}

/// The certification gate (§1) on the page: a partner without the business-information
/// certification is refused with what it needs, and the month stays open.
#[test]
fn applying_without_both_certifications_is_refused_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    register_partner(&s, "WG1", "WG1 Ltd", "distributor", None);
    certify_real_name(&s, "WG1", "WG1 Legal Name Co., Ltd.");
    associate(&s, "WG1-C1", "WG1", "resale");
    consume_ok(&s, vec![line("WG1-R1", "WG1-C1", "ecs", "1000.00", "2026-07-10T02:00:00Z", "2026-07-12T02:00:00Z")]);
    close(&s, "WG1", "2026-07");
    let token = s.credential("partner", Some("WG1"));
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, &token);
    b.goto(&s.url("/partner/months?year=2026"));
    let before = s.events_total();
    b.click_to_page("form[action='/partner/months/apply'] button");
    let refused = b.find("div.notice.refused[data-code=CERTIFICATION_INCOMPLETE]").text();
    assert!(refused.contains("实名认证") && refused.contains("商业信息认证"), "{refused}");
    b.screenshot("80-certification-gate");
    b.assert_no_console_errors("certification gate");
    assert_eq!(s.events_total(), before, "nothing stored");
    assert_eq!(b.find("#months tr[data-month='2026-07'] [data-status]").attr("data-status").as_deref(), Some("open"));
}

/// The partner accepts a shared opportunity and applies for its incentive on
/// /partner/opportunities; one without the core tag is refused on the page, nothing stored.
#[test]
fn opportunities_are_accepted_and_applied_for_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let token = certified_partner(&s, "OB1", "distributor", None);
    for (id, core_tag) in [("OB1-O1", true), ("OB1-O2", false)] {
        created(
            &s,
            "POST",
            "/v1/opportunities",
            ADMIN_TOKEN,
            Some(json!({"opportunity_id": id, "partner_id": "OB1", "offering": id, "core_tag": core_tag,
                "delivery_end_date": "2026-08-01"})),
        );
    }
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, &token);
    b.visit(&s.url("/partner/opportunities"), "60-opportunities-shared");
    let step = |id: &str, action: &str| format!("#opportunities form:has(input[value='{id}']) button[value={action}]");
    let status =
        |id: &str| b.find(&format!("#opportunities tr:has(input[value='{id}']) [data-status]")).attr("data-status");
    for id in ["OB1-O1", "OB1-O2"] {
        b.click_to_page(&step(id, "accept"));
        assert!(b.find("p.notice.done").text().contains("接受"));
        b.assert_no_console_errors("accept");
    }
    assert_eq!(status("OB1-O1").as_deref(), Some("accepted"));
    b.click_to_page(&step("OB1-O1", "apply"));
    b.find("p.notice.done");
    b.assert_no_console_errors("apply");
    b.screenshot("61-opportunity-applied");
    let applied = b.find("#opportunities tbody tr:first-child [data-status]").attr("data-status");
    assert_eq!(applied.as_deref(), Some("under_review"));
    // Without the core tag: refused in words, nothing stored, still accepted.
    let before = s.events_total();
    b.click_to_page(&step("OB1-O2", "apply"));
    b.find("div.notice.refused[data-code=OPPORTUNITY_NOT_APPLICABLE]");
    b.assert_no_console_errors("refused apply");
    b.screenshot("62-opportunity-refused");
    assert_eq!(s.events_total(), before, "a refused form stores nothing");
    assert_eq!(status("OB1-O2").as_deref(), Some("accepted"));
}

/// The operator finalizes a month at another amount than accrued: without a reason the page
/// refuses it (nothing stored), with one the month is finalized at that amount.
#[test]
fn a_month_is_finalized_with_another_amount_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let token = partner_with_a_closed_month(&s, "FB1");
    apply(&s, &token, "2026-07");
    review(&s, "FB1", "2026-07", "pass");
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/reviews"), "63-ops-finalize-another-amount");
    let row = "#finalize-queue tr[data-partner=FB1][data-month='2026-07']";
    let before = s.events_total();
    b.fill(&format!("{row} input[name=amount]"), "40.00");
    b.click_to_page(&format!("{row} button"));
    b.find("div.notice.refused[data-code=INVALID_FIELD]");
    b.assert_no_console_errors("refused finalize");
    assert_eq!(s.events_total(), before, "a refused form stores nothing");
    b.fill(&format!("{row} input[name=amount]"), "40.00");
    b.fill(&format!("{row} input[name=reason]"), "扣减不合规消费");
    b.click_to_page(&format!("{row} button"));
    b.find("p.notice.done");
    b.assert_no_console_errors("finalize");
    assert_eq!(b.count("#finalize-queue tr[data-partner=FB1]"), 0);
    let months = months(&s, &token, 2026, s.events_total());
    assert_eq!(months["2026-07"]["status"], "finalized", "{}", months["2026-07"]);
    assert_eq!(amount(&months["2026-07"]["final"], "CNY"), "40.00");
}

/// The operator marks one approved withdrawal paid and another failed (with the bank's
/// reason): the failed amount is withdrawable again.
#[test]
fn withdrawals_are_paid_or_failed_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    let p = paid_partner(&s, "WP1");
    let second = created(
        &s,
        "POST",
        "/v1/withdrawals",
        &p.token,
        Some(json!({"amount": "10.00", "currency": "CNY",
            "bank_account": {"holder_name": "WP1 Legal Name Co., Ltd.", "number": "6222000011112222", "bank": "ICBC"}})),
    );
    let failed = second["withdrawal_id"].as_str().unwrap().to_string();
    created(&s, "POST", &format!("/v1/withdrawals/{failed}/approve"), ADMIN_TOKEN, None);
    let withdrawable = |s: &Server| cents(&read(s, "/v1/withdrawals/withdrawable?currency=CNY", &p.token));
    assert_eq!(withdrawable(&s), 2000);
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/withdrawals"), "64-ops-withdrawals-approved");
    b.click_to_page(&format!("#withdrawal-queue tr[data-withdrawal='{}'] button[value=paid]", p.withdrawal_id));
    b.find("p.notice.done");
    b.assert_no_console_errors("paid");
    b.fill(&format!("#w-reason-{failed}"), "账户已注销");
    b.click_to_page(&format!("#withdrawal-queue tr[data-withdrawal='{failed}'] button[value=failed]"));
    b.find("p.notice.done");
    b.assert_no_console_errors("failed");
    b.screenshot("65-ops-withdrawals-done");
    assert_eq!(b.count("#withdrawal-queue tr[data-withdrawal]"), 0, "neither is pending");
    let at = s.events_total();
    let paid = read(&s, &format!("/v1/withdrawals/{}?min_position={at}", p.withdrawal_id), &p.token);
    assert_eq!(paid["status"], "paid", "{paid}");
    let failed = read(&s, &format!("/v1/withdrawals/{failed}?min_position={at}"), &p.token);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(withdrawable(&s), 3000, "the failed amount is withdrawable again");
}

/// The operator revokes a token on /ops/credentials: the API refuses it from then on.
#[test]
fn a_token_is_revoked_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    register_partner(&s, "TB1", "TB1 Ltd", "distributor", None);
    let issued =
        created(&s, "POST", "/v1/credentials", ADMIN_TOKEN, Some(json!({"role": "partner", "partner_id": "TB1"})));
    let (id, token) = (issued["credential_id"].as_str().unwrap(), issued["token"].as_str().unwrap());
    assert_eq!(s.call("GET", "/v1/partners/TB1", Some(token), None).0, 200);
    let b = Browser::start("zh-CN,zh");
    sign_in(&b, &s, ADMIN_TOKEN);
    b.visit(&s.url("/ops/credentials"), "66-ops-credentials");
    let before = b.text("#credentials");
    assert!(before.contains(id), "{before}");
    b.click_to_page(&format!("#credentials form:has(input[value='{id}']) button"));
    b.find("p.notice.done");
    b.assert_no_console_errors("revoke");
    b.screenshot("67-ops-credential-revoked");
    assert_eq!(b.count(&format!("#credentials form:has(input[value='{id}'])")), 0, "no revoke button left");
    assert!(b.text("#credentials").contains("已吊销"), "{}", b.text("#credentials"));
    let (status, answer) = s.call("GET", "/v1/partners/TB1", Some(token), None);
    assert_eq!((status, answer["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{answer}");
}
