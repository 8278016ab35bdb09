//! `/api/v1`: what the quality dashboard reads. Evaluations (newest first, by patient or role),
//! one evaluation with its snapshot, assessment, the response sent, the feedback on its cards and
//! its LRT page (what the dashboard's evaluation view shows), and the rule-set versions in use.
//! Authenticated like the CDS Hooks calls (a trusted issuer's JWT whose `aud` is
//! `{public_base_url}/api/v1`) or by a dashboard sign-in. Tenancy: a caller reads the evaluations its own issuer and
//! `tenant` created; an issuer of `quality_issuers` reads every tenant's; another tenant's
//! evaluation is 404, as if it did not exist.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::auth::ApiCaller;
use crate::service::error::ApiError;
use crate::service::routes::{list_limit, one_of};
use crate::service::state::AppState;
use crate::service::store;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/evaluations", get(list).post(create))
        .route("/api/v1/evaluations/{id}", get(one))
        .route("/api/v1/rulesets", get(rulesets))
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
    ApiCaller { tenancy, .. }: ApiCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    one_of("role", q.role.as_deref(), &["active", "shadow"])?;
    let limit = list_limit(q.limit)?;
    let rows = store::evaluations(
        &state.pool,
        q.patient.as_deref(),
        q.role.as_deref(),
        limit,
        &tenancy,
    )
    .await?;
    Ok(Json(json!({ "evaluations": rows })))
}

/// `POST /api/v1/evaluations` `{"patient": "Patient/123", "encounter": "Encounter/9"?}`: reads
/// the patient's data from the EHR (`[ehr]`), evaluates, stores and pages as a hook call would.
/// An `Idempotency-Key` header makes a retry return the first evaluation and page no one.
async fn create(
    State(state): State<AppState>,
    ApiCaller { client, person, .. }: ApiCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // An evaluation is stored under the issuer and tenant of the CDS client that asked for it:
    // a dashboard user has none.
    if person.is_some() {
        return Err(ApiError::Forbidden(
            "evaluations are requested by a CDS client with its JWT, not from the dashboard".into(),
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        patient: String,
        encounter: Option<String>,
    }
    let b: Body = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
    let patient = b
        .patient
        .strip_prefix("Patient/")
        .unwrap_or(&b.patient)
        .to_string();
    if !lrt_hooks::model::is_fhir_id(&patient) {
        return Err(ApiError::BadRequest(
            "patient must be a FHIR id or Patient/{id}".into(),
        ));
    }
    let key = match headers.get("idempotency-key") {
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or_else(|| {
                ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible characters".into())
            })?
            .to_string(),
        None => Uuid::new_v4().to_string(),
    };
    let outcome = crate::service::pipeline::ehr::run(
        &state,
        crate::service::pipeline::ehr::Request {
            origin: crate::service::pipeline::ehr::Origin::Api,
            key,
            patient,
            encounter: b
                .encounter
                .map(|e| e.strip_prefix("Encounter/").unwrap_or(&e).to_string()),
            client,
        },
    )
    .await?;
    Ok(Json(
        serde_json::to_value(outcome).map_err(ApiError::internal)?,
    ))
}

async fn one(
    State(state): State<AppState>,
    ApiCaller { tenancy, .. }: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("no such evaluation".into()))?;
    let (row, snapshot, assessment, response) = store::evaluation(&state.pool, id, &tenancy)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such evaluation".into()))?;
    let feedback = store::feedback_of_evaluation(&state.pool, id).await?;
    let page_id = Uuid::new_v5(&id, b"consult-page");
    let page = crate::service::paging::outbox::page(&state.pool, page_id, &tenancy).await?;
    let mut v = serde_json::to_value(row).map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut v {
        map.insert("snapshot".into(), snapshot);
        map.insert("assessment".into(), assessment);
        map.insert("response".into(), response);
        map.insert("feedback".into(), feedback);
        map.insert(
            "page".into(),
            serde_json::to_value(page).map_err(ApiError::internal)?,
        );
    }
    Ok(Json(v))
}

async fn rulesets(
    State(state): State<AppState>,
    _caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let describe = |r: &lrt_engine::RuleSet| json!({"label": r.label(), "sha256": r.sha256});
    Ok(Json(json!({
        "active": describe(&state.rules),
        "shadow": state.shadow.as_deref().map(describe),
    })))
}
