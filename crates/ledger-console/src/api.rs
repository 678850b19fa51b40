//! The pages act through the JSON API's own router, called in process (no socket, no HTTP
//! round trip): every write and read a page makes goes through the same authentication,
//! role checks, partner isolation, validation, idempotency and error codes as an API client
//! gets, so the console cannot grant what the API refuses.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// What the API answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// A refusal in the API's error shape.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The answer, or the refusal it is.
    pub fn into_result(self) -> Result<Value, Refusal> {
        if self.ok() {
            return Ok(self.body);
        }
        let text = |k: &str| self.body.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let code = text("error_code");
        Err(Refusal {
            status: self.status,
            code: if code.is_empty() { self.status.as_str().to_string() } else { code },
            message: text("error_msg"),
            details: self.body.get("details").cloned().unwrap_or(Value::Null),
        })
    }

    /// The write's global position, for read-your-writes.
    pub fn position(&self) -> Option<u64> {
        self.body.get("position").and_then(Value::as_u64)
    }
}

/// Calls the API router in process with the signed-in token.
pub async fn call(
    api: &Router,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    request_id: Option<&str>,
) -> Answer {
    let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serialises")).unwrap_or_default();
    let mut req = Request::builder().method(method).uri(uri).header("x-auth-token", token);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json").header(header::CONTENT_LENGTH, bytes.len());
    }
    if let Some(id) = request_id.filter(|id| !id.is_empty()) {
        req = req.header("x-request-id", id);
    }
    let req = match req.body(Body::from(bytes)) {
        Ok(req) => req,
        Err(e) => return internal(format!("request: {e}")),
    };
    let response = match api.clone().oneshot(req).await {
        Ok(response) => response,
        Err(e) => match e {},
    };
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return internal(format!("body: {e}")),
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Answer { status, body }
}

fn internal(message: String) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"error_code": "INTERNAL", "error_msg": message}),
    }
}

/// Percent-encodes a query value or path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string of the non-blank pairs.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.trim().is_empty()).map(|v| format!("{k}={}", enc(v.trim()))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_leave_out_blanks_and_encode() {
        assert_eq!(query(&[("a", Some("x y")), ("b", None), ("c", Some(" "))]), "?a=x%20y");
        assert_eq!(query(&[("b", None)]), "");
        assert_eq!(enc("2026-07:é"), "2026-07%3A%C3%A9");
    }
}
