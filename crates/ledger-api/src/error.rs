//! Errors as docs/API.md fixes them: `{"error_code", "error_msg", "request_id"}` with 400 for bad
//! input, 401, 403, 404, 409 for business rules and concurrency, 413/415 for bodies, 503
//! while projections lag. Bad input never becomes a 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger_app::AppError;
use ledger_core::CoreError;
use ledger_domain::DomainError;
use ledger_projections::ProjectionError;
use ledger_store::StoreError;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Extra structure for the client (e.g. every blocker of a payment request).
    pub details: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.to_string(), message: message.into(), details: None, request_id: None }
    }

    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", format!("invalid {field}: {reason}"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// Not yours: says nothing about whether the thing exists.
    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "not permitted for this credential")
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} not found"))
    }

    /// An error by its code, with the status docs/API.md gives that code.
    pub fn coded(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(status_of_code(code), code, message)
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

tokio::task_local! {
    /// The `X-Request-Id` of the request being served, so that every error carries it
    /// without each handler passing it along.
    pub static REQUEST_ID: Option<String>;
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.request_id.is_none() {
            self.request_id = REQUEST_ID.try_with(Clone::clone).ok().flatten();
        }
        let mut body = json!({"error_code": self.code, "error_msg": self.message, "request_id": self.request_id});
        if let Some(d) = self.details {
            body["details"] = d;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

fn status_of_code(code: &str) -> StatusCode {
    match code {
        // Not bad input: the command does not fit the thing's current state (a rule, 409).
        "INVALID_STATE" => StatusCode::CONFLICT,
        c if c.starts_with("INVALID_") || c == "CURRENCY_MISMATCH" => StatusCode::BAD_REQUEST,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "PROJECTION_LAGGING" | "STORE_UNAVAILABLE" | "STORE_CLOSED" => StatusCode::SERVICE_UNAVAILABLE,
        "STORE_CORRUPT" | "PROJECTION_FAILED" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let details = match &e {
            DomainError::PaymentBlocked(blockers) => Some(json!({"blockers": blockers})),
            _ => None,
        };
        let mut err = ApiError::new(status_of_code(e.code()), e.code(), e.to_string());
        err.details = details;
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::Backend(_) | StoreError::Corrupt { .. }) {
            tracing::error!(error = %e, "store failure");
        }
        ApiError::new(status_of_code(e.code()), e.code(), e.to_string())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => d.into(),
            AppError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "application failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.code(), other.to_string())
            }
        }
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        if !matches!(e, ProjectionError::Lagging { .. }) {
            tracing::error!(error = %e, "projection failure");
        }
        ApiError::new(status_of_code(e.code()), e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_statuses_of_api_md() {
        assert_eq!(status_of_code("INVALID_AMOUNT"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of_code("INVALID_MONTH"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of_code("INSUFFICIENT_BALANCE"), StatusCode::CONFLICT);
        assert_eq!(status_of_code("INVALID_STATE"), StatusCode::CONFLICT);
        assert_eq!(status_of_code("CONCURRENCY_CONFLICT"), StatusCode::CONFLICT);
        assert_eq!(status_of_code("IDEMPOTENCY_CONFLICT"), StatusCode::CONFLICT);
        assert_eq!(status_of_code("NOT_FOUND"), StatusCode::NOT_FOUND);
        assert_eq!(status_of_code("PROJECTION_LAGGING"), StatusCode::SERVICE_UNAVAILABLE);
    }
}
