//! The reading pass before fhirbolt: keeps, of one resource's JSON, exactly the members the
//! snapshot reads, and refuses shapes that cannot be FHIR.
//!
//! fhirbolt-serde 0.4.0 has two faults in its lenient (`Compatibility`) mode, both reachable
//! from any EHR or CDS client: an unknown member holding an array is never consumed, so its
//! reader loops forever (`"fooArr": [1, 2]` in a Patient hangs the thread for good); and an
//! empty array (`"coding": []`) makes it unwrap `None` and panic. The crate has had no release
//! since 2023, so the fix lives here: fhirbolt only ever sees the output of [`project`], in
//! its strict mode, and that output has
//!
//! * no unknown members (every member is named in the tables below, which follow the R4
//!   definitions of the resources and data types read: strict mode proves them on every read);
//! * no empty arrays, no `null`s, no arrays of arrays, no `_primitive` extension members;
//! * a primitive (string, number, boolean) wherever FHIR has a primitive, an object wherever
//!   it has a data type: anything else is refused here with the member's path.
//!
//! Everything else (extensions, narrative, `meta`, members of resources the snapshot does not
//! read, vendor additions) is dropped without being looked at. The pass is bounded: the tables
//! have a fixed depth, `contained` resources are read one level deep, and the JSON it gets was
//! parsed by `serde_json`, whose recursion limit (128) refuses deeper nesting.

use serde_json::{Map, Value};

/// Members of an element: `(name, shape)`.
type Members = &'static [(&'static str, Shape)];

/// What a member holds.
#[derive(Clone, Copy)]
enum Shape {
    /// A FHIR primitive: a JSON string, number or boolean.
    Primitive,
    /// A data type or backbone element: a JSON object with the members of these lists.
    Complex(&'static [Members]),
    /// `contained`: resources, of which only a Medication is read.
    Contained,
}

use Shape::{Complex, Contained, Primitive};

const CODING: Shape = Complex(&[&[
    ("system", Primitive),
    ("version", Primitive),
    ("code", Primitive),
    ("display", Primitive),
]]);
const CODEABLE_CONCEPT: Shape = Complex(&[&[("coding", CODING), ("text", Primitive)]]);
const REFERENCE: Shape = Complex(&[&[
    ("reference", Primitive),
    ("type", Primitive),
    ("display", Primitive),
]]);
const QUANTITY: Shape = Complex(&[&[
    ("value", Primitive),
    ("comparator", Primitive),
    ("unit", Primitive),
    ("system", Primitive),
    ("code", Primitive),
]]);
const PERIOD: Shape = Complex(&[&[("start", Primitive), ("end", Primitive)]]);
const RANGE: Shape = Complex(&[&[("low", QUANTITY), ("high", QUANTITY)]]);
const RATIO: Shape = Complex(&[&[("numerator", QUANTITY), ("denominator", QUANTITY)]]);
const SAMPLED_DATA: Shape = Complex(&[&[
    ("origin", QUANTITY),
    ("period", Primitive),
    ("factor", Primitive),
    ("lowerLimit", Primitive),
    ("upperLimit", Primitive),
    ("dimensions", Primitive),
    ("data", Primitive),
]]);
/// Only the event times; a `repeat` schedule carries no time the snapshot can use.
const TIMING: Shape = Complex(&[&[("event", Primitive)]]);

/// `Observation.value[x]` and `Observation.component.value[x]`.
const OBSERVATION_VALUES: Members = &[
    ("valueQuantity", QUANTITY),
    ("valueCodeableConcept", CODEABLE_CONCEPT),
    ("valueString", Primitive),
    ("valueBoolean", Primitive),
    ("valueInteger", Primitive),
    ("valueRange", RANGE),
    ("valueRatio", RATIO),
    ("valueSampledData", SAMPLED_DATA),
    ("valueTime", Primitive),
    ("valueDateTime", Primitive),
    ("valuePeriod", PERIOD),
];

const OBSERVATION_COMPONENT: Shape = Complex(&[&[("code", CODEABLE_CONCEPT)], OBSERVATION_VALUES]);

const PATIENT: Members = &[
    ("id", Primitive),
    ("gender", Primitive),
    ("birthDate", Primitive),
];

const OBSERVATION: &[Members] = &[
    &[
        ("id", Primitive),
        ("status", Primitive),
        ("code", CODEABLE_CONCEPT),
        ("subject", REFERENCE),
        ("effectiveDateTime", Primitive),
        ("effectivePeriod", PERIOD),
        ("effectiveTiming", TIMING),
        ("effectiveInstant", Primitive),
        ("issued", Primitive),
        ("component", OBSERVATION_COMPONENT),
    ],
    OBSERVATION_VALUES,
];

const CONDITION: Members = &[
    ("id", Primitive),
    ("clinicalStatus", CODEABLE_CONCEPT),
    ("verificationStatus", CODEABLE_CONCEPT),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("onsetDateTime", Primitive),
    ("onsetAge", QUANTITY),
    ("onsetPeriod", PERIOD),
    ("onsetRange", RANGE),
    ("onsetString", Primitive),
    ("recordedDate", Primitive),
];

const PROCEDURE: Members = &[
    ("id", Primitive),
    ("status", Primitive),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("performedDateTime", Primitive),
    ("performedPeriod", PERIOD),
    ("performedString", Primitive),
    ("performedAge", QUANTITY),
    ("performedRange", RANGE),
];

const MEDICATION_ADMINISTRATION: Members = &[
    ("id", Primitive),
    ("contained", Contained),
    ("status", Primitive),
    ("medicationCodeableConcept", CODEABLE_CONCEPT),
    ("medicationReference", REFERENCE),
    ("subject", REFERENCE),
    ("effectiveDateTime", Primitive),
    ("effectivePeriod", PERIOD),
];

const MEDICATION_REQUEST: Members = &[
    ("id", Primitive),
    ("contained", Contained),
    ("status", Primitive),
    ("intent", Primitive),
    ("medicationCodeableConcept", CODEABLE_CONCEPT),
    ("medicationReference", REFERENCE),
    ("subject", REFERENCE),
    ("authoredOn", Primitive),
];

const MEDICATION: Members = &[("id", Primitive), ("code", CODEABLE_CONCEPT)];

const FLAG: Members = &[
    ("id", Primitive),
    ("status", Primitive),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("period", PERIOD),
];

const OPERATION_OUTCOME: Members = &[
    ("id", Primitive),
    (
        "issue",
        Complex(&[&[
            ("severity", Primitive),
            ("code", Primitive),
            ("details", CODEABLE_CONCEPT),
            ("diagnostics", Primitive),
        ]]),
    ),
];

/// The members read of each resource type the snapshot uses; `None` for every other type.
fn resource_members(resource_type: &str) -> Option<&'static [Members]> {
    Some(match resource_type {
        "Patient" => &[PATIENT],
        "Observation" => OBSERVATION,
        "Condition" => &[CONDITION],
        "Procedure" => &[PROCEDURE],
        "MedicationAdministration" => &[MEDICATION_ADMINISTRATION],
        "MedicationRequest" => &[MEDICATION_REQUEST],
        "Medication" => &[MEDICATION],
        "Flag" => &[FLAG],
        "OperationOutcome" => &[OPERATION_OUTCOME],
        _ => return None,
    })
}

/// Whether the snapshot reads resources of this type (others are skipped unread).
pub fn is_read(resource_type: &str) -> bool {
    resource_members(resource_type).is_some()
}

/// Why a resource's JSON cannot be FHIR, with the member's path (`code.coding[0].system`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ShapeError {
    pub path: String,
    pub problem: String,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The members of `resource` that the snapshot reads, ready for fhirbolt's strict mode.
/// `resource` must be a JSON object whose `resourceType` is read (see [`is_read`]).
pub fn project(resource: &Value) -> Result<Value, ShapeError> {
    let Some(obj) = resource.as_object() else {
        return Err(ShapeError {
            path: String::new(),
            problem: format!("a resource must be an object, found {}", kind(resource)),
        });
    };
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(members) = resource_members(rt) else {
        return Err(ShapeError {
            path: "resourceType".into(),
            problem: format!("`{rt}` is not a resource type read here"),
        });
    };
    let mut path = String::new();
    let mut out = complex(obj, members, &mut path, true)?;
    out.insert("resourceType".into(), Value::String(rt.to_string()));
    Ok(Value::Object(out))
}

fn complex(
    obj: &Map<String, Value>,
    members: &[Members],
    path: &mut String,
    allow_contained: bool,
) -> Result<Map<String, Value>, ShapeError> {
    let mut out = Map::new();
    for (name, shape) in members.iter().copied().flatten() {
        let Some(v) = obj.get(*name) else { continue };
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
        let projected = member(v, *shape, path, allow_contained)?;
        path.truncate(len);
        if let Some(p) = projected {
            out.insert((*name).to_string(), p);
        }
    }
    Ok(out)
}

/// One member's value: an array is projected item by item (nulls dropped; empty → dropped).
fn member(
    v: &Value,
    shape: Shape,
    path: &mut String,
    allow_contained: bool,
) -> Result<Option<Value>, ShapeError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut kept = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if item.is_array() {
                    return Err(ShapeError {
                        path: path.clone(),
                        problem: "an array inside an array is not FHIR JSON".into(),
                    });
                }
                let p = single(item, shape, path, allow_contained)?;
                path.truncate(len);
                kept.extend(p);
            }
            Ok((!kept.is_empty()).then_some(Value::Array(kept)))
        }
        _ => single(v, shape, path, allow_contained),
    }
}

fn single(
    v: &Value,
    shape: Shape,
    path: &mut String,
    allow_contained: bool,
) -> Result<Option<Value>, ShapeError> {
    match (shape, v) {
        (_, Value::Null) => Ok(None),
        (Primitive, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(Some(v.clone())),
        (Primitive, _) => Err(ShapeError {
            path: path.clone(),
            problem: format!("expected a primitive value, found {}", kind(v)),
        }),
        (Complex(members), Value::Object(obj)) => Ok(Some(Value::Object(complex(
            obj,
            members,
            path,
            allow_contained,
        )?))),
        (Contained, Value::Object(obj)) => {
            if !allow_contained {
                return Err(ShapeError {
                    path: path.clone(),
                    problem: "a contained resource cannot contain resources".into(),
                });
            }
            // Only a contained Medication is read (a medication given by `#id` reference).
            if obj.get("resourceType").and_then(Value::as_str) != Some("Medication") {
                return Ok(None);
            }
            let mut out = complex(obj, &[MEDICATION], path, false)?;
            out.insert("resourceType".into(), Value::String("Medication".into()));
            Ok(Some(Value::Object(out)))
        }
        (Complex(_) | Contained, _) => Err(ShapeError {
            path: path.clone(),
            problem: format!("expected an object, found {}", kind(v)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_members_of_every_type_are_dropped() {
        let resource: Value = serde_json::from_str(
            r#"{"resourceType": "Patient", "id": "p1", "gender": "male",
            "fooArr": [1, 2], "fooObj": {"a": [[]]}, "fooNum": 1e400, "fooNull": null,
            "name": [], "extension": [{"url": "x", "extension": []}], "_birthDate": {"extension": []}}"#,
        )
        .unwrap();
        let p = project(&resource).unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Patient", "id": "p1", "gender": "male"})
        );
    }

    #[test]
    fn empty_arrays_and_nulls_are_dropped_deep_inside() {
        let p = project(&json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [], "text": "PaO2"},
            "component": [null, {"code": {"coding": [null, {"system": "s", "code": "c"}]}}]
        }))
        .unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "PaO2"},
                   "component": [{"code": {"coding": [{"system": "s", "code": "c"}]}}]})
        );
    }

    #[test]
    fn wrong_shapes_name_the_member() {
        let e = project(&json!({"resourceType": "Observation", "status": {"a": [1]}})).unwrap_err();
        assert_eq!(e.path, "status");
        let e = project(&json!({"resourceType": "Observation", "code": {"coding": [[1]]}}))
            .unwrap_err();
        assert_eq!(e.path, "code.coding[0]");
        let e = project(&json!({"resourceType": "Observation", "code": "x"})).unwrap_err();
        assert!(e.problem.contains("expected an object"), "{e}");
    }

    #[test]
    fn only_a_contained_medication_is_kept_one_level_deep() {
        let p = project(&json!({
            "resourceType": "MedicationAdministration",
            "contained": [
                {"resourceType": "Medication", "id": "m", "code": {"text": "NO"},
                 "contained": [{"resourceType": "Medication"}]},
                {"resourceType": "Patient", "id": "x"}
            ]
        }))
        .unwrap();
        assert_eq!(
            p["contained"],
            json!([{"resourceType": "Medication", "id": "m", "code": {"text": "NO"}}])
        );
    }

    #[test]
    fn types_not_read_are_refused_by_project_and_reported_by_is_read() {
        assert!(!is_read("Encounter"));
        assert!(is_read("Observation"));
        assert!(project(&json!({"resourceType": "Encounter"})).is_err());
        assert!(project(&json!([1])).is_err());
    }
}
