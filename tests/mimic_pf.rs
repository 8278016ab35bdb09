//! Acceptance of the FHIR issue: the 69 CDS Hooks requests of the MIMIC-IV demo give the P/F of
//! `mimic-iv-demo-lrt-pf-expected.csv`, evaluated at the newest blood gas, from their prefetch and
//! from a real FHIR server.
//!
//! The expected file pairs the latest PaO2 with the latest FiO2 at or before it **with no time
//! limit** (in 20 of its 30 rows that FiO2 is 1.9 h to 781 days older). The knowledge base's
//! normative §6.1 pairs within 60 minutes. So each snapshot is evaluated twice:
//! * under a copy of the shipped rules whose pairing window is unlimited (the file's rule): every
//!   row of the file is reproduced, which shows the snapshot carries the right values and times;
//! * under the shipped rules: the rows paired within 60 min are reproduced, the others are refused
//!   as `missing_or_unpaired:fio2` (never paired with a stale FiO2).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use lrt_e2e::{ExpectedPf, HookRequest, expected_pf, hook_requests};
use lrt_engine::snapshot::PatientSnapshot;
use lrt_engine::testing::{copy_shipped_version, edit_file, shipped_version_dir};
use lrt_engine::{Assessment, RuleSet};
use lrt_fhir::{MapOptions, Searched};

const PAO2: &str = "2703-7";
const FIO2: &str = "3150-0";

struct Rules {
    shipped: RuleSet,
    unlimited: RuleSet,
    _tmp: tempfile::TempDir,
}

fn rules() -> Rules {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    edit_file(
        &dir.join("parameters.yaml"),
        "fio2_pairing_window_min: {value: 60,",
        "fio2_pairing_window_min: {value: 1000000000,",
    );
    Rules {
        shipped: RuleSet::load(&shipped_version_dir()).unwrap(),
        unlimited: RuleSet::load(&dir).unwrap(),
        _tmp: tmp,
    }
}

/// The newest PaO2 time in a snapshot built without a time limit (the "newest blood gas").
fn newest_of(snapshot: &PatientSnapshot, code: &str) -> Option<DateTime<Utc>> {
    snapshot
        .observations
        .iter()
        .filter(|o| o.code == code)
        .map(|o| o.effective)
        .max()
}

/// Whether a FiO2 lies at or before `at` and within 60 minutes of it.
fn fio2_within_an_hour(snapshot: &PatientSnapshot, at: DateTime<Utc>) -> bool {
    snapshot
        .observations
        .iter()
        .any(|o| o.code == FIO2 && o.effective <= at && at - o.effective <= Duration::minutes(60))
}

/// What one patient gave under both rule sets.
pub struct Outcome {
    pub shipped: Assessment,
    pub unlimited: Assessment,
    pub paired_within_an_hour: bool,
    pub now: Option<DateTime<Utc>>,
}

/// Checks one patient's assessments against the expected file; returns what was checked.
fn check(patient: &str, expected: Option<&ExpectedPf>, o: &Outcome, source: &str) {
    let ctx = format!("{source} {patient}");
    match expected {
        Some(e) => {
            assert_eq!(
                o.now,
                Some(e.latest_pao2_time),
                "{ctx}: evaluated at the newest blood gas"
            );
            let b = &o.unlimited;
            assert_eq!(b.pao2_mmhg, Some(e.pao2), "{ctx}");
            assert!(
                (b.fio2_fraction.unwrap() - e.fio2_percent / 100.0).abs() < 1e-9,
                "{ctx}"
            );
            let pf = b
                .pf_ratio_precise
                .unwrap_or_else(|| panic!("{ctx}: no P/F under the file's rule"));
            assert!(
                (pf - e.pf_ratio).abs() <= 0.05,
                "{ctx}: P/F {pf} vs {}",
                e.pf_ratio
            );
            assert_eq!(pf < 150.0, e.severe_lt150, "{ctx}");
            let a = &o.shipped;
            if o.paired_within_an_hour {
                assert!(
                    (a.pf_ratio_precise.unwrap() - e.pf_ratio).abs() <= 0.05,
                    "{ctx}: shipped rules"
                );
            } else {
                assert_eq!(
                    a.pf_ratio, None,
                    "{ctx}: a FiO2 older than 60 min must not be paired (§6.1)"
                );
                assert!(
                    a.data_quality
                        .iter()
                        .any(|d| d == "missing_or_unpaired:fio2"),
                    "{ctx}: {:?}",
                    a.data_quality
                );
                assert_eq!(
                    a.ecmo_reasons.iter().map(|r| &**r).collect::<Vec<_>>(),
                    ["missing_or_unpaired:fio2"],
                    "{ctx}"
                );
            }
        }
        None => {
            assert_eq!(
                o.unlimited.pf_ratio, None,
                "{ctx}: not in the file, so no FiO2 at or before the PaO2"
            );
            assert_eq!(o.shipped.pf_ratio, None, "{ctx}");
        }
    }
}

/// Evaluates a snapshot (built at `now`) under both rule sets.
fn outcome(rules: &Rules, snapshot: &PatientSnapshot, now: Option<DateTime<Utc>>) -> Outcome {
    let at = now.unwrap_or_else(|| newest_of(snapshot, FIO2).expect("a PaO2 or a FiO2"));
    Outcome {
        shipped: lrt_engine::evaluate(&rules.shipped, snapshot, at),
        unlimited: lrt_engine::evaluate(&rules.unlimited, snapshot, at),
        paired_within_an_hour: now.is_some_and(|t| fio2_within_an_hour(snapshot, t)),
        now,
    }
}

/// The prefetch snapshot of one request at its newest blood gas.
fn prefetch_outcome(rules: &Rules, r: &HookRequest) -> Outcome {
    let collected = r.prefetch();
    let opts = MapOptions {
        searched: Searched::default(),
        warn_other_patients: true,
    };
    let far = "2999-01-01T00:00:00Z".parse().unwrap();
    let now = newest_of(
        &lrt_fhir::build_snapshot(&rules.shipped, &collected, &r.patient, far, opts),
        PAO2,
    );
    let at = now.unwrap_or(far);
    let snapshot = lrt_fhir::build_snapshot(&rules.shipped, &collected, &r.patient, at, opts);
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
    outcome(rules, &snapshot, now)
}

#[test]
fn every_request_gives_the_expected_pf_from_its_prefetch() {
    let rules = rules();
    let expected = expected_pf();
    let requests = hook_requests();
    assert_eq!(requests.len(), 69);
    assert_eq!(expected.len(), 30);
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &requests {
        let o = prefetch_outcome(&rules, r);
        check(&r.patient, expected.get(&r.patient), &o, "prefetch");
        let key = match (expected.get(&r.patient), o.paired_within_an_hour) {
            (Some(_), true) => "P/F paired within 60 min",
            (Some(_), false) => "P/F only with an older FiO2 (refused by §6.1)",
            (None, _) if o.now.is_some() => "PaO2 without any FiO2 before it",
            (None, _) => "no PaO2",
        };
        *summary.entry(key).or_default() += 1;
    }
    eprintln!("prefetch: {summary:?}");
    assert_eq!(summary["P/F paired within 60 min"], 10);
    assert_eq!(summary["P/F only with an older FiO2 (refused by §6.1)"], 20);
}

/// The same 69 patients, their snapshots built by searching a real FHIR server (Helios FHIR
/// Server loaded with the MIMIC-IV demo transactions) with the search plan of each rule set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_holds_when_the_snapshot_comes_from_a_fhir_server() {
    let rules = rules();
    let expected = expected_pf();
    let server = lrt_e2e::fhir_server::FhirServer::start();
    assert_eq!(server.load_mimic().await, 86);
    let client = server.client();
    let mut checked = 0;
    for r in hook_requests() {
        let from_prefetch = prefetch_outcome(&rules, &r);
        let now = from_prefetch.now.expect("every request has a PaO2");
        // Each rule set searches what its own windows need (the unlimited pairing reaches back years).
        let shipped = lrt_fhir::fetch_patient(&client, &rules.shipped, &r.patient, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let unlimited = lrt_fhir::fetch_patient(&client, &rules.unlimited, &r.patient, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (name, f) in [("shipped", &shipped), ("unlimited", &unlimited)] {
            assert_eq!(
                f.searched,
                Searched::ALL,
                "{name} {}: every search ran",
                r.patient
            );
            let unexpected: Vec<&String> = f
                .collected
                .warnings
                .iter()
                .filter(|d| !d.starts_with("imprecise_birth_date:"))
                .collect();
            assert!(
                unexpected.is_empty(),
                "{name} {}: {unexpected:?}",
                r.patient
            );
        }
        let o = Outcome {
            shipped: lrt_engine::evaluate(
                &rules.shipped,
                &shipped.snapshot(&rules.shipped, &r.patient, now),
                now,
            ),
            unlimited: lrt_engine::evaluate(
                &rules.unlimited,
                &unlimited.snapshot(&rules.unlimited, &r.patient, now),
                now,
            ),
            paired_within_an_hour: from_prefetch.paired_within_an_hour,
            now: Some(now),
        };
        check(&r.patient, expected.get(&r.patient), &o, "FHIR server");
        // The searched snapshot agrees with the prefetch one on every oxygenation figure.
        for (a, b) in [
            (&o.shipped, &from_prefetch.shipped),
            (&o.unlimited, &from_prefetch.unlimited),
        ] {
            assert_eq!(a.pf_ratio_precise, b.pf_ratio_precise, "{}", r.patient);
            assert_eq!(a.pao2_mmhg, b.pao2_mmhg, "{}", r.patient);
            assert_eq!(a.fio2_fraction, b.fio2_fraction, "{}", r.patient);
        }
        checked += 1;
    }
    assert_eq!(checked, 69);
}
