//! What a replay run re-evaluates, and each input's source key:
//! * a stored evaluation: its id (the snapshot as stored, at its own `evaluated_at`);
//! * a patient of a FHIR Bundle file at the time of one of their arterial PaO2s:
//!   `<bundle sha256>/<patient>/<time>`, the snapshot built with the run's rule set's FHIR
//!   mapping (code sets are part of a version), as `lrt rules diff --at-every-abg` does.

use chrono::{DateTime, SecondsFormat, Utc};
use lrt_engine::{PatientSnapshot, RuleSet};
use lrt_fhir::{Collected, MapOptions};

/// A Bundle file's record: the resources of each patient replayed (split once, so that each
/// snapshot reads only its patient's) and the SHA-256 of the file's bytes.
#[derive(Debug, Clone)]
pub struct BundleRecord {
    pub sha256: String,
    /// The patients replayed, each with their own resources.
    pub patients: Vec<(String, Collected)>,
}

/// One arterial blood gas of a patient of a Bundle: an evaluation time.
#[derive(Debug, Clone)]
pub struct BloodGas {
    pub key: String,
    /// The patient's id and their index in [`BundleRecord::patients`].
    pub patient: String,
    pub index: usize,
    pub at: DateTime<Utc>,
    pub opts: MapOptions,
}

/// The source key of a Bundle input (`<sha256>/<patient>/<RFC 3339 time, UTC>`).
pub fn bundle_key(sha256: &str, patient: &str, at: DateTime<Utc>) -> String {
    format!(
        "{sha256}/{patient}/{}",
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}

impl BundleRecord {
    /// The record of `patients` (`--patient`, else every Patient of the file).
    pub fn new(collected: &Collected, sha256: String, patients: &[String]) -> BundleRecord {
        BundleRecord {
            sha256,
            patients: patients
                .iter()
                .map(|p| (p.clone(), collected.of_patient(p)))
                .collect(),
        }
    }

    /// Every arterial blood gas of the patients, patient by patient, oldest first.
    pub fn blood_gases(&self, rules: &RuleSet) -> Vec<BloodGas> {
        let mut out = Vec::new();
        for (index, (patient, collected)) in self.patients.iter().enumerate() {
            let opts = lrt_fhir::replay::file_options(collected, patient);
            for at in lrt_fhir::replay::arterial_pao2_times(rules, collected, patient, opts) {
                out.push(BloodGas {
                    key: bundle_key(&self.sha256, patient, at),
                    patient: patient.clone(),
                    index,
                    at,
                    opts,
                });
            }
        }
        out
    }

    /// The snapshot at one blood gas, built with `rules`' FHIR mapping.
    pub fn snapshot(&self, rules: &RuleSet, gas: &BloodGas) -> PatientSnapshot {
        lrt_fhir::build_snapshot(
            rules,
            &self.patients[gas.index].1,
            &gas.patient,
            gas.at,
            gas.opts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_key_names_the_file_the_patient_and_the_time_in_utc() {
        let at: DateTime<Utc> = "2150-03-01T08:05:00+02:00".parse().unwrap();
        assert_eq!(
            bundle_key("ab12", "mimic-1", at),
            "ab12/mimic-1/2150-03-01T06:05:00Z"
        );
        let precise: DateTime<Utc> = "2150-03-01T06:05:00.250Z".parse().unwrap();
        assert_eq!(
            bundle_key("ab12", "p", precise),
            "ab12/p/2150-03-01T06:05:00.250Z"
        );
    }
}
