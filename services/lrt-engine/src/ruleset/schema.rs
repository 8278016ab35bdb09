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
    for f in files {
        let before = errors.len();
        for e in validator().iter_errors(&f.value) {
            let message = e.to_string();
            let help = schema_help(&message);
            errors.push(
                RuleError::new(&f.display, e.instance_path().as_str(), message).with_help(help),
            );
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
