//! CDS Hooks 2.0: `GET /cds-services`, `POST /cds-services/{id}`,
//! `POST /cds-services/{id}/feedback` (checklist §1.B–G, routing per §4).
//!
//! A call: service lookup (unknown id: 404) and JWT (`aud` = this endpoint's public URL: 401),
//! both in the [`CdsClient`] extractor → the request read into a
//! [`ValidCall`](crate::service::pipeline::hook::ValidCall) (415/400) → the pipeline
//! ([`crate::service::pipeline::hook`]) → 200. Every call, errors included, is logged in
//! `hook_call` with its status and latency.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lrt_hooks::model::{FeedbackRequest, Outcome};
use lrt_hooks::services;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::auth::{CdsClient, HookCaller, replay_store_failed, replayed_jti};
use crate::service::error::ApiError;
use crate::service::pipeline::hook::{self, CallFacts, ValidCall, is_json};
use crate::service::state::AppState;
use crate::service::store::{self, CallRecord, NewFeedback};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cds-services", get(discovery))
        .route("/cds-services/{id}", post(call))
        .route("/cds-services/{id}/feedback", post(feedback))
}

async fn discovery(State(state): State<AppState>, _client: CdsClient) -> Response {
    Json(&*state.discovery).into_response()
}

async fn call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Result<HookCaller, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let mut facts = CallFacts::default();
    // Looked up once: the call, its metrics and its row (an unknown id was answered 404 by the
    // extractor, which looks it up for the token's audience).
    let service = services::find(&id);
    let (client, jti) = match caller {
        Ok(HookCaller { client, jti }) => (Ok(client), jti),
        Err(e) => (Err(e), None),
    };
    // The caller, for the row of an error answer.
    let caller_of_row = client.as_ref().ok().and_then(Option::clone);
    let result = async {
        let client = client?;
        let service =
            service.ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
        let valid = ValidCall::parse(service, &headers, &body, &mut facts)?;
        hook::run(&state, valid, client, jti.as_ref(), started, &mut facts).await
    }
    .await;
    // `Ok` is committed with its row and `jti` (one transaction, shared with the calls that
    // commit at the same time). An error committed
    // nothing: its token's `jti` is spent now (a replay answers 401 whatever the body), its
    // row is written after the answer.
    let committed = result.is_ok();
    let result = match (result, &jti) {
        (Err(e), Some(jti)) if e.status() != StatusCode::UNAUTHORIZED => {
            match store::first_use_of_jti(&state.pool, &jti.iss, &jti.jti, jti.keep_until).await {
                Ok(true) => Err(e),
                Ok(false) => Err(replayed_jti()),
                Err(db) => Err(replay_store_failed(db)),
            }
        }
        (result, _) => result,
    };
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
    let known = service.map(|s| s.id);
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
    if let Some(service_id) = known.filter(|_| status != StatusCode::UNAUTHORIZED && !committed) {
        let record = CallRecord {
            hook: facts.hook,
            hook_instance: facts.hook_instance,
            error_code: error_code.map(str::to_string),
            evaluation_id: facts.evaluation_id,
            latency_ms,
            ..CallRecord::answered(service_id, caller_of_row.as_ref(), status.as_u16(), started)
        };
        // After the answer: an error call's row must not hold its response up.
        let pool = state.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = store::record_call(&pool, &record).await {
                tracing::warn!(error = %e, "hook_call not recorded");
            }
        });
    }
    response
}

async fn feedback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _client: CdsClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let service =
        services::find(&id).ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be application/json".into(),
        ));
    }
    let request: FeedbackRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("feedback: {e}")))?;
    let times = request.validate()?;
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
