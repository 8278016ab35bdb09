//! `/health/live` (the process answers), `/health/ready` (database answers, rule sets loaded, and
//! the trusted issuers' JWK Sets loaded once: [`crate::service::auth::load_jwks`]),
//! `/metrics` (Prometheus text) and `/openapi.yaml`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::service::state::{AppState, Auth};
use crate::service::store;

/// The OpenAPI document of every route, served as written in `openapi/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../../openapi/openapi.yaml");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.yaml", get(openapi))
}

async fn live() -> impl IntoResponse {
    Json(json!({"status": "pass"}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = store::ping(&state.pool).await.is_ok();
    // JWK Sets of trusted issuers not loaded yet (start-up; `auth::load_jwks` retries).
    let jwks_pending = match &*state.auth {
        Auth::Jwt(verifier) => verifier.jwks_pending().len(),
        Auth::InsecureNone => 0,
    };
    let ready = database && jwks_pending == 0;
    let pass = |ok: bool| if ok { "pass" } else { "fail" };
    let body = json!({
        "status": pass(ready),
        "checks": {
            "database": pass(database),
            "jwks": {"status": pass(jwks_pending == 0), "pending": jwks_pending},
            "ruleset": {
                "active": state.rules.label(),
                "sha256": state.rules.sha256,
                "shadow": state.shadow.as_ref().map(|s| s.label()),
            },
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::service::telemetry::render(&state.metrics),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}
