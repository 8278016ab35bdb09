//! Hand-written serde types for CDS Hooks 2.0 (spec checklist §1.B, C, F, G).
//!
//! * **Requests** ([`HookRequest`]) are read leniently: unknown members and `extension` are
//!   ignored (checklist A.3); `hook`, `hookInstance` and `context` are optional at the serde level
//!   so that a missing one becomes a precise [`RequestError`] from [`HookRequest::validate`]
//!   instead of a bare parse error. `context` and `prefetch` stay JSON maps: the hooks' context
//!   fields differ, and prefetch values are resolved per key by [`crate::prefetch`].
//! * **Responses** ([`Response`], [`Card`], ...) omit every optional member that has no value,
//!   and every optional array that is empty (checklist A.2: no `null`, no `[]`, no `{}`; only
//!   `cards` may be empty). [`Summary`] enforces the 140-character limit at construction.
//! * **Secrets**: [`FhirAuthorization`]'s `Debug` never shows the access token, and the type has
//!   no `Serialize`, so a request cannot be logged or stored with its token by accident
//!   (checklist C.10, "never store, share or log `access_token`").
//! * **Errors**: every [`RequestError`] message is fit for an OperationOutcome's `diagnostics`:
//!   it names fields, never their values (no PHI, no tokens).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use crate::services::{Hook, Service};

// ------------------------------------------------------------------------------------------
// Request
// ------------------------------------------------------------------------------------------

/// A CDS Hooks 2.0 service call (`POST {baseUrl}/cds-services/{id}`), checklist §1.C.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRequest {
    /// The hook that triggered the call (`patient-view`, `order-select`, `order-sign`).
    #[serde(default)]
    pub hook: Option<String>,
    /// The UUID of this hook call, as sent; [`HookRequest::validate`] checks it.
    #[serde(default)]
    pub hook_instance: Option<String>,
    /// The EHR's FHIR base URL.
    #[serde(default)]
    pub fhir_server: Option<Url>,
    /// The bearer token for `fhirServer`.
    #[serde(default)]
    pub fhir_authorization: Option<FhirAuthorization>,
    /// Hook-specific context (checklist §1.M). `None` when the member is missing.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Prefetch key → prefetched FHIR data (a resource, a Bundle, an OperationOutcome or `null`),
    /// kept as the JSON text sent: the FHIR reader ([`lrt_fhir::parse`]) reads each value once,
    /// when the prefetch is resolved; no tree is built for it before. `null` values are kept
    /// (they mean "no data", checklist D.14).
    #[serde(default, deserialize_with = "prefetch_map")]
    pub prefetch: BTreeMap<String, Box<RawValue>>,
}

/// `prefetch` as a map; a `null` prefetch member is an empty map.
fn prefetch_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Box<RawValue>>, D::Error> {
    Ok(Option::<BTreeMap<String, Box<RawValue>>>::deserialize(d)?.unwrap_or_default())
}

/// `fhirAuthorization` (checklist C.10). `Debug` redacts the token; there is no `Serialize`.
#[derive(Clone, Deserialize)]
pub struct FhirAuthorization {
    /// The OAuth 2.0 bearer token. Never printed, logged or stored.
    pub access_token: String,
    /// Fixed value `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// SMART scopes granted.
    #[serde(default)]
    pub scope: Option<String>,
    /// The OAuth client id of this CDS service at the EHR's authorization server.
    #[serde(default)]
    pub subject: Option<String>,
    /// The patient in context, when the scopes are `patient/`.
    #[serde(default)]
    pub patient: Option<String>,
}

impl fmt::Debug for FhirAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirAuthorization")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("subject", &self.subject)
            .field("patient", &self.patient.as_ref().map(|_| "<present>"))
            .finish()
    }
}

/// Why a request is refused with HTTP 400. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("the request body is not valid JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    /// The body is JSON but a member has the wrong type or shape.
    #[error("the request member `{path}` is invalid: {problem}")]
    Malformed { path: String, problem: String },
    #[error("`hook` is missing")]
    MissingHook,
    /// A known service id called with another hook (checklist §4 "Routing": 400).
    #[error("service `{service}` answers the `{expected}` hook, not `{hook}`")]
    HookMismatch {
        service: String,
        expected: String,
        hook: String,
    },
    #[error("`hookInstance` is missing")]
    MissingHookInstance,
    #[error("`hookInstance` is not a UUID")]
    InvalidHookInstance,
    /// cds-r-1: `fhirAuthorization.exists() implies fhirServer.exists()`.
    #[error("`fhirAuthorization` is given without `fhirServer` (cds-r-1)")]
    AuthorizationWithoutFhirServer,
    #[error(
        "`fhirServer` must be an absolute http or https URL without credentials, query or fragment"
    )]
    InvalidFhirServer,
    #[error("`fhirAuthorization.{field}` {problem}")]
    InvalidAuthorization {
        field: &'static str,
        problem: &'static str,
    },
    #[error("`context` is missing")]
    MissingContext,
    #[error("`context.{field}` is required by the `{hook}` hook")]
    MissingContextField {
        hook: &'static str,
        field: &'static str,
    },
    #[error("`context.{field}` must be {expected}")]
    InvalidContextField {
        field: &'static str,
        expected: &'static str,
    },
    /// `context.selections[index]` names no resource of `context.draftOrders`.
    #[error("`context.selections[{index}]` does not name a resource of `context.draftOrders`")]
    SelectionNotInDraftOrders { index: usize },
    /// A prefetched `Patient` whose id differs from `context.patientId`.
    #[error("`prefetch.{key}` holds a Patient whose id differs from `context.patientId`")]
    PatientMismatch { key: String },
}

impl RequestError {
    /// The FHIR `OperationOutcome.issue.code` for this error (`invalid`, or `structure` for
    /// unreadable JSON).
    pub fn issue_code(&self) -> &'static str {
        match self {
            RequestError::NotJson { .. } => "structure",
            _ => "invalid",
        }
    }
}

/// Keeps the "expected ..." part of a serde message and drops the value it quotes (which may be
/// PHI or a token).
fn expected_part(message: &str) -> String {
    match message.find("expected ") {
        Some(i) => message[i..]
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_string(),
        None if message.starts_with("missing field") => message
            .split(" at line ")
            .next()
            .unwrap_or(message)
            .to_string(),
        None if message.contains("relative URL") || message.contains("URL") => {
            "expected an absolute URL".to_string()
        }
        None => "has an invalid value or type".to_string(),
    }
}

impl HookRequest {
    /// Reads a request body. A syntax error gives its position; a type error names the member
    /// and what was expected, never the value sent. The body is read once on the fast path;
    /// only a body that fails is read again with path tracking, to explain the 400.
    pub fn from_slice(body: &[u8]) -> Result<HookRequest, RequestError> {
        match serde_json::from_slice(body) {
            Ok(request) => Ok(request),
            Err(_) => Self::explain(body),
        }
    }

    /// The error of a body that does not read (path-tracking deserialisation).
    fn explain(body: &[u8]) -> Result<HookRequest, RequestError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed: Result<HookRequest, _> = serde_path_to_error::deserialize(&mut de);
        match parsed {
            Ok(r) => {
                de.end().map_err(|e| RequestError::NotJson {
                    line: e.line(),
                    column: e.column(),
                })?;
                Ok(r)
            }
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    Err(RequestError::NotJson {
                        line: inner.line(),
                        column: inner.column(),
                    })
                } else {
                    Err(RequestError::Malformed {
                        path: if path == "." {
                            "(body)".to_string()
                        } else {
                            path
                        },
                        problem: expected_part(&inner.to_string()),
                    })
                }
            }
        }
    }

    /// The hook instance as a UUID (after [`HookRequest::validate`] succeeded, always `Some`).
    pub fn hook_instance_uuid(&self) -> Option<Uuid> {
        self.hook_instance
            .as_deref()
            .and_then(|s| Uuid::parse_str(s.trim()).ok())
    }

    /// A root-level string member of `context`.
    pub fn context_str(&self, field: &str) -> Option<&str> {
        self.context.as_ref()?.get(field)?.as_str()
    }

    /// `context.patientId`.
    pub fn patient_id(&self) -> Option<&str> {
        self.context_str("patientId")
    }

    /// `context.userId` (`Practitioner/123`...).
    pub fn user_id(&self) -> Option<&str> {
        self.context_str("userId")
    }

    /// `context.encounterId`.
    pub fn encounter_id(&self) -> Option<&str> {
        self.context_str("encounterId")
    }

    /// `context.draftOrders` (a Bundle) of the order hooks.
    pub fn draft_orders(&self) -> Option<&Value> {
        self.context.as_ref()?.get("draftOrders")
    }

    /// `context.selections` of order-select (`Type/id` references into draftOrders).
    pub fn selections(&self) -> Vec<&str> {
        self.context
            .as_ref()
            .and_then(|c| c.get("selections"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The bearer token, if any (for the FHIR fallback).
    pub fn access_token(&self) -> Option<&str> {
        self.fhir_authorization
            .as_ref()
            .map(|a| a.access_token.as_str())
    }

    /// Checks the request against `service` (checklist C.9, C.10, M and §4 "Routing").
    ///
    /// The 400 cases: no `hook`, or a hook the service does not answer; `hookInstance` missing or
    /// not a UUID; `fhirAuthorization` without `fhirServer` (cds-r-1), a non-http(s)
    /// `fhirServer`, an authorization without token, with a token type other than `Bearer`, or
    /// without one of its other REQUIRED members (`token_type`, `expires_in`, `scope`, `subject`);
    /// `context` missing, or a field the hook requires missing or of the wrong shape
    /// (`userId` and `patientId` strings; `userId` a `Type/id` reference of a type the hook
    /// allows; `selections` an array of `Type/id` strings naming draft orders; `draftOrders` a
    /// Bundle); a prefetched Patient whose id is not `context.patientId`.
    pub fn validate(&self, service: &Service) -> Result<(), RequestError> {
        let hook = self.hook.as_deref().ok_or(RequestError::MissingHook)?;
        if hook != service.hook.name() {
            return Err(RequestError::HookMismatch {
                service: service.id.to_string(),
                expected: service.hook.name().to_string(),
                hook: hook.chars().take(64).collect(),
            });
        }
        let instance = self
            .hook_instance
            .as_deref()
            .ok_or(RequestError::MissingHookInstance)?;
        if Uuid::parse_str(instance.trim()).is_err() {
            return Err(RequestError::InvalidHookInstance);
        }
        if let Some(server) = &self.fhir_server
            && (!matches!(server.scheme(), "http" | "https")
                || server.host().is_none()
                || !server.username().is_empty()
                || server.password().is_some()
                || server.query().is_some()
                || server.fragment().is_some())
        {
            return Err(RequestError::InvalidFhirServer);
        }
        if let Some(auth) = &self.fhir_authorization {
            if self.fhir_server.is_none() {
                return Err(RequestError::AuthorizationWithoutFhirServer);
            }
            if auth.access_token.trim().is_empty() {
                return Err(RequestError::InvalidAuthorization {
                    field: "access_token",
                    problem: "is empty",
                });
            }
            match auth.token_type.as_deref() {
                None => {
                    return Err(RequestError::InvalidAuthorization {
                        field: "token_type",
                        problem: "is required (CDS Hooks 2.0)",
                    });
                }
                Some(t) if !t.eq_ignore_ascii_case("bearer") => {
                    return Err(RequestError::InvalidAuthorization {
                        field: "token_type",
                        problem: "must be `Bearer`",
                    });
                }
                Some(_) => {}
            }
            // REQUIRED in CDS Hooks 2.0: a token whose lifetime, scopes and client are not
            // stated is not used.
            if auth.expires_in.is_none() {
                return Err(RequestError::InvalidAuthorization {
                    field: "expires_in",
                    problem: "is required (CDS Hooks 2.0)",
                });
            }
            if auth.scope.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err(RequestError::InvalidAuthorization {
                    field: "scope",
                    problem: "is required (CDS Hooks 2.0)",
                });
            }
            if auth.subject.as_deref().is_none_or(|s| s.trim().is_empty()) {
                return Err(RequestError::InvalidAuthorization {
                    field: "subject",
                    problem: "is required (CDS Hooks 2.0)",
                });
            }
        }
        let context = self.context.as_ref().ok_or(RequestError::MissingContext)?;
        self.validate_context(service.hook, context)?;
        self.validate_prefetched_patient()
    }

    fn validate_context(
        &self,
        hook: Hook,
        context: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let name = hook.name();
        let required = |field: &'static str| -> Result<&Value, RequestError> {
            context
                .get(field)
                .filter(|v| !v.is_null())
                .ok_or(RequestError::MissingContextField { hook: name, field })
        };
        let user = required("userId")?
            .as_str()
            .ok_or(RequestError::InvalidContextField {
                field: "userId",
                expected: "a string",
            })?;
        let allowed = hook.user_types();
        let user_ok = split_reference(user).is_some_and(|(t, _)| allowed.contains(&t));
        if !user_ok {
            return Err(RequestError::InvalidContextField {
                field: "userId",
                expected: hook.user_types_text(),
            });
        }
        let patient = required("patientId")?
            .as_str()
            .ok_or(RequestError::InvalidContextField {
                field: "patientId",
                expected: "a string",
            })?;
        if !is_fhir_id(patient) {
            return Err(RequestError::InvalidContextField {
                field: "patientId",
                expected: "a FHIR resource id (letters, digits, `-` and `.`, at most 64)",
            });
        }
        if let Some(e) = context.get("encounterId")
            && !e.is_string()
        {
            return Err(RequestError::InvalidContextField {
                field: "encounterId",
                expected: "a string",
            });
        }
        if matches!(hook, Hook::OrderSelect | Hook::OrderSign) {
            let draft = required("draftOrders")?;
            let is_bundle = draft.get("resourceType").and_then(Value::as_str) == Some("Bundle");
            let entries_ok = draft.get("entry").is_none_or(Value::is_array);
            if !is_bundle || !entries_ok {
                return Err(RequestError::InvalidContextField {
                    field: "draftOrders",
                    expected: "a FHIR Bundle of draft orders",
                });
            }
        }
        if hook == Hook::OrderSelect {
            let selections =
                required("selections")?
                    .as_array()
                    .ok_or(RequestError::InvalidContextField {
                        field: "selections",
                        expected: "an array of `Type/id` references",
                    })?;
            let drafts = crate::orders::draft_references(self.draft_orders());
            for (index, s) in selections.iter().enumerate() {
                let Some(reference) = s.as_str().filter(|r| split_reference(r).is_some()) else {
                    return Err(RequestError::InvalidContextField {
                        field: "selections",
                        expected: "an array of `Type/id` references",
                    });
                };
                if !drafts.iter().any(|d| d == reference) {
                    return Err(RequestError::SelectionNotInDraftOrders { index });
                }
            }
        }
        Ok(())
    }

    /// A prefetched Patient (alone, or in a Bundle) must be the patient of the context. The
    /// values are probed as text ([`PatientProbe`]): only `resourceType` and `id` are read, of
    /// the value and of its entries' resources.
    fn validate_prefetched_patient(&self) -> Result<(), RequestError> {
        let Some(patient) = self.patient_id() else {
            return Ok(());
        };
        for (key, value) in &self.prefetch {
            // The text was read as JSON with the request: the probe cannot fail on it.
            let Ok(probe) = serde_json::from_str::<PatientProbe>(value.get()) else {
                continue;
            };
            let ids = match probe.resource_type.as_deref() {
                Some("Patient") => vec![probe.id],
                Some("Bundle") => probe.entry_patient_ids,
                _ => Vec::new(),
            };
            if ids.iter().flatten().any(|id| id != patient) {
                return Err(RequestError::PatientMismatch { key: key.clone() });
            }
        }
        Ok(())
    }
}

/// What the Patient check reads of a prefetch value, as a parsed tree would be read (a member
/// given twice counts with its last value; a member of another type than expected is absent):
/// its `resourceType` and `id`, and the `id`s of the Patients among its `entry[].resource`.
/// Everything else is skipped without building a tree.
#[derive(Default)]
struct PatientProbe {
    resource_type: Option<String>,
    id: Option<String>,
    /// Of each entry whose resource is a Patient: its `id` when it is a string.
    entry_patient_ids: Vec<Option<String>>,
}

/// A string member, or `None` for any other JSON value.
fn string_of(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for PatientProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor { entries: true })
    }
}

/// An entry's resource: `resourceType` and `id` only.
struct ResourceProbe(PatientProbe);

impl<'de> Deserialize<'de> for ResourceProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor { entries: false })
            .map(ResourceProbe)
    }
}

/// `entry`: the Patient ids of its items' resources (nothing when it is not an array).
struct EntryProbe(Vec<Option<String>>);

impl<'de> Deserialize<'de> for EntryProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor).map(EntryProbe)
    }
}

/// One entry: its `resource` (nothing when the entry is not an object).
struct ItemProbe(Option<PatientProbe>);

impl<'de> Deserialize<'de> for ItemProbe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor).map(ItemProbe)
    }
}

/// Visits any JSON value; only an object is looked into.
macro_rules! any_value_is {
    ($value:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// The member names the probe reads (compared, never copied).
#[derive(PartialEq, Eq)]
enum ProbeKey {
    ResourceType,
    Id,
    Entry,
    Resource,
    Other,
}

impl<'de> Deserialize<'de> for ProbeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ProbeKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ProbeKey, E> {
                Ok(match v {
                    "resourceType" => ProbeKey::ResourceType,
                    "id" => ProbeKey::Id,
                    "entry" => ProbeKey::Entry,
                    "resource" => ProbeKey::Resource,
                    _ => ProbeKey::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct ProbeVisitor {
    /// Read `entry` (a prefetch value), not for an entry's resource.
    entries: bool,
}

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = PatientProbe;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_value_is!(PatientProbe::default());

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PatientProbe::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // (A number read with serde_json's `arbitrary_precision` arrives as a map with one
        // private member: it has neither `resourceType` nor `id`, so it probes as nothing.)
        let mut probe = PatientProbe::default();
        while let Some(key) = map.next_key::<ProbeKey>()? {
            match key {
                ProbeKey::ResourceType => probe.resource_type = string_of(map.next_value()?),
                ProbeKey::Id => probe.id = string_of(map.next_value()?),
                ProbeKey::Entry if self.entries => {
                    probe.entry_patient_ids = map.next_value::<EntryProbe>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(probe)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Vec<Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_value_is!(Vec::new());

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ids = Vec::new();
        while let Some(ItemProbe(resource)) = seq.next_element()? {
            if let Some(r) = resource
                && r.resource_type.as_deref() == Some("Patient")
            {
                ids.push(r.id);
            }
        }
        Ok(ids)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Option<PatientProbe>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    any_value_is!(None);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut resource = None;
        while let Some(key) = map.next_key::<ProbeKey>()? {
            if key == ProbeKey::Resource {
                resource = Some(map.next_value::<ResourceProbe>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(resource)
    }
}

/// FHIR `id` syntax (`[A-Za-z0-9\-\.]{1,64}`), except the dot segments `.` and `..`.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && id != "."
        && id != ".."
}

/// `Type/id` → (`Type`, `id`), for a non-empty type starting with an upper-case letter and a
/// non-empty id without further slashes.
pub fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (t, id) = reference.split_once('/')?;
    let type_ok = t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    (type_ok && !id.is_empty() && !id.contains('/')).then_some((t, id))
}

// ------------------------------------------------------------------------------------------
// Discovery
// ------------------------------------------------------------------------------------------

/// `GET {baseUrl}/cds-services` (checklist §1.B). `services` is always present, even empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    pub services: Vec<ServiceDescriptor>,
}

/// One service of the discovery response (checklist B.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDescriptor {
    pub hook: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub description: String,
    pub id: String,
    /// Prefetch key → prefetch template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prefetch: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_requirements: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Map<String, Value>>,
}

// ------------------------------------------------------------------------------------------
// Response
// ------------------------------------------------------------------------------------------

/// A service's answer (checklist §1.F): `cards` always present (`[]` when there is no
/// advice), `systemActions` only when non-empty.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub cards: Vec<Card>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_actions: Vec<Action>,
}

/// A card's one-sentence summary: fewer than 140 characters (checklist F.21), not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Summary(String);

/// A summary that is blank or 140 characters or more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a card summary must be 1 to 139 characters, not {chars}")]
pub struct SummaryError {
    pub chars: usize,
}

impl Summary {
    /// The longest summary, in characters (Unicode scalar values; Inferno tests `length < 140`).
    pub const MAX_CHARS: usize = 139;

    pub fn new(text: impl Into<String>) -> Result<Summary, SummaryError> {
        let text = text.into();
        let chars = text.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS || text.trim().is_empty() {
            return Err(SummaryError { chars });
        }
        Ok(Summary(text))
    }

    /// `text`, cut at a word boundary with an ellipsis when it is too long (a blank text
    /// becomes `-`).
    pub fn truncated(text: &str) -> Summary {
        let text = text.trim();
        if text.is_empty() {
            return Summary("-".to_string());
        }
        if text.chars().count() <= Self::MAX_CHARS {
            return Summary(text.to_string());
        }
        let cut: String = text.chars().take(Self::MAX_CHARS - 1).collect();
        let cut = match cut.rfind(' ') {
            Some(i) if i > Self::MAX_CHARS / 2 => cut[..i].trim_end().to_string(),
            _ => cut,
        };
        Summary(format!("{cut}…"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Summary::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A card (checklist F.21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    pub summary: Summary,
    /// GitHub-flavoured Markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub indicator: Indicator,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_behavior: Option<SelectionBehavior>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_reasons: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Map<String, Value>>,
}

/// `card.indicator`, in order of increasing urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Indicator {
    Info,
    Warning,
    Critical,
}

impl Indicator {
    pub fn name(self) -> &'static str {
        match self {
            Indicator::Info => "info",
            Indicator::Warning => "warning",
            Indicator::Critical => "critical",
        }
    }
}

/// `card.selectionBehavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectionBehavior {
    #[serde(rename = "at-most-one")]
    AtMostOne,
    #[serde(rename = "any")]
    Any,
}

/// `card.source` (checklist F.22).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Coding>,
}

/// A CDS Hooks Coding (checklist F.26): `system` and `code` required; `display` required in
/// override reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: &str) -> Coding {
        Coding {
            system: system.to_string(),
            code: code.to_string(),
            display: Some(display.to_string()),
        }
    }
}

/// `card.suggestions[]` (checklist F.23).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_recommended: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// A suggestion's or system action (checklist F.24).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: ActionType,
    pub description: String,
    /// The whole resource, for `create` and `update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// A relative reference (`ServiceRequest/x`), for `delete` (and `update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// `action.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Create,
    Update,
    Delete,
}

/// `card.links[]` (checklist F.25).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub label: String,
    pub url: Url,
    #[serde(rename = "type")]
    pub kind: LinkType,
    /// Only for `smart` links (cds-resp-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_context: Option<String>,
}

/// `link.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    Absolute,
    Smart,
}

// ------------------------------------------------------------------------------------------
// Feedback
// ------------------------------------------------------------------------------------------

/// `POST {baseUrl}/cds-services/{id}/feedback` (checklist §1.G).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRequest {
    pub feedback: Vec<Feedback>,
}

/// One feedback item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    /// The `card.uuid`.
    pub card: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_suggestions: Vec<AcceptedSuggestion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<OverrideReason>,
    /// RFC 3339 UTC date-time, as sent; see [`FeedbackRequest::validate`].
    pub outcome_timestamp: String,
}

/// `feedback.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Overridden,
}

/// `{"id": suggestion.uuid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedSuggestion {
    pub id: String,
}

/// `feedback.overrideReason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_comment: Option<String>,
}

/// Why a feedback body is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("`feedback` is empty")]
    Empty,
    #[error("`feedback[{index}].card` is empty")]
    NoCard { index: usize },
    /// cds-fb-2.
    #[error("`feedback[{index}]` is accepted without `acceptedSuggestions` (cds-fb-2)")]
    AcceptedWithoutSuggestions { index: usize },
    /// cds-fb-3.
    #[error("`feedback[{index}].overrideReason` has neither `reason` nor `userComment` (cds-fb-3)")]
    EmptyOverrideReason { index: usize },
    #[error("`feedback[{index}].outcomeTimestamp` is not an RFC 3339 UTC date-time")]
    BadTimestamp { index: usize },
    #[error("`feedback` holds {count} items; at most {max} are accepted per call")]
    TooMany { count: usize, max: usize },
}

/// The most feedback items one call may carry (an EHR sends one per card shown; a card list is
/// short). Larger calls are refused whole, before any database work.
pub const MAX_FEEDBACK_ITEMS: usize = 100;

impl FeedbackRequest {
    /// Checks cds-fb-1..3 and the UTC timestamps; returns each item's timestamp.
    pub fn validate(&self) -> Result<Vec<chrono::DateTime<chrono::Utc>>, FeedbackError> {
        if self.feedback.is_empty() {
            return Err(FeedbackError::Empty);
        }
        if self.feedback.len() > MAX_FEEDBACK_ITEMS {
            return Err(FeedbackError::TooMany {
                count: self.feedback.len(),
                max: MAX_FEEDBACK_ITEMS,
            });
        }
        let mut times = Vec::with_capacity(self.feedback.len());
        for (index, f) in self.feedback.iter().enumerate() {
            if f.card.trim().is_empty() {
                return Err(FeedbackError::NoCard { index });
            }
            if f.outcome == Outcome::Accepted && f.accepted_suggestions.is_empty() {
                return Err(FeedbackError::AcceptedWithoutSuggestions { index });
            }
            if let Some(r) = &f.override_reason
                && r.reason.is_none()
                && r.user_comment
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
            {
                return Err(FeedbackError::EmptyOverrideReason { index });
            }
            let t = chrono::DateTime::parse_from_rfc3339(&f.outcome_timestamp)
                .ok()
                .filter(|t| t.offset().local_minus_utc() == 0)
                .ok_or(FeedbackError::BadTimestamp { index })?;
            times.push(t.with_timezone(&chrono::Utc));
        }
        Ok(times)
    }
}

// ------------------------------------------------------------------------------------------
// Errors as OperationOutcome
// ------------------------------------------------------------------------------------------

/// A FHIR OperationOutcome with one error issue (the body of a 4xx/5xx, checklist I.36).
/// `diagnostics` must hold no PHI and no token (every error of this crate qualifies).
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_shorter_than_140_characters() {
        assert!(Summary::new("x".repeat(139)).is_ok());
        assert_eq!(
            Summary::new("é".repeat(140)),
            Err(SummaryError { chars: 140 })
        );
        assert!(Summary::new("  ").is_err());
        assert!(Summary::new("").is_err());
        let long = "word ".repeat(60);
        let t = Summary::truncated(&long);
        assert!(t.as_str().chars().count() <= Summary::MAX_CHARS, "{t}");
        assert!(t.as_str().ends_with("word…"), "cut at a word boundary: {t}");
        let t = Summary::truncated(&"y".repeat(300));
        assert_eq!(t.as_str().chars().count(), Summary::MAX_CHARS);
        assert_eq!(Summary::truncated("  short  ").as_str(), "short");
        assert_eq!(Summary::truncated(" ").as_str(), "-");
        let long_json = serde_json::json!("z".repeat(140));
        assert!(serde_json::from_value::<Summary>(long_json).is_err());
    }

    #[test]
    fn optional_members_are_omitted() {
        let card = Card {
            uuid: None,
            summary: Summary::truncated("s"),
            detail: None,
            indicator: Indicator::Info,
            source: Source {
                label: "l".into(),
                url: None,
                icon: None,
                topic: None,
            },
            suggestions: Vec::new(),
            selection_behavior: None,
            override_reasons: Vec::new(),
            links: Vec::new(),
            extension: None,
        };
        let v = serde_json::to_value(Response {
            cards: vec![card],
            system_actions: Vec::new(),
        })
        .unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"cards": [{"summary": "s", "indicator": "info", "source": {"label": "l"}}]})
        );
        let empty = serde_json::to_value(Response::default()).unwrap_or_default();
        assert_eq!(empty, serde_json::json!({"cards": []}));
        let d = serde_json::to_value(Discovery { services: vec![] }).unwrap_or_default();
        assert_eq!(d, serde_json::json!({"services": []}));
    }

    #[test]
    fn references_split_into_type_and_id() {
        assert_eq!(
            split_reference("Practitioner/a-1"),
            Some(("Practitioner", "a-1"))
        );
        assert_eq!(split_reference("practitioner/a"), None);
        assert_eq!(split_reference("Practitioner/"), None);
        assert_eq!(split_reference("Practitioner/a/_history/1"), None);
        assert_eq!(split_reference("a"), None);
    }

    /// The Patient ids the check reads of a prefetch value given as text.
    fn probe(text: &str) -> Vec<Option<String>> {
        let p: PatientProbe = serde_json::from_str(text).unwrap();
        match p.resource_type.as_deref() {
            Some("Patient") => vec![p.id],
            Some("Bundle") => p.entry_patient_ids,
            _ => Vec::new(),
        }
    }

    #[test]
    fn the_patient_probe_reads_as_a_parsed_tree_would() {
        let some = |s: &str| vec![Some(s.to_string())];
        assert_eq!(
            probe(r#"{"id": "p1", "x": [[{}]], "resourceType": "Patient"}"#),
            some("p1")
        );
        assert_eq!(probe(r#"{"resourceType": "Patient", "id": 7}"#), vec![None]);
        assert_eq!(
            probe(r#"{"resourceType": "Patient", "id": "a", "id": "b"}"#),
            some("b")
        );
        assert_eq!(
            probe(r#"{"resourceType": "Observation", "id": "o"}"#),
            vec![]
        );
        assert_eq!(
            probe(r#"[1, {"resourceType": "Patient", "id": "p"}]"#),
            vec![]
        );
        assert_eq!(probe(r#"{"resourceType": 1.5, "id": "p"}"#), vec![]);
        assert_eq!(
            probe(
                r#"{"entry": [1, null, [], {"resource": null},
                   {"resource": {"resourceType": "Observation", "id": "o"}},
                   {"fullUrl": "x", "resource": {"id": "p2", "resourceType": "Patient",
                    "entry": [{"resource": {"resourceType": "Patient", "id": "p3"}}]}}],
                 "resourceType": "Bundle"}"#
            ),
            some("p2")
        );
        // `entry` of a resource that is not a Bundle, or not an array, is not read.
        assert_eq!(
            probe(
                r#"{"resourceType": "Patient", "id": "p", "entry": [{"resource": {"resourceType": "Patient", "id": "q"}}]}"#
            ),
            some("p")
        );
        assert_eq!(
            probe(r#"{"resourceType": "Bundle", "entry": {"resource": {}}}"#),
            vec![]
        );
    }
}
