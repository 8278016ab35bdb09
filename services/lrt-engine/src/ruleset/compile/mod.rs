//! Semantic compilation of parsed rule files into a [`RuleSet`], as a sequence of passes.
//!
//! Each pass reads the files and what the passes before it produced, reports every problem it
//! finds with file and JSON pointer (and a help line where one helps), and hands its product to
//! the next:
//!
//! 1. [`manifest`]: the manifest exists once, its version equals the folder name and its id the
//!    parent folder; it lists the knowledge-base sections items may cite.
//! 2. [`parameters`]: names are unique and cited; the parameters the engine itself reads exist
//!    with the units it reads them in (§9 D8's plausibility parameters: all or none).
//! 3. [`concepts`]: value sets name concepts the engine knows, in its canonical units; each code
//!    means one concept; validity windows name time parameters.
//! 4. [`catalogues`]: hard stops, mechanisms, recommendations and consult triggers, each code
//!    once; the data-quality codes rules emit; the code sets.
//! 5. [`facts`]: the engine's facts, then one or two per rule-set item (ids unique, no clash with
//!    an engine fact); the groups the rules write.
//! 6. [`nodes`]: each series, score, classification and rule: conditions name known facts,
//!    parameters, groups and values with matching units; score bands cover every value; `emits`
//!    name catalogue entries.
//! 7. [`order`]: every group written is read; (format 2) decisions carry `evidence`; no
//!    dependency cycle; the nodes in evaluation order.
//! 8. [`outputs`]: the items the assessment is built from exist, with attributes of the right type.
//!
//! Passes 2 to 6 all run before compilation stops on their problems, so an author sees every
//! problem of the files at once; the later passes need a complete set of nodes.

mod catalogues;
mod concepts;
mod emit;
mod facts;
mod manifest;
mod nodes;
mod order;
mod outputs;
mod parameters;
mod score;

use std::path::Path;
use std::sync::Arc;

use super::condition::Problem;
use super::schema::ParsedFile;
use super::{Node, NodeKind, RuleError, RuleSet, RuleSetError};

use catalogues::Catalogues;

/// The problems found so far, in the order the passes found them.
pub(super) struct Errors(Vec<RuleError>);

impl Errors {
    pub(super) fn push(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(RuleError::new(file, pointer, message));
    }
    pub(super) fn push_help(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.0
            .push(RuleError::new(file, pointer, message).with_help(Some(help.into())));
    }
    fn problems(&mut self, file: &str, problems: Vec<Problem>) {
        for p in problems {
            self.0
                .push(RuleError::new(file, p.pointer, p.message).with_help(p.help));
        }
    }
    /// `Err` with every problem, if there is one.
    fn check(&mut self) -> Result<(), RuleSetError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RuleSetError {
                errors: std::mem::take(&mut self.0),
            })
        }
    }
}

/// What every pass after the manifest shares: the problems found so far, the sections items may
/// cite, and where a problem of the rule set as a whole is reported.
pub(super) struct Ctx {
    pub(super) errors: Errors,
    sections: Vec<String>,
    kb_version: String,
    /// The rule-set folder as shown in problems that belong to no one file.
    dir: String,
}

impl Ctx {
    /// Checks that `cites` names at least one section, each one the knowledge base has.
    pub(super) fn cites(&mut self, file: &str, ptr: &str, cites: &str) {
        let found = cited_sections(cites);
        if found.is_empty() {
            self.errors.push_help(
                file,
                format!("{ptr}/cites"),
                "cites no knowledge-base section",
                "write the section(s) this item encodes, e.g. `cites: \"§2.7\"`",
            );
        }
        for s in found {
            if !self.sections.contains(&s) {
                self.errors.push(
                    file,
                    format!("{ptr}/cites"),
                    format!(
                        "cites {s}, which knowledge base {} does not have (sections: {})",
                        self.kb_version,
                        self.sections.join(" ")
                    ),
                );
            }
        }
    }
}

/// `§2.1`, `§6.1` ... found in a `cites` text.
fn cited_sections(cites: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cites;
    while let Some(pos) = rest.find('§') {
        let after = &rest[pos + '§'.len_utf8()..];
        let len = after
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit()
                    || (*c == '.' && after[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
            })
            .count();
        if len > 0 {
            out.push(format!("§{}", &after[..len]));
        }
        rest = &after[len..];
    }
    out
}

/// Runs the passes over the parsed files of the rule-set folder `dir`.
pub(crate) fn compile(
    dir: &Path,
    files: Vec<ParsedFile>,
    sha256: String,
) -> Result<RuleSet, RuleSetError> {
    let (manifest, mut ctx) = manifest::check(dir, &files)?;
    let params = parameters::Parameters::compile(&files, &mut ctx);
    let engine = params.engine(&mut ctx);
    let concepts = concepts::Concepts::compile(&files, &params, &mut ctx);
    let catalogues = Catalogues::compile(&files, &concepts, &mut ctx);
    let declared = facts::Declared::collect(&files, &catalogues.hard_stops, &mut ctx);
    let groups = facts::Groups::collect(&declared);
    let nodes = nodes::compile(&declared, &groups, &params, &catalogues, &mut ctx);
    ctx.errors.check()?;
    let nodes: Vec<Node> = nodes
        .into_iter()
        .map(|n| n.expect("every node compiled when there is no problem"))
        .collect();
    let (mut nodes, groups) = order::order(nodes, &declared.produced, groups, manifest.format())?;
    let out = outputs::resolve(&nodes, &ctx.dir)?;
    let facts = declared.facts;
    let (codes, concepts) = concepts.into_parts();
    // Criterion texts for explanations, computed once here.
    for node in &mut nodes {
        match &mut node.kind {
            NodeKind::Rule(r) => {
                r.texts = super::describe::leaf_texts(&r.when, &facts, &params.list, &groups);
            }
            NodeKind::Classification(c) => {
                for case in &mut c.cases {
                    case.texts =
                        super::describe::leaf_texts(&case.when, &facts, &params.list, &groups);
                }
            }
            NodeKind::Series(_) | NodeKind::Score(_) => {}
        }
    }
    let ident = crate::assessment::RuleSetRef {
        id: Arc::from(manifest.id.as_str()),
        version: Arc::from(manifest.version.as_str()),
        sha256: Arc::from(sha256.as_str()),
    };
    let Catalogues {
        hard_stops,
        mechanisms,
        recommendations,
        consult_triggers,
        data_quality,
        codesets,
        unmapped_codes,
    } = catalogues;
    Ok(RuleSet {
        presentation: presentation(&files),
        codesets,
        unmapped_codes,
        ident,
        manifest,
        sha256,
        dir: dir.to_path_buf(),
        codes,
        concepts,
        params: params.list,
        param_index: params.index,
        engine,
        hard_stops,
        mechanisms,
        recommendations,
        consult_triggers,
        rule_data_quality: data_quality,
        facts,
        nodes,
        groups,
        out,
    })
}

/// The sections the service reads as content (reason and data-quality texts, cards, order
/// codes), as written, with the file each came from.
fn presentation(files: &[ParsedFile]) -> Vec<super::PresentationSection> {
    files
        .iter()
        .flat_map(|f| {
            [
                ("reason_texts", &f.file.reason_texts),
                ("data_quality_texts", &f.file.data_quality_texts),
                ("cards", &f.file.cards),
                ("order_codes", &f.file.order_codes),
            ]
            .into_iter()
            .filter_map(|(section, value)| {
                value.as_ref().map(|v| super::PresentationSection {
                    file: f.display.clone(),
                    section,
                    value: v.clone(),
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cited_sections() {
        assert_eq!(cited_sections("§2.1, §6.1 (EOLIA)"), vec!["§2.1", "§6.1"]);
        assert_eq!(cited_sections("see §4.4."), vec!["§4.4"]);
        assert!(cited_sections("none").is_empty());
        assert!(cited_sections("§").is_empty());
    }
}
