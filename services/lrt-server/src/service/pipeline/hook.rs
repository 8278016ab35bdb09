//! A CDS Hooks call through the pipeline: the request parsed once into a [`ValidCall`], a
//! stored evaluation of the same `hookInstance` returned as it was (another patient or service:
//! 409), the prefetch resolved with the FHIR fallback (required data unavailable: 412), then
//! the engine, the cards, and one transaction.

use std::time::Instant;

use axum::http::{HeaderMap, header};
use chrono::Utc;
use lrt_hooks::cards::{CardInput, evaluation_id, respond};
use lrt_hooks::model::HookRequest;
use lrt_hooks::prefetch::{KeySource, PrefetchError, resolve};
use lrt_hooks::services::Service;
use serde_json::Value;
use uuid::Uuid;

use super::{Answer, Call, CallRow, Committed, commit};
use crate::service::config::EvaluationTime;
use crate::service::error::ApiError;
use crate::service::state::AppState;
use crate::service::store::{self, StoredCall};

/// A CDS Hooks request that has been read and checked against its service.
pub struct ValidCall {
    pub service: &'static Service,
    pub request: HookRequest,
    pub hook_instance: Uuid,
    pub patient: String,
}

/// What is known of a call even when it fails (for its `hook_call` row).
#[derive(Debug, Default)]
pub struct CallFacts {
    pub hook: Option<String>,
    pub hook_instance: Option<String>,
    pub evaluation_id: Option<Uuid>,
}

impl ValidCall {
    /// Reads the body (JSON only: 415) and checks it against `service` (400).
    pub fn parse(
        service: &'static Service,
        headers: &HeaderMap,
        body: &[u8],
        facts: &mut CallFacts,
    ) -> Result<ValidCall, ApiError> {
        if !is_json(headers) {
            return Err(ApiError::UnsupportedMediaType(
                "the request body must be application/json".into(),
            ));
        }
        let request = lrt_fhir::cpu_bound_sized(body.len(), || HookRequest::from_slice(body))?;
        facts.hook = request.hook.clone();
        facts.hook_instance = request.hook_instance.clone();
        request.validate(service)?;
        let hook_instance = request
            .hook_instance_uuid()
            .ok_or_else(|| ApiError::BadRequest("hookInstance is not a UUID".into()))?;
        let patient = request
            .patient_id()
            .ok_or_else(|| ApiError::BadRequest("context.patientId is missing".into()))?
            .to_string();
        Ok(ValidCall {
            service,
            request,
            hook_instance,
            patient,
        })
    }
}

/// Whether the request's media type is JSON (`application/json` or `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
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

/// Answers a valid call: the stored answer of a retried `hookInstance`, or a new evaluation.
/// `Ok` means the call is committed: its token's `jti`, its evaluations and page, and its
/// `hook_call` row, in one transaction. An error commits nothing (the caller records the `jti`
/// and the row).
#[tracing::instrument(name = "pipeline.hook", skip_all, fields(service = call.service.id))]
pub async fn run(
    state: &AppState,
    call: ValidCall,
    client: Option<lrt_auth::VerifiedClient>,
    jti: Option<&store::Jti>,
    started: Instant,
    facts: &mut CallFacts,
) -> Result<Value, ApiError> {
    let ValidCall {
        service,
        request,
        hook_instance,
        patient,
    } = call;
    let hook_instance_text = hook_instance.hyphenated().to_string();
    let call_time = Utc::now();
    let window_end = match state.config.evaluation_time {
        EvaluationTime::Call => Some(call_time),
        EvaluationTime::NewestBloodGas => None,
    };
    // A retried call gets the stored answer; a reused hookInstance for another call is a conflict.
    // A call that sends every prefetch key (what an EHR does) is looked up only if its prefetch
    // fails: else the commit finds the stored call ([`Committed::Existing`]), and a call that is
    // not a retry (nearly all) costs the database no lookup of its own (issue 9). A call whose
    // prefetch needs the FHIR server is looked up while the prefetch is resolved: a retry, often
    // sent because the first call was slow, then drops the searches unfinished.
    let lookup = store::find_call(&state.pool, &hook_instance_text);
    let prefetch = resolve_prefetch(state, service, &request, window_end);
    let found = if state.plan.is_covered_by(&request) {
        stored_or_failed(prefetch.await, lookup).await?
    } else {
        stored_or_resolved(lookup, prefetch).await?
    };
    let resolved = match found {
        Found::Resolved(resolved) => resolved,
        Found::Stored(stored) => {
            facts.evaluation_id = Some(stored.id);
            let caller = Caller {
                client: client.as_ref(),
                jti,
            };
            return answer_stored(state, stored, service, &request, &patient, caller, started)
                .await;
        }
    };
    let sources = serde_json::to_value(&resolved.sources).map_err(ApiError::internal)?;
    let meta = Call {
        hook_instance: hook_instance_text,
        service_id: service.id.to_string(),
        hook: service.hook.name().to_string(),
        patient: patient.clone(),
        encounter: request.context_str("encounterId").map(str::to_string),
        fhir_server: request.fhir_server.as_ref().map(|u| u.to_string()),
        client,
        sources,
        call_time,
        started,
    };
    let id = evaluation_id(hook_instance, service.id);
    facts.evaluation_id = Some(id);
    let (evaluated, response) = meta.evaluate(
        state,
        id,
        |rules, now| resolved.snapshot(rules, &patient, now),
        |rules, run, id| cards(state, service, &request, rules, run, id),
    )?;
    let row = CallRow { jti, record: true };
    match commit(state, &meta, evaluated, row).await? {
        Committed::New { .. } => Ok(response),
        Committed::Existing(stored) => {
            let caller = Caller {
                client: meta.client.as_ref(),
                jti,
            };
            answer_stored(state, stored, service, &request, &patient, caller, started).await
        }
    }
}

/// What a call finds: the stored evaluation of its `hookInstance`, or else its prefetch
/// resolved.
enum Found<T> {
    Stored(StoredCall),
    Resolved(T),
}

/// Runs the stored-call `lookup` and the `prefetch` together (the lookup polled first, so its
/// query is on the wire while the prefetch is read) and answers by the lookup: a stored call
/// wins over whatever the prefetch gave or would give (it is dropped, unfinished or not, and
/// its error ignored); else the prefetch's outcome. A database error answers at once.
async fn stored_or_resolved<T>(
    lookup: impl Future<Output = Result<Option<StoredCall>, sqlx::Error>>,
    prefetch: impl Future<Output = Result<T, ApiError>>,
) -> Result<Found<T>, ApiError> {
    let mut lookup = std::pin::pin!(lookup);
    let mut prefetch = std::pin::pin!(prefetch);
    let mut resolved = None;
    let stored = loop {
        tokio::select! {
            biased;
            stored = &mut lookup => break stored?,
            r = &mut prefetch, if resolved.is_none() => resolved = Some(r),
        }
    };
    match (stored, resolved) {
        (Some(stored), _) => Ok(Found::Stored(stored)),
        (None, Some(resolved)) => resolved.map(Found::Resolved),
        (None, None) => prefetch.await.map(Found::Resolved),
    }
}

/// The `prefetch`'s outcome; if it failed, the stored evaluation of the call's `hookInstance`
/// (the `lookup`, run only then) wins over the failure. A database error answers then.
async fn stored_or_failed<T>(
    prefetch: Result<T, ApiError>,
    lookup: impl Future<Output = Result<Option<StoredCall>, sqlx::Error>>,
) -> Result<Found<T>, ApiError> {
    match prefetch {
        Ok(resolved) => Ok(Found::Resolved(resolved)),
        Err(failed) => match lookup.await? {
            Some(stored) => Ok(Found::Stored(stored)),
            None => Err(failed),
        },
    }
}

/// Who made a call: the verified client (None: authentication off) and its `jti` to record.
#[derive(Clone, Copy)]
struct Caller<'a> {
    client: Option<&'a lrt_auth::VerifiedClient>,
    jti: Option<&'a store::Jti>,
}

/// A retried `hookInstance`: the stored answer (if it is the same call), with this call's
/// `jti` and row recorded in one transaction.
async fn answer_stored(
    state: &AppState,
    stored: StoredCall,
    service: &Service,
    request: &HookRequest,
    patient: &str,
    caller: Caller<'_>,
    started: Instant,
) -> Result<Value, ApiError> {
    let id = stored.id;
    let response = replay(stored, service, patient)?;
    let row = store::CallRecord {
        hook: request.hook.clone(),
        hook_instance: request.hook_instance.clone(),
        evaluation_id: Some(id),
        ..store::CallRecord::answered(service.id, caller.client, 200, started)
    };
    if !store::record_call_with_jti(&state.pool, caller.jti, Some(&row)).await? {
        return Err(crate::service::auth::replayed_jti());
    }
    Ok(response)
}

#[tracing::instrument(name = "pipeline.prefetch", skip_all)]
async fn resolve_prefetch(
    state: &AppState,
    service: &Service,
    request: &HookRequest,
    window_end: Option<chrono::DateTime<Utc>>,
) -> Result<lrt_hooks::prefetch::Resolved, ApiError> {
    let fetch_started = Instant::now();
    let resolved = resolve(request, &state.plan, &state.prefetch, window_end)
        .await
        .inspect_err(|e| match e {
            PrefetchError::Required { .. } => {
                metrics::counter!("lrt_prefetch_unavailable_total", "service" => service.id)
                    .increment(1);
            }
        })?;
    if resolved
        .sources
        .values()
        .any(|s| matches!(s, KeySource::Fetched { .. }))
    {
        metrics::histogram!("lrt_fhir_fallback_seconds", "service" => service.id)
            .record(fetch_started.elapsed().as_secs_f64());
    }
    Ok(resolved)
}

/// The stored answer of a hookInstance, if it was the same call.
fn replay(stored: StoredCall, service: &Service, patient: &str) -> Result<Value, ApiError> {
    if stored.service_id != service.id || stored.patient_id != patient {
        return Err(ApiError::Conflict(
            "this hookInstance was already used for another service or patient".into(),
        ));
    }
    Ok(stored.response)
}

/// The cards of one rule set's run, and their uuids.
fn cards(
    state: &AppState,
    service: &Service,
    request: &HookRequest,
    rules: &lrt_engine::RuleSet,
    run: &super::Run,
    evaluation: Uuid,
) -> Result<Answer, ApiError> {
    let input = CardInput {
        service,
        request,
        rules,
        text: &state.card_text,
        snapshot: Some(&run.snapshot),
        evaluation_id: evaluation,
        dashboard: &state.dashboard,
        order_codes: &state.order_codes,
    };
    let typed = respond(&input, &run.assessment);
    let card_uuids = typed.cards.iter().filter_map(|c| c.uuid).collect();
    let response = serde_json::to_value(&typed).map_err(ApiError::internal)?;
    if cfg!(debug_assertions) {
        let violations = lrt_hooks::validate::validate_response(&response);
        if !violations.is_empty() {
            return Err(ApiError::internal(format!(
                "the response breaks CDS Hooks rules: {violations:?}"
            )));
        }
    }
    Ok(Answer {
        response,
        card_uuids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;
    use std::time::Duration;

    fn stored() -> StoredCall {
        StoredCall {
            id: Uuid::nil(),
            service_id: "lrt-patient-view".into(),
            hook: "patient-view".into(),
            patient_id: "p1".into(),
            response: serde_json::json!({"cards": []}),
        }
    }

    async fn later<T>(value: T) -> T {
        tokio::time::sleep(Duration::from_millis(20)).await;
        value
    }

    fn unavailable() -> ApiError {
        ApiError::PreconditionFailed("required data unavailable".into())
    }

    #[tokio::test]
    async fn a_stored_call_wins_over_the_prefetch_finished_failed_or_pending() {
        let found = stored_or_resolved(later(Ok(Some(stored()))), async { Ok(1) }).await;
        assert!(matches!(found, Ok(Found::Stored(_))));
        let found = stored_or_resolved(later(Ok(Some(stored()))), async {
            Err::<u8, _>(unavailable())
        })
        .await;
        assert!(matches!(found, Ok(Found::Stored(_))));
        // A prefetch that never ends is dropped, not awaited.
        let found = stored_or_resolved(async { Ok(Some(stored())) }, pending::<Result<u8, _>>());
        let found = tokio::time::timeout(Duration::from_secs(5), found).await;
        assert!(matches!(found, Ok(Ok(Found::Stored(_)))));
    }

    #[tokio::test]
    async fn without_a_stored_call_the_prefetch_answers_whichever_ends_first() {
        let found = stored_or_resolved(async { Ok(None) }, later(Ok(7))).await;
        assert!(matches!(found, Ok(Found::Resolved(7))));
        let found = stored_or_resolved(later(Ok(None)), async { Ok(7) }).await;
        assert!(matches!(found, Ok(Found::Resolved(7))));
        let found =
            stored_or_resolved(later(Ok(None)), async { Err::<u8, _>(unavailable()) }).await;
        assert!(matches!(found, Err(ApiError::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn a_sent_prefetch_is_looked_up_only_when_it_fails() {
        let looked_up = std::cell::Cell::new(0);
        // Counts the lookups that run (are polled), not those built.
        let lookup = |found: Result<Option<StoredCall>, sqlx::Error>| {
            let looked_up = &looked_up;
            async move {
                looked_up.set(looked_up.get() + 1);
                found
            }
        };
        // Resolved: the stored call (found by the commit instead) is not looked up.
        let found = stored_or_failed(Ok(7), lookup(Ok(Some(stored())))).await;
        assert!(matches!(found, Ok(Found::Resolved(7))));
        assert_eq!(looked_up.get(), 0);
        // Failed: a stored call wins over the failure; without one the failure answers.
        let found = stored_or_failed(Err::<u8, _>(unavailable()), lookup(Ok(Some(stored())))).await;
        assert!(matches!(found, Ok(Found::Stored(_))));
        let found = stored_or_failed(Err::<u8, _>(unavailable()), lookup(Ok(None))).await;
        assert!(matches!(found, Err(ApiError::PreconditionFailed(_))));
        // Failed and the database unavailable: 503, as from the lookup alone.
        let found = stored_or_failed(
            Err::<u8, _>(unavailable()),
            lookup(Err(sqlx::Error::PoolTimedOut)),
        )
        .await;
        assert!(matches!(found, Err(ApiError::Unavailable(_))));
        assert_eq!(looked_up.get(), 3);
    }

    #[tokio::test]
    async fn a_database_error_answers_at_once() {
        let found = stored_or_resolved(
            async { Err(sqlx::Error::PoolTimedOut) },
            pending::<Result<u8, _>>(),
        );
        let found = tokio::time::timeout(Duration::from_secs(5), found).await;
        assert!(matches!(found, Ok(Err(ApiError::Unavailable(_)))));
    }
}
