//! Command-line interface: argument parsing and dispatch. Each subcommand has its own module.

mod demo;
mod dev;
mod diff;
mod evaluate;
mod health;
mod live;
mod replay;
mod rules;
mod serve;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lrt_engine::ruleset::index::RulesRoot;
use lrt_engine::{RuleSet, RuleSetError};

#[derive(Debug, Parser)]
#[command(
    name = "lrt",
    version,
    about = "Lung Rescue Team clinical decision support"
)]
pub struct Cli {
    /// The rules root folder (holds index.json and the rule-set versions; default `rules`). For
    /// `serve`, `check-config` and `migrate` it replaces the configuration's `rules_dir`.
    #[arg(long, global = true, env = "LRT_RULES_DIR")]
    rules_dir: Option<PathBuf>,
    /// Print compact JSON instead of indented JSON.
    #[arg(long, global = true)]
    compact: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a patient snapshot and print the assessment.
    Evaluate(evaluate::Args),
    /// Check or test rule sets.
    #[command(subcommand)]
    Rules(rules::Command),
    /// Evaluate the knowledge base's worked cases and print one line per patient.
    Demo(demo::Args),
    /// Run the CDS Hooks service.
    Serve(serve::Args),
    /// Make every check `lrt serve` makes (configuration, rule sets, key and secret files),
    /// without starting or touching the database.
    CheckConfig(serve::Args),
    /// Apply the database migrations (or list them with `--dry-run`).
    Migrate(serve::MigrateArgs),
    /// Run the retention purge of `[retention]` once (`lrt serve` runs it every hour).
    Purge(serve::Args),
    /// Ask a running `lrt serve` whether it is ready (exit 0) or not (exit 1): the image's
    /// health check.
    Health(health::Args),
    /// Silent-mode validation: the system's calls against the Lung Rescue Team's adjudications
    /// (sensitivity, specificity, PPV, NPV with 95% Wilson intervals; lead time).
    Validate(validate::Args),
    /// Re-evaluate stored evaluations, or a FHIR Bundle at every blood gas, with a rule-set
    /// version; the outcomes go to `replay_run` / `replay_outcome`.
    Replay(replay::Args),
    /// Development and test helpers (never needed in production).
    #[command(subcommand)]
    Dev(dev::Command),
}

/// A failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: a file, a field or a rule file (exit 2).
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    RuleSet(#[from] RuleSetError),
    /// The work started but could not finish (a database failure during `lrt replay`).
    #[error("{0}")]
    Failed(String),
    /// Standard output could not be written (other than a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) | CliError::RuleSet(_) => 2,
            CliError::Failed(_) | CliError::Output(_) => 1,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let ctx = Ctx {
        rules_dir: cli
            .rules_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("rules")),
        rules_dir_override: cli.rules_dir,
        compact: cli.compact,
    };
    match cli.command {
        Command::Evaluate(args) => evaluate::run(&ctx, args),
        Command::Rules(cmd) => rules::run(&ctx, cmd),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Serve(args) => serve::serve(&ctx, args),
        Command::CheckConfig(args) => serve::check_config(&ctx, args),
        Command::Migrate(args) => serve::migrate(&ctx, args),
        Command::Purge(args) => serve::purge(&ctx, args),
        Command::Health(args) => health::run(&ctx, args),
        Command::Validate(args) => validate::run(&ctx, args),
        Command::Replay(args) => replay::run(&ctx, args),
        Command::Dev(cmd) => dev::run(&ctx, cmd),
    }
}

pub struct Ctx {
    rules_dir: PathBuf,
    /// `--rules-dir` as given (None: not given), for the commands that read a configuration.
    rules_dir_override: Option<PathBuf>,
    compact: bool,
}

impl Ctx {
    /// The rule-set version to use: `--ruleset DIR`, else the active version of the index.
    fn ruleset(&self, explicit: Option<&PathBuf>) -> Result<RuleSet, CliError> {
        Ok(match explicit {
            Some(dir) => RuleSet::load(dir)?,
            None => RulesRoot::open(&self.rules_dir)?.load_active()?,
        })
    }

    fn print(&self, value: &serde_json::Value) -> Result<(), CliError> {
        let text = if self.compact {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        write_stdout(&(text.expect("JSON values serialise") + "\n"))
    }
}

/// A rule-set version named on the command line: a folder, or `<version>` / `<id>/<version>`
/// under the rules root (hash-checked against `index.json` when it lists it). The name and the
/// folder tried are in the error when none holds a rule set.
fn ruleset_named(rules_dir: &Path, name: &str) -> Result<RuleSet, CliError> {
    let direct = PathBuf::from(name);
    if direct.join("ruleset.yaml").is_file() {
        return Ok(RuleSet::load(&direct)?);
    }
    for key in [name.to_string(), format!("lrt-ruleset/{name}")] {
        if rules_dir.join(&key).join("ruleset.yaml").is_file() {
            let listed = RulesRoot::open(rules_dir)
                .ok()
                .filter(|root| root.index.versions.contains_key(&key));
            return Ok(match listed {
                Some(root) => root.load_version(&key)?,
                None => RuleSet::load(&rules_dir.join(&key))?,
            });
        }
    }
    Err(CliError::BadInput(format!(
        "rule set {name:?}: no such version or folder (no ruleset.yaml in {name}, {} or {})",
        rules_dir.join(name).display(),
        rules_dir.join("lrt-ruleset").join(name).display()
    )))
}

/// Writes to standard output; a reader that closed the pipe early (`lrt ... | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Output(e)),
    }
}
