//! Shared pieces of the end-to-end suite: the MIMIC-IV demo data of `../shared/data`, the
//! expected P/F file, and (in [`fhir_server`]) a real FHIR server process loaded with the demo
//! patients.
#![forbid(unsafe_code)]

pub mod browser;
pub mod cds_client;
pub mod fhir_server;
pub mod gate;
pub mod oidc_provider;
pub mod otlp;
pub mod pager;
pub mod port;
pub mod service;
pub mod synthetic;
use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lrt_engine::testing::shared_dir;
use lrt_fhir::Collected;
use serde_json::Value;

/// One CDS Hooks request of `data/cds-hooks-requests/mimic-lrt`.
pub struct HookRequest {
    pub file: PathBuf,
    pub patient: String,
    pub json: Value,
}

pub fn hook_requests() -> Vec<HookRequest> {
    let dir = shared_dir().join("data/cds-hooks-requests/mimic-lrt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let json: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("a request file"))
                    .expect("request JSON");
            let patient = json["context"]["patientId"]
                .as_str()
                .expect("context.patientId")
                .to_string();
            HookRequest {
                file,
                patient,
                json,
            }
        })
        .collect()
}

impl HookRequest {
    /// Every prefetch value, read as FHIR.
    pub fn prefetch(&self) -> Collected {
        let mut c = Collected::default();
        for (key, value) in self.json["prefetch"].as_object().expect("prefetch object") {
            let payload = lrt_fhir::parse(&value.to_string())
                .unwrap_or_else(|e| panic!("{}: prefetch {key}: {e}", self.file.display()));
            c.add(payload);
        }
        c
    }
}

/// A row of `mimic-iv-demo-lrt-pf-kb.csv`: the knowledge base's §6.1 pairing (knowledge base §9 D0):
/// the newest arterial PaO2, and the FiO2 at or before it within 60 minutes, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedPf {
    pub latest_pao2_time: DateTime<Utc>,
    pub pao2: f64,
    /// FiO2 in %, when one pairs.
    pub fio2_percent: Option<f64>,
    /// The nearest earlier FiO2's age in minutes (also when it is too old to pair).
    pub fio2_age_min: Option<f64>,
    /// The P/F of the §6.1 pairing; `None` when no FiO2 pairs.
    pub pf_ratio: Option<f64>,
}

/// Patient id -> the §6.1 oracle, for the 69 patients with a PaO2 (§9 D0). The older
/// `mimic-iv-demo-lrt-pf-expected.csv` paired FiO2 values hours to years old and is not an oracle.
pub fn expected_pf() -> BTreeMap<String, ExpectedPf> {
    let path = shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-lrt-pf-kb.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("patient_id,latest_pao2_time,pao2,fio2,fio2_time,fio2_age_min,pf_ratio_kb")
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |s: &str| s.parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}"));
            let opt = |s: &str| (!s.trim().is_empty()).then(|| num(s));
            (
                f[0].to_string(),
                ExpectedPf {
                    latest_pao2_time: f[1].parse().unwrap_or_else(|e| panic!("{l}: {e}")),
                    pao2: num(f[2]),
                    fio2_percent: opt(f[3]),
                    fio2_age_min: opt(f[5]),
                    pf_ratio: opt(f[6]),
                },
            )
        })
        .collect()
}
