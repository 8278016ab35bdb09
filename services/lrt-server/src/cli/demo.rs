//! `lrt demo`: a readable tour. It evaluates the worked cases of the knowledge base under the
//! active rule set and prints one line per patient, then (unless `--cases-only`) starts the
//! service with its database and the FHIR server and shows a real card ([`super::live`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use lrt_engine::casefile::CaseFile;

use super::{CliError, Ctx, write_stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cases to evaluate; default: the active rule set's tests/worked-examples.json.
    #[arg(long)]
    case: Option<PathBuf>,
    /// Only print the worked cases; do not start the service, its database and the FHIR server.
    #[arg(long)]
    cases_only: bool,
}

fn or_dash(v: Option<String>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn join(v: &[Arc<str>]) -> Option<String> {
    Some(v.iter().map(|s| &**s).collect::<Vec<_>>().join(", "))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let rules = ctx.ruleset(None)?;
    let path = args
        .case
        .unwrap_or_else(|| rules.dir.join("tests/worked-examples.json"));
    let file = CaseFile::read(&path).map_err(|e| CliError::BadInput(e.to_string()))?;
    let mut lines = vec![
        format!(
            "lrt-cds demo: rule set {} from {}",
            rules.label(),
            rules.dir.display()
        ),
        format!("cases: {} ({} patients)", path.display(), file.cases.len()),
        String::new(),
        format!(
            "{:<6} {:>7} {:<10} {:<18} {:<9} {:<40} recommendations",
            "case", "P/F", "Berlin", "ECMO category", "urgency", "mechanisms"
        ),
    ];
    // The case to suggest for a closer look: the first ECMO-eligible one, else the first.
    let mut showcase: Option<String> = None;
    for case in &file.cases {
        let a = lrt_engine::evaluate(&rules, &case.snapshot, case.now);
        if showcase.is_none() && a.ecmo_category.as_deref() == Some("eligible") {
            showcase = Some(case.id.clone());
        }
        lines.push(format!(
            "{:<6} {:>7} {:<10} {:<18} {:<9} {:<40} {}",
            case.id,
            or_dash(a.pf_ratio.map(|v| format!("{v:.1}"))),
            or_dash(a.berlin_category.map(|s| s.to_string())),
            or_dash(a.ecmo_category.map(|s| s.to_string())),
            or_dash(a.ecmo_urgency.map(|u| u.name().to_string())),
            or_dash(join(&a.mechanisms)),
            or_dash(join(&a.recommendations)),
        ));
    }
    let showcase = showcase
        .or_else(|| file.cases.first().map(|c| c.id.clone()))
        .unwrap_or_default();
    let lrt = "cargo run -q -p lrt-server --bin lrt --";
    lines.extend([
        String::new(),
        "Where to look next:".into(),
        "  one assessment with its evidence and explanations:".into(),
        format!(
            "    {lrt} evaluate --case {} --id {showcase}",
            path.display()
        ),
        format!(
            "  the rule set and its guide: {}  and  rules/README.md",
            rules.dir.display()
        ),
        format!("  check and test the rules:  {lrt} rules test"),
    ]);
    write_stdout(&(lines.join("\n") + "\n"))?;
    if !args.cases_only {
        super::live::run(&ctx.rules_dir)?;
    }
    Ok(ExitCode::SUCCESS)
}
