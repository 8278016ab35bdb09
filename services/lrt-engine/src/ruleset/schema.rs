//! JSON Schema validation of rule files (shape: types, required keys, enums, no unknown keys).
//!
//! The schema is `rules/schema/rule-file.schema.json`, embedded at build time because it
//! describes the language this engine understands. Semantic checks (unknown facts, units,
//! citations, references) follow in `compile`, with the same file + pointer error format.

use std::sync::OnceLock;

use serde_json::Value;

use super::files::RuleFile;
use super::{RuleError, RuleSetError, SourceFile};

/// The rule-file schema (draft 2020-12).
pub const RULE_FILE_SCHEMA: &str = include_str!("../../../../rules/schema/rule-file.schema.json");

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(RULE_FILE_SCHEMA).expect("embedded rule-file schema is JSON");
        jsonschema::draft202012::new(&schema).expect("embedded rule-file schema compiles")
    })
}

pub(crate) struct ParsedFile {
    pub display: String,
    pub name: String,
    pub file: RuleFile,
}

pub(crate) fn validate_and_parse(files: &[SourceFile]) -> Result<Vec<ParsedFile>, RuleSetError> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    // Every parameter's value, to name the one a literal threshold should have been.
    let params: Vec<(&str, f64)> = files
        .iter()
        .filter_map(|f| f.value.get("parameters").and_then(Value::as_object))
        .flat_map(|m| m.iter())
        .filter_map(|(name, p)| Some((name.as_str(), p.get("value")?.as_f64()?)))
        .collect();
    for f in files {
        let before = errors.len();
        for e in validator().iter_errors(&f.value) {
            let message = e.to_string();
            let pointer = e.instance_path().as_str();
            let help = literal_threshold_help(&f.value, pointer, &params)
                .or_else(|| schema_help(&message));
            errors.push(RuleError::new(&f.display, pointer, message).with_help(help));
        }
        if errors.len() > before {
            continue;
        }
        match serde_json::from_value::<RuleFile>(f.value.clone()) {
            Ok(file) => parsed.push(ParsedFile {
                display: f.display.clone(),
                name: f.name.clone(),
                file,
            }),
            Err(e) => errors.push(RuleError::new(&f.display, "", e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(RuleSetError { errors })
    }
}

/// A number where a condition compares a fact (`{fact: bmi, gt: 45}`): thresholds are
/// parameters; name the parameter(s) with that value when there are any.
fn literal_threshold_help(file: &Value, pointer: &str, params: &[(&str, f64)]) -> Option<String> {
    let (parent, op) = pointer.rsplit_once('/')?;
    let in_condition = pointer.contains("/when") || pointer.contains("/qualifies");
    if !in_condition || !["lt", "le", "gt", "ge", "eq", "ne"].contains(&op) {
        return None;
    }
    let x = file.pointer(pointer)?.as_f64()?;
    file.pointer(parent)?.get("fact")?;
    let mut same: Vec<&str> = params
        .iter()
        .filter(|(_, v)| (v - x).abs() <= crate::concept::EPSILON)
        .map(|(n, _)| *n)
        .collect();
    same.sort_unstable();
    same.dedup();
    Some(if same.is_empty() {
        "thresholds are parameters: define one under `parameters` (value, unit, cites) and write `{param: <name>}`".into()
    } else {
        let written: Vec<String> = same.iter().map(|n| format!("`{{param: {n}}}`")).collect();
        format!("thresholds are parameters: write {}", written.join(" or "))
    })
}

/// Help for the shape errors authors make most.
fn schema_help(message: &str) -> Option<String> {
    if message.contains("\"cites\" is a required property") {
        return Some(
            "every item cites the knowledge-base section(s) it encodes: write `cites: \"§2.7\"`"
                .into(),
        );
    }
    if message.contains("is not one of [\"V\",\"M\",\"H\"]")
        || message.contains("is not one of [\"V\", \"M\", \"H\"]")
    {
        return Some(
            "evidence is the knowledge base's tag of the cited section or item: V (verified), M (from memory) or H (heuristic or policy)"
                .into(),
        );
    }
    if message.contains("Additional properties are not allowed") {
        return Some("check the spelling of the key; rules/README.md lists every key".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_schema_is_a_valid_2020_12_schema() {
        let schema: Value = serde_json::from_str(RULE_FILE_SCHEMA).unwrap();
        assert!(jsonschema::meta::is_valid(&schema));
        let _ = validator();
    }
}
