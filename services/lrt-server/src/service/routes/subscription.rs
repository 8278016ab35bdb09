//! `POST /fhir/subscription-notification`: the rest-hook endpoint of FHIR R4 Subscriptions (for
//! example on new arterial blood gases: `Observation?code=http://loinc.org|2703-7`).
//!
//! The EHR's Subscription sends the configured shared secret in its `channel.header`
//! (`Authorization: Bearer <secret>`, compared in constant time; 401 otherwise). The body is a
//! notification Bundle (R4 or the Subscriptions Backport, full-resource or id-only) or the
//! resource itself; see [`lrt_fhir::subscription`]. Its focus is stored in the inbox and the
//! answer is **202** (`Location`: the notification in `/api/v1/subscription-notifications`)
//! before the EHR is read: an acknowledged notification is never lost, even while the EHR's
//! FHIR server is down (R4 rest-hook senders need not retry). The inbox worker then reads,
//! evaluates, stores and pages, with retries (see [`crate::service::inbox`]). A repeated
//! notification (same resources, same versions) answers its first row and evaluates nothing
//! again; a heartbeat (no focus) answers 200.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lrt_fhir::subscription::notification_focus;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::service::error::ApiError;
use crate::service::inbox;
use crate::service::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/fhir/subscription-notification", post(notify))
}

/// Whether the request carries the Subscription's shared secret.
fn authorised(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(secret) = state
        .ehr
        .as_ref()
        .and_then(|e| e.subscription_secret.as_ref())
    else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(lrt_auth::bearer_token)
        .unwrap_or("");
    // Constant time: compare digests.
    Sha256::digest(given.as_bytes()) == Sha256::digest(secret.expose_secret().as_bytes())
}

async fn notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !authorised(&state, &headers) {
        metrics::counter!("lrt_subscription_rejections_total").increment(1);
        return Err(ApiError::Unauthorized);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the notification is not UTF-8 text".into()))?;
    let focus =
        notification_focus(text).map_err(|e| ApiError::BadRequest(format!("notification: {e}")))?;
    let receipt = inbox::receive(&state, focus).await?;
    let Some(id) = receipt.notification_id else {
        // A heartbeat or handshake: nothing to evaluate.
        metrics::counter!("lrt_subscription_notifications_total", "outcome" => "empty")
            .increment(1);
        return Ok((StatusCode::OK, Json(json!(receipt))).into_response());
    };
    let location = format!("/api/v1/subscription-notifications/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!(receipt)),
    )
        .into_response())
}
