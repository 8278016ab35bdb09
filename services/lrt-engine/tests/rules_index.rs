//! `rules/index.json`: released versions are immutable, and a status change is not a content change.

use lrt_engine::RuleSet;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_engine::testing::{copy_shipped_version, edit_file};

fn root_with(index: serde_json::Value) -> (tempfile::TempDir, RulesRoot) {
    let tmp = tempfile::tempdir().unwrap();
    copy_shipped_version(tmp.path());
    std::fs::write(tmp.path().join("index.json"), index.to_string()).unwrap();
    let root = RulesRoot::open(tmp.path()).unwrap();
    (tmp, root)
}

fn release(dir: &std::path::Path) -> String {
    edit_file(
        &dir.join("ruleset.yaml"),
        "status: draft",
        "status: released",
    );
    RuleSet::load(dir).unwrap().sha256
}

#[test]
fn releasing_or_retiring_does_not_change_the_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    let draft = RuleSet::load(&dir).unwrap().sha256;
    assert_eq!(release(&dir), draft);
    edit_file(
        &dir.join("ruleset.yaml"),
        "status: released",
        "status: retired",
    );
    assert_eq!(RuleSet::load(&dir).unwrap().sha256, draft);
    // Any change to what the rules evaluate does change it.
    edit_file(
        &dir.join("parameters.yaml"),
        "abg_validity_h: {value: 6,",
        "abg_validity_h: {value: 5,",
    );
    assert_ne!(RuleSet::load(&dir).unwrap().sha256, draft);
}

#[test]
fn an_edited_released_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_shipped_version(tmp.path());
    let hash = release(&dir);
    let index = serde_json::json!({
        "active": "lrt-ruleset/0.1.0", "shadow": null,
        "versions": {"lrt-ruleset/0.1.0": {"status": "released", "sha256": hash}}
    });
    std::fs::write(tmp.path().join("index.json"), index.to_string()).unwrap();
    let root = RulesRoot::open(tmp.path()).unwrap();
    assert!(root.load_active().is_ok());
    assert!(root.check_all().1.is_empty());

    edit_file(
        &dir.join("parameters.yaml"),
        "age_relative_ci: {value: 65,",
        "age_relative_ci: {value: 70,",
    );
    let err = root.load_active().unwrap_err().to_string();
    assert!(
        err.contains("lrt-ruleset/0.1.0 has changed since its hash was recorded"),
        "{err}"
    );
    let (_, errors) = root.check_all();
    assert!(
        errors
            .iter()
            .any(|e| e.pointer == "/versions/lrt-ruleset~10.1.0/sha256"),
        "{errors:#?}"
    );
}

#[test]
fn index_inconsistencies_are_reported() {
    let (_tmp, root) = root_with(serde_json::json!({
        "active": "lrt-ruleset/0.2.0", "shadow": null,
        "versions": {"lrt-ruleset/0.1.0": {"status": "released", "sha256": null}}
    }));
    let (_, errors) = root.check_all();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("/active: lrt-ruleset/0.2.0 is not listed under versions")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("the index says released but the manifest says draft")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("a released version needs its sha256 recorded")),
        "{messages:#?}"
    );
}

#[test]
fn an_unlisted_version_folder_is_reported() {
    let (tmp, root) = root_with(serde_json::json!({
        "active": "lrt-ruleset/0.1.0", "shadow": null,
        "versions": {"lrt-ruleset/0.1.0": {"status": "draft", "sha256": null}}
    }));
    let second = tmp.path().join("lrt-ruleset/0.2.0");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("ruleset.yaml"), "ruleset: {}").unwrap();
    let (_, errors) = root.check_all();
    assert!(
        errors.iter().any(|e| e
            .message
            .contains("the folder lrt-ruleset/0.2.0 is not listed")),
        "{errors:#?}"
    );
}
