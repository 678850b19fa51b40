//! Reads of the journal: the trial balance (auditor), a partner's balances as of a time and
//! its monthly statement, as JSON or as CSV for finance staff.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_core::{Currency, Month, Role};
use ledger_projections::journal;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::{wait_for_position, Caller, Query};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    as_of: Option<DateTime<Utc>>,
    partner_id: Option<String>,
    min_position: Option<u64>,
}

pub async fn trial_balance(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<AsOfQuery>,
) -> Result<Json<journal::TrialBalance>, ApiError> {
    caller.require(&[Role::Auditor, Role::Admin])?;
    if q.partner_id.is_some() {
        return Err(ApiError::invalid("partner_id", "the trial balance covers the whole ledger"));
    }
    let as_of = q.as_of;
    wait_for_position(&state, q.min_position).await?;
    Ok(Json(state.reads.read(move |c| journal::trial_balance(c, as_of)).await?))
}

pub async fn balances(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<AsOfQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let partner = crate::scope::partner_or_its_reseller(&state, &caller, q.partner_id.as_deref()).await?;
    let as_of = q.as_of.unwrap_or_else(Utc::now);
    wait_for_position(&state, q.min_position).await?;
    let owner = format!("partner:{partner}");
    let items = state.reads.read(move |c| journal::balances(c, &owner, as_of)).await?;
    Ok(Json(json!({
        "partner_id": partner,
        "as_of": ledger_core::envelope::format_time(as_of),
        "balances": items,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    currency: Option<String>,
    partner_id: Option<String>,
    format: Option<String>,
    min_position: Option<u64>,
}

pub async fn statement(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(month): Path<String>,
    Query(q): Query<StatementQuery>,
) -> Result<Response, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let month: Month = month.parse()?;
    let currency: Currency = q.currency.as_deref().unwrap_or("CNY").parse()?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    wait_for_position(&state, q.min_position).await?;
    let p = partner.clone();
    let statement = state.reads.read(move |c| journal::statement(c, &p, month, currency)).await?;
    if csv {
        let body = statement_csv(&statement);
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(statement).into_response())
}

/// One row per movement, plus an opening and a closing row per account: what a finance
/// clerk pastes into a spreadsheet.
pub fn statement_csv(s: &journal::Statement) -> String {
    let mut out = String::from("partner_id,month,currency,account,line,kind,direction,amount\n");
    for a in &s.accounts {
        let row = |line: &str, kind: &str, dir: &str, amount: &rust_decimal::Decimal| {
            format!(
                "{},{},{},{},{line},{kind},{dir},{}\n",
                s.partner_id,
                s.month,
                s.currency,
                a.account,
                amount.round_dp(2)
            )
        };
        out += &row("opening", "", "", &a.opening.amount);
        for m in &a.movements {
            out += &row("movement", &m.kind, m.direction, &m.amount.amount);
        }
        out += &row("closing", "", "", &a.closing.amount);
    }
    // A deduction carried into a payment paid this month: no account of its own (the
    // months it settles were posted when they were finalized); the payment's id as kind.
    for d in &s.carried_deductions {
        out += &format!(
            "{},{},{},,carried_deduction,{},,{}\n",
            s.partner_id,
            s.month,
            s.currency,
            d.payment_id,
            d.amount.amount.round_dp(2)
        );
    }
    out
}
