//! The three CDS services of discovery, their prefetch templates and prefetch-token filling.
//!
//! | id | hook | what |
//! |---|---|---|
//! | `lrt-patient-view` | `patient-view` | one LRT triage summary card per chart opening |
//! | `lrt-order-select` | `order-select` | cards about the *selected* draft orders (ECMO, inhaled vasodilators, PEEP increases) |
//! | `lrt-order-sign` | `order-sign` | the same checks over every draft order about to be signed |
//!
//! A POST is routed by the pair (id, `hook`): an unknown id is 404 ([`find`] gives `None`), a
//! known id called with another hook is 400 ([`crate::model::HookRequest::validate`]).
//!
//! ## Prefetch templates
//!
//! Derived from the rule set's search plan ([`lrt_fhir::search::patient_searches`]), so the
//! codes asked for are exactly the codes the mapping understands:
//!
//! | key | template | required |
//! |---|---|---|
//! | `Patient` | `Patient/{{context.patientId}}` | yes |
//! | `Observation` | `Observation?patient={{context.patientId}}&code=<every observation code>&_sort=-date&_count=200` | yes |
//! | `Condition`, `Procedure`, `MedicationAdministration`, `MedicationRequest`, `Flag` | `<Type>?patient={{context.patientId}}[&code=<code-set codes>]&_count=200` | no |
//!
//! A required key that cannot be resolved makes the call fail with 412
//! ([`crate::prefetch::PrefetchError`]); an optional one leaves its context flags unknown
//! (never "absent") with a `fetch_failed:<key>` data-quality warning.
//!
//! **Dates.** A CDS Hooks 2.0 template cannot express a relative date ("the last 73 hours",
//! checklist D.13 and N: `today()` arrives in 3.0), so the `Observation` template has no date
//! and a client that satisfies it sends the patient's observations of those codes, newest
//! first. When the service fetches the key itself (the key is absent or failed) and the caller
//! gives the evaluation time ([`crate::prefetch::resolve`]'s `window_end`), it adds the window of
//! the rule set's lookback ([`lrt_fhir::search::observation_lookback`]):
//! `date=ge{now - lookback}&date=le{now}`, except for height and weight, whose validity is
//! unlimited and which are searched with `date=le{now}` only (the search plan's two observation
//! searches). Codes that a code set matches by prefix (ICD-10 categories) cannot be searched as
//! tokens: such a kind (`Condition` in 0.1.0) is searched without a code filter.
//!
//! ## Tokens (checklist D.12, D.16)
//!
//! [`fill_tokens`] replaces `{{context.<field>}}` by the value of a **root-level primitive**
//! context field (string, number or boolean; `{{context.a.b}}` and objects are refused), and
//! `{{userPractitionerId}}`, `{{userPractitionerRoleId}}`, `{{userPatientId}}`,
//! `{{userRelatedPersonId}}` by the id part of `context.userId` when its type matches (our
//! inference from the spec's definition). Every value is percent-encoded (RFC 3986 unreserved
//! characters kept), so a value cannot add a parameter or a path segment.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lrt_engine::RuleSet;
use lrt_engine::ruleset::files::ResourceKind;
use serde_json::{Map, Value, json};

use crate::model::{Discovery, ServiceDescriptor};

/// The hooks this service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    PatientView,
    OrderSelect,
    OrderSign,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::PatientView, Hook::OrderSelect, Hook::OrderSign];

    /// The hook's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Hook::PatientView => "patient-view",
            Hook::OrderSelect => "order-select",
            Hook::OrderSign => "order-sign",
        }
    }

    pub fn from_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Resource types allowed in `context.userId` (checklist §1.M).
    pub fn user_types(self) -> &'static [&'static str] {
        match self {
            Hook::PatientView => &[
                "Practitioner",
                "PractitionerRole",
                "Patient",
                "RelatedPerson",
            ],
            Hook::OrderSelect | Hook::OrderSign => &["Practitioner", "PractitionerRole"],
        }
    }

    pub(crate) fn user_types_text(self) -> &'static str {
        match self {
            Hook::PatientView => {
                "a reference `Practitioner/<id>`, `PractitionerRole/<id>`, `Patient/<id>` or `RelatedPerson/<id>`"
            }
            Hook::OrderSelect | Hook::OrderSign => {
                "a reference `Practitioner/<id>` or `PractitionerRole/<id>`"
            }
        }
    }
}

/// One CDS service of discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: &'static str,
    pub hook: Hook,
    pub title: &'static str,
    pub description: &'static str,
    pub usage_requirements: &'static str,
}

const USAGE: &str = "Needs the prefetch keys Patient and Observation, or a fhirServer (on the service's allow list) with fhirAuthorization granting patient/*.read on Patient, Observation, Condition, Procedure, MedicationAdministration, MedicationRequest and Flag; without them the call fails with 412. Condition, Procedure, medication and Flag data are optional: without them context flags (hard stops, prone trial, contraindications, RESP items) stay unknown, never 'absent'. Prefetch templates carry no date (CDS Hooks 2.0 has no relative dates): a client should send the newest observations first; when the service fetches them itself it asks for the rule set's lookback window only.";

/// The services of discovery (text here, logic elsewhere).
pub const SERVICES: [Service; 3] = [
    Service {
        id: "lrt-patient-view",
        hook: Hook::PatientView,
        title: "Lung Rescue Team triage",
        description: "Lung Rescue Team (LRT) triage for ventilated patients with hypoxaemia: P/F and ARDS category, Murray and RESP scores, EOLIA criteria with durations, the ECMO category (eligible, borderline, ineligible, not indicated, insufficient data), the mechanisms behind the hypoxaemia and the targeted rescue recommendations, with the values and times used. Offers an LRT consult request.",
        usage_requirements: USAGE,
    },
    Service {
        id: "lrt-order-select",
        hook: Hook::OrderSelect,
        title: "Lung Rescue Team order check (order-select)",
        description: "Checks the selected draft orders against the patient's LRT assessment: an ECMO order for a patient with a hard stop or with reversible physiology not yet addressed (no prone trial, PEEP not optimised), an inhaled pulmonary vasodilator without documented right-ventricular dysfunction, a PEEP increase with documented right-ventricular failure. Returns no card when no selected order concerns the LRT.",
        usage_requirements: USAGE,
    },
    Service {
        id: "lrt-order-sign",
        hook: Hook::OrderSign,
        title: "Lung Rescue Team order check (order-sign)",
        description: "The LRT order checks of lrt-order-select over every draft order about to be signed: ECMO orders against hard stops and unaddressed reversible physiology, inhaled pulmonary vasodilators without documented right-ventricular dysfunction, PEEP increases with documented right-ventricular failure.",
        usage_requirements: USAGE,
    },
];

/// The service with this id.
pub fn find(id: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.id == id)
}

/// The token standing for the patient id in templates.
pub const PATIENT_TOKEN: &str = "{{context.patientId}}";

/// What a prefetch key fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `Patient/{id}` (a read).
    Patient,
    /// The observation search.
    Observation,
    /// A search for one kind of context resource.
    Context(ResourceKind),
}

/// One prefetch key with its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchTemplate {
    pub key: String,
    /// The template, tokens unfilled, as published in discovery.
    pub template: String,
    /// Whether the call fails (412) when the key stays unavailable.
    pub required: bool,
    pub kind: KeyKind,
}

/// Query parameter names and values as they appear in a template (tokens stay readable; the
/// characters that would break the query are encoded).
fn template_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            '+' => out.push_str("%2B"),
            ' ' => out.push_str("%20"),
            _ => out.push(c),
        }
    }
    out
}

fn query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", template_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The prefetch templates, from the rule set's search plan (see the module docs).
pub fn prefetch_templates(rules: &RuleSet) -> Vec<PrefetchTemplate> {
    // Any `now`: the dates are dropped (a 2.0 template cannot hold a relative date).
    let now: DateTime<Utc> = DateTime::UNIX_EPOCH;
    let searches = lrt_fhir::search::patient_searches(rules, PATIENT_TOKEN, now);
    let mut out = vec![PrefetchTemplate {
        key: "Patient".into(),
        template: format!("Patient/{PATIENT_TOKEN}"),
        required: true,
        kind: KeyKind::Patient,
    }];
    // The plan's observation searches (timed codes, then height/weight) become one template.
    let obs: Vec<_> = searches
        .iter()
        .filter(|s| s.resource_type == "Observation")
        .collect();
    let codes: Vec<&str> = obs
        .iter()
        .flat_map(|s| s.params.iter())
        .filter(|(k, v)| k == "code" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    let mut params = vec![("patient".to_string(), PATIENT_TOKEN.to_string())];
    if !codes.is_empty() {
        params.push(("code".into(), codes.join(",")));
    }
    params.push(("_sort".into(), "-date".into()));
    params.push(("_count".into(), lrt_fhir::search::PAGE_SIZE.to_string()));
    out.push(PrefetchTemplate {
        key: "Observation".into(),
        template: format!("Observation?{}", query(&params)),
        required: true,
        kind: KeyKind::Observation,
    });
    for s in searches.iter().filter(|s| s.resource_type != "Observation") {
        let Some(kind) = s.kind else { continue };
        let params: Vec<(String, String)> = s
            .params
            .iter()
            .filter(|(k, _)| k != "date")
            .cloned()
            .collect();
        out.push(PrefetchTemplate {
            key: s.resource_type.to_string(),
            template: format!("{}?{}", s.resource_type, query(&params)),
            required: false,
            kind: KeyKind::Context(kind),
        });
    }
    out
}

/// The discovery document: the three services, each with the prefetch templates, and the rule
/// set's id and version under `extension."org.lrt-cds"`.
pub fn discovery(rules: &RuleSet) -> Discovery {
    let prefetch: BTreeMap<String, String> = prefetch_templates(rules)
        .into_iter()
        .map(|t| (t.key, t.template))
        .collect();
    let mut ext = Map::new();
    ext.insert(
        crate::cards::text::EXTENSION_KEY.to_string(),
        json!({"rulesetId": rules.id(), "rulesetVersion": rules.version(), "rulesetSha256": rules.sha256}),
    );
    Discovery {
        services: SERVICES
            .iter()
            .map(|s| ServiceDescriptor {
                hook: s.hook.name().to_string(),
                title: Some(s.title.to_string()),
                description: s.description.to_string(),
                id: s.id.to_string(),
                prefetch: prefetch.clone(),
                usage_requirements: Some(s.usage_requirements.to_string()),
                extension: Some(ext.clone()),
            })
            .collect(),
    }
}

/// Why a template cannot be filled (its key is then unavailable, never fetched half-filled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token {{{{{0}}}}} is not allowed (only context.<field> and the user tokens)")]
    NotAllowed(String),
    #[error("token {{{{context.{0}}}}} is not a root-level context field")]
    NotRootLevel(String),
    #[error("context.{0} is missing")]
    Missing(String),
    #[error("context.{0} is not a primitive value")]
    NotPrimitive(String),
    #[error("token {{{{{0}}}}} needs a context.userId of that type")]
    NoUser(String),
    #[error("an unclosed {{{{ in the template")]
    Unclosed,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of one token (see the module docs), not yet encoded.
fn token_value(token: &str, context: &Map<String, Value>) -> Result<String, TokenError> {
    if let Some(field) = token.strip_prefix("context.") {
        if field.is_empty() || field.contains('.') || field.contains('[') {
            return Err(TokenError::NotRootLevel(field.to_string()));
        }
        return match context.get(field) {
            None | Some(Value::Null) => Err(TokenError::Missing(field.to_string())),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(_) => Err(TokenError::NotPrimitive(field.to_string())),
        };
    }
    let wanted = match token {
        "userPractitionerId" => "Practitioner",
        "userPractitionerRoleId" => "PractitionerRole",
        "userPatientId" => "Patient",
        "userRelatedPersonId" => "RelatedPerson",
        other => return Err(TokenError::NotAllowed(other.to_string())),
    };
    context
        .get("userId")
        .and_then(Value::as_str)
        .and_then(crate::model::split_reference)
        .filter(|(t, _)| *t == wanted)
        .map(|(_, id)| id.to_string())
        .ok_or_else(|| TokenError::NoUser(token.to_string()))
}

/// Fills every `{{token}}` of `template` from `context` (checklist D.12, D.16), values
/// percent-encoded.
pub fn fill_tokens(template: &str, context: &Map<String, Value>) -> Result<String, TokenError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TokenError::Unclosed)?;
        let token = after[..end].trim();
        out.push_str(&encode_value(&token_value(token, context)?));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a template uses only allowed tokens (checklist D.12): `context.<root field>` or a
/// user token. Used by the discovery validator.
pub fn template_tokens_valid(template: &str) -> bool {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return false;
        };
        let token = after[..end].trim();
        let ok = match token.strip_prefix("context.") {
            Some(field) => {
                !field.is_empty()
                    && !field.contains('.')
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            None => matches!(
                token,
                "userPractitionerId"
                    | "userPractitionerRoleId"
                    | "userPatientId"
                    | "userRelatedPersonId"
            ),
        };
        if !ok {
            return false;
        }
        rest = &after[end + 2..];
    }
    true
}
