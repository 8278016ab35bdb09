//! `lrt replay`: re-evaluates inputs with one rule-set version and writes the outcomes to
//! `replay_run` / `replay_outcome` (the work is [`lrt_server::service::replay`]; this module
//! reads the command line, the configuration and the files, shows progress and prints the
//! summary):
//! * `--from T --to T [--patient ID] [--source-version V]`: the stored active evaluations
//!   created in `[from, to)`, each at its own `evaluated_at`;
//! * `--bundle FILE [--patient ID]`: every patient of a FHIR Bundle (or NDJSON of Bundles) at
//!   the time of every arterial PaO2;
//! * `--resume RUN_ID`: goes on with an interrupted run (a finished one is not redone).
//!
//! Everything given is checked (rule set, file, times) before the database is touched.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lrt_engine::RuleSet;
use lrt_engine::ruleset::index::RulesRoot;
use lrt_server::service::replay::inputs::BundleRecord;
use lrt_server::service::replay::summary::Summary;
use lrt_server::service::replay::{
    self, BATCH, BundleFile, Inputs, Progress, Replay, ReplayError, RunParameters,
    SourceParameters, StoredFilter,
};
use lrt_server::service::store;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CliError, Ctx, write_stdout};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["from", "bundle", "resume"])))]
pub struct Args {
    /// Configuration file (TOML): the database and `rules_dir`; `DATABASE_URL` and `LRT_*`
    /// variables override it.
    #[arg(long, env = "LRT_CONFIG")]
    config: Option<PathBuf>,
    /// The database (instead of the configuration's `database_url` / `DATABASE_URL`).
    #[arg(long)]
    database_url: Option<String>,
    /// The rule-set version to replay with: a version of the rules root (`0.1.0`,
    /// `lrt-ruleset/0.1.0`) or a version folder; default: the active version.
    #[arg(long, conflicts_with = "resume")]
    ruleset: Option<String>,
    /// Stored evaluations created at or after this time (RFC 3339).
    #[arg(long, value_parser = super::evaluate::parse_time, requires = "to", conflicts_with_all = ["bundle", "resume"])]
    from: Option<DateTime<Utc>>,
    /// Stored evaluations created before this time (RFC 3339).
    #[arg(long, value_parser = super::evaluate::parse_time, requires = "from")]
    to: Option<DateTime<Utc>>,
    /// Only the stored evaluations made by this rule-set version (e.g. `0.1.0`).
    #[arg(long, requires = "from")]
    source_version: Option<String>,
    /// A FHIR R4 Bundle, a single resource, or NDJSON with one Bundle per line: each patient is
    /// evaluated at the time of each of their arterial PaO2s.
    #[arg(long, conflicts_with = "resume")]
    bundle: Option<PathBuf>,
    /// Only this patient (`Patient.id`).
    #[arg(long, conflicts_with = "resume")]
    patient: Option<String>,
    /// Go on with the run of this id (its inputs, rule set and file as it started).
    #[arg(long, value_parser = parse_run_id)]
    resume: Option<Uuid>,
    /// Evaluating threads; default: every core.
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_run_id(s: &str) -> Result<Uuid, String> {
    Uuid::try_parse(s).map_err(|e| format!("{s:?} is not a replay run id (a UUID): {e}"))
}

pub fn run(ctx: &Ctx, args: Args) -> Result<ExitCode, CliError> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from >= to
    {
        return Err(CliError::BadInput(format!(
            "--from {} is not before --to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    let config = super::serve::read_config(ctx, args.config.as_deref())?;
    let url = args
        .database_url
        .clone()
        .or(config.database_url.clone())
        .ok_or_else(|| {
            CliError::BadInput(
                "no database: give --database-url, or set DATABASE_URL or database_url".into(),
            )
        })?;
    let rules_dir = config.rules_dir.clone();
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let progress = CliProgress::new();
    if let Some(id) = args.resume {
        return super::serve::runtime()?.block_on(async move {
            let pool = connect(&url)?;
            replay::store::check_tables(&pool)
                .await
                .map_err(replay_error)?;
            let run = replay::store::run(&pool, id).await.map_err(replay_error)?;
            let parameters = replay::parameters(&run).map_err(replay_error)?;
            let rules = ruleset(&rules_dir, Some(&parameters.ruleset))?;
            let prepared = match parameters.source {
                SourceParameters::Bundle(file) => Prepared::Bundle(
                    read_bundle(Path::new(&file.file), file.patient.as_deref(), &rules)?.0,
                ),
                SourceParameters::Stored(filter) => Prepared::Stored(filter),
            };
            if run.state == "finished" {
                eprintln!("replay run {id} is finished: nothing redone");
            }
            let replay = Replay {
                pool: &pool,
                rules: &rules,
                threads,
                batch: BATCH,
                progress: &progress,
            };
            let summary = replay
                .resume(&run, prepared.inputs())
                .await
                .map_err(replay_error)?;
            report(ctx, &args, &summary)
        });
    }
    let rules = ruleset(&rules_dir, args.ruleset.as_deref())?;
    let ruleset_name = args
        .ruleset
        .clone()
        .unwrap_or_else(|| active_key(&rules_dir));
    let (parameters, prepared) = match (&args.bundle, args.from, args.to) {
        (Some(path), _, _) => {
            let (record, file) = read_bundle(path, args.patient.as_deref(), &rules)?;
            (SourceParameters::Bundle(file), Prepared::Bundle(record))
        }
        (None, Some(from), Some(to)) => {
            let filter = StoredFilter {
                from,
                to,
                patient: args.patient.clone(),
                source_version: args.source_version.clone(),
            };
            (
                SourceParameters::Stored(filter.clone()),
                Prepared::Stored(filter),
            )
        }
        _ => {
            return Err(CliError::BadInput(
                "give --from and --to (stored evaluations), --bundle FILE or --resume RUN_ID"
                    .into(),
            ));
        }
    };
    let parameters = RunParameters {
        ruleset: ruleset_name,
        source: parameters,
    };
    super::serve::runtime()?.block_on(async {
        let pool = connect(&url)?;
        let replay = Replay {
            pool: &pool,
            rules: &rules,
            threads,
            batch: BATCH,
            progress: &progress,
        };
        let summary = replay
            .start(&parameters, prepared.inputs())
            .await
            .map_err(replay_error)?;
        report(ctx, &args, &summary)
    })
}

/// The inputs of a run, read.
enum Prepared {
    Stored(StoredFilter),
    Bundle(BundleRecord),
}

impl Prepared {
    fn inputs(&self) -> Inputs<'_> {
        match self {
            Prepared::Stored(filter) => Inputs::Stored(filter),
            Prepared::Bundle(record) => Inputs::Bundle(record),
        }
    }
}

fn connect(url: &str) -> Result<sqlx::PgPool, CliError> {
    store::connect_lazy(url, 4).map_err(|e| CliError::BadInput(format!("database: {e}")))
}

/// A replay error as the CLI reports it: what the user gave is exit 2, a failure on the way 1.
fn replay_error(e: ReplayError) -> CliError {
    if e.is_bad_input() {
        CliError::BadInput(e.to_string())
    } else {
        CliError::Failed(e.to_string())
    }
}

/// The rule set named (see [`super::ruleset_named`]), or the active version of the rules root.
fn ruleset(rules_dir: &Path, name: Option<&str>) -> Result<RuleSet, CliError> {
    match name {
        Some(name) => super::ruleset_named(rules_dir, name),
        None => Ok(RulesRoot::open(rules_dir)?.load_active()?),
    }
}

/// The index key of the active version (what a run without `--ruleset` records).
fn active_key(rules_dir: &Path) -> String {
    RulesRoot::open(rules_dir)
        .map(|root| root.index.active)
        .unwrap_or_default()
}

/// Reads a Bundle file: its record (with the patients to replay) and what the run stores of
/// it (the absolute path, so that `--resume` works from any folder, and its SHA-256).
fn read_bundle(
    path: &Path,
    patient: Option<&str>,
    rules: &RuleSet,
) -> Result<(BundleRecord, BundleFile), CliError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::BadInput(format!("{shown}: cannot read: {e}")))?;
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let text = String::from_utf8(bytes)
        .map_err(|e| CliError::BadInput(format!("{shown}: not UTF-8: {e}")))?;
    let collected = super::evaluate::parse_payloads(&text, &shown)?;
    let in_file = collected.patient_ids();
    let patients = match patient {
        Some(p) if in_file.iter().any(|id| id == p) => vec![p.to_string()],
        Some(p) => {
            return Err(CliError::BadInput(format!("{shown}: no Patient/{p} in it")));
        }
        None if in_file.is_empty() => {
            return Err(CliError::BadInput(format!(
                "{shown}: no Patient resource in it"
            )));
        }
        None => in_file,
    };
    let record = BundleRecord::new(&collected, sha256.clone(), &patients);
    if record.blood_gases(rules).is_empty() {
        eprintln!(
            "{shown}: no arterial PaO2 (as {} maps the codes): nothing to replay",
            rules.label()
        );
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok((
        record,
        BundleFile {
            file: absolute.display().to_string(),
            sha256,
            patient: patient.map(str::to_string),
        },
    ))
}

fn report(ctx: &Ctx, args: &Args, summary: &Summary) -> Result<ExitCode, CliError> {
    if args.json {
        ctx.print(&serde_json::to_value(summary).expect("a summary serialises"))?;
    } else {
        write_stdout(&text_summary(summary))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary as text: a head line, the figures and small Markdown tables.
fn text_summary(s: &Summary) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "replay run {} ({} source, {} {}): {}",
        s.run_id, s.source, s.ruleset.id, s.ruleset.version, s.state
    );
    let _ = writeln!(
        t,
        "inputs {}, outcomes {}; this time: {} written, {} already held, {:.2} s, {:.0} snapshots/s (evaluation {:.2} s)",
        s.inputs,
        s.done,
        s.written,
        s.skipped_already_done,
        s.seconds,
        s.snapshots_per_second,
        s.evaluating_seconds
    );
    if s.skipped_purged > 0 {
        let _ = writeln!(
            t,
            "{} evaluations of the window have had their patient data purged (retention): not replayable",
            s.skipped_purged
        );
    }
    let _ = writeln!(t, "\n| ECMO category | outcomes |\n|---|---|");
    for (category, n) in &s.categories {
        let _ = writeln!(t, "| {category} | {n} |");
    }
    if let Some(c) = &s.changed {
        let _ = writeln!(
            t,
            "\n| changed against the stored evaluation ({} compared) | outcomes |\n|---|---|",
            c.compared
        );
        for (what, n) in [
            ("ECMO category", c.category),
            ("ECMO urgency", c.urgency),
            ("consult triggers", c.consult_triggers),
            ("any of these", c.any),
        ] {
            let _ = writeln!(t, "| {what} | {n} |");
        }
        if !c.category_transitions.is_empty() {
            let _ = writeln!(
                t,
                "\n| ECMO category (stored) | ECMO category (replayed) | outcomes |\n|---|---|---|"
            );
            for tr in &c.category_transitions {
                let _ = writeln!(t, "| {} | {} | {} |", tr.from, tr.to, tr.count);
            }
        }
    }
    t
}

/// Progress on standard error: a bar on a terminal, else a plain line every 5 seconds.
struct CliProgress {
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

struct Plain {
    planned: u64,
    started: Instant,
    last: Instant,
    first_done: u64,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl CliProgress {
    fn new() -> CliProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "replay [{elapsed_precise}] {wide_bar} {pos}/{len} ({rate} snapshots/s, {eta} left)",
            ) {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}", state.per_sec());
                    },
                ));
            }
            bar
        });
        let now = Instant::now();
        CliProgress {
            bar,
            plain: Mutex::new(Plain {
                planned: 0,
                started: now,
                last: now,
                first_done: 0,
            }),
        }
    }
}

impl Progress for CliProgress {
    fn planned(&self, planned: u64, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(planned);
            bar.set_position(done);
            bar.reset_eta();
            return;
        }
        if let Ok(mut p) = self.plain.lock() {
            p.planned = planned;
            p.first_done = done;
            p.started = Instant::now();
            p.last = p.started;
        }
        eprintln!("replay: {planned} inputs, {done} already done");
    }

    fn advanced(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let Ok(mut p) = self.plain.lock() else {
            return;
        };
        if p.last.elapsed() < PLAIN_EVERY {
            return;
        }
        p.last = Instant::now();
        let rate = (done - p.first_done.min(done)) as f64 / p.started.elapsed().as_secs_f64();
        let share = if p.planned > 0 {
            100.0 * done as f64 / p.planned as f64
        } else {
            100.0
        };
        eprintln!(
            "replay: {done}/{} ({share:.1} %), {rate:.0} snapshots/s",
            p.planned
        );
    }

    fn finished(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
