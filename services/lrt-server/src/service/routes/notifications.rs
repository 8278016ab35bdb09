//! `/api/v1/subscription-notifications`: the Subscription inbox (issue 8, "no trigger lost"):
//! every notification received, its state (`pending`, `done`, `dead`), attempts, last error and
//! the evaluations it gave; a dead notification can be put back. Notifications come from the
//! EHR, not from a tenant's CDS client: only a quality issuer (or a service without
//! authentication) sees them; any other caller sees an empty list, and 404 for one.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::auth::{ApiCaller, Tenancy};
use crate::service::error::ApiError;
use crate::service::inbox::store;
use crate::service::routes::{list_limit, one_of};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/subscription-notifications", get(list))
        .route("/api/v1/subscription-notifications/{id}", get(one))
        .route("/api/v1/subscription-notifications/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    one_of("state", q.state.as_deref(), &["pending", "done", "dead"])?;
    let limit = list_limit(q.limit)?;
    let rows = if tenancy == Tenancy::All {
        store::list(&state.pool, q.state.as_deref(), limit).await?
    } else {
        Vec::new()
    };
    Ok(Json(json!({ "notifications": rows })))
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such notification".into())
}

async fn found(
    state: &AppState,
    id: &str,
    tenancy: &Tenancy,
) -> Result<store::NotificationRow, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    if *tenancy != Tenancy::All {
        return Err(not_found());
    }
    store::one(&state.pool, id).await?.ok_or_else(not_found)
}

async fn one(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = found(&state, &id, &tenancy).await?;
    Ok(Json(serde_json::to_value(row).map_err(ApiError::internal)?))
}

/// Puts a dead notification back in the inbox, due now, with a new horizon.
async fn retry(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = found(&state, &id, &tenancy).await?;
    let horizon = Duration::from_secs(state.config.ehr.inbox.horizon_s);
    if !store::retry_dead(&state.pool, row.id, horizon).await? {
        return Err(ApiError::Conflict(format!(
            "notification {} is not dead (state {})",
            row.id, row.state
        )));
    }
    state.inbox_wake.notify_one();
    Ok(Json(json!({"notification_id": row.id, "state": "pending"})))
}
