//! Evaluations without a CDS Hooks call: a FHIR Subscription notification (a new blood gas,
//! through the inbox) or `POST /api/v1/evaluations`. The patient's data is read from the EHR's
//! FHIR server (`[ehr]`) with the rule set's search plan, then the pipeline runs as for a hook
//! call. `key` makes it idempotent: a repeated notification or request with the same key
//! returns the stored evaluation and pages no one.

use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Answer, Call, Committed, commit};
use crate::service::config::EvaluationTime;
use crate::service::error::ApiError;
use crate::service::state::AppState;
use crate::service::store::{self, StoredCall};

/// Where an evaluation without a hook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Subscription,
    Api,
}

impl Origin {
    /// Stored as the evaluation's `service_id`.
    pub fn service_id(self) -> &'static str {
        match self {
            Origin::Subscription => "lrt-subscription",
            Origin::Api => "lrt-api",
        }
    }
    /// Stored as the evaluation's `hook`.
    pub fn hook(self) -> &'static str {
        match self {
            Origin::Subscription => "subscription-notification",
            Origin::Api => "api-request",
        }
    }
}

/// One evaluation to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub origin: Origin,
    /// Idempotency key (stored as `hook_instance`, prefixed by the origin).
    pub key: String,
    pub patient: String,
    pub encounter: Option<String>,
    pub client: Option<lrt_auth::VerifiedClient>,
}

/// What an evaluation without a hook answers.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub evaluation_id: Uuid,
    pub patient_id: String,
    /// True when this key was evaluated before: nothing new was stored or paged.
    pub replayed: bool,
    pub ecmo_category: Option<String>,
    pub consult_triggers: Vec<String>,
    /// The page written by this evaluation, if any.
    pub page_id: Option<Uuid>,
}

/// Fetches, evaluates, stores and pages.
#[tracing::instrument(name = "pipeline.ehr", skip_all, fields(origin = req.origin.service_id()))]
pub async fn run(state: &AppState, req: Request) -> Result<Outcome, ApiError> {
    let started = Instant::now();
    // The id goes into the EHR's URLs: a caller's mistake (`.`, `..`, a slash) is a 400 here,
    // not the 503 of a read the FHIR client refuses to make.
    if !lrt_hooks::model::is_fhir_id(&req.patient) {
        return Err(ApiError::BadRequest(
            "the patient id is not a FHIR id (letters, digits, `-` and `.`, at most 64, not `.` or `..`)"
                .into(),
        ));
    }
    let ehr = state.ehr.as_ref().ok_or_else(|| {
        ApiError::Unavailable("no EHR FHIR server is configured ([ehr] fhir_base)".into())
    })?;
    // An idempotency key is the caller's own: the same key from another issuer or tenant is
    // another evaluation (it never returns someone else's).
    let hook_instance = match &req.client {
        Some(c) => format!(
            "{}:{}|{}|{}",
            req.origin.service_id(),
            c.iss,
            c.tenant.as_deref().unwrap_or_default(),
            req.key
        ),
        None => format!("{}:{}", req.origin.service_id(), req.key),
    };
    if let Some(stored) = store::find_call(&state.pool, &hook_instance).await? {
        if stored.patient_id != req.patient || stored.service_id != req.origin.service_id() {
            return Err(ApiError::Conflict(
                "this idempotency key was already used for another patient".into(),
            ));
        }
        return Ok(replayed(stored));
    }
    let call_time = Utc::now();
    let fetched = fetch(state, ehr, &req.patient, call_time).await?;
    let call = Call {
        hook_instance: hook_instance.clone(),
        service_id: req.origin.service_id().to_string(),
        hook: req.origin.hook().to_string(),
        patient: req.patient.clone(),
        encounter: req.encounter.clone(),
        fhir_server: Some(ehr.client.base().to_string()),
        client: req.client.clone(),
        sources: json!({"fhir": {"source": "fetched"}}),
        call_time,
        started,
    };
    let evaluation_id = Uuid::new_v5(&Uuid::NAMESPACE_URL, hook_instance.as_bytes());
    let (evaluated, _) = call.evaluate(
        state,
        evaluation_id,
        |rules, now| fetched.snapshot(rules, &req.patient, now),
        |_, run, id| {
            Ok(Answer {
                response: summary(id, &run.assessment),
                card_uuids: Vec::new(),
            })
        },
    )?;
    let ecmo_category = evaluated
        .assessment
        .ecmo_category
        .as_ref()
        .map(|s| s.to_string());
    let consult_triggers = evaluated
        .assessment
        .consult_triggers
        .iter()
        .map(|t| t.code.to_string())
        .collect();
    match commit(state, &call, evaluated, Default::default()).await? {
        Committed::New { page } => Ok(Outcome {
            evaluation_id,
            patient_id: req.patient,
            replayed: false,
            ecmo_category,
            consult_triggers,
            page_id: page,
        }),
        Committed::Existing(stored) => Ok(replayed(stored)),
    }
}

/// The patient's data from the EHR, with the active rule set's search plan.
#[tracing::instrument(name = "pipeline.ehr_fetch", skip_all)]
async fn fetch(
    state: &AppState,
    ehr: &crate::service::state::Ehr,
    patient: &str,
    call_time: chrono::DateTime<Utc>,
) -> Result<lrt_fhir::Fetched, ApiError> {
    match state.config.evaluation_time {
        EvaluationTime::Call => {
            lrt_fhir::fetch_patient(&ehr.client, &state.rules, patient, call_time).await
        }
        EvaluationTime::NewestBloodGas => {
            lrt_fhir::fetch_patient_unwindowed(&ehr.client, &state.rules, patient).await
        }
    }
    .map_err(|e| {
        if e.status() == Some(404) {
            ApiError::NotFound(format!("Patient/{patient} not found on the EHR"))
        } else {
            tracing::warn!(reason = %e.reason(), "EHR fetch failed");
            ApiError::Unavailable("the EHR's FHIR server could not be read".into())
        }
    })
}

/// What is stored as the "response" of an evaluation without a hook.
fn summary(id: Uuid, a: &lrt_engine::Assessment) -> Value {
    json!({
        "evaluation_id": id,
        "ecmo_category": a.ecmo_category,
        "consult_triggers": a.consult_triggers.iter().map(|t| &t.code).collect::<Vec<_>>(),
    })
}

fn replayed(stored: StoredCall) -> Outcome {
    let r = &stored.response;
    Outcome {
        evaluation_id: stored.id,
        patient_id: stored.patient_id.clone(),
        replayed: true,
        ecmo_category: r["ecmo_category"].as_str().map(str::to_string),
        consult_triggers: r["consult_triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        page_id: None,
    }
}
