//! FHIR Subscription notifications as an inbox (issue 8: no trigger lost).
//!
//! * **Receive** ([`receive`], called by `POST /fhir/subscription-notification`): the
//!   notification's focus (references, versions, patient and encounter ids; never the resources)
//!   is checked and stored in `subscription_inbox`, then answered **202** before the EHR is read.
//!   The same notification sent twice is one row (keyed by its focus); a resent notification
//!   whose row is dead is given a new horizon.
//! * **Evaluate** ([`worker`]): every `lrt serve` replica with an `[ehr]` runs a worker that
//!   claims due rows with `FOR UPDATE SKIP LOCKED` and a lease, and evaluates each
//!   ([`evaluate_notification`]: the patient of an id-only focus is read from the EHR, then one
//!   evaluation per patient through [`crate::service::pipeline`], stored and paged in its own
//!   transaction, idempotent per patient and focus). A failure that may pass (the EHR's FHIR
//!   server or PostgreSQL unavailable) is retried with exponential backoff and jitter until
//!   the horizon; a notification that can never be evaluated (its resource or patient not on
//!   the EHR) is dead at once. Dead rows are listed by `GET /api/v1/subscription-notifications`,
//!   counted (`lrt_subscription_inbox{state="dead"}`) and retried on request.
//! * A worker killed mid-evaluation leaves its claim to expire; another worker evaluates again,
//!   and the evaluation's idempotency key makes the second run store and page nothing new.

pub mod store;
pub mod worker;

use std::time::Duration;

use lrt_fhir::subscription::{Focus, patient_id};
use lrt_hooks::model::is_fhir_id;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::pipeline::ehr::{self, Origin};
use super::state::AppState;

/// `[ehr.inbox]` of the configuration: the Subscription notification worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxConfig {
    /// Run a worker in this process (every replica may; they share the inbox).
    pub worker: bool,
    /// How often an idle worker looks for due notifications (one received by this process
    /// wakes it at once).
    pub poll_interval_ms: u64,
    /// Notifications evaluated at once.
    pub batch: i64,
    /// How long a claim lasts: must exceed the time one evaluation may take (EHR reads).
    pub lease_ms: u64,
    /// The first retry wait; it doubles per attempt up to `max_backoff_ms`, with jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A notification not evaluated this long after it was received is dead-lettered.
    pub horizon_s: u64,
}

impl Default for InboxConfig {
    fn default() -> Self {
        InboxConfig {
            worker: true,
            poll_interval_ms: 500,
            batch: 4,
            lease_ms: 120_000,
            initial_backoff_ms: 2_000,
            max_backoff_ms: 120_000,
            horizon_s: 6 * 3600,
        }
    }
}

impl InboxConfig {
    pub fn check(&self, fhir_timeout: Duration) -> Result<(), String> {
        if self.batch < 1 || self.poll_interval_ms == 0 || self.initial_backoff_ms == 0 {
            return Err(
                "ehr.inbox: batch, poll_interval_ms and initial_backoff_ms must be positive".into(),
            );
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err("ehr.inbox: max_backoff_ms must be at least initial_backoff_ms".into());
        }
        if Duration::from_millis(self.lease_ms) <= fhir_timeout * 4 {
            return Err(format!(
                "ehr.inbox: lease_ms ({}) must exceed four FHIR timeouts ({} ms): an evaluation reads the EHR several times",
                self.lease_ms,
                fhir_timeout.as_millis() * 4
            ));
        }
        if self.horizon_s == 0 {
            return Err("ehr.inbox: horizon_s must be positive".into());
        }
        Ok(())
    }

    /// The wait after failed attempt number `attempts`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        super::paging::backoff(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
            attempts,
            fastrand::f64(),
        )
    }
}

/// One focus of a stored notification (what `subscription_inbox.focus` holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFocus {
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
}

impl From<Focus> for StoredFocus {
    fn from(f: Focus) -> Self {
        StoredFocus {
            reference: f.reference,
            version: f.version,
            patient: f.patient,
            encounter: f.encounter,
        }
    }
}

/// What receiving a notification did.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// The inbox row (None: the notification named no resource, e.g. a heartbeat).
    pub notification_id: Option<uuid::Uuid>,
    /// `pending`, `done` or `dead` (a repeat of an earlier notification answers its row's state).
    pub state: String,
    /// False when the same notification was received before.
    pub new: bool,
}

/// Checks a notification's focus and stores it: nothing here reads the EHR. A focus the
/// worker would have to read must be a `Type/id` reference on the EHR's server (400 otherwise,
/// before anything is stored).
pub async fn receive(state: &AppState, focus: Vec<Focus>) -> Result<Receipt, ApiError> {
    if focus.is_empty() {
        return Ok(Receipt {
            notification_id: None,
            state: "done".into(),
            new: false,
        });
    }
    let base = state
        .ehr
        .as_ref()
        .map(|e| e.client.base().as_str().to_string())
        .ok_or_else(|| {
            ApiError::Unavailable("no EHR FHIR server is configured ([ehr] fhir_base)".into())
        })?;
    for f in &focus {
        match &f.patient {
            None => {
                relative_reference(&base, &f.reference)?;
            }
            // The patient's id goes into the EHR's URLs: a dot segment or a slash is the
            // sender's mistake (400), not an EHR read that cannot be made (503).
            Some(patient) if !is_fhir_id(patient) => {
                return Err(ApiError::BadRequest(format!(
                    "focus {:?}: its patient is not a FHIR id",
                    f.reference
                )));
            }
            Some(_) => {}
        }
        if f.encounter.as_deref().is_some_and(|e| !is_fhir_id(e)) {
            return Err(ApiError::BadRequest(format!(
                "focus {:?}: its encounter is not a FHIR id",
                f.reference
            )));
        }
    }
    // One resource, one reference: `{base}/Observation/1` is `Observation/1`, so the same event
    // notified in two shapes (full resource, id-only) is one evaluation.
    let focus: Vec<StoredFocus> = focus
        .into_iter()
        .map(|f| {
            let mut f = StoredFocus::from(f);
            if let Some(relative) = f.reference.strip_prefix(base.as_str()) {
                f.reference = relative.trim_start_matches('/').to_string();
            }
            f
        })
        .collect();
    let mut keys: Vec<String> = focus
        .iter()
        .map(|f| format!("{}@{}", f.reference, f.version.as_deref().unwrap_or("")))
        .collect();
    keys.sort();
    let dedup_key = hex(&Sha256::digest(keys.join("|").as_bytes()));
    let mut patients: Vec<String> = focus.iter().filter_map(|f| f.patient.clone()).collect();
    patients.sort();
    patients.dedup();
    let config = &state.config.ehr.inbox;
    let received = store::receive(
        &state.pool,
        &dedup_key,
        &serde_json::to_value(&focus).map_err(ApiError::internal)?,
        &patients,
        Duration::from_secs(config.horizon_s),
    )
    .await?;
    let label = if received.new { "accepted" } else { "repeat" };
    metrics::counter!("lrt_subscription_notifications_total", "outcome" => label).increment(1);
    if received.new {
        state.inbox_wake.notify_one();
    }
    Ok(Receipt {
        notification_id: Some(received.id),
        state: received.state,
        new: received.new,
    })
}

/// `Type/id` of a reference on the EHR's server (relative, or absolute under its base).
fn relative_reference<'a>(base: &str, reference: &'a str) -> Result<(&'a str, &'a str), ApiError> {
    let relative = reference
        .strip_prefix(base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(reference);
    if relative.contains("://") {
        return Err(ApiError::BadRequest(format!(
            "focus {reference:?} is not on the configured EHR FHIR server"
        )));
    }
    let mut parts = relative.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(rt), Some(id), None) if valid_type(rt) && is_fhir_id(id) => Ok((rt, id)),
        _ => Err(ApiError::BadRequest(format!(
            "focus {reference:?} is not a resource reference (Type/id)"
        ))),
    }
}

fn valid_type(rt: &str) -> bool {
    rt.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && rt.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Evaluates a stored notification: the patient of each focus (read from the EHR for an
/// id-only focus), then one evaluation per patient. Idempotent: a patient evaluated by an
/// earlier attempt answers its stored evaluation (`replayed`).
pub async fn evaluate_notification(
    state: &AppState,
    focus: &[StoredFocus],
) -> Result<Vec<ehr::Outcome>, ApiError> {
    let mut per_patient: Vec<(String, Vec<&StoredFocus>)> = Vec::new();
    for f in focus {
        let patient = match &f.patient {
            Some(p) => p.clone(),
            None => patient_of(state, &f.reference).await?,
        };
        match per_patient.iter_mut().find(|(p, _)| *p == patient) {
            Some((_, list)) => list.push(f),
            None => per_patient.push((patient, vec![f])),
        }
    }
    let mut outcomes = Vec::with_capacity(per_patient.len());
    for (patient, items) in per_patient {
        let mut refs: Vec<String> = items
            .iter()
            .map(|f| format!("{}@{}", f.reference, f.version.as_deref().unwrap_or("")))
            .collect();
        refs.sort();
        let key = hex(&Sha256::digest(
            format!("{patient}|{}", refs.join("|")).as_bytes(),
        ));
        outcomes.push(
            ehr::run(
                state,
                ehr::Request {
                    origin: Origin::Subscription,
                    key,
                    patient,
                    encounter: items.iter().find_map(|f| f.encounter.clone()),
                    client: None,
                },
            )
            .await?,
        );
    }
    Ok(outcomes)
}

/// The patient of an id-only focus, read from the EHR. A resource that is not there, or names
/// no patient, can never be evaluated (404, permanent); an EHR that cannot answer is 503.
async fn patient_of(state: &AppState, reference: &str) -> Result<String, ApiError> {
    let ehr = state.ehr.as_ref().ok_or_else(|| {
        ApiError::Unavailable("no EHR FHIR server is configured ([ehr] fhir_base)".into())
    })?;
    let (rt, id) = relative_reference(ehr.client.base().as_str(), reference)?;
    let payload = ehr.client.read(rt, id).await.map_err(|e| {
        if matches!(e.status(), Some(404 | 410)) {
            ApiError::NotFound(format!("{rt}/{id} is not on the EHR's FHIR server"))
        } else {
            tracing::warn!(reason = %e.reason(), "subscription focus not readable");
            ApiError::Unavailable(
                "the notification's resource could not be read from the EHR".into(),
            )
        }
    })?;
    payload
        .resources
        .iter()
        .find_map(|r| match &r.record {
            lrt_fhir::read::Record::Observation(o) => o.subject.as_deref().and_then(patient_id),
            _ => None,
        })
        .ok_or_else(|| ApiError::NotFound(format!("{rt}/{id} names no patient")))
}

/// Whether an evaluation failure can pass (retry) or never will (dead at once).
pub fn is_permanent(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::BadRequest(_)
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
            | ApiError::UnsupportedMediaType(_)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_focus_to_read_is_a_type_and_id_on_the_ehr() {
        let base = "https://ehr.example/fhir";
        assert_eq!(
            relative_reference(base, "Observation/abc-1.2").unwrap(),
            ("Observation", "abc-1.2")
        );
        assert_eq!(
            relative_reference(base, "https://ehr.example/fhir/Observation/7").unwrap(),
            ("Observation", "7")
        );
        for bad in [
            "../..",
            "Observation/..",
            "Observation/%2E%2E",
            "https://evil.example/fhir/Observation/1",
            "Observation",
            "Observation/1/_history/2",
            "observation/1",
            "Observation/",
        ] {
            assert!(relative_reference(base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_failures_that_can_pass_are_retried() {
        assert!(!is_permanent(&ApiError::Unavailable("ehr down".into())));
        assert!(!is_permanent(&ApiError::Internal("db".into())));
        assert!(is_permanent(&ApiError::NotFound("gone".into())));
        assert!(is_permanent(&ApiError::BadRequest("bad".into())));
    }

    #[test]
    fn the_inbox_configuration_is_checked() {
        let fhir = Duration::from_secs(5);
        assert!(InboxConfig::default().check(fhir).is_ok());
        let short_lease = InboxConfig {
            lease_ms: 10_000,
            ..InboxConfig::default()
        };
        assert!(short_lease.check(fhir).is_err());
        let no_horizon = InboxConfig {
            horizon_s: 0,
            ..InboxConfig::default()
        };
        assert!(no_horizon.check(fhir).is_err());
    }
}
