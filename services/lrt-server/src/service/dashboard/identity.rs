//! Who is using the dashboard: a person signed in by the identity-aware proxy (its signed
//! assertion on every request) or by OpenID Connect (a session cookie), mapped by
//! `[dashboard.access]` to the [`Tenancy`] that scopes `/api/v1` as it does for JWT callers.
//!
//! A request that changes something (any method but GET, HEAD, OPTIONS) must also carry the
//! `X-LRT-CSRF` header: with a session, equal to the session's token (constant-time compare);
//! behind a proxy, any non-empty value, and an `Origin`, when sent, equal to the dashboard's.
//! A cross-site page cannot add a custom header without a CORS preflight, and the service's CORS
//! policy does not allow this one. Nothing of an assertion, a cookie or a token is logged.

use axum::http::request::Parts;
use axum::http::{HeaderName, Method, header};
use lrt_auth::{Assertion, AssertionVerifier};
use sha2::{Digest, Sha256};

use super::config::AccessConfig;
use super::sessions;
use crate::service::auth::Tenancy;
use crate::service::error::ApiError;
use crate::service::state::AppState;

/// The header a dashboard request that changes something must carry.
pub const CSRF_HEADER: &str = "x-lrt-csrf";
/// The session cookie of OpenID Connect mode.
pub const SESSION_COOKIE: &str = "lrt_session";

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct DashboardUser {
    /// What the page shows as the person (email, else `sub`).
    pub name: String,
    pub tenancy: Tenancy,
    /// The session's CSRF token (None behind a proxy: any non-empty header value).
    pub csrf: Option<String>,
}

/// How people sign in.
pub enum DashboardAuth {
    /// No sign-in configured: the data needs an `/api/v1` JWT.
    Off,
    /// The identity-aware proxy's assertion header.
    Proxy {
        header: HeaderName,
        verifier: Box<AssertionVerifier>,
        access: AccessConfig,
    },
    /// OpenID Connect sessions.
    Oidc(Box<super::oidc::Oidc>),
}

impl DashboardAuth {
    pub fn mode(&self) -> &'static str {
        match self {
            DashboardAuth::Off => "off",
            DashboardAuth::Proxy { .. } => "proxy",
            DashboardAuth::Oidc(_) => "oidc",
        }
    }
}

/// The tenancy `access` grants the person of `assertion`; None: no tenancy (403).
pub fn tenancy_of(assertion: &Assertion, access: &AccessConfig) -> Option<Tenancy> {
    if let Some(claim) = &access.all_tenants_claim
        && assertion
            .strings(claim)
            .iter()
            .any(|v| access.all_tenants_values.iter().any(|a| a == v))
    {
        return Some(Tenancy::All);
    }
    match (&access.tenant_claim, &access.tenant_issuer) {
        (Some(claim), Some(iss)) => {
            assertion
                .string(claim)
                .filter(|t| !t.is_empty())
                .map(|t| Tenancy::Own {
                    iss: iss.clone(),
                    tenant: Some(t.to_string()),
                })
        }
        _ => None,
    }
}

/// The name the page shows for the person of `assertion`.
pub fn display_name(assertion: &Assertion) -> String {
    assertion
        .string("email")
        .or(assertion.sub.as_deref())
        .unwrap_or("signed-in user")
        .to_string()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// SHA-256 of a secret, as stored (a database dump holds no usable session id).
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn rejected(reason: &'static str) -> ApiError {
    metrics::counter!("lrt_dashboard_rejections_total", "reason" => reason).increment(1);
    tracing::info!(reason, "dashboard sign-in rejected");
    ApiError::Unauthorized
}

/// The signed-in person of a request, if it carries a proxy assertion or a session cookie:
/// `Ok(None)` when it carries neither (the caller then tries a JWT), an error when what it
/// carries is not valid, or when a change comes without its CSRF header.
pub async fn user(state: &AppState, parts: &Parts) -> Result<Option<DashboardUser>, ApiError> {
    let user = match &*state.dashboard_auth {
        DashboardAuth::Off => return Ok(None),
        DashboardAuth::Proxy {
            header,
            verifier,
            access,
        } => {
            let Some(value) = parts.headers.get(header) else {
                return Ok(None);
            };
            let token = value.to_str().map_err(|_| rejected("malformed"))?;
            let assertion = verifier
                .verify(token.trim())
                .await
                .map_err(|r| rejected(r.reason()))?;
            let tenancy = tenancy_of(&assertion, access).ok_or_else(|| {
                metrics::counter!("lrt_dashboard_rejections_total", "reason" => "no_tenancy")
                    .increment(1);
                ApiError::Forbidden(
                    "your account is not granted access to any tenant's LRT data".into(),
                )
            })?;
            DashboardUser {
                name: display_name(&assertion),
                tenancy,
                csrf: None,
            }
        }
        DashboardAuth::Oidc(_) => {
            let Some(id) = cookie(parts, SESSION_COOKIE) else {
                return Ok(None);
            };
            sessions::find(&state.pool, &digest(id))
                .await?
                .ok_or_else(|| rejected("session_unknown_or_expired"))?
        }
    };
    check_csrf(state, parts, &user)?;
    Ok(Some(user))
}

/// The CSRF check of a request that changes something (see the module documentation).
fn check_csrf(state: &AppState, parts: &Parts, user: &DashboardUser) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let forbidden = || {
        metrics::counter!("lrt_dashboard_rejections_total", "reason" => "csrf").increment(1);
        ApiError::Forbidden(format!(
            "a dashboard request that changes something needs the {CSRF_HEADER} header of its session"
        ))
    };
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(forbidden)?;
    if let Some(expected) = &user.csrf
        && !ring_eq(sent.as_bytes(), expected.as_bytes())
    {
        return Err(forbidden());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let own = state.dashboard.origin().ascii_serialization();
        if origin.to_str().ok() != Some(own.as_str()) {
            return Err(forbidden());
        }
    }
    Ok(())
}

/// Constant-time equality.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assertion(claims: serde_json::Value) -> Assertion {
        Assertion {
            iss: "https://proxy".into(),
            sub: Some("u1".into()),
            exp: chrono::DateTime::from_timestamp(2_000_000_000, 0).expect("a time"),
            claims: claims.as_object().expect("an object").clone(),
        }
    }

    fn access() -> AccessConfig {
        AccessConfig {
            all_tenants_claim: Some("groups".into()),
            all_tenants_values: vec!["lrt-quality".into()],
            tenant_claim: Some("tenant".into()),
            tenant_issuer: Some("https://ehr-a".into()),
        }
    }

    #[test]
    fn claims_map_to_a_tenancy() {
        let quality = assertion(json!({"groups": ["staff", "lrt-quality"], "tenant": "a"}));
        assert_eq!(tenancy_of(&quality, &access()), Some(Tenancy::All));
        let one = assertion(json!({"groups": "staff", "tenant": "hospital-a"}));
        assert_eq!(
            tenancy_of(&one, &access()),
            Some(Tenancy::Own {
                iss: "https://ehr-a".into(),
                tenant: Some("hospital-a".into())
            })
        );
        let none = assertion(json!({"groups": ["staff"], "tenant": ""}));
        assert_eq!(tenancy_of(&none, &access()), None);
        let only_groups = AccessConfig {
            tenant_claim: None,
            tenant_issuer: None,
            ..access()
        };
        assert_eq!(tenancy_of(&one, &only_groups), None);
    }

    #[test]
    fn the_name_is_the_email_else_sub() {
        assert_eq!(display_name(&assertion(json!({"email": "a@b"}))), "a@b");
        assert_eq!(display_name(&assertion(json!({}))), "u1");
    }

    #[test]
    fn constant_time_equality() {
        assert!(ring_eq(b"abc", b"abc"));
        assert!(!ring_eq(b"abc", b"abd"));
        assert!(!ring_eq(b"abc", b"ab"));
    }
}
