//! The fhirbolt boundary: one FHIR R4 resource (JSON) in, one [`Record`] out.
//!
//! Resources are read one by one: [`crate::project`] keeps the members the snapshot reads
//! (unknown fields, extensions and vendor additions are dropped unread) and fhirbolt reads that
//! as the resource's own type (`Observation`, not the `Resource` enum, which would first build
//! a generic element tree of it) in **strict** mode. A resource that breaks the R4 model (a
//! required field missing, a value of the wrong type) is refused, and the caller reports it as a
//! data-quality warning with its id (`unreadable:Observation/o1`). Nothing outside this module
//! sees a fhirbolt type; the records below hold only what the snapshot needs, as text, so that
//! precision decisions (dates, decimals) are taken explicitly by the mapping.

use fhirbolt::model::r4::Resource;
use fhirbolt::model::r4::resources::{
    Condition, ConditionOnset, Flag, Medication, MedicationAdministration,
    MedicationAdministrationEffective, MedicationAdministrationMedication, MedicationRequest,
    MedicationRequestMedication, Observation, ObservationComponentValue, ObservationEffective,
    ObservationValue, OperationOutcome, Patient, Procedure, ProcedurePerformed,
};
use fhirbolt::model::r4::types::{CodeableConcept, Period, Quantity, Reference};
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use crate::project::{self, Scanned};

/// A code as `(system, code)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    pub system: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Quantity {
        /// The decimal as written.
        value: Option<String>,
        /// UCUM code (`Quantity.code` when `system` is UCUM or absent).
        code: Option<String>,
        system: Option<String>,
    },
    Boolean(bool),
    Integer(i64),
    Coded(Vec<Coding>),
    /// A value type the snapshot cannot use (string, range, ratio...), named.
    Other(&'static str),
}

/// `effective[x]` / `performed[x]` / `period` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    At(String),
    Period {
        start: Option<String>,
        end: Option<String>,
    },
    /// A form that carries no usable time (timing, age, string).
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub codings: Vec<Coding>,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRecord {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub status: String,
    pub codings: Vec<Coding>,
    pub effective: Option<When>,
    pub issued: Option<String>,
    pub value: Option<Value>,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatientRecord {
    pub id: Option<String>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRecord {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub clinical_status: Option<String>,
    pub verification_status: Option<String>,
    pub codings: Vec<Coding>,
    pub onset: Option<When>,
    pub recorded: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureRecord {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub status: String,
    pub codings: Vec<Coding>,
    pub performed: Option<When>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MedicationKind {
    Administration,
    Request,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MedicationRecord {
    pub id: Option<String>,
    pub kind: MedicationKind,
    pub subject: Option<String>,
    pub status: String,
    /// The medication's codes: its CodeableConcept, or those of a contained Medication.
    pub codings: Vec<Coding>,
    /// A reference to a Medication resource, resolved by the mapping.
    pub medication_reference: Option<String>,
    /// Administration time (or period), or the request's `authoredOn`.
    pub when: Option<When>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagRecord {
    pub id: Option<String>,
    pub subject: Option<String>,
    pub status: String,
    pub codings: Vec<Coding>,
    pub period: Option<When>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MedicationDefinition {
    pub id: Option<String>,
    pub codings: Vec<Coding>,
}

/// What the snapshot needs from one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Patient(PatientRecord),
    Observation(ObservationRecord),
    Condition(ConditionRecord),
    Procedure(ProcedureRecord),
    Medication(MedicationRecord),
    MedicationDefinition(MedicationDefinition),
    Flag(FlagRecord),
    OperationOutcome(Vec<String>),
    /// A resource type the snapshot does not use.
    Other(&'static str),
}

/// Why a resource could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {reason}")]
pub struct Unreadable {
    /// `Observation/o1`, or the type alone when the id is unknown.
    pub resource: String,
    pub reason: String,
}

const UCUM: &str = "http://unitsofmeasure.org";

fn config() -> Option<DeserializationConfig> {
    // Strict: after [`crate::project`] no member is unknown, so strict mode proves the
    // projection's tables against fhirbolt's R4 model on every read.
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// Reads one resource from its JSON text: the members the snapshot needs are projected as the
/// text is parsed ([`crate::project`]) and only they are given to fhirbolt. A resource type the
/// snapshot does not read is [`Record::Other`], its members skipped unread.
pub fn read(json: &str) -> Result<Record, Unreadable> {
    let scanned = project::scan(json, false).map_err(|e| Unreadable {
        resource: "resource".into(),
        reason: format!("not JSON: {e}"),
    })?;
    record_of(scanned)
}

/// The record of a scanned resource.
pub(crate) fn record_of(scanned: Scanned<'_>) -> Result<Record, Unreadable> {
    let (rt, id, projected) = match scanned {
        Scanned::Resource { rt, id, projected } => (rt, id, projected),
        Scanned::Unread(rt) => return Ok(Record::Other(resource_type_name(&rt))),
        Scanned::NotAResource | Scanned::Bundle(_) => {
            return Err(Unreadable {
                resource: "resource".into(),
                reason: "not a FHIR resource (no resourceType)".into(),
            });
        }
    };
    // `Observation/o1` for the warning about a resource that could not be read.
    let unreadable = |reason: String| Unreadable {
        resource: match &id {
            Some(id) => format!("{rt}/{id}"),
            None => rt.clone(),
        },
        reason,
    };
    let projected = projected.map_err(|e| unreadable(e.to_string()))?;
    typed_record(&rt, &projected).map_err(unreadable)
}

/// Reads a projection as its resource's own type (decimals written as strings:
/// [`project::Decimals`]): fhirbolt's `Resource` enum would first build a generic element tree
/// of the resource and read the type from that (issue 9). A resource with `contained`
/// resources goes through the enum (its contained Medication has no decimal): a resource inside
/// a resource is where fhirbolt's typed read of a `Bundle` fails on valid JSON (a primitive
/// after a nested resource), so it is not trusted with one here.
fn typed_record(rt: &str, projected: &str) -> Result<Record, String> {
    fn typed<T: fhirbolt::serde::DeserializeResourceOwned>(projected: &str) -> Result<T, String> {
        fhirbolt::json::from_str(projected, config()).map_err(|e| e.to_string())
    }
    match rt {
        "Patient" => typed(projected).map(patient),
        "Observation" => typed(projected).map(observation),
        "Condition" => typed(projected).map(condition),
        "Procedure" => typed(projected).map(procedure),
        "Medication" => typed(projected).map(medication),
        "Flag" => typed(projected).map(flag),
        "OperationOutcome" => typed(projected).map(operation_outcome),
        _ => typed::<Resource>(projected).map(record),
    }
}

/// The record of a resource read through fhirbolt's `Resource` enum.
fn record(resource: Resource) -> Record {
    match resource {
        Resource::Patient(p) => patient(*p),
        Resource::Observation(o) => observation(*o),
        Resource::Condition(c) => condition(*c),
        Resource::Procedure(p) => procedure(*p),
        Resource::MedicationAdministration(m) => medication_administration(*m),
        Resource::MedicationRequest(m) => medication_request(*m),
        Resource::Medication(m) => medication(*m),
        Resource::Flag(f) => flag(*f),
        Resource::OperationOutcome(o) => operation_outcome(*o),
        _ => Record::Other("other resource"),
    }
}

fn codings(cc: Option<&CodeableConcept>) -> Vec<Coding> {
    cc.map(|cc| {
        cc.coding
            .iter()
            .filter_map(|c| {
                let system = c.system.as_ref()?.value.clone()?;
                let code = c.code.as_ref()?.value.clone()?;
                Some(Coding { system, code })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn reference(r: Option<&Reference>) -> Option<String> {
    r?.reference.as_ref()?.value.clone()
}

fn period(p: &Period) -> When {
    When::Period {
        start: p.start.as_ref().and_then(|d| d.value.clone()),
        end: p.end.as_ref().and_then(|d| d.value.clone()),
    }
}

fn quantity(q: &Quantity) -> Value {
    let system = q.system.as_ref().and_then(|s| s.value.clone());
    let code = q
        .code
        .as_ref()
        .and_then(|c| c.value.clone())
        .filter(|_| system.as_deref().is_none_or(|s| s == UCUM));
    Value::Quantity {
        value: q.value.as_ref().and_then(|v| v.value.clone()),
        code,
        system,
    }
}

fn observation_value(v: &ObservationValue) -> Value {
    match v {
        ObservationValue::Quantity(q) => quantity(q),
        ObservationValue::Boolean(b) => b
            .value
            .map_or(Value::Other("boolean without value"), Value::Boolean),
        ObservationValue::Integer(i) => {
            i.value.map_or(Value::Other("integer without value"), |i| {
                Value::Integer(i64::from(i))
            })
        }
        ObservationValue::CodeableConcept(cc) => Value::Coded(codings(Some(cc))),
        ObservationValue::String(_) => Value::Other("valueString"),
        ObservationValue::Range(_) => Value::Other("valueRange"),
        ObservationValue::Ratio(_) => Value::Other("valueRatio"),
        ObservationValue::SampledData(_) => Value::Other("valueSampledData"),
        ObservationValue::Time(_) => Value::Other("valueTime"),
        ObservationValue::DateTime(_) => Value::Other("valueDateTime"),
        ObservationValue::Period(_) => Value::Other("valuePeriod"),
        ObservationValue::Invalid => Value::Other("invalid value"),
    }
}

fn component_value(v: &ObservationComponentValue) -> Value {
    match v {
        ObservationComponentValue::Quantity(q) => quantity(q),
        ObservationComponentValue::Boolean(b) => b
            .value
            .map_or(Value::Other("boolean without value"), Value::Boolean),
        ObservationComponentValue::Integer(i) => {
            i.value.map_or(Value::Other("integer without value"), |i| {
                Value::Integer(i64::from(i))
            })
        }
        ObservationComponentValue::CodeableConcept(cc) => Value::Coded(codings(Some(cc))),
        _ => Value::Other("component value of an unsupported type"),
    }
}

fn patient(p: Patient) -> Record {
    Record::Patient(PatientRecord {
        id: p.id.and_then(|i| i.value),
        gender: p.gender.and_then(|g| g.value),
        birth_date: p.birth_date.and_then(|d| d.value),
    })
}

fn observation(o: Observation) -> Record {
    Record::Observation(ObservationRecord {
        id: o.id.and_then(|i| i.value),
        subject: reference(o.subject.as_deref()),
        status: o.status.value.unwrap_or_default(),
        codings: codings(Some(&o.code)),
        effective: o.effective.as_ref().map(|e| match e {
            ObservationEffective::DateTime(d) => d
                .value
                .clone()
                .map_or(When::Other("dateTime without value"), When::At),
            ObservationEffective::Instant(i) => i
                .value
                .clone()
                .map_or(When::Other("instant without value"), When::At),
            ObservationEffective::Period(p) => period(p),
            ObservationEffective::Timing(_) => When::Other("effectiveTiming"),
            ObservationEffective::Invalid => When::Other("invalid effective"),
        }),
        issued: o.issued.and_then(|i| i.value),
        value: o.value.as_ref().map(observation_value),
        components: o
            .component
            .iter()
            .map(|c| Component {
                codings: codings(Some(&c.code)),
                value: c.value.as_ref().map(component_value),
            })
            .collect(),
    })
}

fn condition(c: Condition) -> Record {
    Record::Condition(ConditionRecord {
        id: c.id.and_then(|i| i.value),
        subject: reference(Some(&c.subject)),
        clinical_status: codings(c.clinical_status.as_deref())
            .into_iter()
            .next()
            .map(|c| c.code),
        verification_status: codings(c.verification_status.as_deref())
            .into_iter()
            .next()
            .map(|c| c.code),
        codings: codings(c.code.as_deref()),
        onset: c.onset.as_ref().map(|o| match o {
            ConditionOnset::DateTime(d) => d
                .value
                .clone()
                .map_or(When::Other("dateTime without value"), When::At),
            ConditionOnset::Period(p) => period(p),
            ConditionOnset::Age(_) => When::Other("onsetAge"),
            ConditionOnset::Range(_) => When::Other("onsetRange"),
            ConditionOnset::String(_) => When::Other("onsetString"),
            ConditionOnset::Invalid => When::Other("invalid onset"),
        }),
        recorded: c.recorded_date.and_then(|d| d.value),
    })
}

fn procedure(p: Procedure) -> Record {
    Record::Procedure(ProcedureRecord {
        id: p.id.and_then(|i| i.value),
        subject: reference(Some(&p.subject)),
        status: p.status.value.unwrap_or_default(),
        codings: codings(p.code.as_deref()),
        performed: p.performed.as_ref().map(|w| match w {
            ProcedurePerformed::DateTime(d) => d
                .value
                .clone()
                .map_or(When::Other("dateTime without value"), When::At),
            ProcedurePerformed::Period(p) => period(p),
            ProcedurePerformed::String(_) => When::Other("performedString"),
            ProcedurePerformed::Age(_) => When::Other("performedAge"),
            ProcedurePerformed::Range(_) => When::Other("performedRange"),
            ProcedurePerformed::Invalid => When::Other("invalid performed"),
        }),
    })
}

fn medication_administration(m: MedicationAdministration) -> Record {
    let (codes, reference_) = match &m.medication {
        MedicationAdministrationMedication::CodeableConcept(cc) => (codings(Some(cc)), None),
        MedicationAdministrationMedication::Reference(r) => {
            (contained_codes(&m.contained, r), reference(Some(r)))
        }
        MedicationAdministrationMedication::Invalid => (Vec::new(), None),
    };
    Record::Medication(MedicationRecord {
        id: m.id.and_then(|i| i.value),
        kind: MedicationKind::Administration,
        subject: reference(Some(&m.subject)),
        status: m.status.value.unwrap_or_default(),
        codings: codes,
        medication_reference: reference_,
        when: Some(match &m.effective {
            MedicationAdministrationEffective::DateTime(d) => d
                .value
                .clone()
                .map_or(When::Other("dateTime without value"), When::At),
            MedicationAdministrationEffective::Period(p) => period(p),
            MedicationAdministrationEffective::Invalid => When::Other("invalid effective"),
        }),
    })
}

fn medication_request(m: MedicationRequest) -> Record {
    let (codes, reference_) = match &m.medication {
        MedicationRequestMedication::CodeableConcept(cc) => (codings(Some(cc)), None),
        MedicationRequestMedication::Reference(r) => {
            (contained_codes(&m.contained, r), reference(Some(r)))
        }
        MedicationRequestMedication::Invalid => (Vec::new(), None),
    };
    Record::Medication(MedicationRecord {
        id: m.id.and_then(|i| i.value),
        kind: MedicationKind::Request,
        subject: reference(Some(&m.subject)),
        status: m.status.value.unwrap_or_default(),
        codings: codes,
        medication_reference: reference_,
        when: m.authored_on.and_then(|d| d.value).map(When::At),
    })
}

fn medication(m: Medication) -> Record {
    Record::MedicationDefinition(MedicationDefinition {
        id: m.id.and_then(|i| i.value),
        codings: codings(m.code.as_deref()),
    })
}

fn flag(f: Flag) -> Record {
    Record::Flag(FlagRecord {
        id: f.id.and_then(|i| i.value),
        subject: reference(Some(&f.subject)),
        status: f.status.value.unwrap_or_default(),
        codings: codings(Some(&f.code)),
        period: f.period.as_deref().map(period),
    })
}

fn operation_outcome(o: OperationOutcome) -> Record {
    Record::OperationOutcome(
        o.issue
            .iter()
            .map(|i| {
                let severity = i.severity.value.clone().unwrap_or_default();
                let code = i.code.value.clone().unwrap_or_default();
                let text = i
                    .details
                    .as_ref()
                    .and_then(|d| d.text.as_ref())
                    .and_then(|t| t.value.clone());
                let diag = i.diagnostics.as_ref().and_then(|d| d.value.clone());
                format!("{severity} {code}: {}", text.or(diag).unwrap_or_default())
            })
            .collect(),
    )
}

/// The codes of a `#id` reference to a contained Medication.
fn contained_codes(contained: &[Resource], r: &Reference) -> Vec<Coding> {
    let Some(target) = reference(Some(r)) else {
        return Vec::new();
    };
    let Some(local) = target.strip_prefix('#') else {
        return Vec::new();
    };
    contained
        .iter()
        .find_map(|c| match c {
            Resource::Medication(m)
                if m.id.as_ref().and_then(|i| i.value.as_deref()) == Some(local) =>
            {
                Some(codings(m.code.as_deref()))
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// The resource types that are not read but named in warnings and counts.
fn resource_type_name(rt: &str) -> &'static str {
    const NAMED: &[&str] = &[
        "Bundle",
        "Encounter",
        "Practitioner",
        "DiagnosticReport",
        "Specimen",
        "Device",
        "Consent",
        "Location",
        "Organization",
        "ServiceRequest",
    ];
    NAMED
        .iter()
        .find(|n| **n == rt)
        .copied()
        .unwrap_or("other resource")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{Decimals, scan_with};

    /// A resource read as the service reads it (typed, decimals as strings) and through
    /// fhirbolt's `Resource` enum (decimals as numbers, as before issue 9's change).
    fn both_ways(text: &str) -> (Result<Record, String>, Result<Record, String>) {
        let read = |decimals| match scan_with(text, false, decimals).expect("JSON") {
            Scanned::Resource { rt, projected, .. } => {
                Ok((rt, projected.map_err(|e| e.to_string())?))
            }
            _ => Err("not a resource read".to_string()),
        };
        let typed = read(Decimals::Strings).and_then(|(rt, p)| typed_record(&rt, &p));
        let through_enum = read(Decimals::Numbers).and_then(|(_, p)| {
            fhirbolt::json::from_str::<Resource>(&p, config())
                .map(record)
                .map_err(|e| e.to_string())
        });
        (typed, through_enum)
    }

    fn agree(text: &str) -> Result<Record, String> {
        let (typed, through_enum) = both_ways(text);
        assert_eq!(
            typed.is_ok(),
            through_enum.is_ok(),
            "{text}: typed {typed:?}, enum {through_enum:?}"
        );
        if let (Ok(a), Ok(b)) = (&typed, &through_enum) {
            assert_eq!(a, b, "{text}");
        }
        typed
    }

    #[test]
    fn the_typed_read_gives_what_the_enum_gave_for_every_mimic_resource() {
        let mut read = 0;
        for entry in lrt_engine::testing::mimic_entries() {
            let record = agree(&entry["resource"].to_string());
            assert!(record.is_ok(), "{}: {record:?}", entry["resource"]["id"]);
            read += 1;
        }
        assert!(read >= 5000, "{read} resources");
    }

    #[test]
    fn decimals_keep_their_digits_in_every_member_that_holds_one() {
        let cases = [
            r#"{"resourceType": "Observation", "id": "q", "status": "final", "code": {"text": "PaO2"},
                "effectivePeriod": {"start": "2026-01-01", "end": "2026-01-02T10:00:00+02:00"},
                "valueQuantity": {"value": 7.50, "comparator": "<", "unit": "kPa",
                                  "system": "http://unitsofmeasure.org", "code": "kPa"},
                "component": [{"code": {"text": "a"}, "valueQuantity": {"value": -0.0500}},
                              {"code": {"text": "b"}, "valueQuantity": {"value": 1e2}},
                              {"code": {"text": "b"}, "valueQuantity": {"value": 1.50E02}},
                              {"code": {"text": "b"}, "valueQuantity": {"value": 2E-2}},
                              {"code": {"text": "b"}, "valueQuantity": {"value": 3e+2}},
                              {"code": {"text": "c"}, "valueInteger": 5},
                              {"code": {"text": "d"}, "valueBoolean": false}]}"#,
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueSampledData": {"origin": {"value": 1.0}, "period": 0.5, "factor": 1.50,
                                     "lowerLimit": -3, "upperLimit": 3E+1, "dimensions": 1,
                                     "data": "1 2 E"}}"#,
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 3.000}},
                "effectiveTiming": {"event": ["2026-01-01", "2026-01-02"]}}"#,
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueRange": {"low": {"value": 0.1}, "high": {"value": 10}}}"#,
            r#"{"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                "code": {"coding": [{"system": "s", "code": "c"}]},
                "onsetAge": {"value": 65.5, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}}"#,
            r#"{"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/p"},
                "performedRange": {"low": {"value": 1}, "high": {"value": 2.25}}}"#,
            r##"{"resourceType": "MedicationAdministration", "id": "m1",
                "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "NO"}}],
                "status": "completed", "medicationReference": {"reference": "#med"},
                "subject": {"reference": "Patient/p"}, "effectivePeriod": {"start": "2026-01-01"}}"##,
            r#"{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "s", "code": "c"}]},
                "subject": {"reference": "Patient/p"}, "authoredOn": "2026-01-01"}"#,
            r#"{"resourceType": "Flag", "status": "active", "code": {"text": "x"},
                "subject": {"reference": "Patient/p"}, "period": {"start": "2026"}}"#,
            r#"{"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found", "diagnostics": "gone"}]}"#,
            r#"{"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1950"}"#,
        ];
        for case in cases {
            let record = agree(case);
            assert!(record.is_ok(), "{case}: {record:?}");
        }
        let Ok(Record::Observation(o)) = agree(cases[0]) else {
            panic!("an observation")
        };
        let value = |v: &Option<Value>| match v {
            Some(Value::Quantity { value, .. }) => value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(value(&o.value).as_deref(), Some("7.50"));
        assert_eq!(value(&o.components[0].value).as_deref(), Some("-0.0500"));
        // An exponent as serde_json wrote it for fhirbolt's enum: `e`, with its sign.
        let exponents: Vec<_> = (1..5).map(|i| value(&o.components[i].value)).collect();
        assert_eq!(
            exponents,
            ["1e+2", "1.50e+02", "2e-2", "3e+2"].map(|e| Some(e.to_string()))
        );
    }

    #[test]
    fn what_the_enum_refused_the_typed_read_refuses() {
        for case in [
            // No status (required).
            r#"{"resourceType": "Observation", "code": {"text": "x"}}"#,
            // A decimal written as a boolean or an object.
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueQuantity": {"value": true}}"#,
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueQuantity": {"value": {"v": 1}}}"#,
            // An integer with a fraction, a string where a boolean is.
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueInteger": 5.5}"#,
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueBoolean": "yes"}"#,
        ] {
            assert!(agree(case).is_err(), "{case}");
        }
        // A decimal written as a string is not FHIR JSON, but fhirbolt's enum took it: so does
        // the typed read (the mapping then reads its text as any other decimal).
        let Ok(Record::Observation(o)) = agree(
            r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "valueQuantity": {"value": "7.5"}}"#,
        ) else {
            panic!("read")
        };
        assert!(matches!(o.value, Some(Value::Quantity { value: Some(v), .. }) if v == "7.5"));
    }
}
