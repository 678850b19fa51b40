//! Sign-in, the start page and the partner's pages (the seed's Partner Center flows).
//!
//! A partner sees only its own data: the partner id of every read is the API's scope of the
//! token (a partner's own), and the few reads made on the stream state here (opportunities,
//! withdrawals) take the partner id of the session, never one from the request. Admin and
//! auditor name a partner with `?partner_id=`, as in the API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use ledger_core::Role;
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::api::{enc, query, Refusal};
use crate::i18n::{status_or, Lang};
use crate::session::{self, Ctx, Fields, User};
use crate::{csrf_ok, field, form_guard, form_write, money, page, s, Answer, Console, Notice, St};

pub type Params = HashMap<String, String>;

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/partner/months", get(months_page))
        .route("/partner/months/apply", post(apply_month))
        .route("/partner/details", get(details_page))
        .route("/partner/opportunities", get(opportunities_page).post(opportunity_step))
        .route("/partner/quarter", get(quarter_page).post(request_payment))
        .route("/partner/payments", get(payments_page))
        .route("/partner/payments/{id}/invoice", get(invoice_page))
        .route("/partner/withdrawals", get(withdrawals_page).post(request_withdrawal))
        .route("/partner/funds", get(funds_page).post(adjust_funds))
        .route("/partner/customers", get(customers_page).post(customer_step))
        .route("/partner/coupons", get(coupons_page).post(coupon_step))
        .route("/partner/lab-points", get(lab_points_page).post(lab_points_step))
}

/// What a partner page is rendered from: the request, its user and parameters, the notice
/// it shows and the fields it fills in again. Its handler shows it with the `?done=` of the
/// form that led here; a refused form shows it again with the refusal and what was sent.
pub struct Shown<'a> {
    pub console: &'a Console,
    pub ctx: &'a Ctx,
    pub user: &'a User,
    pub params: &'a Params,
    pub notice: Option<Notice>,
    pub prefill: &'a Fields,
}

/// No fields to fill in.
const NO_FIELDS: &Fields = &Fields(Vec::new());

impl<'a> Shown<'a> {
    /// The page as its handler shows it.
    pub fn page(console: &'a Console, ctx: &'a Ctx, user: &'a User, params: &'a Params) -> Shown<'a> {
        Shown { console, ctx, user, params, notice: done_notice(ctx.lang, params), prefill: NO_FIELDS }
    }

    /// The page again after its form was refused (`notice`), with what was sent.
    pub fn refused(self, notice: Notice, fields: &'a Fields) -> Shown<'a> {
        Shown { notice: Some(notice), prefill: fields, ..self }
    }
}

/// A non-blank parameter.
pub fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

pub fn fields_params(fields: &Fields) -> Params {
    fields.0.iter().cloned().collect()
}

/// Sends a visitor without a session to the sign-in page, and back here afterwards.
pub fn sign_in_first(ctx: &Ctx) -> Response {
    Redirect::to(&format!("/login?next={}", enc(&ctx.here))).into_response()
}

/// What a `?done=` after a successful form says.
pub fn done_notice(l: Lang, params: &Params) -> Option<Notice> {
    let text = match param(params, "done")? {
        "applied" => l.t("已申请激励，月份进入初审。", "Applied: the month is under review."),
        "requested" => l.t("已提交季度付款申请。", "The quarterly payment is requested."),
        "withdrawal" => l.t("已提交提现申请。", "The withdrawal is requested."),
        "allocate" => l.t("已拨款。", "Allocated."),
        "reclaim" => l.t("已回收。", "Reclaimed."),
        "switched" => l.t("已切换关联类型。", "The association type is switched."),
        "ended" => l.t("已解除关联。", "The association is ended."),
        "issued" => l.t("已发放优惠券。", "The coupon is issued."),
        "coupons_reclaimed" => l.t("已处理优惠券回收（见各项结果）。", "Coupon reclaim done (see each result)."),
        "lab_applied" => l.t("云实验权益申请提交成功。", "The lab points application is submitted."),
        "lab_resubmitted" => l.t("已重新提交申请。", "The application is resubmitted."),
        "accepted" => l.t("已接受机会点。", "The opportunity is accepted."),
        "opportunity_applied" => l.t("已申请机会点激励。", "Applied for the opportunity's incentive."),
        "reviewed" => l.t("已提交初审结论。", "The review is recorded."),
        "finalized" => l.t("已定稿。", "Finalized."),
        "closed" => l.t("已关账。", "The month is closed."),
        "step" => l.t("已处理。", "Done."),
        "credential" => l.t("已签发令牌。", "The token is issued."),
        _ => return None,
    };
    Some(Notice::Done(text.to_string()))
}

/// The partner a page is about: a partner's own; for admin and auditor the `partner_id`
/// they name (`None` until they name one).
pub fn partner_of(user: &User, params: &Params) -> Option<String> {
    match user.role() {
        Role::Partner => user.principal.partner_id.clone(),
        _ => param(params, "partner_id").map(str::to_string),
    }
}

/// `partner_id` for the API's query: only admin and auditor pass it.
pub fn scope_param(user: &User, params: &Params) -> Option<String> {
    (!user.is_partner()).then(|| partner_of(user, params)).flatten()
}

/// For admin and auditor: the form naming the partner the page shows.
pub fn partner_chooser(l: Lang, user: &User, action: &str, params: &Params) -> Markup {
    if user.is_partner() {
        return html! {};
    }
    html! {
        form.card.noprint method="get" action=(action) {
            div.fields {
                (field("partner_id", l.t("合作伙伴编号", "Partner id"), html! {
                    input #partner_id name="partner_id" required value=(param(params, "partner_id").unwrap_or_default()) placeholder="P00001";
                }))
                @for (k, v) in params.iter().filter(|(k, _)| !matches!(k.as_str(), "partner_id" | "done" | "offset")) {
                    input type="hidden" name=(k) value=(v);
                }
                button type="submit" { (l.t("查看", "Show")) }
            }
        }
    }
}

fn hidden_partner(user: &User, params: &Params) -> Markup {
    html! {
        @if let Some(p) = scope_param(user, params) { input type="hidden" name="partner_id" value=(p); }
    }
}

/// A page for a refused read (wrong partner, bad month): the refusal, nothing else.
fn read_refused(ctx: &Ctx, title: &str, chooser: Markup, r: &Refusal) -> Response {
    page(ctx, title, Some(&Notice::Refused(r.clone())), chooser)
}

fn status_badge(l: Lang, status: &str) -> Markup {
    html! { span class={ "status " (status) } data-status=(status) { (status_or(l, status)) } }
}

/// Today in China Standard Time (the business calendar).
fn now_month() -> ledger_core::Month {
    ledger_core::Month::of(chrono::Utc::now())
}

// ---------------------------------------------------------------- sign-in, language, home

pub async fn login_page(ctx: Ctx, Query(params): Query<Params>) -> Response {
    login_form(&ctx, &params, None)
}

fn login_form(ctx: &Ctx, params: &Params, notice: Option<Notice>) -> Response {
    let l = ctx.lang;
    let csrf = ctx.login_csrf.clone().filter(|c| c.len() == 32).unwrap_or_else(|| session::random_hex(16));
    let next = param(params, "next").filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or("/");
    let mut response = page(
        ctx,
        l.t("登录伙伴中心", "Sign in to the Partner Center"),
        notice.as_ref(),
        html! {
            form.card method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                (field("token", l.t("访问令牌", "Access token"), html! {
                    input #token name="token" type="password" required autocomplete="off" autofocus;
                }))
                p.small { (l.t(
                    "使用运营人员签发给您的令牌（合作伙伴、运营或审计）。令牌保存在仅限本站的 HttpOnly Cookie 中。",
                    "Use the token the operator issued to you (partner, operator or auditor). It is kept in an HttpOnly cookie of this site only."
                )) }
                button type="submit" { (l.t("登录", "Sign in")) }
            }
        },
    );
    if ctx.login_csrf.as_deref() != Some(csrf.as_str()) {
        let cookie = session::set_cookie(session::LOGIN_CSRF_COOKIE, &csrf, Some(3600));
        response.headers_mut().append(header::SET_COOKIE, cookie.parse().expect("cookie is ASCII"));
    }
    response
}

pub async fn login(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    let params = fields_params(&fields);
    let l = ctx.lang;
    let csrf_matches = match (&ctx.login_csrf, fields.get("csrf")) {
        (Some(c), Some(f)) => session::same(c, f),
        _ => false,
    };
    if !csrf_matches {
        return crate::csrf_refused(&ctx);
    }
    let token = fields.text("token").unwrap_or_default();
    if console.app.credentials.by_token(&token, chrono::Utc::now()).is_none() {
        // Perhaps another node issued it a moment ago.
        let _ = ledger_api::nodes::learn_new_credentials(&console.app).await;
    }
    if token.is_empty() || console.app.credentials.by_token(&token, chrono::Utc::now()).is_none() {
        let r = Refusal {
            status: axum::http::StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED".into(),
            message: l.t("令牌无效、已过期或已吊销。", "The token is unknown, expired or revoked.").into(),
            details: Value::Null,
        };
        return login_form(&ctx, &params, Some(Notice::Refused(r)));
    }
    let next = param(&params, "next").filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or("/");
    let mut response = Redirect::to(next).into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, session::set_cookie(session::SESSION_COOKIE, &token, None).parse().expect("ASCII"));
    h.append(header::SET_COOKIE, session::set_cookie(session::LOGIN_CSRF_COOKIE, "", Some(0)).parse().expect("ASCII"));
    response
}

pub async fn logout(ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Response {
    let fields = Fields(fields);
    if let Some(user) = &ctx.user {
        if !csrf_ok(user, &fields) {
            return crate::csrf_refused(&ctx);
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(session::SESSION_COOKIE, "", Some(0)).parse().expect("ASCII"));
    response
}

pub async fn switch_lang(Path(code): Path<String>, Query(params): Query<Params>) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::Zh);
    let next = param(&params, "next").filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or("/");
    let mut response = Redirect::to(next).into_response();
    let cookie = session::set_cookie(session::LANG_COOKIE, lang.code(), Some(365 * 24 * 3600));
    response.headers_mut().append(header::SET_COOKIE, cookie.parse().expect("ASCII"));
    response
}

pub async fn home(ctx: Ctx) -> Response {
    let Some(user) = &ctx.user else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let body = match user.role() {
        Role::Partner => html! {
            p { (l.t("在左侧选择要办理的业务：", "Choose what to do on the left:")) }
            ul {
                li { a href="/partner/months" { (l.t("激励月份：状态、累计与定稿金额、跨月", "Incentive months: status, accrued and final amounts, rollover")) } }
                li { a href="/partner/quarter" { (l.t("季度付款申请：可申请条件与阻碍项", "Quarterly payment: eligibility and blockers")) } }
                li { a href="/partner/withdrawals" { (l.t("激励返点提现", "Rebate withdrawal")) } }
                li { a href="/partner/funds" { (l.t("拨款 / 回收与调账记录", "Allocate / reclaim and adjustment records")) } }
            }
        },
        Role::Admin => html! {
            ul {
                li { a href="/ops/reviews" { (l.t("待初审与待定稿的月度激励", "Months to review and finalize")) } }
                li { a href="/ops/payments" { (l.t("季度付款：审批、开票清单、收票、付款", "Quarterly payments: approve, invoice list, invoice received, pay")) } }
                li { a href="/ops/withdrawals" { (l.t("提现审批、到账与失败", "Withdrawals: approve, paid, failed")) } }
                li { a href="/finance/trial-balance" { (l.t("试算平衡", "Trial balance")) } }
            }
        },
        _ => html! {
            ul {
                li { a href="/finance/trial-balance" { (l.t("试算平衡", "Trial balance")) } }
                li { a href="/finance/chain" { (l.t("哈希链校验", "Chain check")) } }
                li { a href="/finance/events" { (l.t("事件浏览", "Events")) } }
            }
        },
    };
    page(&ctx, l.t("首页", "Start"), None, body)
}

// ---------------------------------------------------------------- incentive months

pub async fn months_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_months(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_months(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, .. } = v;
    let l = ctx.lang;
    let title = l.t("激励月份", "Incentive months");
    let chooser = partner_chooser(l, user, "/partner/months", params);
    if partner_of(user, params).is_none() {
        return page(ctx, title, notice.as_ref(), chooser);
    }
    let year = param(params, "year").map(str::to_string).unwrap_or_else(|| now_month().year().to_string());
    let scope = scope_param(user, params);
    let uri = format!(
        "/v1/incentive-months{}",
        query(&[("year", Some(&year)), ("partner_id", scope.as_deref()), ("limit", Some("1000"))])
    );
    let months = match console.get(user, &uri).await {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, chooser, &r),
    };
    let items = months["items"].as_array().cloned().unwrap_or_default();
    let open: Vec<&Value> = items.iter().filter(|m| s(m, "status") == "open").collect();
    let can_apply = matches!(user.role(), Role::Partner | Role::Admin);
    let body = html! {
        (chooser)
        form.card.noprint method="get" action="/partner/months" {
            div.fields {
                (field("year", l.t("年份", "Year"), html! { input #year name="year" type="number" min="2000" max="2100" value=(year); }))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
        h2 { (l.t("待申请激励", "Months to apply for")) }
        @if open.is_empty() {
            p.small { (l.t("没有可申请的月份。", "No month can be applied for now.")) }
        } @else {
            table {
                thead { tr { th { (l.t("月份", "Month")) } th { (l.t("币种", "Currency")) } th.num { (l.t("累计激励", "Accrued")) } th { (l.t("操作", "Action")) } } }
                tbody {
                    @for m in &open {
                        tr {
                            td { (s(m, "month")) } td { (s(m, "currency")) } td.num { (money(&m["accrued"])) }
                            td {
                                @if can_apply {
                                    form.inline method="post" action="/partner/months/apply" {
                                        (form_guard(user))
                                        input type="hidden" name="month" value=(s(m, "month"));
                                        input type="hidden" name="currency" value=(s(m, "currency"));
                                        input type="hidden" name="year" value=(year);
                                        @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                                        button type="submit" aria-label={ (l.t("申请激励 ", "Apply for ")) (s(m, "month")) } { (l.t("申请激励", "Apply")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.small { (l.t(
                "申请激励需要完成实名认证和商业信息认证。",
                "Applying needs both the real-name authentication and the business-information certification."
            )) }
        }
        h2 { (l.t("全部月份", "All months")) " " (year) }
        table #months {
            thead { tr {
                th { (l.t("月份", "Month")) } th { (l.t("币种", "Currency")) } th { (l.t("状态", "Status")) }
                th.num { (l.t("累计激励", "Accrued")) } th.num { (l.t("定稿金额", "Final")) }
                th.num { (l.t("跨月计入", "Rollover in")) } th.num { (l.t("跨月转出", "Rollover out")) } th { (l.t("明细", "Details")) }
            } }
            tbody {
                @for m in &items {
                    tr data-month=(s(m, "month")) {
                        td { (s(m, "month")) } td { (s(m, "currency")) } td { (status_badge(l, s(m, "status"))) }
                        td.num { (money(&m["accrued"])) } td.num { (money(&m["final"])) }
                        td.num { (money(&m["rollover_in"])) } td.num { (money(&m["rollover_out"])) }
                        td { a href={ "/partner/details" (query(&[("month", Some(s(m, "month"))), ("currency", Some(s(m, "currency"))), ("partner_id", scope.as_deref())])) } { (l.t("查看", "View")) } }
                    }
                }
                @if items.is_empty() { tr { td colspan="8" { (l.t("本年没有激励月份。", "No incentive month this year.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn apply_month(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let month = fields.value("month");
    let scope = scope_param(&user, &params);
    let uri = format!(
        "/v1/incentive-months/{}/apply{}",
        enc(&month),
        query(&[("currency", fields.get("currency")), ("partner_id", scope.as_deref())])
    );
    // The seed's next step: the quarter's payment application, where the month now shows as
    // under review.
    let quarter = month.parse::<ledger_core::Month>().map(|m| m.quarter().to_string()).unwrap_or_default();
    let done = format!(
        "/partner/quarter{}",
        query(&[("quarter", Some(&quarter)), ("partner_id", scope.as_deref()), ("done", Some("applied"))])
    );
    form_write(&console, &user, &fields, (Method::POST, &uri, None), &done, |notice| {
        render_months(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields))
    })
    .await
}

// ---------------------------------------------------------------- incentive details

pub async fn details_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    let l = ctx.lang;
    let title = l.t("激励明细", "Incentive details");
    let chooser = partner_chooser(l, &user, "/partner/details", &params);
    if partner_of(&user, &params).is_none() {
        return Ok(page(&ctx, title, None, chooser));
    }
    let month = param(&params, "month").map(str::to_string).unwrap_or_else(|| now_month().prev().to_string());
    let currency = param(&params, "currency").unwrap_or("CNY").to_string();
    let offset: u64 = param(&params, "offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit = 50u64;
    let scope = scope_param(&user, &params);
    let uri = format!(
        "/v1/incentive-details{}",
        query(&[
            ("month", Some(&month)),
            ("currency", Some(&currency)),
            ("partner_id", scope.as_deref()),
            ("offset", Some(&offset.to_string())),
            ("limit", Some(&limit.to_string())),
        ])
    );
    let form = html! {
        form.card.noprint method="get" action="/partner/details" {
            div.fields {
                (field("month", l.t("月份", "Month"), html! { input #month name="month" value=(month) placeholder="2026-07" pattern="[0-9]{4}-[0-9]{2}"; }))
                (field("currency", l.t("币种", "Currency"), currency_select("currency", &currency)))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
    };
    let details =
        console.get(&user, &uri).await.map_err(|r| read_refused(&ctx, title, html! { (chooser) (form) }, &r))?;
    let items = details["items"].as_array().cloned().unwrap_or_default();
    let total = details["total"].as_u64().unwrap_or(0);
    let body = html! {
        (chooser) (form)
        p.small { (l.t(
            "激励明细金额和客户消费金额不一致的原因：部分产品不产生激励；当月部分消费的激励计入下月。",
            "Why the incentive differs from the consumption: some products earn nothing, and part of a month's consumption counts in the next month."
        )) }
        dl.kv {
            dt { (l.t("累计激励", "Accrued")) } dd { (money(&details["accrued"])) }
            dt { (l.t("计入本月的激励（全精度）", "Counted here (full precision)")) } dd { (money(&details["counted_total"])) }
        }
        table #details {
            thead { tr {
                th { (l.t("类型", "Entry")) } th { (l.t("记录", "Record")) } th { (l.t("客户", "Customer")) } th { (l.t("产品", "Product")) }
                th { (l.t("消费月份", "Consumed")) } th { (l.t("激励月份", "Counted in")) } th.num { (l.t("消费金额", "Amount")) }
                th.num { (l.t("费率", "Rate")) } th.num { (l.t("激励", "Incentive")) } th { (l.t("说明", "Why")) }
            } }
            tbody {
                @for it in &items {
                    @let reason = s(it, "reason");
                    tr data-reason=(reason) {
                        td { (if s(it, "entry") == "refund" { l.t("退款", "refund") } else { l.t("消费", "consumption") }) }
                        td { (s(it, "record_id")) @if !s(it, "refund_id").is_empty() { br; span.small { (s(it, "refund_id")) } } }
                        td { (s(it, "customer_id")) } td { (s(it, "product")) }
                        td { (s(it, "consumption_month")) } td { (s(it, "incentive_month")) }
                        td.num { (money(&it["amount"])) }
                        td.num { (it["rate"].as_str().unwrap_or("—")) }
                        td.num { (money(&it["incentive"])) }
                        td {
                            @if reason.is_empty() { (l.t("计入本月", "counted here")) }
                            @else {
                                (status_or(l, reason))
                                @if reason == "COUNTED_IN_OTHER_MONTH" { " → " (s(it, "counted_in")) }
                            }
                        }
                    }
                }
                @if items.is_empty() { tr { td colspan="10" { (l.t("本月没有明细。", "No line in this month.")) } } }
            }
        }
        (pager(l, "/partner/details", &params, offset, limit, total))
    };
    Ok(page(&ctx, title, None, body))
}

pub fn currency_select(name: &str, current: &str) -> Markup {
    html! {
        select id=(name) name=(name) {
            @for c in ["CNY", "USD"] { option value=(c) selected[c == current] { (c) } }
        }
    }
}

/// Previous / next links keeping the other parameters.
pub fn pager(l: Lang, path: &str, params: &Params, offset: u64, limit: u64, total: u64) -> Markup {
    let link = |o: u64| {
        let mut pairs: Vec<(&str, Option<&str>)> = params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "offset" | "done"))
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        pairs.sort();
        let o = o.to_string();
        let mut q = query(&pairs);
        q.push_str(if q.is_empty() { "?" } else { "&" });
        q.push_str(&format!("offset={o}"));
        format!("{path}{q}")
    };
    html! {
        nav.pager aria-label=(l.t("分页", "Pages")) {
            @if offset > 0 { a href=(link(offset.saturating_sub(limit))) rel="prev" { (l.t("上一页", "Previous")) } }
            span { (offset.min(total) + u64::from(total > 0)) "–" ((offset + limit).min(total)) " / " (total) }
            @if offset + limit < total { a href=(link(offset + limit)) rel="next" { (l.t("下一页", "Next")) } }
        }
    }
}

// ---------------------------------------------------------------- opportunities

pub async fn opportunities_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_opportunities(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_opportunities(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, .. } = v;
    let l = ctx.lang;
    let title = l.t("机会点激励", "Opportunity incentives");
    let chooser = partner_chooser(l, user, "/partner/opportunities", params);
    let Some(partner) = partner_of(user, params) else { return page(ctx, title, notice.as_ref(), chooser) };
    // The stream state the apply step is decided on (the API has no list of opportunities).
    let state = match console.app.ledger.incentives(&partner).await {
        Ok(s) => s,
        Err(e) => {
            let e = ledger_api::ApiError::from(e);
            let r = Refusal { status: e.status, code: e.code.to_string(), message: e.message, details: Value::Null };
            return read_refused(ctx, title, chooser, &r);
        }
    };
    let body = html! {
        (chooser)
        p.small { (l.t(
            "仅具备核心标签并已交付完成的机会点可申请激励；交付结束当天不可申请，从交付结束后一天起可申请。同一 offering 正在用于其他机会点时不可申请。",
            "Only opportunities with the core tag and a completed delivery can be applied for, from the day after the delivery end date. An offering already used by another opportunity's application cannot be used again."
        )) }
        table #opportunities {
            thead { tr {
                th { (l.t("机会点", "Opportunity")) } th { "Offering" } th { (l.t("核心标签", "Core tag")) }
                th { (l.t("交付结束日", "Delivery end")) } th { (l.t("状态", "Status")) } th.num { (l.t("定稿金额", "Final")) } th { (l.t("操作", "Action")) }
            } }
            tbody {
                @for o in state.opportunities.values() {
                    @let status = serde_json::to_value(o.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    tr {
                        td { (o.opportunity_id) } td { (o.offering) }
                        td { (if o.core_tag { l.t("是", "yes") } else { l.t("否", "no") }) }
                        td { (o.delivery_end_date.map(|d| d.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (status_badge(l, &status)) }
                        td.num { (o.final_amount.as_ref().map(|m| format!("{} {}", crate::group_digits(&m.amount.to_string()), m.currency)).unwrap_or_else(|| "—".into())) }
                        td {
                            @if user.is_partner() && (status == "shared" || status == "accepted") {
                                form.inline method="post" action="/partner/opportunities" {
                                    (form_guard(user))
                                    input type="hidden" name="opportunity_id" value=(o.opportunity_id);
                                    @if status == "shared" {
                                        button type="submit" name="action" value="accept" { (l.t("接受", "Accept")) }
                                    } @else {
                                        button type="submit" name="action" value="apply" { (l.t("申请激励", "Apply")) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if state.opportunities.is_empty() { tr { td colspan="7" { (l.t("没有机会点。", "No opportunity.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn opportunity_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let action = if fields.get("action") == Some("accept") { "accept" } else { "apply" };
    let uri = format!("/v1/opportunities/{}/{action}", enc(&fields.value("opportunity_id")));
    let done = if action == "accept" { "accepted" } else { "opportunity_applied" };
    form_write(
        &console,
        &user,
        &fields,
        (Method::POST, &uri, None),
        &format!("/partner/opportunities?done={done}"),
        |notice| render_opportunities(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields)),
    )
    .await
}

// ---------------------------------------------------------------- the quarter

pub async fn quarter_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_quarter(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_quarter(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, .. } = v;
    let l = ctx.lang;
    let title = l.t("季度付款申请", "Quarterly payment application");
    let chooser = partner_chooser(l, user, "/partner/quarter", params);
    if partner_of(user, params).is_none() {
        return page(ctx, title, notice.as_ref(), chooser);
    }
    let quarter = param(params, "quarter").map(str::to_string).unwrap_or_else(|| now_month().quarter().to_string());
    let scope = scope_param(user, params);
    let form = html! {
        form.card.noprint method="get" action="/partner/quarter" {
            div.fields {
                (field("quarter", l.t("季度", "Quarter"), html! { input #quarter name="quarter" value=(quarter) placeholder="2026Q3" pattern="[0-9]{4}Q[1-4]"; }))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
    };
    let uri = format!(
        "/v1/quarterly-payments/eligibility{}",
        query(&[("quarter", Some(&quarter)), ("partner_id", scope.as_deref())])
    );
    let e = match console.get(user, &uri).await {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, html! { (chooser) (form) }, &r),
    };
    let eligible = e["eligible"].as_bool().unwrap_or(false);
    let blockers = e["blockers"].as_array().cloned().unwrap_or_default();
    let months_list = |key: &str| -> Vec<String> {
        e[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| match m {
                        Value::String(s) => s.clone(),
                        other => format!("{} ({})", s(other, "month"), money(&other["amount"])),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let body = html! {
        (chooser) (form)
        p.small { (l.t(
            "一个季度内的激励全部定稿后，伙伴可以发起季度付款申请。",
            "Once all of a quarter's incentives are finalized, the partner can request the quarter's payment."
        )) }
        section.card #eligibility data-eligible=(eligible) {
            h2 { (quarter) ": " @if eligible { span.ok { (l.t("可以申请付款", "eligible")) } } @else { span.bad { (l.t("暂不可申请付款", "not eligible yet")) } } }
            @if !blockers.is_empty() {
                p { (l.t("以下情况不可申请付款：", "The payment cannot be requested because:")) }
                ul #blockers {
                    @for b in &blockers {
                        @let code = s(b, "code");
                        li data-code=(code) { (crate::i18n::error_meaning(l, code)) " " (crate::months_of(l, b)) " " code { (code) } }
                    }
                }
            }
            dl.kv {
                dt { (l.t("可付金额", "Payable")) } dd #payable { (money(&e["payable"])) }
                dt { (l.t("包含月份", "Included months")) } dd { (months_list("included_months").join(", ")) }
                dt { (l.t("放弃的月份（未申请）", "Months forfeited (not applied for)")) } dd { (months_list("excluded_months").join(", ")) }
                dt { (l.t("结转扣减", "Carried deduction")) } dd { (money(&e["carried_deduction"])) }
            }
            @if user.is_partner() || user.is_admin() {
                form.inline method="post" action="/partner/quarter" #request-form {
                    (form_guard(user))
                    input type="hidden" name="quarter" value=(quarter);
                    @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                    button type="submit" { (l.t("申请付款", "Request the payment")) }
                }
            }
        }
        p { a href={ "/partner/payments" (query(&[("partner_id", scope.as_deref())])) } { (l.t("查看申请记录", "See the applications")) } }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn request_payment(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let scope = scope_param(&user, &params);
    let mut body = json!({"quarter": fields.value("quarter")});
    if let Some(p) = &scope {
        body["partner_id"] = json!(p);
    }
    let done = format!("/partner/payments{}", query(&[("partner_id", scope.as_deref()), ("done", Some("requested"))]));
    form_write(&console, &user, &fields, (Method::POST, "/v1/quarterly-payments", Some(&body)), &done, |notice| {
        render_quarter(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields))
    })
    .await
}

// ---------------------------------------------------------------- applications, invoice list

pub async fn payments_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    let l = ctx.lang;
    let notice = done_notice(l, &params);
    let title = l.t("申请记录", "Payment applications");
    let chooser = partner_chooser(l, &user, "/partner/payments", &params);
    if partner_of(&user, &params).is_none() {
        return Ok(page(&ctx, title, notice.as_ref(), chooser));
    }
    let scope = scope_param(&user, &params);
    let uri = format!("/v1/quarterly-payments{}", query(&[("partner_id", scope.as_deref()), ("limit", Some("100"))]));
    let list = console.get(&user, &uri).await.map_err(|r| read_refused(&ctx, title, chooser.clone(), &r))?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        (chooser)
        table #payments {
            thead { tr {
                th { (l.t("申请编号", "Application")) } th { (l.t("季度", "Quarter")) } th { (l.t("状态", "Status")) }
                th.num { (l.t("可付金额", "Payable")) } th { (l.t("付款方式", "Method")) } th { (l.t("操作", "Action")) }
            } }
            tbody {
                @for p in &items {
                    tr data-payment=(s(p, "payment_id")) {
                        td { (s(p, "payment_id")) } td { (s(p, "quarter")) } td { (status_badge(l, s(p, "status"))) }
                        td.num { (money(&p["payable"])) }
                        td { (match s(p, "method") { "bank_transfer" => l.t("银行转账", "bank transfer"), "cloud_account_credit" => l.t("返云账户", "cloud account credit"), _ => "—" }) }
                        td {
                            @if !p["invoice_list"].is_null() {
                                a href={ "/partner/payments/" (enc(s(p, "payment_id"))) "/invoice" } { (l.t("查看开票清单", "View the invoice list")) }
                            }
                        }
                    }
                }
                @if items.is_empty() { tr { td colspan="6" { (l.t("还没有付款申请。", "No application yet.")) } } }
            }
        }
    };
    Ok(page(&ctx, title, notice.as_ref(), body))
}

pub async fn invoice_page(State(console): St, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("查看开票清单", "Invoice list");
    let payment = match console.get(&user, &format!("/v1/quarterly-payments/{}", enc(&id))).await {
        Ok(v) => v,
        Err(r) => return read_refused(&ctx, title, html! {}, &r),
    };
    let list = &payment["invoice_list"];
    if list.is_null() {
        return page(
            &ctx,
            title,
            None,
            html! { p { (l.t("该申请尚未出具开票清单。", "No invoice list has been issued for this application yet.")) } },
        );
    }
    let lines = list["lines"].as_array().cloned().unwrap_or_default();
    let body = html! {
        dl.kv #invoice-head {
            dt { (l.t("申请编号", "Application")) } dd { (s(&payment, "payment_id")) }
            dt { (l.t("合作伙伴", "Partner")) } dd { (s(&payment, "partner_id")) }
            dt { (l.t("季度", "Quarter")) } dd { (s(&payment, "quarter")) }
            dt { (l.t("发票邮寄地址", "Mail the invoice to")) } dd #mailing-address { (s(list, "mailing_address")) }
            dt { (l.t("公共邮箱", "Public mailbox")) } dd #mailbox { (s(list, "mailbox")) }
        }
        table #invoice-lines {
            thead { tr { th { (l.t("开票项目", "Item")) } th { (l.t("月份 / 机会点", "Month / opportunity")) } th.num { (l.t("金额", "Amount")) } } }
            tbody {
                @for line in &lines {
                    tr {
                        td { (s(line, "item")) }
                        td { (line["month"].as_str().or(line["opportunity_id"].as_str()).unwrap_or("—")) }
                        td.num { (money(&line["amount"])) }
                    }
                }
            }
            tfoot { tr { th colspan="2" { (l.t("合计", "Total")) } th.num #invoice-total { (money(&list["total"])) } } }
        }
        p.noprint {
            button type="button" data-print hidden { (l.t("打印开票清单", "Print the invoice list")) }
            " "
            a href="/partner/payments" { (l.t("返回申请记录", "Back to the applications")) }
        }
    };
    page(&ctx, title, None, body)
}

// ---------------------------------------------------------------- withdrawals

pub async fn withdrawals_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_withdrawals(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_withdrawals(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, prefill } = v;
    let l = ctx.lang;
    let title = l.t("激励返点提现", "Rebate withdrawal");
    let chooser = partner_chooser(l, user, "/partner/withdrawals", params);
    let Some(partner) = partner_of(user, params) else { return page(ctx, title, notice.as_ref(), chooser) };
    let currency = param(params, "currency").unwrap_or("CNY").to_string();
    let scope = scope_param(user, params);
    let uri = format!(
        "/v1/withdrawals/withdrawable{}",
        query(&[("currency", Some(&currency)), ("partner_id", scope.as_deref())])
    );
    let withdrawable = match console.get(user, &uri).await {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, chooser, &r),
    };
    // The withdrawals are read from the stream the withdrawal rule is checked on (the API
    // answers them one by one).
    let rebate = console.app.ledger.rebate(&partner).await.ok();
    let mut withdrawals: Vec<_> =
        rebate.as_ref().map(|r| r.withdrawals.values().cloned().collect()).unwrap_or_default();
    withdrawals.reverse();
    let body = html! {
        (chooser)
        p.small { (l.t(
            "提现款项在审核通过后7个工作日到账；付款方式为银行转账至实名同人的银行账号，收款账号名称必须与实名认证一致。",
            "A withdrawal arrives 7 working days after approval, by bank transfer to an account of the same real-name person: the holder's name must be the real-name-authenticated name."
        )) }
        dl.kv { dt { (l.t("可提现金额", "Withdrawable")) } dd #withdrawable { (money(&withdrawable)) } }
        @if user.is_partner() || user.is_admin() {
            form.card method="post" action="/partner/withdrawals" #withdrawal-form {
                (form_guard(user))
                (hidden_partner(user, params))
                h2 { (l.t("申请提现", "Request a withdrawal")) }
                div.fields {
                    (field("amount", l.t("金额", "Amount"), html! { input #amount name="amount" required inputmode="decimal" value=(prefill.value("amount")) placeholder="100.00"; }))
                    (field("w-currency", l.t("币种", "Currency"), currency_select_named("w-currency", "currency", prefill.get("currency").unwrap_or(&currency))))
                    (field("holder_name", l.t("收款账号名称", "Account holder's name"), html! { input #holder_name name="holder_name" required value=(prefill.value("holder_name")); }))
                    (field("number", l.t("银行账号", "Account number"), html! { input #number name="number" required value=(prefill.value("number")); }))
                    (field("bank", l.t("开户银行", "Bank"), html! { input #bank name="bank" required value=(prefill.value("bank")); }))
                }
                button type="submit" { (l.t("提交提现申请", "Request")) }
            }
        }
        h2 { (l.t("提现记录", "Withdrawals")) }
        table #withdrawals {
            thead { tr {
                th { (l.t("编号", "Id")) } th.num { (l.t("金额", "Amount")) } th { (l.t("状态", "Status")) }
                th { (l.t("预计到账日期", "Expected arrival")) } th { (l.t("收款账号", "Account")) }
            } }
            tbody {
                @for w in &withdrawals {
                    @let status = serde_json::to_value(w.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    tr {
                        td { (w.withdrawal_id) }
                        td.num { (crate::group_digits(&w.amount.amount.to_string())) " " (w.amount.currency) }
                        td { (status_badge(l, &status)) }
                        td { (w.expected_arrival_date.map(|d| d.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (w.bank_account.holder_name) " · " (w.bank_account.bank) }
                    }
                }
                @if withdrawals.is_empty() { tr { td colspan="5" { (l.t("没有提现记录。", "No withdrawal yet.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

fn currency_select_named(id: &str, name: &str, current: &str) -> Markup {
    html! {
        select id=(id) name=(name) {
            @for c in ["CNY", "USD"] { option value=(c) selected[c == current] { (c) } }
        }
    }
}

pub async fn request_withdrawal(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let scope = scope_param(&user, &params);
    let mut body = json!({
        "amount": fields.value("amount").trim(),
        "currency": fields.value("currency"),
        "bank_account": {"holder_name": fields.value("holder_name"), "number": fields.value("number"), "bank": fields.value("bank")},
    });
    if let Some(p) = &scope {
        body["partner_id"] = json!(p);
    }
    let done =
        format!("/partner/withdrawals{}", query(&[("partner_id", scope.as_deref()), ("done", Some("withdrawal"))]));
    form_write(&console, &user, &fields, (Method::POST, "/v1/withdrawals", Some(&body)), &done, |notice| {
        render_withdrawals(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields))
    })
    .await
}

// ---------------------------------------------------------------- allocate / reclaim

pub async fn funds_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_funds(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_funds(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, prefill } = v;
    let l = ctx.lang;
    let title = l.t("拨款 / 回收", "Allocate / reclaim");
    let chooser = partner_chooser(l, user, "/partner/funds", params);
    if partner_of(user, params).is_none() {
        return page(ctx, title, notice.as_ref(), chooser);
    }
    let scope = scope_param(user, params);
    let offset: u64 = param(params, "offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit = 20u64;
    let uri = format!(
        "/v1/adjustment-records{}",
        query(&[
            ("kind", param(params, "kind")),
            ("counterparty_id", param(params, "counterparty_id")),
            ("from", param(params, "from").map(day_start).as_deref()),
            ("to", param(params, "to").map(day_end).as_deref()),
            ("partner_id", scope.as_deref()),
            ("offset", Some(&offset.to_string())),
            ("limit", Some(&limit.to_string())),
        ])
    );
    let filters = html! {
        form.card.noprint method="get" action="/partner/funds" #record-filters {
            h2 { (l.t("调账记录筛选", "Filter the adjustment records")) }
            div.fields {
                (field("kind", l.t("类型", "Kind"), html! {
                    select #kind name="kind" {
                        option value="" { (l.t("全部", "all")) }
                        @for k in ["allocate", "reclaim", "unbind_reclaim"] {
                            option value=(k) selected[param(params, "kind") == Some(k)] { (status_or(l, k)) }
                        }
                    }
                }))
                (field("counterparty_id", l.t("对方（客户或经销商）", "Counterparty (customer or reseller)"), html! {
                    input #counterparty_id name="counterparty_id" value=(param(params, "counterparty_id").unwrap_or_default());
                }))
                (field("from", l.t("开始日期", "From"), html! { input #from name="from" type="date" value=(param(params, "from").unwrap_or_default()); }))
                (field("to", l.t("结束日期", "To"), html! { input #to name="to" type="date" value=(param(params, "to").unwrap_or_default()); }))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Filter")) }
            }
        }
    };
    let records = match console.get(user, &uri).await {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, html! { (chooser) (filters) }, &r),
    };
    let balances = match &scope {
        None => console.get(user, "/v1/balances").await.ok(),
        Some(p) => console.get(user, &format!("/v1/balances{}", query(&[("partner_id", Some(p))]))).await.ok(),
    };
    let items = records["items"].as_array().cloned().unwrap_or_default();
    let total = records["total"].as_u64().unwrap_or(0);
    let fund_balances: Vec<Value> = balances
        .as_ref()
        .and_then(|b| b["balances"].as_array().or(b["items"].as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|b| {
            let a = s(b, "account");
            a.ends_with(":fund_pool") || a.ends_with(":fund_received")
        })
        .collect();
    let body = html! {
        (chooser)
        @if !fund_balances.is_empty() {
            dl.kv #fund-balances {
                @for b in &fund_balances {
                    dt { (if s(b, "account").ends_with(":fund_pool") { l.t("资金池", "Fund pool") } else { l.t("已收拨款（未用）", "Received, unspent") }) }
                    dd { (money(&b["balance"])) }
                }
            }
        }
        @if user.is_partner() || user.is_admin() {
            form.card method="post" action="/partner/funds" #adjust-form {
                (form_guard(user))
                (hidden_partner(user, params))
                h2 { (l.t("拨款或回收", "Allocate or reclaim")) }
                div.fields {
                    (field("direction", l.t("操作", "Operation"), html! {
                        select #direction name="direction" {
                            option value="allocate" selected[prefill.get("direction") != Some("reclaim")] { (l.t("拨款", "allocate")) }
                            option value="reclaim" selected[prefill.get("direction") == Some("reclaim")] { (l.t("回收", "reclaim")) }
                        }
                    }))
                    (field("cp_type", l.t("对象类型", "Counterparty type"), html! {
                        select #cp_type name="counterparty_type" {
                            option value="customer" selected[prefill.get("counterparty_type") != Some("reseller")] { (l.t("客户", "customer")) }
                            option value="reseller" selected[prefill.get("counterparty_type") == Some("reseller")] { (l.t("云经销商（二级）", "reseller (tier 2)")) }
                        }
                    }))
                    (field("cp_id", l.t("对象编号", "Counterparty id"), html! { input #cp_id name="counterparty" required value=(prefill.value("counterparty")); }))
                    (field("f-amount", l.t("金额", "Amount"), html! { input #f-amount name="amount" required inputmode="decimal" value=(prefill.value("amount")); }))
                    (field("f-currency", l.t("币种", "Currency"), currency_select_named("f-currency", "currency", prefill.get("currency").unwrap_or("CNY"))))
                    (field("remark", l.t("备注", "Remark"), html! { input #remark name="remark" value=(prefill.value("remark")); }))
                }
                button type="submit" { (l.t("提交", "Submit")) }
            }
        }
        (filters)
        h2 { (l.t("调账记录", "Adjustment records")) }
        table #adjustment-records {
            thead { tr {
                th { (l.t("记录", "Record")) } th { (l.t("类型", "Kind")) } th { (l.t("操作方", "Operator")) }
                th { (l.t("对方", "Counterparty")) } th.num { (l.t("金额", "Amount")) } th { (l.t("时间", "Time")) }
                th { (l.t("备注", "Remark")) } th { (l.t("操作人", "Acting user")) }
            } }
            tbody {
                @for r in &items {
                    tr data-kind=(s(r, "kind")) {
                        td { (s(r, "record_id")) } td { (status_or(l, s(r, "kind"))) } td { (s(r, "operator_partner_id")) }
                        td { (status_or(l, s(&r["counterparty"], "type"))) " " (s(&r["counterparty"], "id")) }
                        td.num { (money(&r["amount"])) } td { (s(r, "occurred_at")) } td { (s(r, "remark")) } td { (s(r, "actor")) }
                    }
                }
                @if items.is_empty() { tr { td colspan="8" { (l.t("没有调账记录。", "No adjustment record.")) } } }
            }
        }
        (pager(l, "/partner/funds", params, offset, limit, total))
    };
    page(ctx, title, notice.as_ref(), body)
}

/// A day of a date filter as the instants it spans, in China Standard Time.
fn day_start(d: &str) -> String {
    if d.contains('T') {
        d.to_string()
    } else {
        format!("{d}T00:00:00+08:00")
    }
}

fn day_end(d: &str) -> String {
    if d.contains('T') {
        d.to_string()
    } else {
        format!("{d}T23:59:59.999+08:00")
    }
}

pub async fn adjust_funds(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let scope = scope_param(&user, &params);
    let direction = if fields.get("direction") == Some("reclaim") { "reclaim" } else { "allocate" };
    let mut body = json!({
        "counterparty": {"type": fields.value("counterparty_type"), "id": fields.value("counterparty").trim()},
        "amount": fields.value("amount").trim(),
        "currency": fields.value("currency"),
    });
    if let Some(remark) = fields.text("remark") {
        body["remark"] = json!(remark);
    }
    if let Some(p) = &scope {
        body["partner_id"] = json!(p);
    }
    let uri = if direction == "reclaim" { "/v1/reclaims" } else { "/v1/allocations" };
    let done = format!("/partner/funds{}", query(&[("partner_id", scope.as_deref()), ("done", Some(direction))]));
    let mut params = params;
    params.retain(|k, _| k == "partner_id");
    form_write(&console, &user, &fields, (Method::POST, uri, Some(&body)), &done, |notice| {
        render_funds(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields))
    })
    .await
}

// ---------------------------------------------------------------- customers

pub async fn customers_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_customers(Shown::page(&console, &ctx, &user, &params)).await)
}

async fn render_customers(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, prefill } = v;
    let l = ctx.lang;
    let title = l.t("客户管理", "Customers");
    let customer_id =
        param(params, "customer_id").or(prefill.get("customer_id")).unwrap_or_default().trim().to_string();
    let mut found = None;
    if !customer_id.is_empty() {
        // A customer's association, shown only to its own partner (or admin and auditor).
        if let Ok(c) = console.app.ledger.customer(&customer_id).await {
            if let Some(a) = c.association_at(chrono::Utc::now()) {
                let mine = match user.role() {
                    Role::Partner => user.principal.partner_id.as_deref() == Some(a.partner_id.as_str()),
                    _ => true,
                };
                if mine {
                    found = Some(json!({"partner_id": a.partner_id, "association_type": a.association_type}));
                }
            }
        }
    }
    let body = html! {
        p.small { (l.t(
            "在客户列表中选择一条客户记录，单击“更多 > 切换关联类型”。同一客户3个月内只能切换（或解除）一次。",
            "Choose a customer and use “More > Switch association type”. A customer's association may be switched (or ended) once in 3 months."
        )) }
        form.card.noprint method="get" action="/partner/customers" {
            div.fields {
                (field("find-customer", l.t("客户编号", "Customer id"), html! { input #find-customer name="customer_id" value=(customer_id); }))
                @if let Some(p) = scope_param(user, params) { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Look up")) }
            }
        }
        @if let Some(c) = &found {
            dl.kv #customer {
                dt { (l.t("客户", "Customer")) } dd { (customer_id) }
                dt { (l.t("合作伙伴", "Partner")) } dd { (s(c, "partner_id")) }
                dt { (l.t("关联类型", "Association type")) } dd #association-type { (status_or(l, s(c, "association_type"))) }
            }
        } @else if !customer_id.is_empty() {
            p #customer-unknown { (l.t("没有找到您的这个客户。", "No customer of yours has this id.")) }
        }
        @if user.is_partner() || user.is_admin() {
            form.card method="post" action="/partner/customers" #switch-form {
                (form_guard(user))
                h2 { (l.t("切换关联类型", "Switch the association type")) }
                div.fields {
                    (field("customer_id", l.t("客户编号", "Customer id"), html! { input #customer_id name="customer_id" required value=(if customer_id.is_empty() { prefill.value("customer_id") } else { customer_id.clone() }); }))
                    (field("association_type", l.t("新的关联类型", "New association type"), html! {
                        select #association_type name="association_type" {
                            option value="resale" { (l.t("代售", "resale")) }
                            option value="referral" selected[prefill.get("association_type") == Some("referral")] { (l.t("推荐", "referral")) }
                        }
                    }))
                }
                button type="submit" name="action" value="switch" { (l.t("切换关联类型", "Switch")) }
                " "
                button.danger type="submit" name="action" value="end" { (l.t("解除关联", "End the association")) }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn customer_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = fields_params(&fields);
    let customer = fields.value("customer_id").trim().to_string();
    let (uri, body, done) = if fields.get("action") == Some("end") {
        (format!("/v1/customers/{}/end-association", enc(&customer)), json!({}), "ended")
    } else {
        (
            format!("/v1/customers/{}/association-type", enc(&customer)),
            json!({"association_type": fields.value("association_type")}),
            "switched",
        )
    };
    let done = format!("/partner/customers{}", query(&[("customer_id", Some(&customer)), ("done", Some(done))]));
    let mut params = params;
    params.retain(|k, _| k == "partner_id");
    form_write(&console, &user, &fields, (Method::POST, &uri, Some(&body)), &done, |notice| {
        render_customers(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields))
    })
    .await
}

// ---------------------------------------------------------------- coupons

pub async fn coupons_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_coupons(Shown::page(&console, &ctx, &user, &params), None).await)
}

async fn render_coupons(v: Shown<'_>, reclaim_results: Option<Vec<Value>>) -> Response {
    let Shown { console, ctx, user, params, notice, prefill } = v;
    let l = ctx.lang;
    let title = l.t("优惠券", "Coupons");
    let chooser = partner_chooser(l, user, "/partner/coupons", params);
    if partner_of(user, params).is_none() {
        return page(ctx, title, notice.as_ref(), chooser);
    }
    let scope = scope_param(user, params);
    let coupons = match console
        .get(user, &format!("/v1/coupons{}", query(&[("partner_id", scope.as_deref()), ("limit", Some("200"))])))
        .await
    {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, chooser, &r),
    };
    // The quota: the vendor-compatible query (a partner's own only).
    let quotas = if user.is_partner() {
        console
            .call(user, Method::POST, "/v2/partners/coupon-quotas/query", Some(&json!({"limit": 100})), None)
            .await
            .into_result()
            .ok()
    } else {
        None
    };
    let items = coupons["items"].as_array().cloned().unwrap_or_default();
    let quota_rows = quotas.as_ref().and_then(|q| q["quotas"].as_array().cloned()).unwrap_or_default();
    let expires_default = (chrono::Utc::now() + chrono::Duration::days(90)).format("%Y-%m-%d").to_string();
    let body = html! {
        (chooser)
        @if !quota_rows.is_empty() {
            h2 { (l.t("优惠券额度", "Coupon quota")) }
            table #quotas {
                thead { tr { th { (l.t("额度编号", "Quota")) } th.num { (l.t("面额", "Granted")) } th.num { (l.t("余额", "Left")) } th { (l.t("币种", "Currency")) } } }
                tbody {
                    @for q in &quota_rows {
                        tr { td { (s(q, "quota_id")) } td.num { (q["quota_value"]) } td.num { (q["balance"]) } td { (s(q, "currency")) } }
                    }
                }
            }
        }
        @if user.is_partner() || user.is_admin() {
            form.card method="post" action="/partner/coupons" #issue-form {
                (form_guard(user))
                (hidden_partner(user, params))
                input type="hidden" name="action" value="issue";
                h2 { (l.t("发放代金券", "Issue a cash coupon")) }
                p.small { (l.t("只能发给代售类子客户，且不超过剩余额度。", "To resale customers only, within the remaining quota.")) }
                div.fields {
                    (field("coupon_id", l.t("优惠券编号", "Coupon id"), html! { input #coupon_id name="coupon_id" required value=(if prefill.get("coupon_id").is_some() { prefill.value("coupon_id") } else { format!("C-{}", &session::random_hex(4)) }); }))
                    (field("c-customer", l.t("客户编号", "Customer id"), html! { input #c-customer name="customer_id" required value=(prefill.value("customer_id")); }))
                    (field("c-amount", l.t("面额", "Amount"), html! { input #c-amount name="amount" required inputmode="decimal" value=(prefill.value("amount")); }))
                    (field("c-currency", l.t("币种", "Currency"), currency_select_named("c-currency", "currency", prefill.get("currency").unwrap_or("CNY"))))
                    (field("expires", l.t("到期日", "Expires on"), html! { input #expires name="expires" type="date" required value=(prefill.get("expires").unwrap_or(&expires_default)); }))
                }
                button type="submit" { (l.t("发放", "Issue")) }
            }
        }
        @if let Some(results) = &reclaim_results {
            h2 { (l.t("回收结果", "Reclaim results")) }
            ul #reclaim-results {
                @for r in results {
                    li { (s(r, "coupon_id")) ": "
                        @if s(r, "status") == "success" { span.ok { (l.t("已回收", "reclaimed")) } " " (money(&r["reclaimed"])) }
                        @else { span.bad { (crate::i18n::error_meaning(l, s(r, "error_code"))) } " " code { (s(r, "error_code")) } }
                    }
                }
            }
        }
        h2 { (l.t("已发放的优惠券", "Issued coupons")) }
        form method="post" action="/partner/coupons" #reclaim-form {
            (form_guard(user))
            (hidden_partner(user, params))
            input type="hidden" name="action" value="reclaim";
            table #coupons {
                thead { tr {
                    th { span.small { (l.t("选择", "Pick")) } } th { (l.t("优惠券", "Coupon")) } th { (l.t("客户", "Customer")) }
                    th.num { (l.t("面额", "Amount")) } th.num { (l.t("余额", "Remaining")) } th { (l.t("状态", "Status")) } th { (l.t("到期", "Expires")) }
                } }
                tbody {
                    @for c in &items {
                        tr {
                            td { @if s(c, "status") == "active" {
                                input type="checkbox" name="coupon_ids" value=(s(c, "coupon_id")) id={ "pick-" (s(c, "coupon_id")) } aria-label={ (l.t("选择 ", "Pick ")) (s(c, "coupon_id")) };
                            } }
                            td { (s(c, "coupon_id")) } td { (s(c, "customer_id")) }
                            td.num { (money(&c["amount"])) } td.num { (money(&c["remaining"])) }
                            td { (status_badge(l, s(c, "status"))) } td { (s(c, "expires_at")) }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="7" { (l.t("没有优惠券。", "No coupon.")) } } }
                }
            }
            @if user.is_partner() { button.secondary type="submit" { (l.t("回收所选优惠券", "Reclaim the picked coupons")) } }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn coupon_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let mut params = fields_params(&fields);
    params.retain(|k, _| k == "partner_id");
    let scope = scope_param(&user, &params);
    if fields.get("action") == Some("reclaim") {
        let ids = fields.all("coupon_ids");
        let answer = console
            .write(
                &user,
                Method::POST,
                "/v2/promotions/benefits/partner-coupons/reclaim",
                Some(&json!({"coupon_ids": ids})),
                &fields,
            )
            .await;
        return match answer {
            Ok(v) => {
                let results = v["results"].as_array().cloned().unwrap_or_default();
                let notice = done_notice(ctx.lang, &[("done".to_string(), "coupons_reclaimed".to_string())].into());
                Ok(render_coupons(Shown { notice, ..Shown::page(&console, &ctx, &user, &params) }, Some(results)).await)
            }
            Err(r) => {
                let refused = Some(Notice::Refused(r));
                Err(render_coupons(Shown { notice: refused, ..Shown::page(&console, &ctx, &user, &params) }, None)
                    .await)
            }
        };
    }
    let expires = fields.value("expires");
    let expires_at = if expires.contains('T') { expires.clone() } else { format!("{expires}T23:59:59+08:00") };
    let mut body = json!({
        "coupon_id": fields.value("coupon_id").trim(),
        "customer_id": fields.value("customer_id").trim(),
        "amount": fields.value("amount").trim(),
        "currency": fields.value("currency"),
        "expires_at": expires_at,
    });
    if let Some(p) = &scope {
        body["partner_id"] = json!(p);
    }
    let done = format!("/partner/coupons{}", query(&[("partner_id", scope.as_deref()), ("done", Some("issued"))]));
    form_write(&console, &user, &fields, (Method::POST, "/v1/coupons", Some(&body)), &done, |notice| {
        render_coupons(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields), None)
    })
    .await
}

// ---------------------------------------------------------------- lab points

pub async fn lab_points_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Answer {
    let user = crate::signed_in(&ctx)?;
    Ok(render_lab_points(Shown::page(&console, &ctx, &user, &params)).await)
}

/// The denominations of the seed ("10点、20点、50点、100点、250点、500点").
pub const LAB_POINTS: [u32; 6] = [10, 20, 50, 100, 250, 500];

async fn render_lab_points(v: Shown<'_>) -> Response {
    let Shown { console, ctx, user, params, notice, .. } = v;
    let l = ctx.lang;
    let title = l.t("云实验点数", "Cloud lab points");
    let chooser = partner_chooser(l, user, "/partner/lab-points", params);
    if partner_of(user, params).is_none() {
        return page(ctx, title, notice.as_ref(), chooser);
    }
    let scope = scope_param(user, params);
    let list = match console.get(user, &format!("/v1/lab-points{}", query(&[("partner_id", scope.as_deref())]))).await {
        Ok(v) => v,
        Err(r) => return read_refused(ctx, title, chooser, &r),
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let points_select = |id: &str, current: u64| {
        html! {
            select id=(id) name="points" {
                @for p in LAB_POINTS { option value=(p) selected[u64::from(p) == current] { (p) (l.t(" 点", " points")) } }
            }
        }
    };
    let body = html! {
        (chooser)
        dl.kv { dt { (l.t("已发放点数", "Granted points")) } dd #lab-balance { (list["balance"]["points"].as_u64().or(list["balance"]["granted"].as_u64()).map(|p| p.to_string()).unwrap_or_else(|| list["balance"].to_string())) } }
        @if user.is_partner() {
            form.card method="post" action="/partner/lab-points" #lab-form {
                (form_guard(user))
                input type="hidden" name="action" value="apply";
                h2 { (l.t("申请云实验点数", "Apply for lab points")) }
                div.fields { (field("points", l.t("点数", "Points"), points_select("points", 100))) }
                button type="submit" { (l.t("确定提交", "Submit")) }
            }
        }
        h2 { (l.t("申请记录", "Applications")) }
        table #lab-applications {
            thead { tr { th { (l.t("申请", "Application")) } th.num { (l.t("点数", "Points")) } th { (l.t("状态", "Status")) } th { (l.t("审核意见", "Comment")) } th { (l.t("操作", "Action")) } } }
            tbody {
                @for a in &items {
                    @let id = s(a, "application_id");
                    tr {
                        td { (id) } td.num { (a["points"]) } td { (status_badge(l, s(a, "status"))) } td { (s(a, "comment")) }
                        td {
                            @if user.is_partner() && s(a, "status") == "rejected" {
                                form.inline method="post" action="/partner/lab-points" {
                                    (form_guard(user))
                                    input type="hidden" name="action" value="resubmit";
                                    input type="hidden" name="application_id" value=(id);
                                    label for={ "re-" (id) } { (l.t("修改点数", "New points")) }
                                    (points_select(&format!("re-{id}"), a["points"].as_u64().unwrap_or(0)))
                                    button type="submit" { (l.t("重新提交", "Resubmit")) }
                                }
                            }
                        }
                    }
                }
                @if items.is_empty() { tr { td colspan="5" { (l.t("没有申请。", "No application.")) } } }
            }
        }
    };
    page(ctx, title, notice.as_ref(), body)
}

pub async fn lab_points_step(State(console): St, ctx: Ctx, Form(fields): Form<Vec<(String, String)>>) -> Answer {
    let (user, fields) = crate::form_user(&ctx, fields)?;
    let params = Params::new();
    let points: Value = fields.value("points").trim().parse::<u32>().map(Value::from).unwrap_or(Value::from(0));
    let body = json!({"points": points});
    let (method, uri, done) = if fields.get("action") == Some("resubmit") {
        (Method::PUT, format!("/v1/lab-points/{}", enc(&fields.value("application_id"))), "lab_resubmitted")
    } else {
        (Method::POST, "/v1/lab-points".to_string(), "lab_applied")
    };
    form_write(
        &console,
        &user,
        &fields,
        (method, &uri, Some(&body)),
        &format!("/partner/lab-points?done={done}"),
        |notice| render_lab_points(Shown::page(&console, &ctx, &user, &params).refused(notice, &fields)),
    )
    .await
}
