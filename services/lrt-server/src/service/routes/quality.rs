//! `/api/v1/quality/…`: the quality team's aggregates ([`crate::service::quality`]). Authenticated
//! and scoped like the rest of `/api/v1` ([`ApiCaller`]): a caller counts the rows of its own
//! issuer and tenant, a quality issuer every tenant's. Each handler parses the query string into
//! a [`QualityQuery`] (a bad value is a 400 naming the parameter) and answers JSON, or CSV (one
//! long table, [`quality::csv`]) when the `Accept` header names `text/csv`.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde::Serialize;

use crate::service::auth::{ApiCaller, Tenancy};
use crate::service::error::ApiError;
use crate::service::quality::{self, QualityQuery, RawQuery};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/quality/alerts", get(alerts))
        .route("/api/v1/quality/feedback", get(feedback))
        .route("/api/v1/quality/consults", get(consults))
        .route("/api/v1/quality/shadow", get(shadow))
        .route("/api/v1/quality/patients", get(patients))
        .route("/api/v1/quality/data-quality", get(data_quality))
}

type QueryString = Result<Query<RawQuery>, QueryRejection>;

/// The aggregate's parameters: a bad value is a 400 naming the parameter.
fn parameters(query: QueryString, tenancy: Tenancy) -> Result<QualityQuery, ApiError> {
    let Query(raw) = query?;
    Ok(QualityQuery::parse(&raw, tenancy, Utc::now())?)
}

/// Whether the `Accept` header names `text/csv` (any quality value: the caller asked for it).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| range.split(';').next())
        .any(|media| media.trim().eq_ignore_ascii_case("text/csv"))
}

/// The aggregate as JSON, or as CSV when asked for.
fn answer(headers: &HeaderMap, aggregate: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_value(aggregate).map_err(ApiError::internal)?;
    if wants_csv(headers) {
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            )],
            quality::csv::long_table(&json),
        )
            .into_response());
    }
    Ok(Json(json).into_response())
}

async fn alerts(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    answer(&headers, &quality::alerts::alerts(&state.pool, &q).await?)
}

async fn feedback(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    answer(
        &headers,
        &quality::feedback::feedback(&state.pool, &q).await?,
    )
}

async fn consults(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    answer(
        &headers,
        &quality::consults::consults(&state.pool, &q).await?,
    )
}

async fn patients(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    answer(
        &headers,
        &quality::patients::patients(&state.pool, &q).await?,
    )
}

async fn data_quality(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    answer(
        &headers,
        &quality::data_quality::data_quality(&state.pool, &q).await?,
    )
}

/// The shadow comparison lists the disagreeing pairs: `cursor` and `limit` apply.
async fn shadow(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let Query(raw) = query?;
    let (q, paging) = QualityQuery::parse_listing(&raw, tenancy, Utc::now())?;
    answer(
        &headers,
        &quality::shadow::shadow(&state.pool, &q, &paging).await?,
    )
}
