//! FHIR resources to snapshots: units, components, statuses, unreadable resources, vendor
//! extensions, subjects, partial dates, code sets, ventilation episodes and hard-stop flags.

use chrono::{DateTime, Utc};
use lrt_engine::RuleSet;
use lrt_engine::snapshot::{
    CodedValue, DiagnosisGroup, ObservationStatus, ObservationValue, PatientSnapshot, Sex,
};
use lrt_engine::testing::{shared_dir, shipped_version_dir};
use lrt_fhir::{Collected, MapOptions, Searched};
use serde_json::{Value, json};

fn rules() -> RuleSet {
    RuleSet::load(&shipped_version_dir()).unwrap()
}

fn now() -> DateTime<Utc> {
    "2025-03-01T12:00:00Z".parse().unwrap()
}

fn bundle(resources: Vec<Value>) -> String {
    json!({
        "resourceType": "Bundle", "type": "searchset",
        "entry": resources.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()
    })
    .to_string()
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-06-15"})
}

fn obs(id: &str, code: &str, value: Value, at: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": at, "valueQuantity": value})
}

fn q(value: f64, code: &str) -> Value {
    json!({"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code})
}

fn snapshot_of(resources: Vec<Value>, searched: Searched) -> PatientSnapshot {
    let mut c = Collected::default();
    c.add(lrt_fhir::parse(&bundle(resources)).unwrap());
    lrt_fhir::build_snapshot(
        &rules(),
        &c,
        "p1",
        now(),
        MapOptions {
            searched,
            warn_other_patients: true,
        },
    )
}

fn value_of(s: &PatientSnapshot, id: &str) -> ObservationValue {
    s.observations
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", s.observations))
        .value
        .clone()
}

#[test]
fn kpa_and_percent_units_reach_the_engine_as_written() {
    let s = snapshot_of(
        vec![
            patient(),
            obs("pao2", "2703-7", q(8.0, "kPa"), "2025-03-01T11:30:00Z"),
            obs("fio2", "3150-0", q(80.0, "%"), "2025-03-01T11:30:00Z"),
        ],
        Searched::ALL,
    );
    let pao2 = s.observations.iter().find(|o| o.id == "pao2").unwrap();
    assert_eq!(pao2.unit.as_deref(), Some("kPa"));
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert!((a.pf_ratio_precise.unwrap() - 8.0 * 7.50062 / 0.8).abs() < 1e-9);
    assert_eq!(a.fio2_fraction, Some(0.8));
    assert_eq!(s.patient.sex, Sex::Male);
    assert_eq!(s.patient.age_years, Some(44));
}

#[test]
fn the_ucum_code_not_the_display_unit_is_the_unit() {
    let mut o = obs(
        "pao2",
        "2703-7",
        json!({"value": 60, "unit": "mm Hg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}),
        "2025-03-01T11:30:00Z",
    );
    let s = snapshot_of(vec![patient(), o.clone()], Searched::ALL);
    assert_eq!(s.observations[0].unit.as_deref(), Some("mm[Hg]"));
    // A unit without a UCUM code is unknown to the engine: not silently used.
    o["valueQuantity"] = json!({"value": 60, "unit": "mmHg"});
    let s = snapshot_of(vec![patient(), o], Searched::ALL);
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert!(
        a.data_quality.iter().any(|d| d == "unknown_unit:pao2/pao2"),
        "{:?}",
        a.data_quality
    );
    assert_eq!(a.pao2_mmhg, None);
}

#[test]
fn components_become_observations() {
    let panel = json!({"resourceType": "Observation", "id": "abg", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "24336-0", "display": "Gas panel - Arterial blood"}]},
    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-03-01T11:30:00Z",
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "2703-7"}]}, "valueQuantity": q(70.0, "mm[Hg]")},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "2019-8"}]}, "valueQuantity": q(50.0, "mm[Hg]")},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "3150-0"}]}, "valueQuantity": q(0.7, "1")}
    ]});
    let s = snapshot_of(vec![patient(), panel], Searched::ALL);
    assert_eq!(s.observations.len(), 3);
    assert_eq!(
        value_of(&s, "abg/component/0"),
        ObservationValue::Number(70.0)
    );
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert!((a.pf_ratio_precise.unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(
        a.evidence["pf_ratio"]
            .iter()
            .map(|x| &**x)
            .collect::<Vec<_>>(),
        ["abg/component/0", "abg/component/2"]
    );
}

#[test]
fn us_core_pulse_oximetry_is_spo2_with_its_flow_component_ignored() {
    let text = std::fs::read_to_string(
        shared_dir().join("data/us-core-examples/observation-satO2-fiO2.json"),
    )
    .unwrap();
    let mut c = Collected::default();
    c.add(lrt_fhir::parse(&text).unwrap());
    c.add(
        lrt_fhir::parse(
            &std::fs::read_to_string(
                shared_dir().join("data/us-core-examples/patient-example.json"),
            )
            .unwrap(),
        )
        .unwrap(),
    );
    let at: DateTime<Utc> = "2014-12-05T08:30:10Z".parse().unwrap();
    let s = lrt_fhir::build_snapshot(
        &rules(),
        &c,
        "example",
        at,
        MapOptions {
            searched: Searched::ALL,
            warn_other_patients: true,
        },
    );
    assert_eq!(s.observations.len(), 1, "{:#?}", s.observations);
    assert_eq!(
        s.observations[0].code, "59408-5",
        "2708-6 + 59408-5 on one observation is SpO2"
    );
    assert_eq!(s.observations[0].effective, at);
    // The example Patient states no gender: sex unknown (PBW will not be guessed).
    assert_eq!(s.patient.sex, Sex::Unknown);
    assert_eq!(s.patient.age_years, Some(27), "born 1987-02-20");
    // The other US Core examples read without error.
    for f in [
        "condition-encounter-diagnosis-example1.json",
        "encounter-example-1.json",
        "observation-cbc-hemoglobin.json",
        "observation-serum-creatinine.json",
    ] {
        let t =
            std::fs::read_to_string(shared_dir().join("data/us-core-examples").join(f)).unwrap();
        lrt_fhir::parse(&t).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn entered_in_error_and_preliminary_statuses_reach_the_engine() {
    let mut wrong = obs("e1", "2703-7", q(40.0, "mm[Hg]"), "2025-03-01T11:30:00Z");
    wrong["status"] = json!("entered-in-error");
    let mut prelim = obs("e2", "2703-7", q(58.0, "mm[Hg]"), "2025-03-01T11:30:00Z");
    prelim["status"] = json!("preliminary");
    let good = obs("e3", "2703-7", q(62.0, "mm[Hg]"), "2025-03-01T11:30:00Z");
    let s = snapshot_of(
        vec![
            patient(),
            wrong,
            prelim,
            good,
            obs("f", "3150-0", q(100.0, "%"), "2025-03-01T11:30:00Z"),
        ],
        Searched::ALL,
    );
    assert_eq!(
        s.observations.iter().find(|o| o.id == "e1").unwrap().status,
        ObservationStatus::EnteredInError
    );
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert_eq!(a.pao2_mmhg, Some(62.0));
}

#[test]
fn an_unreadable_resource_is_reported_and_the_others_kept() {
    let mut bad = obs("bad", "2703-7", q(60.0, "mm[Hg]"), "2025-03-01T11:30:00Z");
    bad["status"] = json!(5);
    let mut no_status = obs(
        "nostatus",
        "2703-7",
        q(60.0, "mm[Hg]"),
        "2025-03-01T11:30:00Z",
    );
    no_status.as_object_mut().unwrap().remove("status");
    let s = snapshot_of(
        vec![
            patient(),
            bad,
            no_status,
            obs("ok", "2703-7", q(61.0, "mm[Hg]"), "2025-03-01T11:30:00Z"),
        ],
        Searched::ALL,
    );
    assert!(
        s.data_quality
            .contains(&"unreadable:Observation/bad".to_string()),
        "{:?}",
        s.data_quality
    );
    assert!(
        s.data_quality
            .contains(&"unreadable:Observation/nostatus".to_string()),
        "{:?}",
        s.data_quality
    );
    assert_eq!(s.observations.len(), 1);
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert!(
        a.data_quality
            .iter()
            .any(|d| d == "unreadable:Observation/bad"),
        "mapping warnings reach the assessment"
    );
}

#[test]
fn vendor_fields_and_extensions_are_ignored() {
    let mut o = obs(
        "v1",
        "2703-7",
        q(60.0, "mm[Hg]"),
        "2025-03-01T11:30:00+01:00",
    );
    o["vendorFlag"] = json!(true);
    o["extension"] =
        json!([{"url": "http://vendor.example/fhir/sample-site", "valueString": "radial"}]);
    o["_effectiveDateTime"] =
        json!({"extension": [{"url": "http://vendor.example/fhir/clock", "valueCode": "device"}]});
    let mut p = patient();
    p["_birthDate"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1980-06-15T08:00:00Z"}]});
    p["vendorScore"] = json!(12);
    let s = snapshot_of(vec![p, o], Searched::ALL);
    assert!(
        s.data_quality.iter().all(|d| !d.starts_with("unreadable")),
        "{:?}",
        s.data_quality
    );
    assert_eq!(
        s.observations[0].effective,
        "2025-03-01T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn partial_times_and_other_patients_are_never_used() {
    let day_only = obs("d1", "2703-7", q(60.0, "mm[Hg]"), "2025-03-01");
    let other = json!({"resourceType": "Observation", "id": "x1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2703-7"}]},
        "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2025-03-01T11:30:00Z", "valueQuantity": q(40.0, "mm[Hg]")});
    let mut partial_birth = patient();
    partial_birth["birthDate"] = json!("1980");
    let s = snapshot_of(vec![partial_birth, day_only, other], Searched::ALL);
    assert!(s.observations.is_empty());
    assert!(
        s.data_quality
            .contains(&"imprecise_time:Observation/d1".to_string()),
        "{:?}",
        s.data_quality
    );
    assert!(
        s.data_quality
            .iter()
            .any(|d| d.starts_with("other_patient:1 ")),
        "{:?}",
        s.data_quality
    );
    assert!(
        s.data_quality
            .iter()
            .any(|d| d.starts_with("imprecise_birth_date:1980")),
        "{:?}",
        s.data_quality
    );
    assert_eq!(
        s.patient.age_years,
        Some(44),
        "born in 1980: at least 44 on 2025-03-01"
    );
}

#[test]
fn a_period_uses_its_end_and_a_reference_may_be_absolute() {
    let mut o = obs("p", "2703-7", q(60.0, "mm[Hg]"), "x");
    o.as_object_mut().unwrap().remove("effectiveDateTime");
    o["effectivePeriod"] = json!({"start": "2025-03-01T11:00:00Z", "end": "2025-03-01T11:20:00Z"});
    o["subject"] = json!({"reference": "https://ehr.example/fhir/Patient/p1"});
    let s = snapshot_of(vec![patient(), o], Searched::ALL);
    assert_eq!(
        s.observations[0].effective,
        "2025-03-01T11:20:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

fn condition(id: &str, system: &str, code: &str, clinical: &str) -> Value {
    json!({"resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2025-02-27T08:00:00Z"})
}

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";

#[test]
fn conditions_set_context_through_the_code_sets() {
    let mut refuted = condition("c4", ICD10, "C34.90", "active");
    refuted["verificationStatus"]["coding"][0]["code"] = json!("refuted");
    let mut future = condition("c5", ICD10, "I61.9", "active");
    future["onsetDateTime"] = json!("2025-03-02T08:00:00Z");
    let s = snapshot_of(
        vec![
            patient(),
            condition("c1", ICD10, "J18.9", "active"),
            condition("c2", ICD10, "J44.9", "active"),
            condition("c3", ICD10, "I46.9", "resolved"),
            condition("c6", ICD10, "J96.01", "active"),
            refuted,
            future,
        ],
        Searched::ALL,
    );
    let c = &s.context;
    assert_eq!(c.pneumonia_cause, Some(true), "J18 prefix");
    assert_eq!(
        c.cardiac_arrest_before,
        Some(true),
        "a resolved arrest still counts (include_resolved)"
    );
    assert_eq!(
        c.immunocompromised,
        Some(false),
        "a refuted cancer does not count; searched and absent = false"
    );
    assert_eq!(
        c.intracranial_hemorrhage,
        Some(false),
        "a condition dated after now does not count"
    );
    assert_eq!(
        c.diagnosis_group,
        Some(DiagnosisGroup::OtherAcuteRespiratory),
        "acute respiratory failure before COPD"
    );
    assert_eq!(
        c.anticoagulation_contraindicated, None,
        "when_absent unknown"
    );
    // Conditions not searched: nothing concluded from absence.
    let s = snapshot_of(
        vec![patient()],
        Searched {
            conditions: false,
            ..Searched::ALL
        },
    );
    assert_eq!(s.context.pneumonia_cause, None);
    assert_eq!(s.context.immunocompromised, None);
}

fn procedure(id: &str, code: &str, start: &str, end: Option<&str>, status: &str) -> Value {
    let mut p = json!({"resourceType": "Procedure", "id": id, "status": status,
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "subject": {"reference": "Patient/p1"}, "performedPeriod": {"start": start}});
    if let Some(e) = end {
        p["performedPeriod"]["end"] = json!(e);
    }
    p
}

#[test]
fn ventilation_episodes_give_intubation_and_its_start() {
    // Two records of one episode (gap 30 min) and an older, separate one.
    let s = snapshot_of(
        vec![
            patient(),
            procedure(
                "v0",
                "40617009",
                "2025-02-20T08:00:00Z",
                Some("2025-02-22T08:00:00Z"),
                "completed",
            ),
            procedure(
                "v1",
                "40617009",
                "2025-02-28T06:00:00Z",
                Some("2025-02-28T18:00:00Z"),
                "completed",
            ),
            procedure(
                "v2",
                "40617009",
                "2025-02-28T18:30:00Z",
                None,
                "in-progress",
            ),
            procedure(
                "pr",
                "431182000",
                "2025-02-28T20:00:00Z",
                Some("2025-03-01T10:00:00Z"),
                "completed",
            ),
        ],
        Searched::ALL,
    );
    assert_eq!(s.context.intubated, Some(true));
    assert_eq!(
        s.context.mv_start,
        Some("2025-02-28T06:00:00Z".parse().unwrap())
    );
    assert_eq!(s.context.prone_trial_done, Some(true));
    assert_eq!(s.context.currently_prone, Some(false));
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert!(a.explanations.iter().any(|e| &*e.rule == "resp"));

    // Extubated before now: not intubated; a prone session of an older episode is no trial.
    let s = snapshot_of(
        vec![
            patient(),
            procedure(
                "v0",
                "40617009",
                "2025-02-20T08:00:00Z",
                Some("2025-02-22T08:00:00Z"),
                "completed",
            ),
            procedure(
                "pr",
                "431182000",
                "2025-02-21T08:00:00Z",
                Some("2025-02-21T20:00:00Z"),
                "completed",
            ),
            procedure(
                "v1",
                "40617009",
                "2025-02-28T06:00:00Z",
                Some("2025-03-01T06:00:00Z"),
                "completed",
            ),
        ],
        Searched::ALL,
    );
    assert_eq!(s.context.intubated, Some(false));
    assert_eq!(s.context.mv_start, None);

    // Only an intubation marker: intubated since then; an extubation after it ends it.
    let mut intubation = procedure("i1", "112798008", "2025-03-01T02:00:00Z", None, "completed");
    intubation["performedDateTime"] = json!("2025-03-01T02:00:00Z");
    intubation
        .as_object_mut()
        .unwrap()
        .remove("performedPeriod");
    let s = snapshot_of(vec![patient(), intubation.clone()], Searched::ALL);
    assert_eq!(
        (s.context.intubated, s.context.mv_start),
        (Some(true), Some("2025-03-01T02:00:00Z".parse().unwrap()))
    );
    assert_eq!(
        s.context.prone_trial_done, None,
        "no prone session documented: unknown, not false"
    );
    let mut extubation = intubation.clone();
    extubation["id"] = json!("x1");
    extubation["code"]["coding"][0]["code"] = json!("271280005");
    extubation["performedDateTime"] = json!("2025-03-01T09:00:00Z");
    let s = snapshot_of(vec![patient(), intubation, extubation], Searched::ALL);
    assert_eq!(s.context.intubated, Some(false));

    // Nothing documented and procedures not searched: unknown.
    let s = snapshot_of(vec![patient()], Searched::default());
    assert_eq!(
        (s.context.intubated, s.context.currently_prone),
        (None, None)
    );
}

#[test]
fn medications_and_hard_stop_flags() {
    let nmb = json!({"resourceType": "MedicationAdministration", "id": "m1", "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "M03AC11"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-03-01T06:00:00Z"});
    let ino = json!({"resourceType": "MedicationAdministration", "id": "m2", "status": "completed",
        "contained": [{"resourceType": "Medication", "id": "no", "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "R07AX01"}]}}],
        "medicationReference": {"reference": "#no"},
        "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": "2025-03-01T07:00:00Z"}});
    let flag = json!({"resourceType": "Flag", "id": "f1", "status": "active",
        "code": {"coding": [{"system": "urn:lrt:local", "code": "refusal-or-limitation-of-care"}]},
        "subject": {"reference": "Patient/p1"}, "period": {"start": "2025-02-01T00:00:00Z"}});
    let mut ended = flag.clone();
    ended["id"] = json!("f2");
    ended["code"]["coding"][0]["code"] = json!("irreversible-cns-injury");
    ended["period"]["end"] = json!("2025-02-10T00:00:00Z");
    let s = snapshot_of(vec![patient(), nmb, ino, flag, ended], Searched::ALL);
    assert_eq!(s.context.nmb_before, Some(true), "ATC prefix M03AC");
    assert_eq!(s.context.ino_before, Some(true), "contained Medication");
    assert_eq!(s.context.bicarbonate_before, Some(false));
    assert_eq!(s.context.hard_stops, ["refusal_or_limitation_of_care"]);
    let a = lrt_engine::evaluate(&rules(), &s, now());
    assert_eq!(a.ecmo_category.as_deref(), Some("ineligible"));
}

#[test]
fn ambiguous_codes_are_not_used() {
    let o = json!({"resourceType": "Observation", "id": "amb", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2703-7"}, {"system": "http://loinc.org", "code": "2019-8"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-03-01T11:30:00Z", "valueQuantity": q(60.0, "mm[Hg]")});
    let s = snapshot_of(vec![patient(), o], Searched::ALL);
    assert!(s.observations.is_empty());
    assert!(
        s.data_quality
            .contains(&"ambiguous_code:Observation/amb (pao2, paco2)".to_string()),
        "{:?}",
        s.data_quality
    );
}

#[test]
fn an_operation_outcome_is_not_data() {
    let p = lrt_fhir::parse(r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"no such patient"}]}"#).unwrap();
    assert_eq!(
        p.outcome,
        Some(vec!["error not-found: no such patient".to_string()])
    );
    assert!(matches!(
        lrt_fhir::parse("[1,2"),
        Err(lrt_fhir::PayloadError::NotJson(_))
    ));
    assert!(matches!(
        lrt_fhir::parse("[1,2]"),
        Err(lrt_fhir::PayloadError::NotAResource)
    ));
    assert!(matches!(
        lrt_fhir::parse("{}"),
        Err(lrt_fhir::PayloadError::NotAResource)
    ));
}

/// Rule set 0.2.0's code sets (knowledge base §9 D2, D5, D9) read from FHIR.
fn snapshot_0_2_0(resources: Vec<Value>) -> PatientSnapshot {
    let rules =
        RuleSet::load(&lrt_engine::testing::repo_root().join("rules/lrt-ruleset/0.2.0")).unwrap();
    let mut c = Collected::default();
    c.add(lrt_fhir::parse(&bundle(resources)).unwrap());
    lrt_fhir::build_snapshot(
        &rules,
        &c,
        "p1",
        now(),
        MapOptions {
            searched: Searched::ALL,
            warn_other_patients: true,
        },
    )
}

#[test]
fn rule_set_0_2_0_code_sets_follow_the_section_9_decisions() {
    let with_onset = |mut c: Value, onset: &str| {
        c["onsetDateTime"] = json!(onset);
        c
    };
    // D9: a resolved intracranial haemorrhage counts within 30 days of its onset, not after.
    let recent = with_onset(
        condition("ich", ICD10, "I61.9", "resolved"),
        "2025-02-01T12:00:00Z",
    );
    let s = snapshot_0_2_0(vec![patient(), recent]);
    assert_eq!(s.context.intracranial_hemorrhage, Some(true), "28 days ago");
    let old = with_onset(
        condition("ich", ICD10, "I61.9", "resolved"),
        "2025-01-29T11:59:00Z",
    );
    let s = snapshot_0_2_0(vec![patient(), old]);
    assert_eq!(
        s.context.intracranial_hemorrhage,
        Some(false),
        "31 days ago"
    );
    // D9: basal-cell carcinoma (C44) is not immunocompromise; a lymphoma is. J96.2x is not
    // home oxygen; Z99.81 is.
    let s = snapshot_0_2_0(vec![
        patient(),
        condition("bcc", ICD10, "C44.91", "active"),
        condition("arf", ICD10, "J96.21", "active"),
    ]);
    assert_eq!(s.context.immunocompromised, Some(false));
    assert_eq!(s.context.chronic_resp_failure_home_o2, Some(false));
    let s = snapshot_0_2_0(vec![
        patient(),
        condition("nhl", ICD10, "C83.30", "active"),
        condition("o2", ICD10, "Z99.81", "active"),
    ]);
    assert_eq!(s.context.immunocompromised, Some(true));
    assert_eq!(s.context.chronic_resp_failure_home_o2, Some(true));
    // D5: DNR (Z66) is goals of care, not a hard stop; without it goals of care stay unknown.
    let s = snapshot_0_2_0(vec![patient(), condition("dnr", ICD10, "Z66", "active")]);
    assert_eq!(s.context.goals_of_care, Some(true));
    assert!(s.context.hard_stops.is_empty());
    let s = snapshot_0_2_0(vec![patient()]);
    assert_eq!(s.context.goals_of_care, None);
    // D2: a VV-ECMO procedure in progress; one completed yesterday is not support now.
    let ecmo = |status: &str, end: Option<&str>| {
        let mut p = json!({"resourceType": "Procedure", "id": format!("ecmo-{status}"),
            "status": status, "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "233573008"}]},
            "performedPeriod": {"start": "2025-02-28T08:00:00Z"}});
        if let Some(e) = end {
            p["performedPeriod"]["end"] = json!(e);
        }
        p
    };
    let s = snapshot_0_2_0(vec![patient(), ecmo("in-progress", None)]);
    assert_eq!(s.context.on_extracorporeal_support, Some(true));
    let s = snapshot_0_2_0(vec![
        patient(),
        ecmo("completed", Some("2025-02-28T20:00:00Z")),
    ]);
    assert_eq!(
        s.context.on_extracorporeal_support, None,
        "unknown, never a silent no"
    );
}

#[test]
fn rule_set_0_2_0_reads_an_imprecise_birth_date_as_a_range_of_ages() {
    // §9 D4: born in 1960, on 2025-03-01 the patient is 64 or 65.
    let mut p = patient();
    p["birthDate"] = json!("1960");
    let s = snapshot_0_2_0(vec![p.clone()]);
    assert_eq!(
        (s.patient.age_years, s.patient.age_years_max),
        (Some(64), Some(65))
    );
    assert!(
        s.data_quality.contains(
            &"imprecise_birth_date:1960 (age 64 to 65: a threshold between them is unknown)"
                .to_string()
        ),
        "{:?}",
        s.data_quality
    );
    // 0.1.0 reads the lowest age and says so (the snapshot still carries both ends).
    let s = snapshot_of(vec![p], Searched::ALL);
    assert_eq!(
        (s.patient.age_years, s.patient.age_years_max),
        (Some(64), Some(65))
    );
    assert!(
        s.data_quality.contains(
            &"imprecise_birth_date:1960 (age read as 64, the lowest it can be)".to_string()
        ),
        "{:?}",
        s.data_quality
    );
    // A month that allows one age only is no range; a full date never is.
    let mut p = patient();
    p["birthDate"] = json!("1960-01");
    let s = snapshot_0_2_0(vec![p]);
    assert_eq!(
        (s.patient.age_years, s.patient.age_years_max),
        (Some(65), None)
    );
    let s = snapshot_0_2_0(vec![patient()]);
    assert_eq!(
        (s.patient.age_years, s.patient.age_years_max),
        (Some(44), None)
    );
}

#[test]
fn rule_set_0_2_0_reports_active_flags_and_conditions_no_code_set_maps() {
    let flag = |id: &str, code: &str, status: &str| {
        json!({"resourceType": "Flag", "id": id, "status": status,
            "code": {"coding": [{"system": "urn:site:flags", "code": code}]},
            "subject": {"reference": "Patient/p1"}})
    };
    let resources = vec![
        patient(),
        flag("f1", "fall-risk", "active"),
        flag("f2", "isolation", "inactive"),
        {
            let mut f = flag("f3", "refusal-or-limitation-of-care", "active");
            f["code"]["coding"][0]["system"] = json!("urn:lrt:local");
            f
        },
        condition("dm", ICD10, "E11.9", "active"),
        condition("old", ICD10, "E66.01", "resolved"),
        condition("dnr", ICD10, "Z66", "active"),
    ];
    let s = snapshot_0_2_0(resources.clone());
    let unmapped: Vec<&String> = s
        .data_quality
        .iter()
        .filter(|d| d.starts_with("unmapped:"))
        .collect();
    assert_eq!(
        unmapped,
        [
            "unmapped:http://hl7.org/fhir/sid/icd-10-cm|E11.9",
            "unmapped:urn:site:flags|fall-risk"
        ],
        "active and unmapped only: not the inactive flag, the resolved condition, nor mapped codes"
    );
    // The flag whose code a code set maps still sets its hard stop.
    assert_eq!(s.context.hard_stops, ["refusal_or_limitation_of_care"]);
    // 0.1.0 has no `report_unmapped_context_codes`: silent, as before.
    let s = snapshot_of(resources, Searched::ALL);
    assert!(
        !s.data_quality.iter().any(|d| d.starts_with("unmapped:")),
        "{:?}",
        s.data_quality
    );
}

#[test]
fn rule_set_0_2_0_keeps_a_coded_body_position() {
    // §9 D14/D15: Observation 8361-8 with valueCodeableConcept SNOMED 1240000 (prone).
    let position = json!({"resourceType": "Observation", "id": "bp", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8361-8"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2025-03-01T11:00:00Z",
        "valueCodeableConcept": {"coding": [
            {"system": "urn:site:positions", "code": "PR"},
            {"system": "http://snomed.info/sct", "code": "1240000"}]}});
    let s = snapshot_0_2_0(vec![patient(), position.clone()]);
    assert_eq!(
        value_of(&s, "bp"),
        ObservationValue::Coded(CodedValue {
            system: "http://snomed.info/sct".into(),
            code: "1240000".into()
        }),
        "the coding the rule set names as prone wins"
    );
    // 0.1.0 maps no body position: the observation is not used.
    let s = snapshot_of(vec![patient(), position], Searched::ALL);
    assert!(s.observations.is_empty(), "{:?}", s.observations);
}

#[test]
fn a_patient_s_own_resources_give_the_snapshot_of_the_whole_file() {
    // Every MIMIC-IV demo patient, at the newest observation and at an early time: the
    // snapshot from `of_patient` is the snapshot from the whole multi-patient record.
    let rules = rules();
    let text = std::fs::read_to_string(
        shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson"),
    )
    .unwrap();
    let mut all = Collected::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        all.add(lrt_fhir::parse(line).unwrap());
    }
    let patients = all.patient_ids();
    assert_eq!(patients.len(), 86);
    for patient in &patients {
        let own = all.of_patient(patient);
        assert!(own.resources.len() < all.resources.len() / 2, "{patient}");
        let opts = lrt_fhir::replay::file_options(&all, patient);
        assert_eq!(
            lrt_fhir::replay::file_options(&own, patient).searched,
            opts.searched
        );
        let newest = all.newest_observation(patient).unwrap_or_else(now);
        for at in [newest, newest - chrono::Duration::days(2)] {
            assert_eq!(
                lrt_fhir::build_snapshot(&rules, &own, patient, at, opts),
                lrt_fhir::build_snapshot(&rules, &all, patient, at, opts),
                "{patient} at {at}"
            );
        }
    }
}
