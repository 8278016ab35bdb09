//! A person's identity, signed by someone the service trusts to have authenticated them: the
//! assertion an identity-aware proxy adds to every request it lets through (Google IAP's
//! `X-Goog-IAP-JWT-Assertion`, Pomerium's `X-Pomerium-Jwt-Assertion`, …), or the ID token an
//! OpenID Connect provider returns at the end of a login. The quality dashboard uses both.
//!
//! The checks are those of [`crate::verifier`] where they apply to a person rather than a CDS
//! client, with the same JWK parsing, key cache and signature code:
//!
//! 1. shape (size, three base64url parts, JSON objects);
//! 2. header: an asymmetric algorithm the configuration allows (never `none` or `HS*`), a
//!    `kid`, no `crit`; `typ`, when present, is `JWT` (AWS ALB and some providers omit it);
//! 3. `iss` is the configured issuer, exactly;
//! 4. `aud` is, or contains, the configured audience (the proxy's backend id, or the OIDC client
//!    id);
//! 5. `exp` has not passed, `iat` is present and not in the future, `nbf` (if any) has passed,
//!    within the clock skew;
//! 6. the key: the configured JWK Set file's, else the configured JWK Set URL's (fetched with
//!    the rate-limited cache; the token's `jku` is never followed);
//! 7. the signature.
//!
//! There is no `jti` and no replay check: a proxy sends the same assertion with every request
//! of a session for its few minutes of life, and an ID token is used once, by the service itself,
//! right after it received it from the provider over TLS.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use url::Url;

use crate::config::{ConfigError, JwksConfig, JwtAlgorithm};
use crate::jwks::{FetchBudget, JwksCache, url_problem};
use crate::keys::{KeySet, read_key_file};
use crate::verifier::{header_algorithm, same_endpoint};
use crate::{Rejection, token};

/// Who signs the assertions and for whom.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AssertionConfig {
    /// The exact `iss` (e.g. `https://cloud.google.com/iap`, or the OIDC provider's issuer).
    pub issuer: String,
    /// The `aud` the assertions must name (IAP: `/projects/…/global/backendServices/…`; OIDC: the
    /// client id).
    pub audience: String,
    /// The issuer's JWK Set URL (fetched and cached).
    pub jwks_url: Option<Url>,
    /// A JWK Set file read once at start (instead of, or before, the URL).
    pub jwks_file: Option<PathBuf>,
    /// The signature algorithms accepted.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Allowed clock difference for `exp`, `iat` and `nbf`.
    pub clock_skew_secs: u64,
    /// Accept an `http` JWK Set URL on a loopback host (tests only).
    pub allow_insecure_loopback_http: bool,
    /// Fetching and caching the JWK Set.
    pub jwks: JwksConfig,
}

impl AssertionConfig {
    /// Assertions of `issuer` for `audience`, with every asymmetric algorithm allowed (proxies
    /// sign ES256, providers RS256), a 60 s clock skew and no key source yet.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> AssertionConfig {
        AssertionConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            jwks_file: None,
            algorithms: vec![
                JwtAlgorithm::ES256,
                JwtAlgorithm::ES384,
                JwtAlgorithm::RS256,
                JwtAlgorithm::RS384,
            ],
            clock_skew_secs: 60,
            allow_insecure_loopback_http: false,
            jwks: JwksConfig::default(),
        }
    }
}

/// An accepted assertion: only values signed by the trusted issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    /// The issuer (`iss`).
    pub iss: String,
    /// The person (`sub`), when present.
    pub sub: Option<String>,
    /// When the assertion expires.
    pub exp: DateTime<Utc>,
    /// Every claim, for the caller to map onto its own roles (`email`, `groups`, `tenant`, …).
    pub claims: Map<String, Value>,
}

impl Assertion {
    /// A claim as a list of strings: a string is a list of one, an array keeps its strings;
    /// anything else (or absent) is empty.
    pub fn strings(&self, claim: &str) -> Vec<&str> {
        match self.claims.get(claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// A claim that is a string.
    pub fn string(&self, claim: &str) -> Option<&str> {
        self.claims.get(claim).and_then(Value::as_str)
    }
}

/// Verifies the assertions of one issuer. Build it at start (it reads the key file and holds the
/// JWK Set cache); it is `Send + Sync`.
#[derive(Debug)]
pub struct AssertionVerifier {
    issuer: String,
    audience: String,
    algorithms: Vec<JwtAlgorithm>,
    clock_skew: i64,
    jwks_url: Option<Url>,
    static_keys: Option<Arc<KeySet>>,
    budget: FetchBudget,
    jwks: JwksCache,
}

impl AssertionVerifier {
    /// Checks the configuration and reads the key file.
    pub fn new(config: AssertionConfig) -> Result<AssertionVerifier, ConfigError> {
        if config.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        let iss = config.issuer.clone();
        if config.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms { iss });
        }
        if config.audience.is_empty() {
            return Err(ConfigError::InvalidLimit {
                field: "audience",
                reason: "must not be empty",
            });
        }
        if let Some(url) = &config.jwks_url
            && let Some(reason) = url_problem(url, config.allow_insecure_loopback_http)
        {
            return Err(ConfigError::InsecureUrl {
                iss,
                url: url.to_string(),
                reason,
            });
        }
        let static_keys = match &config.jwks_file {
            Some(path) => Some(Arc::new(read_key_file(path)?)),
            None => None,
        };
        if static_keys.is_none() && config.jwks_url.is_none() {
            return Err(ConfigError::NoKeySource { iss });
        }
        const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;
        if config.clock_skew_secs > TEN_YEARS {
            return Err(ConfigError::InvalidLimit {
                field: "clock_skew_secs",
                reason: "must be at most ten years",
            });
        }
        Ok(AssertionVerifier {
            issuer: config.issuer,
            audience: config.audience,
            algorithms: config.algorithms,
            clock_skew: i64::try_from(config.clock_skew_secs).unwrap_or(i64::MAX),
            jwks_url: config.jwks_url,
            static_keys,
            budget: FetchBudget::new(config.jwks.max_fetches_per_minute.max(1)),
            jwks: JwksCache::new(config.jwks)?,
        })
    }

    /// Verifies `token` (see the module documentation for the checks).
    pub async fn verify(&self, token: &str) -> Result<Assertion, Rejection> {
        let now = crate::now().timestamp();
        let decoded = token::decode(token)?;
        let (header, claims) = (&decoded.header, &decoded.claims);

        let alg = header_algorithm(&header.alg)?;
        if !self.algorithms.contains(&alg) {
            return Err(Rejection::AlgorithmNotAllowed);
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(Rejection::BadType);
        }
        if header.crit.is_some() {
            return Err(Rejection::CriticalHeader);
        }
        let kid = header
            .kid
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or(Rejection::MissingKid)?;

        let iss = claims.iss.as_deref().ok_or(Rejection::MissingIssuer)?;
        if iss != self.issuer {
            return Err(Rejection::UnknownIssuer);
        }
        let aud = claims.aud.as_ref().ok_or(Rejection::MissingAudience)?;
        if !aud
            .values()
            .iter()
            .any(|a| same_endpoint(a, &self.audience))
        {
            return Err(Rejection::WrongAudience);
        }

        let (exp, _) = claims.checked_times(now, self.clock_skew)?;
        let exp_time = DateTime::from_timestamp(exp, 0).ok_or(Rejection::Malformed)?;

        let keys = match (&self.static_keys, &self.jwks_url) {
            (Some(set), _) if set.contains(kid) => set.clone(),
            (_, Some(url)) => self.jwks.keys_for(url, kid, &self.budget).await?,
            (Some(_), None) => return Err(Rejection::UnknownKid),
            (None, None) => return Err(Rejection::NoKeySource),
        };
        let keys = keys.get(kid);
        if !keys.iter().any(|k| k.supports(alg)) {
            return Err(Rejection::KeyAlgorithmMismatch);
        }
        if !keys
            .iter()
            .any(|k| k.verify(decoded.signing_input, decoded.signature, alg))
        {
            return Err(Rejection::BadSignature);
        }
        Ok(Assertion {
            iss: iss.to_owned(),
            sub: claims.sub.clone(),
            exp: exp_time,
            claims: token::claims_object(token)?,
        })
    }
}

#[cfg(all(test, feature = "dev-signer"))]
mod tests {
    use super::*;
    use crate::dev::DevSigner;
    use serde_json::json;

    fn verifier(signer: &DevSigner, audience: &str) -> (AssertionVerifier, tempfile_path::Guard) {
        let guard = tempfile_path::Guard::write(&signer.jwks().to_string());
        let mut config = AssertionConfig::new(signer.iss.clone(), audience);
        config.jwks_file = Some(guard.path.clone());
        (AssertionVerifier::new(config).expect("a verifier"), guard)
    }

    /// A file removed on drop (the crate has no `tempfile` dependency).
    mod tempfile_path {
        pub struct Guard {
            pub path: std::path::PathBuf,
        }
        impl Guard {
            pub fn write(text: &str) -> Guard {
                let path = std::env::temp_dir().join(format!(
                    "lrt-auth-assertion-{}-{}.json",
                    std::process::id(),
                    super::super::crate_now_nanos()
                ));
                std::fs::write(&path, text).expect("a key file");
                Guard { path }
            }
        }
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }

    fn claims(signer: &DevSigner, aud: &str) -> Value {
        let mut c = signer.claims(aud, 600);
        c.as_object_mut().expect("an object").remove("jti");
        c["sub"] = json!("accounts.google.com:1234");
        c["email"] = json!("quality@hospital.example");
        c["groups"] = json!(["lrt-quality", "staff"]);
        c
    }

    #[tokio::test]
    async fn a_proxy_assertion_without_jti_or_typ_is_accepted_and_carries_its_claims() {
        let signer = DevSigner::new("https://cloud.google.com/iap", "iap-1");
        let (v, _guard) = verifier(&signer, "/projects/1/global/backendServices/2");
        let mut header = signer.header();
        header.as_object_mut().expect("an object").remove("typ");
        let token = signer.sign(
            &header,
            &claims(&signer, "/projects/1/global/backendServices/2"),
        );
        let a = v.verify(&token).await.expect("accepted");
        assert_eq!(a.sub.as_deref(), Some("accounts.google.com:1234"));
        assert_eq!(a.string("email"), Some("quality@hospital.example"));
        assert_eq!(a.strings("groups"), ["lrt-quality", "staff"]);
        assert!(a.strings("missing").is_empty());
    }

    #[tokio::test]
    async fn wrong_audience_issuer_expiry_or_signature_is_refused() {
        let signer = DevSigner::new("https://proxy.example", "p-1");
        let (v, _guard) = verifier(&signer, "lrt-dashboard");
        let good = claims(&signer, "lrt-dashboard");
        let h = signer.header();
        assert!(v.verify(&signer.sign(&h, &good)).await.is_ok());

        let wrong_aud = claims(&signer, "another-app");
        assert_eq!(
            v.verify(&signer.sign(&h, &wrong_aud)).await,
            Err(Rejection::WrongAudience)
        );
        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("https://evil.example");
        assert_eq!(
            v.verify(&signer.sign(&h, &wrong_iss)).await,
            Err(Rejection::UnknownIssuer)
        );
        let mut expired = good.clone();
        expired["exp"] = json!(good["iat"].as_i64().expect("iat") - 3600);
        expired["iat"] = json!(good["iat"].as_i64().expect("iat") - 7200);
        assert_eq!(
            v.verify(&signer.sign(&h, &expired)).await,
            Err(Rejection::Expired)
        );
        let other = DevSigner::new("https://proxy.example", "p-1");
        assert_eq!(
            v.verify(&other.sign(&h, &good)).await,
            Err(Rejection::BadSignature)
        );
        let mut none = h.clone();
        none["alg"] = json!("none");
        assert_eq!(
            v.verify(&signer.sign(&none, &good)).await,
            Err(Rejection::AlgorithmNone)
        );
    }
}

/// A unique-enough number for test file names.
#[cfg(all(test, feature = "dev-signer"))]
fn crate_now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
