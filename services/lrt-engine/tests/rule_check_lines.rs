//! `lrt rules check` names the file, the line, the item and a help line (issue: "a rule file
//! with a misspelt group or an untagged decision item is refused, naming file, line and item").
//!
//! Each test copies rule set 0.2.0 (format 2: decision items carry `evidence`) to a scratch
//! folder, breaks one item, and asserts the one error it gets, down to the line number.

use std::path::{Path, PathBuf};

use lrt_engine::RuleSet;
use lrt_engine::ruleset::RuleError;
use lrt_engine::testing::{copy_version, edit_file, repo_root};

/// The 1-based line of the first line of `file` that contains `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()))
}

/// Breaks `file` of a copy of 0.2.0 (replacing `from` by `to`) and returns every error with the
/// path of the broken file.
fn errors_after(file: &str, from: &str, to: &str) -> (Vec<RuleError>, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_version(tmp.path(), "0.2.0");
    let path = dir.join(file);
    edit_file(&path, from, to);
    let errors = match RuleSet::load(&dir) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors,
    };
    (errors, path, tmp)
}

/// The one error about `item`, or a panic that lists them all.
fn the_error<'a>(errors: &'a [RuleError], item: &str) -> &'a RuleError {
    let found: Vec<&RuleError> = errors
        .iter()
        .filter(|e| e.item.as_deref() == Some(item))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one error about {item} expected: {errors:#?}"
    );
    found[0]
}

const BMI_RULE: &str = "  - id: relative_ci_bmi\n";

#[test]
fn the_unmodified_copy_of_0_2_0_loads() {
    let (errors, _, _tmp) = errors_after("ecmo.yaml", BMI_RULE, BMI_RULE);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_misspelt_group_is_refused_with_file_line_item_and_help() {
    let (errors, path, _tmp) = errors_after(
        "ecmo.yaml",
        "    group: relative_contraindication\n    reason: \"relative_ci:bmi_gt_45\"",
        "    group: relative_contraindications\n    reason: \"relative_ci:bmi_gt_45\"",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(
        e.line,
        Some(line_of(&path, "group: relative_contraindications"))
    );
    assert!(e.pointer.ends_with("/group"), "{e:#?}");
    assert!(
        e.message
            .contains("group \"relative_contraindications\" is written but never read"),
        "{e:#?}"
    );
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.starts_with("did you mean \"relative_contraindication\"?")),
        "{e:#?}"
    );
    let shown = e.to_string();
    let first = format!(
        "{}:{}: item relative_ci_bmi: group \"relative_contraindications\"",
        path.display(),
        e.line.unwrap()
    );
    assert!(shown.starts_with(&first), "{shown}");
    assert!(
        shown.contains("\n  help: did you mean \"relative_contraindication\"?"),
        "{shown}"
    );
}

#[test]
fn an_untagged_decision_item_is_refused_with_file_line_item_and_help() {
    let (errors, path, _tmp) = errors_after(
        "ecmo.yaml",
        "    evidence: M  # EOLIA exclusion list (§2.1) from memory\n    group: relative_contraindication\n    reason: \"relative_ci:bmi_gt_45\"",
        "    group: relative_contraindication\n    reason: \"relative_ci:bmi_gt_45\"",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, Some(line_of(&path, BMI_RULE.trim_end())));
    assert_eq!(
        e.message,
        "rule relative_ci_bmi feeds ecmo_category but has no `evidence` tag"
    );
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.starts_with("write `evidence: V` (verified), `M` (from memory)")),
        "{e:#?}"
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

#[test]
fn an_untagged_recommendation_is_refused() {
    let (errors, path, _tmp) = errors_after(
        "recommendations.yaml",
        "    cites: \"§4.4, §3.4\"\n    evidence: H\n",
        "    cites: \"§4.4, §3.4\"\n",
    );
    let e = the_error(&errors, "recommend_reduce_tidal_volume");
    assert_eq!(
        e.line,
        Some(line_of(&path, "- id: recommend_reduce_tidal_volume"))
    );
    assert!(e.message.contains("emits a recommendation"), "{e:#?}");
}

#[test]
fn an_item_without_cites_is_refused_with_file_line_item_and_help() {
    let (errors, path, _tmp) = errors_after(
        "ecmo.yaml",
        "  - id: relative_ci_bmi\n    cites: \"§2.7, §2.1\"\n",
        "  - id: relative_ci_bmi\n",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, Some(line_of(&path, BMI_RULE.trim_end())));
    assert!(
        e.message.contains("\"cites\" is a required property"),
        "{e:#?}"
    );
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("write `cites: \"§2.7\"`")),
        "{e:#?}"
    );
}

#[test]
fn a_literal_threshold_gets_the_parameter_of_that_value_as_help() {
    let (errors, path, _tmp) = errors_after(
        "ecmo.yaml",
        "when: {fact: bmi, gt: {param: bmi_relative_ci}}",
        "when: {fact: bmi, gt: 45}",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.line, Some(line_of(&path, "when: {fact: bmi, gt: 45}")));
    assert_eq!(
        e.help.as_deref(),
        Some("thresholds are parameters: write `{param: bmi_relative_ci}`")
    );
}

#[test]
fn an_unknown_fact_and_parameter_get_a_did_you_mean_help() {
    let (errors, path, _tmp) = errors_after(
        "ecmo.yaml",
        "when: {fact: bmi, gt: {param: bmi_relative_ci}}",
        "when: {fact: bmi_kg, gt: {param: bmi_relative_cl}}",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.line, Some(line_of(&path, "fact: bmi_kg")));
    assert_eq!(e.message, "unknown fact \"bmi_kg\"");
    assert_eq!(e.help.as_deref(), Some("did you mean \"bmi\"?"));

    let (errors, _, _tmp) = errors_after(
        "ecmo.yaml",
        "when: {fact: bmi, gt: {param: bmi_relative_ci}}",
        "when: {fact: bmi, gt: {param: bmi_relative_cl}}",
    );
    let e = the_error(&errors, "relative_ci_bmi");
    assert_eq!(e.message, "unknown parameter \"bmi_relative_cl\"");
    assert_eq!(e.help.as_deref(), Some("did you mean \"bmi_relative_ci\"?"));
}

/// Rule set 0.1.0 is format 1 (no `evidence:` anywhere) and loads as it always did; its content
/// hash pins it byte for byte (canonically), since a version folder is never edited.
#[test]
fn rule_set_0_1_0_is_unchanged_and_still_loads() {
    let dir = repo_root().join("rules/lrt-ruleset/0.1.0");
    let rs = RuleSet::load(&dir).unwrap();
    assert_eq!(rs.manifest.format(), 1);
    assert!(rs.nodes.iter().all(|n| n.evidence.is_none()));
    assert_eq!(
        rs.sha256, "32aa15436764b47e4304b31d4be92b27a9d7e382f97d1c6233b56db23a39b5cd",
        "rule set 0.1.0 changed"
    );
}

/// The 0.2.0 rule set tags every decision item; the check that requires it is on.
#[test]
fn rule_set_0_2_0_is_format_2_and_tags_its_decision_items() {
    let rs = RuleSet::load(&repo_root().join("rules/lrt-ruleset/0.2.0")).unwrap();
    assert_eq!(rs.manifest.format(), 2);
    let ecmo = rs.nodes.iter().find(|n| &*n.id == "ecmo_category").unwrap();
    assert_eq!(ecmo.evidence, Some(lrt_engine::ruleset::Evidence::H));
    let bmi = rs
        .nodes
        .iter()
        .find(|n| &*n.id == "relative_ci_bmi")
        .unwrap();
    assert_eq!(bmi.evidence, Some(lrt_engine::ruleset::Evidence::M));
}
