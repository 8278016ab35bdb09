//! `[dashboard]`: how people sign in to the quality dashboard and which rows they see.
//!
//! ```toml
//! # Behind an identity-aware proxy (Google IAP here):
//! [dashboard.proxy]
//! header = "X-Goog-IAP-JWT-Assertion"
//! issuer = "https://cloud.google.com/iap"
//! audience = "/projects/123456/global/backendServices/789"
//! jwks_url = "https://www.gstatic.com/iap/verify/public_key-jwk"
//!
//! # …or OpenID Connect (authorization code + PKCE) against the hospital's provider:
//! [dashboard.oidc]
//! issuer = "https://login.hospital.example/realms/staff"
//! client_id = "lrt-dashboard"
//! client_secret_file = "/run/secrets/lrt-dashboard-client-secret"
//!
//! # Who sees what (both modes):
//! [dashboard.access]
//! all_tenants_claim = "groups"          # a person whose `groups` holds "lrt-quality"…
//! all_tenants_values = ["lrt-quality"]  # …sees every tenant's rows
//! tenant_claim = "tenant"               # anyone else: the rows of this CDS client issuer
//! tenant_issuer = "https://ehr.hospital.example"  # and the tenant their claim names
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// The `[dashboard]` section. Without `proxy` or `oidc`, the page is served but its data needs
/// an `/api/v1` JWT (or `insecure_no_auth` on loopback, for development).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    pub proxy: Option<ProxyConfig>,
    pub oidc: Option<OidcConfig>,
    pub access: AccessConfig,
    /// How long an OpenID Connect session lasts (seconds; default 8 hours).
    pub session_ttl_s: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            proxy: None,
            oidc: None,
            access: AccessConfig::default(),
            session_ttl_s: 8 * 3600,
        }
    }
}

/// `[dashboard.proxy]`: the identity-aware proxy in front of the service, and its signed
/// assertion header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The header carrying the assertion (`X-Goog-IAP-JWT-Assertion`, `X-Pomerium-Jwt-Assertion`).
    pub header: String,
    /// The assertion's `iss`.
    pub issuer: String,
    /// The assertion's `aud`.
    pub audience: String,
    /// The proxy's JWK Set URL, or a file holding it.
    pub jwks_url: Option<url::Url>,
    pub jwks_file: Option<PathBuf>,
    /// Accepted algorithms (default ES256, ES384, RS256, RS384).
    pub algorithms: Option<Vec<lrt_auth::JwtAlgorithm>>,
}

/// `[dashboard.oidc]`: the OpenID Connect provider (authorization code flow with PKCE).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer; its discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, from a file or a variable (default `LRT_DASHBOARD_CLIENT_SECRET`);
    /// none: a public client (PKCE only).
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    /// Scopes asked for (default `openid email profile`).
    #[serde(default = "default_scopes")]
    pub scopes: String,
}

fn default_scopes() -> String {
    "openid email profile".into()
}

/// `[dashboard.access]`: from a person's claims to the rows they see (as `quality_issuers` and
/// the JWT's `tenant` do for `/api/v1` callers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// A claim (string or array of strings) that, holding one of `all_tenants_values`, grants
    /// every tenant's rows (the quality team).
    pub all_tenants_claim: Option<String>,
    pub all_tenants_values: Vec<String>,
    /// A claim naming the person's tenant: they see the rows that `tenant_issuer`'s calls
    /// created for that tenant.
    pub tenant_claim: Option<String>,
    pub tenant_issuer: Option<String>,
}

impl DashboardConfig {
    /// Checks what serde cannot; `issuers` are the trusted CDS clients of `[auth]`.
    pub fn check(&self, issuers: &[&str]) -> Result<(), String> {
        if self.proxy.is_some() && self.oidc.is_some() {
            return Err(
                "dashboard: configure either [dashboard.proxy] or [dashboard.oidc], not both"
                    .into(),
            );
        }
        if let Some(p) = &self.proxy {
            if axum::http::HeaderName::try_from(p.header.as_str()).is_err() {
                return Err(format!(
                    "dashboard.proxy.header {:?}: not a header name",
                    p.header
                ));
            }
            if p.header.eq_ignore_ascii_case("authorization")
                || p.header.eq_ignore_ascii_case("cookie")
            {
                return Err("dashboard.proxy.header: must be the proxy's own assertion header, not Authorization or Cookie".into());
            }
            if p.jwks_url.is_none() && p.jwks_file.is_none() {
                return Err(
                    "dashboard.proxy: give jwks_url or jwks_file (the proxy's public keys)".into(),
                );
            }
            if p.issuer.is_empty() || p.audience.is_empty() {
                return Err("dashboard.proxy: issuer and audience must not be empty".into());
            }
        }
        if let Some(o) = &self.oidc {
            let u = url::Url::parse(&o.issuer)
                .map_err(|e| format!("dashboard.oidc.issuer {:?}: {e}", o.issuer))?;
            let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
                return Err(format!(
                    "dashboard.oidc.issuer {:?}: must be https",
                    o.issuer
                ));
            }
            if o.client_id.trim().is_empty() {
                return Err("dashboard.oidc.client_id must not be empty".into());
            }
            if !o.scopes.split_whitespace().any(|s| s == "openid") {
                return Err("dashboard.oidc.scopes must include openid".into());
            }
        }
        let a = &self.access;
        if a.all_tenants_claim.is_some() == a.all_tenants_values.is_empty() {
            return Err(
                "dashboard.access: all_tenants_claim and all_tenants_values go together".into(),
            );
        }
        if a.tenant_claim.is_some() != a.tenant_issuer.is_some() {
            return Err("dashboard.access: tenant_claim and tenant_issuer go together".into());
        }
        if let Some(iss) = &a.tenant_issuer
            && !issuers.contains(&iss.as_str())
        {
            return Err(format!(
                "dashboard.access.tenant_issuer {iss:?} is not an issuer of [auth] (its tenants would see nothing)"
            ));
        }
        if (self.proxy.is_some() || self.oidc.is_some())
            && a.all_tenants_claim.is_none()
            && a.tenant_claim.is_none()
        {
            return Err("dashboard.access: say who sees what (all_tenants_claim/all_tenants_values, tenant_claim/tenant_issuer)".into());
        }
        if self.session_ttl_s == 0 || self.session_ttl_s > 7 * 24 * 3600 {
            return Err("dashboard.session_ttl_s must be 1 s to 7 days".into());
        }
        Ok(())
    }
}
