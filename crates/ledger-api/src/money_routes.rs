//! Money movement (docs/API.md): fund pools, allocations and reclaims with their adjustment
//! records, coupons and their batch reclaim, rebate withdrawals, and cloud lab points.
//!
//! Reads come from the read models in `projections/` and wait for `?min_position=`:
//! adjustment records from `adjustments`, `GET /v1/coupons` and `/v1/coupons/{id}` from
//! `coupons` (the status at the time of the read, by the domain's `Coupon::view`),
//! `GET /v1/withdrawals/{id}` from `withdrawals`. `GET /v1/withdrawals/withdrawable` is the
//! exception: it is the balance that guards the withdrawal rule, so it is computed by the
//! domain from the partner's rebate stream, the state the next request is decided on
//! (docs/DESIGN.md). Lab points are still read from their stream. A write answers from the
//! stream state its command was decided on.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_app::funds::AdjustmentDirection;
use ledger_core::{Currency, Money, Role};
use ledger_domain::coupons::coupon_view;
use ledger_domain::funds::{AdjustmentKind, Counterparty, CounterpartyType};
use ledger_domain::lab_points::{GrantLabPoints, LabPointsCommand, RejectLabPoints, ResubmitLabPoints};
use ledger_domain::rebate::{
    ApproveWithdrawal, MarkWithdrawalFailed, MarkWithdrawalPaid, RebateCommand, RejectWithdrawal,
};
use ledger_projections::adjustments::{self, AdjustmentFilter};
use ledger_projections::{coupons, withdrawals};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit_routes::check_limit;
use crate::error::ApiError;
use crate::http::{wait_for_position, written, Caller, JsonBody, Query};
use crate::incentive_routes::ReadQuery;
use crate::registry_routes::BankAccountInput;
use crate::scope::{owner_of, IdKind};
use crate::vendor::{blank, time_filter};
use crate::AppState;

type Written = Result<(StatusCode, Json<Value>), ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyBody {
    amount: String,
    currency: String,
}

/// `POST /v1/partners/{id}/funds`: the vendor credits a distributor's pool.
pub async fn credit_funds(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner): Path<String>,
    body: JsonBody<MoneyBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let amount = Money::parse_positive(&body.value.amount, &body.value.currency)?;
    let ctx = state.context(&caller, &body.raw);
    let outcome = state.ledger.credit_funds(&ctx, &partner, amount).await?;
    let pool = state.ledger.funds(&partner).await?.pool(amount.currency);
    Ok(written(&outcome, json!({"partner_id": partner, "credited": amount, "pool": pool})))
}

/// `POST /v1/partners/{id}/coupon-quota`.
pub async fn grant_coupon_quota(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner): Path<String>,
    body: JsonBody<MoneyBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let amount = Money::parse_positive(&body.value.amount, &body.value.currency)?;
    let ctx = state.context(&caller, &body.raw);
    let (quota_id, outcome) = state.ledger.grant_coupon_quota(&ctx, &partner, amount).await?;
    let quota = state.ledger.coupons(&partner).await?.quota(amount.currency);
    Ok(written(&outcome, json!({"partner_id": partner, "quota_id": quota_id, "granted": amount, "quota": quota})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    counterparty: CounterpartyInput,
    amount: String,
    currency: String,
    remark: Option<String>,
    /// Admin only: the partner acting.
    partner_id: Option<String>,
}

/// docs/API.md `counterparty: {type, id}`, unknown fields refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterpartyInput {
    #[serde(rename = "type")]
    kind: CounterpartyType,
    id: String,
}

async fn adjust(
    state: &AppState,
    caller: &Caller,
    direction: AdjustmentDirection,
    body: JsonBody<AdjustmentBody>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let req = body.value;
    let counterparty = Counterparty { kind: req.counterparty.kind, id: req.counterparty.id };
    let operator = caller.partner_scope(req.partner_id.as_deref())?;
    let amount = Money::parse_positive(&req.amount, &req.currency)?;
    let ctx = state.context(caller, &body.raw);
    let (record_id, outcome) =
        state.ledger.adjust(&ctx, direction, &operator, counterparty.clone(), amount, req.remark.clone()).await?;
    Ok(written(
        &outcome,
        json!({
            "record_id": record_id,
            "kind": match direction { AdjustmentDirection::Allocate => "allocate", AdjustmentDirection::Reclaim => "reclaim" },
            "operator_partner_id": operator,
            "counterparty": counterparty,
            "amount": amount,
            "occurred_at": ledger_core::envelope::format_time(ctx.now),
            "remark": req.remark,
            "actor": ctx.meta.actor.principal,
        }),
    ))
}

pub async fn allocate(State(state): State<Arc<AppState>>, caller: Caller, body: JsonBody<AdjustmentBody>) -> Written {
    adjust(&state, &caller, AdjustmentDirection::Allocate, body).await
}

pub async fn reclaim(State(state): State<Arc<AppState>>, caller: Caller, body: JsonBody<AdjustmentBody>) -> Written {
    adjust(&state, &caller, AdjustmentDirection::Reclaim, body).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentQuery {
    kind: Option<String>,
    counterparty_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
    partner_id: Option<String>,
    min_position: Option<u64>,
}

/// A number parameter; blank is none.
fn count_param(field: &str, value: Option<String>) -> Result<Option<u64>, ApiError> {
    blank(value).map(|v| v.trim().parse().map_err(|_| ApiError::invalid(field, "must be a whole number"))).transpose()
}

/// A partner sees the records of DOMAIN §3's visibility rule; admin and auditor see all,
/// or one partner's view with `partner_id`. A blank parameter is no filter.
pub async fn adjustment_records(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<AdjustmentQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = check_limit(&caller, count_param("limit", q.limit)?)? as usize;
    let offset = count_param("offset", q.offset)?.unwrap_or(0) as usize;
    let kind = blank(q.kind)
        .map(|k| {
            serde_json::from_value::<AdjustmentKind>(json!(k.trim()))
                .map_err(|_| ApiError::invalid("kind", "must be allocate, reclaim or unbind_reclaim"))
        })
        .transpose()?;
    let filter = AdjustmentFilter {
        kind,
        counterparty_id: blank(q.counterparty_id),
        from: time_filter("from", q.from)?,
        to: time_filter("to", q.to)?,
        ..AdjustmentFilter::default()
    };
    let partner_id = blank(q.partner_id);
    let viewer = match (caller.principal.role, &partner_id) {
        (Role::Partner, _) | (_, Some(_)) => Some(caller.partner_scope(partner_id.as_deref())?),
        _ => None,
    };
    let parent = match &viewer {
        Some(v) => state.ledger.partner(v).await?.profile.and_then(|p| p.parent_id),
        None => None,
    };
    wait_for_position(&state, q.min_position).await?;
    let (items, total) = state
        .reads
        .read(move |c| adjustments::list(c, viewer.as_deref().map(|v| (v, parent.as_deref())), &filter, offset, limit))
        .await?;
    Ok(Json(json!({"items": items, "total": total})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueCoupon {
    coupon_id: String,
    customer_id: String,
    amount: String,
    currency: String,
    expires_at: DateTime<Utc>,
    partner_id: Option<String>,
}

pub async fn issue_coupon(State(state): State<Arc<AppState>>, caller: Caller, body: JsonBody<IssueCoupon>) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let req = body.value;
    let partner = caller.partner_scope(req.partner_id.as_deref())?;
    let amount = Money::parse_positive(&req.amount, &req.currency)?;
    let ctx = state.context(&caller, &body.raw);
    let outcome = state
        .ledger
        .issue_coupon(&ctx, &partner, req.coupon_id.clone(), req.customer_id, amount, req.expires_at)
        .await?;
    let coupons = state.ledger.coupons(&partner).await?;
    let view = coupon_view(&coupons, &req.coupon_id, ctx.now).ok_or_else(|| ApiError::not_found("coupon"))?;
    Ok(written(&outcome, serde_json::to_value(view).expect("serialises")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponUsage {
    usage_id: String,
    amount: String,
    currency: Option<String>,
    used_at: DateTime<Utc>,
}

/// Billing reports a coupon's use (admin).
pub async fn use_coupon(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<CouponUsage>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let partner = owner_of(&state, &caller, IdKind::Coupon, &id).await?;
    let coupons = state.ledger.coupons(&partner).await?;
    let currency = coupons.coupons.get(&id).map_or(Currency::CNY, |c| c.amount.currency);
    let req = body.value;
    let amount = Money::parse_positive(&req.amount, req.currency.as_deref().unwrap_or(currency.as_str()))?;
    let ctx = state.context(&caller, &body.raw);
    let outcome = state.ledger.use_coupon(&ctx, &partner, id.clone(), req.usage_id, amount, req.used_at).await?;
    let view = coupon_view(&*state.ledger.coupons(&partner).await?, &id, ctx.now)
        .ok_or_else(|| ApiError::not_found("coupon"))?;
    Ok(written(&outcome, serde_json::to_value(view).expect("serialises")))
}

pub async fn get_coupon(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    owner_of(&state, &caller, IdKind::Coupon, &id).await?;
    wait_for_position(&state, q.min_position).await?;
    let view = state
        .reads
        .read(move |c| coupons::view(c, &id, Utc::now()))
        .await?
        .ok_or_else(|| ApiError::not_found("coupon"))?;
    Ok(Json(serde_json::to_value(view).expect("serialises")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    partner_id: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    min_position: Option<u64>,
}

pub async fn list_coupons(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let limit = check_limit(&caller, q.limit)? as usize;
    wait_for_position(&state, q.min_position).await?;
    let offset = q.offset.unwrap_or(0) as usize;
    let (items, total) = state.reads.read(move |c| coupons::page(c, &partner, Utc::now(), offset, limit)).await?;
    Ok(Json(json!({"items": items, "total": total})))
}

/// The batch form `{coupon_ids}` (API.md) or the vendor SDK's single form `{coupon_id,
/// indirect_partner_id?}` (ReclaimPartnerCouponsReq: 204, no body).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReclaimBatch {
    coupon_ids: Option<Vec<String>>,
    coupon_id: Option<String>,
    indirect_partner_id: Option<String>,
    partner_id: Option<String>,
}

/// `POST /v2/promotions/benefits/partner-coupons/reclaim`: item by item.
pub async fn reclaim_coupons(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<ReclaimBatch>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let req = body.value;
    let coupon_ids = match (req.coupon_ids, req.coupon_id) {
        (None, Some(one)) if req.partner_id.is_none() => {
            return crate::vendor::coupons::reclaim_one(
                &state,
                &caller,
                &body.raw,
                one,
                req.indirect_partner_id.as_deref(),
            )
            .await;
        }
        (Some(ids), None) if req.indirect_partner_id.is_none() => ids,
        _ => {
            return Err(ApiError::invalid(
                "body",
                "send either {coupon_ids: [..]} or {coupon_id, indirect_partner_id?}",
            ))
        }
    };
    caller.require(&[Role::Partner, Role::Admin])?;
    let partner = caller.partner_scope(req.partner_id.as_deref())?;
    let max = ledger_domain::coupons::MAX_RECLAIM_BATCH;
    if coupon_ids.is_empty() || coupon_ids.len() > max {
        return Err(ApiError::invalid("coupon_ids", format!("must hold 1 to {max} coupon ids")));
    }
    let ctx = state.context(&caller, &body.raw);
    let (results, outcome) = state.ledger.reclaim_coupons(&ctx, &partner, coupon_ids).await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| match (r.reclaimed, r.error_code) {
            (Some(amount), _) => json!({"coupon_id": r.coupon_id, "status": "success", "reclaimed": amount}),
            (None, code) => {
                json!({"coupon_id": r.coupon_id, "status": "failed", "error_code": code, "error_msg": r.error_msg})
            }
        })
        .collect();
    Ok(written(&outcome, json!({"results": results})).into_response())
}

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
    let rebate = state.ledger.rebate(partner).await?;
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
    let ctx = state.context(&caller, &body.raw);
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
    reason: Option<String>,
    comment: Option<String>,
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
    let (req, raw) = body.map_or((ReasonBody::default(), Default::default()), |b| (b.value, b.raw));
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
    let ctx = state.context(&caller, &raw);
    let outcome = state.ledger.withdrawal_step(&ctx, &partner, command).await?;
    withdrawal_answer(&state, &outcome, &partner, &id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabPointsBody {
    points: u32,
    partner_id: Option<String>,
}

async fn lab_points_answer<E>(state: &AppState, outcome: &ledger_app::Outcome<E>, partner: &str, id: &str) -> Written {
    let lab = state.ledger.lab_points(partner).await?;
    let app = lab.application(id).ok_or_else(|| ApiError::not_found("lab point application"))?;
    let mut v = serde_json::to_value(app).expect("serialises");
    v["balance"] = json!(ledger_domain::lab_points::balance(&lab));
    Ok(written(outcome, v))
}

pub async fn apply_lab_points(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<LabPointsBody>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let partner = caller.partner_scope(body.value.partner_id.as_deref())?;
    let ctx = state.context(&caller, &body.raw);
    let (id, outcome) = state.ledger.apply_lab_points(&ctx, &partner, body.value.points).await?;
    lab_points_answer(&state, &outcome, &partner, &id).await
}

/// `PUT /v1/lab-points/{id}`: edit a rejected application and submit it again.
pub async fn resubmit_lab_points(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<LabPointsBody>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let partner = owner_of(&state, &caller, IdKind::LabPoints, &id).await?;
    let ctx = state.context(&caller, &body.raw);
    let command = LabPointsCommand::ResubmitLabPoints(ResubmitLabPoints {
        application_id: id.clone(),
        points: body.value.points,
    });
    let outcome = state.ledger.lab_points_step(&ctx, &partner, command).await?;
    lab_points_answer(&state, &outcome, &partner, &id).await
}

/// `/v1/lab-points/{id}/{grant|reject}` (admin).
pub async fn lab_points_step(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Option<JsonBody<ReasonBody>>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let partner = owner_of(&state, &caller, IdKind::LabPoints, &id).await?;
    let (req, raw) = body.map_or((ReasonBody::default(), Default::default()), |b| (b.value, b.raw));
    let comment = req.comment.or(req.reason);
    let command = match action.as_str() {
        "grant" => LabPointsCommand::GrantLabPoints(GrantLabPoints { application_id: id.clone(), comment }),
        "reject" => LabPointsCommand::RejectLabPoints(RejectLabPoints { application_id: id.clone(), comment }),
        _ => return Err(ApiError::not_found("route")),
    };
    let ctx = state.context(&caller, &raw);
    let outcome = state.ledger.lab_points_step(&ctx, &partner, command).await?;
    lab_points_answer(&state, &outcome, &partner, &id).await
}

pub async fn list_lab_points(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    wait_for_position(&state, q.min_position).await?;
    let lab = state.ledger.lab_points(&partner).await?;
    let items: Vec<_> = lab.applications.values().collect();
    Ok(Json(json!({"items": items, "total": items.len(), "balance": ledger_domain::lab_points::balance(&lab)})))
}
