//! Cloud lab points (docs/API.md; the domain's `lab_points` aggregate), read from their
//! stream.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ledger_core::Role;
use ledger_domain::lab_points::{
    self, GrantLabPoints, LabPoints, LabPointsCommand, RejectLabPoints, ResubmitLabPoints,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::coupons_routes::ListQuery;
use crate::error::ApiError;
use crate::http::{wait_for_position, written, Caller, JsonBody, Query, Written};
use crate::rebate_routes::ReasonBody;
use crate::scope::{owner_of, IdKind};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabPointsBody {
    points: u32,
    partner_id: Option<String>,
}

async fn lab_points_answer<E>(state: &AppState, outcome: &ledger_app::Outcome<E>, partner: &str, id: &str) -> Written {
    let lab = state.ledger.state_after::<LabPoints, _>(&lab_points::stream_id(partner), outcome).await?;
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
    let ctx = state.context(&caller);
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
    let ctx = state.context(&caller);
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
    let req = body.map_or_else(ReasonBody::default, |b| b.value);
    let comment = req.comment.or(req.reason);
    let command = match action.as_str() {
        "grant" => LabPointsCommand::GrantLabPoints(GrantLabPoints { application_id: id.clone(), comment }),
        "reject" => LabPointsCommand::RejectLabPoints(RejectLabPoints { application_id: id.clone(), comment }),
        _ => return Err(ApiError::not_found("route")),
    };
    let ctx = state.context(&caller);
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
