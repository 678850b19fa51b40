//! Fund pools, allocations and reclaims with their adjustment records (docs/API.md;
//! the domain's `funds` aggregate). Adjustment records are read from the `adjustments`
//! read model and wait for `?min_position=`; a write answers from the stream state it left
//! (a retry under its request id, from the same state).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ledger_app::funds::{Adjust, AdjustmentDirection};
use ledger_core::{Money, Role};
use ledger_domain::funds::{self, AdjustmentKind, Counterparty, CounterpartyType, Funds};
use ledger_projections::adjustments::{self, AdjustmentFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit_routes::check_limit;
use crate::error::ApiError;
use crate::http::{happened_at, wait_for_position, written, Caller, JsonBody, Query, Written};
use crate::vendor::{blank, time_filter};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyBody {
    pub(crate) amount: String,
    pub(crate) currency: String,
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
    let ctx = state.context(&caller);
    let outcome = state.ledger.credit_funds(&ctx, &partner, amount).await?;
    let funds = state.ledger.state_after::<Funds, _>(&funds::stream_id(&partner), &outcome).await?;
    let pool = funds.pool(amount.currency);
    Ok(written(&outcome, json!({"partner_id": partner, "credited": amount, "pool": pool})))
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
    let ctx = state.context(caller);
    let command = Adjust {
        direction,
        operator: operator.clone(),
        counterparty: counterparty.clone(),
        amount,
        remark: req.remark.clone(),
    };
    let (record_id, outcome) = state.ledger.adjust(&ctx, command).await?;
    let occurred_at = happened_at(state, &outcome, ctx.now).await?;
    Ok(written(
        &outcome,
        json!({
            "record_id": record_id,
            "kind": match direction { AdjustmentDirection::Allocate => "allocate", AdjustmentDirection::Reclaim => "reclaim" },
            "operator_partner_id": operator,
            "counterparty": counterparty,
            "amount": amount,
            "occurred_at": ledger_core::envelope::format_time(occurred_at),
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
