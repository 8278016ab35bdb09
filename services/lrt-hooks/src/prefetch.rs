//! Prefetch resolution: from a request's `prefetch` (and, where needed, the EHR's FHIR server)
//! to the resources of one evaluation, exactly per the checklist's table (§1.D.15):
//!
//! | value of a declared key | meaning | action ([`KeySource`]) |
//! |---|---|---|
//! | a resource, or a searchset | satisfied | use it (`prefetch`) |
//! | a searchset with `link[next]` | paginated | follow `next` with the bearer token (`prefetch_paged`); a `next` outside `fhirServer` → re-fetch the template; if neither is possible, use the pages sent with a `prefetch_incomplete:<key>` data-quality warning (`prefetch_incomplete`) |
//! | `null` | no data exists | no data, **no fetch, no 412** (`null`) |
//! | a searchset with 0 entries | no data | same as `null` (`prefetch` with 0 resources) |
//! | an OperationOutcome (or a value that is not FHIR JSON) | the client failed | fetch if `fhirServer` is given, else unavailable |
//! | absent | not satisfied | fetch `{fhirServer}/{template, tokens filled}` (+ the date window for `Observation`, see [`resolve`]) with `Authorization: Bearer {access_token}` (`fetched`), else unavailable |
//!
//! * **Only allow-listed FHIR servers are contacted** ([`AllowList`]): a `fhirServer` that is not
//!   under a configured base-URL prefix is never called (no SSRF, no token sent elsewhere); its
//!   keys are unavailable. `next` links are followed only under `fhirServer` (and the client
//!   refuses pages on another origin).
//! * Fetches run **concurrently**, each key under a hard timeout ([`PrefetchConfig::key_timeout`])
//!   on top of the client's per-request timeout, so a slow EHR gives a 412, not a hung screen.
//! * A **required** key (`Patient`, `Observation`) that stays unavailable fails the call with
//!   [`PrefetchError::Required`] (the server answers 412 with an OperationOutcome). An optional
//!   key that stays unavailable leaves its kind "not searched" ([`lrt_fhir::Searched`]: its
//!   flags stay unknown, never "absent") and adds a `fetch_failed:<key> (<reason>)`
//!   data-quality warning.
//! * [`KeySource`] records where each key's data came from, for the evaluation record. Its
//!   reasons and URLs hold no query values, no patient id and no token.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lrt_engine::ruleset::files::ResourceKind;
use lrt_engine::{PatientSnapshot, RuleSet};
use lrt_fhir::{ClientConfig, Collected, FhirClient, FhirError, MapOptions, Payload, Searched};
use serde::Serialize;
use url::Url;

use crate::model::HookRequest;
use crate::services::{KeyKind, PrefetchTemplate, fill_tokens, prefetch_templates};

/// Base-URL prefixes of the FHIR servers the service may call.
///
/// A URL is allowed when its scheme, host and port equal a prefix's and its path is the
/// prefix's path or below it (segment-wise: `https://ehr/fhir` allows `https://ehr/fhir/R4`, not
/// `https://ehr/fhir-other`). Plain `http` is allowed only when a prefix says `http` (loopback
/// test setups). URLs with credentials are never allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    prefixes: Vec<Url>,
}

/// An allow-list entry that is not an absolute http(s) base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allow-list entry {entry:?} is not an absolute http(s) URL without query, fragment or credentials"
)]
pub struct AllowListError {
    pub entry: String,
}

fn with_slash(path: &str) -> String {
    if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

impl AllowList {
    /// No server allowed (prefetch only).
    pub fn none() -> AllowList {
        AllowList::default()
    }

    pub fn new<I, S>(prefixes: I) -> Result<AllowList, AllowListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in prefixes {
            let entry = p.as_ref().trim();
            let bad = || AllowListError {
                entry: entry.to_string(),
            };
            let url = Url::parse(entry).map_err(|_| bad())?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host().is_none()
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(bad());
            }
            out.push(url);
        }
        Ok(AllowList { prefixes: out })
    }

    /// Whether `url` may be called.
    pub fn allows(&self, url: &Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let path = with_slash(url.path());
        self.prefixes.iter().any(|p| {
            p.scheme() == url.scheme()
                && p.host_str() == url.host_str()
                && p.port_or_known_default() == url.port_or_known_default()
                && path.starts_with(&with_slash(p.path()))
        })
    }
}

/// How prefetch resolution calls the FHIR server.
#[derive(Debug, Clone)]
pub struct PrefetchConfig {
    pub allow_list: AllowList,
    /// Per-request timeout, retries and page limit of the FHIR client.
    pub client: ClientConfig,
    /// The longest time one key may take, all its requests and pages included.
    pub key_timeout: Duration,
    /// The HTTP clients kept between calls, one per FHIR server (clones of the config share
    /// them).
    pub clients: FhirClients,
}

/// One FHIR client per FHIR server base URL, kept between calls.
///
/// Building a client loads the TLS root certificates (about 3 ms in a release build) and a new
/// client opens new connections, so each call takes its server's client and gives it the call's
/// own `fhirAuthorization` token ([`FhirClient::with_bearer_token`]): a token is never kept
/// and never sent on another call. Connections are pooled per server; the `Authorization`
/// header is per request. At most [`FhirClients::MAX_SERVERS`] servers are kept (only
/// allow-listed servers are ever called, but a prefix allows any path below it); past that the
/// oldest is dropped.
#[derive(Clone, Default)]
pub struct FhirClients {
    /// The kept clients by base URL, the oldest first (at most 32: a scan beats a map).
    kept: Arc<Mutex<Vec<(Url, FhirClient)>>>,
}

impl FhirClients {
    /// The most FHIR servers whose clients are kept.
    pub const MAX_SERVERS: usize = 32;

    /// The client for the server at `base` (with `config`), carrying `token`: the kept one when
    /// there is one, else a new one, kept for the next call.
    pub fn for_call(
        &self,
        base: &Url,
        config: ClientConfig,
        token: Option<secrecy::SecretString>,
    ) -> Result<FhirClient, FhirError> {
        let kept_for = |kept: &[(Url, FhirClient)]| {
            kept.iter()
                .find(|(b, _)| b == base)
                .map(|(_, c)| c.with_bearer_token(token.clone()))
        };
        if let Some(client) = kept_for(&self.lock()) {
            return Ok(client);
        }
        // Built outside the lock: calls to other servers do not wait for it.
        let built = FhirClient::new(base.as_str(), None, config)?;
        let mut kept = self.lock();
        if let Some(raced) = kept_for(&kept) {
            return Ok(raced);
        }
        if kept.len() >= Self::MAX_SERVERS {
            kept.remove(0);
        }
        kept.push((base.clone(), built.clone()));
        Ok(built.with_bearer_token(token))
    }

    /// How many servers' clients are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Url, FhirClient)>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for FhirClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirClients")
            .field("servers", &self.len())
            .finish()
    }
}

impl Default for PrefetchConfig {
    /// Nothing allow-listed; a 2 s request timeout, 1 retry, 20 pages; 3 s per key.
    fn default() -> Self {
        PrefetchConfig {
            allow_list: AllowList::none(),
            client: ClientConfig {
                timeout: Duration::from_secs(2),
                retries: 1,
                backoff: Duration::from_millis(50),
                max_pages: 20,
                max_resources: ClientConfig::default().max_resources,
            },
            key_timeout: Duration::from_secs(3),
            clients: FhirClients::default(),
        }
    }
}

/// The templates of a rule set and what the fallback needs to split the observation search.
#[derive(Debug, Clone)]
pub struct PrefetchPlan {
    pub templates: Vec<PrefetchTemplate>,
    /// The observation lookback (the fallback's date window).
    pub lookback: chrono::Duration,
    /// Observation codes with a validity window (searched within the window).
    timed_codes: String,
    /// Observation codes without one (height, weight: searched up to `now`).
    untimed_codes: String,
}

impl PrefetchPlan {
    pub fn new(rules: &RuleSet) -> PrefetchPlan {
        let searches = lrt_fhir::search::patient_searches(rules, "-", DateTime::UNIX_EPOCH);
        let mut timed = String::new();
        let mut untimed = String::new();
        for s in searches.iter().filter(|s| s.resource_type == "Observation") {
            let code = s
                .params
                .iter()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let has_lower = s
                .params
                .iter()
                .any(|(k, v)| k == "date" && v.starts_with("ge"));
            if has_lower {
                timed = code;
            } else {
                untimed = code;
            }
        }
        PrefetchPlan {
            templates: prefetch_templates(rules),
            lookback: lrt_fhir::search::observation_lookback(rules),
            timed_codes: timed,
            untimed_codes: untimed,
        }
    }

    /// Whether `request` sends every key of the plan (`null` included): then nothing is
    /// fetched unless a value is unreadable, an `OperationOutcome` or a first page of several.
    pub fn is_covered_by(&self, request: &HookRequest) -> bool {
        self.templates
            .iter()
            .all(|t| request.prefetch.contains_key(&t.key))
    }
}

/// Where one key's data came from (stored with the evaluation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum KeySource {
    /// Used as sent (a resource or a complete searchset; 0 resources = no data).
    Prefetch { resources: usize },
    /// The first page came in the prefetch; the others were fetched from `next` under `url`.
    PrefetchPaged { resources: usize, url: String },
    /// A paged searchset whose further pages could not be fetched: the pages sent are used,
    /// with a `prefetch_incomplete:<key>` data-quality warning.
    PrefetchIncomplete { resources: usize, reason: String },
    /// `null`: no data exists; not fetched.
    Null,
    /// Fetched from the FHIR server (`url` without query).
    Fetched { url: String, resources: usize },
    /// Not available (why: no fhirServer, not allow-listed, HTTP status, timeout...).
    Unavailable { reason: String },
}

impl KeySource {
    pub fn is_available(&self) -> bool {
        !matches!(self, KeySource::Unavailable { .. })
    }
}

/// The resources of one evaluation and where each key's data came from.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub collected: Collected,
    pub searched: Searched,
    pub sources: BTreeMap<String, KeySource>,
}

impl Resolved {
    /// The snapshot of the request's `context.patientId` at `now` (`None` without one; a
    /// validated request always has one).
    pub fn snapshot_for(
        &self,
        rules: &RuleSet,
        request: &HookRequest,
        now: DateTime<Utc>,
    ) -> Option<PatientSnapshot> {
        request
            .patient_id()
            .map(|patient| self.snapshot(rules, patient, now))
    }

    /// The snapshot of `patient` at `now` (resources of other patients are reported, never
    /// used). Give `context.patientId` as `patient`.
    pub fn snapshot(&self, rules: &RuleSet, patient: &str, now: DateTime<Utc>) -> PatientSnapshot {
        lrt_fhir::build_snapshot(
            rules,
            &self.collected,
            patient,
            now,
            MapOptions {
                searched: self.searched,
                warn_other_patients: true,
            },
        )
    }
}

/// The call cannot be answered (HTTP 412 Precondition Failed, checklist D.15).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefetchError {
    /// Required keys stayed unavailable. `sources` says why, per key.
    #[error("required FHIR data unavailable: {}", describe(keys, sources))]
    Required {
        keys: Vec<String>,
        sources: BTreeMap<String, KeySource>,
    },
}

fn describe(keys: &[String], sources: &BTreeMap<String, KeySource>) -> String {
    keys.iter()
        .map(|k| match sources.get(k) {
            Some(KeySource::Unavailable { reason }) => format!("{k} ({reason})"),
            _ => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A FHIR error as a reason without URL, query or token.
fn reason_of(e: &FhirError) -> String {
    match e {
        FhirError::InvalidBaseUrl { .. } => "invalid fhirServer URL".into(),
        FhirError::OutsideBase { .. } => "a request outside fhirServer was refused".into(),
        other => other.reason(),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One GET to run: a read or a search (one or several, merged).
#[derive(Debug, Clone)]
enum Request {
    Read { resource_type: String, id: String },
    Search(Vec<(String, Vec<(String, String)>)>),
}

/// What to do for a key that needs the server.
#[derive(Debug)]
enum Job {
    /// Fetch the key (it was absent, or not usable as sent).
    Fetch { request: Request },
    /// Fetch the rest of a prefetched searchset (its `next` pages, or the whole template when
    /// `next` is not under `fhirServer`); on failure the pages sent are used, marked incomplete.
    Next {
        first: Payload,
        request: Request,
        shown: String,
        /// The request re-fetches the whole key: its answer replaces the pages sent.
        replace: bool,
    },
}

/// Decodes `%XX` escapes (a `+` stays a `+`: this is a path, not a form).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The template, tokens filled, as a request (the date window added for `Observation`).
///
/// The filled template is split by hand, not resolved as a URL, so that a token value such as
/// `..` can never move up the server's path: it stays one (encoded) id segment.
fn fallback_request(
    t: &PrefetchTemplate,
    request: &HookRequest,
    plan: &PrefetchPlan,
    window_end: Option<DateTime<Utc>>,
) -> Result<Request, String> {
    let empty = serde_json::Map::new();
    let context = request.context.as_ref().unwrap_or(&empty);
    let filled = fill_tokens(&t.template, context).map_err(|e| e.to_string())?;
    let (path, query) = filled.split_once('?').unwrap_or((filled.as_str(), ""));
    if path.starts_with('/') || path.contains("://") || query.contains('#') {
        return Err("the template is not a relative URL".into());
    }
    let segments: Vec<String> = path.split('/').map(percent_decode).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("the template has an empty path segment".into());
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match (segments.as_slice(), t.kind) {
        ([rt, id], _) if params.is_empty() => Ok(Request::Read {
            resource_type: rt.clone(),
            id: id.clone(),
        }),
        ([rt], KeyKind::Observation) if window_end.is_some() => {
            let now = window_end.unwrap_or(DateTime::UNIX_EPOCH);
            // The template with the rule set's date window; height and weight (no validity
            // window) up to `now` only, as the search plan does.
            let base: Vec<(String, String)> = params
                .into_iter()
                .filter(|(k, _)| k != "code" && k != "date")
                .collect();
            let mut searches = Vec::new();
            let since = now - plan.lookback;
            for (codes, lower) in [(&plan.timed_codes, true), (&plan.untimed_codes, false)] {
                if codes.is_empty() {
                    continue;
                }
                let mut p = base.clone();
                p.push(("code".into(), codes.clone()));
                if lower {
                    p.push(("date".into(), format!("ge{}", time(since))));
                }
                p.push(("date".into(), format!("le{}", time(now))));
                searches.push((rt.clone(), p));
            }
            Ok(Request::Search(searches))
        }
        ([rt], _) => Ok(Request::Search(vec![(rt.clone(), params)])),
        _ => Err("the template is neither a read nor a type-level search".into()),
    }
}

/// Spawned tasks that are aborted when the guard is dropped (a key that timed out, or a
/// resolution whose caller went away, leaves no request running).
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Runs a request; the merged payload.
async fn run(client: FhirClient, request: Request) -> Result<Payload, FhirError> {
    match request {
        Request::Read { resource_type, id } => client.read(&resource_type, &id).await,
        Request::Search(searches) => {
            let mut merged = Payload::default();
            let mut guard = AbortOnDrop(
                searches
                    .into_iter()
                    .map(|(rt, params)| {
                        let c = client.clone();
                        tokio::spawn(async move { c.search(&rt, &params).await })
                    })
                    .collect(),
            );
            for h in guard.0.iter_mut() {
                let page = h.await.map_err(|e| FhirError::Connection {
                    url: "search".into(),
                    message: e.to_string(),
                })??;
                merged.resources.extend(page.resources);
                merged.warnings.extend(page.warnings);
                if let Some(o) = page.outcome {
                    merged.outcome.get_or_insert_with(Vec::new).extend(o);
                }
            }
            Ok(merged)
        }
    }
}

/// What a request's URL looks like in the record (no query, no id).
fn shown(base: &Url, request: &Request) -> String {
    match request {
        Request::Read { resource_type, .. } => format!("{base}{resource_type}/[id]"),
        Request::Search(s) => s
            .first()
            .map(|(rt, _)| format!("{base}{rt}"))
            .unwrap_or_else(|| base.to_string()),
    }
}

/// A `next` link as a search under `base`, when it is one (`None`: re-fetch instead).
fn next_request(base: &Url, next: &str) -> Option<Request> {
    let url = base.join(next).ok()?;
    let rest = url.as_str().strip_prefix(base.as_str())?;
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if path.contains('/') || url.fragment().is_some() {
        return None;
    }
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Some(Request::Search(vec![(path.to_string(), params)]))
}

/// Resolves every declared key of `plan` for `request`. See the module docs for the rules.
///
/// `window_end` is the evaluation time when it is known before the data (the call time): the
/// `Observation` fallback then asks for `date=ge{window_end - lookback}&date=le{window_end}`
/// (height and weight `date=le{window_end}` only). `None` fetches the template as published,
/// without dates (all observations of those codes, newest first), for a service that derives
/// the evaluation time from the data (date-shifted research data such as MIMIC-IV).
pub async fn resolve(
    request: &HookRequest,
    plan: &PrefetchPlan,
    config: &PrefetchConfig,
    window_end: Option<DateTime<Utc>>,
) -> Result<Resolved, PrefetchError> {
    let mut sources: BTreeMap<String, KeySource> = BTreeMap::new();
    let mut collected = Collected::default();
    let mut jobs: Vec<(String, Job)> = Vec::new();

    // Can the server be called at all?
    let server: Result<Url, String> = match &request.fhir_server {
        None => Err("no fhirServer".into()),
        Some(u) if !config.allow_list.allows(u) => {
            Err("fhirServer is not on the allow list; not contacted".into())
        }
        Some(u) => {
            let mut u = u.clone();
            if !u.path().ends_with('/') {
                let p = format!("{}/", u.path());
                u.set_path(&p);
            }
            Ok(u)
        }
    };

    for t in &plan.templates {
        // The value's JSON text, as sent (read by the FHIR reader here, once).
        let value = request.prefetch.get(&t.key).map(|v| v.get());
        // Why the key needs the server, if it does.
        let need: Option<String> = match value {
            None => Some("absent".into()),
            Some("null") => {
                sources.insert(t.key.clone(), KeySource::Null);
                None
            }
            Some(v) if !v.starts_with('{') => Some("not a FHIR resource".into()),
            Some(v) => match lrt_fhir::cpu_bound_sized(v.len(), || lrt_fhir::parse(v)) {
                Err(_) => Some("not a readable FHIR resource".into()),
                Ok(p) if p.outcome.is_some() && p.resources.is_empty() => {
                    Some("an OperationOutcome".into())
                }
                Ok(p) => match p.next.clone() {
                    None => {
                        sources.insert(
                            t.key.clone(),
                            KeySource::Prefetch {
                                resources: p.resources.len(),
                            },
                        );
                        collected.add(p);
                        None
                    }
                    Some(next) => {
                        let follow =
                            server.as_ref().map_err(Clone::clone).and_then(
                                |base| match next_request(base, &next) {
                                    Some(r) => Ok((base.clone(), r, false)),
                                    None => fallback_request(t, request, plan, window_end)
                                        .map(|r| (base.clone(), r, true)),
                                },
                            );
                        match follow {
                            Ok((base, r, replace)) => {
                                let shown = shown(&base, &r);
                                jobs.push((
                                    t.key.clone(),
                                    Job::Next {
                                        first: p,
                                        request: r,
                                        shown,
                                        replace,
                                    },
                                ));
                            }
                            Err(reason) => {
                                let reason = format!("next page not followed: {reason}");
                                collected
                                    .warnings
                                    .push(format!("prefetch_incomplete:{} ({reason})", t.key));
                                sources.insert(
                                    t.key.clone(),
                                    KeySource::PrefetchIncomplete {
                                        resources: p.resources.len(),
                                        reason,
                                    },
                                );
                                collected.add(p);
                            }
                        }
                        None
                    }
                },
            },
        };
        let Some(why) = need else { continue };
        match &server {
            Err(e) => {
                let reason = if why == "absent" {
                    format!("absent from prefetch; {e}")
                } else {
                    format!("prefetch was {why}; {e}")
                };
                sources.insert(t.key.clone(), KeySource::Unavailable { reason });
            }
            Ok(_) => match fallback_request(t, request, plan, window_end) {
                Ok(r) => jobs.push((t.key.clone(), Job::Fetch { request: r })),
                Err(reason) => {
                    sources.insert(t.key.clone(), KeySource::Unavailable { reason });
                }
            },
        }
    }

    if !jobs.is_empty()
        && let Ok(base) = &server
    {
        let client = config.clients.for_call(
            base,
            config.client,
            request
                .access_token()
                .map(|t| secrecy::SecretString::from(t.to_string())),
        );
        match client {
            Err(e) => {
                for (key, job) in jobs {
                    let reason = reason_of(&e);
                    match job {
                        Job::Fetch { .. } => {
                            sources.insert(key, KeySource::Unavailable { reason });
                        }
                        Job::Next { first, .. } => {
                            incomplete(&mut collected, &mut sources, key, first, reason)
                        }
                    }
                }
            }
            Ok(client) => {
                let mut keys_jobs = Vec::with_capacity(jobs.len());
                let mut guard = AbortOnDrop(Vec::with_capacity(jobs.len()));
                for (key, job) in jobs {
                    let c = client.clone();
                    let limit = config.key_timeout;
                    let req = match &job {
                        Job::Fetch { request } | Job::Next { request, .. } => request.clone(),
                    };
                    guard.0.push(tokio::spawn(async move {
                        tokio::time::timeout(limit, run(c, req)).await
                    }));
                    keys_jobs.push((key, job));
                }
                for ((key, job), handle) in keys_jobs.into_iter().zip(guard.0.iter_mut()) {
                    let outcome: Result<Payload, String> = match handle.await {
                        Err(_) => Err("the fetch task failed".into()),
                        Ok(Err(_)) => Err(format!(
                            "no answer within {} ms",
                            config.key_timeout.as_millis()
                        )),
                        Ok(Ok(Err(e))) => Err(reason_of(&e)),
                        Ok(Ok(Ok(p))) => Ok(p),
                    };
                    match (job, outcome) {
                        (Job::Fetch { request }, Ok(p)) => {
                            sources.insert(
                                key,
                                KeySource::Fetched {
                                    url: shown(base, &request),
                                    resources: p.resources.len(),
                                },
                            );
                            collected.add(p);
                        }
                        (Job::Fetch { .. }, Err(reason)) => {
                            sources.insert(key, KeySource::Unavailable { reason });
                        }
                        (
                            Job::Next {
                                shown,
                                replace: true,
                                ..
                            },
                            Ok(all),
                        ) => {
                            sources.insert(
                                key,
                                KeySource::Fetched {
                                    url: shown,
                                    resources: all.resources.len(),
                                },
                            );
                            collected.add(all);
                        }
                        (Job::Next { first, shown, .. }, Ok(rest)) => {
                            let resources = first.resources.len() + rest.resources.len();
                            collected.add(first);
                            collected.add(rest);
                            sources.insert(
                                key,
                                KeySource::PrefetchPaged {
                                    resources,
                                    url: shown,
                                },
                            );
                        }
                        (Job::Next { first, .. }, Err(reason)) => incomplete(
                            &mut collected,
                            &mut sources,
                            key,
                            first,
                            format!("next page not fetched: {reason}"),
                        ),
                    }
                }
            }
        }
    }

    // Required keys, then the optional ones' warnings and the kinds searched.
    let missing: Vec<String> = plan
        .templates
        .iter()
        .filter(|t| t.required && !sources.get(&t.key).is_some_and(KeySource::is_available))
        .map(|t| t.key.clone())
        .collect();
    if !missing.is_empty() {
        return Err(PrefetchError::Required {
            keys: missing,
            sources,
        });
    }
    for t in plan.templates.iter().filter(|t| !t.required) {
        if let Some(KeySource::Unavailable { reason }) = sources.get(&t.key) {
            collected
                .warnings
                .push(format!("fetch_failed:{} ({reason})", t.key));
        }
    }
    let kind_ok = |kind: ResourceKind| {
        let keys: Vec<&PrefetchTemplate> = plan
            .templates
            .iter()
            .filter(|t| t.kind == KeyKind::Context(kind))
            .collect();
        !keys.is_empty()
            && keys
                .iter()
                .all(|t| sources.get(&t.key).is_some_and(KeySource::is_available))
    };
    let searched = Searched {
        conditions: kind_ok(ResourceKind::Conditions),
        procedures: kind_ok(ResourceKind::Procedures),
        medications: kind_ok(ResourceKind::Medications),
        flags: kind_ok(ResourceKind::Flags),
    };
    Ok(Resolved {
        collected,
        searched,
        sources,
    })
}

fn incomplete(
    collected: &mut Collected,
    sources: &mut BTreeMap<String, KeySource>,
    key: String,
    first: Payload,
    reason: String,
) {
    collected
        .warnings
        .push(format!("prefetch_incomplete:{key} ({reason})"));
    sources.insert(
        key,
        KeySource::PrefetchIncomplete {
            resources: first.resources.len(),
            reason,
        },
    );
    collected.add(first);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(n: usize) -> Url {
        Url::parse(&format!("https://ehr.example/fhir/tenant-{n}/")).expect("valid")
    }

    #[test]
    fn one_client_is_kept_per_server_and_at_most_max_servers() {
        let clients = FhirClients::default();
        let config = PrefetchConfig::default().client;
        for n in 0..3 {
            clients.for_call(&base(0), config, None).expect("client");
            clients.for_call(&base(1), config, None).expect("client");
            assert_eq!(clients.len(), 2, "round {n}");
        }
        for n in 0..FhirClients::MAX_SERVERS + 5 {
            clients.for_call(&base(n), config, None).expect("client");
        }
        assert_eq!(clients.len(), FhirClients::MAX_SERVERS);
        // The oldest were dropped: the newest is still kept, so asking again keeps the count.
        clients
            .for_call(&base(FhirClients::MAX_SERVERS + 4), config, None)
            .expect("client");
        assert_eq!(clients.len(), FhirClients::MAX_SERVERS);
        // A clone of the config shares the kept clients.
        let shared = clients.clone();
        assert_eq!(shared.len(), FhirClients::MAX_SERVERS);
    }
}
