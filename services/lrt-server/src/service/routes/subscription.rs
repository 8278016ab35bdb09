//! `POST /fhir/subscription-notification`: the rest-hook endpoint of FHIR R4 Subscriptions (for
//! example on new arterial blood gases: `Observation?code=http://loinc.org|2703-7`).
//!
//! The EHR's Subscription sends the configured shared secret in its `channel.header`
//! (`Authorization: Bearer <secret>`, compared in constant time; 401 otherwise). The body is a
//! notification Bundle (R4 or the Subscriptions Backport, full-resource or id-only) or the
//! resource itself; see [`lrt_fhir::subscription`]. For every patient it names, the patient's
//! data is read from the EHR, evaluated, stored and paged (see [`crate::service::evaluate`]);
//! the answer (200) comes after everything is committed, so an acknowledged notification is
//! never lost, and a repeated one (same resources, same versions) evaluates and pages nothing.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use lrt_fhir::subscription::{Focus, notification_focus, patient_id};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::service::error::ApiError;
use crate::service::evaluate::{self, Origin};
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/fhir/subscription-notification", post(notify))
}

/// Whether the request carries the Subscription's shared secret.
fn authorised(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(secret) = state
        .ehr
        .as_ref()
        .and_then(|e| e.subscription_secret.as_deref())
    else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(lrt_auth::bearer_token)
        .unwrap_or("");
    // Constant time: compare digests.
    Sha256::digest(given.as_bytes()) == Sha256::digest(secret.as_bytes())
}

async fn notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !authorised(&state, &headers) {
        metrics::counter!("lrt_subscription_rejections_total").increment(1);
        return Err(ApiError::Unauthorized);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the notification is not UTF-8 text".into()))?;
    let focus =
        notification_focus(text).map_err(|e| ApiError::BadRequest(format!("notification: {e}")))?;
    let mut per_patient: Vec<(String, Vec<Focus>)> = Vec::new();
    for f in focus {
        let patient = match &f.patient {
            Some(p) => p.clone(),
            None => match patient_of(&state, &f.reference).await? {
                Some(p) => p,
                None => continue,
            },
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
        let outcome = evaluate::run(
            &state,
            evaluate::Request {
                origin: Origin::Subscription,
                key,
                patient,
                encounter: items.iter().find_map(|f| f.encounter.clone()),
                client: None,
            },
        )
        .await?;
        outcomes.push(outcome);
    }
    metrics::counter!("lrt_subscription_notifications_total").increment(1);
    Ok(Json(json!({ "evaluations": outcomes })))
}

/// The patient of an id-only focus, read from the EHR (only references on the EHR's server).
async fn patient_of(state: &AppState, reference: &str) -> Result<Option<String>, ApiError> {
    let Some(ehr) = &state.ehr else {
        return Ok(None);
    };
    let relative = reference
        .strip_prefix(ehr.client.base().as_str())
        .unwrap_or(reference);
    let mut parts = relative.split('/');
    let (Some(rt), Some(id)) = (parts.next(), parts.next()) else {
        return Err(ApiError::BadRequest(format!(
            "focus {reference:?} is not a resource reference"
        )));
    };
    if relative.contains("://") {
        return Err(ApiError::BadRequest(format!(
            "focus {reference:?} is not on the configured EHR FHIR server"
        )));
    }
    if rt.is_empty()
        || !rt.chars().all(|c| c.is_ascii_alphabetic())
        || !lrt_hooks::model::is_fhir_id(id)
    {
        return Err(ApiError::BadRequest(format!(
            "focus {reference:?} is not a `Type/id` reference with a FHIR id"
        )));
    }
    let payload = ehr.client.read(rt, id).await.map_err(|e| {
        tracing::warn!(reason = %e.reason(), "subscription focus not readable");
        ApiError::Unavailable("the notification's resource could not be read from the EHR".into())
    })?;
    Ok(payload.resources.iter().find_map(|r| match &r.record {
        lrt_fhir::read::Record::Observation(o) => o.subject.as_deref().and_then(patient_id),
        _ => None,
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
