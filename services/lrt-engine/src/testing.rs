//! Helpers for tests across the workspace (feature `test-support`): where the repository, the
//! shared folder and the shipped rule set are, and a scratch copy of a rule-set version.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's shared folder: `LRT_SHARED_DIR`, else `../shared` beside the repository.
/// Panics with a clear message when it is missing (CI always provides it).
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("LRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    assert!(
        dir.join("clinical/examples.json").is_file(),
        "the shared folder with clinical/examples.json is missing at {} (set LRT_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// Every entry of the MIMIC-IV demo FHIR transactions of the shared folder (86 patients, 5,328
/// resources), without its `request` part.
pub fn mimic_entries() -> Vec<serde_json::Value> {
    let path =
        shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut bundle: serde_json::Value = serde_json::from_str(line).expect("a transaction");
        for mut entry in bundle["entry"].as_array_mut().expect("entries").drain(..) {
            entry.as_object_mut().expect("an entry").remove("request");
            entries.push(entry);
        }
    }
    entries
}

/// [`mimic_entries`] as one collection Bundle (JSON text), as a site's bulk export or a large
/// `lrt evaluate --bundle` file would be, and the number of its entries.
pub fn mimic_collection_bundle() -> (String, usize) {
    let entries = mimic_entries();
    let n = entries.len();
    let bundle =
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": entries});
    (bundle.to_string(), n)
}

/// The shipped rule-set version folder.
pub fn shipped_version_dir() -> PathBuf {
    repo_root().join("rules/lrt-ruleset/0.1.0")
}

/// Copies the shipped version's rule files (not its tests) to `<root>/lrt-ruleset/0.1.0` and
/// returns that folder, so a test can break a copy without touching the repository.
pub fn copy_shipped_version(root: &Path) -> PathBuf {
    copy_version(root, "0.1.0")
}

/// Copies the rule files of `rules/lrt-ruleset/<version>` (not its tests) to
/// `<root>/lrt-ruleset/<version>` (the folder names must be the id and the version) and returns
/// that folder.
pub fn copy_version(root: &Path, version: &str) -> PathBuf {
    let from = repo_root().join("rules/lrt-ruleset").join(version);
    let dir = root.join("lrt-ruleset").join(version);
    std::fs::create_dir_all(dir.join("tests")).expect("create the copy's folder");
    for entry in std::fs::read_dir(&from).expect("read the rule-set version") {
        let p = entry.expect("a directory entry").path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().expect("a file name")))
                .expect("copy a rule file");
        }
    }
    dir
}

/// Replaces the first `from` by `to` in `file`, which must contain it.
pub fn edit_file(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read the file to edit");
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1)).expect("write the edited file");
}
