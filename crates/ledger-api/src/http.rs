//! Request plumbing shared by every endpoint: the body limits and JSON-only bodies, the
//! authentication middleware (headers first; the raw body only to check a signature), the
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

/// Authenticates the caller from the headers, then reads the body within the limits (size,
/// time, the shared body budget), checks a signature against it, and hands both to the
/// handler. An unknown caller is refused before a byte of its body is read.
pub async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let request_id = header_str(&parts.headers, "x-request-id");
    let limits = &state.limits;
    let path = parts.uri.path().to_string();
    if has_dot_segment(&path) {
        let e = ApiError::invalid("path", "must not hold a '.' or '..' segment");
        return refuse_unread(e, request_id, limits, &parts.headers, body, STRANGER_DRAIN).await;
    }
    if matches!(path.as_str(), "/healthz" | "/metrics" | "/openapi.json") {
        return crate::error::REQUEST_ID.scope(request_id, next.run(Request::from_parts(parts, body))).await;
    }
    // A credential revoked through another node sharing the store is refused from the
    // moment its revocation was acknowledged.
    if let Err(e) = crate::nodes::check_credentials_fresh(&state).await {
        return refuse_unread(e, request_id, limits, &parts.headers, body, STRANGER_DRAIN).await;
    }
    let headers = parts.headers.clone();
    let lookup = move |name: &str| header_str(&headers, name);
    let identified = match state.credentials.identify(&lookup, Utc::now()) {
        Ok(identified) => identified,
        // Perhaps another node issued it a moment ago: look at the stored credentials once.
        Err(e) => match crate::nodes::learn_new_credentials(&state).await {
            Ok(true) => match state.credentials.identify(&lookup, Utc::now()) {
                Ok(identified) => identified,
                Err(e) => return refuse_unread(e, request_id, limits, &parts.headers, body, STRANGER_DRAIN).await,
            },
            Ok(false) => return refuse_unread(e, request_id, limits, &parts.headers, body, STRANGER_DRAIN).await,
            Err(e) => return refuse_unread(e, request_id, limits, &parts.headers, body, STRANGER_DRAIN).await,
        },
    };
    let once_only = crate::auth::once_only(&identified, parts.method.as_str(), parts.uri.path());
    if declared_length(&parts.headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
        return refuse_unread(e, request_id, limits, &parts.headers, body, KNOWN_DRAIN).await;
    }
    let (bytes, _budget) = match read_body(limits, &parts.headers, body).await {
        Ok(read) => read,
        Err(e) => return answer(e, request_id, true),
    };
    let confirmed = {
        let req_parts = RequestParts {
            method: parts.method.as_str(),
            path: &path,
            query: parts.uri.query().unwrap_or(""),
            header: &lookup,
            body: &bytes,
        };
        state.credentials.confirm(identified, &req_parts, Utc::now())
    };
    match confirmed {
        Ok(principal) => {
            parts.extensions.insert(principal);
        }
        Err(e) => return answer(e, request_id, false),
    }
    if let Some(signature) = once_only {
        if let Err(e) = crate::auth::first_receipt(state.store.as_ref(), &signature, Utc::now()).await {
            return answer(e, request_id, false);
        }
    }
    // Only a request with an id is idempotent: the fingerprint is of no use to the others.
    if request_id.is_some() {
        parts.extensions.insert(RequestFingerprint::of(parts.method.as_str(), &path, parts.uri.query(), &bytes));
    }
    // `_budget` is held until the answer is made: the body's bytes count until then.
    crate::error::REQUEST_ID.scope(request_id.clone(), next.run(Request::from_parts(parts, Body::from(bytes)))).await
}

/// Bytes of an unread body discarded before refusing a caller the headers did not identify
/// (a client with a wrong token still reads its 401), and one that did (its 413).
const STRANGER_DRAIN: u64 = 64 * 1024;
const KNOWN_DRAIN: u64 = 4 * MAX_BODY_BYTES as u64;

fn answer(mut e: ApiError, request_id: Option<String>, close: bool) -> Response {
    e.request_id = request_id;
    let mut response = e.into_response();
    if close {
        // The rest of the body is never read: the connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    response
}

/// Refuses a request whose body is not wanted. A body of up to `allowance` bytes is read and
/// thrown away within the body timeout (nothing is kept), so that a client still writing it
/// reads the answer; a larger or slower one is not read, and the connection closes.
async fn refuse_unread(
    e: ApiError,
    request_id: Option<String>,
    limits: &crate::limits::Limits,
    headers: &HeaderMap,
    body: Body,
    allowance: u64,
) -> Response {
    if !has_body(headers) {
        return answer(e, request_id, false);
    }
    if declared_length(headers).is_some_and(|n| n > allowance) {
        return answer(e, request_id, true);
    }
    let drained = async {
        use http_body_util::BodyExt;
        let (mut body, mut seen) = (body, 0u64);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > allowance {
                return false;
            }
        }
        true
    };
    let drained = tokio::time::timeout(limits.config.body_timeout, drained).await.unwrap_or(false);
    answer(e, request_id, !drained)
}

/// A path segment `.` or `..` (also percent-encoded) names something else than it says: no
/// id is one (`ledger_core::ids::validate_id`).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

/// Whether a request announces a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING) || declared_length(headers).is_some_and(|n| n > 0)
}

/// The `Content-Length` (an unreadable one counts as too large: hyper refuses it anyway).
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_LENGTH)?;
    Some(value.to_str().ok().and_then(|v| v.trim().parse().ok()).unwrap_or(u64::MAX))
}

/// The whole body, at most [`MAX_BODY_BYTES`], arrived within the body timeout, with its
/// share of the body budget (held by the caller while the bytes live).
async fn read_body(
    limits: &crate::limits::Limits,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    if !has_body(headers) {
        return Ok((Bytes::new(), None));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
    };
    let timeout = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!("the body did not arrive within {} s", limits.config.body_timeout.as_secs_f64()),
        )
    };
    let deadline = tokio::time::Instant::now() + limits.config.body_timeout;
    let room = declared_length(headers).map_or(MAX_BODY_BYTES, |n| n.min(MAX_BODY_BYTES as u64) as usize);
    let permit = tokio::time::timeout_at(deadline, limits.reserve_body(room)).await.map_err(|_| timeout())?;
    match tokio::time::timeout_at(deadline, collect_body(body, room)).await {
        Err(_) => Err(timeout()),
        Ok(Err(BodyError::TooLarge)) => Err(too_large()),
        Ok(Err(BodyError::Broken(e))) => Err(ApiError::invalid("body", format!("could not be read: {e}"))),
        Ok(Ok(bytes)) => Ok((bytes, Some(permit))),
    }
}

enum BodyError {
    TooLarge,
    Broken(axum::Error),
}

/// The body's bytes in one buffer of the announced size: no regrowth, so a body costs
/// what was reserved for it and no more.
async fn collect_body(body: Body, room: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::with_capacity(room);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Broken)?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// What a request asked for, for idempotency: its method, path, query parameters (in any
/// order) and body as parsed JSON (key order and whitespace do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFingerprint(pub [u8; 32]);

impl RequestFingerprint {
    pub fn of(method: &str, path: &str, query: Option<&str>, body: &[u8]) -> RequestFingerprint {
        let mut params: Vec<&str> = query.unwrap_or("").split('&').filter(|p| !p.is_empty()).collect();
        params.sort_unstable();
        let body = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(value) => canonical_json(&value).into_bytes(),
            // Not JSON (the handler refuses it): its bytes.
            Err(_) => body.to_vec(),
        };
        RequestFingerprint(fingerprint(&[method.as_bytes(), path.as_bytes(), params.join("&").as_bytes(), &body]))
    }
}

/// JSON with object keys sorted and no whitespace: equal for equal documents.
pub fn canonical_json(value: &serde_json::Value) -> String {
    ledger_core::envelope::canonical_json(value)
}

/// What a write route answers: its status and body, or the error.
pub type Written = Result<(StatusCode, axum::Json<serde_json::Value>), ApiError>;

/// The authenticated caller, its request id and the idempotency key of a write.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: Option<String>,
    fingerprint: RequestFingerprint,
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
        let mut meta = CommandMeta::new(Actor { principal: self.principal.actor(), role: self.principal.role });
        meta.request_id = self.request_id.clone();
        meta
    }

    /// The idempotency key of a write: the caller's request id, scoped to the credential,
    /// with a fingerprint of what the request asked for.
    pub fn idempotency(&self) -> Option<IdempotencyKey> {
        let id = self.request_id.as_ref()?;
        Some(IdempotencyKey { key: format!("req:{}:{}", self.principal.id, id), fingerprint: self.fingerprint.0 })
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
        let fingerprint =
            parts.extensions.get::<RequestFingerprint>().copied().unwrap_or_else(|| {
                RequestFingerprint::of(parts.method.as_str(), parts.uri.path(), parts.uri.query(), b"")
            });
        Ok(Caller { principal, request_id, fingerprint })
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
        // Parsed plainly first: tracking the path costs a billing batch a fifth of its
        // parse, and only a body that fails needs it (parsed again to name the field).
        if let Ok(value) = T::deserialize(&mut serde_json::Deserializer::from_slice(&raw)) {
            return Ok(JsonBody { value });
        }
        let de = &mut serde_json::Deserializer::from_slice(&raw);
        let value = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_string() } else { path };
            with_id(ApiError::invalid(&field, e.inner()))
        })?;
        Ok(JsonBody { value })
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
    state.progress.wait_for(position, MIN_POSITION_WAIT).await.map_err(ApiError::from)
}

/// When a write happened: `now`, or for a write replayed by its request id the time its
/// first request stored, so that a replay answers what the first answer said.
pub async fn happened_at<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    now: chrono::DateTime<Utc>,
) -> Result<chrono::DateTime<Utc>, ApiError> {
    let ledger_app::Outcome::Replayed { appended } = outcome else { return Ok(now) };
    let first = state.store.read_all(appended.first_position, 1).await?;
    Ok(first.first().map_or(now, |e| e.occurred_at))
}

/// The instant a write's answer is of (a customer's association in force, a coupon's status):
/// the end of the microsecond the log keeps as the write's time, so that the first call and
/// a replay, which reads that time back from the log, see the same instant, and a change the
/// write made effective at its own time (kept to the nanosecond in its event) is in force.
pub async fn answered_at<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    now: chrono::DateTime<Utc>,
) -> Result<chrono::DateTime<Utc>, ApiError> {
    let at = happened_at(state, outcome, now).await?;
    let micros = chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
    Ok(micros + chrono::TimeDelta::nanoseconds(999))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_also_encoded() {
        for bad in ["/v1/partners/../funds", "/v1/partners/./x", "/v1/partners/%2e%2E/funds", "/v1/partners/%2e"] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for good in ["/v1/partners/P.1/funds", "/v1/partners/.../funds", "/healthz"] {
            assert!(!has_dot_segment(good), "{good}");
        }
    }

    #[test]
    fn a_fingerprint_is_of_the_parsed_request() {
        let a = RequestFingerprint::of("POST", "/v1/x", Some("b=2&a=1"), br#"{"a":1,"b":{"c":[1,2],"d":"e"}}"#);
        let b = RequestFingerprint::of(
            "POST",
            "/v1/x",
            Some("a=1&b=2"),
            b" {\n \"b\" : {\"d\":\"e\", \"c\":[1, 2]},\"a\":1}",
        );
        assert_eq!(a, b, "key order, whitespace and parameter order do not count");
        let other_body =
            RequestFingerprint::of("POST", "/v1/x", Some("a=1&b=2"), br#"{"a":1,"b":{"c":[2,1],"d":"e"}}"#);
        let no_body = RequestFingerprint::of("POST", "/v1/x", Some("a=1&b=2"), b"");
        let other_path =
            RequestFingerprint::of("POST", "/v1/y", Some("a=1&b=2"), br#"{"a":1,"b":{"c":[1,2],"d":"e"}}"#);
        assert!(a != other_body && a != no_body && a != other_path);
    }
}
