//! Evaluations without a CDS Hooks call: a FHIR Subscription notification (a new blood gas) or
//! `POST /api/v1/evaluations`. The patient's data is read from the EHR's FHIR server (`[ehr]`)
//! with the rule set's search plan, evaluated under the active (and shadow) rule set, stored and
//! paged exactly as a hook call is, in one transaction. `key` makes it idempotent: a repeated
//! notification or request with the same key returns the stored evaluation and pages no one.

use std::time::Instant;

use chrono::Utc;
use lrt_engine::RuleSet;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::config::EvaluationTime;
use super::error::ApiError;
use super::paging::PagePlan;
use super::routes::hooks::{evaluate_at, wake_dispatcher};
use super::state::AppState;
use super::store::{self, NewEvaluation, Role, Stored};

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
    let fetched = match state.config.evaluation_time {
        EvaluationTime::Call => {
            lrt_fhir::fetch_patient(&ehr.client, &state.rules, &req.patient, call_time).await
        }
        EvaluationTime::NewestBloodGas => {
            lrt_fhir::fetch_patient_unwindowed(&ehr.client, &state.rules, &req.patient).await
        }
    }
    .map_err(|e| {
        if e.status() == Some(404) {
            ApiError::NotFound(format!("Patient/{} not found on the EHR", req.patient))
        } else {
            tracing::warn!(reason = %e.reason(), "EHR fetch failed");
            ApiError::Unavailable("the EHR's FHIR server could not be read".into())
        }
    })?;
    let evaluate = |rules: &RuleSet| {
        evaluate_at(
            state.config.evaluation_time,
            rules,
            call_time,
            |rules, now| fetched.snapshot(rules, &req.patient, now),
        )
    };
    let evaluation_id = Uuid::new_v5(&Uuid::NAMESPACE_URL, hook_instance.as_bytes());
    let fhir_server = ehr.client.base().to_string();
    let record = |role: Role,
                  id: Uuid,
                  rules: &RuleSet|
     -> Result<(NewEvaluation, lrt_engine::Assessment), ApiError> {
        let (snapshot, assessment, now) = evaluate(rules);
        let response = summary(id, &assessment);
        Ok((
            NewEvaluation {
                id,
                hook_instance: hook_instance.clone(),
                role,
                service_id: req.origin.service_id().to_string(),
                hook: req.origin.hook().to_string(),
                patient_id: req.patient.clone(),
                fhir_server: Some(fhir_server.clone()),
                client_iss: req.client.as_ref().map(|c| c.iss.clone()),
                client_sub: req.client.as_ref().and_then(|c| c.sub.clone()),
                tenant: req.client.as_ref().and_then(|c| c.tenant.clone()),
                ruleset_id: rules.manifest.id.clone(),
                ruleset_version: rules.manifest.version.clone(),
                ruleset_sha256: rules.sha256.clone(),
                evaluated_at: now,
                snapshot: serde_json::to_value(&snapshot).map_err(ApiError::internal)?,
                assessment: serde_json::to_value(&assessment).map_err(ApiError::internal)?,
                prefetch_sources: json!({"fhir": {"source": "fetched"}}),
                response,
                card_uuids: Vec::new(),
                status: 200,
                latency_ms: 0.0,
                ecmo_category: assessment.ecmo_category.as_ref().map(|s| s.to_string()),
                berlin_category: assessment.berlin_category.as_ref().map(|s| s.to_string()),
                pf_ratio: assessment.pf_ratio,
            },
            assessment,
        ))
    };
    let (mut active, assessment) = record(Role::Active, evaluation_id, &state.rules)?;
    let shadow = match &state.shadow {
        Some(rules) => {
            Some(record(Role::Shadow, Uuid::new_v5(&evaluation_id, b"shadow"), rules)?.0)
        }
        None => None,
    };
    let plan = state.pager.as_ref().and_then(|pager| {
        PagePlan::new(
            &pager.config,
            &state.rules,
            &assessment,
            evaluation_id,
            &req.patient,
            Some(&fhir_server),
            req.encounter.as_deref(),
            &state.dashboard,
        )
    });
    active.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match store::store_evaluations(&state.pool, &active, shadow.as_ref(), plan.as_ref()).await? {
        Stored::New { page } => {
            wake_dispatcher(state, page);
            Ok(Outcome {
                evaluation_id,
                patient_id: req.patient,
                replayed: false,
                ecmo_category: assessment.ecmo_category.as_ref().map(|s| s.to_string()),
                consult_triggers: assessment
                    .consult_triggers
                    .iter()
                    .map(|t| t.code.to_string())
                    .collect(),
                page_id: page,
            })
        }
        Stored::Existing(stored) => Ok(replayed(stored)),
    }
}

/// What is stored as the "response" of an evaluation without a hook.
fn summary(id: Uuid, a: &lrt_engine::Assessment) -> Value {
    json!({
        "evaluation_id": id,
        "ecmo_category": a.ecmo_category,
        "consult_triggers": a.consult_triggers.iter().map(|t| &t.code).collect::<Vec<_>>(),
    })
}

fn replayed(stored: store::StoredCall) -> Outcome {
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
