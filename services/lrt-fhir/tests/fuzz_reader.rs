//! Fuzz-style test of the FHIR reader: a seeded mutation corpus of real MIMIC Bundles (and the
//! US Core examples) through `lrt_fhir::parse` and the snapshot mapping, each with a time
//! bound. Any answer is fine (a payload, warnings, a `PayloadError`); a hang or a panic is not.
//! The inputs that once hung or panicked are kept in `tests/fuzz-regressions/`.

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lrt_engine::RuleSet;
use lrt_engine::testing::shipped_version_dir;
use lrt_fhir::{Collected, MapOptions, Searched};
use support::mutate;

/// The fixed seed of the corpus: change it only together with the regression files.
const SEED: u64 = 0x1a7_cd5;
/// Far above a normal read (milliseconds); a hang is what it catches.
const BOUND: Duration = Duration::from_secs(10);

fn now() -> DateTime<Utc> {
    "2200-01-01T00:00:00Z".parse().unwrap()
}

/// Reads `text` and maps every patient it holds, on a thread of its own; `Err` on a panic
/// or when the bound passes.
fn read_bounded(rules: &'static RuleSet, name: &str, text: String) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("read {name}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                let Ok(payload) = lrt_fhir::parse(&text) else {
                    return;
                };
                let mut c = Collected::default();
                c.add(payload);
                for patient in ["mimic-10000032", "example", "p1"] {
                    let _ = lrt_fhir::build_snapshot(
                        rules,
                        &c,
                        patient,
                        now(),
                        MapOptions {
                            searched: Searched::default(),
                            warn_other_patients: true,
                        },
                    );
                }
            });
            let _ = tx.send(outcome.is_ok());
        })
        .map_err(|e| format!("{name}: cannot start a thread: {e}"))?;
    match rx.recv_timeout(BOUND) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{name}: panicked")),
        Err(_) => Err(format!("{name}: no answer within {BOUND:?} (a hang)")),
    }
}

/// `parse(text)` on a thread of its own, within the bound (so that a regression fails the
/// test instead of hanging the test binary).
fn parse_bounded(text: &'static str) -> Result<lrt_fhir::Payload, lrt_fhir::PayloadError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(lrt_fhir::parse(text)));
    rx.recv_timeout(BOUND)
        .expect("parse answers within the bound")
}

fn rules() -> &'static RuleSet {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    RULES.get_or_init(|| RuleSet::load(&shipped_version_dir()).unwrap())
}

#[test]
fn the_mutation_corpus_never_hangs_or_panics_the_reader() {
    // Keep panics of the worker threads out of the output: they are reported as failures.
    std::panic::set_hook(Box::new(|_| {}));
    let seeds = mutate::seeds(12);
    let corpus = mutate::corpus(SEED, &seeds, 48);
    assert!(
        corpus.len() >= 500,
        "the corpus has {} mutants",
        corpus.len()
    );
    let started = Instant::now();
    let mut failures = Vec::new();
    for m in corpus {
        if let Err(why) = read_bounded(rules(), &m.name, m.text) {
            let hang = why.ends_with("(a hang)");
            failures.push(why);
            // A hung thread keeps spinning: stop at the first rather than slow every next one.
            if hang {
                break;
            }
        }
    }
    let _ = std::panic::take_hook();
    eprintln!(
        "fuzz corpus: {} mutants (seed {SEED:#x}) read in {:.2?}",
        seeds.len() * 48,
        started.elapsed()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_regression_inputs_neither_hang_nor_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-regressions exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "regression inputs: {files:?}");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        read_bounded(rules(), &name, text).unwrap();
    }
}

#[test]
fn an_unknown_array_member_is_ignored_and_the_resource_read() {
    // The input that hung fhirbolt's lenient mode forever: now read, the member ignored.
    let p = parse_bounded(
        r#"{"resourceType":"Patient","id":"p1","gender":"male","fooArr":[1,2],
            "name":[],"extension":[]}"#,
    )
    .unwrap();
    assert_eq!(p.resources.len(), 1);
    assert!(p.warnings.is_empty());
}

#[test]
fn a_wrong_shape_is_an_unreadable_warning_naming_the_resource() {
    let p = parse_bounded(
        r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"resource":{"resourceType":"Observation","id":"o1","status":{"x":[1]},
                         "code":{"text":"PaO2"}}},
            {"resource":{"resourceType":"Observation","id":"o2","status":"final",
                         "code":{"coding":[]}}},
            "not an entry"]}"#,
    )
    .unwrap();
    assert_eq!(
        p.warnings,
        vec!["unreadable:Observation/o1", "unreadable:Bundle.entry[2]"]
    );
    assert_eq!(p.resources.len(), 1);
}
