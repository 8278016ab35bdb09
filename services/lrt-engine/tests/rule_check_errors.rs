//! `lrt rules check` semantics: a broken copy of the shipped rule set is rejected with the
//! file, the JSON pointer inside it and the reason.

use std::path::Path;

use lrt_engine::RuleSet;
use lrt_engine::testing::{copy_shipped_version, edit_file};

/// Copies the rule set to a scratch folder, replaces `from` by `to` in `file` (which must
/// contain it), loads it and returns every error as `file: pointer: message`.
fn errors_after(file: &str, from: &str, to: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    edit_file(&dir.join(file), from, to);
    match RuleSet::load(&dir) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors
            .iter()
            .map(|e| {
                let name = Path::new(&e.file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match &e.help {
                    Some(help) => format!("{name}: {}: {} help: {help}", e.pointer, e.message),
                    None => format!("{name}: {}: {}", e.pointer, e.message),
                }
            })
            .collect(),
    }
}

fn assert_one(errors: &[String], expected_start: &str, contains: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(expected_start) && e.contains(contains)),
        "no error starting {expected_start:?} containing {contains:?} in {errors:#?}"
    );
}

#[test]
fn the_unmodified_copy_loads() {
    assert_eq!(
        errors_after("parameters.yaml", "abg_validity_h", "abg_validity_h"),
        Vec::<String>::new()
    );
}

#[test]
fn wrong_type_is_named_by_file_and_pointer() {
    let e = errors_after(
        "parameters.yaml",
        "abg_validity_h: {value: 6,",
        "abg_validity_h: {value: six,",
    );
    assert_one(
        &e,
        "parameters.yaml: /parameters/abg_validity_h/value: ",
        "number",
    );
}

#[test]
fn unknown_fact_is_named_with_a_suggestion() {
    let e = errors_after(
        "ecmo.yaml",
        "when: {fact: age_years, ge:",
        "when: {fact: age_yeras, ge:",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "unknown fact \"age_yeras\" help: did you mean \"age_years\"?",
    );
}

#[test]
fn missing_citation_is_rejected() {
    let e = errors_after(
        "ecmo.yaml",
        "  - id: relative_ci_age\n    cites: \"§2.7, §2.3\"\n",
        "  - id: relative_ci_age\n",
    );
    assert_one(&e, "ecmo.yaml: /rules/", "\"cites\" is a required property");
}

#[test]
fn citation_of_an_unknown_section_is_rejected() {
    let e = errors_after(
        "ecmo.yaml",
        "  - id: relative_ci_age\n    cites: \"§2.7, §2.3\"",
        "  - id: relative_ci_age\n    cites: \"§9.9\"",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "cites §9.9, which knowledge base lrt-ruleset-0.1-draft does not have",
    );
    let e = errors_after(
        "ecmo.yaml",
        "  - id: relative_ci_age\n    cites: \"§2.7, §2.3\"",
        "  - id: relative_ci_age\n    cites: \"ELSO\"",
    );
    assert_one(&e, "ecmo.yaml: /rules/", "does not match");
}

#[test]
fn misspelt_key_is_rejected() {
    let e = errors_after(
        "recommendations.yaml",
        "    when: {fact: ecmo_category, eq: eligible}",
        "    whne: {fact: ecmo_category, eq: eligible}",
    );
    assert_one(&e, "recommendations.yaml: /rules/1: ", "whne");
}

#[test]
fn parameter_unit_must_match_the_fact() {
    let e = errors_after(
        "parameters.yaml",
        "eolia_c2_pf_max: {value: 80, unit: \"mm[Hg]\"",
        "eolia_c2_pf_max: {value: 10.7, unit: kPa",
    );
    assert_one(
        &e,
        "ecmo.yaml: /series/1/qualifies/all/0/lt/param: ",
        "is in kPa but fact \"abg.pf_ratio\" is in mm[Hg]",
    );
}

#[test]
fn unknown_parameter_and_group_and_catalogue_code_are_rejected() {
    let e = errors_after(
        "ecmo.yaml",
        "gt: {param: mv_relative_ci_h}",
        "gt: {param: mv_relative_ci_days}",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "unknown parameter \"mv_relative_ci_days\"",
    );
    let e = errors_after(
        "ecmo.yaml",
        "when: {group_fired: hard_stop}",
        "when: {group_fired: hard_stops}",
    );
    assert_one(
        &e,
        "ecmo.yaml: /classifications/0/cases/0/when/group_fired: ",
        "unknown group \"hard_stops\"",
    );
    let e = errors_after(
        "recommendations.yaml",
        "emits: {recommendation: PRONE_POSITIONING, urgency: urgent}",
        "emits: {recommendation: PRONE_POSITION, urgency: urgent}",
    );
    assert_one(
        &e,
        "recommendations.yaml: /rules/",
        "PRONE_POSITION is not in the `recommendations` catalogue help: did you mean \"PRONE_POSITIONING\"?",
    );
}

#[test]
fn numeric_comparisons_need_parameters() {
    let e = errors_after(
        "ecmo.yaml",
        "when: {fact: age_years, ge: {param: age_relative_ci}}",
        "when: {fact: age_years, ge: 65}",
    );
    assert_one(&e, "ecmo.yaml: /rules/", "");
    assert!(e.iter().any(|m| m.contains("/when/ge")), "{e:#?}");
}

#[test]
fn operators_must_fit_the_fact() {
    let e = errors_after(
        "ecmo.yaml",
        "when: {fact: immunocompromised, is: true}",
        "when: {fact: immunocompromised, in: [yes]}",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "operator `in` with [\"yes\"] does not apply to fact \"immunocompromised\" (boolean)",
    );
    let e = errors_after(
        "ecmo.yaml",
        "when: {fact: resp_class, in: [IV, V]}",
        "when: {fact: resp_class, in: [IV, VI]}",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "\"VI\" is not a value of \"resp_class\"",
    );
}

#[test]
fn dependency_cycles_are_rejected() {
    let e = errors_after(
        "scores.yaml",
        "when: {fact: acp_risk, ge: {param: acp_high_risk_min}}",
        "when: {fact: mechanism_rv_risk, is: true}",
    );
    assert_one(&e, "", "depend on each other in a cycle");
}

#[test]
fn duplicate_ids_and_codes_are_rejected() {
    let e = errors_after(
        "ecmo.yaml",
        "  - id: relative_ci_mv_duration",
        "  - id: relative_ci_age",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "id relative_ci_age is already used",
    );
    let e = errors_after("concepts.yaml", "code: \"9279-1\"", "code: \"2703-7\"");
    assert_one(
        &e,
        "concepts.yaml: /concepts/respiratory_rate/codes/",
        "http://loinc.org 2703-7 already means pao2",
    );
}

#[test]
fn concept_units_and_validity_are_checked() {
    let e = errors_after(
        "concepts.yaml",
        "  pao2:\n    unit: \"mm[Hg]\"",
        "  pao2:\n    unit: kPa",
    );
    assert_one(
        &e,
        "concepts.yaml: /concepts/pao2/unit: ",
        "the engine normalises pao2 to \"mm[Hg]\"",
    );
    let e = errors_after(
        "concepts.yaml",
        "validity: abg_validity_h",
        "validity: abg_validity",
    );
    assert_one(
        &e,
        "concepts.yaml: /concepts/",
        "unknown parameter \"abg_validity\"",
    );
}

#[test]
fn score_bands_must_cover_every_value() {
    let e = errors_after(
        "scores.yaml",
        ", {otherwise: true, points: 4}]\n      - id: pf",
        "]\n      - id: pf",
    );
    assert_one(
        &e,
        "scores.yaml: /scores/0/items/0/bands: ",
        "bands do not cover every value",
    );
}

#[test]
fn outputs_the_assessment_needs_must_exist() {
    let e = errors_after(
        "oxygenation.yaml",
        "  - id: berlin_category",
        "  - id: berlin_class",
    );
    assert_one(
        &e,
        "",
        "the engine maps classification `berlin_category` onto the assessment field `berlin_category`",
    );
}

#[test]
fn the_version_must_match_its_folder() {
    let e = errors_after("ruleset.yaml", "version: 0.1.0", "version: 0.2.0");
    assert_one(
        &e,
        "ruleset.yaml: /ruleset/version: ",
        "must equal the folder name",
    );
}

#[test]
fn invalid_yaml_is_reported_with_its_file() {
    let e = errors_after("mechanisms.yaml", "rules:\n", "rules: [\n");
    assert_one(&e, "mechanisms.yaml: : not valid YAML", "");
}

#[test]
fn code_sets_are_checked() {
    let e = errors_after(
        "codesets.yaml",
        "  cardiac_arrest_before:\n",
        "  cardiac_arrest:\n",
    );
    assert_one(
        &e,
        "codesets.yaml: /codesets/cardiac_arrest: ",
        "unknown code-set target \"cardiac_arrest\" (did you mean \"cardiac_arrest_before\"?)",
    );
    let e = errors_after(
        "codesets.yaml",
        "  nmb_before:\n    cites: \"§2.5, §5.2\"\n    from: medications",
        "  nmb_before:\n    cites: \"§2.5, §5.2\"\n    from: conditions",
    );
    assert_one(
        &e,
        "codesets.yaml: /codesets/nmb_before/from: ",
        "nmb_before is read from medications, not conditions",
    );
    let e = errors_after(
        "codesets.yaml",
        "  hard_stop.irreversible_cns_injury:",
        "  hard_stop.irreversible_brain_injury:",
    );
    assert_one(
        &e,
        "codesets.yaml: /codesets/hard_stop.irreversible_brain_injury: ",
        "is not in the `hard_stops` catalogue",
    );
    let e = errors_after("codesets.yaml", "code: \"2705-2\"", "code: \"2703-7\"");
    assert_one(
        &e,
        "codesets.yaml: /unmapped_codes/6: ",
        "is listed as unmapped but a concept maps it",
    );
}

#[test]
fn supersedes_names_another_concept() {
    let e = errors_after("concepts.yaml", "supersedes: [sao2]", "supersedes: [sa02]");
    assert_one(
        &e,
        "concepts.yaml: /concepts/spo2/supersedes/0: ",
        "\"sa02\" is not another concept",
    );
}

/// Issue 12: a misspelt `group:` made its rule silently do nothing (the contraindication never
/// counted) and every check and test still passed.
#[test]
fn a_group_that_is_written_but_never_read_is_refused_with_a_suggestion() {
    let e = errors_after(
        "ecmo.yaml",
        "    group: relative_contraindication\n    reason: \"relative_ci:bmi_gt_45\"",
        "    group: relative_contraindications\n    reason: \"relative_ci:bmi_gt_45\"",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "group \"relative_contraindications\" is written but never read",
    );
    assert_one(
        &e,
        "ecmo.yaml: /rules/",
        "help: did you mean \"relative_contraindication\"?",
    );
    assert!(
        e.iter()
            .all(|m| m.contains("/group: ") && m.contains("help:")),
        "{e:#?}"
    );
}
