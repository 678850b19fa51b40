//! Credentials (docs/API.md, Authentication): issue, list, revoke; admin only. Each write
//! goes through the executor under the request's `X-Request-Id`, and the lookup tables are
//! made those of the stored book after it, so a revoked credential is refused at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_core::envelope::format_time;
use ledger_core::Role;
use ledger_domain::credential::{self, Credential, CredentialRole, Credentials, IssueCredential};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{new_credential_id, sha256_hex};
use crate::error::ApiError;
use crate::http::{written, Caller, JsonBody, Written};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    role: CredentialRole,
    partner_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Who it is issued to; the actor of what it writes shows it.
    name: Option<String>,
}

/// `POST /v1/credentials`: the secrets are shown in the answer, and again to a replay of the
/// same request (they follow from the credential's id); only their hash is stored.
pub async fn issue(State(state): State<Arc<AppState>>, caller: Caller, body: JsonBody<CredentialRequest>) -> Written {
    caller.require(&[Role::Admin])?;
    let req = body.value;
    let credential_id = new_credential_id();
    let secrets = state.credentials.secrets_of(&credential_id);
    let command = IssueCredential {
        credential_id,
        role: req.role,
        partner_id: req.partner_id,
        token_sha256: sha256_hex(&secrets.token),
        access_key: secrets.access_key.clone(),
        expires_at: req.expires_at,
        name: req.name,
    };
    let ctx = state.context(&caller);
    let outcome = state.ledger.issue_credential(&ctx, command).await?;
    let book = state.ledger.credentials().await?;
    state.credentials.sync(&book);
    // A replay names the credential its first request made.
    let credential_id = match &outcome {
        ledger_app::Outcome::Replayed { appended } => {
            let first = state.store.read_all(appended.first_position, 1).await?;
            first
                .first()
                .and_then(|e| serde_json::from_str::<Value>(&e.data).ok())
                .and_then(|d| d["credential_id"].as_str().map(str::to_string))
                .ok_or_else(|| ApiError::invalid("X-Request-Id", "names a write that issued no credential"))?
        }
        _ => secrets.credential_id.clone(),
    };
    let issued = state.ledger.state_after::<Credentials, _>(credential::STREAM, &outcome).await?;
    let credential = issued.get(&credential_id).ok_or_else(|| ApiError::not_found("credential"))?;
    let secrets = state.credentials.secrets_of(&credential_id);
    let mut answer = view(credential);
    answer["token"] = json!(secrets.token);
    answer["secret_key"] = json!(secrets.secret_key);
    Ok(written(&outcome, answer))
}

/// `GET /v1/credentials`: every credential, revoked and expired ones included, no secrets.
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Admin])?;
    let book = state.ledger.credentials().await?;
    let now = Utc::now();
    let items: Vec<Value> = book
        .by_id
        .values()
        .map(|c| {
            let mut v = view(c);
            v["live"] = json!(c.is_live(now));
            v
        })
        .collect();
    Ok(Json(json!({"items": items, "total": items.len()})))
}

/// `POST /v1/credentials/{id}/revoke`: ends the credential at once (revoking twice changes
/// nothing).
pub async fn revoke(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> Written {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let outcome = state.ledger.revoke_credential(&ctx, &id).await?;
    let book = state.ledger.credentials().await?;
    state.credentials.sync(&book);
    let revoked = state.ledger.state_after::<Credentials, _>(credential::STREAM, &outcome).await?;
    let credential = revoked.get(&id).ok_or_else(|| ApiError::not_found("credential"))?;
    Ok(written(&outcome, view(credential)))
}

fn view(c: &Credential) -> Value {
    json!({
        "credential_id": c.credential_id,
        "role": c.role,
        "partner_id": c.partner_id,
        "access_key": c.access_key,
        "expires_at": c.expires_at.map(format_time),
        "revoked_at": c.revoked_at.map(format_time),
        "name": c.name,
    })
}
