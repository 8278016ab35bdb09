//! FHIR R4 Subscription (rest-hook) notifications: which resources they are about, and whose.
//!
//! Three shapes are read:
//! * a Bundle (R4 `history`/`collection`, or the R4 Subscriptions Backport's notification
//!   Bundle): its resources (full-resource payload), and the `focus` references of a
//!   `SubscriptionStatus` (or backport `Parameters`) entry (id-only payload);
//! * a single resource (an Observation posted as the payload).
//!
//! A focus whose patient is not in the notification (id-only payload) has `patient: None`: the
//! caller reads the resource to find it.

use serde_json::Value;

use crate::bundle::PayloadError;

/// One resource a notification is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Focus {
    /// `Observation/123`.
    pub reference: String,
    /// `meta.versionId`, when given.
    pub version: Option<String>,
    /// The patient's id (from `subject` or `patient`), when the resource was included.
    pub patient: Option<String>,
    /// The encounter's id, when given.
    pub encounter: Option<String>,
}

/// The id of a `Patient/{id}` (or `{base}/Patient/{id}`) reference.
pub fn patient_id(reference: &str) -> Option<String> {
    let rest = reference.rsplit_once("Patient/")?.1;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

fn reference_id(v: &Value, resource_type: &str) -> Option<String> {
    let r = v["reference"].as_str()?;
    let rest = r.rsplit_once(&format!("{resource_type}/"))?.1;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

fn focus_of_resource(r: &Value) -> Option<Focus> {
    let rt = r["resourceType"].as_str()?;
    let id = r["id"].as_str()?;
    Some(Focus {
        reference: format!("{rt}/{id}"),
        version: r["meta"]["versionId"].as_str().map(str::to_string),
        patient: reference_id(&r["subject"], "Patient")
            .or_else(|| reference_id(&r["patient"], "Patient"))
            .or_else(|| (rt == "Patient").then(|| id.to_string())),
        encounter: reference_id(&r["encounter"], "Encounter"),
    })
}

/// The resources a notification is about. An empty notification (heartbeat, or an R4
/// `payload`-less subscription) gives an empty list.
pub fn notification_focus(text: &str) -> Result<Vec<Focus>, PayloadError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let Some(rt) = v["resourceType"].as_str() else {
        return Err(PayloadError::NotAResource);
    };
    let mut out: Vec<Focus> = Vec::new();
    // One entry per resource; the full resource wins over an id-only mention of it.
    let mut push = |f: Focus| match out
        .iter_mut()
        .find(|o| o.reference == f.reference && o.version == f.version)
    {
        Some(o) if o.patient.is_none() => *o = f,
        Some(_) => {}
        None => out.push(f),
    };
    if rt != "Bundle" {
        if let Some(f) = focus_of_resource(&v) {
            push(f);
        }
        return Ok(out);
    }
    for entry in v["entry"].as_array().into_iter().flatten() {
        let r = &entry["resource"];
        match r["resourceType"].as_str() {
            Some("SubscriptionStatus") => {
                for ev in r["notificationEvent"].as_array().into_iter().flatten() {
                    if let Some(reference) = ev["focus"]["reference"].as_str() {
                        push(Focus {
                            reference: reference.to_string(),
                            version: None,
                            patient: None,
                            encounter: None,
                        });
                    }
                }
            }
            Some("Parameters") => {
                // Backport on R4: parameter "notification-event" with part "focus".
                for p in r["parameter"].as_array().into_iter().flatten() {
                    for part in p["part"].as_array().into_iter().flatten() {
                        if part["name"] == "focus"
                            && let Some(reference) = part["valueReference"]["reference"].as_str()
                        {
                            push(Focus {
                                reference: reference.to_string(),
                                version: None,
                                patient: None,
                                encounter: None,
                            });
                        }
                    }
                }
            }
            Some(_) => {
                if let Some(f) = focus_of_resource(r) {
                    push(f);
                }
            }
            None => {}
        }
    }
    // A focus reference given in full elsewhere in the Bundle: keep the full one only.
    let full: Vec<String> = out
        .iter()
        .filter(|f| f.patient.is_some())
        .map(|f| f.reference.clone())
        .collect();
    out.retain(|f| f.patient.is_some() || !full.iter().any(|r| f.reference.ends_with(r.as_str())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_observation_names_its_patient() {
        let f = notification_focus(
            r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"2"},
                "subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"}}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            vec![Focus {
                reference: "Observation/o1".into(),
                version: Some("2".into()),
                patient: Some("p1".into()),
                encounter: Some("e1".into()),
            }]
        );
    }

    #[test]
    fn backport_bundles_give_full_resources_and_id_only_focus() {
        let text = r#"{"resourceType":"Bundle","type":"history","entry":[
            {"resource":{"resourceType":"SubscriptionStatus","notificationEvent":[
                {"eventNumber":"7","focus":{"reference":"Observation/o1"}},
                {"eventNumber":"8","focus":{"reference":"http://ehr/fhir/Observation/o2"}}]}},
            {"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"http://ehr/fhir/Patient/p1"}}}]}"#;
        let f = notification_focus(text).unwrap();
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].reference, "Observation/o1");
        assert_eq!(
            f[0].patient.as_deref(),
            Some("p1"),
            "the full resource wins"
        );
        assert_eq!(f[1].reference, "http://ehr/fhir/Observation/o2");
        assert_eq!(f[1].patient, None);
        assert!(notification_focus("").unwrap().is_empty());
        assert!(notification_focus("{").is_err());
        assert!(notification_focus("[]").is_err());
    }

    #[test]
    fn patient_references_give_ids() {
        assert_eq!(patient_id("Patient/a").as_deref(), Some("a"));
        assert_eq!(
            patient_id("http://x/fhir/Patient/a/_history/2").as_deref(),
            Some("a")
        );
        assert_eq!(patient_id("Group/a"), None);
    }
}
