//! FHIR JSON payloads: a Bundle (searchset, collection, transaction...), a single resource, or an
//! OperationOutcome.
//!
//! The Bundle shell (entries, `link[next]`, `total`) is read from the parsed JSON; each entry's
//! resource is then read on its own through [`crate::read`], so that one bad resource is reported and skipped
//! instead of losing the whole Bundle (and fhirbolt's direct `Bundle` deserialisation, which fails
//! on some valid Bundles, is never used).

use serde_json::Value;

use crate::read::{Record, read_value};

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
    #[error("not a FHIR Bundle: {0}")]
    Malformed(String),
}

/// Reads a Bundle or a single resource from JSON text.
pub fn parse(json: &str) -> Result<Payload, PayloadError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    parse_value(&value)
}

/// Reads a Bundle or a single resource already parsed (a CDS Hooks prefetch value).
pub fn parse_value(value: &Value) -> Result<Payload, PayloadError> {
    let Some(obj) = value.as_object() else {
        return Err(PayloadError::NotAResource);
    };
    match obj.get("resourceType").and_then(Value::as_str) {
        None => Err(PayloadError::NotAResource),
        Some("Bundle") => {
            let mut payload = Payload {
                total: obj.get("total").and_then(Value::as_u64),
                next: obj
                    .get("link")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
                    .and_then(|l| l.get("url"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Payload::default()
            };
            let entries = match obj.get("entry") {
                None | Some(Value::Null) => &Vec::new(),
                Some(Value::Array(entries)) => entries,
                Some(_) => {
                    return Err(PayloadError::Malformed(
                        "Bundle.entry must be an array".into(),
                    ));
                }
            };
            for (i, e) in entries.iter().enumerate() {
                if !e.is_object() {
                    payload
                        .warnings
                        .push(format!("unreadable:Bundle.entry[{i}]"));
                    continue;
                }
                let Some(resource) = e.get("resource").filter(|r| !r.is_null()) else {
                    continue;
                };
                match read_value(resource) {
                    Ok(record) => payload.resources.push(Read {
                        full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_string),
                        record,
                    }),
                    Err(u) => payload.warnings.push(format!("unreadable:{}", u.resource)),
                }
            }
            Ok(payload)
        }
        Some(_) => match read_value(value) {
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
