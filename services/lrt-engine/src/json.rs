//! Small helpers for hand-written deserialisers.
//!
//! The service is built with serde_json's `arbitrary_precision` feature (fhirbolt needs it for
//! FHIR decimals, and Cargo unifies features across the workspace). Under that feature
//! `#[serde(untagged)]` enums see numbers as maps, so every enum that mixes numbers with other
//! shapes is read through [`serde_json::Value`] instead. The engine's own tests run with the
//! feature on (see `Cargo.toml`), so they exercise the configuration the service ships.

use serde_json::Value;

/// The JSON type of a value, for error messages ("found a string").
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use crate::assessment::{BloodGasValues, CriterionValue};
    use crate::snapshot::ObservationValue;

    fn round_trip(v: &CriterionValue) -> CriterionValue {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    #[test]
    fn criterion_values_read_back_as_written() {
        let values = [
            CriterionValue::Null,
            CriterionValue::Boolean(true),
            CriterionValue::Number(20.0),
            CriterionValue::Number(0.1 + 0.2),
            CriterionValue::Range {
                at_least: 1.0,
                at_most: 2.5,
            },
            // A partial score's lower bound: no upper bound (written as null).
            CriterionValue::Range {
                at_least: 2.0,
                at_most: f64::INFINITY,
            },
            CriterionValue::Text("moderate".into()),
            CriterionValue::Codes(vec!["PRONE_POSITIONING".into()]),
            CriterionValue::BloodGas(BloodGasValues {
                pao2: Some(60.0),
                fio2: Some(0.8),
                pf_ratio: Some(75.0),
                paco2: None,
                ph: Some(7.31),
            }),
        ];
        for v in &values {
            assert_eq!(&round_trip(v), v);
        }
    }

    #[test]
    fn malformed_criterion_values_are_refused() {
        for bad in [
            r#"{"at_least": 1}"#,
            r#"{"pao2": 1, "extra": 2}"#,
            r#"[1, 2]"#,
        ] {
            assert!(
                serde_json::from_str::<CriterionValue>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn observation_values_are_numbers_or_booleans() {
        assert_eq!(
            serde_json::from_str::<ObservationValue>("42").unwrap(),
            ObservationValue::Number(42.0)
        );
        assert_eq!(
            serde_json::from_str::<ObservationValue>("7.35").unwrap(),
            ObservationValue::Number(7.35)
        );
        assert_eq!(
            serde_json::from_str::<ObservationValue>("false").unwrap(),
            ObservationValue::Boolean(false)
        );
        let err = serde_json::from_str::<ObservationValue>(r#""42""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("found a string"), "{err}");
    }
}
