//! `/api/v1/quality/…`: the quality team's aggregates ([`crate::service::quality`]). Authenticated
//! and scoped like the rest of `/api/v1` ([`ApiCaller`]): a caller counts the rows of its own
//! issuer and tenant, a quality issuer every tenant's. Each handler parses the query string into
//! a [`QualityQuery`] (a bad value is a 400 naming the parameter) and answers JSON.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::Utc;

use crate::service::auth::ApiCaller;
use crate::service::error::ApiError;
use crate::service::quality::{self, QualityQuery, RawQuery};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/quality/alerts", get(alerts))
        .route("/api/v1/quality/feedback", get(feedback))
        .route("/api/v1/quality/consults", get(consults))
        .route("/api/v1/quality/shadow", get(shadow))
}

/// The aggregate's parameters: a bad value is a 400 naming the parameter.
fn parameters(
    query: Result<Query<RawQuery>, QueryRejection>,
    tenancy: crate::service::auth::Tenancy,
) -> Result<QualityQuery, ApiError> {
    let Query(raw) = query?;
    Ok(QualityQuery::parse(&raw, tenancy, Utc::now())?)
}

async fn alerts(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<quality::alerts::Alerts>, ApiError> {
    let q = parameters(query, tenancy)?;
    Ok(Json(quality::alerts::alerts(&state.pool, &q).await?))
}

async fn feedback(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<quality::feedback::Feedback>, ApiError> {
    let q = parameters(query, tenancy)?;
    Ok(Json(quality::feedback::feedback(&state.pool, &q).await?))
}

async fn consults(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<quality::consults::Consults>, ApiError> {
    let q = parameters(query, tenancy)?;
    Ok(Json(quality::consults::consults(&state.pool, &q).await?))
}

/// The shadow comparison lists the disagreeing pairs: `cursor` and `limit` apply.
async fn shadow(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<RawQuery>, QueryRejection>,
) -> Result<Json<quality::shadow::Shadow>, ApiError> {
    let Query(raw) = query?;
    let (q, paging) = QualityQuery::parse_listing(&raw, tenancy, Utc::now())?;
    Ok(Json(
        quality::shadow::shadow(&state.pool, &q, &paging).await?,
    ))
}
