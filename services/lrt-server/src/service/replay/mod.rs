//! `lrt replay` (issue 10, item 2): inputs re-evaluated with one rule-set version, the outcomes
//! written to `replay_run` / `replay_outcome` for the quality team to compare.
//!
//! Two sources ([`SourceParameters`]): the stored active evaluations of a time window (their
//! snapshots, at their own `evaluated_at`), or the patients of a FHIR Bundle file at every
//! arterial blood gas ([`inputs`]). A run:
//! 1. is inserted `running` with its parameters and rule set (id, version, hash);
//! 2. plans its inputs (`planned`), skipping the source keys it already holds (a resumed run);
//! 3. evaluates them in batches on up to `threads` threads ([`outcome`]) and writes each batch
//!    in one transaction with `done` ([`store`]): a killed run loses at most one batch, and
//!    [`Replay::resume`] goes on where it stopped (a finished run is not redone);
//! 4. ends `finished` (or `failed`, with an error naming no patient data) and reports its
//!    [`summary`], read back from the tables.
//!
//! The CLI (`src/cli/replay.rs`) reads the files and the configuration and shows progress.

pub mod inputs;
pub mod outcome;
pub mod store;
pub mod summary;

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lrt_engine::{PatientSnapshot, RuleSet};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use inputs::BundleRecord;
use outcome::{Outcome, OutcomeRow, par_map};
use store::RunRow;
use summary::{Invocation, Summary};

/// Outcomes written per transaction.
pub const BATCH: usize = 500;

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database has no replay tables: run `lrt migrate` first")]
    NotMigrated,
    #[error("no replay run {0} in the database")]
    UnknownRun(Uuid),
    #[error("replay run {0} is being run by another process")]
    Busy(Uuid),
    /// What the run was started with is not what is given now (rule set or file changed).
    #[error("replay run {run}: {message}")]
    Changed { run: Uuid, message: String },
    #[error("replay run {run}: its parameters cannot be read: {message}")]
    Parameters { run: Uuid, message: String },
    #[error("stored evaluation {id}: its snapshot cannot be read: {message}")]
    Snapshot { id: Uuid, message: String },
}

impl ReplayError {
    /// Whether the user can fix it by what they give (a run id, a file, a rule set).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            ReplayError::Database(_) | ReplayError::Snapshot { .. }
        )
    }
}

/// What a run was asked, as stored in `replay_run.parameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParameters {
    /// The rule set as named on the command line (a version or a folder).
    pub ruleset: String,
    #[serde(flatten)]
    pub source: SourceParameters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum SourceParameters {
    Stored(StoredFilter),
    Bundle(BundleFile),
}

impl SourceParameters {
    /// `replay_run.source`.
    pub fn name(&self) -> &'static str {
        match self {
            SourceParameters::Stored(_) => "stored",
            SourceParameters::Bundle(_) => "bundle",
        }
    }
}

/// Which stored evaluations: active ones created in `[from, to)`, of one patient and one
/// source rule-set version when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub patient: Option<String>,
    pub source_version: Option<String>,
}

/// Which Bundle file (its path and SHA-256) and patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    pub file: String,
    pub sha256: String,
    pub patient: Option<String>,
}

/// The inputs of a run, ready to replay.
pub enum Inputs<'a> {
    Stored(&'a StoredFilter),
    Bundle(&'a BundleRecord),
}

/// Told how a run goes (a progress bar, or lines in a log).
pub trait Progress: Sync {
    /// The inputs of the run, and how many it already held.
    fn planned(&self, planned: u64, done: u64);
    /// The run holds `done` outcomes now.
    fn advanced(&self, done: u64);
    /// No more input.
    fn finished(&self);
}

/// No progress shown.
pub struct Silent;

impl Progress for Silent {
    fn planned(&self, _: u64, _: u64) {}
    fn advanced(&self, _: u64) {}
    fn finished(&self) {}
}

/// A replay: where it writes, the rule set, and how.
pub struct Replay<'a> {
    pub pool: &'a PgPool,
    pub rules: &'a RuleSet,
    /// Evaluating threads (at least one).
    pub threads: usize,
    /// Outcomes per transaction.
    pub batch: usize,
    pub progress: &'a dyn Progress,
}

impl Replay<'_> {
    /// Starts a new run of `inputs` and runs it to its end.
    pub async fn start(
        &self,
        parameters: &RunParameters,
        inputs: Inputs<'_>,
    ) -> Result<Summary, ReplayError> {
        store::check_tables(self.pool).await?;
        let id = Uuid::new_v4();
        store::create_run(self.pool, id, parameters, self.rules).await?;
        let _lock = store::lock_run(self.pool, id).await?;
        self.execute(id, inputs).await
    }

    /// Goes on with `run` (read with [`store::run`], its inputs made from its parameters): the
    /// rule set and the file must be the ones it started with. A finished run is not redone:
    /// its summary is returned.
    pub async fn resume(&self, run: &RunRow, inputs: Inputs<'_>) -> Result<Summary, ReplayError> {
        if run.ruleset_sha256 != self.rules.sha256 {
            return Err(ReplayError::Changed {
                run: run.id,
                message: format!(
                    "it was started with {} {} (sha256 {}); the rule set given now is {} (sha256 {}): start a new run",
                    run.ruleset_id,
                    run.ruleset_version,
                    run.ruleset_sha256,
                    self.rules.label(),
                    self.rules.sha256
                ),
            });
        }
        if let (Inputs::Bundle(record), Ok(SourceParameters::Bundle(file))) =
            (&inputs, parameters(run).map(|p| p.source))
            && record.sha256 != file.sha256
        {
            return Err(ReplayError::Changed {
                run: run.id,
                message: format!(
                    "{} has changed since the run started (sha256 {}, now {})",
                    file.file, file.sha256, record.sha256
                ),
            });
        }
        if run.state == "finished" {
            return summary::read(self.pool, run, Invocation::default()).await;
        }
        if run.parameters.0.get("patient_data_purged_at").is_some() {
            return Err(ReplayError::Changed {
                run: run.id,
                message: "retention has purged its patient data: it cannot be resumed".into(),
            });
        }
        let _lock = store::lock_run(self.pool, run.id).await?;
        store::mark_running(self.pool, run.id).await?;
        self.execute(run.id, inputs).await
    }

    /// Replays, then marks the run finished (or failed) and reads its summary.
    async fn execute(&self, id: Uuid, inputs: Inputs<'_>) -> Result<Summary, ReplayError> {
        let started = Instant::now();
        let result = self.replay(id, inputs).await;
        self.progress.finished();
        match result {
            Ok(mut invocation) => {
                invocation.seconds = started.elapsed().as_secs_f64();
                store::finish(self.pool, id).await?;
                let run = store::run(self.pool, id).await?;
                summary::read(self.pool, &run, invocation).await
            }
            Err(e) => {
                // The error names ids and versions, never patient data.
                let _ = store::fail(self.pool, id, &e.to_string()).await;
                Err(e)
            }
        }
    }

    async fn replay(&self, id: Uuid, inputs: Inputs<'_>) -> Result<Invocation, ReplayError> {
        let known = store::known_keys(self.pool, id).await?;
        let mut invocation = Invocation::default();
        let batch = self.batch.max(1);
        match inputs {
            Inputs::Stored(filter) => {
                let (ids, purged) = store::stored_plan(self.pool, filter).await?;
                invocation.skipped_purged = purged;
                let todo: Vec<Uuid> = ids
                    .into_iter()
                    .filter(|id| !known.contains(&id.to_string()))
                    .collect();
                let mut done = self.plan(id, &known, todo.len(), &mut invocation).await?;
                for chunk in todo.chunks(batch) {
                    let rows = store::stored_evaluations(self.pool, chunk).await?;
                    let t = Instant::now();
                    let outcomes = lrt_fhir::cpu_bound(|| {
                        par_map(&rows, self.threads, |row| {
                            let snapshot: PatientSnapshot = serde_json::from_str(&row.snapshot)
                                .map_err(|e| ReplayError::Snapshot {
                                    id: row.id,
                                    message: e.to_string(),
                                })?;
                            Ok(OutcomeRow {
                                source_key: row.id.to_string(),
                                source_evaluation_id: Some(row.id),
                                patient_id: row.patient_id.clone(),
                                evaluated_at: row.evaluated_at,
                                outcome: Outcome::evaluate(self.rules, &snapshot, row.evaluated_at),
                                source: Some(row.source()),
                            })
                        })
                    })
                    .into_iter()
                    .collect::<Result<Vec<_>, ReplayError>>()?;
                    invocation.evaluating_seconds += t.elapsed().as_secs_f64();
                    done += self.write(id, &outcomes, &mut invocation).await?;
                    self.progress.advanced(done);
                }
            }
            Inputs::Bundle(record) => {
                let todo: Vec<_> = record
                    .blood_gases(self.rules)
                    .into_iter()
                    .filter(|g| !known.contains(&g.key))
                    .collect();
                let mut done = self.plan(id, &known, todo.len(), &mut invocation).await?;
                for chunk in todo.chunks(batch) {
                    let t = Instant::now();
                    let outcomes = lrt_fhir::cpu_bound(|| {
                        par_map(chunk, self.threads, |gas| {
                            let snapshot = record.snapshot(self.rules, gas);
                            OutcomeRow {
                                source_key: gas.key.clone(),
                                source_evaluation_id: None,
                                patient_id: gas.patient.clone(),
                                evaluated_at: gas.at,
                                outcome: Outcome::evaluate(self.rules, &snapshot, gas.at),
                                source: None,
                            }
                        })
                    });
                    invocation.evaluating_seconds += t.elapsed().as_secs_f64();
                    done += self.write(id, &outcomes, &mut invocation).await?;
                    self.progress.advanced(done);
                }
            }
        }
        Ok(invocation)
    }

    /// Records `planned` (what the run holds plus what is left) and tells the progress; the
    /// number of outcomes already held.
    async fn plan(
        &self,
        id: Uuid,
        known: &HashSet<String>,
        todo: usize,
        invocation: &mut Invocation,
    ) -> Result<u64, ReplayError> {
        let done = known.len() as u64;
        invocation.skipped_already_done = done;
        store::set_planned(self.pool, id, known.len() + todo).await?;
        self.progress.planned(done + todo as u64, done);
        Ok(done)
    }

    async fn write(
        &self,
        id: Uuid,
        rows: &[OutcomeRow],
        invocation: &mut Invocation,
    ) -> Result<u64, ReplayError> {
        let inserted = store::write_batch(self.pool, id, rows).await?;
        invocation.written += inserted;
        Ok(inserted)
    }
}

/// The parameters of a stored run.
pub fn parameters(run: &RunRow) -> Result<RunParameters, ReplayError> {
    serde_json::from_value(run.parameters.0.clone()).map_err(|e| ReplayError::Parameters {
        run: run.id,
        message: e.to_string(),
    })
}
