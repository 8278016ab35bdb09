//! Test cases in the layout of knowledge base §6.2, and the comparison of an assessment with a
//! case's `expected` within the §6.1 tolerances.
//!
//! A case file is either one case object or a collection `{"cases": [...]}` (as
//! `clinical/examples.json`). A case is `id`, `title`, `now`, the snapshot (`patient`,
//! `context`, `observations`, `maneuvers`) and, for tests, `expected` — which may list only the
//! fields the case is about. Rule-set test cases may add `cites` (the section they cover) and
//! `description`.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::assessment::Assessment;
use crate::snapshot::PatientSnapshot;

/// Tolerance for P/F (`pf_ratio`, `pf_ratio_precise`), §6.1.
pub const PF_TOLERANCE: f64 = 0.05;
/// Tolerance for other ratios, scores and durations, §6.1.
pub const RATIO_TOLERANCE: f64 = 0.01;

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    pub title: Option<String>,
    pub cites: Option<String>,
    pub now: DateTime<Utc>,
    pub snapshot: PatientSnapshot,
    pub expected: Option<Value>,
    /// Where the case sits in its file (`cases[3]`, or empty for a single-case file).
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaseFile {
    pub cases: Vec<Case>,
    pub conventions: Option<Value>,
}

/// A case file that cannot be used, with the file and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}{sep}{message}", sep = if path.is_empty() { "" } else { ": " })]
pub struct CaseFileError {
    pub file: String,
    pub path: String,
    pub message: String,
}

const CASE_KEYS: [&str; 12] = [
    "id",
    "title",
    "description",
    "cites",
    // Informational notes of the clinical lead's worked examples (examples-0.2.0.json).
    "changed_in_0_2_0",
    "safety",
    "now",
    "patient",
    "context",
    "observations",
    "maneuvers",
    "expected",
];

impl CaseFile {
    pub fn read(path: &Path) -> Result<CaseFile, CaseFileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CaseFileError {
            file: file.clone(),
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        CaseFile::parse(&file, &text)
    }

    /// Parses JSON text; `file` is only used in messages.
    pub fn parse(file: &str, text: &str) -> Result<CaseFile, CaseFileError> {
        let err = |path: &str, message: String| CaseFileError {
            file: file.to_string(),
            path: path.to_string(),
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        let Some(obj) = value.as_object() else {
            return Err(err(
                "",
                "expected a JSON object (one case, or {\"cases\": [...]})".into(),
            ));
        };
        let (items, conventions): (Vec<(String, &Value)>, Option<Value>) = match obj.get("cases") {
            Some(Value::Array(list)) => (
                list.iter()
                    .enumerate()
                    .map(|(i, c)| (format!("cases[{i}]"), c))
                    .collect(),
                obj.get("conventions").cloned(),
            ),
            Some(_) => return Err(err("cases", "must be a list of cases".into())),
            None => (vec![(String::new(), &value)], None),
        };
        let mut cases = Vec::with_capacity(items.len());
        for (path, item) in items {
            cases.push(parse_case(item, &path).map_err(|(p, m)| err(&p, m))?);
        }
        Ok(CaseFile { cases, conventions })
    }
}

fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else if field.starts_with('[') {
        format!("{base}{field}")
    } else {
        format!("{base}.{field}")
    }
}

fn parse_case(v: &Value, path: &str) -> Result<Case, (String, String)> {
    let Some(obj) = v.as_object() else {
        return Err((path.to_string(), "a case must be an object".into()));
    };
    for k in obj.keys() {
        if !CASE_KEYS.contains(&k.as_str()) {
            return Err((
                join(path, k),
                format!("unknown field (a case has: {})", CASE_KEYS.join(", ")),
            ));
        }
    }
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let id = text("id").ok_or_else(|| (join(path, "id"), "missing case id".to_string()))?;
    let now_text = text("now").ok_or_else(|| {
        (
            join(path, "now"),
            "missing evaluation time `now`".to_string(),
        )
    })?;
    let now = DateTime::parse_from_rfc3339(&now_text)
        .map_err(|e| {
            (
                join(path, "now"),
                format!("{now_text:?} is not an RFC 3339 date-time with a time zone: {e}"),
            )
        })?
        .with_timezone(&Utc);
    let now = crate::time_window::check(now).map_err(|e| (join(path, "now"), e))?;
    let mut snap = Map::new();
    for k in ["patient", "context", "observations", "maneuvers"] {
        if let Some(x) = obj.get(k) {
            snap.insert(k.to_string(), x.clone());
        }
    }
    if !snap.contains_key("patient") {
        return Err((join(path, "patient"), "missing patient".into()));
    }
    let snapshot: PatientSnapshot = serde_path_to_error::deserialize(Value::Object(snap))
        .map_err(|e| (join(path, &e.path().to_string()), e.inner().to_string()))?;
    Ok(Case {
        id,
        title: text("title"),
        cites: text("cites"),
        now,
        snapshot,
        expected: obj.get("expected").cloned(),
        path: path.to_string(),
    })
}

/// One difference between `expected` and the assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub field: String,
    pub expected: Value,
    pub actual: Value,
    pub note: &'static str,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.field, self.expected, self.actual
        )?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

/// Compares the fields listed in `expected` with the assessment (§6.1 tolerances):
/// P/F ± 0.05, other numbers ± 0.01; categories, booleans and code lists exactly (code lists in
/// their defined order); `data_quality` entries as prefixes of actual entries, same count (stricter
/// than §6.1's code-only match); `recommendations_must_not_include` as a safety check;
/// `ecmo_reasons_required` / `data_quality_required` (regular expressions, each must match an
/// entry), `data_quality_forbidden` (none may match) and `recommendations_optional` (codes that
/// may be present or absent; `recommendations` is then compared as a set).
pub fn compare(expected: &Value, assessment: &Assessment) -> Vec<Mismatch> {
    compare_under(expected, assessment, None)
}

/// [`compare`] under a case file's `conventions`: where they declare `ecmo_reasons` and
/// `data_quality` informational (`ecmo_reasons_and_data_quality`, as the clinical lead's
/// examples-0.2.0.json does), those lists and `resp_missing` are not compared (the
/// `_required` / `_forbidden` patterns are), and `recommendations` is an exact set.
pub fn compare_under(
    expected: &Value,
    assessment: &Assessment,
    conventions: Option<&Value>,
) -> Vec<Mismatch> {
    let actual = serde_json::to_value(assessment).expect("an assessment serialises");
    compare_json(expected, &actual, conventions)
}

/// [`compare_under`] on an assessment already in JSON.
fn compare_json(expected: &Value, actual: &Value, conventions: Option<&Value>) -> Vec<Mismatch> {
    let informational = conventions
        .and_then(|c| c.get("ecmo_reasons_and_data_quality"))
        .is_some();
    let mut out = Vec::new();
    let Some(exp) = expected.as_object() else {
        out.push(Mismatch {
            field: "expected".into(),
            expected: expected.clone(),
            actual: Value::Null,
            note: "expected must be an object",
        });
        return out;
    };
    let strings = |field: &str| -> Vec<String> {
        actual[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let optional: Vec<String> = exp
        .get("recommendations_optional")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for (field, want) in exp {
        match field.as_str() {
            // The conventions' `strict_fields` leave these out (names differ between references).
            "ecmo_reasons" | "data_quality" | "resp_missing" if informational => {}
            "recommendations_optional" => {}
            "recommendations" if informational || exp.contains_key("recommendations_optional") => {
                let got = strings("recommendations");
                let want: Vec<String> = want
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                let missing = want.iter().any(|w| !got.contains(w));
                let extra = got
                    .iter()
                    .any(|g| !want.contains(g) && !optional.contains(g));
                if missing || extra {
                    out.push(Mismatch {
                        field: field.clone(),
                        expected: Value::from(want),
                        actual: actual[field].clone(),
                        note: "as a set; codes of recommendations_optional may be present or absent",
                    });
                }
            }
            "ecmo_reasons_required" | "data_quality_required" | "data_quality_forbidden" => {
                let list = if field.starts_with("ecmo_reasons") {
                    "ecmo_reasons"
                } else {
                    "data_quality"
                };
                let got = strings(list);
                let forbidden = field.ends_with("forbidden");
                for pattern in want.as_array().into_iter().flatten() {
                    let text = pattern.as_str().unwrap_or_default();
                    let re = match fancy_regex::Regex::new(text) {
                        Ok(re) => re,
                        Err(_) => {
                            out.push(Mismatch {
                                field: field.clone(),
                                expected: pattern.clone(),
                                actual: Value::Null,
                                note: "not a valid regular expression",
                            });
                            continue;
                        }
                    };
                    let hit = got.iter().any(|g| re.is_match(g).unwrap_or(false));
                    if hit == forbidden {
                        out.push(Mismatch {
                            field: field.clone(),
                            expected: pattern.clone(),
                            actual: actual[list].clone(),
                            note: if forbidden {
                                "a forbidden pattern matched an entry"
                            } else {
                                "no entry matches this pattern"
                            },
                        });
                    }
                }
            }
            "recommendations_must_not_include" => {
                let got = actual["recommendations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for code in want.as_array().into_iter().flatten() {
                    if got.contains(code) {
                        out.push(Mismatch {
                            field: field.clone(),
                            expected: code.clone(),
                            actual: actual["recommendations"].clone(),
                            note: "a forbidden recommendation was given",
                        });
                    }
                }
            }
            "data_quality" => {
                let got: Vec<String> = actual[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if !prefix_multiset_match(want, &got) {
                    out.push(Mismatch {
                        field: field.clone(),
                        expected: want.clone(),
                        actual: actual[field].clone(),
                        note: "each expected entry must prefix one actual entry, same count",
                    });
                }
            }
            _ => match actual.get(field) {
                None => out.push(Mismatch {
                    field: field.clone(),
                    expected: want.clone(),
                    actual: Value::Null,
                    note: "the assessment has no such field",
                }),
                Some(got) => {
                    let tol = if field.starts_with("pf_ratio") {
                        PF_TOLERANCE
                    } else {
                        RATIO_TOLERANCE
                    };
                    compare_value(field, want, got, tol, &mut out);
                }
            },
        }
    }
    out
}

fn compare_value(field: &str, want: &Value, got: &Value, tol: f64, out: &mut Vec<Mismatch>) {
    let mismatch = |note| Mismatch {
        field: field.to_string(),
        expected: want.clone(),
        actual: got.clone(),
        note,
    };
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if (a - b).abs() > tol + 1e-12 {
                out.push(mismatch("outside tolerance"));
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => compare_value(&format!("{field}.{k}"), wv, gv, tol, out),
                    None => out.push(Mismatch {
                        field: format!("{field}.{k}"),
                        expected: wv.clone(),
                        actual: Value::Null,
                        note: "missing",
                    }),
                }
            }
            for k in g.keys() {
                if !w.contains_key(k) && field == "murray_components" {
                    out.push(Mismatch {
                        field: format!("{field}.{k}"),
                        expected: Value::Null,
                        actual: g[k].clone(),
                        note: "unexpected component",
                    });
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            // Code lists come in a defined order (catalogue, group and item order): exact.
            if w != g {
                out.push(mismatch("lists differ (same codes, same order)"));
            }
        }
        (w, g) if w == g => {}
        _ => out.push(mismatch("")),
    }
}

fn prefix_multiset_match(want: &Value, got: &[String]) -> bool {
    let Some(want) = want.as_array() else {
        return false;
    };
    if want.len() != got.len() {
        return false;
    }
    let mut used = vec![false; got.len()];
    want.iter().all(|w| {
        let w = w.as_str().unwrap_or_default();
        match got
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && g.starts_with(w))
        {
            Some((i, _)) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_file_and_field_of_a_bad_case() {
        let bad = r#"{"cases":[{"id":"x","now":"2025-03-01T12:00:00Z","patient":{"sex":"male","age_years":40},
            "observations":[{"id":"o1","system":"http://loinc.org","code":"2703-7","value":"ninety","unit":"mm[Hg]",
            "effective":"2025-03-01T11:00:00Z","status":"final"}]}]}"#;
        let e = CaseFile::parse("f.json", bad).unwrap_err();
        assert_eq!(e.path, "cases[0].observations[0].value");
        assert!(
            e.to_string()
                .starts_with("f.json: cases[0].observations[0].value: ")
        );

        let e = CaseFile::parse(
            "f.json",
            r#"{"id":"x","now":"2025-03-01T12:00:00","patient":{}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "now");

        // Issue 8: an evaluation time outside the accepted years.
        let e = CaseFile::parse(
            "f.json",
            r#"{"id":"x","now":"9999-12-31T00:00:00Z","patient":{}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "now");
        assert!(e.to_string().contains("1900 to 2299"), "{e}");

        let e = CaseFile::parse(
            "f.json",
            r#"{"id":"x","now":"2025-03-01T12:00:00Z","patient":{},"contxt":{}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "contxt");

        let e = CaseFile::parse(
            "f.json",
            r#"{"id":"x","now":"2025-03-01T12:00:00Z","patient":{},"context":{"intubatd":true}}"#,
        )
        .unwrap_err();
        assert!(e.path.starts_with("context"), "{e}");

        let e = CaseFile::parse("f.json", "{ not json").unwrap_err();
        assert!(e.message.contains("not valid JSON"));
    }

    #[test]
    fn required_and_forbidden_patterns_and_optional_recommendations() {
        let a = serde_json::json!({
            "recommendations": ["ECMO_CENTER_CONSULT", "PRONE_POSITIONING"],
            "ecmo_reasons": ["eolia_c2", "unverified:bmi"],
            "data_quality": ["rr_measured_not_set"]
        });
        let conventions = serde_json::json!({"ecmo_reasons_and_data_quality": "informational"});
        let ok = serde_json::json!({
            "recommendations": ["ECMO_CENTER_CONSULT"],
            "recommendations_optional": ["PRONE_POSITIONING"],
            "ecmo_reasons": ["something else"],
            "ecmo_reasons_required": ["^unverified:", "^(?!unverified:).*c2"],
            "data_quality_required": ["^rr_measured_not_set"],
            "data_quality_forbidden": ["^implausible:"]
        });
        assert_eq!(compare_json(&ok, &a, Some(&conventions)), vec![]);
        let bad = serde_json::json!({
            "recommendations": ["ECMO_CENTER_CONSULT"],
            "ecmo_reasons_required": ["^scope:"],
            "data_quality_forbidden": ["^rr_"]
        });
        let mut fields: Vec<String> = compare_json(&bad, &a, Some(&conventions))
            .into_iter()
            .map(|m| m.field)
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                "data_quality_forbidden",
                "ecmo_reasons_required",
                "recommendations"
            ]
        );
        // Without the conventions, `ecmo_reasons` is compared exactly.
        let strict = serde_json::json!({"ecmo_reasons": ["eolia_c2"]});
        assert_eq!(compare_json(&strict, &a, None).len(), 1);
    }

    #[test]
    fn prefix_matching() {
        let want = serde_json::json!(["stale:pao2", "conflict:pao2"]);
        assert!(prefix_multiset_match(
            &want,
            &[
                "conflict:pao2@2025-03-01T11:30:00Z".into(),
                "stale:pao2".into()
            ]
        ));
        assert!(!prefix_multiset_match(&want, &["stale:pao2".into()]));
        assert!(!prefix_multiset_match(
            &want,
            &["stale:pao2".into(), "stale:paco2".into()]
        ));
    }
}
