//! FHIR JSON payloads: a Bundle (searchset, collection, transaction...), a single resource, or an
//! OperationOutcome.
//!
//! The Bundle shell (entries, `link[next]`, `total`) is read from the JSON text; each entry's
//! resource is then read on its own through [`crate::read`], so that one bad resource is reported and skipped
//! instead of losing the whole Bundle (and fhirbolt's direct `Bundle` deserialisation, which fails
//! on some valid Bundles, is never used).

use crate::project::{Entry, Scanned, scan};
use crate::read::{Record, read, record_of};

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

/// Reads a Bundle or a single resource from JSON text (a FHIR server's answer, a CDS Hooks
/// prefetch value kept as text). The text is parsed once: the Bundle's shell and each entry's
/// resource are read as they are parsed, members the snapshot does not read are skipped
/// without building a tree ([`crate::project`]).
pub fn parse(json: &str) -> Result<Payload, PayloadError> {
    let shell = match scan(json, true).map_err(|e| PayloadError::NotJson(e.to_string()))? {
        Scanned::NotAResource => return Err(PayloadError::NotAResource),
        Scanned::Bundle(shell) => shell,
        resource => {
            return match record_of(resource) {
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
            };
        }
    };
    let Some(entries) = shell.entries else {
        return Err(PayloadError::Malformed(
            "Bundle.entry must be an array".into(),
        ));
    };
    let mut payload = Payload {
        total: shell.total,
        next: shell.next,
        ..Payload::default()
    };
    for (i, e) in entries.into_iter().enumerate() {
        let (full_url, resource) = match e {
            Entry::NotAnObject => {
                payload
                    .warnings
                    .push(format!("unreadable:Bundle.entry[{i}]"));
                continue;
            }
            Entry::Object { full_url, resource } => (full_url, resource),
        };
        let Some(resource) = resource else { continue };
        match read(resource.get()) {
            Ok(record) => payload.resources.push(Read { full_url, record }),
            Err(u) => payload.warnings.push(format!("unreadable:{}", u.resource)),
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT: &str = r#"{"resourceType": "Patient", "id": "p1", "gender": "male"}"#;

    #[test]
    fn a_bundle_reads_the_same_whatever_the_order_of_its_members() {
        let entries = format!(
            r#"[{{"fullUrl": "urn:a", "resource": {PATIENT}}}, 5, {{"resource": null}},
               {{"resource": {{"resourceType": "Observation", "id": "bad", "code": "x"}}}}]"#
        );
        let link = r#"[{"relation": "self", "url": "s"}, {"relation": "next", "url": "n"}]"#;
        let first = parse(&format!(
            r#"{{"resourceType": "Bundle", "total": 3, "link": {link}, "entry": {entries}}}"#
        ))
        .unwrap();
        let last = parse(&format!(
            r#"{{"entry": {entries}, "link": {link}, "total": 3, "resourceType": "Bundle"}}"#
        ))
        .unwrap();
        assert_eq!(first, last);
        assert_eq!(first.total, Some(3));
        assert_eq!(first.next.as_deref(), Some("n"));
        assert_eq!(first.resources.len(), 1);
        assert_eq!(first.resources[0].full_url.as_deref(), Some("urn:a"));
        assert_eq!(
            first.warnings,
            ["unreadable:Bundle.entry[1]", "unreadable:Observation/bad"]
        );
    }

    #[test]
    fn shells_that_are_not_bundles_are_refused_as_before() {
        assert_eq!(
            parse(r#"{"resourceType": "Bundle", "entry": {"resource": {}}}"#),
            Err(PayloadError::Malformed(
                "Bundle.entry must be an array".into()
            ))
        );
        assert_eq!(
            parse(r#"{"resourceType": "Bundle", "entry": null}"#),
            Ok(Payload::default())
        );
        assert_eq!(parse(r#"{"id": "x"}"#), Err(PayloadError::NotAResource));
        assert_eq!(parse(r#"{}"#), Err(PayloadError::NotAResource));
        assert!(matches!(parse("[1,2"), Err(PayloadError::NotJson(_))));
        assert!(matches!(
            parse(r#"{"resourceType": "Bundle", "entry": [}"#),
            Err(PayloadError::NotJson(_))
        ));
        // A Bundle inside an entry is a resource not read, not a Bundle.
        let p = parse(
            r#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Bundle"}}]}"#,
        )
        .unwrap();
        assert_eq!(p.resources[0].record, Record::Other("Bundle"));
    }
}
