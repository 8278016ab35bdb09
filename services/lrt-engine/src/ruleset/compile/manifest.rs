//! Pass 1: the manifest (`ruleset:` in `ruleset.yaml`), checked against the folder it is in.

use std::path::Path;

use super::super::RuleSetError;
use super::super::files::Manifest;
use super::super::schema::ParsedFile;
use super::{Ctx, Errors};

/// The manifest, and the context the later passes share (its cited sections).
///
/// A missing manifest stops compilation at once: without it no citation can be checked.
pub(super) fn check(dir: &Path, files: &[ParsedFile]) -> Result<(Manifest, Ctx), RuleSetError> {
    let dir_shown = dir.display().to_string();
    let mut errors = Errors(Vec::new());
    let mut manifest: Option<(Manifest, &str)> = None;
    for f in files {
        if let Some(m) = &f.file.ruleset {
            if f.name != "ruleset.yaml" {
                errors.push(
                    &f.display,
                    "/ruleset",
                    "the manifest belongs in ruleset.yaml only",
                );
            } else {
                manifest = Some((m.clone(), &f.display));
            }
        }
    }
    let Some((manifest, manifest_file)) = manifest else {
        errors.push(
            &dir_shown,
            "",
            "ruleset.yaml has no `ruleset` manifest section",
        );
        return Err(RuleSetError { errors: errors.0 });
    };
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if folder.as_deref() != Some(manifest.version.as_str()) {
        errors.push(
            manifest_file,
            "/ruleset/version",
            format!(
                "version {} must equal the folder name ({}): each version lives in its own immutable folder",
                manifest.version,
                folder.unwrap_or_default()
            ),
        );
    }
    let parent = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if parent.as_deref() != Some(manifest.id.as_str()) {
        errors.push(
            manifest_file,
            "/ruleset/id",
            format!(
                "id {} must equal the parent folder name ({})",
                manifest.id,
                parent.unwrap_or_default()
            ),
        );
    }
    let ctx = Ctx {
        errors,
        sections: manifest.knowledge_base.sections.clone(),
        kb_version: manifest.knowledge_base.version.clone(),
        dir: dir_shown,
    };
    Ok((manifest, ctx))
}
