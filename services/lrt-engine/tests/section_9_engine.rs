//! Engine behaviour that rule set 0.2.0 switches on by parameters (knowledge base §9) and that
//! 0.1.0 must not see: PaCO2/pH anchored to a valid PaO2 only (D13), an age range from an
//! imprecise birth date (D4), a coded body position that sets `currently_prone` (D14).

use lrt_engine::RuleSet;
use lrt_engine::casefile::{Case, CaseFile};
use lrt_engine::snapshot::{Observation, ObservationStatus, ObservationValue};
use lrt_engine::testing::repo_root;

fn version(v: &str) -> RuleSet {
    RuleSet::load(&repo_root().join("rules/lrt-ruleset").join(v))
        .unwrap_or_else(|e| panic!("rule set {v} loads:\n{e}"))
}

/// A case of 0.2.0's `decisions.json`.
fn case(id: &str) -> Case {
    let file = CaseFile::read(&repo_root().join("rules/lrt-ruleset/0.2.0/tests/decisions.json"))
        .expect("decisions.json reads");
    file.cases
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

#[test]
fn d13_a_conflicted_pao2_gives_no_paco2_or_ph_in_0_2_0_only() {
    let c = case("D13-conflicted-pao2-no-paco2-ph");
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert_eq!(a.pao2_mmhg, None);
    assert_eq!((a.paco2_mmhg, a.ph), (None, None), "{:?}", a.data_quality);
    // 0.1.0 has no `paco2_ph_need_valid_pao2`: the conflicted gas keeps its PaCO2 and pH.
    let a = lrt_engine::evaluate(&version("0.1.0"), &c.snapshot, c.now);
    assert_eq!(a.pao2_mmhg, None);
    assert_eq!((a.paco2_mmhg, a.ph), (Some(55.0), Some(7.31)));
}

#[test]
fn d13_a_gas_without_a_pao2_keeps_its_paco2_and_ph() {
    // A later pH/PaCO2 with no PaO2 near it (11:30, after the conflicted 11:00 PaO2) is a gas of
    // its own: it has no PaO2 slot that could be conflicted, so it stays the current gas (§6.1).
    let mut c = case("D13-conflicted-pao2-no-paco2-ph");
    for (id, code, value, unit) in [
        ("late-ph", "2744-1", 7.2, "[pH]"),
        ("late-paco2", "2019-8", 65.0, "mm[Hg]"),
    ] {
        c.snapshot.observations.push(Observation {
            id: id.into(),
            system: "http://loinc.org".into(),
            code: code.into(),
            value: ObservationValue::Number(value),
            unit: Some(unit.into()),
            effective: "2025-03-01T11:30:00Z".parse().unwrap(),
            status: ObservationStatus::Final,
            issued: None,
        });
    }
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert_eq!((a.paco2_mmhg, a.ph), (Some(65.0), Some(7.2)));
}

#[test]
fn d4_an_age_range_straddling_a_threshold_is_unverified_in_0_2_0_only() {
    let c = case("D4-imprecise-birth-date-straddles-65-unverified");
    assert_eq!(
        (
            c.snapshot.patient.age_years,
            c.snapshot.patient.age_years_max
        ),
        (Some(64), Some(65))
    );
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert!(
        a.ecmo_reasons.iter().any(|r| &**r == "unverified:age"),
        "{:?}",
        a.ecmo_reasons
    );
    assert!(!a.ecmo_reasons.iter().any(|r| &**r == "relative_ci:age"));
    // The RESP age band is the same for 64 and 65 (≥ 60): the score is still computed.
    assert!(!a.resp_missing.iter().any(|m| &**m == "age"), "{a:?}");
    // 0.1.0 reads the lowest age (64): no relative contraindication, nothing unverified.
    let a = lrt_engine::evaluate(&version("0.1.0"), &c.snapshot, c.now);
    assert!(!a.ecmo_reasons.iter().any(|r| r.contains("age")));
}

#[test]
fn d4_a_resp_age_band_straddled_by_the_range_is_missing() {
    let mut c = case("D4-imprecise-birth-date-straddles-65-unverified");
    c.snapshot.patient.age_years = Some(49);
    c.snapshot.patient.age_years_max = Some(50);
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert!(a.resp_missing.iter().any(|m| &**m == "age"), "{a:?}");
    assert_eq!(a.resp_score, None);
}

#[test]
fn d4_an_age_range_below_its_lowest_is_bad_input() {
    let mut c = case("D4-imprecise-birth-date-straddles-65-unverified");
    c.snapshot.patient.age_years_max = Some(60);
    let issues = c.snapshot.validate(&version("0.2.0"), c.now);
    assert!(
        issues.iter().any(|i| i.path == "patient.age_years_max"),
        "{issues:?}"
    );
}

#[test]
fn d14_a_coded_value_reads_and_prints_as_system_and_code() {
    let c = case("D14-body-position-prone-sets-currently-prone");
    let bp = c
        .snapshot
        .observations
        .iter()
        .find(|o| o.id == "bp1")
        .expect("the body-position observation");
    let ObservationValue::Coded(v) = &bp.value else {
        panic!("{:?}", bp.value)
    };
    assert_eq!(
        (&*v.system, &*v.code),
        ("http://snomed.info/sct", "1240000")
    );
    let json = serde_json::to_value(&bp.value).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"system": "http://snomed.info/sct", "code": "1240000"})
    );
    assert!(c.snapshot.validate(&version("0.2.0"), c.now).is_empty());
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert_eq!(a.prone_recommended, Some(false));
}

#[test]
fn d14_a_coded_value_for_a_concept_without_true_values_is_refused() {
    let mut c = case("D14-body-position-prone-sets-currently-prone");
    let peep = c
        .snapshot
        .observations
        .iter_mut()
        .find(|o| o.code == "76248-4")
        .expect("a PEEP");
    peep.value = serde_json::from_value(
        serde_json::json!({"system": "http://snomed.info/sct", "code": "1240000"}),
    )
    .unwrap();
    peep.unit = None;
    let issues = c.snapshot.validate(&version("0.2.0"), c.now);
    assert!(
        issues.iter().any(|i| i.message.contains("coded")),
        "{issues:?}"
    );
    let a = lrt_engine::evaluate(&version("0.2.0"), &c.snapshot, c.now);
    assert!(
        a.data_quality
            .iter()
            .any(|d| d.starts_with("invalid_value:peep/")),
        "{:?}",
        a.data_quality
    );
    // Malformed coded values are bad input when read.
    assert!(serde_json::from_value::<ObservationValue>(serde_json::json!({"code": "x"})).is_err());
}
