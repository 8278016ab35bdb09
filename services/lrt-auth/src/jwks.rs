//! Remote JWK Sets: which URLs may be fetched, fetching them, and caching them per URL.
//!
//! * **What may be fetched.** Only an issuer's configured `jwks_url`, or a `jku` that matched
//!   the issuer's allow list ([`jku_allowed`]). Both must be `https` (or `http` on a loopback
//!   host when explicitly allowed, for tests), without user info or fragment. Redirects are not
//!   followed, so an allowed URL cannot bounce the fetch elsewhere.
//! * **How.** One `GET` with a whole-request timeout; only `200` is accepted; the body is read
//!   chunk by chunk and dropped as soon as it exceeds the size limit.
//! * **Cache.** One entry per URL, shared by every issuer using that URL. A set younger than
//!   the TTL is used as is. A token whose `kid` is not in the set triggers a refresh, but one
//!   URL is fetched at most once per `min_refresh_interval` (failed fetches count), and budgets
//!   of fetches per minute bound the rest: each URL has its own, and a URL that never served
//!   keys also draws on its issuer's budget. So made-up `kid`s or many allow-listed `jku`
//!   variants cannot make the service fetch on every request, and forged tokens aimed at new
//!   URLs cannot spend the budget that a key rotation at the issuer's known URL needs. Concurrent
//!   requests that need the same refresh wait for one fetch (single flight). When a refresh
//!   fails, the previous set stays usable up to `max_stale` past its TTL.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Once, RwLock};
use std::time::{Duration, Instant};

use url::{Host, Url};

use crate::Rejection;
use crate::config::JwksConfig;
use crate::keys::KeySet;

/// Why a URL may not be used as a key source.
pub(crate) fn url_problem(url: &Url, allow_loopback_http: bool) -> Option<&'static str> {
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback_http && is_loopback(url) => {}
        "http" if allow_loopback_http => return Some("http is only allowed for loopback hosts"),
        _ => return Some("the scheme must be https"),
    }
    if url.host().is_none() {
        return Some("no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("user info is not allowed");
    }
    if url.fragment().is_some() {
        return Some("a fragment is not allowed");
    }
    None
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether the `jku` URL is covered by one of the allow-list entries: same scheme, host and
/// port, and either the same path and query, or a path under an entry path ending in `/` with
/// no query on either side. Both sides are compared after URL normalisation (`..`, `%2e%2e`
/// and default ports are resolved by the parser), so `https://ok/jwks/../evil` does not match
/// `https://ok/jwks/`.
pub(crate) fn jku_allowed(jku: &Url, allow: &[Url], allow_loopback_http: bool) -> bool {
    if url_problem(jku, allow_loopback_http).is_some() {
        return false;
    }
    allow.iter().any(|entry| {
        let same_origin = entry.scheme() == jku.scheme()
            && entry.host() == jku.host()
            && entry.port_or_known_default() == jku.port_or_known_default();
        if !same_origin {
            return false;
        }
        let exact = entry.path() == jku.path() && entry.query() == jku.query();
        let under = entry.path().ends_with('/')
            && entry.query().is_none()
            && jku.query().is_none()
            && jku.path().starts_with(entry.path());
        exact || under
    })
}

/// A budget of fetches per minute (a fixed one-minute window): one per issuer, one per URL.
#[derive(Debug)]
pub(crate) struct FetchBudget {
    max_per_minute: u32,
    window: Mutex<(Instant, u32)>,
}

impl FetchBudget {
    pub fn new(max_per_minute: u32) -> FetchBudget {
        FetchBudget {
            max_per_minute,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Takes one fetch from the budget, if any is left.
    fn try_take(&self, now: Instant) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(window.0) >= Duration::from_secs(60) {
            *window = (now, 0);
        }
        if window.1 < self.max_per_minute {
            window.1 += 1;
            true
        } else {
            false
        }
    }
}

/// The cached state of one URL.
#[derive(Debug, Default, Clone)]
struct SetState {
    keys: Arc<KeySet>,
    /// When the set was last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last started (successful or not).
    last_attempt: Option<Instant>,
}

#[derive(Debug)]
struct RemoteSet {
    state: RwLock<SetState>,
    /// Held while fetching, so concurrent refreshes of one URL become one fetch.
    fetching: tokio::sync::Mutex<()>,
    /// This URL's own budget of fetches per minute.
    budget: FetchBudget,
}

impl RemoteSet {
    fn new(max_fetches_per_minute: u32) -> RemoteSet {
        RemoteSet {
            state: RwLock::new(SetState::default()),
            fetching: tokio::sync::Mutex::new(()),
            budget: FetchBudget::new(max_fetches_per_minute),
        }
    }

    /// Whether a fetch may start now: within this URL's budget, and, for a URL that never
    /// served keys, within the issuer's (which bounds how many new URLs forged tokens can make
    /// the service try). A URL that served keys before does not draw on the issuer's budget, so
    /// a key rotation there is fetched even while forged tokens spend that budget elsewhere.
    fn may_fetch(&self, state: &SetState, issuer: &FetchBudget, now: Instant) -> bool {
        self.budget.try_take(now) && (state.fetched_at.is_some() || issuer.try_take(now))
    }

    fn snapshot(&self) -> SetState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The cache of remote JWK Sets, and the HTTP client that fills it.
#[derive(Debug)]
pub(crate) struct JwksCache {
    http: reqwest::Client,
    config: JwksConfig,
    sets: Mutex<HashMap<String, Arc<RemoteSet>>>,
}

/// Installs rustls' aws-lc-rs provider as the process default, once (reqwest's `rustls-no-provider`
/// needs one; if another was installed first, that one is kept).
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

impl JwksCache {
    pub fn new(config: JwksConfig) -> Result<JwksCache, crate::ConfigError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("lrt-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::ConfigError::HttpClient(e.to_string()))?;
        Ok(JwksCache {
            http,
            config,
            sets: Mutex::new(HashMap::new()),
        })
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.config.cache_ttl_secs)
    }

    /// The cache entry of `url`, created if needed. When the cache is full, entries that were
    /// never fetched successfully go first, then the least recently fetched.
    fn entry(&self, url: &Url) -> Arc<RemoteSet> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = sets.get(url.as_str()) {
            return set.clone();
        }
        while sets.len() >= self.config.max_cached_sets.max(1) {
            let oldest = sets
                .iter()
                .min_by_key(|(_, set)| set.snapshot().fetched_at)
                .map(|(url, _)| url.clone());
            match oldest {
                Some(url) => sets.remove(&url),
                None => break,
            };
        }
        let set = Arc::new(RemoteSet::new(self.config.max_fetches_per_minute));
        sets.insert(url.as_str().to_owned(), set.clone());
        set
    }

    /// The key set at `url` once it is known to hold `kid`, fetching it if the cache is empty,
    /// older than the TTL, or lacks `kid`, within the rate limits.
    pub async fn keys_for(
        &self,
        url: &Url,
        kid: &str,
        budget: &FetchBudget,
    ) -> Result<Arc<KeySet>, Rejection> {
        let set = self.entry(url);
        let fresh = |state: &SetState, now: Instant| {
            state
                .fetched_at
                .is_some_and(|at| now.duration_since(at) < self.ttl())
        };

        let state = set.snapshot();
        if fresh(&state, Instant::now()) && state.keys.contains(kid) {
            return Ok(state.keys);
        }

        let _fetching = set.fetching.lock().await;
        let now = Instant::now();
        let state = set.snapshot();
        if fresh(&state, now) && state.keys.contains(kid) {
            return Ok(state.keys);
        }
        let interval_passed = state.last_attempt.is_none_or(|at| {
            now.duration_since(at) >= Duration::from_secs(self.config.min_refresh_interval_secs)
        });
        if !interval_passed {
            tracing::debug!(jwks_url = %url, "JWK Set refresh skipped: fetched too recently");
        } else if !set.may_fetch(&state, budget, now) {
            // debug, not warn: a flood of forged tokens must not become a flood of log lines.
            tracing::debug!(jwks_url = %url, "JWK Set refresh skipped: fetch budget spent");
        } else {
            let result = self.fetch(url).await;
            let mut state = set.state.write().unwrap_or_else(|p| p.into_inner());
            state.last_attempt = Some(now);
            match result {
                Ok(keys) => {
                    tracing::debug!(jwks_url = %url, keys = keys.len(), "JWK Set fetched");
                    state.keys = Arc::new(keys);
                    state.fetched_at = Some(now);
                }
                Err(error) => {
                    metrics::counter!("lrt_jwks_fetch_failures_total").increment(1);
                    tracing::warn!(jwks_url = %url, %error, "JWK Set fetch failed")
                }
            }
        }

        let state = set.snapshot();
        let max_age = self.ttl() + Duration::from_secs(self.config.max_stale_secs);
        match state.fetched_at {
            Some(at) if Instant::now().duration_since(at) < max_age => {
                if state.keys.contains(kid) {
                    Ok(state.keys)
                } else {
                    Err(Rejection::UnknownKid)
                }
            }
            _ => Err(Rejection::KeySetUnavailable),
        }
    }

    /// Whether `url`'s key set was ever fetched successfully. A set loaded once stays in use
    /// while stale (up to `max_stale_secs`), so readiness asks only for this first load.
    pub fn loaded(&self, url: &Url) -> bool {
        let sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.get(url.as_str())
            .is_some_and(|set| set.snapshot().fetched_at.is_some())
    }

    /// Loads `url`'s key set now if it was never loaded (the warm-up at start, before the
    /// service reports ready), within the URL's own fetch budget. A set already loaded is left
    /// alone: refreshes happen on use ([`JwksCache::keys_for`]).
    pub async fn load(&self, url: &Url) -> Result<(), String> {
        let set = self.entry(url);
        let _fetching = set.fetching.lock().await;
        let now = Instant::now();
        if set.snapshot().fetched_at.is_some() {
            return Ok(());
        }
        if !set.budget.try_take(now) {
            return Err("fetch budget spent".into());
        }
        let result = self.fetch(url).await;
        let mut state = set.state.write().unwrap_or_else(|p| p.into_inner());
        state.last_attempt = Some(now);
        match result {
            Ok(keys) => {
                tracing::info!(jwks_url = %url, keys = keys.len(), "JWK Set loaded");
                state.keys = Arc::new(keys);
                state.fetched_at = Some(now);
                Ok(())
            }
            Err(error) => {
                metrics::counter!("lrt_jwks_fetch_failures_total").increment(1);
                tracing::warn!(jwks_url = %url, %error, "JWK Set fetch failed");
                Err(error)
            }
        }
    }

    /// One fetch of a JWK Set.
    async fn fetch(&self, url: &Url) -> Result<KeySet, String> {
        let mut response = self
            .http
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status().as_u16()));
        }
        let limit = self.config.max_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err("body too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if body.len() + chunk.len() > limit {
                return Err("body too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn jku_allow_list_matching() {
        let allow = [
            url("https://ehr.example.org/jwks/"),
            url("https://sandbox.cds-hooks.org/.well-known/jwks.json"),
        ];
        let ok = |s: &str| jku_allowed(&url(s), &allow, false);
        assert!(ok("https://ehr.example.org/jwks/"));
        assert!(ok("https://ehr.example.org/jwks/tenant-a.json"));
        assert!(ok("https://ehr.example.org:443/jwks/a"));
        assert!(ok("https://sandbox.cds-hooks.org/.well-known/jwks.json"));

        assert!(!ok("https://ehr.example.org/jwks"));
        assert!(!ok("https://ehr.example.org/jwks/../admin"));
        assert!(!ok("https://ehr.example.org/jwks/%2e%2e/admin"));
        assert!(!ok("https://ehr.example.org/jwksx/a"));
        assert!(!ok("https://ehr.example.org/jwks/a?x=1"));
        assert!(!ok("https://ehr.example.org:8443/jwks/a"));
        assert!(!ok("http://ehr.example.org/jwks/a"));
        assert!(!ok("https://ehr.example.org.evil.com/jwks/a"));
        assert!(!ok("https://user@ehr.example.org/jwks/a"));
        assert!(!ok("https://evil.com/https://ehr.example.org/jwks/"));
        assert!(!ok("https://sandbox.cds-hooks.org/.well-known/jwks.json/x"));
        assert!(!ok("https://sandbox.cds-hooks.org/.well-known/jwks.json?x"));
        assert!(!ok("https://sandbox.cds-hooks.org/.well-known/jwks.json#x"));
        assert!(!ok("https://SANDBOX.cds-hooks.org/.well-known/JWKS.json"));
    }

    #[test]
    fn http_only_for_loopback_and_only_when_allowed() {
        assert!(url_problem(&url("http://127.0.0.1:8080/j"), true).is_none());
        assert!(url_problem(&url("http://[::1]/j"), true).is_none());
        assert!(url_problem(&url("http://localhost/j"), true).is_none());
        assert!(url_problem(&url("http://127.0.0.1:8080/j"), false).is_some());
        assert!(url_problem(&url("http://10.0.0.1/j"), true).is_some());
        assert!(url_problem(&url("ftp://127.0.0.1/j"), true).is_some());
        assert!(url_problem(&url("file:///etc/passwd"), true).is_some());
    }

    #[test]
    fn budget_is_per_minute() {
        let budget = FetchBudget::new(2);
        let t0 = Instant::now();
        assert!(budget.try_take(t0));
        assert!(budget.try_take(t0));
        assert!(!budget.try_take(t0 + Duration::from_secs(59)));
        assert!(budget.try_take(t0 + Duration::from_secs(61)));
    }
}
