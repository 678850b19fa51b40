//! The auditor's view (docs/API.md, Auditor): the global log, one stream's history, the
//! hash-chain walk and the signed anchors it is checked against. Admins may read them too; partners may not.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use ledger_core::Role;
use ledger_domain::anchors::{self, AnchorEvent, AnchorVerifier, PublicKey};
use ledger_domain::decode;
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

impl EventsQuery {
    /// The page an auditor or admin asks for: from which position (or stream version), how many.
    fn page(&self, caller: &Caller) -> Result<(u64, usize), ApiError> {
        caller.require(&[Role::Auditor, Role::Admin])?;
        Ok((self.from_position.unwrap_or(1).max(1), check_limit(caller, self.limit)? as usize))
    }
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
    let (from, limit) = q.page(&caller)?;
    let items = state.store.read_all(from, limit).await?;
    let total = *state.store.head().borrow();
    Ok(Json(json!({"items": items, "total": total})))
}

pub async fn stream_events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(stream): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, limit) = q.page(&caller)?;
    let version = state.store.stream_version(&stream).await?;
    if version == 0 {
        return Err(caller.err(ApiError::not_found("stream")));
    }
    let items = state.store.read_stream(&stream, from, limit).await?;
    Ok(Json(json!({"items": items, "total": version})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// `stored`: also check the log against the anchors the store holds.
    anchors: Option<String>,
    /// Trusted anchor public keys, comma-separated (default: the server's anchor key).
    public_key: Option<String>,
}

/// The hash-chain walk; with `?anchors=stored`, also every stored anchor's signature (with
/// the key the auditor names, else the server's own anchor key) and the log's hash at each
/// anchored position (`ledger_domain::anchors::verify`).
pub async fn verify(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Auditor, Role::Admin])?;
    // Without anchors the verifier checks the chain alone.
    let (anchors, keys) = match q.anchors.as_deref() {
        None if q.public_key.is_some() => {
            return Err(caller.err(ApiError::invalid("public_key", "checks anchors: add anchors=stored")))
        }
        None => (None, vec![]),
        Some("stored") => {
            (Some(stored_anchors(&state, &caller).await?), trusted_keys(&state, &caller, q.public_key.as_deref())?)
        }
        Some(_) => return Err(caller.err(ApiError::invalid("anchors", "must be stored"))),
    };
    let with_anchors = anchors.is_some();
    let mut verifier = AnchorVerifier::new(anchors.unwrap_or_default(), &keys);
    let mut from = 1;
    loop {
        let batch = match state.store.read_all(from, 5_000).await {
            Ok(b) => b,
            Err(ledger_store::StoreError::Corrupt { position, reason }) => {
                verifier.stop(position, reason);
                break;
            }
            Err(e) => return Err(caller.err(e.into())),
        };
        let Some(last) = batch.last().map(|e| e.position) else { break };
        if !batch.iter().all(|e| verifier.check(e).is_ok()) {
            break;
        }
        from = last + 1;
    }
    let verdict = verifier.finish();
    let mut out = json!({"ok": verdict.ok(), "checked": verdict.checked});
    if let Some(bad) = verdict.first_bad {
        out["first_bad_position"] = bad.position.into();
        out["reason"] = bad.reason.into();
    }
    if with_anchors {
        out["anchors"] = verdict.anchors.into();
        out["anchored_through"] = verdict.anchored_through.into();
        out["public_keys"] = keys.iter().map(ToString::to_string).collect::<Vec<_>>().into();
    }
    Ok(Json(out))
}

fn trusted_keys(state: &AppState, caller: &Caller, named: Option<&str>) -> Result<Vec<PublicKey>, ApiError> {
    match named {
        Some(list) => list
            .split(',')
            .map(|k| k.trim().parse::<PublicKey>().map_err(|e| caller.err(ApiError::invalid("public_key", e))))
            .collect(),
        None => match state.anchor_key {
            Some(key) => Ok(vec![key]),
            None => Err(caller.err(ApiError::invalid(
                "public_key",
                "this server has no anchor key: name the trusted anchor public key (public_key=HEX)",
            ))),
        },
    }
}

/// Every anchor the store holds, in order.
async fn stored_anchors(state: &AppState, caller: &Caller) -> Result<Vec<AnchorEvent>, ApiError> {
    let stream = anchors::stream_id();
    let mut out = Vec::new();
    loop {
        let batch = state
            .store
            .read_stream(&stream, out.len() as u64 + 1, ledger_store::MAX_READ_BATCH)
            .await
            .map_err(|e| caller.err(e.into()))?;
        if batch.is_empty() {
            return Ok(out);
        }
        for e in &batch {
            let anchor = decode::<AnchorEvent>(&e.event_type, e.schema_version, &e.data).map_err(|err| {
                caller.err(ApiError::coded("STORE_CORRUPT", format!("anchor at position {}: {err}", e.position)))
            })?;
            out.push(anchor);
        }
    }
}

/// The signed anchors of the chain, oldest first: each its payload with `type`, its own log
/// `position` and `schema_version`, ready to be kept as an anchors file (one item a line)
/// for `ledger audit verify --anchors`.
pub async fn anchors(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, limit) = q.page(&caller)?;
    let stream = anchors::stream_id();
    let total = state.store.stream_version(&stream).await.map_err(|e| caller.err(e.into()))?;
    let events = state.store.read_stream(&stream, from, limit).await.map_err(|e| caller.err(e.into()))?;
    let mut items = Vec::with_capacity(events.len());
    for e in events {
        let mut item: Value = serde_json::from_str(&e.data).map_err(|err| {
            caller.err(ApiError::coded("STORE_CORRUPT", format!("anchor at position {}: {err}", e.position)))
        })?;
        item["type"] = e.event_type.into();
        item["schema_version"] = e.schema_version.into();
        item["position"] = e.position.into();
        items.push(item);
    }
    let key = state.anchor_key.map(|k| k.to_string());
    Ok(Json(json!({"items": items, "total": total, "anchor_key": key})))
}
