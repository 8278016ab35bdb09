//! FHIR JSON payloads: a Bundle (searchset, collection, transaction...), a single resource, or an
//! OperationOutcome.
//!
//! The Bundle shell (entries, `link[next]`, `total`) is read with serde; each entry's resource is
//! then read on its own through [`crate::read`], so that one bad resource is reported and skipped
//! instead of losing the whole Bundle (and fhirbolt's direct `Bundle` deserialisation, which fails
//! on some valid Bundles, is never used).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::read::{Record, read};

#[derive(Deserialize)]
struct Shell<'a> {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default, borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Link {
    relation: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

/// A resource read from a payload, with the entry's `fullUrl` (for `urn:uuid` references).
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub full_url: Option<String>,
    pub record: Record,
}

/// What a payload held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    pub resources: Vec<Read>,
    /// `link[relation=next].url` of a searchset page.
    pub next: Option<String>,
    pub total: Option<u64>,
    /// `unreadable:<type>/<id>` for each entry that could not be read.
    pub warnings: Vec<String>,
    /// The issues of an OperationOutcome (instead of data).
    pub outcome: Option<Vec<String>>,
}

/// The payload is not FHIR JSON at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a FHIR resource (no resourceType)")]
    NotAResource,
    #[error("unreadable {0}")]
    Unreadable(String),
}

/// Reads a Bundle or a single resource.
pub fn parse(json: &str) -> Result<Payload, PayloadError> {
    let shell: Shell =
        serde_json::from_str(json).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    match shell.resource_type.as_deref() {
        None => Err(PayloadError::NotAResource),
        Some("Bundle") => {
            let mut payload = Payload {
                total: shell.total,
                next: shell
                    .link
                    .into_iter()
                    .find(|l| l.relation.as_deref() == Some("next"))
                    .and_then(|l| l.url),
                ..Payload::default()
            };
            for e in shell.entry {
                let Some(raw) = e.resource else { continue };
                match read(raw.get()) {
                    Ok(record) => payload.resources.push(Read {
                        full_url: e.full_url,
                        record,
                    }),
                    Err(u) => payload.warnings.push(format!("unreadable:{}", u.resource)),
                }
            }
            Ok(payload)
        }
        Some(_) => match read(json) {
            Ok(Record::OperationOutcome(issues)) => Ok(Payload {
                outcome: Some(issues),
                ..Payload::default()
            }),
            Ok(record) => Ok(Payload {
                resources: vec![Read {
                    full_url: None,
                    record,
                }],
                ..Payload::default()
            }),
            Err(u) => Err(PayloadError::Unreadable(u.to_string())),
        },
    }
}
