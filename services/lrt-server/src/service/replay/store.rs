//! `replay_run` and `replay_outcome` (`migrations/20261205000000_replay.sql`, whose comments
//! are the contract), and the stored evaluations a run replays.
//!
//! A batch of outcomes is written in one transaction with the run's `done`, so an interrupted
//! run loses at most the batch in flight; `ON CONFLICT DO NOTHING` and `done + <rows inserted>`
//! keep `done` exact even when a key is offered twice.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;
use uuid::Uuid;

use super::outcome::{OutcomeRow, SourceOutcome};
use super::{ReplayError, RunParameters, StoredFilter};

/// A `replay_run` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub source: String,
    pub parameters: sqlx::types::Json<Value>,
    pub ruleset_id: String,
    pub ruleset_version: String,
    pub ruleset_sha256: String,
    pub state: String,
    pub planned: Option<i32>,
    pub done: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Refuses a database without the replay tables (not migrated) with a clear error.
pub async fn check_tables(pool: &PgPool) -> Result<(), ReplayError> {
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass('replay_outcome')::text")
        .fetch_one(pool)
        .await?;
    found.map(|_| ()).ok_or(ReplayError::NotMigrated)
}

/// Inserts a new run (`running`).
pub async fn create_run(
    pool: &PgPool,
    id: Uuid,
    parameters: &RunParameters,
    ruleset: &lrt_engine::RuleSet,
) -> Result<(), ReplayError> {
    sqlx::query(
        "INSERT INTO replay_run (id, source, parameters, ruleset_id, ruleset_version, ruleset_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(parameters.source.name())
    .bind(sqlx::types::Json(parameters))
    .bind(ruleset.id())
    .bind(ruleset.version())
    .bind(&ruleset.sha256)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn run(pool: &PgPool, id: Uuid) -> Result<RunRow, ReplayError> {
    sqlx::query_as("SELECT * FROM replay_run WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(ReplayError::UnknownRun(id))
}

/// Holds the run for this process (a session advisory lock on a connection of its own): a
/// second `--resume` of a run in progress is refused instead of racing it.
pub async fn lock_run(pool: &PgPool, id: Uuid) -> Result<PoolConnection<Postgres>, ReplayError> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("lrt-replay/{id}"))
        .fetch_one(&mut *conn)
        .await?;
    if locked {
        Ok(conn)
    } else {
        Err(ReplayError::Busy(id))
    }
}

/// Marks the run running again (a resumed failed run) and clears its error.
pub async fn mark_running(pool: &PgPool, id: Uuid) -> Result<(), ReplayError> {
    sqlx::query(
        "UPDATE replay_run SET state = 'running', error = NULL, finished_at = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The source keys the run already holds.
pub async fn known_keys(pool: &PgPool, id: Uuid) -> Result<HashSet<String>, ReplayError> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT source_key FROM replay_outcome WHERE run_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(keys.into_iter().collect())
}

pub async fn set_planned(pool: &PgPool, id: Uuid, planned: usize) -> Result<(), ReplayError> {
    sqlx::query("UPDATE replay_run SET planned = $2 WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(planned).unwrap_or(i32::MAX))
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes a batch of outcomes and counts those inserted into `done`, in one transaction.
/// Returns how many were inserted (a key the run already holds is not).
pub async fn write_batch(pool: &PgPool, id: Uuid, rows: &[OutcomeRow]) -> Result<u64, ReplayError> {
    let records: Vec<Value> = rows.iter().map(record).collect();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO replay_outcome (run_id, source_key, source_evaluation_id, patient_id, \
           evaluated_at, ecmo_category, ecmo_urgency, berlin_category, pf_ratio, recommendations, \
           consult_triggers, source_ruleset_version, source_ecmo_category, source_ecmo_urgency, \
           source_consult_triggers) \
         SELECT $1, r.source_key, r.source_evaluation_id, r.patient_id, r.evaluated_at, \
           r.ecmo_category, r.ecmo_urgency, r.berlin_category, r.pf_ratio, r.recommendations, \
           r.consult_triggers, r.source_ruleset_version, r.source_ecmo_category, \
           r.source_ecmo_urgency, r.source_consult_triggers \
         FROM jsonb_to_recordset($2) AS r(source_key text, source_evaluation_id uuid, \
           patient_id text, evaluated_at timestamptz, ecmo_category text, ecmo_urgency text, \
           berlin_category text, pf_ratio double precision, recommendations text[], \
           consult_triggers text[], source_ruleset_version text, source_ecmo_category text, \
           source_ecmo_urgency text, source_consult_triggers text[]) \
         ON CONFLICT (run_id, source_key) DO NOTHING",
    )
    .bind(id)
    .bind(sqlx::types::Json(&records))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE replay_run SET done = done + $2 WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(inserted).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

/// One row as `jsonb_to_recordset` reads it (column names as keys).
fn record(r: &OutcomeRow) -> Value {
    let source = r.source.as_ref();
    json!({
        "source_key": r.source_key,
        "source_evaluation_id": r.source_evaluation_id,
        "patient_id": r.patient_id,
        "evaluated_at": r.evaluated_at,
        "ecmo_category": r.outcome.ecmo_category,
        "ecmo_urgency": r.outcome.ecmo_urgency,
        "berlin_category": r.outcome.berlin_category,
        "pf_ratio": r.outcome.pf_ratio,
        "recommendations": r.outcome.recommendations,
        "consult_triggers": r.outcome.consult_triggers,
        "source_ruleset_version": source.map(|s| &s.ruleset_version),
        "source_ecmo_category": source.and_then(|s| s.ecmo_category.as_ref()),
        "source_ecmo_urgency": source.and_then(|s| s.ecmo_urgency.as_ref()),
        "source_consult_triggers": source.map(|s| &s.consult_triggers),
    })
}

pub async fn finish(pool: &PgPool, id: Uuid) -> Result<(), ReplayError> {
    sqlx::query(
        "UPDATE replay_run SET state = 'finished', finished_at = now(), error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks the run failed with `error` (which names no patient data).
pub async fn fail(pool: &PgPool, id: Uuid, error: &str) -> Result<(), ReplayError> {
    sqlx::query(
        "UPDATE replay_run SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The stored filter's condition on `evaluation` (`$1`…`$4`): active evaluations created in
/// `[from, to)`, of the patient and the source version when given, whose snapshot is still
/// there (retention has not purged its patient data).
const STORED_WHERE: &str = "role = 'active' AND created_at >= $1 AND created_at < $2 \
    AND ($3::text IS NULL OR patient_id = $3) AND ($4::text IS NULL OR ruleset_version = $4)";

/// The ids of the evaluations the filter selects, oldest first, and how many it would select
/// but for retention (their snapshot is gone).
pub async fn stored_plan(
    pool: &PgPool,
    filter: &StoredFilter,
) -> Result<(Vec<Uuid>, u64), ReplayError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM evaluation WHERE {STORED_WHERE} AND patient_data_purged_at IS NULL \
         ORDER BY created_at, id"
    ))
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.patient)
    .bind(&filter.source_version)
    .fetch_all(pool)
    .await?;
    let purged: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM evaluation WHERE {STORED_WHERE} AND patient_data_purged_at IS NOT NULL"
    ))
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.patient)
    .bind(&filter.source_version)
    .fetch_one(pool)
    .await?;
    Ok((ids, u64::try_from(purged).unwrap_or(0)))
}

/// A stored evaluation to replay: its snapshot as stored (JSON text, parsed by the evaluating
/// threads) and its own outcome.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredEvaluation {
    pub id: Uuid,
    pub patient_id: String,
    pub evaluated_at: DateTime<Utc>,
    pub snapshot: String,
    pub ruleset_version: String,
    pub ecmo_category: Option<String>,
    pub ecmo_urgency: Option<String>,
    pub consult_triggers: Vec<String>,
}

impl StoredEvaluation {
    pub fn source(&self) -> SourceOutcome {
        SourceOutcome {
            ruleset_version: self.ruleset_version.clone(),
            ecmo_category: self.ecmo_category.clone(),
            ecmo_urgency: self.ecmo_urgency.clone(),
            consult_triggers: self.consult_triggers.clone(),
        }
    }
}

/// The evaluations of `ids` (in no particular order).
pub async fn stored_evaluations(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<StoredEvaluation>, ReplayError> {
    Ok(sqlx::query_as(
        "SELECT id, patient_id, evaluated_at, snapshot::text AS snapshot, ruleset_version, \
           ecmo_category, assessment->>'ecmo_urgency' AS ecmo_urgency, \
           ARRAY(SELECT t->>'code' FROM jsonb_array_elements(CASE \
             WHEN jsonb_typeof(assessment->'consult_triggers') = 'array' \
             THEN assessment->'consult_triggers' ELSE '[]'::jsonb END) t \
             WHERE t->>'code' IS NOT NULL) AS consult_triggers \
         FROM evaluation WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}
