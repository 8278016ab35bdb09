//! `rules/index.json`: which rule-set versions exist, which one is active (and which runs in
//! shadow), and the content hash of every released version, so that a released folder that was
//! edited in place is refused (versions are immutable; make a new version folder instead).
//!
//! ```json
//! { "active": "lrt-ruleset/0.1.0", "shadow": null,
//!   "versions": { "lrt-ruleset/0.1.0": { "status": "draft", "sha256": null } } }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::files::ReleaseStatus;
use super::{RuleError, RuleSet, RuleSetError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub status: ReleaseStatus,
    /// Required for released and retired versions: the hash the folder must keep.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesIndex {
    pub active: String,
    #[serde(default)]
    pub shadow: Option<String>,
    pub versions: BTreeMap<String, IndexEntry>,
}

/// The rules root folder (`rules/`) with its index.
#[derive(Debug, Clone)]
pub struct RulesRoot {
    pub dir: PathBuf,
    pub index: RulesIndex,
}

impl RulesRoot {
    pub fn open(dir: &Path) -> Result<RulesRoot, RuleSetError> {
        let path = dir.join("index.json");
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RuleSetError::one(&shown, "", format!("cannot read the rules index: {e}"))
        })?;
        let index: RulesIndex =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| {
                    RuleSetError::one(
                        &shown,
                        format!("/{}", e.path().to_string().replace('.', "/")),
                        e.inner().to_string(),
                    )
                })?;
        Ok(RulesRoot {
            dir: dir.to_path_buf(),
            index,
        })
    }

    pub fn version_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Loads the version `key` (e.g. the active one) and refuses it when the index records a
    /// hash that the folder no longer has: an edited released version is never used.
    pub fn load_version(&self, key: &str) -> Result<RuleSet, RuleSetError> {
        let rs = RuleSet::load(&self.version_dir(key))?;
        if let Some(recorded) = self.index.versions.get(key).and_then(|e| e.sha256.as_ref())
            && *recorded != rs.sha256
        {
            return Err(RuleSetError::one(
                self.dir.join("index.json").display().to_string(),
                format!("/versions/{}/sha256", key.replace('/', "~1")),
                format!(
                    "{key} has changed since its hash was recorded (recorded {recorded}, now {}): released versions are immutable",
                    rs.sha256
                ),
            ));
        }
        Ok(rs)
    }

    /// The active version, hash-checked.
    pub fn load_active(&self) -> Result<RuleSet, RuleSetError> {
        self.load_version(&self.index.active)
    }

    /// The shadow version, if the index names one (hash-checked like the active one).
    pub fn load_shadow(&self) -> Result<Option<RuleSet>, RuleSetError> {
        self.index
            .shadow
            .as_deref()
            .map(|key| self.load_version(key))
            .transpose()
    }

    /// Loads every listed version and checks the index against them: the active and shadow
    /// versions are listed, statuses agree with the manifests, released hashes are unchanged,
    /// and no version folder on disk is missing from the index.
    pub fn check_all(&self) -> (Vec<RuleSet>, Vec<RuleError>) {
        let index_file = self.dir.join("index.json").display().to_string();
        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        let mut err = |pointer: String, message: String| {
            errors.push(RuleError::new(index_file.clone(), pointer, message))
        };
        for (field, key) in [
            ("active", Some(&self.index.active)),
            ("shadow", self.index.shadow.as_ref()),
        ] {
            if let Some(k) = key
                && !self.index.versions.contains_key(k)
            {
                err(
                    format!("/{field}"),
                    format!("{k} is not listed under versions"),
                );
            }
        }
        for key in on_disk_versions(&self.dir) {
            if !self.index.versions.contains_key(&key) {
                err(
                    "/versions".into(),
                    format!("the folder {key} is not listed; add it (status draft) or remove it"),
                );
            }
        }
        let mut load_errors = Vec::new();
        for (key, entry) in &self.index.versions {
            let ptr = format!("/versions/{}", key.replace('/', "~1"));
            match RuleSet::load(&self.version_dir(key)) {
                Err(e) => load_errors.extend(e.errors),
                Ok(rs) => {
                    if rs.manifest.status != entry.status {
                        err(
                            format!("{ptr}/status"),
                            format!(
                                "the index says {} but the manifest says {}",
                                entry.status.name(),
                                rs.manifest.status.name()
                            ),
                        );
                    }
                    match (&entry.sha256, entry.status) {
                        (Some(h), _) if *h != rs.sha256 => err(
                            format!("{ptr}/sha256"),
                            format!(
                                "{key} has changed since it was recorded (now {}): released versions are immutable, put changes in a new version folder",
                                rs.sha256
                            ),
                        ),
                        (None, ReleaseStatus::Released | ReleaseStatus::Retired) => err(
                            format!("{ptr}/sha256"),
                            format!(
                                "a {} version needs its sha256 recorded (currently {})",
                                entry.status.name(),
                                rs.sha256
                            ),
                        ),
                        _ => {}
                    }
                    loaded.push(rs);
                }
            }
        }
        errors.extend(load_errors);
        (loaded, errors)
    }
}

/// `<id>/<version>` folders under the root that hold a `ruleset.yaml`.
fn on_disk_versions(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(ids) = std::fs::read_dir(root) else {
        return out;
    };
    for id in ids.flatten().filter(|e| e.path().is_dir()) {
        let Ok(versions) = std::fs::read_dir(id.path()) else {
            continue;
        };
        for v in versions.flatten() {
            if v.path().join("ruleset.yaml").is_file() {
                out.push(format!(
                    "{}/{}",
                    id.file_name().to_string_lossy(),
                    v.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}
