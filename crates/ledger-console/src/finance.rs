//! Finance and audit: the trial balance, a partner's monthly statement (with its CSV),
//! balances as of any time, charts, the hash-chain check and the event browser. Each is the
//! API's read, as the signed-in user; the charts aggregate the same read models.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ledger_core::Role;
use maud::html;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::api::{enc, query, Refusal};
use crate::charts::{self, Series};
use crate::partner::{param, partner_chooser, partner_of, scope_param, sign_in_first, Params};
use crate::{field, money, page, s, Console, Notice, St};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/finance/trial-balance", get(trial_balance))
        .route("/finance/statement", get(statement))
        .route("/finance/statement.csv", get(statement_csv))
        .route("/finance/balances", get(balances))
        .route("/finance/charts", get(charts_page))
        .route("/finance/chain", get(chain))
        .route("/finance/events", get(events))
}

/// A date (`2026-07-31`, the end of that day in China Standard Time) or an RFC 3339 time.
fn as_of_param(v: &str) -> String {
    if v.contains('T') {
        v.to_string()
    } else {
        format!("{v}T23:59:59+08:00")
    }
}

async fn trial_balance(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("试算平衡", "Trial balance");
    let as_of = param(&params, "as_of").map(as_of_param);
    let uri = format!("/v1/trial-balance{}", query(&[("as_of", as_of.as_deref())]));
    let form = html! {
        form.card.noprint method="get" action="/finance/trial-balance" {
            div.fields {
                (field("as_of", l.t("截至日期（空为现在）", "As of (blank: now)"), html! { input #as_of name="as_of" type="date" value=(param(&params, "as_of").unwrap_or_default()); }))
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
    };
    let tb = match console.get(&user, &uri).await {
        Ok(v) => v,
        Err(r) => return page(&ctx, title, Some(&Notice::Refused(r)), form),
    };
    let balanced = tb["balanced"].as_bool().unwrap_or(false);
    let body = html! {
        (form)
        p #balanced data-balanced=(balanced) {
            @if balanced { span.ok { (l.t("借贷平衡：每个币种借方合计 = 贷方合计。", "Balanced: debits equal credits in every currency.")) } }
            @else { span.bad { (l.t("不平衡！", "NOT balanced!")) } }
        }
        table #trial-balance {
            thead { tr { th { (l.t("币种", "Currency")) } th.num { (l.t("借方合计", "Debits")) } th.num { (l.t("贷方合计", "Credits")) } } }
            tbody {
                @for c in tb["currencies"].as_array().into_iter().flatten() {
                    tr { td { (s(c, "currency")) } td.num { (amount_text(&c["debits"])) } td.num { (amount_text(&c["credits"])) } }
                }
            }
        }
    };
    page(&ctx, title, None, body)
}

/// A money object or a bare decimal string.
fn amount_text(v: &Value) -> String {
    match v {
        Value::String(a) => crate::group_digits(a),
        Value::Object(_) => money(v),
        Value::Number(n) => n.to_string(),
        _ => "—".into(),
    }
}

use crate::session::Ctx;

async fn statement(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("月度对账单", "Monthly statement");
    let chooser = partner_chooser(l, &user, "/finance/statement", &params);
    if partner_of(&user, &params).is_none() {
        return page(&ctx, title, None, chooser);
    }
    let month = param(&params, "month")
        .map(str::to_string)
        .unwrap_or_else(|| ledger_core::Month::of(chrono::Utc::now()).prev().to_string());
    let currency = param(&params, "currency").unwrap_or("CNY").to_string();
    let scope = scope_param(&user, &params);
    let q = query(&[("currency", Some(&currency)), ("partner_id", scope.as_deref())]);
    let form = html! {
        form.card.noprint method="get" action="/finance/statement" {
            div.fields {
                (field("month", l.t("月份", "Month"), html! { input #month name="month" value=(month) pattern="[0-9]{4}-[0-9]{2}"; }))
                (field("currency", l.t("币种", "Currency"), crate::partner::currency_select("currency", &currency)))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
    };
    let st = match console.get(&user, &format!("/v1/statements/{}{q}", enc(&month))).await {
        Ok(v) => v,
        Err(r) => return page(&ctx, title, Some(&Notice::Refused(r)), html! { (chooser) (form) }),
    };
    let csv_link = format!(
        "/finance/statement.csv{}",
        query(&[("month", Some(&month)), ("currency", Some(&currency)), ("partner_id", scope.as_deref())])
    );
    let body = html! {
        (chooser) (form)
        p { a href=(csv_link) download { (l.t("下载 CSV", "Download CSV")) } }
        @for a in st["accounts"].as_array().into_iter().flatten() {
            section.card {
                h2 { code { (s(a, "account")) } }
                table {
                    thead { tr { th { (l.t("项目", "Line")) } th { (l.t("方向", "Direction")) } th.num { (l.t("金额", "Amount")) } } }
                    tbody {
                        tr { td { (l.t("期初", "Opening")) } td {} td.num { (money(&a["opening"])) } }
                        @for m in a["movements"].as_array().into_iter().flatten() {
                            tr { td { (s(m, "kind")) } td { (if s(m, "direction") == "in" { l.t("收入", "in") } else { l.t("支出", "out") }) } td.num { (money(&m["amount"])) } }
                        }
                        tr { th { (l.t("期末", "Closing")) } th {} th.num { (money(&a["closing"])) } }
                    }
                }
            }
        }
        @if st["accounts"].as_array().is_none_or(|a| a.is_empty()) { p { (l.t("本月没有账户变动。", "No account moved this month.")) } }
        @for d in st["carried_deductions"].as_array().into_iter().flatten() {
            p { (l.t("结转扣减", "Carried deduction")) " " (s(d, "payment_id")) " " (s(d, "quarter")) ": " (money(&d["amount"])) }
        }
    };
    page(&ctx, title, None, body)
}

async fn statement_csv(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let month = param(&params, "month").unwrap_or_default().to_string();
    let scope = scope_param(&user, &params);
    let uri = format!(
        "/v1/statements/{}{}",
        enc(&month),
        query(&[("currency", param(&params, "currency")), ("partner_id", scope.as_deref()), ("format", Some("csv"))])
    );
    let answer = console.call(&user, axum::http::Method::GET, &uri, None, None).await;
    match answer.into_result() {
        Ok(Value::String(csv)) => {
            let name = format!("statement-{}-{month}.csv", partner_of(&user, &params).unwrap_or_default());
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", name.replace('"', ""))),
                ],
                csv,
            )
                .into_response()
        }
        Ok(other) => page(&ctx, "CSV", None, html! { pre { (other.to_string()) } }),
        Err(r) => page(&ctx, "CSV", Some(&Notice::Refused(r)), html! {}),
    }
}

async fn balances(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("余额（任意时点）", "Balances as of a time");
    let chooser = partner_chooser(l, &user, "/finance/balances", &params);
    if partner_of(&user, &params).is_none() {
        return page(&ctx, title, None, chooser);
    }
    let scope = scope_param(&user, &params);
    let as_of = param(&params, "as_of").map(as_of_param);
    let form = html! {
        form.card.noprint method="get" action="/finance/balances" {
            div.fields {
                (field("as_of", l.t("截至日期（空为现在）", "As of (blank: now)"), html! { input #as_of name="as_of" type="date" value=(param(&params, "as_of").unwrap_or_default()); }))
                @if let Some(p) = &scope { input type="hidden" name="partner_id" value=(p); }
                button type="submit" { (l.t("查询", "Show")) }
            }
        }
    };
    let uri = format!("/v1/balances{}", query(&[("as_of", as_of.as_deref()), ("partner_id", scope.as_deref())]));
    let b = match console.get(&user, &uri).await {
        Ok(v) => v,
        Err(r) => return page(&ctx, title, Some(&Notice::Refused(r)), html! { (chooser) (form) }),
    };
    let body = html! {
        (chooser) (form)
        p.small { (l.t("截至 ", "As of ")) (s(&b, "as_of")) }
        table #balances {
            thead { tr { th { (l.t("账户", "Account")) } th.num { (l.t("余额", "Balance")) } } }
            tbody {
                @for x in b["balances"].as_array().into_iter().flatten() {
                    tr { td { code { (s(x, "account")) } } td.num { (money(&x["balance"])) } }
                }
            }
        }
    };
    page(&ctx, title, None, body)
}

// ---------------------------------------------------------------- charts

async fn charts_page(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("图表", "Charts");
    // A partner sees its own; admin and auditor all partners, or the one they name.
    let partner = match user.role() {
        Role::Partner => user.principal.partner_id.clone(),
        _ => param(&params, "partner_id").map(str::to_string),
    };
    let currency: ledger_core::Currency =
        param(&params, "currency").unwrap_or("CNY").parse().unwrap_or(ledger_core::Currency::CNY);
    let p = partner.clone();
    let months = console
        .app
        .reads
        .read(move |c| {
            let partners = match p {
                Some(p) => vec![p],
                None => ledger_projections::incentive_months::partners(c)?,
            };
            let mut rows = Vec::new();
            for p in partners {
                rows.extend(ledger_projections::incentive_months::views(c, &p, None)?.into_iter().map(|(m, _)| m));
            }
            Ok(rows)
        })
        .await;
    let months = match months {
        Ok(m) => m,
        Err(e) => {
            let e = ledger_api::ApiError::from(e);
            let r = Refusal { status: e.status, code: e.code, message: e.message, details: Value::Null };
            return page(&ctx, title, Some(&Notice::Refused(r)), html! {});
        }
    };
    // Accrued, finalized and paid per month, in one currency.
    let mut per_month: BTreeMap<String, [Decimal; 3]> = BTreeMap::new();
    for m in months.iter().filter(|m| m.currency == currency) {
        let row = per_month.entry(m.month.to_string()).or_default();
        row[0] += m.accrued.amount;
        let status =
            serde_json::to_value(m.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        if let Some(f) = &m.final_amount {
            if matches!(status.as_str(), "finalized" | "paid") {
                row[1] += f.amount;
            }
            if status == "paid" {
                row[2] += f.amount;
            }
        }
    }
    let labels: Vec<String> = per_month.keys().cloned().collect();
    let series: Vec<Series> = [l.t("累计", "accrued"), l.t("定稿", "finalized"), l.t("已付", "paid")]
        .iter()
        .enumerate()
        .map(|(i, name)| Series { name: name.to_string(), values: per_month.values().map(|r| r[i]).collect() })
        .collect();
    // A fund pool (a distributor's) or received funds (a reseller's) at each month's end.
    let pool = match &partner {
        Some(p) => {
            let owner = format!("partner:{p}");
            let now = chrono::Utc::now();
            let mut month = ledger_core::Month::of(now);
            let mut ends = vec![("now".to_string(), now)];
            for _ in 0..11 {
                month = month.prev();
                ends.push((month.to_string(), month.end()));
            }
            ends.reverse();
            let cur = currency;
            console
                .app
                .reads
                .read(move |c| {
                    let mut points = Vec::new();
                    for (label, at) in ends {
                        let b = ledger_projections::journal::balances(c, &owner, at)?;
                        let v: Decimal = b
                            .iter()
                            .filter(|x| {
                                (x.account.ends_with(":fund_pool") || x.account.ends_with(":fund_received"))
                                    && x.balance.currency == cur
                            })
                            .map(|x| x.balance.amount)
                            .sum();
                        points.push((label, v));
                    }
                    Ok(points)
                })
                .await
                .ok()
        }
        None => None,
    };
    let chooser = if user.is_partner() {
        html! {}
    } else {
        html! {
            form.card.noprint method="get" action="/finance/charts" {
                div.fields {
                    (field("partner_id", l.t("合作伙伴（空为全部）", "Partner (blank: all)"), html! { input #partner_id name="partner_id" value=(partner.clone().unwrap_or_default()); }))
                    (field("currency", l.t("币种", "Currency"), crate::partner::currency_select("currency", currency.as_str())))
                    button type="submit" { (l.t("查看", "Show")) }
                }
            }
        }
    };
    let chart_title = l.t("每月激励：累计、定稿、已付", "Incentive per month: accrued, finalized, paid");
    let body = html! {
        (chooser)
        h2 { (chart_title) " (" (currency.as_str()) ")" }
        div.chart #incentive-chart {
            div.legend { @for (i, s) in series.iter().enumerate() { span class={ "s" (i) } { (s.name) } } }
            (charts::bars(chart_title, &labels, &series))
        }
        @if let Some(points) = &pool {
            @let pool_title = l.t("资金池余额（每月末）", "Fund pool at each month's end");
            h2 { (pool_title) }
            div.chart #pool-chart {
                (charts::line(pool_title, &points.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), &Series { name: "pool".into(), values: points.iter().map(|(_, v)| *v).collect() }))
            }
        } @else {
            p.small { (l.t("输入一个经销商的编号可查看其资金池随时间的变化。", "Name a distributor to see its fund pool over time.")) }
        }
        table.small {
            thead { tr { th { (l.t("月份", "Month")) } @for s in &series { th.num { (s.name) } } } }
            tbody { @for (i, label) in labels.iter().enumerate() { tr { td { (label) } @for s in &series { td.num { (crate::group_digits(&s.values[i].round_dp(2).to_string())) } } } } }
        }
    };
    page(&ctx, title, None, body)
}

// ---------------------------------------------------------------- chain, events

async fn chain(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("哈希链校验", "Hash-chain check");
    let with_anchors = param(&params, "anchors") == Some("stored");
    let uri = if with_anchors { "/v1/audit/verify?anchors=stored" } else { "/v1/audit/verify" };
    let links = html! {
        p.noprint {
            a href="/finance/chain" { (l.t("校验哈希链", "Walk the chain")) } " · "
            a href="/finance/chain?anchors=stored" { (l.t("并核对已签名锚点", "and check the signed anchors")) }
        }
    };
    let v = match console.get(&user, uri).await {
        Ok(v) => v,
        Err(r) => return page(&ctx, title, Some(&Notice::Refused(r)), links),
    };
    let ok = v["ok"].as_bool().unwrap_or(false);
    let body = html! {
        (links)
        p #chain-result data-ok=(ok) {
            @if ok { span.ok { (l.t("哈希链完整：没有被篡改、删除或重排的事件。", "The chain holds: no event was edited, removed or reordered.")) } }
            @else { span.bad { (l.t("哈希链断裂！", "The chain is BROKEN!")) } }
        }
        dl.kv {
            dt { (l.t("已校验事件", "Events checked")) } dd { (v["checked"]) }
            @if !v["first_bad_position"].is_null() { dt { (l.t("第一个异常位置", "First bad position")) } dd { (v["first_bad_position"]) } }
            @if !v["anchors"].is_null() { dt { (l.t("锚点", "Anchors")) } dd { (v["anchors"]) } }
            @if !v["anchored_through"].is_null() { dt { (l.t("锚定至", "Anchored through")) } dd { (v["anchored_through"]) } }
            @if !v["reason"].is_null() { dt { (l.t("原因", "Reason")) } dd { (s(&v, "reason")) } }
        }
        p.small { (l.t(
            "哈希链证明日志与自身一致；能写数据库的人仍可重算整个尾部。签名锚点（密钥不在数据库中）可以防止这一点。",
            "The chain proves the log consistent with itself; whoever can write the database could still re-hash a tail. Signed anchors (a key kept outside the database) guard against that."
        )) }
    };
    page(&ctx, title, None, body)
}

async fn events(State(console): St, ctx: Ctx, Query(params): Query<Params>) -> Response {
    let Some(user) = ctx.user.clone() else { return sign_in_first(&ctx) };
    let l = ctx.lang;
    let title = l.t("事件浏览", "Event browser");
    let from: u64 = param(&params, "from_position").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let limit = 25u64;
    let stream = param(&params, "stream");
    let uri = match stream {
        Some(s) => format!(
            "/v1/streams/{}/events{}",
            enc(s),
            query(&[("from_position", Some(&from.to_string())), ("limit", Some(&limit.to_string()))])
        ),
        None => format!(
            "/v1/events{}",
            query(&[("from_position", Some(&from.to_string())), ("limit", Some(&limit.to_string()))])
        ),
    };
    let form = html! {
        form.card.noprint method="get" action="/finance/events" {
            div.fields {
                (field("stream", l.t("流（空为全局日志）", "Stream (blank: the global log)"), html! { input #stream name="stream" value=(stream.unwrap_or_default()) placeholder="incentives-P00001"; }))
                (field("from_position", l.t("起始位置 / 版本", "From position / version"), html! { input #from_position name="from_position" type="number" min="1" value=(from); }))
                button type="submit" { (l.t("查看", "Show")) }
            }
        }
    };
    let v = match console.get(&user, &uri).await {
        Ok(v) => v,
        Err(r) => return page(&ctx, title, Some(&Notice::Refused(r)), form),
    };
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let total = v["total"].as_u64().unwrap_or(0);
    let next = from + limit;
    let body = html! {
        (form)
        p.small { (l.t("共 ", "Total ")) (total) }
        table #events {
            thead { tr {
                th { (l.t("位置", "Position")) } th { (l.t("流 / 版本", "Stream / version")) } th { (l.t("类型", "Type")) }
                th { (l.t("时间", "Time")) } th { (l.t("操作者", "Actor")) } th { (l.t("数据", "Data")) } th { (l.t("哈希", "Hash")) }
            } }
            tbody {
                @for e in &items {
                    tr {
                        td.num { (e["position"]) }
                        td { a href={ "/finance/events?stream=" (enc(s(e, "stream"))) } { (s(e, "stream")) } " #" (e["version"]) }
                        td { (s(e, "type")) } td { (s(e, "occurred_at")) }
                        td { (e["actor"].get("principal").and_then(Value::as_str).unwrap_or_default()) }
                        td { pre.json { (event_data(e)) } }
                        td { code.small { (s(e, "hash").get(..12).unwrap_or_default()) "…" } }
                    }
                }
            }
        }
        nav.pager {
            @if from > 1 {
                a rel="prev" href={ "/finance/events" (query(&[("stream", stream), ("from_position", Some(&from.saturating_sub(limit).max(1).to_string()))])) } { (l.t("上一页", "Previous")) }
            }
            @if next <= total {
                a rel="next" href={ "/finance/events" (query(&[("stream", stream), ("from_position", Some(&next.to_string()))])) } { (l.t("下一页", "Next")) }
            }
        }
    };
    page(&ctx, title, None, body)
}

/// An event's data as indented JSON (the store may hand it as text or as an object).
fn event_data(e: &Value) -> String {
    match &e["data"] {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.clone()),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}
