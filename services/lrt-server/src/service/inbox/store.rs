//! The `subscription_inbox` table: receiving, claiming, recording outcomes, and what the API
//! lists and retries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A stored notification as [`receive`] found or wrote it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Received {
    pub id: Uuid,
    pub state: String,
    pub new: bool,
}

/// Stores a notification's focus (one row per `dedup_key`). A repeat of a pending or done
/// notification changes nothing; a repeat of a dead one makes it pending again, due now, with a
/// new horizon (the EHR resent it: another chance).
pub async fn receive(
    pool: &PgPool,
    dedup_key: &str,
    focus: &Value,
    patients: &[String],
    horizon: Duration,
) -> Result<Received, sqlx::Error> {
    let written: Option<Received> = sqlx::query_as(
        "INSERT INTO subscription_inbox (id, dedup_key, focus, patient_ids, deadline) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
         ON CONFLICT (dedup_key) DO UPDATE SET state = 'pending', next_attempt_at = now(), \
           claimed_until = NULL, deadline = now() + make_interval(secs => $5) \
         WHERE subscription_inbox.state = 'dead' \
         RETURNING id, state, (xmax = 0) AS new",
    )
    .bind(Uuid::new_v4())
    .bind(dedup_key)
    .bind(focus)
    .bind(patients)
    .bind(horizon.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if let Some(r) = written {
        // A revived dead row counts as new work for the worker.
        return Ok(Received { new: true, ..r });
    }
    sqlx::query_as("SELECT id, state, false AS new FROM subscription_inbox WHERE dedup_key = $1")
        .bind(dedup_key)
        .fetch_one(pool)
        .await
}

/// A notification claimed by a worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub focus: Value,
    /// This attempt's number (1 = first).
    pub attempts: i32,
    pub deadline: DateTime<Utc>,
    pub claim_token: Uuid,
}

/// Claims up to `limit` due notifications for `lease` (pending, due, not claimed by a live
/// worker; `SKIP LOCKED` keeps concurrent workers apart).
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS ( \
           SELECT id FROM subscription_inbox \
           WHERE state = 'pending' AND next_attempt_at <= now() \
             AND (claimed_until IS NULL OR claimed_until < now()) \
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE subscription_inbox i SET claimed_until = now() + make_interval(secs => $2), \
           claim_token = gen_random_uuid(), claimed_by = $3, attempts = i.attempts + 1 \
         FROM due WHERE i.id = due.id \
         RETURNING i.id, i.focus, i.attempts, i.deadline, i.claim_token",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(worker)
    .fetch_all(pool)
    .await
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// Evaluated: the (active) evaluations it gave.
    Done(Vec<Uuid>),
    /// Failed; `permanent` failures are dead at once, others retried at `retry_at` unless that
    /// falls after the deadline.
    Failed {
        /// Stored with the row (it may name a resource or patient: never logged).
        error: String,
        /// What logs and metrics say instead (`ehr_unavailable`, `not_found`, ...).
        kind: &'static str,
        permanent: bool,
        retry_at: DateTime<Utc>,
    },
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Done,
    Retry,
    Dead,
    /// The lease ran out and another worker took the row over: nothing written.
    ClaimLost,
}

pub async fn record(
    pool: &PgPool,
    claimed: &Claimed,
    attempt: &Attempt,
) -> Result<Recorded, sqlx::Error> {
    let state: Option<String> = match attempt {
        Attempt::Done(evaluations) => {
            sqlx::query_scalar(
                "UPDATE subscription_inbox SET state = 'done', done_at = now(), \
                 claimed_until = NULL, last_error = NULL, evaluation_ids = $3 \
                 WHERE id = $1 AND claim_token = $2 AND state = 'pending' RETURNING state",
            )
            .bind(claimed.id)
            .bind(claimed.claim_token)
            .bind(evaluations)
            .fetch_optional(pool)
            .await?
        }
        Attempt::Failed {
            error,
            permanent,
            retry_at,
            ..
        } => {
            sqlx::query_scalar(
                "UPDATE subscription_inbox SET claimed_until = NULL, last_error = $3, \
                 next_attempt_at = $4, \
                 state = CASE WHEN $5 OR $4 > deadline THEN 'dead' ELSE 'pending' END \
                 WHERE id = $1 AND claim_token = $2 AND state = 'pending' RETURNING state",
            )
            .bind(claimed.id)
            .bind(claimed.claim_token)
            .bind(error)
            .bind(retry_at)
            .bind(permanent)
            .fetch_optional(pool)
            .await?
        }
    };
    Ok(match state.as_deref() {
        Some("done") => Recorded::Done,
        Some("dead") => Recorded::Dead,
        Some(_) => Recorded::Retry,
        None => Recorded::ClaimLost,
    })
}

/// A notification as the API lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub state: String,
    pub focus: Value,
    pub patient_ids: Vec<String>,
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub evaluation_ids: Vec<Uuid>,
}

const SELECT: &str = "SELECT id, state, focus, patient_ids, attempts, received_at, \
    next_attempt_at, deadline, done_at, last_error, evaluation_ids FROM subscription_inbox";

/// Notifications, newest first, by state.
pub async fn list(
    pool: &PgPool,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE ($1::text IS NULL OR state = $1) ORDER BY received_at DESC, id LIMIT $2"
    ))
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn one(pool: &PgPool, id: Uuid) -> Result<Option<NotificationRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Puts a dead notification back, due now, with a new horizon. False: it was not dead.
pub async fn retry_dead(pool: &PgPool, id: Uuid, horizon: Duration) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE subscription_inbox SET state = 'pending', next_attempt_at = now(), \
         claimed_until = NULL, deadline = now() + make_interval(secs => $2) \
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(horizon.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// How many notifications are pending and dead (the backlog gauges).
pub async fn backlog(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead') \
         FROM subscription_inbox WHERE state <> 'done'",
    )
    .fetch_one(pool)
    .await
}
