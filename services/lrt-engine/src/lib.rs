//! # lrt-engine
//!
//! The Lung Rescue Team clinical engine: a [`PatientSnapshot`] and an evaluation time in, an
//! [`Assessment`] out. Pure and deterministic: no I/O during evaluation, no clock (`now` is an
//! input), so the same snapshot gives the same assessment in a test, a replay and production.
//!
//! The pipeline (knowledge base §4.2):
//!
//! 1. [`timeline`]: normalise units ([`concept`], §1.1), drop `entered-in-error`, resolve
//!    duplicates and conflicts, apply code preference (§6.1);
//! 2. [`derive`]: engine facts: P/F pairing, the current blood gas, S/F, PBW, ΔP, Crs, OI, OSI,
//!    VR, mechanical power, BMI, FiO2-challenge slope, R/I ([`physiology`]);
//! 3. [`eval`]: the rule set's series (EOLIA runs), scores (Murray, ACP, RESP),
//!    classifications (Berlin, Global, ECMO category) and rules (mechanisms, recommendations), in
//!    three-valued logic;
//! 4. [`assessment`]: the §6.2 fields, evidence and explanations.
//!
//! Policy lives in the rule set ([`ruleset`], files under `rules/`); physiology and temporal
//! logic live here. [`casefile`] reads test cases in the §6.2 layout and compares assessments
//! with their expectations within the §6.1 tolerances.
//!
//! ```no_run
//! use lrt_engine::{RuleSet, casefile::CaseFile};
//! let rules = RuleSet::load("rules/lrt-ruleset/0.1.0".as_ref()).unwrap();
//! let cases = CaseFile::read("rules/lrt-ruleset/0.1.0/tests/worked-examples.json".as_ref()).unwrap();
//! let case = &cases.cases[0];
//! let assessment = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
//! println!("{}", assessment.ecmo_category.unwrap_or_default());
//! ```
#![forbid(unsafe_code)]

pub mod assessment;
pub mod casefile;
pub mod concept;
pub mod derive;
pub mod eval;
pub mod facts;
pub mod json;
pub mod physiology;
pub mod plausibility;
pub mod quality;
pub mod rules_test;
pub mod ruleset;
pub mod snapshot;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod time_window;
pub mod timeline;

use chrono::{DateTime, Utc};

pub use assessment::Assessment;
pub use ruleset::{RuleSet, RuleSetError};
pub use snapshot::PatientSnapshot;

/// Evaluates one snapshot at `now` under `rules`.
///
/// Never fails: unusable observations (unknown unit, implausible value, future time) are left
/// out and reported in `data_quality`; use [`PatientSnapshot::validate`] first to reject them.
pub fn evaluate(rules: &RuleSet, snapshot: &PatientSnapshot, now: DateTime<Utc>) -> Assessment {
    evaluate_traced(rules, snapshot, now).0
}

/// [`evaluate`], also returning what every rule-set item concluded (for coverage and replay
/// diagnostics).
pub fn evaluate_traced(
    rules: &RuleSet,
    snapshot: &PatientSnapshot,
    now: DateTime<Utc>,
) -> (Assessment, eval::Evaluation) {
    let now = timeline::to_millis(now);
    let mut quality = quality::DataQuality::default();
    for item in &snapshot.data_quality {
        quality.push_raw(item);
    }
    let mut timelines = timeline::Timelines::build(snapshot, rules, now, &mut quality);
    plausibility::refuse_implausible_gases(&mut timelines, rules, &mut quality);
    let gases = derive::blood_gases(&timelines, rules);
    let mut facts = facts::FactTable::new(rules.facts.len());
    derive::engine_facts(
        snapshot,
        rules,
        &timelines,
        &gases,
        now,
        &mut facts,
        &mut quality,
    );
    let evaluation = eval::evaluate(rules, facts, &gases, now);
    let assessment = assessment::Inputs {
        rules,
        snapshot,
        now,
        gases: &gases,
        eval: &evaluation,
        data_quality: quality.into_items(),
    }
    .build();
    (assessment, evaluation)
}
