//! The LRT pager consult: when to page (rule-set policy), the transactional outbox, delivery.
//!
//! * **When** is data: the rule set's `consult_triggers` (rules emit them with an urgency, see
//!   `rules/README.md`, "Paging the LRT") and its `consult_repeat_window_h` parameter. An
//!   evaluation whose assessment has triggers pages when at least one of them was not paged for
//!   the same patient within the window at the same or a higher urgency ([`new_reasons`]):
//!   a new reason, or a higher urgency (escalation), pages again; a repeat does not.
//! * **Outbox** ([`outbox`]): the page and one delivery per channel are inserted in the
//!   transaction that stores the evaluation, under a per-patient advisory lock (two concurrent
//!   evaluations of one patient cannot both page for one reason). A retried `hookInstance` stores
//!   nothing, so it pages no one.
//! * **Dispatch** ([`dispatch`]): every `lrt serve` replica runs a dispatcher that claims due
//!   deliveries with `FOR UPDATE SKIP LOCKED` and a lease, delivers, and records the attempt.
//!   Failures are retried with exponential backoff and jitter until the horizon, then the
//!   delivery is dead-lettered (listed by the API, retried on request). A dispatcher killed
//!   mid-delivery leaves its claim to expire; another replica delivers again: delivery is
//!   **at least once**, and every delivery carries the page's idempotency key so the receiver
//!   keeps one (the FHIR channel writes `CommunicationRequest/{page id}` with PUT, idempotent by
//!   itself).
//! * **Channels** ([`channel`]): an HTTP webhook (JSON, `Idempotency-Key`, HMAC-SHA256
//!   signature) and a FHIR `CommunicationRequest` on the EHR's FHIR server.

pub mod channel;
pub mod dispatch;
pub mod outbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lrt_engine::assessment::RecommendationDetail;
use lrt_engine::ruleset::Urgency;
use lrt_engine::{Assessment, RuleSet};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The rule-set parameter with the repeat window (hours).
pub const REPEAT_WINDOW_PARAM: &str = "consult_repeat_window_h";

/// `[paging]` of the configuration. Paging is on when a channel is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagingConfig {
    /// The HTTP webhook of the pager system.
    pub webhook: Option<WebhookConfig>,
    /// A `CommunicationRequest` on the EHR's FHIR server.
    pub fhir: Option<FhirChannelConfig>,
    /// Run a dispatcher in this process (every replica may; they share the outbox).
    pub dispatcher: bool,
    /// How often an idle dispatcher looks for due deliveries (a page written by this process
    /// wakes it at once).
    pub poll_interval_ms: u64,
    /// Deliveries claimed at once.
    pub batch: i64,
    /// How long a claim lasts: a dispatcher that dies holding one is replaced after this.
    /// Must exceed the channels' timeouts.
    pub lease_ms: u64,
    /// The first retry wait; it doubles per attempt up to `max_backoff_ms`, with jitter.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// A delivery not done this long after its page is dead-lettered.
    pub horizon_s: u64,
    /// Optional fields of the payload (the idempotency key, page id, reason and urgency are
    /// always sent): `patient`, `encounter`, `reasons`, `evaluation`, `ruleset`.
    pub payload_fields: Vec<PayloadField>,
    /// This dispatcher's name in attempts (default: host name and process id).
    pub worker_id: Option<String>,
}

impl Default for PagingConfig {
    fn default() -> Self {
        PagingConfig {
            webhook: None,
            fhir: None,
            dispatcher: true,
            poll_interval_ms: 500,
            batch: 16,
            lease_ms: 30_000,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            horizon_s: 3_600,
            payload_fields: PayloadField::ALL.to_vec(),
            worker_id: None,
        }
    }
}

impl PagingConfig {
    /// Whether pages are written at all.
    pub fn enabled(&self) -> bool {
        self.webhook.is_some() || self.fhir.is_some()
    }

    /// The configured channels, in a fixed order.
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.webhook.is_some() {
            out.push(Channel::Webhook);
        }
        if self.fhir.is_some() {
            out.push(Channel::Fhir);
        }
        out
    }

    pub fn check(&self) -> Result<(), String> {
        if self.batch < 1 || self.poll_interval_ms == 0 || self.initial_backoff_ms == 0 {
            return Err(
                "paging: batch, poll_interval_ms and initial_backoff_ms must be positive".into(),
            );
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err("paging: max_backoff_ms must be at least initial_backoff_ms".into());
        }
        let longest = [
            self.webhook.as_ref().map(|w| w.timeout_ms),
            self.fhir.as_ref().map(|f| f.timeout_ms),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        if self.lease_ms <= longest {
            return Err(format!(
                "paging: lease_ms ({}) must exceed the longest channel timeout ({longest} ms)",
                self.lease_ms
            ));
        }
        if let Some(w) = &self.webhook {
            let u = url::Url::parse(&w.url)
                .map_err(|e| format!("paging.webhook.url {:?}: {e}", w.url))?;
            if !matches!(u.scheme(), "https" | "http") {
                return Err("paging.webhook.url must be an http(s) URL".into());
            }
        }
        Ok(())
    }

    pub fn backoff(&self, attempts: i32) -> Duration {
        backoff(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
            attempts,
            fastrand::f64(),
        )
    }
}

/// The wait after failed attempt number `attempts` (1 = the first): the initial wait doubled
/// per earlier attempt, capped, then "equal jitter": between half of it and all of it
/// (`jitter` in [0, 1)), so replicas retrying together spread out.
pub fn backoff(initial: Duration, max: Duration, attempts: i32, jitter: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let step = initial.saturating_mul(1u32 << doublings).min(max);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// A file holding the HMAC secret (trailing whitespace ignored) ...
    pub secret_file: Option<PathBuf>,
    /// ... or the environment variable holding it (default `LRT_PAGER_WEBHOOK_SECRET`).
    pub secret_env: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirChannelConfig {
    /// The FHIR base the `CommunicationRequest` is written to (must be in `fhir_allow`).
    pub base: String,
    /// A file holding the bearer token, or the variable holding it (default
    /// `LRT_PAGER_FHIR_TOKEN`); none: no `Authorization` header.
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    /// `CommunicationRequest.recipient` (e.g. `Group/lrt` or `PractitionerRole/lrt-on-call`).
    pub recipient: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadField {
    Patient,
    Encounter,
    Reasons,
    Evaluation,
    Ruleset,
}

impl PayloadField {
    pub const ALL: [PayloadField; 5] = [
        PayloadField::Patient,
        PayloadField::Encounter,
        PayloadField::Reasons,
        PayloadField::Evaluation,
        PayloadField::Ruleset,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Fhir,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Fhir => "fhir",
        }
    }
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "webhook" => Some(Channel::Webhook),
            "fhir" => Some(Channel::Fhir),
            _ => None,
        }
    }
}

/// The rank of an urgency as stored (routine 1, urgent 2, emergent 3).
pub fn urgency_rank(u: Urgency) -> i16 {
    match u {
        Urgency::Routine => 1,
        Urgency::Urgent => 2,
        Urgency::Emergent => 3,
    }
}

/// The triggers that page: those not paged for the patient inside the window at the same or a
/// higher urgency. `recent` maps a trigger code to the highest urgency rank paged for it.
pub fn new_reasons(
    triggers: &[RecommendationDetail],
    recent: &HashMap<String, i16>,
) -> Vec<String> {
    triggers
        .iter()
        .filter(|t| {
            recent
                .get(&*t.code)
                .is_none_or(|&paged| paged < urgency_rank(t.urgency))
        })
        .map(|t| t.code.to_string())
        .collect()
}

/// Everything the outbox needs to decide on and write a page, prepared before the transaction.
#[derive(Debug, Clone)]
pub struct PagePlan {
    pub page_id: Uuid,
    pub evaluation_id: Uuid,
    pub patient_id: String,
    pub fhir_server: Option<String>,
    pub encounter: Option<String>,
    pub triggers: Vec<RecommendationDetail>,
    pub urgency: Urgency,
    pub repeat_window: Duration,
    pub ruleset_label: String,
    pub evaluation_url: String,
    pub channels: Vec<Channel>,
    pub horizon: Duration,
    pub fields: Vec<PayloadField>,
    /// The `traceparent` of the request that planned the page (None: tracing is off), taken
    /// when the plan is made: the page is written later, by the group commit's writer.
    pub trace_context: Option<String>,
}

impl PagePlan {
    /// The plan for an assessment with consult triggers; None without any (or paging off).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &PagingConfig,
        rules: &RuleSet,
        assessment: &Assessment,
        evaluation_id: Uuid,
        patient_id: &str,
        fhir_server: Option<&str>,
        encounter: Option<&str>,
        dashboard: &url::Url,
    ) -> Option<PagePlan> {
        if !config.enabled() || assessment.consult_triggers.is_empty() {
            return None;
        }
        let urgency = assessment
            .consult_triggers
            .iter()
            .map(|t| t.urgency)
            .max()?;
        let window_h = rules.param(REPEAT_WINDOW_PARAM).map_or(0.0, |p| p.value);
        Some(PagePlan {
            page_id: Uuid::new_v5(&evaluation_id, b"consult-page"),
            evaluation_id,
            patient_id: patient_id.to_string(),
            fhir_server: fhir_server.map(str::to_string),
            encounter: encounter.map(str::to_string),
            triggers: assessment.consult_triggers.clone(),
            urgency,
            repeat_window: Duration::from_secs_f64((window_h * 3600.0).max(0.0)),
            ruleset_label: rules.label(),
            evaluation_url: dashboard
                .join(&format!("dashboard/evaluations/{evaluation_id}"))
                .map(|u| u.to_string())
                .unwrap_or_default(),
            channels: config.channels(),
            horizon: Duration::from_secs(config.horizon_s),
            fields: config.payload_fields.clone(),
            trace_context: crate::service::telemetry::current_traceparent(),
        })
    }

    /// What the channels send: the minimum to act, and only the configured optional fields.
    /// The reason is the most urgent new trigger.
    pub fn payload(&self, new_reasons: &[String], created_at: DateTime<Utc>) -> Value {
        let primary = self
            .triggers
            .iter()
            .filter(|t| new_reasons.iter().any(|r| **r == *t.code))
            .max_by_key(|t| urgency_rank(t.urgency))
            .or_else(|| self.triggers.first());
        let mut map = serde_json::Map::new();
        map.insert("idempotency_key".into(), json!(self.page_id));
        map.insert("page_id".into(), json!(self.page_id));
        map.insert(
            "created_at".into(),
            json!(created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        map.insert("urgency".into(), json!(self.urgency.name()));
        map.insert(
            "reason".into(),
            json!(primary.map(|t| json!({"code": t.code, "display": t.display}))),
        );
        for field in &self.fields {
            match field {
                PayloadField::Patient => {
                    map.insert(
                        "patient".into(),
                        json!({"reference": format!("Patient/{}", self.patient_id),
                               "fhir_server": self.fhir_server}),
                    );
                }
                PayloadField::Encounter => {
                    if let Some(e) = &self.encounter {
                        map.insert(
                            "encounter".into(),
                            json!({"reference": format!("Encounter/{e}")}),
                        );
                    }
                }
                PayloadField::Reasons => {
                    let reasons: Vec<Value> = self
                        .triggers
                        .iter()
                        .map(|t| {
                            json!({"code": t.code, "display": t.display, "urgency": t.urgency.name(),
                                   "new": new_reasons.iter().any(|r| **r == *t.code)})
                        })
                        .collect();
                    map.insert("reasons".into(), Value::Array(reasons));
                }
                PayloadField::Evaluation => {
                    map.insert(
                        "evaluation".into(),
                        json!({"id": self.evaluation_id, "url": self.evaluation_url}),
                    );
                }
                PayloadField::Ruleset => {
                    map.insert("ruleset".into(), json!(self.ruleset_label));
                }
            }
        }
        Value::Object(map)
    }
}

/// Shared by the router and the dispatcher: the channels and a way to wake the dispatcher.
#[derive(Clone)]
pub struct Pager {
    pub config: Arc<PagingConfig>,
    pub channels: Arc<channel::Channels>,
    pub wake: Arc<tokio::sync::Notify>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn trigger(code: &str, urgency: Urgency) -> RecommendationDetail {
        RecommendationDetail {
            code: Arc::from(code),
            display: Arc::from(code),
            urgency,
            rules: vec![],
        }
    }

    #[test]
    fn a_reason_pages_once_per_window_unless_its_urgency_rises() {
        let t = [trigger("ECMO_BORDERLINE", Urgency::Urgent)];
        assert_eq!(new_reasons(&t, &HashMap::new()), ["ECMO_BORDERLINE"]);
        let paged = HashMap::from([("ECMO_BORDERLINE".to_string(), 2)]);
        assert!(new_reasons(&t, &paged).is_empty());
        let escalated = [trigger("ECMO_BORDERLINE", Urgency::Emergent)];
        assert_eq!(new_reasons(&escalated, &paged), ["ECMO_BORDERLINE"]);
        let other = [
            trigger("ECMO_BORDERLINE", Urgency::Urgent),
            trigger("ECMO_ELIGIBLE", Urgency::Emergent),
        ];
        assert_eq!(new_reasons(&other, &paged), ["ECMO_ELIGIBLE"]);
        let lower = HashMap::from([("ECMO_BORDERLINE".to_string(), 3)]);
        assert!(
            new_reasons(&t, &lower).is_empty(),
            "de-escalation does not page"
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let (i, m) = (Duration::from_millis(100), Duration::from_millis(1000));
        assert_eq!(backoff(i, m, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(i, m, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(i, m, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(i, m, 10, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff(i, m, 1000, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(i, m, 0, 1.0), Duration::from_millis(100));
    }
}
