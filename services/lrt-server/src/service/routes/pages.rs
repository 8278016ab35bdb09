//! `/api/v1/pages`: the LRT consult pages with their delivery state and every attempt;
//! acknowledge a page; put a dead-lettered page back in the outbox. Authenticated like the rest
//! of `/api/v1` (a trusted issuer's JWT with `aud` = `{public_base_url}/api/v1`). A caller sees
//! and acts on the pages of its own tenant's evaluations only (a quality issuer on all); another
//! tenant's page is 404, as if it did not exist.

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
use crate::service::paging::outbox;
use crate::service::routes::{list_limit, one_of};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/pages", get(list))
        .route("/api/v1/pages/{id}", get(one))
        .route("/api/v1/pages/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/pages/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    patient: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    one_of(
        "state",
        q.state.as_deref(),
        &["pending", "delivered", "dead"],
    )?;
    let limit = list_limit(q.limit)?;
    let rows = outbox::pages(
        &state.pool,
        q.patient.as_deref(),
        q.state.as_deref(),
        limit,
        &tenancy,
    )
    .await?;
    Ok(Json(json!({ "pages": rows })))
}

fn page_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound("no such page".into()))
}

async fn one(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    found(&state, page_id(&id)?, &tenancy).await
}

async fn found(state: &AppState, id: Uuid, tenancy: &Tenancy) -> Result<Json<Value>, ApiError> {
    let page = outbox::page(&state.pool, id, tenancy)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such page".into()))?;
    Ok(Json(
        serde_json::to_value(page).map_err(ApiError::internal)?,
    ))
}

/// Marks the page as acknowledged by the caller (the JWT's `sub`); idempotent.
async fn acknowledge(
    State(state): State<AppState>,
    ApiCaller {
        client,
        tenancy,
        person,
    }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = page_id(&id)?;
    // Another tenant's page is not found (checked before anything changes).
    if outbox::page(&state.pool, id, &tenancy).await?.is_none() {
        return Err(ApiError::NotFound("no such page".into()));
    }
    let by = person.as_deref().or(client
        .as_ref()
        .and_then(|c| c.sub.as_deref().or(Some(c.iss.as_str()))));
    if !outbox::acknowledge(&state.pool, id, by).await? {
        return Err(ApiError::NotFound("no such page".into()));
    }
    found(&state, id, &tenancy).await
}

/// Puts the page's dead-lettered deliveries back in the outbox, due now, with a new horizon.
async fn retry(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = page_id(&id)?;
    let page = outbox::page(&state.pool, id, &tenancy)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such page".into()))?;
    let horizon = state.pager.as_ref().map_or(Duration::from_secs(3600), |p| {
        Duration::from_secs(p.config.horizon_s)
    });
    let revived = outbox::retry_dead(&state.pool, id, horizon).await?;
    if revived == 0 {
        return Err(ApiError::Conflict(format!(
            "page {id} has no dead-lettered delivery (state {})",
            page.state
        )));
    }
    if let Some(pager) = &state.pager {
        pager.wake.notify_one();
    }
    Ok(Json(json!({"page_id": id, "requeued_deliveries": revived})))
}
