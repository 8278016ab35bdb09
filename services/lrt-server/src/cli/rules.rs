//! `lrt rules check [DIR]` and `lrt rules test [DIR]`.
//!
//! DIR is a rules root (with `index.json`: every listed version is checked) or one version
//! folder; default: the rules root.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lrt_engine::RuleSet;
use lrt_engine::ruleset::RuleError;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::orders::OrderCodes;
use serde_json::json;

use super::{CliError, Ctx};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate rule files (JSON Schema, references, units, citations, index hashes).
    Check {
        /// A rules root or one rule-set version folder.
        dir: Option<PathBuf>,
    },
    /// Run the test cases of rule-set versions and print `N passed, M failed`.
    Test {
        /// A rules root or one rule-set version folder.
        dir: Option<PathBuf>,
    },
    /// Evaluate two versions on the same inputs and print what changes.
    Diff(super::diff::Args),
}

fn is_root(dir: &Path) -> bool {
    dir.join("index.json").is_file()
}

/// Every rule set under `dir`, or all errors found: the engine's passes, then the
/// presentation passes of the card renderer (card texts, reasons catalogue, order codes).
fn load_all(dir: &Path) -> Result<Vec<RuleSet>, CliError> {
    let (loaded, mut errors) = if is_root(dir) {
        RulesRoot::open(dir)?.check_all()
    } else {
        match RuleSet::load(dir) {
            Ok(rs) => (vec![rs], Vec::new()),
            Err(e) => (Vec::new(), e.errors),
        }
    };
    for rs in &loaded {
        errors.extend(presentation_errors(rs));
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(lrt_engine::RuleSetError { errors }.into())
    }
}

/// The problems of a version's card texts and order codes.
pub fn presentation_errors(rs: &RuleSet) -> Vec<RuleError> {
    let mut errors = CardText::for_rules(rs).err().unwrap_or_default();
    let shown = rs.dir.display().to_string();
    match OrderCodes::for_rules(rs) {
        Ok(codes) => errors.extend(
            codes
                .check(rs)
                .into_iter()
                .map(|message| RuleError::new(shown.clone(), "", message)),
        ),
        Err(e) => errors.push(RuleError::new(shown, "", e.0)),
    }
    errors
}

fn describe(rs: &RuleSet) -> serde_json::Value {
    json!({
        "id": rs.id(),
        "version": rs.version(),
        "status": rs.manifest.status,
        "sha256": rs.sha256,
        "parameters": rs.params.len(),
        "items": rs.nodes.len(),
        "recommendations": rs.recommendations.len(),
        "mechanisms": rs.mechanisms.len(),
    })
}

pub fn run(ctx: &Ctx, cmd: Command) -> Result<ExitCode, CliError> {
    match cmd {
        Command::Diff(args) => super::diff::run(ctx, args),
        Command::Check { dir } => {
            let dir = dir.unwrap_or_else(|| ctx.rules_dir.clone());
            let all = load_all(&dir)?;
            ctx.print(
                &json!({ "ok": true, "rulesets": all.iter().map(describe).collect::<Vec<_>>() }),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { dir } => {
            let dir = dir.unwrap_or_else(|| ctx.rules_dir.clone());
            let all = load_all(&dir)?;
            let mut reports = Vec::new();
            let (mut passed, mut failed, mut file_errors) = (0, 0, 0);
            for rs in &all {
                let report = lrt_engine::rules_test::run(rs);
                for r in report.results.iter().filter(|r| !r.passed()) {
                    eprintln!("FAIL {} {} [{}]", rs.label(), r.id, r.file);
                    for p in &r.problems {
                        eprintln!("    {p}");
                    }
                }
                for e in &report.errors {
                    eprintln!("error: {e}");
                }
                for u in &report.uncovered {
                    eprintln!("uncovered: {} {u}", rs.label());
                }
                passed += report.passed();
                failed += report.failed();
                file_errors += report.errors.len();
                reports.push(json!({
                    "ruleset": describe(rs),
                    "passed": report.passed(),
                    "failed": report.failed(),
                    "failures": report.results.iter().filter(|r| !r.passed()).map(|r| json!({
                        "file": r.file, "id": r.id, "problems": r.problems,
                    })).collect::<Vec<_>>(),
                    "file_errors": report.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "uncovered": report.uncovered,
                }));
            }
            let summary = format!("{passed} passed, {failed} failed");
            ctx.print(&json!({ "summary": summary, "passed": passed, "failed": failed, "reports": reports }))?;
            eprintln!("{summary}");
            if file_errors > 0 {
                return Err(CliError::BadInput(format!(
                    "{file_errors} test file(s) could not be read"
                )));
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
