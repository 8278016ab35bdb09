//! `/api/v1/quality/…`: the quality team's aggregates ([`crate::service::quality`]). Authenticated
//! and scoped like the rest of `/api/v1` ([`ApiCaller`]): a caller counts the rows of its own
//! issuer and tenant, a quality issuer every tenant's. Each handler parses the query string into
//! a [`QualityQuery`] (a bad value is a 400 naming the parameter) and answers JSON, or CSV (one
//! long table, [`quality::csv`]) when the `Accept` header names `text/csv`. The feedback and
//! consults aggregates also answer a FHIR `MeasureReport` (`Accept: application/fhir+json`) of
//! the published `Measure`s ([`quality::measure`]: `/api/v1/quality/measures[/{id}]`).
//! `POST /api/v1/quality/validation` compares an adjudication file (CSV or JSON rows) with the
//! caller's evaluations ([`quality::validation`]).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Serialize;

use crate::service::auth::{ApiCaller, Tenancy};
use crate::service::error::ApiError;
use crate::service::quality::validation::{self, LookBack, load};
use crate::service::quality::{self, QualityQuery, RawQuery, measure};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/quality/alerts", get(alerts))
        .route("/api/v1/quality/feedback", get(feedback))
        .route("/api/v1/quality/consults", get(consults))
        .route("/api/v1/quality/shadow", get(shadow))
        .route("/api/v1/quality/patients", get(patients))
        .route("/api/v1/quality/data-quality", get(data_quality))
        .route("/api/v1/quality/measures", get(published_measures))
        .route("/api/v1/quality/measures/{id}", get(published_measure))
        .route("/api/v1/quality/validation", post(validate))
}

type QueryString = Result<Query<RawQuery>, QueryRejection>;

/// The aggregate's parameters: a bad value is a 400 naming the parameter.
fn parameters(query: QueryString, tenancy: Tenancy) -> Result<QualityQuery, ApiError> {
    let Query(raw) = query?;
    Ok(QualityQuery::parse(&raw, tenancy, Utc::now())?)
}

/// Whether the `Accept` header names `media` (any quality value: the caller asked for it).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| range.split(';').next())
        .any(|named| named.trim().eq_ignore_ascii_case(media))
}

/// Whether the caller asked for FHIR (a MeasureReport) and not for CSV.
fn wants_fhir(headers: &HeaderMap) -> bool {
    accepts(headers, "application/fhir+json") && !accepts(headers, "text/csv")
}

/// A FHIR resource, as `application/fhir+json`.
fn fhir(resource: serde_json::Value) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        )],
        Json(resource),
    )
        .into_response()
}

/// The aggregate as JSON, or as CSV when asked for.
fn answer(headers: &HeaderMap, aggregate: &impl Serialize) -> Result<Response, ApiError> {
    let json = serde_json::to_value(aggregate).map_err(ApiError::internal)?;
    if accepts(headers, "text/csv") {
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
    let aggregate = quality::feedback::feedback(&state.pool, &q).await?;
    if wants_fhir(&headers) {
        let report = measure::alert_acceptance(state.config.base(), &aggregate, Utc::now());
        return Ok(fhir(report));
    }
    answer(&headers, &aggregate)
}

async fn consults(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: QueryString,
) -> Result<Response, ApiError> {
    let q = parameters(query, tenancy)?;
    let aggregate = quality::consults::consults(&state.pool, &q).await?;
    if wants_fhir(&headers) {
        let report = measure::consult_timeliness(state.config.base(), &aggregate, Utc::now());
        return Ok(fhir(report));
    }
    answer(&headers, &aggregate)
}

/// The published Measures (no tenant data: every `/api/v1` caller reads them).
async fn published_measures(State(state): State<AppState>, _caller: ApiCaller) -> Response {
    fhir(measure::measures(state.config.base()))
}

async fn published_measure(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    measure::measure(state.config.base(), &id)
        .map(fhir)
        .ok_or_else(|| ApiError::NotFound(format!("no such measure: {id:?}")))
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

/// The query string of the validation: the replay run to compare instead of the stored
/// evaluations, and the look-back window.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidationQuery {
    run: Option<String>,
    window: Option<String>,
}

/// The body's media type, without parameters, in lower case.
fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
}

/// `POST /api/v1/quality/validation`: the adjudications (`text/csv`, or `application/json`
/// `{"adjudications": [...]}`) against the caller's stored active evaluations, or a replay
/// run's outcomes (`run`), within the look-back `window` (default 24h).
async fn validate(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    headers: HeaderMap,
    query: Result<Query<ValidationQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let window = match q.window.as_deref() {
        None => LookBack::DEFAULT,
        Some(text) => LookBack::parse(text)
            .map_err(|m| ApiError::BadRequest(format!("query parameter `window`: {m}")))?,
    };
    let origin = match q.run.as_deref() {
        None => load::Origin::Stored,
        Some(text) => load::Origin::Replay(load::parse_run_id(text).ok_or_else(|| {
            ApiError::BadRequest("query parameter `run`: must be a replay run id (a UUID)".into())
        })?),
    };
    let adjudications = match media_type(&headers).as_deref() {
        Some("text/csv") => validation::adjudication::from_csv(&body),
        Some("application/json") => validation::adjudication::from_json(&body),
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "the adjudications must be sent as text/csv or application/json".into(),
            ));
        }
    }
    .map_err(|e| ApiError::BadRequest(format!("adjudications: {e}")))?;
    let (source, calls) = load::calls(&state.pool, &adjudications, window, origin, &tenancy)
        .await
        .map_err(|e| match e {
            load::LoadError::NoSuchRun(run) => ApiError::NotFound(format!("no replay run {run}")),
            load::LoadError::Database(e) => ApiError::from(e),
        })?;
    let result = validation::validate(&adjudications, &calls, window, source);
    Ok(Json(serde_json::to_value(result).map_err(ApiError::internal)?).into_response())
}
