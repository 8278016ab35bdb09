//! `lrt rules diff A B (--cases FILE... | --bundle FILE [--patient ID] [--at-every-abg])`: how
//! two rule-set versions differ on the same inputs, before a version goes live.
//!
//! Each input (a case, or a patient of a Bundle at a time) is evaluated under both versions (the
//! FHIR mapping too: code sets are part of a version). What a clinician or the LRT would see
//! differently is listed per input: the ECMO category, its urgency, the recommendations, the
//! consult triggers and the patient-view card's summary. A summary table follows. `--json`
//! prints the same as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use lrt_engine::casefile::CaseFile;
use lrt_engine::snapshot::PatientSnapshot;
use lrt_engine::{Assessment, RuleSet};
use serde_json::{Value, json};

use super::{CliError, Ctx};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version compared from: a folder, or a version of the rules root (`0.1.0`).
    a: String,
    /// The version compared to.
    b: String,
    /// Case files (one case or `{"cases": [...]}`).
    #[arg(long, num_args = 1.., conflicts_with = "bundle")]
    cases: Vec<PathBuf>,
    /// A FHIR Bundle, a single resource, or NDJSON with one Bundle per line.
    #[arg(long, required_unless_present = "cases")]
    bundle: Option<PathBuf>,
    /// Only this patient of the Bundle (default: every Patient in it).
    #[arg(long, requires = "bundle")]
    patient: Option<String>,
    /// Evaluate at the time of every arterial PaO2 (default: at the patient's newest observation).
    #[arg(long, requires = "bundle")]
    at_every_abg: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn load(ctx: &Ctx, name: &str) -> Result<RuleSet, CliError> {
    super::ruleset_named(&ctx.rules_dir, name)
}

/// One thing evaluated under both versions.
struct Input {
    label: String,
    /// The snapshot under A and under B, and the evaluation time.
    snapshots: (PatientSnapshot, PatientSnapshot),
    now: DateTime<Utc>,
    patient: String,
}

/// What one version said, in the terms that are compared.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    category: Option<String>,
    urgency: Option<String>,
    recommendations: BTreeSet<String>,
    consults: BTreeSet<String>,
    summary: String,
}

/// A version's card texts and order codes, read once (refused when `rules check` would).
struct Cards {
    text: lrt_hooks::cards::templates::CardText,
    order_codes: lrt_hooks::orders::OrderCodes,
}

fn cards_of(rules: &RuleSet) -> Result<Cards, CliError> {
    let text = lrt_hooks::cards::templates::CardText::for_rules(rules)
        .map_err(|errors| CliError::RuleSet(lrt_engine::RuleSetError { errors }))?;
    let order_codes = lrt_hooks::orders::OrderCodes::for_rules(rules)
        .map_err(|e| CliError::BadInput(format!("{}: {}", rules.label(), e.0)))?;
    Ok(Cards { text, order_codes })
}

fn seen(
    rules: &RuleSet,
    cards: &Cards,
    snapshot: &PatientSnapshot,
    a: &Assessment,
    patient: &str,
) -> Seen {
    Seen {
        category: a.ecmo_category.as_deref().map(str::to_string),
        urgency: a.ecmo_urgency.map(|u| format!("{u:?}").to_lowercase()),
        recommendations: a.recommendations.iter().map(|r| r.to_string()).collect(),
        consults: a
            .consult_triggers
            .iter()
            .map(|c| c.code.to_string())
            .collect(),
        summary: card_summary(rules, cards, snapshot, a, patient),
    }
}

/// The summary of the patient-view card `lrt serve` would answer for this assessment.
fn card_summary(
    rules: &RuleSet,
    cards: &Cards,
    snapshot: &PatientSnapshot,
    a: &Assessment,
    patient: &str,
) -> String {
    use lrt_hooks::cards::{CardInput, respond};
    let Some(service) = lrt_hooks::services::find("lrt-patient-view") else {
        return String::new();
    };
    let body = json!({"hook": "patient-view", "hookInstance": uuid::Uuid::nil().to_string(),
        "context": {"userId": "Practitioner/diff", "patientId": patient}});
    let (Ok(request), Ok(dashboard)) = (
        lrt_hooks::model::HookRequest::from_slice(body.to_string().as_bytes()),
        url::Url::parse("http://localhost/"),
    ) else {
        return String::new();
    };
    let input = CardInput {
        service,
        request: &request,
        rules,
        text: &cards.text,
        snapshot: Some(snapshot),
        evaluation_id: uuid::Uuid::nil(),
        dashboard: &dashboard,
        order_codes: &cards.order_codes,
    };
    respond(&input, a)
        .cards
        .first()
        .map(|c| c.summary.to_string())
        .unwrap_or_else(|| "(no card)".into())
}

fn case_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        let file = CaseFile::read(p).map_err(|e| CliError::BadInput(e.to_string()))?;
        for case in file.cases {
            out.push(Input {
                label: format!("{}#{}", p.display(), case.id),
                snapshots: (case.snapshot.clone(), case.snapshot),
                now: case.now,
                patient: case.id,
            });
        }
    }
    Ok(out)
}

fn bundle_inputs(args: &Args, a: &RuleSet, b: &RuleSet) -> Result<Vec<Input>, CliError> {
    let path = args
        .bundle
        .as_ref()
        .expect("clap requires --bundle without --cases");
    let collected = super::evaluate::read_payloads(path)?;
    let patients: Vec<String> = match &args.patient {
        Some(p) => vec![p.clone()],
        None => collected.patient_ids(),
    };
    if patients.is_empty() {
        return Err(CliError::BadInput(format!(
            "{}: no Patient resource; give --patient",
            path.display()
        )));
    }
    let mut out = Vec::new();
    for patient in patients {
        let opts = lrt_fhir::replay::file_options(&collected, &patient);
        let times: Vec<DateTime<Utc>> = if args.at_every_abg {
            lrt_fhir::replay::arterial_pao2_times(a, &collected, &patient, opts)
        } else {
            collected.newest_observation(&patient).into_iter().collect()
        };
        for now in times {
            out.push(Input {
                label: format!("{patient}@{}", now.format("%Y-%m-%dT%H:%MZ")),
                snapshots: (
                    lrt_fhir::build_snapshot(a, &collected, &patient, now, opts),
                    lrt_fhir::build_snapshot(b, &collected, &patient, now, opts),
                ),
                now,
                patient: patient.clone(),
            });
        }
    }
    Ok(out)
}

fn set_change(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Option<Value> {
    let added: Vec<&String> = b.difference(a).collect();
    let removed: Vec<&String> = a.difference(b).collect();
    (!added.is_empty() || !removed.is_empty()).then(|| json!({"added": added, "removed": removed}))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    let a = load(ctx, &args.a)?;
    let b = load(ctx, &args.b)?;
    let (cards_a, cards_b) = (cards_of(&a)?, cards_of(&b)?);
    let inputs = if args.cases.is_empty() {
        bundle_inputs(&args, &a, &b)?
    } else {
        case_inputs(&args.cases)?
    };
    let mut changes = Vec::new();
    let mut categories: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rec_added: BTreeMap<String, usize> = BTreeMap::new();
    let mut rec_removed: BTreeMap<String, usize> = BTreeMap::new();
    let mut consults = [0usize; 2];
    let mut cards = [0usize; 2];
    for input in &inputs {
        let ea = lrt_engine::evaluate(&a, &input.snapshots.0, input.now);
        let eb = lrt_engine::evaluate(&b, &input.snapshots.1, input.now);
        let sa = seen(&a, &cards_a, &input.snapshots.0, &ea, &input.patient);
        let sb = seen(&b, &cards_b, &input.snapshots.1, &eb, &input.patient);
        let name = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".into());
        *categories
            .entry((name(&sa.category), name(&sb.category)))
            .or_default() += 1;
        consults[0] += usize::from(!sa.consults.is_empty());
        consults[1] += usize::from(!sb.consults.is_empty());
        cards[0] += usize::from(sa.category.as_deref() != Some("not_indicated"));
        cards[1] += usize::from(sb.category.as_deref() != Some("not_indicated"));
        let mut change = serde_json::Map::new();
        if sa.category != sb.category {
            change.insert("category".into(), json!([sa.category, sb.category]));
            *counts.entry("category").or_default() += 1;
        }
        if sa.urgency != sb.urgency {
            change.insert("urgency".into(), json!([sa.urgency, sb.urgency]));
            *counts.entry("urgency").or_default() += 1;
        }
        if let Some(c) = set_change(&sa.recommendations, &sb.recommendations) {
            for r in sb.recommendations.difference(&sa.recommendations) {
                *rec_added.entry(r.clone()).or_default() += 1;
            }
            for r in sa.recommendations.difference(&sb.recommendations) {
                *rec_removed.entry(r.clone()).or_default() += 1;
            }
            change.insert("recommendations".into(), c);
            *counts.entry("recommendations").or_default() += 1;
        }
        if let Some(c) = set_change(&sa.consults, &sb.consults) {
            change.insert("consult_triggers".into(), c);
            *counts.entry("consult_triggers").or_default() += 1;
        }
        if sa.summary != sb.summary {
            change.insert("card_summary".into(), json!([sa.summary, sb.summary]));
            *counts.entry("card_summary").or_default() += 1;
        }
        if !change.is_empty() {
            change.insert("input".into(), json!(input.label));
            changes.push(Value::Object(change));
        }
    }
    let summary = json!({
        "a": format!("{} {}", a.id(), a.version()),
        "b": format!("{} {}", b.id(), b.version()),
        "inputs": inputs.len(),
        "changed": changes.len(),
        "changed_by_field": counts,
        "category_transitions": categories
            .iter()
            .map(|((from, to), n)| json!({"from": from, "to": to, "count": n}))
            .collect::<Vec<_>>(),
        "recommendations_added": rec_added,
        "recommendations_removed": rec_removed,
        "with_consult_trigger": {"a": consults[0], "b": consults[1]},
        "category_other_than_not_indicated": {"a": cards[0], "b": cards[1]},
    });
    if args.json {
        ctx.print(&json!({"summary": summary, "changes": changes}))?;
    } else {
        super::write_stdout(&text_report(&changes, &summary))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn text_report(changes: &[Value], summary: &Value) -> String {
    let mut t = String::new();
    for c in changes {
        let _ = writeln!(t, "{}", c["input"].as_str().unwrap_or_default());
        for key in ["category", "urgency", "card_summary"] {
            if let Some(pair) = c.get(key) {
                let _ = writeln!(t, "  {key}: {} -> {}", pair[0], pair[1]);
            }
        }
        for key in ["recommendations", "consult_triggers"] {
            if let Some(d) = c.get(key) {
                let _ = writeln!(t, "  {key}: +{} -{}", d["added"], d["removed"]);
            }
        }
    }
    let _ = writeln!(
        t,
        "\n{} -> {}: {} inputs, {} changed",
        summary["a"].as_str().unwrap_or_default(),
        summary["b"].as_str().unwrap_or_default(),
        summary["inputs"],
        summary["changed"]
    );
    let _ = writeln!(
        t,
        "\n| ECMO category (a) | ECMO category (b) | inputs |\n|---|---|---|"
    );
    for row in summary["category_transitions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            row["from"].as_str().unwrap_or_default(),
            row["to"].as_str().unwrap_or_default(),
            row["count"]
        );
    }
    let _ = writeln!(t, "\n| changed field | inputs |\n|---|---|");
    for (k, v) in summary["changed_by_field"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(t, "| {k} | {v} |");
    }
    let _ = writeln!(t, "\n| recommendation | added | removed |\n|---|---|---|");
    let mut codes: BTreeSet<&String> = BTreeSet::new();
    for k in ["recommendations_added", "recommendations_removed"] {
        codes.extend(summary[k].as_object().into_iter().flatten().map(|(c, _)| c));
    }
    for c in codes {
        let _ = writeln!(
            t,
            "| {c} | {} | {} |",
            summary["recommendations_added"][c].as_u64().unwrap_or(0),
            summary["recommendations_removed"][c].as_u64().unwrap_or(0)
        );
    }
    let _ = writeln!(
        t,
        "\ninputs with a consult trigger: {} -> {}; with a category other than not_indicated: {} -> {}",
        summary["with_consult_trigger"]["a"],
        summary["with_consult_trigger"]["b"],
        summary["category_other_than_not_indicated"]["a"],
        summary["category_other_than_not_indicated"]["b"]
    );
    t
}
