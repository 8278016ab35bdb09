//! The quality dashboard: `/dashboard`, a page served by `lrt serve` itself. Plain HTML, CSS and
//! JavaScript modules compiled into the binary ([`assets`]; no build step, no Node at run time,
//! no request leaving the service), reading `/api/v1/quality/…` and `/api/v1/evaluations/{id}`
//! with the signed-in person's session, and posts adjudication files to
//! `/api/v1/quality/validation`.
//!
//! * [`config`]: `[dashboard]` (proxy or OpenID Connect, and who sees what);
//! * [`identity`]: the signed-in person of a request (proxy assertion or session cookie), their
//!   tenancy and the CSRF check; `/api/v1`'s [`crate::service::auth::ApiCaller`] accepts them;
//! * [`oidc`]: the OpenID Connect sign-in (authorization code + PKCE), [`sessions`] its rows;
//! * [`assets`]: the embedded files.
//!
//! Routes: `GET /dashboard` (overview), `GET /dashboard/evaluations/{id}` (one evaluation) and
//! `GET /dashboard/validation` (silent-mode validation of an adjudication file) answer the same
//! HTML (`Cache-Control: no-store`); the page's module reads the path. With
//! OpenID Connect, they redirect a browser without a valid session to `/dashboard/login`.
//! `GET /dashboard/assets/{file}`; `GET /dashboard/session` (who is signed in, JSON, in the
//! OpenAPI document);
//! `GET /dashboard/login`, `GET /dashboard/callback`, `POST /dashboard/logout` (OpenID Connect).
//! Every answer carries a strict Content-Security-Policy (`default-src 'self'`, no inline script
//! or style), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `frame-ancestors 'none'`.

pub mod assets;
pub mod config;
pub mod identity;
pub mod oidc;
pub mod sessions;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::service::auth::Tenancy;
use crate::service::error::ApiError;
use crate::service::state::{AppState, Auth};
use identity::DashboardAuth;

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/evaluations/{id}", get(evaluation_page))
        .route("/dashboard/validation", get(page))
        .route("/dashboard/assets/{file}", get(asset))
        .route("/dashboard/session", get(session))
        .route("/dashboard/login", get(oidc::login))
        .route("/dashboard/callback", get(oidc::callback))
        .route("/dashboard/logout", post(oidc::logout))
        .layer(axum::middleware::map_response(security_headers))
}

/// The security headers of every dashboard answer.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The page (the same document for every dashboard path; never cached). With OpenID Connect, a
/// browser without a valid session is sent straight to the sign-in, back to this path after.
async fn page(State(state): State<AppState>, parts: Parts) -> Response {
    if matches!(&*state.dashboard_auth, DashboardAuth::Oidc(_)) {
        match identity::user(&state, &parts).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(ApiError::Unauthorized) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/dashboard", |p| p.as_str());
                let mut login = String::from("/dashboard/login?");
                login.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("return_to", here)
                        .finish(),
                );
                return Redirect::to(&login).into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        assets::INDEX_HTML,
    )
        .into_response()
}

async fn evaluation_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    if uuid::Uuid::parse_str(&id).is_err() {
        return ApiError::NotFound("no such evaluation".into()).into_response();
    }
    page(State(state), parts).await
}

async fn asset(Path(file): Path<String>, parts: Parts) -> Response {
    let Some(asset) = assets::find(&file) else {
        return ApiError::NotFound("no such dashboard file".into()).into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag()).unwrap_or(HeaderValue::from_static("\"0\""));
    let cache = HeaderValue::from_static("private, max-age=300, must-revalidate");
    if parts
        .headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == etag)
    {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        asset.bytes,
    )
        .into_response()
}

/// How a tenancy reads on the page.
fn scope(tenancy: &Tenancy) -> String {
    match tenancy {
        Tenancy::All => "all tenants".into(),
        Tenancy::Own { iss, tenant } => match tenant {
            Some(t) => format!("tenant {t} of {iss}"),
            None => format!("calls of {iss} without a tenant"),
        },
    }
}

/// `GET /dashboard/session`: who is signed in, or how to sign in (`signed_in: false`).
async fn session(State(state): State<AppState>, parts: Parts) -> Response {
    let mode = state.dashboard_auth.mode();
    let user = identity::user(&state, &parts).await;
    match user {
        Ok(Some(user)) => axum::Json(json!({
            "signed_in": true,
            "mode": mode,
            "name": user.name,
            "scope": scope(&user.tenancy),
            // Behind a proxy any non-empty value passes the CSRF check.
            "csrf": user.csrf.as_deref().unwrap_or("proxy"),
            "logout": matches!(&*state.dashboard_auth, DashboardAuth::Oidc(_)),
        }))
        .into_response(),
        Ok(None) if matches!(&*state.auth, Auth::InsecureNone) => axum::Json(json!({
            "signed_in": true,
            "mode": mode,
            "name": "development (authentication off)",
            "scope": scope(&Tenancy::All),
            "csrf": "development",
            "logout": false,
        }))
        .into_response(),
        Ok(None) | Err(ApiError::Unauthorized) => (
            StatusCode::OK,
            axum::Json(json!({
                "signed_in": false,
                "mode": mode,
                "login": matches!(&*state.dashboard_auth, DashboardAuth::Oidc(_))
                    .then_some("/dashboard/login"),
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
