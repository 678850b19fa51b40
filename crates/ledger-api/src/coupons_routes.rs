//! Coupon quota, cash coupons, their use and batch reclaim (docs/API.md; the domain's
//! `coupons` aggregate). `GET /v1/coupons` and `/v1/coupons/{id}` come from the `coupons`
//! read model (the status at the time of the read, by the domain's `Coupon::view`) and
//! wait for `?min_position=`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money, Role};
use ledger_domain::coupons::{coupon_view, stream_id as coupon_stream, CouponEvent, Coupons, IssueCoupon, UseCoupon};
use ledger_projections::coupons;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit_routes::check_limit;
use crate::error::ApiError;
use crate::funds_routes::MoneyBody;
use crate::http::{answered_at, wait_for_position, written, Caller, JsonBody, Query, Written};
use crate::incentive_routes::ReadQuery;
use crate::scope::{owner_of, IdKind};
use crate::AppState;

/// `POST /v1/partners/{id}/coupon-quota`.
pub async fn grant_coupon_quota(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner): Path<String>,
    body: JsonBody<MoneyBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let amount = Money::parse_positive(&body.value.amount, &body.value.currency)?;
    let ctx = state.context(&caller);
    let (quota_id, outcome) = state.ledger.grant_coupon_quota(&ctx, &partner, amount).await?;
    let quota =
        state.ledger.state_after::<Coupons, _>(&coupon_stream(&partner), &outcome).await?.quota(amount.currency);
    Ok(written(&outcome, json!({"partner_id": partner, "quota_id": quota_id, "granted": amount, "quota": quota})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueCouponBody {
    coupon_id: String,
    customer_id: String,
    amount: String,
    currency: String,
    expires_at: DateTime<Utc>,
    partner_id: Option<String>,
}

pub async fn issue_coupon(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<IssueCouponBody>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let req = body.value;
    let partner = caller.partner_scope(req.partner_id.as_deref())?;
    let amount = Money::parse_positive(&req.amount, &req.currency)?;
    let ctx = state.context(&caller);
    let command = IssueCoupon {
        partner_id: partner.clone(),
        coupon_id: req.coupon_id.clone(),
        customer_id: req.customer_id,
        amount,
        expires_at: req.expires_at,
        association: None,
    };
    let outcome = state.ledger.issue_coupon(&ctx, command).await?;
    coupon_answer(&state, &outcome, &partner, &req.coupon_id, ctx.now).await
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
    let ctx = state.context(&caller);
    let command = UseCoupon { coupon_id: id.clone(), usage_id: req.usage_id, amount, used_at: req.used_at };
    let outcome = state.ledger.use_coupon(&ctx, &partner, command).await?;
    coupon_answer(&state, &outcome, &partner, &id, ctx.now).await
}

/// A coupon as the write left it, its status at the time of the write (a retry under the
/// request id answers the same).
async fn coupon_answer(
    state: &AppState,
    outcome: &ledger_app::Outcome<CouponEvent>,
    partner: &str,
    coupon_id: &str,
    now: DateTime<Utc>,
) -> Written {
    let coupons = state.ledger.state_after::<Coupons, _>(&coupon_stream(partner), outcome).await?;
    let at = answered_at(state, outcome, now).await?;
    let view = coupon_view(&coupons, coupon_id, at).ok_or_else(|| ApiError::not_found("coupon"))?;
    Ok(written(outcome, serde_json::to_value(view).expect("serialises")))
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
    pub(crate) partner_id: Option<String>,
    pub(crate) offset: Option<u64>,
    pub(crate) limit: Option<u64>,
    pub(crate) min_position: Option<u64>,
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

/// The batch form `{coupon_ids}` (docs/API.md) or the vendor SDK's single form `{coupon_id,
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
            return crate::vendor::coupons::reclaim_one(&state, &caller, one, req.indirect_partner_id.as_deref()).await;
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
    let ctx = state.context(&caller);
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
