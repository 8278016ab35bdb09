//! The adjudication file: what the Lung Rescue Team judged, one row per (patient, time), parsed
//! into typed [`Adjudication`]s or refused with the place of the first bad value.
//!
//! As CSV (RFC 4180, UTF-8, a header row, columns in any order, a UTF-8 byte-order mark
//! ignored, cells trimmed):
//! * `patient`: the FHIR Patient id (`[A-Za-z0-9.-]{1,64}`, or `Patient/<id>`);
//! * `time`: when the LRT judged (RFC 3339 with an offset, years 1900 to 2299);
//! * `category`: the LRT's adjudicated ECMO category, a code of the rule set's `ecmo_category`
//!   ([`EcmoCategory`]);
//! * `consult_warranted`: `true` or `false` (any letter case): whether an LRT consult was
//!   warranted at that time;
//! * `note` (optional): free text, ignored.
//!
//! Any other column is refused (a misspelt column must not be silently dropped), and so is a
//! second row for the same patient and time. As JSON (the API), the same fields as an object per
//! row under `adjudications`.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

/// The most rows a file may hold.
pub const MAX_ROWS: usize = 100_000;

/// An ECMO category of the rule set's `ecmo_category` classification (knowledge base §2.7 as
/// superseded by §9 D1–D6; `rules/lrt-ruleset/0.2.0/ecmo.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EcmoCategory {
    Eligible,
    Borderline,
    Ineligible,
    OutOfScope,
    InsufficientData,
    NotIndicated,
}

impl EcmoCategory {
    /// Every category, in the rule set's order of evaluation (`not_indicated` last).
    pub const ALL: [EcmoCategory; 6] = [
        EcmoCategory::Ineligible,
        EcmoCategory::OutOfScope,
        EcmoCategory::InsufficientData,
        EcmoCategory::Eligible,
        EcmoCategory::Borderline,
        EcmoCategory::NotIndicated,
    ];

    pub fn code(self) -> &'static str {
        match self {
            EcmoCategory::Eligible => "eligible",
            EcmoCategory::Borderline => "borderline",
            EcmoCategory::Ineligible => "ineligible",
            EcmoCategory::OutOfScope => "out_of_scope",
            EcmoCategory::InsufficientData => "insufficient_data",
            EcmoCategory::NotIndicated => "not_indicated",
        }
    }

    pub fn parse(code: &str) -> Option<EcmoCategory> {
        EcmoCategory::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The ECMO screen is positive: `eligible` or `borderline` (both bring an ECMO-centre
    /// consult, emergent or urgent).
    pub fn screens_positive(self) -> bool {
        matches!(self, EcmoCategory::Eligible | EcmoCategory::Borderline)
    }

    /// The codes, comma-separated, for error messages.
    pub fn codes() -> String {
        EcmoCategory::ALL.map(EcmoCategory::code).join(", ")
    }
}

/// One row of the file: the LRT's judgement of a patient at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjudication {
    /// The FHIR Patient id.
    pub patient: String,
    /// When the LRT judged.
    pub at: DateTime<Utc>,
    pub category: EcmoCategory,
    pub consult_warranted: bool,
}

/// Where a bad value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (its header, or no rows).
    File,
    /// A CSV line (a record that does not parse, or a duplicate).
    Line(u64),
    /// A CSV cell: its line, its column (from 1) and the column's name.
    Cell {
        line: u64,
        column: usize,
        name: &'static str,
    },
    /// A JSON row (from 0, as in `adjudications[i]`), and its field when known.
    Row {
        index: usize,
        field: Option<&'static str>,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File => f.write_str("the file"),
            Place::Line(line) => write!(f, "line {line}"),
            Place::Cell { line, column, name } => {
                write!(f, "line {line}, column {column} (`{name}`)")
            }
            Place::Row {
                index,
                field: Some(name),
            } => write!(f, "adjudications[{index}].{name}"),
            Place::Row { index, field: None } => write!(f, "adjudications[{index}]"),
        }
    }
}

/// A bad adjudication file: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct AdjudicationError {
    pub place: Place,
    pub message: String,
}

impl AdjudicationError {
    fn new(place: Place, message: impl Into<String>) -> AdjudicationError {
        AdjudicationError {
            place,
            message: message.into(),
        }
    }
}

/// The columns, in the order the file format lists them.
const COLUMNS: [&str; 5] = ["patient", "time", "category", "consult_warranted", "note"];
const REQUIRED: usize = 4;

/// Reads a CSV adjudication file.
pub fn from_csv(bytes: &[u8]) -> Result<Vec<Adjudication>, AdjudicationError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader.headers().map_err(csv_error)?.clone();
    // Where each column is (index into the record).
    let mut at: HashMap<&'static str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(AdjudicationError::new(
                Place::File,
                format!(
                    "unknown column {name:?} in the header (the columns are {})",
                    COLUMNS.join(", ")
                ),
            ));
        };
        if at.insert(known, i).is_some() {
            return Err(AdjudicationError::new(
                Place::File,
                format!("column {name:?} appears twice in the header"),
            ));
        }
    }
    let missing: Vec<&str> = COLUMNS[..REQUIRED]
        .iter()
        .filter(|c| !at.contains_key(*c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(AdjudicationError::new(
            Place::File,
            format!(
                "the header lacks the column(s) {} (a header row is required: {})",
                missing.join(", "),
                COLUMNS[..REQUIRED].join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    let mut seen = Seen::default();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() == MAX_ROWS {
            return Err(AdjudicationError::new(
                Place::Line(line),
                format!("more than {MAX_ROWS} rows"),
            ));
        }
        let cell = |name: &'static str| {
            let i = at[name];
            (
                record.get(i).unwrap_or_default(),
                Place::Cell {
                    line,
                    column: i + 1,
                    name,
                },
            )
        };
        let (patient, place) = cell("patient");
        let patient = parse_patient(patient).map_err(|m| AdjudicationError::new(place, m))?;
        let (time, place) = cell("time");
        let at_time = parse_time(time).map_err(|m| AdjudicationError::new(place, m))?;
        let (category, place) = cell("category");
        let category = parse_category(category).map_err(|m| AdjudicationError::new(place, m))?;
        let (warranted, place) = cell("consult_warranted");
        let consult_warranted =
            parse_warranted(warranted).map_err(|m| AdjudicationError::new(place, m))?;
        let row = Adjudication {
            patient,
            at: at_time,
            category,
            consult_warranted,
        };
        seen.check(&row, Place::Line(line), |p| match p {
            Place::Line(l) => format!("line {l}"),
            other => other.to_string(),
        })?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(AdjudicationError::new(
            Place::File,
            "no adjudication rows after the header",
        ));
    }
    Ok(rows)
}

/// The JSON form of the API: `{"adjudications": [{"patient", "time", "category",
/// "consult_warranted", "note"?}, …]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    adjudications: Vec<JsonRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    patient: String,
    time: String,
    category: String,
    consult_warranted: bool,
    /// Free text, read (it must be a string) and not used.
    #[serde(default, rename = "note")]
    _note: Option<String>,
}

/// Reads the JSON form.
pub fn from_json(bytes: &[u8]) -> Result<Vec<Adjudication>, AdjudicationError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let body: JsonBody = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let place = if path == "." { "the body" } else { &path };
        AdjudicationError::new(Place::File, format!("{place}: {}", e.inner()))
    })?;
    if body.adjudications.is_empty() {
        return Err(AdjudicationError::new(
            Place::File,
            "`adjudications` is empty",
        ));
    }
    if body.adjudications.len() > MAX_ROWS {
        return Err(AdjudicationError::new(
            Place::File,
            format!("more than {MAX_ROWS} adjudications"),
        ));
    }
    let mut rows = Vec::with_capacity(body.adjudications.len());
    let mut seen = Seen::default();
    for (index, raw) in body.adjudications.iter().enumerate() {
        let place = |field| Place::Row {
            index,
            field: Some(field),
        };
        let row = Adjudication {
            patient: parse_patient(&raw.patient)
                .map_err(|m| AdjudicationError::new(place("patient"), m))?,
            at: parse_time(&raw.time).map_err(|m| AdjudicationError::new(place("time"), m))?,
            category: parse_category(&raw.category)
                .map_err(|m| AdjudicationError::new(place("category"), m))?,
            consult_warranted: raw.consult_warranted,
        };
        seen.check(&row, Place::Row { index, field: None }, |p| p.to_string())?;
        rows.push(row);
    }
    Ok(rows)
}

/// The rows already read, by (patient, time): a second row for the same pair is refused.
#[derive(Default)]
struct Seen(HashMap<(String, DateTime<Utc>), Place>);

impl Seen {
    fn check(
        &mut self,
        row: &Adjudication,
        place: Place,
        name: impl Fn(&Place) -> String,
    ) -> Result<(), AdjudicationError> {
        let key = (row.patient.clone(), row.at);
        if let Some(first) = self.0.get(&key) {
            return Err(AdjudicationError::new(
                place,
                format!(
                    "a second adjudication of patient {} at {} (the first is at {})",
                    row.patient,
                    row.at.to_rfc3339(),
                    name(first)
                ),
            ));
        }
        self.0.insert(key, place);
        Ok(())
    }
}

fn csv_error(e: csv::Error) -> AdjudicationError {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => e.to_string(),
    };
    match line {
        Some(line) => AdjudicationError::new(Place::Line(line), message),
        None => AdjudicationError::new(Place::File, message),
    }
}

fn parse_patient(text: &str) -> Result<String, String> {
    let id = text.strip_prefix("Patient/").unwrap_or(text);
    if lrt_hooks::model::is_fhir_id(id) {
        Ok(id.to_string())
    } else {
        Err(format!(
            "{text:?} is not a FHIR Patient id (1 to 64 of A-Z a-z 0-9 - .)"
        ))
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            format!(
                "{text:?} is not an RFC 3339 date-time with an offset, e.g. 2026-12-01T08:30:00Z"
            )
        })?
        .with_timezone(&Utc);
    if !(1900..=2299).contains(&at.year()) {
        return Err(format!("{text:?} is not in the years 1900 to 2299"));
    }
    Ok(at)
}

fn parse_category(text: &str) -> Result<EcmoCategory, String> {
    EcmoCategory::parse(text).ok_or_else(|| {
        format!(
            "unknown ECMO category {text:?}; the rule set's categories are {}",
            EcmoCategory::codes()
        )
    })
}

fn parse_warranted(text: &str) -> Result<bool, String> {
    if text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!("{text:?} is not true or false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The categories of a shipped rule-set version's `ecmo_category` classification.
    fn categories_of(version: &str) -> Vec<String> {
        let dir = lrt_engine::testing::repo_root()
            .join("rules/lrt-ruleset")
            .join(version);
        let rules = lrt_engine::RuleSet::load(&dir).expect("the shipped rule set loads");
        let node = rules
            .nodes
            .iter()
            .find(|n| &*n.id == "ecmo_category")
            .expect("an ecmo_category classification");
        match &node.kind {
            lrt_engine::ruleset::NodeKind::Classification(c) => {
                c.values.iter().map(|v| v.to_string()).collect()
            }
            _ => panic!("ecmo_category is not a classification"),
        }
    }

    #[test]
    fn the_categories_are_the_rule_sets() {
        let mut ours: Vec<&str> = EcmoCategory::ALL.map(EcmoCategory::code).to_vec();
        ours.sort_unstable();
        let mut active = categories_of("0.2.0");
        active.sort_unstable();
        assert_eq!(active, ours);
        for code in categories_of("0.1.0") {
            assert!(EcmoCategory::parse(&code).is_some(), "0.1.0's {code}");
        }
    }

    const GOOD: &str = "\u{feff}patient,time,category,consult_warranted,note\r\n\
        p-1,2026-11-02T08:00:00Z,eligible,TRUE,\"reviewed, agreed\"\r\n\
        Patient/p-2, 2026-11-02T10:00:00+01:00 ,not_indicated,false,\r\n";

    #[test]
    fn a_good_file_reads_into_typed_rows() {
        let rows = from_csv(GOOD.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].patient, "p-1");
        assert_eq!(rows[0].category, EcmoCategory::Eligible);
        assert!(rows[0].consult_warranted);
        assert_eq!(rows[1].patient, "p-2");
        assert_eq!(rows[1].at.to_rfc3339(), "2026-11-02T09:00:00+00:00");
        assert!(!rows[1].consult_warranted);
    }

    #[test]
    fn columns_may_come_in_any_order_and_note_is_optional() {
        let text =
            "consult_warranted,category,time,patient\nfalse,borderline,2026-11-02T08:00:00Z,p-1\n";
        let rows = from_csv(text.as_bytes()).unwrap();
        assert_eq!(rows[0].category, EcmoCategory::Borderline);
    }

    fn error(text: &str) -> AdjudicationError {
        from_csv(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_bad_value_names_its_line_and_column() {
        let e = error(
            "patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00Z,eligible,true\np-2,2026-11-02T08:00:00Z,eligble,true\n",
        );
        assert_eq!(
            e.place,
            Place::Cell {
                line: 3,
                column: 3,
                name: "category"
            }
        );
        // The valid codes are listed.
        for code in [
            "eligible",
            "borderline",
            "not_indicated",
            "insufficient_data",
        ] {
            assert!(e.message.contains(code), "{e}");
        }
        assert!(
            e.to_string().starts_with("line 3, column 3 (`category`)"),
            "{e}"
        );

        let e = error("patient,time,category,consult_warranted\np-1,yesterday,eligible,true\n");
        assert_eq!(
            e.place,
            Place::Cell {
                line: 2,
                column: 2,
                name: "time"
            }
        );
        let e = error(
            "patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00,eligible,true\n",
        );
        assert!(
            matches!(e.place, Place::Cell { name: "time", .. }),
            "no offset: {e}"
        );
        let e = error(
            "patient,time,category,consult_warranted\np 1,2026-11-02T08:00:00Z,eligible,true\n",
        );
        assert!(
            matches!(
                e.place,
                Place::Cell {
                    name: "patient",
                    ..
                }
            ),
            "{e}"
        );
        let e = error(
            "patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00Z,eligible,yes\n",
        );
        assert!(
            matches!(
                e.place,
                Place::Cell {
                    line: 2,
                    column: 4,
                    name: "consult_warranted"
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_broken_record_or_header_is_refused() {
        let e =
            error("patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00Z,eligible\n");
        assert_eq!(e.place, Place::Line(2), "{e}");
        let e = error("patient,time,categry,consult_warranted\n");
        assert_eq!(e.place, Place::File);
        assert!(e.message.contains("\"categry\""), "{e}");
        let e = error("patient,time,category\np-1,2026-11-02T08:00:00Z,eligible\n");
        assert!(e.message.contains("consult_warranted"), "{e}");
        let e = error("patient,time,category,consult_warranted\n");
        assert!(e.message.contains("no adjudication rows"), "{e}");
        let e = from_csv(
            b"patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00Z,\xff,true\n",
        )
        .unwrap_err();
        assert_eq!(e.place, Place::Line(2), "{e}");
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn a_second_row_for_the_same_patient_and_time_is_refused() {
        let e = error(
            "patient,time,category,consult_warranted\np-1,2026-11-02T08:00:00Z,eligible,true\np-1,2026-11-02T09:00:00+01:00,borderline,true\n",
        );
        assert_eq!(e.place, Place::Line(3));
        assert!(e.message.contains("line 2"), "{e}");
    }

    #[test]
    fn the_json_form_reads_the_same_rows_and_names_the_bad_field() {
        let rows = from_json(br#"{"adjudications": [{"patient": "p-1", "time": "2026-11-02T08:00:00Z", "category": "eligible", "consult_warranted": true, "note": "x"}]}"#).unwrap();
        assert_eq!(rows[0].category, EcmoCategory::Eligible);
        let e = from_json(br#"{"adjudications": [{"patient": "p-1", "time": "2026-11-02T08:00:00Z", "category": "eligible", "consult_warranted": true}, {"patient": "p-2", "time": "2026-11-02T08:00:00Z", "category": "ECMO", "consult_warranted": true}]}"#).unwrap_err();
        assert_eq!(
            e.to_string().split(':').next(),
            Some("adjudications[1].category")
        );
        let e = from_json(br#"{"adjudications": [{"patient": "p-1", "time": "2026-11-02T08:00:00Z", "category": "eligible", "consult_warranted": "yes"}]}"#).unwrap_err();
        assert!(
            e.message.contains("adjudications[0].consult_warranted"),
            "{e}"
        );
        assert!(from_json(br#"{"adjudications": []}"#).is_err());
        assert!(from_json(b"not json").is_err());
    }
}
