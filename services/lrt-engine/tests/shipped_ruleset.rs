//! The shipped rule set (`rules/lrt-ruleset/0.1.0`, which encodes knowledge base
//! `lrt-ruleset-0.1-draft`) against that knowledge base: it loads, its own cases pass and exercise
//! every item, its parameters equal the knowledge base's `conventions.config`, and the worked
//! examples of `shared/clinical/examples.json` give their expected §6.2 fields. A site's own
//! version is checked by `lrt rules check` / `lrt rules test`, not held to these conventions.

use lrt_engine::RuleSet;
use lrt_engine::casefile::{CaseFile, compare};
use lrt_engine::ruleset::index::RulesRoot;
use lrt_engine::testing::{repo_root as repo, shared_dir as shared, shipped_version_dir};

fn shipped() -> RuleSet {
    RuleSet::load(&shipped_version_dir())
        .unwrap_or_else(|e| panic!("the shipped rule set loads:\n{e}"))
}

#[test]
fn every_listed_version_loads_and_the_index_is_consistent() {
    let root = RulesRoot::open(&repo().join("rules")).unwrap();
    let (loaded, errors) = root.check_all();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(loaded.len(), root.index.versions.len());
}

#[test]
fn the_rule_sets_own_cases_pass_and_cover_every_item() {
    let rules = shipped();
    let report = lrt_engine::rules_test::run(&rules);
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    let failures: Vec<_> = report.results.iter().filter(|r| !r.passed()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        report.results.len() > 300,
        "only {} cases",
        report.results.len()
    );
    assert!(
        report.uncovered.is_empty(),
        "items without a test: {:#?}",
        report.uncovered
    );
}

#[test]
fn parameters_equal_the_knowledge_base_conventions() {
    let rules = shipped();
    let file = CaseFile::read(&shared().join("clinical/examples.json")).unwrap();
    let config = file
        .conventions
        .as_ref()
        .and_then(|c| c.get("config"))
        .and_then(|c| c.as_object())
        .unwrap();
    assert!(!config.is_empty());
    for (name, value) in config {
        let param = rules
            .param(name)
            .unwrap_or_else(|| panic!("the rule set has no parameter {name}"));
        assert_eq!(Some(param.value), value.as_f64(), "{name}");
    }
}

#[test]
fn worked_examples_from_the_knowledge_base_pass() {
    let rules = shipped();
    let file = CaseFile::read(&shared().join("clinical/examples.json")).unwrap();
    assert!(!file.cases.is_empty());
    for case in &file.cases {
        assert!(
            case.snapshot.validate(&rules, case.now).is_empty(),
            "{}",
            case.id
        );
        let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
        let mismatches = compare(case.expected.as_ref().expect("expected"), &a);
        assert!(mismatches.is_empty(), "{}: {mismatches:#?}", case.id);
        for code in case.expected.as_ref().unwrap()["recommendations_must_not_include"]
            .as_array()
            .unwrap()
        {
            assert!(
                !a.recommendations
                    .iter()
                    .any(|r| **r == *code.as_str().unwrap()),
                "{}: {code}",
                case.id
            );
        }
    }
}

#[test]
fn evaluation_is_deterministic_and_explains_every_conclusion() {
    let rules = shipped();
    let file = CaseFile::read(&shared().join("clinical/examples.json")).unwrap();
    for case in &file.cases {
        let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
        let b = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        // The stored form reads back identically (assessments are persisted and replayed).
        let back: lrt_engine::Assessment =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let subjects: Vec<&str> = a.explanations.iter().map(|e| &*e.subject).collect();
        assert!(subjects.contains(&"ecmo_category"), "{}", case.id);
        for r in &a.recommendations {
            assert!(
                subjects.contains(&format!("recommendation:{r}").as_str()),
                "{}: {r} unexplained",
                case.id
            );
        }
        for m in &a.mechanisms {
            assert!(
                subjects.contains(&format!("mechanism:{m}").as_str()),
                "{}: {m} unexplained",
                case.id
            );
        }
        assert_eq!(&*a.ruleset.sha256, rules.sha256.as_str());
        assert!(!a.evidence["pf_ratio"].is_empty(), "{}", case.id);
    }
}

#[test]
fn an_unknown_hard_stop_is_rejected_as_input_and_reported_when_evaluated() {
    let rules = shipped();
    let file = CaseFile::read(&shared().join("clinical/examples.json")).unwrap();
    let mut case = file.cases[0].clone();
    case.snapshot.context.hard_stops =
        vec!["dnr_typo".into(), "refusal_or_limitation_of_care".into()];
    let issues = case.snapshot.validate(&rules, case.now);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "context.hard_stops[0]");
    let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
    assert!(
        a.data_quality
            .iter()
            .any(|d| d == "unknown_hard_stop:dnr_typo"),
        "{:?}",
        a.data_quality
    );
    assert_eq!(a.ecmo_category.as_deref(), Some("ineligible"));
    assert_eq!(a.ecmo_reasons.len(), 1);
}

#[test]
fn unusable_observations_are_reported_and_never_used() {
    let rules = shipped();
    let file = CaseFile::read(&shared().join("clinical/examples.json")).unwrap();
    // V03: the latest PaO2 (58 mmHg) is o35.
    let mut case = file.cases.iter().find(|c| c.id == "V03").unwrap().clone();
    let o35 = case
        .snapshot
        .observations
        .iter_mut()
        .find(|o| o.id == "o35")
        .unwrap();
    o35.unit = Some("mmHg".into());
    let issues = case.snapshot.validate(&rules, case.now);
    assert_eq!(issues.len(), 1, "{issues:?}");
    let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
    assert!(
        a.data_quality.iter().any(|d| d == "unknown_unit:pao2/o35"),
        "{:?}",
        a.data_quality
    );
    // The unusable latest PaO2 is left out: the previous blood gas (08:30) is now the latest.
    assert_eq!(
        a.pf_ratio_precise.map(|v| (v * 1e6).round() / 1e6),
        Some((62.0f64 / 0.9 * 1e6).round() / 1e6)
    );
    assert!(!a.evidence["pao2"].iter().any(|id| &**id == "o35"));

    let mut case = file.cases.iter().find(|c| c.id == "V03").unwrap().clone();
    let fio2 = case
        .snapshot
        .observations
        .iter_mut()
        .find(|o| o.id == "o36")
        .unwrap();
    fio2.value = lrt_engine::snapshot::ObservationValue::Number(150.0);
    let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
    assert!(
        a.data_quality.iter().any(|d| d == "implausible:fio2/o36"),
        "{:?}",
        a.data_quality
    );
    assert!(
        a.data_quality
            .iter()
            .any(|d| d == "missing_or_unpaired:fio2"),
        "{:?}",
        a.data_quality
    );
    assert_eq!(a.pf_ratio, None);
    assert_eq!(a.ecmo_category.as_deref(), Some("insufficient_data"));
    assert_eq!(
        a.ecmo_reasons.iter().map(|r| &**r).collect::<Vec<_>>(),
        ["missing_or_unpaired:fio2"]
    );

    let mut case = file.cases.iter().find(|c| c.id == "V01").unwrap().clone();
    let pao2 = case
        .snapshot
        .observations
        .iter_mut()
        .find(|o| o.id == "o1")
        .unwrap();
    pao2.value = lrt_engine::snapshot::ObservationValue::Boolean(true);
    let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
    assert!(
        a.data_quality.iter().any(|d| d == "invalid_value:pao2/o1"),
        "{:?}",
        a.data_quality
    );
    assert_eq!(
        a.ecmo_reasons.iter().map(|r| &**r).collect::<Vec<_>>(),
        ["missing:pao2"]
    );
}
