//! OpenID Connect sign-in for the dashboard: the authorization code flow with PKCE (RFC 7636,
//! `S256`) against the configured provider, on the project's own HTTP client (reqwest over
//! rustls; no OIDC crate).
//!
//! * `GET /dashboard/login?return_to=/dashboard/…`: a random `state`, `nonce` and PKCE verifier
//!   are stored (their digest and values, 10 minutes, `dashboard_login`), the `state` is also set
//!   in a short `lrt_login` cookie (binding the callback to this browser), and the browser is
//!   sent to the provider's authorization endpoint.
//! * `GET /dashboard/callback?code&state`: the `state` must equal the cookie's and name a login
//!   under way (used once), the `iss` parameter (RFC 9207), when sent, the issuer; the code is
//!   exchanged at the token endpoint with the verifier and, for a confidential client, the
//!   secret: HTTP Basic of the form-urlencoded id and secret (`client_secret_basic`, RFC 6749
//!   §2.3.1), or `client_secret` in the form when the discovery document lists
//!   `client_secret_post` and not `client_secret_basic`; the ID token is verified
//!   ([`lrt_auth::AssertionVerifier`]: the provider's JWK Set, `iss`, `aud` = client id, times
//!   within 60 s of clock skew), its `nonce` compared and its `azp`, when present, must be the
//!   client id (several audiences need one); the claims are mapped to a tenancy
//!   (`[dashboard.access]`, 403 without one); a session is opened (`dashboard_session`) and its
//!   random id set in the `lrt_session` cookie (HttpOnly, SameSite=Lax, Secure unless the
//!   dashboard is plain http on a loopback address, Max-Age the session's lifetime). A callback
//!   that fails answers a short HTML page (401 refused, 403 no tenancy, 503 the provider
//!   unreachable or failing with a 5xx) with a link to start again, and opens nothing.
//! * `POST /dashboard/logout` (with the session's CSRF header): the session is deleted, the
//!   cookie cleared; the answer names the provider's `end_session_endpoint` when it has one.
//!
//! The discovery document is read on the first login (a provider that is down does not stop the
//! service) and kept. No code, token, cookie or claim value is logged.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use lrt_auth::{AssertionConfig, AssertionVerifier};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config::{AccessConfig, OidcConfig};
use super::identity::{self, DashboardAuth, DashboardUser, SESSION_COOKIE};
use super::sessions::{self, PendingLogin};
use crate::service::error::ApiError;
use crate::service::state::AppState;

const LOGIN_COOKIE: &str = "lrt_login";
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// The provider's endpoints and a verifier of its ID tokens.
pub struct Discovered {
    pub authorization_endpoint: url::Url,
    pub token_endpoint: url::Url,
    pub end_session_endpoint: Option<url::Url>,
    pub verifier: AssertionVerifier,
    /// How a confidential client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
}

/// The client authentication method at the token endpoint (OpenID Connect Core §9) of a client
/// with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic, the id and secret form-urlencoded first (RFC 6749
    /// §2.3.1). The default, and what a provider that lists no methods supports.
    Basic,
    /// `client_secret_post`: `client_secret` in the form, for a provider that lists it and not
    /// `client_secret_basic`.
    Post,
}

impl ClientAuth {
    /// The method of a discovery document's `token_endpoint_auth_methods_supported`.
    pub fn of(supported: Option<&[String]>) -> ClientAuth {
        match supported {
            Some(methods)
                if !methods.iter().any(|m| m == "client_secret_basic")
                    && methods.iter().any(|m| m == "client_secret_post") =>
            {
                ClientAuth::Post
            }
            _ => ClientAuth::Basic,
        }
    }
}

/// The `Authorization` value of `client_secret_basic`: `id:secret`, each form-urlencoded first
/// (RFC 6749 §2.3.1), in base64.
fn basic_credentials(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(client_id),
            encode(secret)
        ))
    )
}

/// The configured provider and client.
pub struct Oidc {
    pub config: OidcConfig,
    pub access: AccessConfig,
    secret: Option<SecretString>,
    http: reqwest::Client,
    discovered: tokio::sync::OnceCell<Discovered>,
    /// `{dashboard}/dashboard/callback`.
    pub redirect_uri: String,
    /// Whether cookies are `Secure` (all but plain http on loopback).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    allow_loopback_http: bool,
}

/// Why sign-in cannot be set up at start.
#[derive(Debug, thiserror::Error)]
#[error("dashboard.oidc: {0}")]
pub struct OidcSetupError(String);

impl Oidc {
    pub fn new(
        config: OidcConfig,
        access: AccessConfig,
        dashboard: &url::Url,
        session_ttl: Duration,
        allow_loopback_http: bool,
    ) -> Result<Oidc, OidcSetupError> {
        let secret = crate::service::state::read_secret(
            config.client_secret_file.as_deref(),
            config.client_secret_env.as_deref(),
            "LRT_DASHBOARD_CLIENT_SECRET",
        )
        .map_err(OidcSetupError)?;
        lrt_fhir::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lrt-dashboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcSetupError(format!("HTTP client: {e}")))?;
        let loopback = matches!(
            dashboard.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]")
        );
        Ok(Oidc {
            config,
            access,
            secret,
            http,
            discovered: tokio::sync::OnceCell::new(),
            redirect_uri: format!(
                "{}/dashboard/callback",
                dashboard.as_str().trim_end_matches('/')
            ),
            secure_cookies: !(dashboard.scheme() == "http" && loopback),
            session_ttl,
            allow_loopback_http,
        })
    }

    /// The discovery document, read once.
    async fn discovered(&self) -> Result<&Discovered, ApiError> {
        self.discovered.get_or_try_init(|| self.discover()).await
    }

    async fn discover(&self) -> Result<Discovered, ApiError> {
        #[derive(Deserialize)]
        struct Document {
            issuer: String,
            authorization_endpoint: url::Url,
            token_endpoint: url::Url,
            jwks_uri: url::Url,
            #[serde(default)]
            end_session_endpoint: Option<url::Url>,
            #[serde(default)]
            token_endpoint_auth_methods_supported: Option<Vec<String>>,
        }
        let unavailable = |what: String| {
            tracing::warn!(error = %what, "OpenID Connect discovery failed");
            ApiError::Unavailable("the sign-in provider cannot be reached; retry shortly".into())
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status().as_u16())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(format!("discovery document: {}", e.without_url())))?;
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("discovery document: {e}")))?;
        if doc.issuer != self.config.issuer {
            return Err(unavailable(
                "discovery document names another issuer".into(),
            ));
        }
        let mut verifier = AssertionConfig::new(doc.issuer.clone(), self.config.client_id.clone());
        verifier.jwks_url = Some(doc.jwks_uri);
        verifier.allow_insecure_loopback_http = self.allow_loopback_http;
        let verifier = AssertionVerifier::new(verifier).map_err(|e| unavailable(e.to_string()))?;
        Ok(Discovered {
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            end_session_endpoint: doc.end_session_endpoint,
            verifier,
            client_auth: ClientAuth::of(doc.token_endpoint_auth_methods_supported.as_deref()),
        })
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// 32 random bytes, base64url (43 characters): a `state`, `nonce`, verifier, session id or
/// CSRF token.
pub fn random_token() -> Result<String, ApiError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("no system randomness"))?;
    Ok(B64.encode(bytes))
}

fn oidc(state: &AppState) -> Result<&Oidc, ApiError> {
    match &*state.dashboard_auth {
        DashboardAuth::Oidc(o) => Ok(o),
        _ => Err(ApiError::NotFound(
            "OpenID Connect sign-in is not configured".into(),
        )),
    }
}

/// A `return_to` that stays on the dashboard (no open redirect).
fn dashboard_path(return_to: Option<&str>) -> String {
    match return_to {
        Some(p)
            if (p == "/dashboard" || p.starts_with("/dashboard/"))
                && !p.contains("//")
                && !p.contains('\\')
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/dashboard".to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let oidc = oidc(&state)?;
    let provider = oidc.discovered().await?;
    let (login_state, nonce, verifier) = (random_token()?, random_token()?, random_token()?);
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(LOGIN_TTL).unwrap_or(chrono::Duration::minutes(10));
    sessions::start_login(
        &state.pool,
        &identity::digest(&login_state),
        &PendingLogin {
            nonce: nonce.clone(),
            pkce_verifier: verifier,
            return_to: dashboard_path(q.return_to.as_deref()),
        },
        expires,
    )
    .await?;
    let mut url = provider.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.config.client_id)
        .append_pair("redirect_uri", &oidc.redirect_uri)
        .append_pair("scope", &oidc.config.scopes)
        .append_pair("state", &login_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let cookie = oidc.cookie(
        LOGIN_COOKIE,
        &login_state,
        "/dashboard/callback",
        LOGIN_TTL.as_secs(),
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response())
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// The issuer of the answer (RFC 9207), when the provider names it.
    iss: Option<String>,
}

fn refused(reason: &'static str) -> ApiError {
    metrics::counter!("lrt_dashboard_rejections_total", "reason" => reason).increment(1);
    tracing::info!(reason, "dashboard sign-in refused");
    ApiError::Unauthorized
}

/// `GET /dashboard/callback`: the end of a login. Whatever fails, the person gets a short HTML
/// page with the status (401 refused, 403 no tenancy, 503 provider unavailable) and a link to
/// start again, no session, and the login cookie cleared.
pub async fn callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackQuery>,
    parts: Parts,
) -> Response {
    let oidc = match oidc(&state) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    match finish_login(&state, oidc, q, &parts).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = sign_in_failed(e);
            response.headers_mut().append(
                header::SET_COOKIE,
                oidc.cookie(LOGIN_COOKIE, "", "/dashboard/callback", 0),
            );
            response
        }
    }
}

/// Checks the callback, exchanges the code, verifies the ID token and opens the session.
async fn finish_login(
    state: &AppState,
    oidc: &Oidc,
    q: CallbackQuery,
    parts: &Parts,
) -> Result<Response, ApiError> {
    if q.error.is_some() {
        return Err(refused("provider_error"));
    }
    let (Some(code), Some(login_state)) = (q.code, q.state) else {
        return Err(ApiError::BadRequest(
            "the callback needs code and state".into(),
        ));
    };
    if q.iss
        .as_deref()
        .is_some_and(|iss| iss != oidc.config.issuer)
    {
        return Err(refused("callback_issuer"));
    }
    if identity::cookie(parts, LOGIN_COOKIE) != Some(login_state.as_str()) {
        return Err(refused("state_not_of_this_browser"));
    }
    let login = sessions::take_login(&state.pool, &identity::digest(&login_state))
        .await?
        .ok_or_else(|| refused("state_unknown_or_expired"))?;
    let provider = oidc.discovered().await?;
    let id_token = exchange(oidc, provider, &code, &login.pkce_verifier).await?;
    let id_token = provider
        .verifier
        .verify(&id_token)
        .await
        .map_err(|r| refused(r.reason()))?;
    if id_token.string("nonce") != Some(login.nonce.as_str()) {
        return Err(refused("nonce"));
    }
    // OpenID Connect Core §3.1.3.7: several audiences need an `azp`, and an `azp` must be us.
    let audiences = match id_token.claims.get("aud") {
        Some(serde_json::Value::Array(a)) => a.len(),
        _ => 1,
    };
    match id_token.string("azp") {
        Some(azp) if azp != oidc.config.client_id => return Err(refused("azp")),
        None if audiences > 1 => return Err(refused("azp")),
        _ => {}
    }
    let tenancy = identity::tenancy_of(&id_token, &oidc.access).ok_or_else(|| {
        metrics::counter!("lrt_dashboard_rejections_total", "reason" => "no_tenancy").increment(1);
        ApiError::Forbidden("your account is not granted access to any tenant's LRT data".into())
    })?;
    let session_id = random_token()?;
    let user = DashboardUser {
        name: identity::display_name(&id_token),
        tenancy,
        csrf: Some(random_token()?),
    };
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(oidc.session_ttl).unwrap_or(chrono::Duration::hours(8));
    sessions::open(&state.pool, &identity::digest(&session_id), &user, expires).await?;
    let mut response = Redirect::to(&login.return_to).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        oidc.cookie(SESSION_COOKIE, &session_id, "/", oidc.session_ttl.as_secs()),
    );
    headers.append(
        header::SET_COOKIE,
        oidc.cookie(LOGIN_COOKIE, "", "/dashboard/callback", 0),
    );
    Ok(response)
}

/// The code exchanged at the token endpoint for the ID token (the verifier proves this login
/// asked for the code; a confidential client authenticates as the provider says it can).
async fn exchange(
    oidc: &Oidc,
    provider: &Discovered,
    code: &str,
    pkce_verifier: &str,
) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        id_token: String,
    }
    let secret = oidc.secret.as_ref().map(|s| s.expose_secret());
    // Built apart: the serializer is not `Send`, and must not live across an await.
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &oidc.redirect_uri)
            .append_pair("code_verifier", pkce_verifier)
            .append_pair("client_id", &oidc.config.client_id);
        if let (Some(secret), ClientAuth::Post) = (secret, provider.client_auth) {
            form.append_pair("client_secret", secret);
        }
        form.finish()
    };
    let mut request = oidc
        .http
        .post(provider.token_endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let (Some(secret), ClientAuth::Basic) = (secret, provider.client_auth) {
        request = request.header(
            header::AUTHORIZATION,
            basic_credentials(&oidc.config.client_id, secret),
        );
    }
    let unavailable = || {
        ApiError::Unavailable(
            "the sign-in provider cannot be reached or failed; retry shortly".into(),
        )
    };
    let response = request.body(form).send().await.map_err(|e| {
        tracing::warn!(error = %e.without_url(), "token endpoint unreachable");
        unavailable()
    })?;
    let status = response.status();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), "token endpoint failed");
        metrics::counter!("lrt_dashboard_rejections_total", "reason" => "token_endpoint_failed")
            .increment(1);
        return Err(unavailable());
    }
    if !status.is_success() {
        tracing::info!(status = status.as_u16(), "token endpoint refused the code");
        return Err(refused("code_refused"));
    }
    let body = response
        .bytes()
        .await
        .map_err(|_| refused("token_response_malformed"))?;
    let tokens: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| refused("token_response_malformed"))?;
    Ok(tokens.id_token)
}

/// The page of a sign-in that failed: its status, what happened in a sentence, a link to start
/// again. No internals (a 500's cause is logged, not shown).
fn sign_in_failed(error: ApiError) -> Response {
    let status = error.status();
    let text = match &error {
        ApiError::Unauthorized => "The sign-in was refused: it had expired, had already been used, \
             was not started in this browser, or the sign-in provider's answer could not be verified."
            .to_string(),
        ApiError::Internal(cause) => {
            tracing::error!(cause = %cause, "internal error");
            "The sign-in failed because of an internal error.".to_string()
        }
        other => other.to_string(),
    };
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\n\
         <body><h1>Sign-in failed</h1><p>{escaped}</p>\
         <p><a href=\"/dashboard/login\">Sign in again</a></p></body></html>\n"
    );
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        html,
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
        .extensions_mut()
        .insert(crate::service::error::ErrorCode(error.code()));
    response
}

/// Ends the session (the caller's CSRF header is checked by [`identity::user`]).
pub async fn logout(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let oidc = oidc(&state)?;
    if identity::user(&state, &parts).await?.is_none() {
        return Err(ApiError::Unauthorized);
    }
    if let Some(id) = identity::cookie(&parts, SESSION_COOKIE) {
        sessions::close(&state.pool, &identity::digest(id)).await?;
    }
    let end_session = oidc
        .discovered
        .get()
        .and_then(|d| d.end_session_endpoint.as_ref())
        .map(|u| u.to_string());
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, oidc.cookie(SESSION_COOKIE, "", "/", 0))],
        axum::Json(serde_json::json!({"signed_out": true, "end_session_endpoint": end_session})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_the_dashboard() {
        assert_eq!(
            dashboard_path(Some("/dashboard/evaluations/x")),
            "/dashboard/evaluations/x"
        );
        assert_eq!(dashboard_path(Some("/dashboard")), "/dashboard");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/dashboardx",
            "/dashboard//evil",
            "/api/v1/x",
            "/dashboard/\\evil",
        ] {
            assert_eq!(dashboard_path(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(dashboard_path(None), "/dashboard");
    }

    #[test]
    fn the_client_authenticates_by_basic_unless_only_post_is_offered() {
        let methods = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ClientAuth::of(None), ClientAuth::Basic);
        assert_eq!(
            ClientAuth::of(Some(&methods(&[
                "client_secret_basic",
                "client_secret_post"
            ]))),
            ClientAuth::Basic
        );
        assert_eq!(
            ClientAuth::of(Some(&methods(&["private_key_jwt", "client_secret_post"]))),
            ClientAuth::Post
        );
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_first() {
        // RFC 6749 §2.3.1: "a b:c/d" is sent as "a+b%3Ac%2Fd".
        let value = basic_credentials("lrt dashboard", "s:e/c+r%t");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.strip_prefix("Basic ").expect("Basic"))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("text"),
            "lrt+dashboard:s%3Ae%2Fc%2Br%25t"
        );
    }

    #[test]
    fn random_tokens_are_43_characters_and_differ() {
        let (a, b) = (random_token().expect("a"), random_token().expect("b"));
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
