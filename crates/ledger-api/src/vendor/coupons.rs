//! Coupons through the vendor's SDK (docs/DOMAIN.md §4): issue against a quota grant
//! (CreatePartnerCoupons), list the coupons issued (ListIssuedPartnerCoupons), list the
//! quota grants (ListQuotaCoupons), and reclaim one coupon (ReclaimPartnerCoupons, the
//! single form of `POST /v2/promotions/benefits/partner-coupons/reclaim`).
//!
//! The ledger's coupons are cash coupons (代金券): `coupon_type` 1 and quotas of
//! `quota_type` 0, the vendor's defaults. A coupon is active from its issue
//! (`effective_time` = its issue time) and a quota grant does not expire, so
//! `expire_time` is required to issue (the vendor's default is the quota's expiry, which
//! the ledger has not got).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_app::coupons::IssueCoupons;
use ledger_domain::coupons::{quota_balances, Coupon, CouponStatus};
use ledger_projections::coupons;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{acting_for, blank, catch_up, number, page, time_filter, vendor_time, Amount, MEASURE_YUAN};
use crate::error::ApiError;
use crate::http::{Caller, JsonBody, Query};
use crate::AppState;

/// The vendor's coupon type of the ledger's coupons: 代金券 (cash coupon).
pub const COUPON_TYPE_CASH: u8 = 1;
/// The vendor's quota type of the ledger's quotas: 代金券额度.
pub const QUOTA_TYPE_CASH: u8 = 0;
/// Online issue (线上发放).
const FETCH_METHOD_ISSUED: u8 = 3;
/// Electronic (电子券).
const MEDIA_TYPE_ELECTRONIC: u8 = 1;
/// A quota in use (正常).
const QUOTA_STATUS_NORMAL: u8 = 0;

/// The vendor's coupon status codes: 2 usable, 3 used, 4 expired, 5 reclaimed (1, not
/// activated, never happens here).
pub fn status_code(status: CouponStatus) -> u8 {
    match status {
        CouponStatus::Active => 2,
        CouponStatus::UsedUp => 3,
        CouponStatus::Expired => 4,
        CouponStatus::Reclaimed => 5,
    }
}

/// `ReclaimPartnerCouponsReq`: one coupon, 204 when reclaimed, else the item's error.
pub async fn reclaim_one(
    state: &AppState,
    caller: &Caller,
    coupon_id: String,
    indirect_partner_id: Option<&str>,
) -> Result<Response, ApiError> {
    let partner = acting_for(state, caller, indirect_partner_id).await?;
    let ctx = state.context(caller);
    let (results, _) = state.ledger.reclaim_coupons(&ctx, &partner, vec![coupon_id]).await?;
    let result = results.into_iter().next().ok_or_else(|| ApiError::invalid("coupon_id", "is required"))?;
    match result.error_code {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(code) => Err(caller.err(ApiError::coded(&code, result.error_msg.unwrap_or_default()))),
    }
}

/// `CreatePartnerCouponsReq`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupons {
    quota_id: String,
    customer_ids: Vec<String>,
    face_value: Amount,
    valid_time: Option<String>,
    expire_time: Option<String>,
    cloud_service_types: Option<Vec<String>>,
    product_ids: Option<Vec<String>>,
    memo: Option<String>,
    indirect_partner_id: Option<String>,
}

/// Most customers one issue may name (the vendor's batch limit).
pub const MAX_CUSTOMERS: usize = 100;

#[derive(Serialize)]
pub struct CouponInfo {
    id: String,
    coupon_id: String,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    id: String,
    error_code: String,
    error_msg: String,
}

#[derive(Serialize)]
pub struct CreateCouponsAnswer {
    coupon_infos: Vec<CouponInfo>,
    error_details: Vec<ErrorDetail>,
    /// The global position of the last coupon issued (read-your-writes, as on `/v1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
}

/// `POST /v2/promotions/benefits/partner-coupons`: one coupon per customer out of the
/// grant `quota_id`; each customer succeeds or fails on its own (`error_details`).
pub async fn create_coupons(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CreateCoupons>,
) -> Result<Json<CreateCouponsAnswer>, ApiError> {
    let req = body.value;
    let partner = acting_for(&state, &caller, req.indirect_partner_id.as_deref()).await?;
    if req.customer_ids.is_empty() || req.customer_ids.len() > MAX_CUSTOMERS {
        return Err(caller.err(ApiError::invalid("customer_ids", format!("must hold 1 to {MAX_CUSTOMERS} ids"))));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = req.customer_ids.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(caller.err(ApiError::invalid("customer_ids", format!("{dup} appears twice"))));
    }
    if req.cloud_service_types.as_ref().is_some_and(|v| !v.is_empty())
        || req.product_ids.as_ref().is_some_and(|v| !v.is_empty())
    {
        return Err(caller.err(ApiError::invalid(
            "cloud_service_types",
            "the ledger's coupons are not limited to services or products; leave cloud_service_types and product_ids out",
        )));
    }
    if let Some(memo) = &req.memo {
        ledger_core::ids::validate_text("memo", memo, ledger_domain::funds::MAX_REMARK_CHARS)
            .map_err(|e| caller.err(e.into()))?;
    }
    let now = Utc::now();
    if let Some(valid) = time_filter("valid_time", req.valid_time)? {
        if valid > now {
            return Err(caller.err(ApiError::invalid("valid_time", "a coupon is active from its issue: leave it out")));
        }
    }
    let expires_at = time_filter("expire_time", req.expire_time)?.ok_or_else(|| {
        caller.err(ApiError::invalid("expire_time", "is required (the ledger's quotas do not expire)"))
    })?;
    let ctx = state.context(&caller);
    let command = IssueCoupons {
        partner_id: partner,
        quota_id: req.quota_id,
        customer_ids: req.customer_ids,
        amount: req.face_value.money()?.amount,
        expires_at,
    };
    let (results, position) = state.ledger.issue_coupons(&ctx, command).await?;
    let mut answer = CreateCouponsAnswer { coupon_infos: vec![], error_details: vec![], position };
    for r in results {
        match r.coupon_id {
            Some(coupon_id) => answer.coupon_infos.push(CouponInfo { id: r.customer_id, coupon_id }),
            None => answer.error_details.push(ErrorDetail {
                id: r.customer_id,
                error_code: r.error_code.unwrap_or_default(),
                error_msg: r.error_msg.unwrap_or_default(),
            }),
        }
    }
    Ok(Json(answer))
}

/// `ListIssuedPartnerCouponsRequest`: every parameter optional, blank is no filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuedQuery {
    coupon_id: Option<String>,
    customer_id: Option<String>,
    order_id: Option<String>,
    coupon_type: Option<String>,
    status: Option<String>,
    create_time_begin: Option<String>,
    create_time_end: Option<String>,
    effective_time_begin: Option<String>,
    effective_time_end: Option<String>,
    expire_time_begin: Option<String>,
    expire_time_end: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    indirect_partner_id: Option<String>,
    min_position: Option<u64>,
}

/// `IQueryUserPartnerCouponsResultV2`, the fields the ledger has.
#[derive(Serialize)]
pub struct IssuedCoupon {
    coupon_id: String,
    status: u8,
    customer_id: String,
    coupon_type: u8,
    measure_id: u8,
    face_value: Box<RawValue>,
    balance: Box<RawValue>,
    effective_time: String,
    expire_time: String,
    create_time: String,
    media_type: u8,
    fetch_method: u8,
}

#[derive(Serialize)]
pub struct IssuedAnswer {
    total_count: usize,
    user_coupons: Vec<IssuedCoupon>,
}

fn small_int(field: &str, value: Option<String>) -> Result<Option<u8>, ApiError> {
    blank(value).map(|v| v.trim().parse::<u8>().map_err(|_| ApiError::invalid(field, "must be a number"))).transpose()
}

fn within(t: DateTime<Utc>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e)
}

/// `GET /v2/promotions/benefits/partner-coupons`.
pub async fn list_issued(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<IssuedQuery>,
) -> Result<Json<IssuedAnswer>, ApiError> {
    let partner = acting_for(&state, &caller, blank(q.indirect_partner_id).as_deref()).await?;
    let (offset, limit) = page(q.offset, q.limit)?;
    let coupon_type = small_int("coupon_type", q.coupon_type)?;
    let status = small_int("status", q.status)?;
    let (created_from, created_to) =
        (time_filter("create_time_begin", q.create_time_begin)?, time_filter("create_time_end", q.create_time_end)?);
    let (effective_from, effective_to) = (
        time_filter("effective_time_begin", q.effective_time_begin)?,
        time_filter("effective_time_end", q.effective_time_end)?,
    );
    let (expire_from, expire_to) =
        (time_filter("expire_time_begin", q.expire_time_begin)?, time_filter("expire_time_end", q.expire_time_end)?);
    let (coupon_id, customer_id) = (blank(q.coupon_id), blank(q.customer_id));
    // The ledger's coupons come from no order: an order filter matches none.
    let no_order = blank(q.order_id).is_some();
    catch_up(&state, q.min_position).await?;
    let all = state.reads.read(move |c| coupons::all_of(c, &partner)).await?;
    let now = Utc::now();
    let matches = |c: &Coupon| {
        !no_order
            && coupon_type.is_none_or(|t| t == COUPON_TYPE_CASH)
            && coupon_id.as_ref().is_none_or(|id| *id == c.coupon_id)
            && customer_id.as_ref().is_none_or(|id| *id == c.customer_id)
            && status.is_none_or(|s| s == status_code(c.status_at(now)))
            && within(c.issued_at, created_from, created_to)
            && within(c.issued_at, effective_from, effective_to)
            && within(c.expires_at, expire_from, expire_to)
    };
    let matching: Vec<&Coupon> = all.iter().filter(|c| matches(c)).collect();
    let user_coupons = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|c| IssuedCoupon {
            coupon_id: c.coupon_id.clone(),
            status: status_code(c.status_at(now)),
            customer_id: c.customer_id.clone(),
            coupon_type: COUPON_TYPE_CASH,
            measure_id: MEASURE_YUAN,
            face_value: number(c.amount.amount),
            balance: number(c.remaining.max(rust_decimal::Decimal::ZERO)),
            effective_time: vendor_time(c.issued_at),
            expire_time: vendor_time(c.expires_at),
            create_time: vendor_time(c.issued_at),
            media_type: MEDIA_TYPE_ELECTRONIC,
            fetch_method: FETCH_METHOD_ISSUED,
        })
        .collect();
    Ok(Json(IssuedAnswer { total_count: matching.len(), user_coupons }))
}

/// `QueryCouponQuotasReqExt`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaQuery {
    quota_ids: Option<Vec<String>>,
    quota_status_list: Option<Vec<u8>>,
    quota_type: Option<u8>,
    create_time_begin: Option<String>,
    create_time_end: Option<String>,
    effective_time_begin: Option<String>,
    effective_time_end: Option<String>,
    expire_time_begin: Option<String>,
    expire_time_end: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    indirect_partner_id: Option<String>,
}

/// `CouponQuotaV2`, the fields the ledger has.
#[derive(Serialize)]
pub struct QuotaInfo {
    quota_id: String,
    quota_type: u8,
    create_time: String,
    last_update_time: String,
    quota_value: Box<RawValue>,
    quota_status: u8,
    balance: Box<RawValue>,
    measure_id: u8,
    currency: String,
    effective_time: String,
}

#[derive(Serialize)]
pub struct QuotaAnswer {
    total_count: usize,
    quotas: Vec<QuotaInfo>,
}

/// `POST /v2/partners/coupon-quotas/query`: the partner's quota grants, oldest first, each
/// with what is left of it (`quota_balances`: a currency's grants are spent oldest first).
/// Read from the partner's coupon stream, the state the next issue is decided on.
pub async fn list_quotas(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Option<JsonBody<QuotaQuery>>,
) -> Result<Json<QuotaAnswer>, ApiError> {
    let q = body.map(|b| b.value).unwrap_or_default();
    let partner = acting_for(&state, &caller, blank(q.indirect_partner_id).as_deref()).await?;
    let (offset, limit) = page(q.offset, q.limit)?;
    let (created_from, created_to) =
        (time_filter("create_time_begin", q.create_time_begin)?, time_filter("create_time_end", q.create_time_end)?);
    let (effective_from, effective_to) = (
        time_filter("effective_time_begin", q.effective_time_begin)?,
        time_filter("effective_time_end", q.effective_time_end)?,
    );
    // A grant never expires: an expiry filter matches none.
    let expiry_filter = time_filter("expire_time_begin", q.expire_time_begin)?.is_some()
        || time_filter("expire_time_end", q.expire_time_end)?.is_some();
    let ids = q.quota_ids.filter(|v| !v.is_empty());
    let statuses = q.quota_status_list.filter(|v| !v.is_empty());
    let quota_type = q.quota_type.unwrap_or(QUOTA_TYPE_CASH);
    let coupons = state.ledger.coupons(&partner).await?;
    let matching: Vec<QuotaInfo> = quota_balances(&coupons)
        .into_iter()
        .filter(|(g, _)| {
            !expiry_filter
                && quota_type == QUOTA_TYPE_CASH
                && ids.as_ref().is_none_or(|ids| ids.contains(&g.grant_id))
                && statuses.as_ref().is_none_or(|s| s.contains(&QUOTA_STATUS_NORMAL))
                && within(g.granted_at, created_from, created_to)
                && within(g.granted_at, effective_from, effective_to)
        })
        .map(|(g, left)| QuotaInfo {
            quota_id: g.grant_id,
            quota_type: QUOTA_TYPE_CASH,
            create_time: vendor_time(g.granted_at),
            last_update_time: vendor_time(g.granted_at),
            quota_value: number(g.amount.amount),
            quota_status: QUOTA_STATUS_NORMAL,
            balance: number(left.amount),
            measure_id: MEASURE_YUAN,
            currency: g.amount.currency.to_string(),
            effective_time: vendor_time(g.granted_at),
        })
        .collect();
    let total_count = matching.len();
    Ok(Json(QuotaAnswer { total_count, quotas: matching.into_iter().skip(offset).take(limit).collect() }))
}
