//! Rebate withdrawals (docs/API.md; the domain's `rebate` aggregate).
//! `GET /v1/withdrawals/{id}` comes from the `withdrawals` read model;
//! `GET /v1/withdrawals/withdrawable` is the exception: it is the balance that guards the
//! withdrawal rule, so it is computed by the domain from the partner's rebate stream, the
//! state the next request is decided on (docs/DESIGN.md).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ledger_core::{Currency, Money, Role};
use ledger_domain::rebate::{
    self as rebate, ApproveWithdrawal, MarkWithdrawalFailed, MarkWithdrawalPaid, Rebate, RebateCommand,
    RejectWithdrawal,
};
use ledger_projections::withdrawals;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{wait_for_position, written, Caller, JsonBody, Query, Written};
use crate::incentive_routes::ReadQuery;
use crate::registry_routes::BankAccountInput;
use crate::scope::{owner_of, IdKind};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawableQuery {
    currency: Option<String>,
    partner_id: Option<String>,
    min_position: Option<u64>,
}

pub async fn withdrawable(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<WithdrawableQuery>,
) -> Result<Json<Money>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let currency: Currency = q.currency.as_deref().unwrap_or("CNY").parse()?;
    wait_for_position(&state, q.min_position).await?;
    Ok(Json(state.ledger.withdrawable(&partner, currency).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    amount: String,
    currency: String,
    bank_account: BankAccountInput,
    partner_id: Option<String>,
}

async fn withdrawal_answer<E>(state: &AppState, outcome: &ledger_app::Outcome<E>, partner: &str, id: &str) -> Written {
    let rebate = state.ledger.state_after::<Rebate, _>(&rebate::stream_id(partner), outcome).await?;
    let w = rebate.withdrawal(id).ok_or_else(|| ApiError::not_found("withdrawal"))?;
    Ok(written(outcome, serde_json::to_value(w).expect("serialises")))
}

pub async fn request_withdrawal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<WithdrawalRequest>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let req = body.value;
    let partner = caller.partner_scope(req.partner_id.as_deref())?;
    let amount = Money::parse_positive(&req.amount, &req.currency)?;
    let ctx = state.context(&caller);
    let (id, outcome) = state.ledger.request_withdrawal(&ctx, &partner, amount, req.bank_account.into()).await?;
    withdrawal_answer(&state, &outcome, &partner, &id).await
}

pub async fn get_withdrawal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    owner_of(&state, &caller, IdKind::Withdrawal, &id).await?;
    wait_for_position(&state, q.min_position).await?;
    let (w, position) =
        state.reads.read(move |c| withdrawals::load(c, &id)).await?.ok_or_else(|| ApiError::not_found("withdrawal"))?;
    let mut v = serde_json::to_value(w).expect("serialises");
    v["position"] = json!(position);
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub(crate) reason: Option<String>,
    pub(crate) comment: Option<String>,
}

/// `/v1/withdrawals/{id}/{approve|reject|paid|failed}` (admin).
pub async fn withdrawal_step(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Option<JsonBody<ReasonBody>>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let partner = owner_of(&state, &caller, IdKind::Withdrawal, &id).await?;
    let req = body.map_or_else(ReasonBody::default, |b| b.value);
    let reason = req.reason.or(req.comment);
    let withdrawal_id = id.clone();
    let command = match action.as_str() {
        "approve" => RebateCommand::ApproveWithdrawal(ApproveWithdrawal {
            withdrawal_id,
            calendar: state.ledger.calendar.clone(),
        }),
        "reject" => RebateCommand::RejectWithdrawal(RejectWithdrawal { withdrawal_id, reason }),
        "paid" => RebateCommand::MarkWithdrawalPaid(MarkWithdrawalPaid { withdrawal_id }),
        "failed" => RebateCommand::MarkWithdrawalFailed(MarkWithdrawalFailed { withdrawal_id, reason }),
        _ => return Err(ApiError::not_found("route")),
    };
    let ctx = state.context(&caller);
    let outcome = state.ledger.withdrawal_step(&ctx, &partner, command).await?;
    withdrawal_answer(&state, &outcome, &partner, &id).await
}
