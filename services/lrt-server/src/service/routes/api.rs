//! `/api/v1`: what the quality dashboard reads. Evaluations (newest first, by patient or role),
//! one evaluation with its snapshot, assessment and the response sent, and the rule-set versions
//! in use. Authenticated like the CDS Hooks calls (a trusted issuer's JWT whose `aud` is
//! `{public_base_url}/api/v1`).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::auth::authenticate;
use crate::service::error::ApiError;
use crate::service::state::AppState;
use crate::service::store;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluations", get(list))
        .route("/api/v1/evaluations/{id}", get(one))
        .route("/api/v1/rulesets", get(rulesets))
}

fn audience(state: &AppState) -> String {
    format!("{}/api/v1", state.config.base())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    patient: Option<String>,
    role: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &audience(&state)).await?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(role) = &q.role
        && role != "active"
        && role != "shadow"
    {
        return Err(ApiError::BadRequest(format!(
            "role must be active or shadow, not {role:?}"
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    let rows =
        store::evaluations(&state.pool, q.patient.as_deref(), q.role.as_deref(), limit).await?;
    Ok(Json(json!({ "evaluations": rows })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &audience(&state)).await?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such evaluation".into()))?;
    let (row, snapshot, assessment, response) = store::evaluation(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such evaluation".into()))?;
    let mut v = serde_json::to_value(row).map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut v {
        map.insert("snapshot".into(), snapshot);
        map.insert("assessment".into(), assessment);
        map.insert("response".into(), response);
    }
    Ok(Json(v))
}

async fn rulesets(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &audience(&state)).await?;
    let describe = |r: &lrt_engine::RuleSet| json!({"label": r.label(), "sha256": r.sha256});
    Ok(Json(json!({
        "active": describe(&state.rules),
        "shadow": state.shadow.as_deref().map(describe),
    })))
}
