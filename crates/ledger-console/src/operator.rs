//! The vendor operator's queues: months to close, review (pass or reject with a comment) and
//! finalize; the quarterly-payment pipeline (approve, issue the invoice list, invoice
//! received, pay); withdrawals (approve, reject, paid, failed); lab points (grant, reject);
//! tokens. The queues span partners, which no API list does: they read the same
//! projections (and, for withdrawals and lab points, the same streams) the API reads. Every
//! step is the API's own write.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use ledger_core::Role;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::api::{enc, query, Refusal};
use crate::i18n::{status_or, Lang};
use crate::partner::{done_notice, fields_params, param, sign_in_first, Params};
use crate::session::{Ctx, Fields, User};
use crate::{csrf_ok, field, form_guard, form_write, money, page, s, Answer, Console, Notice, St};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/ops/reviews", get(reviews_page).post(review_step))
        .route("/ops/payments", get(payments_page).post(payment_step))
        .route("/ops/withdrawals", get(withdrawals_page).post(withdrawal_step))
        .route("/ops/lab-points", get(lab_points_page).post(lab_points_step))
        .route("/ops/credentials", get(credentials_page).post(credential_step))
}

/// The operator's pages are the admin's; anyone else sees the refusal.
#[allow(clippy::result_large_err)] // the page answering the refusal, built once per request
fn admin_only(ctx: &Ctx, title: &str) -> Result<User, Response> {
    let Some(user) = ctx.user.clone() else { return Err(sign_in_first(ctx)) };
    if user.role() != Role::Admin {
        let r = Refusal {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "FORBIDDEN".into(),
            message: String::new(),
            details: Value::Null,
        };
        return Err(page(ctx, title, Some(&Notice::Refused(r)), html! {}));
    }
    Ok(user)
}

/// An operator form's user and fields: the admin's (anyone else sees the refusal), with the
/// form's CSRF token.
#[allow(clippy::result_large_err)] // as admin_only
fn admin_form(ctx: &Ctx, title: &str, fields: Vec<(String, String)>) -> Result<(User, Fields), Response> {
    let user = admin_only(ctx, title)?;
    let fields = Fields(fields);
    if !csrf_ok(&user, &fields) {
        return Err(crate::csrf_refused(ctx));
    }
    Ok((user, fields))
}

fn badge(l: Lang, status: &str) -> Markup {
    html! { span class={ "status " (status) } data-status=(status) { (status_or(l, status)) } }
}

fn refused_from(e: impl Into<ledger_api::ApiError>) -> Refusal {
    let e: ledger_api::ApiError = e.into();
    Refusal { status: e.status, code: e.code, message: e.message, details: e.details.unwrap_or(Value::Null) }
}

/// Every partner with an incentive month (the partners the queues concern).
async fn partners(console: &Console) -> Result<Vec<String>, Refusal> {
    console.app.reads.read(ledger_projections::incentive_months::partners).await.map_err(refused_from)
}

// ---------------------------------------------------------------- review and finalize

async fn reviews_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let notice = done_notice(ctx.lang, &params);
    render_reviews(&console, &ctx, notice).await
}

async fn render_reviews(console: &Console, ctx: &Ctx, notice: Option<Notice>) -> Response {
    let l = ctx.lang;
    let title = l.t("初审与定稿", "Review and finalize");
    let user = match admin_only(ctx, title) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let rows = console
        .app
        .reads
        .read(|c| {
            let mut rows = Vec::new();
            for p in ledger_projections::incentive_months::partners(c)? {
                for (m, _) in ledger_projections::incentive_months::views(c, &p, None)? {
                    rows.push(serde_json::to_value(m).expect("serialises"));
                }
            }
            Ok(rows)
        })
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return page(ctx, title, Some(&Notice::Refused(refused_from(e))), html! {}),
    };
    let this_month = ledger_core::Month::of(chrono::Utc::now()).to_string();
    let of = |status: &str| rows.iter().filter(|m| s(m, "status") == status).collect::<Vec<_>>();
    let to_close: Vec<&Value> =
        rows.iter().filter(|m| s(m, "status") == "accruing" && s(m, "month") < this_month.as_str()).collect();
    let key = |m: &Value| format!("{}-{}-{}", s(m, "partner_id"), s(m, "month"), s(m, "currency"));
    let hidden = |m: &Value| {
        html! {
            input type="hidden" name="partner_id" value=(s(m, "partner_id"));
            input type="hidden" name="month" value=(s(m, "month"));
            input type="hidden" name="currency" value=(s(m, "currency"));
        }
    };
    let head = html! {
        th { (l.t("合作伙伴", "Partner")) } th { (l.t("月份", "Month")) } th { (l.t("币种", "Currency")) }
        th.num { (l.t("累计激励", "Accrued")) }
    };
    let cells = |m: &Value| {
        html! { td { (s(m, "partner_id")) } td { (s(m, "month")) } td { (s(m, "currency")) } td.num { (money(&m["accrued"])) } }
    };
    let body = html! {
        h2 { (l.t("待初审", "To review")) " (" (of("under_review").len()) ")" }
        table #review-queue {
            thead { tr { (head) th { (l.t("初审", "Review")) } } }
            tbody {
                @for m in of("under_review") {
                    tr data-partner=(s(m, "partner_id")) data-month=(s(m, "month")) {
                        (cells(m))
                        td {
                            form.inline method="post" action="/ops/reviews" {
                                (form_guard(&user)) (hidden(m))
                                input type="hidden" name="action" value="review";
                                label for={ "comment-" (key(m)) } { (l.t("意见", "Comment")) }
                                input id={ "comment-" (key(m)) } name="comment";
                                button type="submit" name="decision" value="pass" { (l.t("通过", "Pass")) }
                                button.danger type="submit" name="decision" value="reject" { (l.t("驳回", "Reject")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (l.t("待定稿", "To finalize")) " (" (of("passed").len()) ")" }
        table #finalize-queue {
            thead { tr { (head) th { (l.t("定稿", "Finalize")) } } }
            tbody {
                @for m in of("passed") {
                    tr data-partner=(s(m, "partner_id")) data-month=(s(m, "month")) {
                        (cells(m))
                        td {
                            form.inline method="post" action="/ops/reviews" {
                                (form_guard(&user)) (hidden(m))
                                input type="hidden" name="action" value="finalize";
                                label for={ "amount-" (key(m)) } { (l.t("定稿金额（空则为累计额）", "Final amount (blank: the accrued)")) }
                                input id={ "amount-" (key(m)) } name="amount" inputmode="decimal" size="10";
                                label for={ "reason-" (key(m)) } { (l.t("差异原因", "Reason for a difference")) }
                                input id={ "reason-" (key(m)) } name="reason";
                                button type="submit" { (l.t("定稿", "Finalize")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { (l.t("待关账（已过当月）", "To close (month over)")) " (" (to_close.len()) ")" }
        table #close-queue {
            thead { tr { (head) th { (l.t("关账", "Close")) } } }
            tbody {
                @for m in &to_close {
                    tr {
                        (cells(m))
                        td {
                            form.inline method="post" action="/ops/reviews" {
                                (form_guard(&user)) (hidden(m))
                                input type="hidden" name="action" value="close";
                                button type="submit" aria-label={ (l.t("关账 ", "Close ")) (key(m)) } { (l.t("关账", "Close")) }
                            }
                        }
                    }
                }
            }
        }
        p.small { (l.t(
            "关账只能在截止时间（月末加结算宽限天数）之后；被拒绝的月份回到“待申请”。",
            "A month closes only after its cut-off (month end plus the grace days); a rejected month returns to open."
        )) }
    };
    page(ctx, title, notice.as_ref(), body)
}

async fn review_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let title = ctx.lang.t("初审与定稿", "Review and finalize");
    let (user, fields) = admin_form(&ctx, title, fields)?;
    let base = format!("/v1/incentive-months/{}/{}", enc(&fields.value("partner_id")), enc(&fields.value("month")));
    let currency = query(&[("currency", fields.get("currency"))]);
    let (uri, body, done) = match fields.get("action") {
        Some("finalize") => {
            let mut body = json!({});
            if let Some(a) = fields.text("amount") {
                body["amount"] = json!(a);
            }
            if let Some(r) = fields.text("reason") {
                body["reason"] = json!(r);
            }
            (format!("{base}/finalize{currency}"), Some(body), "finalized")
        }
        Some("close") => (format!("{base}/close"), None, "closed"),
        _ => {
            let mut body =
                json!({"decision": if fields.get("decision") == Some("reject") { "reject" } else { "pass" }});
            if let Some(c) = fields.text("comment") {
                body["comment"] = json!(c);
            }
            (format!("{base}/review{currency}"), Some(body), "reviewed")
        }
    };
    let done = format!("/ops/reviews?done={done}");
    form_write(&console, &user, &fields, (Method::POST, &uri, body.as_ref()), &done, |notice| {
        render_reviews(&console, &ctx, Some(notice))
    })
    .await
}

// ---------------------------------------------------------------- quarterly payments

async fn payments_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let notice = done_notice(ctx.lang, &params);
    render_payments(&console, &ctx, &params, notice).await
}

async fn render_payments(console: &Console, ctx: &Ctx, params: &Params, notice: Option<Notice>) -> Response {
    let l = ctx.lang;
    let title = l.t("季度付款处理", "Quarterly payments");
    let user = match admin_only(ctx, title) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let show_all = param(params, "all").is_some();
    let rows = console
        .app
        .reads
        .read(move |c| {
            let mut rows = Vec::new();
            for p in ledger_projections::incentive_months::partners(c)? {
                let (page, _) = ledger_projections::quarterly_payments::page_of(c, &p, 0, 1000)?;
                rows.extend(page.into_iter().map(|(v, _)| serde_json::to_value(v).expect("serialises")));
            }
            Ok(rows)
        })
        .await;
    let mut rows = match rows {
        Ok(r) => r,
        Err(e) => return page(ctx, title, Some(&Notice::Refused(refused_from(e))), html! {}),
    };
    if !show_all {
        rows.retain(|p| !matches!(s(p, "status"), "paid" | "rejected"));
    }
    let body = html! {
        p {
            @if show_all { a href="/ops/payments" { (l.t("只看待处理", "Show only those to handle")) } }
            @else { a href="/ops/payments?all=1" { (l.t("显示全部（含已付款、已驳回）", "Show all (paid and rejected too)")) } }
        }
        table #payment-queue {
            thead { tr {
                th { (l.t("申请", "Application")) } th { (l.t("合作伙伴", "Partner")) } th { (l.t("季度", "Quarter")) }
                th { (l.t("状态", "Status")) } th.num { (l.t("可付金额", "Payable")) } th { (l.t("下一步", "Next step")) }
            } }
            tbody {
                @for p in &rows {
                    @let id = s(p, "payment_id");
                    @let status = s(p, "status");
                    tr data-payment=(id) {
                        td { (id) } td { (s(p, "partner_id")) } td { (s(p, "quarter")) } td { (badge(l, status)) }
                        td.num { (money(&p["payable"])) }
                        td {
                            form.inline method="post" action="/ops/payments" {
                                (form_guard(&user))
                                input type="hidden" name="payment_id" value=(id);
                                @match status {
                                    "requested" => {
                                        button type="submit" name="action" value="approve" { (l.t("审批通过", "Approve")) }
                                        label for={ "reason-" (id) } { (l.t("驳回原因", "Reason")) }
                                        input id={ "reason-" (id) } name="reason";
                                        button.danger type="submit" name="action" value="reject" { (l.t("驳回", "Reject")) }
                                    }
                                    "approved" => { button type="submit" name="action" value="invoice-list" { (l.t("出具开票清单", "Issue the invoice list")) } }
                                    "invoice_list_issued" => { button type="submit" name="action" value="invoice-received" { (l.t("已收到发票", "Invoice received")) } }
                                    "invoice_received" => {
                                        label for={ "method-" (id) } { (l.t("付款方式", "Method")) }
                                        select id={ "method-" (id) } name="method" {
                                            option value="bank_transfer" { (l.t("银行转账", "bank transfer")) }
                                            option value="cloud_account_credit" { (l.t("返云账户（返点）", "cloud account credit (rebate)")) }
                                        }
                                        button type="submit" name="action" value="pay" { (l.t("付款", "Pay")) }
                                    }
                                    _ => {}
                                }
                            }
                            @if !p["invoice_list"].is_null() {
                                a href={ "/partner/payments/" (enc(id)) "/invoice" } { (l.t("开票清单", "Invoice list")) }
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" { (l.t("没有待处理的付款申请。", "No payment to handle.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

async fn payment_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let title = ctx.lang.t("季度付款处理", "Quarterly payments");
    let (user, fields) = admin_form(&ctx, title, fields)?;
    let action = fields
        .get("action")
        .filter(|a| matches!(*a, "approve" | "reject" | "invoice-list" | "invoice-received" | "pay"))
        .unwrap_or("approve");
    let mut body = json!({});
    if action == "pay" {
        body["method"] = json!(fields.value("method"));
    }
    if action == "reject" {
        if let Some(r) = fields.text("reason") {
            body["reason"] = json!(r);
        }
    }
    let uri = format!("/v1/quarterly-payments/{}/{action}", enc(&fields.value("payment_id")));
    let params = fields_params(&fields);
    form_write(&console, &user, &fields, (Method::POST, &uri, Some(&body)), "/ops/payments?done=step", |notice| {
        render_payments(&console, &ctx, &params, Some(notice))
    })
    .await
}

// ---------------------------------------------------------------- withdrawals

async fn withdrawals_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let notice = done_notice(ctx.lang, &params);
    render_withdrawals(&console, &ctx, notice).await
}

async fn render_withdrawals(console: &Console, ctx: &Ctx, notice: Option<Notice>) -> Response {
    let l = ctx.lang;
    let title = l.t("提现审批", "Withdrawals");
    let user = match admin_only(ctx, title) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let partners = match partners(console).await {
        Ok(p) => p,
        Err(r) => return page(ctx, title, Some(&Notice::Refused(r)), html! {}),
    };
    // The withdrawals from each partner's rebate stream (the API has one-by-one reads only).
    let mut rows = Vec::new();
    for p in &partners {
        if let Ok(rebate) = console.app.ledger.rebate(p).await {
            rows.extend(rebate.withdrawals.values().filter(|w| w.status.is_pending()).cloned());
        }
    }
    let body = html! {
        table #withdrawal-queue {
            thead { tr {
                th { (l.t("编号", "Id")) } th { (l.t("合作伙伴", "Partner")) } th.num { (l.t("金额", "Amount")) }
                th { (l.t("状态", "Status")) } th { (l.t("预计到账", "Expected arrival")) } th { (l.t("收款账号", "Account")) } th { (l.t("操作", "Action")) }
            } }
            tbody {
                @for w in &rows {
                    @let status = serde_json::to_value(w.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    tr data-withdrawal=(w.withdrawal_id) {
                        td { (w.withdrawal_id) } td { (w.partner_id) }
                        td.num { (crate::group_digits(&w.amount.amount.to_string())) " " (w.amount.currency) }
                        td { (badge(l, &status)) }
                        td { (w.expected_arrival_date.map(|d| d.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (w.bank_account.holder_name) " · " (w.bank_account.bank) " · " (w.bank_account.number) }
                        td {
                            form.inline method="post" action="/ops/withdrawals" {
                                (form_guard(&user))
                                input type="hidden" name="withdrawal_id" value=(w.withdrawal_id);
                                label for={ "w-reason-" (w.withdrawal_id) } { (l.t("原因", "Reason")) }
                                input id={ "w-reason-" (w.withdrawal_id) } name="reason";
                                @if status == "requested" {
                                    button type="submit" name="action" value="approve" { (l.t("审核通过", "Approve")) }
                                    button.danger type="submit" name="action" value="reject" { (l.t("驳回", "Reject")) }
                                } @else {
                                    button type="submit" name="action" value="paid" { (l.t("已到账", "Paid")) }
                                    button.danger type="submit" name="action" value="failed" { (l.t("付款失败", "Failed")) }
                                }
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="7" { (l.t("没有待处理的提现。", "No withdrawal to handle.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

async fn withdrawal_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let title = ctx.lang.t("提现审批", "Withdrawals");
    let (user, fields) = admin_form(&ctx, title, fields)?;
    let action =
        fields.get("action").filter(|a| matches!(*a, "approve" | "reject" | "paid" | "failed")).unwrap_or("approve");
    let mut body = json!({});
    if let Some(r) = fields.text("reason") {
        body["reason"] = json!(r);
    }
    let uri = format!("/v1/withdrawals/{}/{action}", enc(&fields.value("withdrawal_id")));
    form_write(&console, &user, &fields, (Method::POST, &uri, Some(&body)), "/ops/withdrawals?done=step", |notice| {
        render_withdrawals(&console, &ctx, Some(notice))
    })
    .await
}

// ---------------------------------------------------------------- lab points

async fn lab_points_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let notice = done_notice(ctx.lang, &params);
    render_lab_points(&console, &ctx, &params, notice).await
}

async fn render_lab_points(console: &Console, ctx: &Ctx, params: &Params, notice: Option<Notice>) -> Response {
    let l = ctx.lang;
    let title = l.t("实验点审批", "Lab points");
    let user = match admin_only(ctx, title) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut partners = match partners(console).await {
        Ok(p) => p,
        Err(r) => return page(ctx, title, Some(&Notice::Refused(r)), html! {}),
    };
    // A partner with no incentive month yet is named here.
    if let Some(p) = param(params, "partner_id") {
        if !partners.iter().any(|x| x == p) {
            partners.push(p.to_string());
        }
    }
    let mut rows = Vec::new();
    for p in &partners {
        if let Ok(lab) = console.app.ledger.lab_points(p).await {
            rows.extend(
                lab.applications
                    .values()
                    .map(|a| serde_json::to_value(a).expect("serialises"))
                    .filter(|a| s(a, "status") == "pending"),
            );
        }
    }
    let body = html! {
        form.card method="get" action="/ops/lab-points" {
            div.fields {
                (field("lp-partner", l.t("合作伙伴编号（没有激励月份的伙伴）", "Partner id (one without incentive months)"), html! { input #lp-partner name="partner_id"; }))
                button type="submit" { (l.t("查看", "Show")) }
            }
        }
        table #lab-queue {
            thead { tr { th { (l.t("申请", "Application")) } th { (l.t("合作伙伴", "Partner")) } th.num { (l.t("点数", "Points")) } th { (l.t("操作", "Action")) } } }
            tbody {
                @for a in &rows {
                    @let id = s(a, "application_id");
                    tr {
                        td { (id) } td { (s(a, "partner_id")) } td.num { (a["points"]) }
                        td {
                            form.inline method="post" action="/ops/lab-points" {
                                (form_guard(&user))
                                input type="hidden" name="application_id" value=(id);
                                label for={ "lp-comment-" (id) } { (l.t("审核意见", "Comment")) }
                                input id={ "lp-comment-" (id) } name="comment";
                                button type="submit" name="action" value="grant" { (l.t("发放", "Grant")) }
                                button.danger type="submit" name="action" value="reject" { (l.t("驳回", "Reject")) }
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="4" { (l.t("没有待审批的申请。", "No application to decide.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

async fn lab_points_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let title = ctx.lang.t("实验点审批", "Lab points");
    let (user, fields) = admin_form(&ctx, title, fields)?;
    let action = if fields.get("action") == Some("reject") { "reject" } else { "grant" };
    let mut body = json!({});
    if let Some(c) = fields.text("comment") {
        body["comment"] = json!(c);
    }
    let uri = format!("/v1/lab-points/{}/{action}", enc(&fields.value("application_id")));
    let params = Params::new();
    form_write(&console, &user, &fields, (Method::POST, &uri, Some(&body)), "/ops/lab-points?done=step", |notice| {
        render_lab_points(&console, &ctx, &params, Some(notice))
    })
    .await
}

// ---------------------------------------------------------------- tokens

async fn credentials_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let notice = done_notice(ctx.lang, &params);
    render_credentials(&console, &ctx, notice, None).await
}

async fn render_credentials(console: &Console, ctx: &Ctx, notice: Option<Notice>, issued: Option<Value>) -> Response {
    let l = ctx.lang;
    let title = l.t("访问令牌", "Tokens");
    let user = match admin_only(ctx, title) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let list = console.get(&user, "/v1/credentials").await.unwrap_or(Value::Null);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(i) = &issued {
            section.card #issued {
                h2 { (l.t("新令牌（只显示这一次）", "The new token (shown this once)")) }
                dl.kv {
                    dt { (l.t("令牌", "Token")) } dd { code #issued-token { (s(i, "token")) } }
                    dt { "Access key" } dd { code { (s(i, "access_key")) } }
                    dt { "Secret key" } dd { code { (s(i, "secret_key")) } }
                }
            }
        }
        form.card method="post" action="/ops/credentials" #credential-form {
            (form_guard(&user))
            input type="hidden" name="action" value="issue";
            h2 { (l.t("签发令牌", "Issue a token")) }
            div.fields {
                (field("role", l.t("角色", "Role"), html! {
                    select #role name="role" {
                        option value="partner" { (l.t("合作伙伴", "partner")) }
                        option value="auditor" { (l.t("审计", "auditor")) }
                        option value="admin" { (l.t("运营（管理员）", "admin")) }
                    }
                }))
                (field("cred-partner", l.t("合作伙伴编号（角色为合作伙伴时）", "Partner id (for a partner)"), html! { input #cred-partner name="partner_id"; }))
            }
            button type="submit" { (l.t("签发", "Issue")) }
        }
        table #credentials {
            thead { tr { th { (l.t("编号", "Id")) } th { (l.t("角色", "Role")) } th { (l.t("合作伙伴", "Partner")) } th { (l.t("状态", "Status")) } th { (l.t("操作", "Action")) } } }
            tbody {
                @for c in &items {
                    @let revoked = !c["revoked_at"].is_null();
                    tr {
                        td { (s(c, "credential_id")) } td { (s(c, "role")) } td { (s(c, "partner_id")) }
                        td { (if revoked { l.t("已吊销", "revoked") } else { l.t("有效", "live") }) }
                        td { @if !revoked {
                            form.inline method="post" action="/ops/credentials" {
                                (form_guard(&user))
                                input type="hidden" name="action" value="revoke";
                                input type="hidden" name="credential_id" value=(s(c, "credential_id"));
                                button.danger type="submit" aria-label={ (l.t("吊销 ", "Revoke ")) (s(c, "credential_id")) } { (l.t("吊销", "Revoke")) }
                            }
                        } }
                    }
                }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

async fn credential_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let title = ctx.lang.t("访问令牌", "Tokens");
    let (user, fields) = admin_form(&ctx, title, fields)?;
    if fields.get("action") == Some("revoke") {
        let uri = format!("/v1/credentials/{}/revoke", enc(&fields.value("credential_id")));
        return form_write(
            &console,
            &user,
            &fields,
            (Method::POST, &uri, None),
            "/ops/credentials?done=step",
            |notice| render_credentials(&console, &ctx, Some(notice), None),
        )
        .await;
    }
    let mut body = json!({"role": fields.value("role")});
    if let Some(p) = fields.text("partner_id") {
        body["partner_id"] = json!(p);
    }
    match console.write(&user, Method::POST, "/v1/credentials", Some(&body), &fields).await {
        // The secrets are shown on this answer only (not after a redirect).
        Ok(issued) => {
            let notice = done_notice(ctx.lang, &[("done".to_string(), "credential".to_string())].into());
            Ok(render_credentials(&console, &ctx, notice, Some(issued)).await)
        }
        Err(r) => Err(render_credentials(&console, &ctx, Some(Notice::Refused(r)), None).await),
    }
}
