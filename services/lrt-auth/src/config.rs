//! Configuration: the trusted CDS clients (issuers), their keys and the verification limits.
//!
//! Every type here is `serde::Deserialize` with `deny_unknown_fields`, so a misspelt key in the
//! service's TOML or YAML file (`tenant:` for `tenants:`) is an error at startup instead of a
//! silently weaker check. Durations are whole seconds in fields named `*_secs`.
//!
//! ```yaml
//! issuers:
//!   - iss: https://sandbox.cds-hooks.org
//!     jku_allow: [https://sandbox.cds-hooks.org/.well-known/jwks.json]
//!   - iss: https://ehr.example.org
//!     jwks_file: /etc/lrt/ehr-jwks.json      # exchanged out of band
//!     algorithms: [ES384, RS384, RS256]       # RS256 opted in for this client
//!     tenants: [hospital-a]
//! clock_skew_secs: 60
//! ```
//!
//! Nothing is trusted by default: there is no default issuer, `dev_mode_key_file` is off, and
//! plain `http` key URLs are refused unless `allow_insecure_loopback_http` is set (tests only),
//! and even then only for loopback hosts.

use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

/// A JWS signature algorithm that may be allowed for an issuer.
///
/// Only asymmetric algorithms exist here: `none` and the HMAC family (`HS256`, ...) are not
/// representable, so they cannot be configured (CDS Hooks 2.0 "SHALL NOT", R201/R203).
/// `ES384` and `RS384` are the spec's recommendation (R205) and the default; `ES256` and
/// `RS256` must be opted into per issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum JwtAlgorithm {
    /// ECDSA with P-256 and SHA-256 (opt-in).
    ES256,
    /// ECDSA with P-384 and SHA-384 (recommended).
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (opt-in).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (recommended).
    RS384,
}

impl JwtAlgorithm {
    /// The JOSE name (`"ES384"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
        }
    }

    /// The algorithm named exactly `name` (JOSE names are case-sensitive).
    pub(crate) fn from_name(name: &str) -> Option<JwtAlgorithm> {
        match name {
            "ES256" => Some(JwtAlgorithm::ES256),
            "ES384" => Some(JwtAlgorithm::ES384),
            "RS256" => Some(JwtAlgorithm::RS256),
            "RS384" => Some(JwtAlgorithm::RS384),
            _ => None,
        }
    }
}

/// The algorithms allowed when an issuer does not list its own: ES384 and RS384 (R205).
pub fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::ES384, JwtAlgorithm::RS384]
}

/// One trusted CDS client, identified by the `iss` its JWTs carry.
///
/// Keys come from:
/// * the JWT's `jku` header, **only** if it matches an entry of `jku_allow` (otherwise the
///   token is rejected and the URL is never fetched); then only that set is used;
/// * without `jku` (the spec's "out of band" exchange, R199): the keys of `jwks_file`, then
///   the dev-mode key file if one is configured, then the JWK Set at `jwks_url`, the first
///   that has the token's `kid`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustedIssuer {
    /// The exact `iss` value (compared byte for byte).
    pub iss: String,
    /// Allowed `jku` URLs. An entry matches a `jku` with the same scheme, host and port and
    /// either the same path and query, or (when the entry's path ends with `/` and neither has
    /// a query) a path under the entry's path. `https` only (see
    /// [`AuthConfig::allow_insecure_loopback_http`]); no user info, no fragment.
    #[serde(default)]
    pub jku_allow: Vec<Url>,
    /// The issuer's JWK Set URL, used for tokens without `jku`.
    #[serde(default)]
    pub jwks_url: Option<Url>,
    /// A JWK Set file (public keys, `{"keys": [...]}`) read once at startup, used for tokens
    /// without `jku`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The signature algorithms accepted from this issuer (default ES384 and RS384).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// When set, the token's `tenant` claim is required and must be one of these.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
}

impl TrustedIssuer {
    /// An issuer with no key source yet and the default algorithms; set at least one of
    /// `jku_allow`, `jwks_url` or `jwks_file` before building a [`crate::Verifier`].
    pub fn new(iss: impl Into<String>) -> TrustedIssuer {
        TrustedIssuer {
            iss: iss.into(),
            jku_allow: Vec::new(),
            jwks_url: None,
            jwks_file: None,
            algorithms: default_algorithms(),
            tenants: None,
        }
    }
}

/// How remote JWK Sets are fetched and cached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct JwksConfig {
    /// Whole-request timeout of one fetch (default 5 s).
    pub timeout_secs: u64,
    /// The largest JWK Set body accepted (default 64 KiB).
    pub max_bytes: usize,
    /// How long a fetched set is used before it is fetched again (default 300 s).
    pub cache_ttl_secs: u64,
    /// The shortest time between two fetches of one URL, whatever triggers them (an unknown
    /// `kid`, an expired cache entry, a failed fetch). This is what stops a caller from forcing
    /// one fetch per request with made-up `kid`s (default 30 s; 0 disables it).
    pub min_refresh_interval_secs: u64,
    /// How long past `cache_ttl_secs` a set may still be used while it cannot be fetched
    /// (default 3600 s). A key removed from the set stops working at the next successful
    /// fetch, or at the latest after `cache_ttl_secs + max_stale_secs`.
    pub max_stale_secs: u64,
    /// The most fetches per minute of one URL, and of one issuer over the URLs that never
    /// served it keys (default 10). This bounds the traffic that tokens with many different
    /// allow-listed `jku` URLs can cause, without letting them block a key rotation at a URL
    /// that served keys before.
    pub max_fetches_per_minute: u32,
    /// The most JWK Set URLs kept in the cache (default 64); the least recently fetched is
    /// dropped first.
    pub max_cached_sets: usize,
}

impl Default for JwksConfig {
    fn default() -> JwksConfig {
        JwksConfig {
            timeout_secs: 5,
            max_bytes: 64 * 1024,
            cache_ttl_secs: 300,
            min_refresh_interval_secs: 30,
            max_stale_secs: 3600,
            max_fetches_per_minute: 10,
            max_cached_sets: 64,
        }
    }
}

fn default_clock_skew_secs() -> u64 {
    60
}

fn default_max_token_lifetime_secs() -> u64 {
    3600
}

/// The whole authentication configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The trusted CDS clients. A token whose `iss` is not here is rejected.
    pub issuers: Vec<TrustedIssuer>,
    /// Allowed clock difference for `exp`, `iat` and `nbf` (default 60 s).
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// The longest accepted token lifetime, `exp - iat` (default 3600 s). CDS Hooks 2.0 sets no
    /// limit; the cds-hooks best practices keep seen `jti`s "as long as the longest JWT
    /// lifetime (about an hour at most)", and the reference clients (sandbox, Inferno) use
    /// 5 minutes. Together with the `exp` check this also bounds how old `iat` can be, and it
    /// bounds how long the replay store must remember a `jti`.
    #[serde(default = "default_max_token_lifetime_secs")]
    pub max_token_lifetime_secs: u64,
    /// **Development only.** A JWK Set file whose keys are trusted, in addition to each
    /// issuer's own keys, for tokens of any configured issuer that carry no `jku`. Off unless
    /// set; [`crate::Verifier::dev_mode`] tells the server to warn loudly when it is on.
    #[serde(default)]
    pub dev_mode_key_file: Option<PathBuf>,
    /// Fetching and caching of remote JWK Sets.
    #[serde(default)]
    pub jwks: JwksConfig,
    /// Accept `http` (not only `https`) key URLs whose host is a loopback address
    /// (`127.0.0.0/8`, `::1`, `localhost`). For tests; off by default.
    #[serde(default)]
    pub allow_insecure_loopback_http: bool,
}

impl AuthConfig {
    /// A configuration with these issuers and every other setting at its default.
    pub fn new(issuers: Vec<TrustedIssuer>) -> AuthConfig {
        AuthConfig {
            issuers,
            clock_skew_secs: default_clock_skew_secs(),
            max_token_lifetime_secs: default_max_token_lifetime_secs(),
            dev_mode_key_file: None,
            jwks: JwksConfig::default(),
            allow_insecure_loopback_http: false,
        }
    }
}

/// Why a configuration cannot be used. Raised once, by [`crate::Verifier::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `issuers` is empty.
    #[error("no trusted issuer is configured")]
    NoIssuers,
    /// Two issuers have the same `iss`.
    #[error("issuer {iss:?} is configured twice")]
    DuplicateIssuer {
        /// The repeated `iss`.
        iss: String,
    },
    /// An issuer has an empty `iss`.
    #[error("an issuer has an empty `iss`")]
    EmptyIssuer,
    /// An issuer allows no algorithm.
    #[error("issuer {iss:?}: `algorithms` is empty")]
    NoAlgorithms {
        /// The issuer.
        iss: String,
    },
    /// An issuer has no `jku_allow`, `jwks_url` or `jwks_file` (and no dev-mode key file).
    #[error("issuer {iss:?} has no key source (jku_allow, jwks_url or jwks_file)")]
    NoKeySource {
        /// The issuer.
        iss: String,
    },
    /// An issuer's `tenants` list is empty, which would reject every token.
    #[error("issuer {iss:?}: `tenants` is empty (omit it to accept any tenant)")]
    EmptyTenants {
        /// The issuer.
        iss: String,
    },
    /// A `jwks_url` or `jku_allow` entry is not acceptable.
    #[error("issuer {iss:?}: key URL {url}: {reason}")]
    InsecureUrl {
        /// The issuer.
        iss: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key file cannot be read or holds no usable key.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A limit is out of its range.
    #[error("`{field}` {reason}")]
    InvalidLimit {
        /// The field.
        field: &'static str,
        /// Its range.
        reason: &'static str,
    },
    /// The HTTP client for JWK Set fetches cannot be built.
    #[error("JWKS HTTP client: {0}")]
    HttpClient(String),
}
