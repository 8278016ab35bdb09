//! A patient's record replayed as a hospital would have seen it: the times of every arterial
//! PaO2 (each blood gas is a moment the service would have evaluated), and the options a Bundle
//! file is read with. Shared by `lrt rules diff --at-every-abg`, `lrt replay --bundle` and the
//! MIMIC replay tests.

use chrono::{DateTime, Utc};
use lrt_engine::RuleSet;
use lrt_engine::concept::Concept;

use crate::mapping::{Collected, MapOptions, build_snapshot};

/// How a Bundle file is mapped for `patient`: the kinds of resources present for the patient
/// count as searched (the file is the whole record given), and other patients' resources are
/// expected (a multi-patient file), not reported.
pub fn file_options(collected: &Collected, patient: &str) -> MapOptions {
    MapOptions {
        searched: collected.present_kinds(patient),
        warn_other_patients: false,
    }
}

/// The times of the patient's arterial PaO2 observations, as `rules` maps the codes (a code
/// set is part of a version), oldest first, each once. Refused values (implausible, §9 D8) keep
/// their time: the service would still have evaluated then.
pub fn arterial_pao2_times(
    rules: &RuleSet,
    collected: &Collected,
    patient: &str,
    opts: MapOptions,
) -> Vec<DateTime<Utc>> {
    // Every observation of the record: a snapshot built after any of them (accepted times
    // end with 2299, `lrt_engine::time_window`).
    let horizon = chrono::NaiveDate::from_ymd_opt(2999, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc());
    let all = build_snapshot(rules, collected, patient, horizon, opts);
    let mut times: Vec<DateTime<Utc>> = all
        .observations
        .iter()
        .filter(|o| {
            rules
                .concept_of(&o.system, &o.code)
                .is_some_and(|m| m.concept == Concept::Pao2)
        })
        .map(|o| o.effective)
        .collect();
    times.sort();
    times.dedup();
    times
}
