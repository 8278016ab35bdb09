//! Authentication of CDS clients on every CDS Hooks call and `/api/v1` request: the signed JWT
//! of CDS Hooks 2.0 (checklist H), verified by [`lrt_auth::Verifier`] with `aud` = the URL of
//! the endpoint called (computed from the configured public base URL, since the service sits
//! behind proxies), and the `jti` recorded once in PostgreSQL (shared by every replica).
//!
//! Any failure answers 401 with no detail; the reason goes to the `lrt_jwt_rejections_total`
//! metric and to a log line with the issuer when known, never the token. The one exception: when
//! the `jti` replay store (PostgreSQL) cannot answer, the token was not judged, and the answer is
//! 503 with `Retry-After`.

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use lrt_auth::{FirstUse, ReplayStore, StoreError, VerifiedClient, bearer_token};
use sqlx::PgPool;

use super::error::ApiError;
use super::state::{AppState, Auth};
use super::store;

/// The replay store of `jti`s: the `jwt_replay` table.
pub struct PgReplayStore(pub PgPool);

impl ReplayStore for PgReplayStore {
    fn first_use<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        keep_until: DateTime<Utc>,
    ) -> FirstUse<'a> {
        Box::pin(async move {
            store::first_use_of_jti(&self.0, iss, jti, keep_until)
                .await
                .map_err(|e| StoreError::new(format!("jwt_replay: {e}")))
        })
    }
}

/// The verified caller (`None` when authentication is off for development).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    audience: &str,
) -> Result<Option<VerifiedClient>, ApiError> {
    authenticate_any(state, headers, &[audience]).await
}

/// As [`authenticate`], accepting any of `audiences` (feedback: the feedback URL or the
/// service URL, checklist §O).
pub async fn authenticate_any(
    state: &AppState,
    headers: &HeaderMap,
    audiences: &[&str],
) -> Result<Option<VerifiedClient>, ApiError> {
    let verifier = match &*state.auth {
        Auth::InsecureNone => return Ok(None),
        Auth::Jwt(v) => v,
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = token else {
        metrics::counter!("lrt_jwt_rejections_total", "reason" => "missing").increment(1);
        return Err(ApiError::Unauthorized);
    };
    let replay = PgReplayStore(state.pool.clone());
    let verified = match verifier.verify_any_audience(token, audiences).await {
        Ok(client) => verifier.record(&client, &replay).await.map(|()| client),
        Err(rejection) => Err(rejection),
    };
    match verified {
        Ok(client) => Ok(Some(client)),
        // The token may be fine: the service cannot check it now. A client must not believe
        // its credentials are wrong (issue 8): 503 with Retry-After, not 401.
        Err(lrt_auth::Rejection::ReplayStoreUnavailable) => {
            metrics::counter!("lrt_jwt_rejections_total", "reason" => "replay_store_unavailable")
                .increment(1);
            Err(ApiError::Unavailable(
                "the token replay store is unavailable; retry shortly".into(),
            ))
        }
        Err(rejection) => {
            let reason = rejection.reason();
            metrics::counter!("lrt_jwt_rejections_total", "reason" => reason).increment(1);
            tracing::info!(reason, "JWT rejected");
            Err(ApiError::Unauthorized)
        }
    }
}
