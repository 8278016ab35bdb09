//! Fuzz-style test of `lrt evaluate --bundle`: the seeded mutation corpus of real MIMIC Bundles
//! (the same generator as the FHIR reader's test) through the binary, each run with a time
//! bound. Exit 0, 1 or 2 only: never a hang (killed at the bound) and never a panic (101).

#[path = "../../lrt-fhir/tests/support/mutate.rs"]
mod mutate;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lrt_engine::testing::repo_root;

const SEED: u64 = 0x1a7_cd5;
const BOUND: Duration = Duration::from_secs(20);

/// Runs the binary on one file; the exit code, or why there is none.
fn evaluate(file: &std::path::Path, patient: &str) -> Result<i32, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lrt"))
        .args(["evaluate", "--compact", "--bundle"])
        .arg(file)
        .args(["--patient", patient])
        .current_dir(repo_root())
        .env_remove("LRT_RULES_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run lrt: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return status
                .code()
                .ok_or_else(|| format!("killed by a signal: {status}"));
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {BOUND:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_mutation_corpus_through_lrt_evaluate_bundle_exits_0_1_or_2() {
    let seeds = mutate::seeds(12);
    let corpus = mutate::corpus(SEED, &seeds, 48);
    assert!(
        corpus.len() >= 500,
        "the corpus has {} mutants",
        corpus.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let regressions =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lrt-fhir/tests/fuzz-regressions");
    let mut inputs: Vec<(String, std::path::PathBuf, String)> = Vec::new();
    for (i, m) in corpus.iter().enumerate() {
        let path = dir.path().join(format!("mutant-{i}.json"));
        std::fs::write(&path, &m.text).unwrap();
        inputs.push((m.name.clone(), path, m.patient.clone()));
    }
    for e in std::fs::read_dir(&regressions)
        .unwrap()
        .filter_map(Result::ok)
    {
        let name = e.file_name().to_string_lossy().into_owned();
        inputs.push((name, e.path(), "p1".into()));
    }
    let started = Instant::now();
    let work = Mutex::new(inputs.iter());
    let failures = Mutex::new(Vec::new());
    let exits_seen = Mutex::new([0usize; 3]);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((name, path, patient)) = work.lock().unwrap().next() else {
                        return;
                    };
                    match evaluate(path, patient) {
                        Ok(code @ 0..=2) => exits_seen.lock().unwrap()[code as usize] += 1,
                        Ok(code) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{name}: exit {code}")),
                        Err(why) => failures.lock().unwrap().push(format!("{name}: {why}")),
                    }
                }
            });
        }
    });
    let exits = exits_seen.into_inner().unwrap();
    eprintln!(
        "lrt evaluate --bundle: {} inputs in {:.1?}; exits 0/1/2: {exits:?}",
        inputs.len(),
        started.elapsed()
    );
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    // The corpus is not all rejected: most mutants still evaluate.
    assert!(exits[0] > inputs.len() / 2, "exits 0/1/2: {exits:?}");
}
