//! Shared pieces of the end-to-end suite: the MIMIC-IV demo data of `../shared/data`, the
//! expected P/F file, and (in [`fhir_server`]) a real FHIR server process loaded with the demo
//! patients.
#![forbid(unsafe_code)]

pub mod cds_client;
pub mod fhir_server;
pub mod pager;
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

/// A row of `mimic-iv-demo-lrt-pf-expected.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedPf {
    pub latest_pao2_time: DateTime<Utc>,
    pub pao2: f64,
    pub fio2_percent: f64,
    pub pf_ratio: f64,
    pub severe_lt150: bool,
}

/// Patient id -> expected P/F (patients with a PaO2 but no FiO2 before it are not in the file).
pub fn expected_pf() -> BTreeMap<String, ExpectedPf> {
    let path = shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-lrt-pf-expected.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("patient_id,latest_pao2_time,pao2,fio2,pf_ratio,severe_lt150")
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |s: &str| s.parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}"));
            (
                f[0].to_string(),
                ExpectedPf {
                    latest_pao2_time: f[1].parse().unwrap_or_else(|e| panic!("{l}: {e}")),
                    pao2: num(f[2]),
                    fio2_percent: num(f[3]),
                    pf_ratio: num(f[4]),
                    severe_lt150: f[5] == "true",
                },
            )
        })
        .collect()
}
