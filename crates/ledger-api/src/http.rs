//! Request plumbing shared by every endpoint: the body limit and JSON-only bodies, the
//! authentication middleware (which must see the raw body to check a signature), the
//! idempotency key from `X-Request-Id`, and `?min_position=` read-your-writes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use ledger_app::fingerprint;
use ledger_core::{Actor, CommandMeta, Role};
use ledger_store::IdempotencyKey;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::signing::RequestParts;
use crate::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest `X-Request-Id`.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest wait of a read for `min_position` (docs/API.md).
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);

/// Buffers the body (bounded), authenticates the caller, and hands both to the handler.
pub async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let request_id = header_str(&parts.headers, "x-request-id");
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let mut e = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            );
            e.request_id = request_id;
            return e.into_response();
        }
    };
    let path = parts.uri.path().to_string();
    let public = matches!(path.as_str(), "/healthz" | "/metrics" | "/openapi.json");
    if !public {
        let headers = parts.headers.clone();
        let lookup = move |name: &str| header_str(&headers, name);
        let req_parts = RequestParts {
            method: parts.method.as_str(),
            path: &path,
            query: parts.uri.query().unwrap_or(""),
            header: &lookup,
            body: &bytes,
        };
        match state.credentials.authenticate(&req_parts, Utc::now()) {
            Ok(principal) => {
                parts.extensions.insert(principal);
            }
            Err(mut e) => {
                e.request_id = request_id;
                return e.into_response();
            }
        }
    }
    crate::error::REQUEST_ID.scope(request_id, next.run(Request::from_parts(parts, Body::from(bytes)))).await
}

pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// What a write route answers: its status and body, or the error.
pub type Written = Result<(StatusCode, axum::Json<serde_json::Value>), ApiError>;

/// The authenticated caller, its request id and the idempotency key of a write.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: Option<String>,
    method: String,
    path: String,
}

impl Caller {
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.principal.role) {
            Ok(())
        } else {
            Err(self.err(ApiError::forbidden()))
        }
    }

    /// The partner whose data a read concerns: a partner reads only its own; admin and
    /// auditor name one with `partner_id`.
    pub fn partner_scope(&self, asked: Option<&str>) -> Result<String, ApiError> {
        match self.principal.role {
            Role::Partner => {
                let own = self.principal.partner_id.clone().ok_or_else(|| self.err(ApiError::forbidden()))?;
                match asked {
                    Some(other) if other != own => Err(self.err(ApiError::forbidden())),
                    _ => Ok(own),
                }
            }
            _ => asked
                .map(str::to_string)
                .ok_or_else(|| self.err(ApiError::invalid("partner_id", "is required for this credential"))),
        }
    }

    /// Envelope metadata for the events a command appends.
    pub fn meta(&self) -> CommandMeta {
        let mut meta = CommandMeta::new(Actor { principal: self.principal.id.clone(), role: self.principal.role });
        meta.request_id = self.request_id.clone();
        meta
    }

    /// The idempotency key of a write: the caller's request id, scoped to the credential,
    /// with a fingerprint of what the request asked for.
    pub fn idempotency(&self, body: &[u8]) -> Option<IdempotencyKey> {
        let id = self.request_id.as_ref()?;
        Some(IdempotencyKey {
            key: format!("req:{}:{}", self.principal.id, id),
            fingerprint: fingerprint(&[self.method.as_bytes(), self.path.as_bytes(), body]),
        })
    }

    /// Stamps this request's id on an error.
    pub fn err(&self, mut e: ApiError) -> ApiError {
        e.request_id = self.request_id.clone();
        e
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal =
            parts.extensions.get::<Principal>().cloned().ok_or_else(|| ApiError::unauthenticated("no credential"))?;
        let request_id = header_str(&parts.headers, "x-request-id");
        if let Some(id) = &request_id {
            if id.is_empty() || id.len() > MAX_REQUEST_ID || id.chars().any(|c| c.is_control() || c == ':') {
                return Err(ApiError::invalid(
                    "X-Request-Id",
                    format!("must be 1 to {MAX_REQUEST_ID} printable characters"),
                ));
            }
        }
        Ok(Caller { principal, request_id, method: parts.method.to_string(), path: parts.uri.path().to_string() })
    }
}

/// A query string that parses into `T`, else 400 `INVALID_FIELD` in docs/API.md's error shape
/// (axum's own rejection is plain text).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => {
                let mut e = ApiError::invalid("query", rejection.body_text());
                e.request_id = header_str(&parts.headers, "x-request-id");
                Err(e)
            }
        }
    }
}

/// A JSON body: `Content-Type: application/json` (else 415) that parses into `T` (else
/// 400 naming the field).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let request_id = header_str(req.headers(), "x-request-id");
        let with_id = |mut e: ApiError| {
            e.request_id = request_id.clone();
            e
        };
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false);
        if !is_json {
            return Err(with_id(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as Content-Type: application/json",
            )));
        }
        let raw = Bytes::from_request(req, state).await.map_err(|_| {
            with_id(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body too large"))
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&raw);
        let value = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_string() } else { path };
            with_id(ApiError::invalid(&field, e.inner()))
        })?;
        Ok(JsonBody { value, raw })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    /// No body at all is `None` (for actions whose body is optional); any body must be JSON.
    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let empty = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0")
            || (req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(None);
        }
        <JsonBody<T> as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// `?min_position=N`: waits until the projections have applied N.
pub async fn wait_for_position(state: &AppState, min_position: Option<u64>) -> Result<(), ApiError> {
    let Some(position) = min_position else { return Ok(()) };
    let mut applied = state.applied.clone();
    ledger_projections::runner::wait_for(&mut applied, position, MIN_POSITION_WAIT).await.map_err(ApiError::from)
}

/// A write's answer: 201 when it stored events, 200 when it was replayed by its request id
/// or changed nothing; `position` is the global position a read must wait for.
pub fn written<E>(
    outcome: &ledger_app::Outcome<E>,
    mut body: serde_json::Value,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let status = if outcome.is_stored() { StatusCode::CREATED } else { StatusCode::OK };
    if let Some(obj) = body.as_object_mut() {
        obj.insert("position".into(), serde_json::json!(outcome.position()));
    }
    (status, axum::Json(body))
}
