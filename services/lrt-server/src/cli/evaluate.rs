//! `lrt evaluate --case FILE [--id ID]` and `lrt evaluate --bundle FILE --patient ID`, each with
//! `[--now T] [--ruleset DIR]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use lrt_engine::PatientSnapshot;
use lrt_engine::casefile::CaseFile;
use lrt_fhir::{Collected, MapOptions};
use serde_json::Value;

use super::{CliError, Ctx};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["case", "bundle"])))]
pub struct Args {
    /// A case in the knowledge base §6.2 layout (one case, or a file with `cases`; `expected` is ignored).
    #[arg(long)]
    case: Option<PathBuf>,
    /// Evaluate only the case with this id (of a file with several cases).
    #[arg(long, requires = "case")]
    id: Option<String>,
    /// A FHIR R4 Bundle (searchset, collection or transaction) or a single resource.
    #[arg(long, requires = "patient")]
    bundle: Option<PathBuf>,
    /// The patient (`Patient.id`) to evaluate from the Bundle.
    #[arg(long, requires = "bundle")]
    patient: Option<String>,
    /// Evaluation time (RFC 3339); default: the case's `now`, or the time of the patient's newest observation.
    #[arg(long, value_parser = parse_time)]
    now: Option<DateTime<Utc>>,
    /// A rule-set version folder; default: the active version of the rules index.
    #[arg(long)]
    ruleset: Option<PathBuf>,
    /// Print the patient snapshot built from the Bundle instead of the assessment.
    #[arg(long, requires = "bundle")]
    snapshot: bool,
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 date-time with a time zone: {e}"))
        .and_then(lrt_engine::time_window::check)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    match (&args.case, &args.bundle, &args.patient) {
        (Some(case), _, _) => cases(ctx, case, &args),
        (None, Some(bundle), Some(patient)) => bundle_file(ctx, bundle, patient, &args),
        _ => Err(CliError::BadInput(
            "give --case FILE, or --bundle FILE with --patient ID".into(),
        )),
    }
}

fn assessment_json(assessment: &lrt_engine::Assessment, case_id: Option<&str>) -> Value {
    let mut v = serde_json::to_value(assessment).expect("an assessment serialises");
    if let (Value::Object(map), Some(id)) = (&mut v, case_id) {
        map.insert("case_id".into(), Value::String(id.to_string()));
    }
    v
}

fn cases(ctx: &Ctx, path: &Path, args: &Args) -> Result<ExitCode, CliError> {
    let file = CaseFile::read(path).map_err(|e| CliError::BadInput(e.to_string()))?;
    let shown = path.display().to_string();
    let cases: Vec<_> = match &args.id {
        Some(id) => {
            let found: Vec<_> = file.cases.into_iter().filter(|c| &c.id == id).collect();
            if found.is_empty() {
                return Err(CliError::BadInput(format!(
                    "{shown}: no case with id {id:?}"
                )));
            }
            found
        }
        None => file.cases,
    };
    let rules = ctx.ruleset(args.ruleset.as_ref())?;
    let mut problems = Vec::new();
    for case in &cases {
        let now = args.now.unwrap_or(case.now);
        for issue in case.snapshot.validate(&rules, now) {
            let prefix = if case.path.is_empty() {
                String::new()
            } else {
                format!("{}.", case.path)
            };
            problems.push(format!("{shown}: {prefix}{issue}"));
        }
    }
    if !problems.is_empty() {
        return Err(CliError::BadInput(problems.join("\n")));
    }
    let mut out: Vec<Value> = cases
        .iter()
        .map(|case| {
            assessment_json(
                &lrt_engine::evaluate(&rules, &case.snapshot, args.now.unwrap_or(case.now)),
                Some(&case.id),
            )
        })
        .collect();
    let value = if out.len() == 1 {
        out.remove(0)
    } else {
        Value::Array(out)
    };
    ctx.print(&value)?;
    Ok(ExitCode::SUCCESS)
}

/// The FHIR data of a file: one JSON document (a Bundle or a resource) or NDJSON (one per line,
/// as a bulk export or the shared MIMIC file holds them). An OperationOutcome is refused.
pub fn read_payloads(path: &Path) -> Result<Collected, CliError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::BadInput(format!("{shown}: cannot read: {e}")))?;
    parse_payloads(&text, &shown)
}

/// The FHIR data of a file's text (see [`read_payloads`]); `shown` names the file in errors.
pub fn parse_payloads(text: &str, shown: &str) -> Result<Collected, CliError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let payloads = match lrt_fhir::parse(text) {
        Ok(p) => vec![p],
        // NDJSON when the first line alone is a document; else the error is the document's.
        Err(whole) => match lines.next().map(|(_, first)| lrt_fhir::parse(first)) {
            Some(Ok(first)) => {
                let mut all = vec![first];
                for (i, line) in lines {
                    all.push(lrt_fhir::parse(line).map_err(|e| {
                        CliError::BadInput(format!("{shown}: line {}: {e}", i + 1))
                    })?);
                }
                all
            }
            _ => return Err(CliError::BadInput(format!("{shown}: {whole}"))),
        },
    };
    let mut collected = Collected::default();
    for payload in payloads {
        if let Some(issues) = &payload.outcome {
            return Err(CliError::BadInput(format!(
                "{shown}: an OperationOutcome, not data: {}",
                issues.join("; ")
            )));
        }
        collected.add(payload);
    }
    Ok(collected)
}

/// Reads a Bundle file (or NDJSON of them) and builds the patient's snapshot. Kinds of resources present for the
/// patient count as searched (a Bundle file is the whole record the user gives).
pub fn snapshot_from_bundle(
    rules: &lrt_engine::RuleSet,
    path: &Path,
    patient: &str,
    now: Option<DateTime<Utc>>,
) -> Result<(PatientSnapshot, DateTime<Utc>), CliError> {
    let shown = path.display().to_string();
    let collected = read_payloads(path)?;
    let now = match now.or_else(|| collected.newest_observation(patient)) {
        Some(t) => t,
        None => {
            return Err(CliError::BadInput(format!(
                "{shown}: no observation with a time for patient {patient:?}; give --now"
            )));
        }
    };
    let opts = MapOptions {
        searched: collected.present_kinds(patient),
        warn_other_patients: false,
    };
    Ok((
        lrt_fhir::build_snapshot(rules, &collected, patient, now, opts),
        now,
    ))
}

fn bundle_file(ctx: &Ctx, path: &Path, patient: &str, args: &Args) -> Result<ExitCode, CliError> {
    let rules = ctx.ruleset(args.ruleset.as_ref())?;
    let (snapshot, now) = snapshot_from_bundle(&rules, path, patient, args.now)?;
    if snapshot.data_quality.iter().any(|d| d == "missing:patient")
        && snapshot.observations.is_empty()
    {
        return Err(CliError::BadInput(format!(
            "{}: no Patient/{patient} and no data for it",
            path.display()
        )));
    }
    if args.snapshot {
        let mut v = serde_json::to_value(&snapshot).expect("a snapshot serialises");
        if let Value::Object(map) = &mut v {
            map.insert("now".into(), Value::String(now.to_rfc3339()));
        }
        ctx.print(&v)?;
    } else {
        ctx.print(&assessment_json(
            &lrt_engine::evaluate(&rules, &snapshot, now),
            None,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
