//! A small FHIR R4 REST client: `read`, `search` (following `link[next]` pages) and
//! `transaction`, over reqwest with rustls (aws-lc-rs provider only).
//!
//! * Every request sends `Accept: application/fhir+json` and, when one was given, the bearer
//!   token (from CDS Hooks `fhirAuthorization`). The token never appears in an error, in `Debug`
//!   output or in a log.
//! * 5xx, 429 and connection errors are retried with an exponential backoff and jitter,
//!   honouring `Retry-After` (in seconds, capped) on 429/503; timeouts and other 4xx are not.
//! * Search pages and redirects are only followed under the base (its origin — scheme, host and
//!   port — and its path): a `next` link elsewhere is refused ([`FhirError::ForeignNextLink`]),
//!   a redirect elsewhere is not followed, and a read whose id or path would climb out of the
//!   base (`..`, `%2E%2E`) is refused before it is sent ([`FhirError::OutsideBase`]), so the
//!   client cannot be steered to another server or path (SSRF) with the token.
//! * Bodies are read by [`crate::bundle::parse`], one resource at a time.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::bundle::{Payload, PayloadError, parse};

/// The FHIR JSON media type, sent as `Accept` (and `Content-Type` on POST).
const FHIR_JSON: &str = "application/fhir+json";
/// The longest `Retry-After` wait honoured.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(2);
/// The longest backoff step before jitter (so a large configured backoff cannot overflow).
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Whether `url` lies under `base`: same origin, and its path starts with the base's path (which
/// ends with `/`). URLs are compared after parsing, where dot segments are already resolved.
fn within(base: &Url, url: &Url) -> bool {
    url.origin() == base.origin() && url.path().starts_with(base.path())
}

/// Same-origin redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// How the client times out, retries and pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Time allowed for one HTTP request, from connecting to the end of the body (default 5 s).
    pub timeout: Duration,
    /// Extra attempts after the first, on 5xx, 429 and connection errors only (default 2).
    pub retries: u32,
    /// The first wait between attempts; it doubles each time (up to 30 s), plus up to 50 %
    /// random jitter (default 100 ms). A `Retry-After` in seconds on a 429 or 503 replaces it,
    /// capped at 2 s.
    pub backoff: Duration,
    /// The most pages a search may fetch; a search needing more fails with
    /// [`FhirError::TooManyPages`] (default 50).
    pub max_pages: usize,
    /// The most resources a search keeps (default 20,000). Past it no further page is fetched
    /// and the payload carries the warning `truncated:<type> (...)`: searches ask for the newest
    /// first, so what is kept is the newest data, and the snapshot says that it was cut.
    pub max_resources: usize,
}

impl Default for ClientConfig {
    /// 5 s timeout, 2 retries, 100 ms first backoff, 50 pages, 20,000 resources.
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(100),
            max_pages: 50,
            max_resources: 20_000,
        }
    }
}

/// A FHIR R4 server's REST API at one base URL. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    /// Always ends with a slash, so relative references resolve under it.
    base: Url,
    bearer_token: Option<SecretString>,
    /// SMART Backend Services: tokens from the EHR's authorization server (instead of
    /// `bearer_token`).
    backend: Option<Arc<crate::smart::BackendAuth>>,
    config: ClientConfig,
}

impl fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirClient")
            .field("base", &self.base.as_str())
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("backend", &self.backend)
            .field("config", &self.config)
            .finish()
    }
}

/// Why a FHIR request failed. Every message names the request (`GET <url>`) and what happened;
/// none contains the bearer token.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// The base URL is not an absolute http(s) URL usable as a FHIR base.
    #[error("invalid FHIR base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given (with any user info removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with a non-2xx status (after any retries).
    #[error("{url}: HTTP {status}{}", outcome.as_ref().map(|o| format!(" ({o})")).unwrap_or_default())]
    Status {
        /// The request, as `METHOD url`.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The OperationOutcome's issues (`severity code: text`, joined by `; `) when the body
        /// was one.
        outcome: Option<String>,
    },
    /// No complete answer within the configured timeout (never retried).
    #[error("{url}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The request, as `METHOD url`.
        url: String,
        /// The configured per-request timeout.
        timeout_ms: u64,
    },
    /// No access token could be had from the EHR's authorization server (SMART Backend
    /// Services): the request was not sent.
    #[error("{url}: no access token: {message}")]
    Authorization {
        /// The request, as `METHOD url`.
        url: String,
        /// Why (the token endpoint and its OAuth error; never a secret).
        message: String,
    },
    /// The server could not be reached, or the connection broke (after any retries).
    #[error("{url}: connection failed: {message}")]
    Connection {
        /// The request, as `METHOD url`.
        url: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// A request would leave the configured base (a `..` id or reference, a path outside the
    /// base): refused before anything is sent, so no token goes anywhere else.
    #[error("{what}: outside the FHIR base {base}; not requested")]
    OutsideBase {
        /// What was asked for (`Patient/..`).
        what: String,
        /// The configured base URL.
        base: String,
    },
    /// A 2xx answer whose body is not FHIR JSON.
    #[error("{url}: {source}")]
    Payload {
        /// The request, as `METHOD url`.
        url: String,
        /// Why the body could not be read.
        source: PayloadError,
    },
    /// A search had more pages than [`ClientConfig::max_pages`].
    #[error("{url}: more than {max} pages of results")]
    TooManyPages {
        /// The search's first request, as `METHOD url`.
        url: String,
        /// The configured page limit.
        max: usize,
    },
    /// A `next` link that is not a URL, or points to another origin than the base: never
    /// followed (it would send the token elsewhere, SSRF).
    #[error("{url}: next link {next:?} is not on the FHIR server's origin; not followed")]
    ForeignNextLink {
        /// The request whose page held the link, as `METHOD url`.
        url: String,
        /// The link as written in the page.
        next: String,
    },
}

impl FhirError {
    /// What went wrong, without URL, query, ids or token: what logs and traces may carry (an
    /// error's `Display` names the request, which can hold a patient id).
    pub fn reason(&self) -> String {
        match self {
            FhirError::InvalidBaseUrl { .. } => "invalid FHIR base URL".into(),
            FhirError::Status { status, .. } => format!("HTTP {status}"),
            FhirError::Timeout { timeout_ms, .. } => format!("no answer within {timeout_ms} ms"),
            FhirError::Connection { .. } => "connection failed".into(),
            FhirError::Authorization { .. } => {
                "no access token from the authorization server".into()
            }
            FhirError::Payload { .. } => "the answer is not FHIR JSON".into(),
            FhirError::TooManyPages { max, .. } => format!("more than {max} pages"),
            FhirError::ForeignNextLink { .. } => "a next link to another server was refused".into(),
            FhirError::OutsideBase { .. } => "a request outside the FHIR base was refused".into(),
        }
    }
}

impl FhirError {
    /// The HTTP status of a [`FhirError::Status`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            FhirError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server refused the credentials (HTTP 401 or 403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

/// Installs rustls' aws-lc-rs provider as the process default, once (reqwest's `rustls-no-provider`
/// needs one; if another was installed first, that one is kept).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// Headers every client of the process adds to each request: the service sets it once, to
/// carry the W3C trace context (`traceparent`) of the span the request is made in.
static OUTGOING_HEADERS: OnceLock<fn(&mut HeaderMap)> = OnceLock::new();

/// Sets the function that adds headers to every request (once per process; later calls are
/// ignored). Used for trace-context propagation; it must not add credentials.
pub fn set_outgoing_headers(add: fn(&mut HeaderMap)) {
    let _ = OUTGOING_HEADERS.set(add);
}

/// `url` without user info (which may hold a password).
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters, and the
/// dots of a `.` or `..` segment (which would otherwise move up the path).
fn encode_segment(segment: &str) -> String {
    let dots_only = segment == "." || segment == "..";
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'~')
            || (b == b'.' && !dots_only);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A number in `[0, 1]`, different on every call.
fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    h.write_u32(nanos);
    (h.finish() % 1001) as f64 / 1000.0
}

/// `Retry-After` in seconds (the HTTP-date form is ignored), capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP))
}

/// A transport error's message with its causes, without the URL (the error names it already).
pub(crate) fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// The issues of an OperationOutcome body, if the body is one.
fn outcome_of(body: &str) -> Option<String> {
    parse(body)
        .ok()
        .and_then(|p| p.outcome)
        .map(|issues| issues.join("; "))
}

impl FhirClient {
    /// A client for the FHIR server at `base_url` (absolute `http` or `https`, no query, no
    /// fragment, no user info; a trailing slash is added when missing). `bearer_token` (from CDS
    /// Hooks `fhirAuthorization`) is sent as `Authorization: Bearer` on every request.
    pub fn new(
        base_url: &str,
        bearer_token: Option<SecretString>,
        config: ClientConfig,
    ) -> Result<FhirClient, FhirError> {
        let invalid = |reason: &str| FhirError::InvalidBaseUrl {
            url: redact(base_url),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.host().is_none() {
            return Err(invalid("no host"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }

        install_crypto_provider();
        // Redirects are followed only inside the base (same origin and path), so the bearer
        // token never travels to another server or another path of the same one.
        let allowed = base.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS || !within(&allowed, attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(redirects)
            .build()
            .map_err(|e| invalid(&format!("HTTP client: {}", transport_message(e))))?;
        Ok(FhirClient {
            http,
            base,
            bearer_token,
            backend: None,
            config,
        })
    }

    /// The same server and connection pool with another bearer token (or none): a service keeps
    /// one client per FHIR server and gives each call its own `fhirAuthorization` token.
    pub fn with_bearer_token(&self, bearer_token: Option<SecretString>) -> FhirClient {
        FhirClient {
            http: self.http.clone(),
            base: self.base.clone(),
            bearer_token,
            backend: None,
            config: self.config,
        }
    }

    /// The same server with SMART Backend Services authorization: every request carries an
    /// access token from `backend` (cached, renewed before it expires, and renewed once more
    /// when the server answers 401).
    pub fn with_backend_auth(&self, backend: Arc<crate::smart::BackendAuth>) -> FhirClient {
        FhirClient {
            http: self.http.clone(),
            base: self.base.clone(),
            bearer_token: None,
            backend: Some(backend),
            config: self.config,
        }
    }

    /// The base URL, with a trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET [base]/{resource_type}/{id}`. A 2xx OperationOutcome is returned as the Payload's
    /// `outcome`.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Payload, FhirError> {
        // A FHIR type is letters; an id is never a dot segment (the URL parser would turn
        // `%2E%2E` back into `..` and climb out of the base).
        let dots = |s: &str| s.trim_matches('.').is_empty();
        if !resource_type.chars().all(|c| c.is_ascii_alphabetic()) || id.is_empty() || dots(id) {
            return Err(FhirError::OutsideBase {
                what: format!("{resource_type}/{id}"),
                base: self.base.to_string(),
            });
        }
        let url = self.join(&format!(
            "{}/{}",
            encode_segment(resource_type),
            encode_segment(id)
        ))?;
        self.get(url).await
    }

    /// `GET [base]/{resource_type}?params...`, then every `link[relation=next]` page (relative
    /// links resolve against the base; links to another origin are refused). The resources,
    /// warnings and outcome issues of all pages are merged into one Payload, with `total` from
    /// the first page and `next` None.
    pub async fn search(
        &self,
        resource_type: &str,
        params: &[(String, String)],
    ) -> Result<Payload, FhirError> {
        let mut url = self.join(&encode_segment(resource_type))?;
        if !params.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let first = format!("GET {url}");
        let mut merged = Payload::default();
        let mut pages = 0usize;
        loop {
            if pages >= self.config.max_pages {
                return Err(FhirError::TooManyPages {
                    url: first,
                    max: self.config.max_pages,
                });
            }
            let page = self.get(url.clone()).await?;
            pages += 1;
            if pages == 1 {
                merged.total = page.total;
            }
            merged.resources.extend(page.resources);
            merged.warnings.extend(page.warnings);
            if let Some(issues) = page.outcome {
                merged.outcome.get_or_insert_with(Vec::new).extend(issues);
            }
            let Some(next) = page.next else { break };
            if merged.resources.len() >= self.config.max_resources {
                let of = merged
                    .total
                    .map_or_else(|| "more".to_string(), |t| t.to_string());
                merged.warnings.push(format!(
                    "truncated:{resource_type} (the first {} of {of}; no further page read)",
                    merged.resources.len()
                ));
                break;
            }
            let foreign = || FhirError::ForeignNextLink {
                url: format!("GET {url}"),
                next: next.clone(),
            };
            let next_url = self.base.join(&next).map_err(|_| foreign())?;
            if !within(&self.base, &next_url) {
                return Err(foreign());
            }
            url = next_url;
        }
        Ok(merged)
    }

    /// POSTs a transaction or batch Bundle (JSON text) to `[base]` (used to load test servers);
    /// Ok on any 2xx, whatever the response Bundle says. 5xx and 429 are retried like any request
    /// (a failed transaction is rolled back by the server); a connection broken after sending is not.
    pub async fn transaction(&self, bundle_json: &str) -> Result<(), FhirError> {
        let url = self.base.clone();
        self.send(Method::POST, url, Some(bundle_json.to_string()))
            .await
            .map(|_| ())
    }

    /// `PUT [base]/{resource_type}/{id}` with a resource (JSON text): an update, or a create with
    /// the client's id (FHIR update-as-create). Idempotent, so it is retried like a GET: writing
    /// the same resource twice leaves one resource. Ok on any 2xx.
    pub async fn put(
        &self,
        resource_type: &str,
        id: &str,
        resource_json: &str,
    ) -> Result<(), FhirError> {
        let url = self.join(&format!(
            "{}/{}",
            encode_segment(resource_type),
            encode_segment(id)
        ))?;
        self.send(Method::PUT, url, Some(resource_json.to_string()))
            .await
            .map(|_| ())
    }

    /// `[base]` joined with an encoded relative path, which must stay under the base.
    fn join(&self, relative: &str) -> Result<Url, FhirError> {
        let url = self
            .base
            .join(relative)
            .map_err(|e| FhirError::InvalidBaseUrl {
                url: self.base.to_string(),
                reason: format!("cannot append {relative:?}: {e}"),
            })?;
        if !within(&self.base, &url) {
            return Err(FhirError::OutsideBase {
                what: relative.to_string(),
                base: self.base.to_string(),
            });
        }
        Ok(url)
    }

    /// A GET whose 2xx body is parsed as FHIR JSON.
    async fn get(&self, url: Url) -> Result<Payload, FhirError> {
        let request = format!("GET {url}");
        let body = self.send(Method::GET, url, None).await?;
        crate::cpu_bound_sized(body.len(), || parse(&body)).map_err(|source| FhirError::Payload {
            url: request,
            source,
        })
    }

    /// The wait before retry number `attempt + 1`: the backoff doubled `attempt` times, plus up
    /// to 50 % jitter, or the server's `Retry-After`.
    fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d;
        }
        let factor = 1u32 << attempt.min(20);
        let step = self
            .config
            .backoff
            .checked_mul(factor)
            .unwrap_or(BACKOFF_CAP)
            .min(BACKOFF_CAP);
        step + step.mul_f64(0.5 * random_fraction())
    }

    /// Sends one request with the retry policy; the 2xx body as text.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<String, FhirError> {
        let request = format!("{method} {url}");
        let idempotent = method == Method::GET || method == Method::PUT;
        let timeout = || FhirError::Timeout {
            url: request.clone(),
            timeout_ms: u64::try_from(self.config.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let mut attempt: u32 = 0;
        let mut renewed_token = false;
        loop {
            let can_retry = attempt < self.config.retries;
            let backend_token = match &self.backend {
                Some(b) => Some(b.token(&self.http, &self.base).await.map_err(|e| {
                    FhirError::Authorization {
                        url: request.clone(),
                        message: e.to_string(),
                    }
                })?),
                None => None,
            };
            let mut builder = self
                .http
                .request(method.clone(), url.clone())
                .header(ACCEPT, FHIR_JSON);
            if let Some(add) = OUTGOING_HEADERS.get() {
                let mut extra = HeaderMap::new();
                add(&mut extra);
                builder = builder.headers(extra);
            }
            if let Some(token) = backend_token.as_ref().or(self.bearer_token.as_ref()) {
                builder = builder.bearer_auth(token.expose_secret());
            }
            if let Some(body) = &body {
                builder = builder.header(CONTENT_TYPE, FHIR_JSON).body(body.clone());
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(timeout()),
                Err(e) => {
                    // Not connected: the request was never sent, safe to repeat. Broken later:
                    // only a GET is repeated.
                    if can_retry && (e.is_connect() || idempotent) {
                        tokio::time::sleep(self.wait(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(FhirError::Connection {
                        url: request,
                        message: transport_message(e),
                    });
                }
            };
            let status = response.status();
            let wait_hint = match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    retry_after(response.headers())
                }
                _ => None,
            };
            let text = match response.text().await {
                Ok(t) => t,
                Err(e) if e.is_timeout() => return Err(timeout()),
                Err(e) => {
                    if can_retry && idempotent {
                        tokio::time::sleep(self.wait(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(FhirError::Connection {
                        url: request,
                        message: transport_message(e),
                    });
                }
            };
            if status.is_success() {
                return Ok(text);
            }
            // A backend token the server refuses (revoked, or expired early): one new token.
            if status == StatusCode::UNAUTHORIZED
                && !renewed_token
                && let Some(b) = &self.backend
            {
                b.invalidate().await;
                renewed_token = true;
                continue;
            }
            let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            if retryable && can_retry {
                tokio::time::sleep(self.wait(attempt, wait_hint)).await;
                attempt += 1;
                continue;
            }
            return Err(FhirError::Status {
                url: request,
                status: status.as_u16(),
                outcome: outcome_of(&text),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("Patient"), "Patient");
        assert_eq!(encode_segment("a.b-c_1"), "a.b-c_1");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
    }

    #[test]
    fn base_gets_a_trailing_slash_and_rejects_other_schemes() {
        let c = FhirClient::new("http://h:1/fhir", None, ClientConfig::default());
        assert_eq!(
            c.map(|c| c.base().to_string()).ok().as_deref(),
            Some("http://h:1/fhir/")
        );
        assert!(matches!(
            FhirClient::new("ftp://h/fhir", None, ClientConfig::default()),
            Err(FhirError::InvalidBaseUrl { .. })
        ));
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let c = FhirClient::new("http://h/", None, ClientConfig::default());
        let Ok(c) = c else { panic!("client") };
        for attempt in 0..3 {
            let step = Duration::from_millis(100 * (1 << attempt));
            let w = c.wait(attempt, None);
            assert!(w >= step && w <= step + step / 2, "{w:?}");
        }
        assert_eq!(
            c.wait(5, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("3600"),
        );
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_CAP));
    }
}
