//! CDS Hooks 2.0: `GET /cds-services`, `POST /cds-services/{id}`,
//! `POST /cds-services/{id}/feedback` (checklist §1.B–G, routing per §4).
//!
//! A call: service lookup (unknown id: 404) → JWT (`aud` = this endpoint's public URL: 401) →
//! JSON body (415/400) → request validation against the service (400) → a stored evaluation of
//! the same `hookInstance` is returned as it was (a different patient or service: 409) →
//! prefetch resolution with the FHIR fallback (required data unavailable: 412) → snapshot →
//! assessment (active and shadow rule sets) → cards → stored in one transaction → 200.
//! Every call, errors included, is logged in `hook_call` with its status and latency.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use lrt_engine::concept::Concept;
use lrt_engine::{Assessment, PatientSnapshot, RuleSet};
use lrt_hooks::cards::{CardInput, evaluation_id, respond};
use lrt_hooks::model::{FeedbackRequest, HookRequest, Outcome};
use lrt_hooks::prefetch::{PrefetchError, resolve};
use lrt_hooks::services::{self, Service};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::auth::{authenticate, authenticate_any};
use crate::service::config::EvaluationTime;
use crate::service::error::ApiError;
use crate::service::paging::PagePlan;
use crate::service::state::AppState;
use crate::service::store::{self, CallRecord, NewEvaluation, NewFeedback, Role, Stored};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cds-services", get(discovery))
        .route("/cds-services/{id}", post(call))
        .route("/cds-services/{id}/feedback", post(feedback))
}

async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(
        &state,
        &headers,
        &format!("{}/cds-services", state.config.base()),
    )
    .await?;
    Ok(Json(&*state.discovery).into_response())
}

/// What is known of a call, for its `hook_call` row.
#[derive(Default)]
struct CallFacts {
    hook: Option<String>,
    hook_instance: Option<String>,
    evaluation_id: Option<Uuid>,
}

async fn call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let mut facts = CallFacts::default();
    let result = answer(&state, &id, &headers, &body, started, &mut facts).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (response, status, error_code) = match result {
        Ok(body) => (
            (StatusCode::OK, Json(body)).into_response(),
            StatusCode::OK,
            None,
        ),
        Err(e) => {
            let (status, code) = (e.status(), e.code());
            (e.into_response(), status, Some(code))
        }
    };
    let known = services::find(&id).map(|s| s.id);
    metrics::counter!(
        "lrt_hook_calls_total",
        "service" => known.unwrap_or("unknown"),
        "status" => status.as_str().to_string()
    )
    .increment(1);
    metrics::histogram!("lrt_hook_duration_seconds", "service" => known.unwrap_or("unknown"))
        .record(latency_ms / 1000.0);
    // An unauthenticated call is counted (above) but not written: a stranger must not be able
    // to fill the database (2,000 rows in 5 s from one connection, issue 8).
    if let Some(service_id) = known.filter(|_| status != StatusCode::UNAUTHORIZED) {
        let record = CallRecord {
            service_id: service_id.to_string(),
            hook: facts.hook,
            hook_instance: facts.hook_instance,
            status: status.as_u16() as i16,
            error_code: error_code.map(str::to_string),
            latency_ms,
            evaluation_id: facts.evaluation_id,
        };
        if let Err(e) = store::record_call(&state.pool, &record).await {
            tracing::warn!(error = %e, "hook_call not recorded");
        }
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

async fn answer(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    started: Instant,
    facts: &mut CallFacts,
) -> Result<Value, ApiError> {
    let service =
        services::find(id).ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
    let client = authenticate(
        state,
        headers,
        &format!("{}/cds-services/{}", state.config.base(), service.id),
    )
    .await?;
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be application/json".into(),
        ));
    }
    let request = lrt_fhir::cpu_bound(|| HookRequest::from_slice(body))
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    facts.hook = request.hook.clone();
    facts.hook_instance = request.hook_instance.clone();
    request
        .validate(service)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hook_instance = request
        .hook_instance_uuid()
        .ok_or_else(|| ApiError::BadRequest("hookInstance is not a UUID".into()))?;
    let patient = request
        .patient_id()
        .ok_or_else(|| ApiError::BadRequest("context.patientId is missing".into()))?
        .to_string();
    let hook_instance_text = hook_instance.hyphenated().to_string();

    // A retried call gets the stored answer; a reused hookInstance for another call is a conflict.
    if let Some(stored) = store::find_call(&state.pool, &hook_instance_text).await? {
        facts.evaluation_id = Some(stored.id);
        return replay(stored, service, &patient);
    }

    let call_time = Utc::now();
    let window_end = match state.config.evaluation_time {
        EvaluationTime::Call => Some(call_time),
        EvaluationTime::NewestBloodGas => None,
    };
    let fetch_started = Instant::now();
    let resolved = resolve(&request, &state.plan, &state.prefetch, window_end)
        .await
        .map_err(|e| match e {
            PrefetchError::Required { .. } => {
                metrics::counter!("lrt_prefetch_unavailable_total", "service" => service.id)
                    .increment(1);
                ApiError::PreconditionFailed(e.to_string())
            }
        })?;
    if resolved
        .sources
        .values()
        .any(|s| matches!(s, lrt_hooks::prefetch::KeySource::Fetched { .. }))
    {
        metrics::histogram!("lrt_fhir_fallback_seconds", "service" => service.id)
            .record(fetch_started.elapsed().as_secs_f64());
    }
    let sources = serde_json::to_value(&resolved.sources).map_err(ApiError::internal)?;

    let evaluate = |rules: &RuleSet| {
        evaluate_at(
            state.config.evaluation_time,
            rules,
            call_time,
            |rules, now| resolved.snapshot(rules, &patient, now),
        )
    };

    let evaluation = evaluation_id(hook_instance, service.id);
    facts.evaluation_id = Some(evaluation);
    let (snapshot, assessment, now) = evaluate(&state.rules);
    let response = cards(
        state,
        service,
        &request,
        &state.rules,
        &snapshot,
        &assessment,
        evaluation,
    )?;
    let mut active = new_evaluation(
        state,
        service,
        &request,
        &patient,
        &client,
        Role::Active,
        evaluation,
        &state.rules,
        now,
        &snapshot,
        &assessment,
        &sources,
        &response,
    )?;
    let shadow = match &state.shadow {
        Some(rules) => {
            let (snapshot, assessment, now) = evaluate(rules);
            let id = Uuid::new_v5(&evaluation, b"shadow");
            let response = cards(state, service, &request, rules, &snapshot, &assessment, id)?;
            Some(new_evaluation(
                state,
                service,
                &request,
                &patient,
                &client,
                Role::Shadow,
                id,
                rules,
                now,
                &snapshot,
                &assessment,
                &sources,
                &response,
            )?)
        }
        None => None,
    };
    let page = state.pager.as_ref().and_then(|pager| {
        PagePlan::new(
            &pager.config,
            &state.rules,
            &assessment,
            evaluation,
            &patient,
            request.fhir_server.as_ref().map(|u| u.as_str()),
            request.context_str("encounterId"),
            &state.dashboard,
        )
    });
    active.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match store::store_evaluations(&state.pool, &active, shadow.as_ref(), page.as_ref()).await? {
        Stored::New { page } => {
            wake_dispatcher(state, page);
            Ok(response)
        }
        Stored::Existing(stored) => replay(stored, service, &patient),
    }
}

/// Wakes this process's dispatcher when a page was written.
pub(crate) fn wake_dispatcher(state: &AppState, page: Option<Uuid>) {
    if let (Some(pager), Some(_)) = (&state.pager, page) {
        pager.wake.notify_one();
    }
}

/// Evaluates under `rules`: the snapshot (from `build`) at the configured evaluation time, and
/// its assessment. With `newest_blood_gas`, the time is the patient's newest PaO2 (found in a
/// provisional snapshot with no time limit), else the call time.
pub(crate) fn evaluate_at(
    evaluation_time: EvaluationTime,
    rules: &RuleSet,
    call_time: DateTime<Utc>,
    build: impl Fn(&RuleSet, DateTime<Utc>) -> PatientSnapshot,
) -> (PatientSnapshot, Assessment, DateTime<Utc>) {
    let now = match evaluation_time {
        EvaluationTime::Call => call_time,
        EvaluationTime::NewestBloodGas => {
            let provisional = build(rules, DateTime::<Utc>::MAX_UTC);
            newest_pao2(rules, &provisional).unwrap_or(call_time)
        }
    };
    let snapshot = build(rules, now);
    let assessment = lrt_engine::evaluate(rules, &snapshot, now);
    (snapshot, assessment, now)
}

/// The stored answer of a hookInstance, if it was the same call.
fn replay(stored: store::StoredCall, service: &Service, patient: &str) -> Result<Value, ApiError> {
    if stored.service_id != service.id || stored.patient_id != patient {
        return Err(ApiError::Conflict(
            "this hookInstance was already used for another service or patient".into(),
        ));
    }
    Ok(stored.response)
}

/// The time of the newest PaO2 in a snapshot (the evaluation time of date-shifted data sets).
fn newest_pao2(rules: &RuleSet, snapshot: &PatientSnapshot) -> Option<DateTime<Utc>> {
    snapshot
        .observations
        .iter()
        .filter(|o| rules.concept_of(&o.system, &o.code).map(|m| m.concept) == Some(Concept::Pao2))
        .map(|o| o.effective)
        .max()
}

#[allow(clippy::too_many_arguments)]
fn cards(
    state: &AppState,
    service: &Service,
    request: &HookRequest,
    rules: &RuleSet,
    snapshot: &PatientSnapshot,
    assessment: &Assessment,
    evaluation: Uuid,
) -> Result<Value, ApiError> {
    let input = CardInput {
        service,
        request,
        rules,
        text: &state.card_text,
        snapshot: Some(snapshot),
        evaluation_id: evaluation,
        dashboard: &state.dashboard,
        order_codes: &state.order_codes,
    };
    let response = serde_json::to_value(respond(&input, assessment)).map_err(ApiError::internal)?;
    if cfg!(debug_assertions) {
        let violations = lrt_hooks::validate::validate_response(&response);
        if !violations.is_empty() {
            return Err(ApiError::internal(format!(
                "the response breaks CDS Hooks rules: {violations:?}"
            )));
        }
    }
    Ok(response)
}

#[allow(clippy::too_many_arguments)]
fn new_evaluation(
    state: &AppState,
    service: &Service,
    request: &HookRequest,
    patient: &str,
    client: &Option<lrt_auth::VerifiedClient>,
    role: Role,
    id: Uuid,
    rules: &RuleSet,
    now: DateTime<Utc>,
    snapshot: &PatientSnapshot,
    assessment: &Assessment,
    sources: &Value,
    response: &Value,
) -> Result<NewEvaluation, ApiError> {
    let _ = state;
    let card_uuids = response["cards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["uuid"].as_str().and_then(|u| Uuid::parse_str(u).ok()))
        .collect();
    Ok(NewEvaluation {
        id,
        hook_instance: request.hook_instance.clone().unwrap_or_default(),
        role,
        service_id: service.id.to_string(),
        hook: service.hook.name().to_string(),
        patient_id: patient.to_string(),
        fhir_server: request.fhir_server.as_ref().map(|u| u.to_string()),
        client_iss: client.as_ref().map(|c| c.iss.clone()),
        client_sub: client.as_ref().and_then(|c| c.sub.clone()),
        tenant: client.as_ref().and_then(|c| c.tenant.clone()),
        ruleset_id: rules.manifest.id.clone(),
        ruleset_version: rules.manifest.version.clone(),
        ruleset_sha256: rules.sha256.clone(),
        evaluated_at: now,
        snapshot: serde_json::to_value(snapshot).map_err(ApiError::internal)?,
        assessment: serde_json::to_value(assessment).map_err(ApiError::internal)?,
        prefetch_sources: sources.clone(),
        response: response.clone(),
        card_uuids,
        status: 200,
        latency_ms: 0.0,
        ecmo_category: assessment.ecmo_category.as_ref().map(|s| s.to_string()),
        berlin_category: assessment.berlin_category.as_ref().map(|s| s.to_string()),
        pf_ratio: assessment.pf_ratio,
    })
}

async fn feedback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let service =
        services::find(&id).ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
    let service_url = format!("{}/cds-services/{}", state.config.base(), service.id);
    authenticate_any(
        &state,
        &headers,
        &[&format!("{service_url}/feedback"), &service_url],
    )
    .await?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be application/json".into(),
        ));
    }
    let request: FeedbackRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("feedback: {e}")))?;
    let times = request
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut items = Vec::with_capacity(times.len());
    for (index, (f, at)) in request.feedback.iter().zip(times).enumerate() {
        let card = Uuid::parse_str(&f.card).map_err(|_| {
            ApiError::BadRequest(format!("feedback[{index}].card is not a card uuid"))
        })?;
        items.push(NewFeedback {
            card_uuid: card,
            outcome: match f.outcome {
                Outcome::Accepted => "accepted",
                Outcome::Overridden => "overridden",
            }
            .to_string(),
            outcome_timestamp: at,
            service_id: service.id.to_string(),
            accepted_suggestions: (!f.accepted_suggestions.is_empty())
                .then(|| serde_json::to_value(&f.accepted_suggestions))
                .transpose()
                .map_err(ApiError::internal)?,
            override_reason: f
                .override_reason
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(ApiError::internal)?,
        });
    }
    let cards: Vec<Uuid> = items.iter().map(|f| f.card_uuid).collect();
    let issued = store::issued_cards(&state.pool, &cards).await?;
    if let Some(index) = cards.iter().position(|c| !issued.contains(c)) {
        return Err(ApiError::NotFound(format!(
            "feedback[{index}].card: no card with this uuid was issued"
        )));
    }
    let written = store::store_feedback(&state.pool, service.id, &items).await?;
    for item in &items {
        metrics::counter!("lrt_feedback_items_total", "service" => service.id, "outcome" => item.outcome.clone())
            .increment(1);
    }
    metrics::counter!("lrt_feedback_total", "service" => service.id, "result" => "stored")
        .increment(written.stored);
    metrics::counter!("lrt_feedback_total", "service" => service.id, "result" => "updated")
        .increment(written.updated);
    Ok(Json(json!({
        "stored": written.stored,
        "updated": written.updated,
        "duplicates": written.duplicates,
    })))
}
