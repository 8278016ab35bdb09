//! The one evaluation pipeline (issue 9): snapshot source → engine (active and shadow rule
//! sets) → answer → one transaction (the evaluations and the page) → response.
//!
//! Three doors use it, each a thin adapter:
//! * a CDS Hooks call ([`hook`]): the snapshot comes from the prefetch (with the FHIR fallback),
//!   the answer is the cards;
//! * a FHIR Subscription notification (through the inbox) and `POST /api/v1/evaluations`
//!   ([`ehr`]): the snapshot comes from the EHR's FHIR server, the answer is a summary.
//!
//! What each evaluation stores is built in one place ([`Call::record`]), and the transaction in
//! one place ([`commit`]): the active evaluation, the shadow one and the page are written
//! together or not at all, and a retried call (same idempotency key) stores and pages nothing.

pub mod ehr;
pub mod hook;

use std::time::Instant;

use chrono::{DateTime, Utc};
use lrt_engine::concept::Concept;
use lrt_engine::{Assessment, PatientSnapshot, RuleSet};
use serde_json::Value;
use uuid::Uuid;

use super::config::EvaluationTime;
use super::error::ApiError;
use super::paging::PagePlan;
use super::state::AppState;
use super::store::{self, NewEvaluation, Role, Stored, StoredCall};

/// What is known of a call before the engine runs: everything stored with its evaluations.
#[derive(Debug, Clone)]
pub struct Call {
    /// The idempotency key (`hookInstance`, or the origin's key).
    pub hook_instance: String,
    pub service_id: String,
    pub hook: String,
    pub patient: String,
    pub encounter: Option<String>,
    pub fhir_server: Option<String>,
    pub client: Option<lrt_auth::VerifiedClient>,
    /// Where each piece of data came from (prefetch key, fetched, or the EHR).
    pub sources: Value,
    pub call_time: DateTime<Utc>,
    pub started: Instant,
}

/// One rule set's run: the snapshot at the evaluation time and its assessment.
pub struct Run {
    pub snapshot: PatientSnapshot,
    pub assessment: Assessment,
    pub now: DateTime<Utc>,
}

/// What a door answers for a run (cards, or a summary) and the card uuids in it.
pub struct Answer {
    pub response: Value,
    pub card_uuids: Vec<Uuid>,
}

/// The evaluations of a call, ready to commit.
pub struct Evaluated {
    pub id: Uuid,
    pub active: NewEvaluation,
    pub shadow: Option<NewEvaluation>,
    /// The active assessment (what pages).
    pub assessment: Assessment,
}

/// What committing did.
pub enum Committed {
    /// Stored now; the page written, if any.
    New { page: Option<Uuid> },
    /// The same idempotency key was stored by a concurrent call: its evaluation.
    Existing(StoredCall),
}

/// What else the commit of a CDS Hooks call holds: its token's `jti` and its `hook_call` row.
#[derive(Default)]
pub struct CallRow<'a> {
    pub jti: Option<&'a store::Jti>,
    /// Write the call's `hook_call` row (CDS Hooks calls only).
    pub record: bool,
}

impl Call {
    /// Runs the engine under the active and (if any) shadow rule sets, builds each answer, and
    /// what is stored of each.
    #[tracing::instrument(name = "pipeline.evaluate", skip_all)]
    pub fn evaluate(
        &self,
        state: &AppState,
        id: Uuid,
        build: impl Fn(&RuleSet, DateTime<Utc>) -> PatientSnapshot,
        answer: impl Fn(&RuleSet, &Run, Uuid) -> Result<Answer, ApiError>,
    ) -> Result<(Evaluated, Value), ApiError> {
        let run = run_at(
            state.config.evaluation_time,
            &state.rules,
            self.call_time,
            &build,
        );
        let shown = answer(&state.rules, &run, id)?;
        let active = self.record(Role::Active, id, &state.rules, &run, &shown)?;
        let shadow = match &state.shadow {
            Some(rules) => {
                let shadow_id = Uuid::new_v5(&id, b"shadow");
                let run = run_at(state.config.evaluation_time, rules, self.call_time, &build);
                let answer = answer(rules, &run, shadow_id)?;
                Some(self.record(Role::Shadow, shadow_id, rules, &run, &answer)?)
            }
            None => None,
        };
        Ok((
            Evaluated {
                id,
                active,
                shadow,
                assessment: run.assessment,
            },
            shown.response,
        ))
    }

    /// The call's `hook_call` row as answered now.
    pub fn row(
        &self,
        status: u16,
        error_code: Option<&str>,
        evaluation_id: Option<Uuid>,
    ) -> store::CallRecord {
        store::CallRecord {
            hook: Some(self.hook.clone()),
            hook_instance: Some(self.hook_instance.clone()),
            error_code: error_code.map(str::to_string),
            evaluation_id,
            ..store::CallRecord::answered(
                &self.service_id,
                self.client.as_ref(),
                status,
                self.started,
            )
        }
    }

    /// What is stored of one rule set's evaluation of this call.
    pub fn record(
        &self,
        role: Role,
        id: Uuid,
        rules: &RuleSet,
        run: &Run,
        answer: &Answer,
    ) -> Result<NewEvaluation, ApiError> {
        let a = &run.assessment;
        Ok(NewEvaluation {
            id,
            hook_instance: self.hook_instance.clone(),
            role,
            service_id: self.service_id.clone(),
            hook: self.hook.clone(),
            patient_id: self.patient.clone(),
            fhir_server: self.fhir_server.clone(),
            client_iss: self.client.as_ref().map(|c| c.iss.clone()),
            client_sub: self.client.as_ref().and_then(|c| c.sub.clone()),
            tenant: self.client.as_ref().and_then(|c| c.tenant.clone()),
            ruleset_id: rules.manifest.id.clone(),
            ruleset_version: rules.manifest.version.clone(),
            ruleset_sha256: rules.sha256.clone(),
            evaluated_at: run.now,
            snapshot: serde_json::value::to_raw_value(&run.snapshot).map_err(ApiError::internal)?,
            assessment: serde_json::value::to_raw_value(a).map_err(ApiError::internal)?,
            prefetch_sources: self.sources.clone(),
            response: answer.response.clone(),
            card_uuids: answer.card_uuids.clone(),
            status: 200,
            latency_ms: 0.0,
            ecmo_category: a.ecmo_category.as_ref().map(|s| s.to_string()),
            berlin_category: a.berlin_category.as_ref().map(|s| s.to_string()),
            pf_ratio: a.pf_ratio,
        })
    }
}

/// Stores the evaluations and the page (if the assessment pages) in one transaction (shared
/// with the calls committing at the same time: [`store::group`], which wakes this process's
/// dispatcher when a page is written).
#[tracing::instrument(name = "pipeline.commit", skip_all)]
pub async fn commit(
    state: &AppState,
    call: &Call,
    mut evaluated: Evaluated,
    row: CallRow<'_>,
) -> Result<Committed, ApiError> {
    let plan = state.pager.as_ref().and_then(|pager| {
        PagePlan::new(
            &pager.config,
            &state.rules,
            &evaluated.assessment,
            evaluated.id,
            &call.patient,
            call.fhir_server.as_deref(),
            call.encounter.as_deref(),
            &state.dashboard,
        )
    });
    evaluated.active.latency_ms = call.started.elapsed().as_secs_f64() * 1000.0;
    let record = row.record.then(|| call.row(200, None, Some(evaluated.id)));
    let stored = state
        .commits
        .commit(store::Commit {
            jti: row.jti.cloned(),
            active: evaluated.active,
            shadow: evaluated.shadow,
            page: plan,
            call: record,
        })
        .await?;
    match stored {
        // The group's writer has woken the dispatcher if a page was written.
        Stored::New { page } => Ok(Committed::New { page }),
        Stored::Existing(stored) => Ok(Committed::Existing(stored)),
        Stored::ReplayedJti => Err(super::auth::replayed_jti()),
    }
}

/// Evaluates under `rules`: the snapshot (from `build`) at the configured evaluation time, and
/// its assessment. With `newest_blood_gas`, the time is the patient's newest PaO2 (found in a
/// provisional snapshot with no time limit), else the call time.
pub fn run_at(
    evaluation_time: EvaluationTime,
    rules: &RuleSet,
    call_time: DateTime<Utc>,
    build: impl Fn(&RuleSet, DateTime<Utc>) -> PatientSnapshot,
) -> Run {
    let now = match evaluation_time {
        EvaluationTime::Call => call_time,
        EvaluationTime::NewestBloodGas => {
            let provisional = build(rules, DateTime::<Utc>::MAX_UTC);
            newest_pao2(rules, &provisional).unwrap_or(call_time)
        }
    };
    let snapshot = build(rules, now);
    let assessment = lrt_engine::evaluate(rules, &snapshot, now);
    Run {
        snapshot,
        assessment,
        now,
    }
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
