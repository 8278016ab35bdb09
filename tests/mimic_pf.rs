//! The 69 CDS Hooks requests of the MIMIC-IV demo give the P/F of `mimic-iv-demo-lrt-pf-kb.csv`
//! (knowledge base §9 D0: the §6.1 pairing, an FiO2 at or before the newest PaO2 and at most 60
//! minutes earlier), evaluated at the newest blood gas, from their prefetch and from a real FHIR
//! server, under rule sets 0.1.0 and 0.2.0 (their pairing is the same).
//!
//! 10 patients pair; for the 59 others the P/F is refused (`missing_or_unpaired:fio2`), never
//! computed with an FiO2 charted hours or years earlier (which the older
//! `mimic-iv-demo-lrt-pf-expected.csv` did; it is no longer an oracle).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lrt_e2e::{ExpectedPf, HookRequest, expected_pf, hook_requests};
use lrt_engine::snapshot::PatientSnapshot;
use lrt_engine::testing::{repo_root, shipped_version_dir};
use lrt_engine::{Assessment, RuleSet};
use lrt_fhir::{MapOptions, Searched};

const PAO2: &str = "2703-7";

fn versions() -> Vec<RuleSet> {
    vec![
        RuleSet::load(&shipped_version_dir()).unwrap(),
        RuleSet::load(&repo_root().join("rules/lrt-ruleset/0.2.0")).unwrap(),
    ]
}

/// The newest PaO2 time in a snapshot (the "newest blood gas").
fn newest_pao2(snapshot: &PatientSnapshot) -> Option<DateTime<Utc>> {
    snapshot
        .observations
        .iter()
        .filter(|o| o.code == PAO2)
        .map(|o| o.effective)
        .max()
}

/// Checks one assessment against the oracle row; returns whether the P/F paired.
fn check(patient: &str, e: &ExpectedPf, now: DateTime<Utc>, a: &Assessment, source: &str) -> bool {
    let ctx = format!("{source} {} {patient}", a.ruleset.version);
    assert_eq!(
        now, e.latest_pao2_time,
        "{ctx}: evaluated at the newest blood gas"
    );
    assert_eq!(a.pao2_mmhg, Some(e.pao2), "{ctx}");
    match e.pf_ratio {
        Some(pf) => {
            let got = a
                .pf_ratio_precise
                .unwrap_or_else(|| panic!("{ctx}: no P/F where §6.1 pairs"));
            assert!((got - pf).abs() <= 0.05, "{ctx}: P/F {got} vs {pf}");
            let fio2 = e.fio2_percent.expect("a paired row has its FiO2") / 100.0;
            assert!((a.fio2_fraction.unwrap() - fio2).abs() < 1e-9, "{ctx}");
            true
        }
        None => {
            assert_eq!(
                a.pf_ratio, None,
                "{ctx}: no FiO2 within 60 min, no P/F (§6.1)"
            );
            assert!(
                a.data_quality
                    .iter()
                    .any(|d| d == "missing_or_unpaired:fio2"),
                "{ctx}: {:?}",
                a.data_quality
            );
            assert_ne!(a.ecmo_category.as_deref(), Some("eligible"), "{ctx}");
            assert_ne!(a.ecmo_category.as_deref(), Some("borderline"), "{ctx}");
            false
        }
    }
}

/// The prefetch snapshot of one request, built at its newest blood gas.
fn prefetch_snapshot(rules: &RuleSet, r: &HookRequest) -> (PatientSnapshot, DateTime<Utc>) {
    let collected = r.prefetch();
    let opts = MapOptions {
        searched: Searched::default(),
        warn_other_patients: true,
    };
    let far = "2999-01-01T00:00:00Z".parse().unwrap();
    let now = newest_pao2(&lrt_fhir::build_snapshot(
        rules, &collected, &r.patient, far, opts,
    ))
    .unwrap_or_else(|| panic!("{}: every request has a PaO2", r.patient));
    let snapshot = lrt_fhir::build_snapshot(rules, &collected, &r.patient, now, opts);
    let unexpected: Vec<&String> = snapshot
        .data_quality
        .iter()
        .filter(|d| !d.starts_with("imprecise_birth_date:"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}: {unexpected:?}",
        r.file.display()
    );
    (snapshot, now)
}

#[test]
fn every_request_gives_the_section_6_1_pf_from_its_prefetch() {
    let expected = expected_pf();
    let requests = hook_requests();
    assert_eq!(requests.len(), 69);
    assert_eq!(expected.len(), 69);
    for rules in versions() {
        let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &requests {
            let e = expected
                .get(&r.patient)
                .unwrap_or_else(|| panic!("{} is not in the oracle", r.patient));
            let (snapshot, now) = prefetch_snapshot(&rules, r);
            let a = lrt_engine::evaluate(&rules, &snapshot, now);
            let paired = check(&r.patient, e, now, &a, "prefetch");
            *summary
                .entry(if paired { "paired" } else { "refused" })
                .or_default() += 1;
        }
        eprintln!("prefetch, rule set {}: {summary:?}", rules.version());
        assert_eq!(summary["paired"], 10);
        assert_eq!(summary["refused"], 59);
    }
}

/// The same 69 patients, their snapshots built by searching a real FHIR server (Helios FHIR
/// Server loaded with the MIMIC-IV demo transactions) with each rule set's search plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_holds_when_the_snapshot_comes_from_a_fhir_server() {
    let expected = expected_pf();
    let server = lrt_e2e::fhir_server::FhirServer::start();
    assert_eq!(server.load_mimic().await, 86);
    let client = server.client();
    let versions = versions();
    let mut checked = 0;
    for r in hook_requests() {
        let e = &expected[&r.patient];
        for rules in &versions {
            let (from_prefetch, now) = prefetch_snapshot(rules, &r);
            let fetched = lrt_fhir::fetch_patient(&client, rules, &r.patient, now)
                .await
                .unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(
                fetched.searched,
                Searched::ALL,
                "{}: every search ran",
                r.patient
            );
            let unexpected: Vec<&String> = fetched
                .collected
                .warnings
                .iter()
                .filter(|d| !d.starts_with("imprecise_birth_date:"))
                .collect();
            assert!(unexpected.is_empty(), "{}: {unexpected:?}", r.patient);
            let a = lrt_engine::evaluate(rules, &fetched.snapshot(rules, &r.patient, now), now);
            check(&r.patient, e, now, &a, "FHIR server");
            // The searched snapshot agrees with the prefetch one on every oxygenation figure.
            let b = lrt_engine::evaluate(rules, &from_prefetch, now);
            assert_eq!(a.pf_ratio_precise, b.pf_ratio_precise, "{}", r.patient);
            assert_eq!(a.pao2_mmhg, b.pao2_mmhg, "{}", r.patient);
            assert_eq!(a.fio2_fraction, b.fio2_fraction, "{}", r.patient);
        }
        checked += 1;
    }
    assert_eq!(checked, 69);
}
