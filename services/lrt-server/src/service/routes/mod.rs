//! Routes grouped by resource: [`hooks`] (CDS Hooks discovery, calls and feedback), [`api`]
//! (`/api/v1`: evaluations and rule sets for the quality dashboard), [`pages`] (`/api/v1/pages`:
//! the LRT consult pages), [`subscription`] (FHIR Subscription notifications) and
//! [`notifications`] (their inbox on `/api/v1`), [`quality`] (`/api/v1/quality/…`: the quality
//! team's aggregates), [`health`] (liveness,
//! readiness, metrics, the OpenAPI document).

pub mod api;
pub mod health;
pub mod hooks;
pub mod notifications;
pub mod pages;
pub mod quality;
pub mod subscription;

use super::error::ApiError;

/// A list's `limit` query parameter: 1 to 1000, 100 when absent.
pub fn list_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest("limit must be 1 to 1000".into()))
    }
}

/// A query parameter that must be one of `allowed` when given.
pub fn one_of(name: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::BadRequest(format!(
            "{name} must be one of {}, not {v:?}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Any other path: 404 with an OperationOutcome.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// A low-cardinality label for a path (metrics and logs never carry ids).
pub fn route_label(path: &str) -> &'static str {
    let mut parts = path.trim_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("cds-services"), None, ..) => "/cds-services",
        (Some("cds-services"), Some(_), None, _) => "/cds-services/{id}",
        (Some("cds-services"), Some(_), Some("feedback"), None) => "/cds-services/{id}/feedback",
        (Some("api"), Some("v1"), Some("evaluations"), None) => "/api/v1/evaluations",
        (Some("api"), Some("v1"), Some("evaluations"), Some(_)) => "/api/v1/evaluations/{id}",
        (Some("api"), Some("v1"), Some("rulesets"), _) => "/api/v1/rulesets",
        (Some("api"), Some("v1"), Some("pages"), None) => "/api/v1/pages",
        (Some("api"), Some("v1"), Some("quality"), Some(aggregate)) => match aggregate {
            "alerts" => "/api/v1/quality/alerts",
            "feedback" => "/api/v1/quality/feedback",
            "consults" => "/api/v1/quality/consults",
            "shadow" => "/api/v1/quality/shadow",
            "patients" => "/api/v1/quality/patients",
            "data-quality" => "/api/v1/quality/data-quality",
            "validation" => "/api/v1/quality/validation",
            "measures" if path.trim_matches('/').split('/').nth(4).is_some() => {
                "/api/v1/quality/measures/{id}"
            }
            "measures" => "/api/v1/quality/measures",
            _ => "other",
        },
        (Some("api"), Some("v1"), Some("subscription-notifications"), None) => {
            "/api/v1/subscription-notifications"
        }
        (Some("api"), Some("v1"), Some("subscription-notifications"), Some(_)) => {
            if path.trim_end_matches('/').ends_with("/retry") {
                "/api/v1/subscription-notifications/{id}/retry"
            } else {
                "/api/v1/subscription-notifications/{id}"
            }
        }
        (Some("api"), Some("v1"), Some("pages"), Some(_)) => {
            match path.trim_matches('/').rsplit('/').next() {
                Some("acknowledge") => "/api/v1/pages/{id}/acknowledge",
                Some("retry") => "/api/v1/pages/{id}/retry",
                _ => "/api/v1/pages/{id}",
            }
        }
        (Some("fhir"), Some("subscription-notification"), None, _) => {
            "/fhir/subscription-notification"
        }
        (Some("health"), Some("live"), None, _) => "/health/live",
        (Some("health"), Some("ready"), None, _) => "/health/ready",
        (Some("metrics"), None, ..) => "/metrics",
        (Some("dashboard"), None, ..) => "/dashboard",
        (Some("dashboard"), Some("evaluations"), Some(_), _) => "/dashboard/evaluations/{id}",
        (Some("dashboard"), Some("assets"), Some(_), _) => "/dashboard/assets/{file}",
        (Some("dashboard"), Some("validation"), None, _) => "/dashboard/validation",
        (Some("dashboard"), Some("session"), None, _) => "/dashboard/session",
        (Some("dashboard"), Some("login"), None, _) => "/dashboard/login",
        (Some("dashboard"), Some("callback"), None, _) => "/dashboard/callback",
        (Some("dashboard"), Some("logout"), None, _) => "/dashboard/logout",
        (Some("openapi.yaml"), None, ..) => "/openapi.yaml",
        _ => "other",
    }
}
