//! Authentication of CDS clients on every CDS Hooks call and `/api/v1` request: the signed JWT
//! of CDS Hooks 2.0 (checklist H), verified by [`lrt_auth::Verifier`] with `aud` = the URL of
//! the endpoint called (computed from the configured public base URL, since the service sits
//! behind proxies), and the `jti` recorded once in PostgreSQL (shared by every replica).
//!
//! Any failure answers 401 with no detail; the reason goes to the `lrt_jwt_rejections_total`
//! metric and to a log line with the issuer when known, never the token. The one exception: when
//! the `jti` replay store (PostgreSQL) cannot answer, the token was not judged, and the answer is
//! 503 with `Retry-After`.
//!
//! [`load_jwks`] loads the trusted issuers' JWK Sets at start; `/health/ready` stays false until
//! every one is loaded, so that a new replica takes no calls it would answer 401 for want of keys.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
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

/// The verified CDS client of a CDS Hooks route, as an extractor. The JWT's `aud` must be the
/// public URL of the endpoint called: `{public_base_url}/cds-services` for discovery,
/// `…/cds-services/{id}` for a call, and for feedback `…/{id}/feedback` or the service's URL
/// (checklist §O). A service id that does not exist has no URL: 404 before any token check.
/// `None` inside: authentication is off (loopback development).
pub struct CdsClient(pub Option<VerifiedClient>);

impl FromRequestParts<AppState> for CdsClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let base = format!("{}/cds-services", state.config.base());
        let mut segments = parts.uri.path().trim_matches('/').split('/').skip(1);
        let audiences = match (segments.next(), segments.next()) {
            (None, _) => vec![base],
            (Some(id), rest) => {
                let service = lrt_hooks::services::find(id)
                    .ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
                let url = format!("{base}/{}", service.id);
                match rest {
                    Some("feedback") => vec![format!("{url}/feedback"), url],
                    _ => vec![url],
                }
            }
        };
        let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
        verified(state, &parts.headers, &audiences)
            .await
            .map(CdsClient)
    }
}

/// The verified CDS client of a CDS Hooks *call*, as an extractor: as [`CdsClient`], except
/// that the token's `jti` is not recorded yet. The pipeline records it in the transaction that
/// stores the call's evaluations (one commit per call, issue 9, shared with the calls that
/// commit at the same time: `store::group`), or, when the call stores
/// nothing, in one statement before answering; a `jti` already used then answers 401 and
/// stores nothing.
pub struct HookCaller {
    pub client: Option<VerifiedClient>,
    /// The `jti` to record (None: authentication is off).
    pub jti: Option<store::Jti>,
}

impl FromRequestParts<AppState> for HookCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut segments = parts.uri.path().trim_matches('/').split('/').skip(1);
        let id = segments.next().unwrap_or_default();
        let service = lrt_hooks::services::find(id)
            .ok_or_else(|| ApiError::NotFound(format!("no CDS service {id:?}")))?;
        let audience = format!("{}/cds-services/{}", state.config.base(), service.id);
        let verifier = match &*state.auth {
            Auth::InsecureNone => {
                return Ok(HookCaller {
                    client: None,
                    jti: None,
                });
            }
            Auth::Jwt(v) => v,
        };
        let client = check_token(verifier, &parts.headers, &[&audience]).await?;
        let jti = store::Jti {
            iss: client.iss.clone(),
            jti: client.jti.clone(),
            keep_until: verifier.replay_until(&client),
        };
        Ok(HookCaller {
            client: Some(client),
            jti: Some(jti),
        })
    }
}

/// A `jti` found already used when the call's transaction recorded it: 401, counted like the
/// other rejections.
pub fn replayed_jti() -> ApiError {
    refused(lrt_auth::Rejection::Replayed)
}

/// The replay store failed while recording a call's `jti`: the token was not judged (503 with
/// `Retry-After`, fail closed), as when the extractors record it.
pub fn replay_store_failed(error: sqlx::Error) -> ApiError {
    tracing::warn!(%error, "replay store failed: token refused");
    refused(lrt_auth::Rejection::ReplayStoreUnavailable)
}

/// The caller of an `/api/v1` route, as an extractor: a JWT whose `aud` is
/// `{public_base_url}/api/v1`, or, for a request without `Authorization`, a person signed in to
/// the quality dashboard (the identity-aware proxy's assertion or an OpenID Connect session,
/// [`crate::service::dashboard::identity`], with its CSRF check on changes); and whose rows it
/// may see ([`Tenancy`]).
pub struct ApiCaller {
    pub client: Option<VerifiedClient>,
    pub tenancy: Tenancy,
    /// The dashboard user, when the caller is one (then `client` is None).
    pub person: Option<String>,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && let Some(user) = crate::service::dashboard::identity::user(state, parts).await?
        {
            return Ok(ApiCaller {
                client: None,
                tenancy: user.tenancy,
                person: Some(user.name),
            });
        }
        let audience = api_audience(state);
        let client = verified(state, &parts.headers, &[&audience]).await?;
        let tenancy = Tenancy::of(client.as_ref(), &state.quality_issuers);
        Ok(ApiCaller {
            client,
            tenancy,
            person: None,
        })
    }
}

/// The JWT audience of every `/api/v1` route.
pub fn api_audience(state: &AppState) -> String {
    format!("{}/api/v1", state.config.base())
}

/// The verified caller for any of `audiences`, its `jti` recorded (`None` when authentication
/// is off).
async fn verified(
    state: &AppState,
    headers: &HeaderMap,
    audiences: &[&str],
) -> Result<Option<VerifiedClient>, ApiError> {
    let verifier = match &*state.auth {
        Auth::InsecureNone => return Ok(None),
        Auth::Jwt(v) => v,
    };
    let client = check_token(verifier, headers, audiences).await?;
    let replay = PgReplayStore(state.pool.clone());
    verifier.record(&client, &replay).await.map_err(refused)?;
    Ok(Some(client))
}

/// The token of `headers` checked (signature, claims, audience), its `jti` not recorded.
async fn check_token(
    verifier: &lrt_auth::Verifier,
    headers: &HeaderMap,
    audiences: &[&str],
) -> Result<VerifiedClient, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(token) = token else {
        metrics::counter!("lrt_jwt_rejections_total", "reason" => "missing").increment(1);
        return Err(ApiError::Unauthorized);
    };
    verifier
        .verify_any_audience(token, audiences)
        .await
        .map_err(refused)
}

/// The answer to a refused token: 401 without detail, counted by reason; 503 when the replay
/// store could not judge it.
fn refused(rejection: lrt_auth::Rejection) -> ApiError {
    match rejection {
        // The token may be fine: the service cannot check it now. A client must not believe
        // its credentials are wrong (issue 8): 503 with Retry-After, not 401.
        lrt_auth::Rejection::ReplayStoreUnavailable => {
            metrics::counter!("lrt_jwt_rejections_total", "reason" => "replay_store_unavailable")
                .increment(1);
            ApiError::Unavailable("the token replay store is unavailable; retry shortly".into())
        }
        rejection => {
            let reason = rejection.reason();
            metrics::counter!("lrt_jwt_rejections_total", "reason" => reason).increment(1);
            tracing::info!(reason, "JWT rejected");
            ApiError::Unauthorized
        }
    }
}

/// Whose rows an `/api/v1` caller may read and act on (issue 8: tenancy). Rows carry the issuer
/// and `tenant` of the call that created them (`evaluation.client_iss`, `evaluation.tenant`;
/// pages through their evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    /// Every tenant: a caller whose issuer is one of `quality_issuers`, or a service without
    /// authentication (loopback development only).
    All,
    /// The caller's own issuer and tenant (a token without `tenant` sees the rows created
    /// without one).
    Own { iss: String, tenant: Option<String> },
}

impl Tenancy {
    /// The tenancy of a verified caller under the configured quality issuers.
    pub fn of(client: Option<&VerifiedClient>, quality_issuers: &[String]) -> Tenancy {
        match client {
            None => Tenancy::All,
            Some(c) if quality_issuers.contains(&c.iss) => Tenancy::All,
            Some(c) => Tenancy::Own {
                iss: c.iss.clone(),
                tenant: c.tenant.clone(),
            },
        }
    }

    /// `(iss, tenant)` to bind for SQL: `iss` is `None` for [`Tenancy::All`].
    pub fn binds(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Tenancy::All => (None, None),
            Tenancy::Own { iss, tenant } => (Some(iss), tenant.as_deref()),
        }
    }
}

/// Loads every trusted issuer's JWK Set (`jwks_url`) at start, then again after a pause (1 s,
/// doubling up to 30 s) for those that failed, until all are loaded or the service stops.
pub async fn load_jwks(
    auth: std::sync::Arc<Auth>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Auth::Jwt(verifier) = &*auth else {
        return;
    };
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        let pending = verifier.load_jwks().await;
        if pending.is_empty() {
            return;
        }
        tracing::warn!(
            pending = pending.len(),
            retry_in_s = pause.as_secs(),
            "JWK Sets not loaded yet: not ready"
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(30));
    }
}
