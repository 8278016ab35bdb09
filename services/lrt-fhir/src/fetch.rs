//! A patient's data from the EHR's FHIR server: the `Patient` read and the searches of
//! [`crate::search`], run concurrently, gathered for [`crate::mapping::build_snapshot`].
//!
//! The Patient and the observation searches are required: if one fails, fetching fails with its
//! error (which URL, which status). A failed condition, procedure, medication or flag search
//! does not stop the evaluation: that kind counts as not searched (its flags stay unknown,
//! never "absent") and a `fetch_failed:<type> (...)` warning says so.

use chrono::{DateTime, Utc};
use lrt_engine::{PatientSnapshot, RuleSet};

use crate::client::{FhirClient, FhirError};
use crate::mapping::{Collected, MapOptions, Searched};
use crate::search::{Search, patient_searches};
use lrt_engine::ruleset::files::ResourceKind;

/// What was gathered, and which kinds of resources could be searched.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub collected: Collected,
    pub searched: Searched,
}

impl Fetched {
    /// The patient's snapshot at `now` (resources of other patients are reported).
    pub fn snapshot(&self, rules: &RuleSet, patient: &str, now: DateTime<Utc>) -> PatientSnapshot {
        crate::mapping::build_snapshot(
            rules,
            &self.collected,
            patient,
            now,
            MapOptions {
                searched: self.searched,
                warn_other_patients: true,
            },
        )
    }
}

/// Reads `Patient/{patient}` and runs every search of the plan at `now` concurrently.
pub async fn fetch_patient(
    client: &FhirClient,
    rules: &RuleSet,
    patient: &str,
    now: DateTime<Utc>,
) -> Result<Fetched, FhirError> {
    fetch_searches(client, patient, patient_searches(rules, patient, now)).await
}

/// As [`fetch_patient`], without the date window: for data sets whose evaluation time is only
/// known from the data (date-shifted research data evaluated at the newest blood gas).
pub async fn fetch_patient_unwindowed(
    client: &FhirClient,
    rules: &RuleSet,
    patient: &str,
) -> Result<Fetched, FhirError> {
    let mut searches = patient_searches(rules, patient, DateTime::<Utc>::UNIX_EPOCH);
    for s in &mut searches {
        s.params.retain(|(k, _)| k != "date");
    }
    fetch_searches(client, patient, searches).await
}

async fn fetch_searches(
    client: &FhirClient,
    patient: &str,
    searches: Vec<Search>,
) -> Result<Fetched, FhirError> {
    let read = client.read("Patient", patient);
    let runs = futures_join(client, &searches);
    let (patient_payload, results) = tokio::join!(read, runs);
    let mut fetched = Fetched::default();
    fetched.collected.add(patient_payload?);
    let mut failed: Vec<ResourceKind> = Vec::new();
    for (search, result) in searches.iter().zip(results) {
        match (result, search.kind) {
            (Ok(payload), _) => fetched.collected.add(payload),
            (Err(e), None) => return Err(e),
            (Err(e), Some(kind)) => {
                let status = e
                    .status()
                    .map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
                fetched
                    .collected
                    .warnings
                    .push(format!("fetch_failed:{} ({status})", search.resource_type));
                failed.push(kind);
            }
        }
    }
    let ok = |k: ResourceKind| !failed.contains(&k);
    fetched.searched = Searched {
        conditions: ok(ResourceKind::Conditions),
        procedures: ok(ResourceKind::Procedures),
        medications: ok(ResourceKind::Medications),
        flags: ok(ResourceKind::Flags),
    };
    Ok(fetched)
}

/// Runs the searches concurrently (all spawned at once), results in plan order.
async fn futures_join(
    client: &FhirClient,
    searches: &[Search],
) -> Vec<Result<crate::bundle::Payload, FhirError>> {
    let handles: Vec<_> = searches
        .iter()
        .map(|s| {
            let client = client.clone();
            let (rt, params) = (s.resource_type, s.params.clone());
            tokio::spawn(async move { client.search(rt, &params).await })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for (h, s) in handles.into_iter().zip(searches) {
        out.push(h.await.unwrap_or_else(|e| {
            Err(FhirError::Connection {
                url: format!("{} search", s.resource_type),
                message: e.to_string(),
            })
        }));
    }
    out
}
