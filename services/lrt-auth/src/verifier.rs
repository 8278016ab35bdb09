//! The verifier: from `Authorization: Bearer <jwt>` to a trusted [`VerifiedClient`].
//!
//! Checks run cheapest first, in the order of the cds-hooks best practices ("CDS Services /
//! JWT"), so a token that fails a claim check never causes a key fetch:
//!
//! 1. shape: at most 16 KiB, three base64url parts, JSON header and claims;
//! 2. header: `alg` is not `none` (R201), not symmetric (R203), and is a supported asymmetric
//!    algorithm; `typ` is `JWT` (R183); no `crit`; `kid` present (R182);
//! 3. `iss` is a trusted issuer, and `alg` is one of that issuer's algorithms;
//! 4. `aud` is, or contains, the URL of the endpoint being invoked (R189, R196);
//! 5. `exp` has not passed, `iat` is present and not in the future, `nbf` (if any) has passed,
//!    all within the clock skew; `exp - iat` is within the maximum lifetime;
//! 6. `jti` present (R193); `tenant` on the issuer's allow list when it has one;
//! 7. the key: a `kid` of the issuer's configured key file uses that key, whatever the `jku`
//!    (which is then neither fetched nor trusted); else from an allow-listed `jku` (a `jku` not
//!    on the list is refused and never fetched), else from the issuer's `jwks_url`; looked up by
//!    `kid`, with a rate-limited refresh on an unknown `kid`;
//! 8. the signature, over the exact bytes received;
//! 9. ([`Verifier::verify_and_record`] / [`Verifier::record`]) the `jti` has not been seen for
//!    this issuer.
//!
//! `sub` is not a CDS Hooks 2.0 claim (some old clients send the client id there); it is
//! passed through when present and never required.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::{AuthConfig, ConfigError, JwtAlgorithm};
use crate::jwks::{FetchBudget, JwksCache, jku_allowed, url_problem};
use crate::keys::{KeySet, read_key_file};
use crate::replay::ReplayStore;
use crate::{Rejection, token};

/// The CDS client behind an accepted token: only values that were signed by a trusted key.
/// (Not `non_exhaustive`, so the server's own tests can build one.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClient {
    /// The trusted issuer (`iss`).
    pub iss: String,
    /// `sub`, when the client sent one (not a CDS Hooks 2.0 claim; informational only).
    pub sub: Option<String>,
    /// The token's unique id (`jti`), at most 255 bytes.
    pub jti: String,
    /// When the token was issued (`iat`).
    pub iat: DateTime<Utc>,
    /// When the token expires (`exp`).
    pub exp: DateTime<Utc>,
    /// The healthcare organisation (`tenant`), when sent.
    pub tenant: Option<String>,
}

/// One trusted issuer, ready to use.
#[derive(Debug)]
struct Issuer {
    algorithms: Vec<JwtAlgorithm>,
    jku_allow: Vec<Url>,
    jwks_url: Option<Url>,
    static_keys: Option<Arc<KeySet>>,
    tenants: Option<HashSet<String>>,
    budget: FetchBudget,
}

/// Verifies CDS Hooks client JWTs. Build one at startup with [`Verifier::new`] and share it
/// (it is `Send + Sync`; wrap it in an `Arc`). It holds the JWK Set cache.
#[derive(Debug)]
pub struct Verifier {
    issuers: HashMap<String, Issuer>,
    clock_skew: i64,
    max_lifetime: i64,
    dev_keys: Option<Arc<KeySet>>,
    allow_loopback_http: bool,
    jwks: JwksCache,
}

/// Whether two audience URLs name the same endpoint: equal, ignoring one trailing `/`.
pub(crate) fn same_endpoint(a: &str, b: &str) -> bool {
    a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

/// The algorithm named by the `alg` header, if it is an asymmetric one this crate supports.
pub(crate) fn header_algorithm(alg: &str) -> Result<JwtAlgorithm, Rejection> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(Rejection::AlgorithmNone);
    }
    if alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        return Err(Rejection::SymmetricAlgorithm);
    }
    JwtAlgorithm::from_name(alg).ok_or(Rejection::AlgorithmNotAllowed)
}

fn seconds(secs: u64, field: &'static str) -> Result<i64, ConfigError> {
    // Ten years is far beyond any sensible setting and keeps the arithmetic in range.
    const MAX: u64 = 10 * 365 * 24 * 3600;
    if secs > MAX {
        return Err(ConfigError::InvalidLimit {
            field,
            reason: "must be at most ten years",
        });
    }
    Ok(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl Verifier {
    /// Checks the configuration, reads the key files and builds the HTTP client for JWK Set
    /// fetches (rustls with the aws-lc-rs provider, installed as the process default if none is).
    pub fn new(config: AuthConfig) -> Result<Verifier, ConfigError> {
        if config.issuers.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        if config.max_token_lifetime_secs == 0 {
            return Err(ConfigError::InvalidLimit {
                field: "max_token_lifetime_secs",
                reason: "must be greater than zero",
            });
        }
        for (value, field) in [
            (config.jwks.timeout_secs, "jwks.timeout_secs"),
            (config.jwks.max_bytes as u64, "jwks.max_bytes"),
            (
                config.jwks.max_fetches_per_minute.into(),
                "jwks.max_fetches_per_minute",
            ),
            (config.jwks.max_cached_sets as u64, "jwks.max_cached_sets"),
        ] {
            if value == 0 {
                return Err(ConfigError::InvalidLimit {
                    field,
                    reason: "must be greater than zero",
                });
            }
        }
        let dev_keys = match &config.dev_mode_key_file {
            Some(path) => Some(Arc::new(read_key_file(path)?)),
            None => None,
        };
        let loopback = config.allow_insecure_loopback_http;
        let mut issuers = HashMap::new();
        for issuer in config.issuers {
            let iss = issuer.iss.clone();
            if iss.is_empty() {
                return Err(ConfigError::EmptyIssuer);
            }
            if issuer.algorithms.is_empty() {
                return Err(ConfigError::NoAlgorithms { iss });
            }
            if issuer.tenants.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::EmptyTenants { iss });
            }
            for url in issuer.jku_allow.iter().chain(&issuer.jwks_url) {
                if let Some(reason) = url_problem(url, loopback) {
                    return Err(ConfigError::InsecureUrl {
                        iss,
                        url: url.to_string(),
                        reason,
                    });
                }
            }
            let static_keys = match &issuer.jwks_file {
                Some(path) => Some(Arc::new(read_key_file(path)?)),
                None => None,
            };
            if issuer.jku_allow.is_empty()
                && issuer.jwks_url.is_none()
                && static_keys.is_none()
                && dev_keys.is_none()
            {
                return Err(ConfigError::NoKeySource { iss });
            }
            let ready = Issuer {
                algorithms: issuer.algorithms,
                jku_allow: issuer.jku_allow,
                jwks_url: issuer.jwks_url,
                static_keys,
                tenants: issuer.tenants.map(|t| t.into_iter().collect()),
                budget: FetchBudget::new(config.jwks.max_fetches_per_minute),
            };
            if issuers.insert(iss.clone(), ready).is_some() {
                return Err(ConfigError::DuplicateIssuer { iss });
            }
        }
        Ok(Verifier {
            issuers,
            clock_skew: seconds(config.clock_skew_secs, "clock_skew_secs")?,
            max_lifetime: seconds(config.max_token_lifetime_secs, "max_token_lifetime_secs")?,
            dev_keys,
            allow_loopback_http: loopback,
            jwks: JwksCache::new(config.jwks)?,
        })
    }

    /// Whether a dev-mode key file is trusted. The server should log a prominent warning at
    /// startup when it is.
    pub fn dev_mode(&self) -> bool {
        self.dev_keys.is_some()
    }

    /// The JWK Set URLs of trusted issuers (`jwks_url`) whose keys were never loaded. Until
    /// this is empty a token of such an issuer may fail for want of keys: the service is not
    /// ready ([`Verifier::load_jwks`] at start). `jku` URLs are per token and not counted.
    pub fn jwks_pending(&self) -> Vec<Url> {
        let mut urls: Vec<Url> = self
            .issuers
            .values()
            .filter_map(|issuer| issuer.jwks_url.clone())
            .filter(|url| !self.jwks.loaded(url))
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// Loads every trusted issuer's `jwks_url` key set not loaded yet, and answers the URLs still
    /// pending (a fetch failed or its budget is spent). Call it at start and again, after a pause,
    /// until it answers none.
    pub async fn load_jwks(&self) -> Vec<Url> {
        let mut pending = Vec::new();
        for url in self.jwks_pending() {
            if self.jwks.load(&url).await.is_err() {
                pending.push(url);
            }
        }
        pending
    }

    /// Verifies `token` for a call to the endpoint whose public URL is `audience` (e.g.
    /// `https://cds.example.org/cds-services/lrt-consult`; for discovery
    /// `https://cds.example.org/cds-services`). Does **not** check replay: use
    /// [`Verifier::verify_and_record`] on CDS Hooks calls.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<VerifiedClient, Rejection> {
        self.verify_any_audience(token, &[audience]).await
    }

    /// Like [`Verifier::verify`], accepting a token whose `aud` names any of `audiences` (the
    /// spec does not say which URL a feedback call's `aud` is: the project accepts both
    /// `.../{id}/feedback` and `.../{id}`). An `aud` and an expected URL are compared exactly,
    /// ignoring one trailing `/`.
    pub async fn verify_any_audience(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<VerifiedClient, Rejection> {
        let now = crate::now().timestamp();
        let token = token::decode(token)?;
        let header = &token.header;
        let claims = &token.claims;

        // 2. Header.
        let alg = header_algorithm(&header.alg)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
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

        // 3. Issuer.
        let iss = claims.iss.as_deref().ok_or(Rejection::MissingIssuer)?;
        let issuer = self.issuers.get(iss).ok_or(Rejection::UnknownIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(Rejection::AlgorithmNotAllowed);
        }

        // 4. Audience.
        let aud = claims.aud.as_ref().ok_or(Rejection::MissingAudience)?;
        let aud_ok = aud
            .values()
            .iter()
            .any(|a| audiences.iter().any(|expected| same_endpoint(a, expected)));
        if !aud_ok {
            return Err(Rejection::WrongAudience);
        }

        // 5. Times.
        let (exp, iat) = claims.checked_times(now, self.clock_skew)?;
        if exp - iat > self.max_lifetime {
            return Err(Rejection::LifetimeTooLong);
        }
        let (Some(iat_time), Some(exp_time)) = (
            DateTime::from_timestamp(iat, 0),
            DateTime::from_timestamp(exp, 0),
        ) else {
            return Err(Rejection::Malformed);
        };

        // 6. jti and tenant.
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty())
            .ok_or(Rejection::MissingJti)?;
        if let Some(tenants) = &issuer.tenants {
            let tenant = claims.tenant.as_deref().ok_or(Rejection::MissingTenant)?;
            if !tenants.contains(tenant) {
                return Err(Rejection::TenantNotAllowed);
            }
        }

        // 7. Key.
        let set = self.key_set(issuer, header.jku.as_deref(), kid).await?;
        let keys = set.get(kid);
        if !keys.iter().any(|k| k.supports(alg)) {
            return Err(Rejection::KeyAlgorithmMismatch);
        }

        // 8. Signature.
        if !keys
            .iter()
            .any(|k| k.verify(token.signing_input, token.signature, alg))
        {
            return Err(Rejection::BadSignature);
        }

        Ok(VerifiedClient {
            iss: iss.to_owned(),
            sub: claims.sub.clone(),
            jti: jti.to_owned(),
            iat: iat_time,
            exp: exp_time,
            tenant: claims.tenant.clone(),
        })
    }

    /// The key set to look `kid` up in.
    async fn key_set(
        &self,
        issuer: &Issuer,
        jku: Option<&str>,
        kid: &str,
    ) -> Result<Arc<KeySet>, Rejection> {
        // A `kid` of the issuer's configured key file is verified with that key whatever the
        // token's `jku` says: the `jku` is then neither fetched nor trusted (the CDS Hooks
        // sandbox and other clients always send one). Only an unknown `kid` goes to the `jku`.
        if let Some(set) = issuer.static_keys.iter().find(|set| set.contains(kid)) {
            return Ok(set.clone());
        }
        if let Some(jku) = jku {
            let jku = Url::parse(jku).map_err(|_| Rejection::JkuNotAllowed)?;
            if !jku_allowed(&jku, &issuer.jku_allow, self.allow_loopback_http) {
                return Err(Rejection::JkuNotAllowed);
            }
            return self.jwks.keys_for(&jku, kid, &issuer.budget).await;
        }
        let local = issuer.static_keys.iter().chain(&self.dev_keys);
        if let Some(set) = local.clone().find(|set| set.contains(kid)) {
            return Ok(set.clone());
        }
        if let Some(url) = &issuer.jwks_url {
            return self.jwks.keys_for(url, kid, &issuer.budget).await;
        }
        if local.count() > 0 {
            Err(Rejection::UnknownKid)
        } else {
            Err(Rejection::NoKeySource)
        }
    }

    /// Records the `jti` of an accepted token in `store`, refusing it if that issuer already
    /// used it. The store keeps it until `exp` plus the clock skew (a token is accepted up to
    /// that instant). A store failure refuses the token ([`Rejection::ReplayStoreUnavailable`],
    /// fail closed); a caller that prefers to fail open calls the store itself.
    pub async fn record<S: ReplayStore + ?Sized>(
        &self,
        client: &VerifiedClient,
        store: &S,
    ) -> Result<(), Rejection> {
        let keep_until = self.replay_until(client);
        match store.first_use(&client.iss, &client.jti, keep_until).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Rejection::Replayed),
            Err(error) => {
                tracing::warn!(%error, "replay store failed: token refused");
                Err(Rejection::ReplayStoreUnavailable)
            }
        }
    }

    /// How long a replay store must keep the `jti` of `client`: until `exp` plus the clock skew
    /// (a token is accepted up to that instant). For callers that record the `jti` themselves,
    /// e.g. in the transaction that stores what the call did.
    pub fn replay_until(&self, client: &VerifiedClient) -> DateTime<Utc> {
        client.exp + chrono::Duration::seconds(self.clock_skew)
    }

    /// [`Verifier::verify`], then [`Verifier::record`]: what a CDS Hooks call needs.
    pub async fn verify_and_record<S: ReplayStore + ?Sized>(
        &self,
        token: &str,
        audience: &str,
        store: &S,
    ) -> Result<VerifiedClient, Rejection> {
        let client = self.verify(token, audience).await?;
        self.record(&client, store).await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_classes() {
        assert_eq!(header_algorithm("none"), Err(Rejection::AlgorithmNone));
        assert_eq!(header_algorithm("None"), Err(Rejection::AlgorithmNone));
        assert_eq!(
            header_algorithm("HS256"),
            Err(Rejection::SymmetricAlgorithm)
        );
        assert_eq!(
            header_algorithm("hs512"),
            Err(Rejection::SymmetricAlgorithm)
        );
        for other in ["PS384", "ES512", "EdDSA", "RS512", "es384", "", "H"] {
            assert_eq!(header_algorithm(other), Err(Rejection::AlgorithmNotAllowed));
        }
        assert_eq!(header_algorithm("ES384"), Ok(JwtAlgorithm::ES384));
    }

    #[test]
    fn endpoints_compare_exactly_but_for_one_trailing_slash() {
        assert!(same_endpoint(
            "https://a/cds-services/x",
            "https://a/cds-services/x/"
        ));
        assert!(!same_endpoint(
            "https://a/cds-services/x",
            "https://a/cds-services/x//"
        ));
        assert!(!same_endpoint(
            "https://a/cds-services/x",
            "https://a/cds-services/y"
        ));
        assert!(!same_endpoint(
            "https://a/cds-services",
            "https://a/cds-services/x"
        ));
    }
}
