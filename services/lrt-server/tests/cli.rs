//! The `lrt` binary as a user runs it: JSON on stdout, messages on stderr, exit codes
//! 0 = ok, 1 = evaluation/tests failed, 2 = bad input naming the file and the field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lrt_engine::casefile::{CaseFile, compare, compare_under};
use lrt_engine::testing::{
    copy_shipped_version, copy_version, edit_file, repo_root as repo, shared_dir as shared,
};

fn lrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lrt"))
        .args(args)
        .current_dir(repo())
        .env_remove("LRT_RULES_DIR")
        .output()
        .expect("lrt runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A one-case file from the first worked example, with `edit` applied to the case.
fn case_file(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let examples: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("rules/lrt-ruleset/0.1.0/tests/worked-examples.json"))
            .unwrap(),
    )
    .unwrap();
    let mut case = examples["cases"][0].clone();
    edit(&mut case);
    let path = dir.join("case.json");
    std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap()).unwrap();
    path
}

#[test]
fn every_worked_example_evaluates_to_its_expected_fields() {
    // examples.json is the oracle of 0.1.0 (0.2.0's is examples-0.2.0.json, below).
    let path = shared().join("clinical/examples.json");
    let file = CaseFile::read(&path).unwrap();
    for case in &file.cases {
        let out = lrt(&[
            "evaluate",
            "--case",
            path.to_str().unwrap(),
            "--id",
            &case.id,
            "--ruleset",
            "rules/lrt-ruleset/0.1.0",
        ]);
        assert!(out.status.success(), "{}: {}", case.id, stderr(&out));
        let assessment: lrt_engine::Assessment = serde_json::from_slice(&out.stdout).unwrap();
        let mismatches = compare(case.expected.as_ref().unwrap(), &assessment);
        assert!(mismatches.is_empty(), "{}: {mismatches:#?}", case.id);
    }
}

/// The clinical lead's 11 worked cases for rule set 0.2.0 (knowledge base §9) through the binary,
/// compared under the file's own conventions (reasons and warnings by pattern, recommendations
/// as a set with optional codes).
#[test]
fn every_0_2_0_worked_example_evaluates_to_its_expected_fields() {
    let path = shared().join("clinical/examples-0.2.0.json");
    let file = CaseFile::read(&path).unwrap();
    assert_eq!(file.cases.len(), 11);
    for case in &file.cases {
        let out = lrt(&[
            "evaluate",
            "--case",
            path.to_str().unwrap(),
            "--id",
            &case.id,
            "--ruleset",
            "rules/lrt-ruleset/0.2.0",
        ]);
        assert!(out.status.success(), "{}: {}", case.id, stderr(&out));
        let assessment: lrt_engine::Assessment = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: the assessment does not read back: {e}", case.id));
        assert_eq!(&*assessment.ruleset.version, "0.2.0");
        let mismatches = compare_under(
            case.expected.as_ref().unwrap(),
            &assessment,
            file.conventions.as_ref(),
        );
        assert!(mismatches.is_empty(), "{}: {mismatches:#?}", case.id);
    }
}

#[test]
fn a_file_of_cases_prints_one_assessment_per_case() {
    let path = shared().join("clinical/examples.json");
    let out = lrt(&["evaluate", "--compact", "--case", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[1]["case_id"], "V03");
    assert_eq!(all[1]["ecmo_category"], "eligible");
}

#[test]
fn now_can_be_overridden() {
    let path = shared().join("clinical/examples.json");
    // Seven hours later the blood gases are stale: no P/F, insufficient data.
    let out = lrt(&[
        "evaluate",
        "--case",
        path.to_str().unwrap(),
        "--id",
        "V01",
        "--now",
        "2025-03-01T19:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["ecmo_category"], "insufficient_data");
    assert_eq!(a["pf_ratio"], serde_json::Value::Null);
    assert!(
        a["data_quality"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "stale:pao2")
    );
}

#[test]
fn an_unreadable_file_exits_2_naming_it() {
    let out = lrt(&["evaluate", "--case", "/nonexistent/case.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/case.json: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_json_error_exits_2_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{\"id\": \"x\",\n \"now\": }").unwrap();
    let out = lrt(&["evaluate", "--case", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: not valid JSON", path.display())) && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn an_unknown_unit_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(dir.path(), |c| c["observations"][0]["unit"] = "mmHg".into());
    let out = lrt(&["evaluate", "--case", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: observations[0].unit", path.display())),
        "{err}"
    );
    assert!(err.contains("unknown unit mmHg for pao2"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn fio2_of_150_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(dir.path(), |c| c["observations"][1]["value"] = 150.into());
    let out = lrt(&["evaluate", "--case", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: observations[1].value", path.display())),
        "{err}"
    );
    assert!(err.contains("FiO2 150 % is neither a fraction"), "{err}");
}

#[test]
fn a_wrongly_typed_field_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = case_file(dir.path(), |c| c["context"]["intubated"] = "yes".into());
    let out = lrt(&["evaluate", "--case", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("context.intubated"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_case_id_exits_2() {
    let path = shared().join("clinical/examples.json");
    let out = lrt(&["evaluate", "--case", path.to_str().unwrap(), "--id", "V99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no case with id \"V99\""));
}

#[test]
fn rules_check_accepts_the_shipped_rules() {
    let out = lrt(&["rules", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["rulesets"][0]["version"], "0.1.0");
}

#[test]
fn rules_check_rejects_a_broken_file_naming_file_pointer_and_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    let f = dir.join("ecmo.yaml");
    let p = dir.join("parameters.yaml");
    let cited = "  - id: relative_ci_immunocompromised\n    cites: \"§2.7, §2.3\"\n";
    let uncited = "  - id: relative_ci_immunocompromised\n";
    edit_file(&f, "when: {fact: bmi, gt:", "when: {fact: bmi_kg, gt:");
    edit_file(&f, cited, uncited);
    edit_file(
        &p,
        "vent_validity_h: {value: 4,",
        "vent_validity_h: {value: \"4\",",
    );

    let out = lrt(&["rules", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let ecmo = f.display().to_string();
    let line_of = |needle: &str| {
        1 + std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {ecmo}"))
    };
    let uncited_line = line_of("- id: relative_ci_immunocompromised");
    assert!(
        err.contains(&format!(
            "{ecmo}:{uncited_line}: item relative_ci_immunocompromised: \"cites\" is a required property\n  help: every item cites"
        )),
        "{err}"
    );
    let wrong_type = format!(
        "{}:{}: item vent_validity_h: \"4\" is not of type \"number\"",
        p.display(),
        1 + std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .position(|l| l.contains("vent_validity_h:"))
            .unwrap()
    );
    assert!(err.contains(&wrong_type), "{err}");

    // Schema errors stop a file before its semantics are checked; fix them and the unknown fact shows.
    edit_file(
        &p,
        "vent_validity_h: {value: \"4\",",
        "vent_validity_h: {value: 4,",
    );
    edit_file(&f, uncited, cited);
    let out = lrt(&["rules", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let bmi_line = line_of("when: {fact: bmi_kg, gt:");
    assert!(
        err.contains(&format!(
            "{ecmo}:{bmi_line}: item relative_ci_bmi: unknown fact \"bmi_kg\"\n  help: did you mean \"bmi\"?"
        )),
        "{err}"
    );
}

/// Rule set 0.2.0 is format 2: a decision item without `evidence` is refused, and the CLI prints
/// `file:line: item <id>: message` with the help on the next line.
#[test]
fn rules_check_prints_file_line_item_and_help_for_an_untagged_decision_item() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_version(tmp.path(), "0.2.0");
    let f = dir.join("ecmo.yaml");
    edit_file(
        &f,
        "  - id: relative_ci_age\n    cites: \"§2.7, §2.3, §9 D4\"\n    evidence: M  # ELSO 2021 (§2.3) from memory\n",
        "  - id: relative_ci_age\n    cites: \"§2.7, §2.3, §9 D4\"\n",
    );
    let line = 1 + std::fs::read_to_string(&f)
        .unwrap()
        .lines()
        .position(|l| l == "  - id: relative_ci_age")
        .unwrap();

    let out = lrt(&["rules", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let expected = format!(
        "{}:{line}: item relative_ci_age: rule relative_ci_age feeds ecmo_category but has no `evidence` tag\n  help: write `evidence: V`",
        f.display()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn rules_test_passes_and_prints_the_summary() {
    let out = lrt(&["rules", "test"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = v["summary"].as_str().unwrap();
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    assert!(err.lines().any(|l| l == summary), "{err}");
    assert_eq!(v["reports"][0]["uncovered"], serde_json::json!([]));
}

#[test]
fn rules_test_exits_1_when_a_case_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    let mut examples: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("rules/lrt-ruleset/0.1.0/tests/worked-examples.json"))
            .unwrap(),
    )
    .unwrap();
    examples["cases"][1]["expected"]["ecmo_category"] = "not_indicated".into();
    std::fs::write(dir.join("tests/cases.json"), examples.to_string()).unwrap();
    let out = lrt(&["rules", "test", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("FAIL")
            && err.contains("V03")
            && err.contains("ecmo_category: expected \"not_indicated\", got \"eligible\""),
        "{err}"
    );
    assert!(err.contains("6 passed, 1 failed"), "{err}");
}

/// The MIMIC-IV demo transaction Bundle of one patient, written to `dir`.
fn mimic_bundle(dir: &Path, patient: &str) -> PathBuf {
    let all = std::fs::read_to_string(
        shared().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson"),
    )
    .unwrap();
    let line = all
        .lines()
        .find(|l| l.contains(&format!(r#""id":"{patient}""#)))
        .expect("the patient's transaction");
    let path = dir.join(format!("{patient}.json"));
    std::fs::write(&path, line).unwrap();
    path
}

#[test]
fn a_bundle_is_evaluated_for_its_patient_at_the_newest_observation_or_now() {
    let dir = tempfile::tempdir().unwrap();
    // mimic-10037975: its newest PaO2 has an FiO2 within the hour before it (P/F 61 in the CSV).
    let path = mimic_bundle(dir.path(), "mimic-10037975");
    let expected: std::collections::HashMap<String, (String, f64)> = std::fs::read_to_string(
        shared().join("data/mimic-iv-demo-fhir/mimic-iv-demo-lrt-pf-expected.csv"),
    )
    .unwrap()
    .lines()
    .skip(1)
    .map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f[0].to_string(), (f[1].to_string(), f[4].parse().unwrap()))
    })
    .collect();
    let (at, pf) = &expected["mimic-10037975"];
    let out = lrt(&[
        "evaluate",
        "--bundle",
        path.to_str().unwrap(),
        "--patient",
        "mimic-10037975",
        "--now",
        at,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["pf_ratio"].as_f64(), Some(*pf));
    assert_eq!(a["evaluated_at"].as_str(), Some(at.as_str()));

    // Without --now: the newest observation of the patient, which is at or after the PaO2.
    let out = lrt(&[
        "evaluate",
        "--bundle",
        path.to_str().unwrap(),
        "--patient",
        "mimic-10037975",
        "--snapshot",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let now = s["now"].as_str().unwrap();
    let newest = s["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["effective"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(now).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&newest).unwrap()
    );
    assert_eq!(s["patient"]["sex"], "male");
}

#[test]
fn bundle_errors_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = mimic_bundle(dir.path(), "mimic-10037975");
    let out = lrt(&[
        "evaluate",
        "--bundle",
        path.to_str().unwrap(),
        "--patient",
        "nobody",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("mimic-10037975.json") && err.contains("nobody"),
        "{err}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"resourceType": "Bundle", "entry": [ }"#).unwrap();
    let out = lrt(&[
        "evaluate",
        "--bundle",
        bad.to_str().unwrap(),
        "--patient",
        "p1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));

    let outcome = dir.path().join("outcome.json");
    std::fs::write(
        &outcome,
        r#"{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no access"}]}"#,
    )
    .unwrap();
    let out = lrt(&[
        "evaluate",
        "--bundle",
        outcome.to_str().unwrap(),
        "--patient",
        "p1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("OperationOutcome"),
        "{}",
        stderr(&out)
    );
}

/// `LRT_*` variables override the configuration file, top-level and nested keys alike (the
/// variables are upper case, the keys lower case).
#[test]
fn environment_variables_override_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lrt.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ninsecure_no_auth = true\ndatabase_url = \"postgres://x@127.0.0.1:1/x\"\n",
    )
    .unwrap();
    let serve = |vars: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lrt"));
        c.args(["serve", "--config"]).arg(&config);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = serve(&[("LRT_LIMITS__BODY_BYTES", "0")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("limits must be positive"),
        "{}",
        stderr(&o)
    );
    let o = serve(&[("LRT_LISTEN", "0.0.0.0:0")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("insecure_no_auth is only allowed on a loopback"),
        "{}",
        stderr(&o)
    );
    let o = serve(&[("LRT_PAGING__WEBHOOK__URL", "ftp://pager")]);
    assert!(stderr(&o).contains("paging"), "{}", stderr(&o));
}

/// `lrt rules diff`: the clinical lead's 0.2.0 worked cases under 0.1.0 and 0.2.0. A 16-year-old,
/// a patient on NIV and one on ECMO were `eligible` with an ECMO page under 0.1.0; under 0.2.0
/// they are out of scope, without an ECMO consult or page.
#[test]
fn rules_diff_shows_what_a_new_version_changes_on_the_same_cases() {
    let path = shared().join("clinical/examples-0.2.0.json");
    let out = lrt(&[
        "rules",
        "diff",
        "0.1.0",
        "0.2.0",
        "--cases",
        path.to_str().unwrap(),
        "--json",
        "--compact",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["inputs"], 11);
    let out_of_scope = v["summary"]["category_transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["from"] == "eligible" && t["to"] == "out_of_scope")
        .expect("a transition eligible -> out_of_scope");
    assert_eq!(out_of_scope["count"], 3);
    for id in ["N01", "N02", "N07"] {
        let change = v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["input"].as_str().unwrap().ends_with(&format!("#{id}")))
            .unwrap_or_else(|| panic!("{id} changed"));
        assert_eq!(change["category"][1], "out_of_scope", "{id}");
        let removed = change["consult_triggers"]["removed"].as_array().unwrap();
        assert!(
            removed.iter().any(|t| t == "ECMO_ELIGIBLE"),
            "{id}: {change}"
        );
    }
    // The text form ends with the summary tables.
    let out = lrt(&[
        "rules",
        "diff",
        "0.1.0",
        "0.2.0",
        "--cases",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // Every worked case changes at least its card (0.2.0 renders its own texts, §9 D12).
    assert!(text.contains("11 inputs, 11 changed"), "{text}");
    assert!(
        text.contains("-> \"Call the ECMO centre now: EOLIA C2"),
        "{text}"
    );
    assert!(text.contains("| eligible | out_of_scope | 3 |"), "{text}");
    // An unknown version is a bad input (exit 2) naming it.
    let out = lrt(&[
        "rules",
        "diff",
        "0.1.0",
        "9.9.9",
        "--cases",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("9.9.9"), "{}", stderr(&out));
}

/// §9 D12 through the binary: a reason a rule gives without a reasons-catalogue entry is refused
/// by `lrt rules check`, at the rule's file and line, with the item and a help line.
#[test]
fn rules_check_refuses_a_reason_without_a_catalogue_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_version(tmp.path(), "0.2.0");
    let f = dir.join("ecmo.yaml");
    edit_file(
        &f,
        "    reason: \"relative_ci:goals_of_care\"\n",
        "    reason: \"relative_ci:goals_of_care_documented\"\n",
    );
    let line = 1 + std::fs::read_to_string(&f)
        .unwrap()
        .lines()
        .position(|l| l == "  - id: relative_ci_goals_of_care")
        .unwrap();
    let out = lrt(&["rules", "check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "ecmo.yaml:{line}: item relative_ci_goals_of_care: reason `relative_ci:goals_of_care_documented` has no entry in the reasons catalogue"
        )),
        "{err}"
    );
    assert!(err.contains("help: add `\"relative_ci:goals_of_care_documented\": {short: ..., text: ...}` under `reason_texts`"), "{err}");
    // The entry that no rule gives any more is named too.
    assert!(
        err.contains("item relative_ci:goals_of_care: no rule gives this reason"),
        "{err}"
    );
}
