//! Synthetic patients for the paging tests: a Patient and arterial blood gases (PaO2 with its
//! FiO2 at the same time), as CDS Hooks prefetch or as a FHIR transaction to load a server.
//!
//! The MIMIC-IV demo has one patient whose newest blood gas pages (borderline); the paging tests
//! need many and need to escalate, so they write their own:
//! * [`borderline`]: one gas, P/F 61 at FiO2 1.0 (the "near" criterion: P/F < 80 with FiO2 ≥ 0.8,
//!   duration not met) → `ECMO_BORDERLINE`, urgent;
//! * [`eligible`]: three such gases over 7 h (EOLIA C2 for more than 6 h) → `ECMO_ELIGIBLE`,
//!   emergent;
//! * [`stable`]: P/F 250 at FiO2 0.4 → no consult trigger.
//!
//! Each patient is an intubated adult: an invasive-ventilation Procedure in progress since
//! before the first gas (rule set 0.2.0 screens only patients known to be invasively
//! ventilated, knowledge base §9 D1).

use serde_json::{Value, json};

/// One blood gas: time (RFC 3339), PaO2 (mmHg), FiO2 (%).
pub type Gas = (&'static str, f64, f64);

pub const BORDERLINE: &[Gas] = &[("2026-11-30T12:00:00Z", 61.0, 100.0)];
pub const ELIGIBLE: &[Gas] = &[
    ("2026-11-30T05:00:00Z", 60.0, 100.0),
    ("2026-11-30T08:30:00Z", 60.0, 100.0),
    ("2026-11-30T12:00:00Z", 60.0, 100.0),
];
pub const STABLE: &[Gas] = &[("2026-11-30T12:00:00Z", 100.0, 40.0)];

pub fn patient_resource(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "male", "birthDate": "1970-01-01"})
}

/// The PaO2 and FiO2 Observations of `gases`, ids prefixed by the patient and `tag`.
pub fn observations(patient: &str, tag: &str, gases: &[Gas]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, (time, pao2, fio2)) in gases.iter().enumerate() {
        for (code, display, value, unit) in [
            (
                "2703-7",
                "Oxygen [Partial pressure] in Arterial blood",
                *pao2,
                "mm[Hg]",
            ),
            ("3150-0", "Inhaled oxygen concentration", *fio2, "%"),
        ] {
            out.push(json!({
                "resourceType": "Observation",
                "id": format!("{patient}-{tag}-{i}-{code}"),
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
                "subject": {"reference": format!("Patient/{patient}")},
                "effectiveDateTime": time,
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
            }));
        }
    }
    out
}

/// The invasive ventilation in progress (SNOMED CT 40617009), started 24 h before the first gas.
pub fn ventilation(patient: &str, gases: &[Gas]) -> Value {
    let first = gases
        .iter()
        .map(|g| g.0)
        .min()
        .unwrap_or("2026-11-30T00:00:00Z");
    let start = chrono::DateTime::parse_from_rfc3339(first).unwrap() - chrono::Duration::hours(24);
    json!({
        "resourceType": "Procedure",
        "id": format!("{patient}-ventilation"),
        "status": "in-progress",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40617009",
                             "display": "Artificial respiration"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "performedPeriod": {"start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    })
}

/// A patient-view call with the patient's data as prefetch (the optional keys `null`: no data,
/// nothing fetched) and a fresh hookInstance.
pub fn patient_view(patient: &str, gases: &[Gas]) -> Value {
    let obs: Vec<Value> = observations(patient, "g", gases)
        .into_iter()
        .map(|r| json!({"resource": r}))
        .collect();
    json!({
        "hook": "patient-view",
        "hookInstance": uuid::Uuid::new_v4().to_string(),
        "context": {"userId": "Practitioner/icu-1", "patientId": patient},
        "prefetch": {
            "Patient": patient_resource(patient),
            "Observation": {"resourceType": "Bundle", "type": "searchset", "total": obs.len(), "entry": obs},
            "Condition": null,
            "Procedure": {"resourceType": "Bundle", "type": "searchset", "total": 1,
                          "entry": [{"resource": ventilation(patient, gases)}]},
            "MedicationAdministration": null,
            "MedicationRequest": null, "Flag": null,
        }
    })
}

/// A transaction Bundle that PUTs the patient and its observations (to load a FHIR server).
pub fn transaction(patient: &str, tag: &str, gases: &[Gas]) -> Value {
    let procedure = ventilation(patient, gases);
    let procedure_url = format!("Procedure/{}", procedure["id"].as_str().unwrap());
    let mut entries = vec![
        patient_entry(patient),
        json!({"resource": procedure, "request": {"method": "PUT", "url": procedure_url}}),
    ];
    entries.extend(observations(patient, tag, gases).into_iter().map(|r| {
        let url = format!("Observation/{}", r["id"].as_str().unwrap());
        json!({"resource": r, "request": {"method": "PUT", "url": url}})
    }));
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn patient_entry(id: &str) -> Value {
    json!({"resource": patient_resource(id), "request": {"method": "PUT", "url": format!("Patient/{id}")}})
}
