//! # ledger-console
//!
//! The Partner Center console of the seed, served by `ledger serve` at `/` beside the JSON
//! API: the partner's pages (incentive months and details, the quarter, withdrawals,
//! allocations, customers, coupons, lab points), the operator's queues and the finance and
//! audit views. Pages are rendered on the server (maud); there is no JavaScript toolchain
//! and no file from elsewhere: the stylesheet, the one small script (print) and the icon are
//! compiled in, charts are SVG drawn here.
//!
//! Every read and write of a page goes through the API's own router in process
//! ([`api::call`]) with the signed-in token, so the roles, the partner isolation, the
//! validation and the error codes are the API's. A few operator lists the API does not have
//! (the queues across partners) read the same projections the API reads.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger_api::AppState;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

pub mod api;
pub mod charts;
pub mod finance;
pub mod i18n;
pub mod operator;
pub mod partner;
pub mod session;

use i18n::Lang;
use session::{Ctx, Fields, User};

/// What the pages share: the server's state and the API router they call.
pub struct Console {
    pub app: Arc<AppState>,
    pub api: Router,
}

impl Console {
    /// Calls the API as `user`.
    pub async fn call(
        &self,
        user: &User,
        method: axum::http::Method,
        uri: &str,
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> api::Answer {
        api::call(&self.api, &user.token, method, uri, body, request_id).await
    }

    /// A read: its JSON, or the refusal.
    pub async fn get(&self, user: &User, uri: &str) -> Result<Value, api::Refusal> {
        self.call(user, axum::http::Method::GET, uri, None, None).await.into_result()
    }

    /// A write from a form: its answer once the read models hold it (the page shown next
    /// reads its own write), or the refusal (nothing stored).
    pub async fn write(
        &self,
        user: &User,
        method: axum::http::Method,
        uri: &str,
        body: Option<&Value>,
        fields: &Fields,
    ) -> Result<Value, api::Refusal> {
        let rid = fields.text("request_id");
        let answer = self.call(user, method, uri, body, rid.as_deref()).await;
        let position = answer.position();
        let value = answer.into_result()?;
        if let Some(p) = position {
            // A page read after the write waits for it, as `?min_position=` does.
            let _ = ledger_api::http::wait_for_position(&self.app, Some(p)).await;
        }
        Ok(value)
    }
}

/// The console's routes. Merge them with the API's router (`ledger_api::serve_with`).
pub fn router(app: Arc<AppState>) -> Router {
    let api = ledger_api::router(app.clone());
    let console = Arc::new(Console { app, api });
    Router::new()
        .route("/", get(partner::home))
        .route("/login", get(partner::login_page).post(partner::login))
        .route("/logout", post(partner::logout))
        .route("/lang/{code}", get(partner::switch_lang))
        .route("/static/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/static/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/static/icon.svg", get(|| async { asset("image/svg+xml", ICON) }))
        .route("/favicon.ico", get(|| async { asset("image/svg+xml", ICON) }))
        .merge(partner::routes())
        .merge(operator::routes())
        .merge(finance::routes())
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

type St = axum::extract::State<Arc<Console>>;

/// No page may be framed, sniffed, or run a script or style from elsewhere (or inline).
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");
const ICON: &str = include_str!("icon.svg");

/// What a page shows above its content after a form.
pub enum Notice {
    /// The write was done.
    Done(String),
    /// The write was refused: the code's meaning in words, and nothing was stored.
    Refused(api::Refusal),
}

/// A whole page: header with the user, the navigation of the role and the language switch.
pub fn page(ctx: &Ctx, title: &str, notice: Option<&Notice>, body: Markup) -> Response {
    let l = ctx.lang;
    let markup = html! {
        (DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (l.t("伙伴中心", "Partner Center")) }
                link rel="icon" href="/static/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { (l.t("跳到正文", "Skip to content")) }
                header.top {
                    a.brand href="/" { (l.t("伙伴中心", "Partner Center")) }
                    nav.lang aria-label=(l.t("语言", "Language")) {
                        @let next = api::enc(&ctx.here);
                        a href={ "/lang/zh?next=" (next) } lang="zh-CN" aria-current=[(l == Lang::Zh).then_some("true")] { "中文" }
                        " · "
                        a href={ "/lang/en?next=" (next) } lang="en" aria-current=[(l == Lang::En).then_some("true")] { "English" }
                    }
                    @if let Some(user) = &ctx.user {
                        div.who {
                            span { (role_name(l, user)) }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(user.csrf);
                                button type="submit" { (l.t("退出", "Sign out")) }
                            }
                        }
                    }
                }
                div.frame {
                    @if let Some(user) = &ctx.user {
                        nav.side aria-label=(l.t("导航", "Navigation")) { (navigation(l, user, &ctx.here)) }
                    }
                    main #main {
                        h1 { (title) }
                        @match notice {
                            Some(Notice::Done(text)) => { p.notice.done role="status" { (text) } }
                            Some(Notice::Refused(r)) => { (refusal(l, r)) }
                            None => {}
                        }
                        (body)
                    }
                }
            }
        }
    };
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], markup.into_string())
        .into_response()
}

/// A refusal in words: the code's meaning, the API's own message, the blockers it names.
pub fn refusal(l: Lang, r: &api::Refusal) -> Markup {
    let blockers: Vec<&Value> =
        r.details.get("blockers").and_then(Value::as_array).map(|b| b.iter().collect()).unwrap_or_default();
    html! {
        div.notice.refused role="alert" data-code=(r.code) {
            p { strong { (l.t("未执行：", "Not done: ")) } (i18n::error_meaning(l, &r.code)) }
            @if !blockers.is_empty() {
                ul {
                    @for b in &blockers {
                        @let code = b.get("code").and_then(Value::as_str).unwrap_or_default();
                        li { (i18n::error_meaning(l, code)) " " (months_of(l, b)) " " code { (code) } }
                    }
                }
            }
            p.small { code { (r.code) } @if !r.message.is_empty() { " — " (r.message) } }
            p.small { (l.t("未保存任何内容。", "Nothing was stored.")) }
        }
    }
}

/// "(months 2026-07, 2026-08)" of a blocker.
pub fn months_of(l: Lang, blocker: &Value) -> String {
    let months: Vec<&str> = blocker
        .get("months")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if months.is_empty() {
        String::new()
    } else {
        format!("({}{})", l.t("涉及月份 ", "months "), months.join(", "))
    }
}

fn role_name(l: Lang, user: &User) -> String {
    match user.role() {
        ledger_core::Role::Partner => {
            format!("{} {}", l.t("合作伙伴", "Partner"), user.principal.partner_id.as_deref().unwrap_or_default())
        }
        ledger_core::Role::Admin => l.t("运营人员（管理员）", "Operator (admin)").to_string(),
        _ => l.t("审计 / 财务", "Auditor / finance").to_string(),
    }
}

fn navigation(l: Lang, user: &User, here: &str) -> Markup {
    let partner_links: &[(&'static str, &'static str, &'static str)] = &[
        ("/partner/months", "激励月份", "Incentive months"),
        ("/partner/details", "激励明细", "Incentive details"),
        ("/partner/opportunities", "机会点激励", "Opportunities"),
        ("/partner/quarter", "季度付款申请", "Quarterly payment"),
        ("/partner/payments", "申请记录", "Applications"),
        ("/partner/withdrawals", "激励返点提现", "Rebate withdrawal"),
        ("/partner/funds", "拨款 / 回收", "Allocate / reclaim"),
        ("/partner/customers", "客户管理", "Customers"),
        ("/partner/coupons", "优惠券", "Coupons"),
        ("/partner/lab-points", "云实验点数", "Lab points"),
        ("/finance/statement", "月度对账单", "Monthly statement"),
        ("/finance/balances", "余额", "Balances"),
    ];
    let operator_links: &[(&'static str, &'static str, &'static str)] = &[
        ("/ops/reviews", "初审与定稿", "Review and finalize"),
        ("/ops/payments", "季度付款处理", "Quarterly payments"),
        ("/ops/withdrawals", "提现审批", "Withdrawals"),
        ("/ops/lab-points", "实验点审批", "Lab points"),
        ("/ops/credentials", "访问令牌", "Tokens"),
    ];
    let finance_links: &[(&'static str, &'static str, &'static str)] = &[
        ("/finance/trial-balance", "试算平衡", "Trial balance"),
        ("/finance/statement", "月度对账单", "Monthly statement"),
        ("/finance/balances", "余额（任意时点）", "Balances as of"),
        ("/finance/charts", "图表", "Charts"),
        ("/finance/chain", "哈希链校验", "Chain check"),
        ("/finance/events", "事件浏览", "Events"),
    ];
    let path = here.split('?').next().unwrap_or(here);
    let section = |name: &str, links: &[(&'static str, &'static str, &'static str)]| {
        html! {
            h2 { (name) }
            ul {
                @for (href, zh, en) in links {
                    li { a href=(href) aria-current=[(path == *href).then_some("page")] { (l.t(zh, en)) } }
                }
            }
        }
    };
    html! {
        @match user.role() {
            ledger_core::Role::Partner => { (section(l.t("伙伴账务", "Partner"), partner_links)) }
            ledger_core::Role::Admin => {
                (section(l.t("运营", "Operations"), operator_links))
                (section(l.t("财务与审计", "Finance and audit"), finance_links))
                (section(l.t("伙伴视图", "Partner views"), &partner_links[..10]))
            }
            _ => {
                (section(l.t("财务与审计", "Finance and audit"), finance_links))
                (section(l.t("伙伴视图", "Partner views"), &partner_links[..5]))
            }
        }
    }
}

/// A money object as text: `1,234.50 CNY`.
pub fn money(v: &Value) -> String {
    if v.is_null() {
        return "—".into();
    }
    let amount = v.get("amount").and_then(Value::as_str).unwrap_or("0");
    let currency = v.get("currency").and_then(Value::as_str).unwrap_or("");
    format!("{} {currency}", group_digits(amount))
}

/// `1234567.5` → `1,234,567.5`.
pub fn group_digits(amount: &str) -> String {
    let (sign, rest) = amount.strip_prefix('-').map_or(("", amount), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A string field of a JSON value ("" when missing).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The hidden fields every form carries: the CSRF token and a fresh request id (a form sent
/// twice acts once: the API's idempotency key).
pub fn form_guard(user: &User) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(user.csrf);
        input type="hidden" name="request_id" value={ "console-" (session::random_hex(12)) };
    }
}

/// A labelled input: the label names it for screen readers and a click focuses it.
pub fn field(id: &str, label: &str, input: Markup) -> Markup {
    html! { div.field { label for=(id) { (label) } (input) } }
}

/// The page refusing a form whose CSRF token is wrong (nothing done).
pub fn csrf_refused(ctx: &Ctx) -> Response {
    let l = ctx.lang;
    let r = api::Refusal {
        status: StatusCode::FORBIDDEN,
        code: "CSRF".into(),
        message: String::new(),
        details: Value::Null,
    };
    let mut response = page(
        ctx,
        l.t("表单无效", "Form refused"),
        Some(&Notice::Refused(r)),
        html! {
            p { a href="/" { (l.t("返回首页", "Back to the start page")) } }
        },
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// Whether a form carries this session's CSRF token.
/// What a page or form handler answers: the page (`Ok`), or the page that refuses it, the
/// sign-in page for a visitor without a session, or the form's page again with the API's
/// refusal (`Err`); both are pages, `?` answers the second early.
pub type Answer = Result<Response, Response>;

/// The signed-in user, else the sign-in page (and back here afterwards).
#[allow(clippy::result_large_err)] // the page answering the visitor, built once per request
pub fn signed_in(ctx: &Ctx) -> Result<User, Response> {
    ctx.user.clone().ok_or_else(|| partner::sign_in_first(ctx))
}

/// A form's user and fields: signed in, and the form's CSRF token its session's (else
/// refused): what every form handler checks first.
#[allow(clippy::result_large_err)] // as signed_in
pub fn form_user(ctx: &Ctx, fields: Vec<(String, String)>) -> Result<(User, Fields), Response> {
    let user = signed_in(ctx)?;
    let fields = Fields(fields);
    if !csrf_ok(&user, &fields) {
        return Err(csrf_refused(ctx));
    }
    Ok((user, fields))
}

/// A form's write through the API, which every form handler ends with: once stored, on to
/// `done` (the page that says what was done); refused, the form's page again with the
/// refusal (`again`).
pub async fn form_write<F: std::future::Future<Output = Response>>(
    console: &Console,
    user: &User,
    fields: &Fields,
    (method, uri, body): (axum::http::Method, &str, Option<&Value>),
    done: &str,
    again: impl FnOnce(Notice) -> F,
) -> Answer {
    match console.write(user, method, uri, body, fields).await {
        Ok(_) => Ok(axum::response::Redirect::to(done).into_response()),
        Err(r) => Err(again(Notice::Refused(r)).await),
    }
}

pub fn csrf_ok(user: &User, fields: &Fields) -> bool {
    fields.get("csrf").is_some_and(|t| session::same(t, &user.csrf))
}

/// A raw-HTML escape hatch is never needed: maud escapes every value. Kept to make the one
/// inline SVG (charts) explicit.
pub fn svg(markup: String) -> Markup {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(group_digits("1234567.50"), "1,234,567.50");
        assert_eq!(group_digits("-1000"), "-1,000");
        assert_eq!(group_digits("999.9"), "999.9");
        assert_eq!(money(&serde_json::json!({"amount": "12000.5", "currency": "CNY"})), "12,000.5 CNY");
        assert_eq!(money(&Value::Null), "—");
    }
}
