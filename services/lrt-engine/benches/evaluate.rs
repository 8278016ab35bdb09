//! `cargo bench -p lrt-engine`: one evaluation of a realistic 50-observation snapshot
//! (architecture quality bar: well under 50 µs on one core), and the rule-set load for scale.

use std::hint::black_box;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use lrt_engine::snapshot::{
    Context, DiagnosisGroup, Observation, ObservationStatus, ObservationValue, Patient,
    PatientSnapshot, Sex,
};
use lrt_engine::{RuleSet, evaluate};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules/lrt-ruleset/0.1.0")
}

fn obs(id: usize, code: &str, value: f64, unit: &str, at: DateTime<Utc>) -> Observation {
    Observation {
        id: format!("o{id}"),
        system: "http://loinc.org".into(),
        code: code.into(),
        value: ObservationValue::Number(value),
        unit: Some(unit.into()),
        effective: at,
        status: ObservationStatus::Final,
        issued: None,
    }
}

/// 24 h of a severe ARDS patient: 8 blood gases (PaO2, FiO2, PaCO2, pH), ventilator settings at
/// each, SpO2, height and weight: 50 observations.
pub fn snapshot_50(now: DateTime<Utc>) -> PatientSnapshot {
    let mut observations = Vec::new();
    let mut id = 0;
    let mut push = |code: &str, v: f64, unit: &str, at| {
        id += 1;
        observations.push(obs(id, code, v, unit, at));
    };
    for i in 0..8 {
        let at = now - Duration::minutes(30 + 150 * i);
        push("2703-7", 58.0 + i as f64, "mm[Hg]", at);
        push("3150-0", 100.0 - 5.0 * i as f64, "%", at);
        push("2019-8", 55.0, "mm[Hg]", at);
        push("2744-1", 7.31, "[pH]", at);
        push("76248-4", 16.0, "cm[H2O]", at);
    }
    let at = now - Duration::minutes(30);
    for (code, v, unit) in [
        ("76259-1", 29.0, "cm[H2O]"),
        ("76531-3", 34.0, "cm[H2O]"),
        ("76530-5", 22.0, "cm[H2O]"),
        ("76222-9", 450.0, "mL"),
        ("19840-8", 28.0, "/min"),
        ("20112-9", 450.0, "mL"),
        ("59408-5", 88.0, "%"),
        ("19996-8", 1.0, "1"),
    ] {
        push(code, v, unit, at);
    }
    push("8302-2", 180.0, "cm", now - Duration::days(3));
    push("29463-7", 85.0, "kg", now - Duration::days(2));
    PatientSnapshot {
        patient: Patient {
            sex: Sex::Male,
            age_years: Some(45),
            age_years_max: None,
        },
        context: Context {
            intubated: Some(true),
            mv_start: Some(now - Duration::hours(30)),
            pneumonia_cause: Some(true),
            diagnosis_group: Some(DiagnosisGroup::ViralPneumonia),
            immunocompromised: Some(false),
            cns_dysfunction: Some(false),
            nonpulmonary_infection: Some(false),
            nmb_before: Some(true),
            ino_before: Some(false),
            bicarbonate_before: Some(false),
            cardiac_arrest_before: Some(false),
            prone_trial_done: Some(true),
            currently_prone: Some(false),
            prone_contraindication: Some(false),
            ..Context::default()
        },
        observations,
        maneuvers: None,
        data_quality: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let rules = RuleSet::load(&rules_dir()).expect("the rule set loads");
    let now: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().expect("a time");
    let snapshot = snapshot_50(now);
    assert_eq!(snapshot.observations.len(), 50);
    assert!(snapshot.validate(&rules, now).is_empty());
    let a = evaluate(&rules, &snapshot, now);
    assert_eq!(
        a.ecmo_category.as_deref(),
        Some("eligible"),
        "the bench patient meets EOLIA C2"
    );

    c.bench_function("evaluate/50_observations", |b| {
        b.iter(|| evaluate(black_box(&rules), black_box(&snapshot), black_box(now)))
    });
    c.bench_function("evaluate/50_observations+json", |b| {
        b.iter(|| {
            serde_json::to_vec(&evaluate(
                black_box(&rules),
                black_box(&snapshot),
                black_box(now),
            ))
        })
    });
    // What storing a snapshot costs the service (it stores two per hook call).
    c.bench_function("snapshot/50_observations/json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&snapshot)))
    });
    c.bench_function("ruleset/load", |b| {
        b.iter(|| RuleSet::load(black_box(&rules_dir())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
