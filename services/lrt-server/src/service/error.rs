//! One error type for every route, mapped to a status code and a FHIR `OperationOutcome` body
//! (`application/fhir+json`). Messages are written for the caller: they never carry a stack
//! trace, a token or patient data; internal causes are logged (without PHI) and answered with a
//! generic 500/503 text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong, as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or inconsistent.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid JWT. Deliberately without detail (checklist H).
    #[error("unauthorized")]
    Unauthorized,
    /// 403: the caller is known but may not do this (a dashboard request without its CSRF
    /// header, a signed-in person whose claims grant no tenancy).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such service, evaluation or route.
    #[error("{0}")]
    NotFound(String),
    /// 409: the hookInstance was already used for another request.
    #[error("{0}")]
    Conflict(String),
    /// 412: required FHIR data could not be obtained (CDS Hooks §D).
    #[error("{0}")]
    PreconditionFailed(String),
    /// 415: not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: the database or another dependency is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the cause is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine code, stored with the call and used as a metrics label.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "prefetch_unavailable",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The FHIR issue type code of the OperationOutcome.
    fn issue_code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => "invalid",
            ApiError::Unauthorized => "login",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "incomplete",
            ApiError::Unavailable(_) => "transient",
            ApiError::Internal(_) => "exception",
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

/// Whether a database error means "the database cannot answer now" (503, retry later) rather
/// than a fault of the service (500): no connection from the pool, a broken connection, or
/// PostgreSQL's connection-exception (`08…`), operator-intervention (`57P…`: shutdown, crash
/// recovery, cannot connect now) and too-many-connections (`53300`) errors, and a write refused
/// as read-only (`25006`): the connection reached a primary that has just been demoted (a
/// failover or switchover of the high-availability cluster, `deploy/kubernetes/`) or a replica;
/// the pool reconnects through the read-write service and the retry succeeds.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "25006"
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            ApiError::Unavailable("the database is unavailable".into())
        } else {
            ApiError::Internal(format!("database: {e}"))
        }
    }
}

/// A call's group commit: the database's error, or 500 if the writer stopped.
impl From<super::store::group::GroupError> for ApiError {
    fn from(e: super::store::group::GroupError) -> Self {
        match e {
            super::store::group::GroupError::Database(e) => e.into(),
            super::store::group::GroupError::Unavailable(_) => {
                ApiError::Unavailable("the database is unavailable".into())
            }
            stopped @ super::store::group::GroupError::WriterStopped => ApiError::internal(stopped),
        }
    }
}

/// A CDS Hooks request that does not fit its service: 400.
impl From<lrt_hooks::model::RequestError> for ApiError {
    fn from(e: lrt_hooks::model::RequestError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// Feedback that breaks the CDS Hooks rules: 400.
impl From<lrt_hooks::model::FeedbackError> for ApiError {
    fn from(e: lrt_hooks::model::FeedbackError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// A query string that does not parse (unknown or malformed parameter): 400.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(e.body_text())
    }
}

/// Required prefetch data that could not be obtained: 412 (CDS Hooks §D).
impl From<lrt_hooks::prefetch::PrefetchError> for ApiError {
    fn from(e: lrt_hooks::prefetch::PrefetchError) -> Self {
        ApiError::PreconditionFailed(e.to_string())
    }
}

/// An `OperationOutcome` with one issue.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> serde_json::Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Unauthorized = self {
            // "401 Unauthorized without any additional information" (checklist H.33).
            let mut response = status.into_response();
            response.extensions_mut().insert(ErrorCode(self.code()));
            return response;
        }
        let text = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let body = operation_outcome("error", self.issue_code(), &text);
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorCode(self.code()));
        response
    }
}

/// The error code of a response, for the call log and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// The answer to a panic in a handler (tower-http's catch-panic layer): logged without its
/// payload's data beyond the message, answered as a 500 OperationOutcome.
pub fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    ApiError::Internal(format!("panic in a request handler: {message}")).into_response()
}

/// Gives an OperationOutcome body to error responses that were made without one (by a layer
/// or by axum itself: 405, 413, the request timeout's 503, a rejected extractor's plain text).
/// A 401 stays bare (checklist H.33); a FHIR or JSON error body is kept as it is, and so is an
/// HTML page made for a person (the dashboard's failed sign-in).
pub async fn outcome_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || status == StatusCode::UNAUTHORIZED
    {
        return response;
    }
    let made_on_purpose = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.starts_with("text/html"));
    if made_on_purpose {
        return response;
    }
    let (issue, text) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("too-long", "the request body is larger than allowed"),
        StatusCode::METHOD_NOT_ALLOWED => ("not-supported", "method not allowed on this route"),
        StatusCode::SERVICE_UNAVAILABLE => ("timeout", "the request took too long; retry later"),
        StatusCode::NOT_FOUND => ("not-found", "no such route"),
        StatusCode::INTERNAL_SERVER_ERROR => ("exception", "internal error"),
        s if s.is_client_error() => ("invalid", "the request cannot be processed"),
        _ => ("exception", "the service cannot answer now"),
    };
    let (mut parts, body) = response.into_parts();
    // A rejected extractor's plain text says what was wrong with the request: keep it.
    let said = match axum::body::to_bytes(body, 2048).await {
        Ok(b) if status.is_client_error() && status != StatusCode::PAYLOAD_TOO_LARGE => {
            String::from_utf8(b.to_vec())
                .ok()
                .filter(|t| !t.trim().is_empty())
        }
        _ => None,
    };
    let text = said.as_deref().unwrap_or(text);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = operation_outcome("error", issue, text).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}
