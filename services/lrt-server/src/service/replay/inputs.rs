//! What a replay run re-evaluates, and each input's source key:
//! * a stored evaluation: its id (the snapshot as stored, at its own `evaluated_at`);
//! * a patient of a FHIR Bundle file at the time of one of their arterial PaO2s:
//!   `<bundle sha256>/<patient>/<time>`, the snapshot built with the run's rule set's FHIR
//!   mapping (code sets are part of a version), as `lrt rules diff --at-every-abg` does.

use chrono::{DateTime, SecondsFormat, Utc};
use lrt_engine::RuleSet;
use lrt_fhir::{Collected, MapOptions};

/// A Bundle file's record: its resources and the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub struct BundleRecord {
    pub collected: Collected,
    pub sha256: String,
    /// The patients replayed (`--patient`, else every Patient of the file).
    pub patients: Vec<String>,
}

/// One arterial blood gas of a patient of a Bundle: an evaluation time.
#[derive(Debug, Clone)]
pub struct BloodGas {
    pub key: String,
    pub patient: String,
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
    /// Every arterial blood gas of the patients, patient by patient, oldest first.
    pub fn blood_gases(&self, rules: &RuleSet) -> Vec<BloodGas> {
        let mut out = Vec::new();
        for patient in &self.patients {
            let opts = lrt_fhir::replay::file_options(&self.collected, patient);
            for at in lrt_fhir::replay::arterial_pao2_times(rules, &self.collected, patient, opts) {
                out.push(BloodGas {
                    key: bundle_key(&self.sha256, patient, at),
                    patient: patient.clone(),
                    at,
                    opts,
                });
            }
        }
        out
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
