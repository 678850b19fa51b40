//! The auditor's view (docs/API.md, Auditor): the global log, one stream's history, and the
//! hash-chain walk. Admins may read them too; partners may not.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ledger_core::envelope::ChainVerifier;
use ledger_core::Role;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{Caller, Query};
use crate::AppState;

/// Largest page of a list (docs/API.md: limit ≤ 1000).
pub const MAX_LIMIT: u64 = 1000;
const DEFAULT_LIMIT: u64 = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    from_position: Option<u64>,
    limit: Option<u64>,
}

pub fn check_limit(caller: &Caller, limit: Option<u64>) -> Result<u64, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        l @ 1..=MAX_LIMIT => Ok(l),
        _ => Err(caller.err(ApiError::invalid("limit", format!("must be 1 to {MAX_LIMIT}")))),
    }
}

pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Auditor, Role::Admin])?;
    let limit = check_limit(&caller, q.limit)?;
    let items = state.store.read_all(q.from_position.unwrap_or(1).max(1), limit as usize).await?;
    let total = *state.store.head().borrow();
    Ok(Json(json!({"items": items, "total": total})))
}

pub async fn stream_events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(stream): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Auditor, Role::Admin])?;
    let limit = check_limit(&caller, q.limit)?;
    let version = state.store.stream_version(&stream).await?;
    if version == 0 {
        return Err(caller.err(ApiError::not_found("stream")));
    }
    let items = state.store.read_stream(&stream, q.from_position.unwrap_or(1).max(1), limit as usize).await?;
    Ok(Json(json!({"items": items, "total": version})))
}

pub async fn verify(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Auditor, Role::Admin])?;
    let mut verifier = ChainVerifier::default();
    let mut from = 1;
    loop {
        let batch = match state.store.read_all(from, 5_000).await {
            Ok(b) => b,
            Err(ledger_store::StoreError::Corrupt { position, .. }) => {
                return Ok(Json(json!({"ok": false, "checked": verifier.checked(), "first_bad_position": position})))
            }
            Err(e) => return Err(caller.err(e.into())),
        };
        let Some(last) = batch.last().map(|e| e.position) else { break };
        for e in &batch {
            if let Err(b) = verifier.check(e) {
                return Ok(Json(json!({
                    "ok": false, "checked": verifier.checked(), "first_bad_position": b.position, "reason": b.reason
                })));
            }
        }
        from = last + 1;
    }
    Ok(Json(json!({"ok": true, "checked": verifier.checked()})))
}
