//! The outbox tables (`consult_page`, `page_delivery`, `page_attempt`): writing a page inside
//! the evaluation's transaction, claiming due deliveries, recording outcomes, and what the API
//! lists, acknowledges and retries.

use crate::service::auth::Tenancy;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Channel, PagePlan, new_reasons};

/// Decides on and writes the page of `plan` in `tx` (the evaluation's transaction). Returns the
/// page id when one was written, None when every trigger was already paged inside the window.
pub async fn write_page(
    tx: &mut Transaction<'_, Postgres>,
    plan: &PagePlan,
) -> Result<Option<Uuid>, sqlx::Error> {
    // One decision at a time per patient, across every replica (released at commit).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('lrt-consult:' || $1, 0))")
        .bind(&plan.patient_id)
        .execute(&mut **tx)
        .await?;
    let window_secs = plan.repeat_window.as_secs_f64();
    let recent: Vec<(String, i16)> = sqlx::query_as(
        "SELECT t->>'code', max(CASE t->>'urgency' WHEN 'routine' THEN 1 WHEN 'urgent' THEN 2 \
           WHEN 'emergent' THEN 3 END)::smallint \
         FROM consult_page p, jsonb_array_elements(p.triggers) t \
         WHERE p.patient_id = $1 AND p.created_at > now() - make_interval(secs => $2) \
           AND t->>'code' = ANY(p.new_reasons) \
         GROUP BY 1",
    )
    .bind(&plan.patient_id)
    .bind(window_secs)
    .fetch_all(&mut **tx)
    .await?;
    let recent: HashMap<String, i16> = recent.into_iter().collect();
    let fresh = new_reasons(&plan.triggers, &recent);
    if fresh.is_empty() {
        metrics::counter!("lrt_pages_suppressed_total").increment(1);
        return Ok(None);
    }
    let created_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut **tx)
        .await?;
    let payload = plan.payload(&fresh, created_at);
    let triggers =
        serde_json::to_value(&plan.triggers).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query(
        "INSERT INTO consult_page (id, evaluation_id, patient_id, fhir_server, urgency, triggers, \
         new_reasons, ruleset_version, payload, created_at, trace_context) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(plan.page_id)
    .bind(plan.evaluation_id)
    .bind(&plan.patient_id)
    .bind(&plan.fhir_server)
    .bind(plan.urgency.name())
    .bind(&triggers)
    .bind(&fresh)
    .bind(&plan.ruleset_label)
    .bind(&payload)
    .bind(created_at)
    .bind(&plan.trace_context)
    .execute(&mut **tx)
    .await?;
    for channel in &plan.channels {
        sqlx::query(
            "INSERT INTO page_delivery (id, page_id, channel, deadline) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        )
        .bind(delivery_id(plan.page_id, *channel))
        .bind(plan.page_id)
        .bind(channel.as_str())
        .bind(plan.horizon.as_secs_f64())
        .execute(&mut **tx)
        .await?;
    }
    metrics::counter!("lrt_pages_total", "urgency" => plan.urgency.name()).increment(1);
    Ok(Some(plan.page_id))
}

/// The delivery of a page on a channel (deterministic: one per page and channel).
pub fn delivery_id(page: Uuid, channel: Channel) -> Uuid {
    Uuid::new_v5(&page, channel.as_str().as_bytes())
}

/// A delivery claimed by a dispatcher.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub page_id: Uuid,
    pub channel: String,
    /// This attempt's number (1 = first).
    pub attempts: i32,
    pub deadline: DateTime<Utc>,
    pub claim_token: Uuid,
    pub payload: Value,
    pub patient_id: String,
    pub urgency: String,
    /// The `traceparent` of the request that wrote the page (None: tracing was off).
    pub trace_context: Option<String>,
}

/// Claims up to `limit` due deliveries for `lease`: pending, due, and not claimed by a live
/// dispatcher. Concurrent dispatchers never get the same row (`SKIP LOCKED`); a claim whose
/// lease ran out (its dispatcher died) is claimed again.
pub async fn claim(
    pool: &PgPool,
    worker: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as::<_, Claimed>(
        "WITH due AS ( \
           SELECT id FROM page_delivery \
           WHERE state = 'pending' AND next_attempt_at <= now() \
             AND (claimed_until IS NULL OR claimed_until < now()) \
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED), \
         claimed AS ( \
           UPDATE page_delivery d SET claimed_until = now() + make_interval(secs => $2), \
             claim_token = gen_random_uuid(), claimed_by = $3, attempts = d.attempts + 1 \
           FROM due WHERE d.id = due.id \
           RETURNING d.id, d.page_id, d.channel, d.attempts, d.deadline, d.claim_token) \
         SELECT c.id, c.page_id, c.channel, c.attempts, c.deadline, c.claim_token, p.payload, \
           p.patient_id, p.urgency, p.trace_context \
         FROM claimed c JOIN consult_page p ON p.id = c.page_id",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(worker)
    .fetch_all(pool)
    .await
}

/// One attempt's outcome.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub http_status: Option<u16>,
    /// None: delivered.
    pub error: Option<String>,
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    Retry,
    Dead,
    /// The claim was lost (the lease ran out and another dispatcher took over): nothing written
    /// but the attempt.
    ClaimLost,
}

/// Records an attempt and moves the delivery on: delivered, retried at `retry_at`, or dead when
/// `retry_at` falls after the deadline.
pub async fn record(
    pool: &PgPool,
    claimed: &Claimed,
    worker: &str,
    outcome: &AttemptOutcome,
    retry_at: DateTime<Utc>,
) -> Result<Recorded, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO page_attempt (delivery_id, attempt, worker, started_at, duration_ms, outcome, \
         http_status, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(claimed.id)
    .bind(claimed.attempts)
    .bind(worker)
    .bind(outcome.started_at)
    .bind(outcome.duration.as_secs_f64() * 1000.0)
    .bind(if outcome.error.is_none() {
        "delivered"
    } else {
        "failed"
    })
    .bind(outcome.http_status.map(|s| s as i16))
    .bind(&outcome.error)
    .execute(&mut *tx)
    .await?;
    let state: Option<String> = match &outcome.error {
        None => {
            sqlx::query_scalar(
                "UPDATE page_delivery SET state = 'delivered', delivered_at = now(), \
                 claimed_until = NULL, last_error = NULL \
                 WHERE id = $1 AND claim_token = $2 AND state = 'pending' RETURNING state",
            )
            .bind(claimed.id)
            .bind(claimed.claim_token)
            .fetch_optional(&mut *tx)
            .await?
        }
        Some(error) => sqlx::query_scalar(
            "UPDATE page_delivery SET claimed_until = NULL, last_error = $3, next_attempt_at = $4, \
                 state = CASE WHEN $4 > deadline THEN 'dead' ELSE 'pending' END \
                 WHERE id = $1 AND claim_token = $2 AND state = 'pending' RETURNING state",
        )
        .bind(claimed.id)
        .bind(claimed.claim_token)
        .bind(error)
        .bind(retry_at)
        .fetch_optional(&mut *tx)
        .await?,
    };
    tx.commit().await?;
    Ok(match state.as_deref() {
        Some("delivered") => Recorded::Delivered,
        Some("dead") => Recorded::Dead,
        Some(_) => Recorded::Retry,
        None => Recorded::ClaimLost,
    })
}

/// A page as the API lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PageRow {
    pub id: Uuid,
    pub evaluation_id: Uuid,
    pub patient_id: String,
    pub urgency: String,
    pub triggers: Value,
    pub new_reasons: Vec<String>,
    pub ruleset_version: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    /// `delivered` when every channel delivered, `dead` when one is dead, else `pending`.
    pub state: String,
    /// Per channel: state, attempts, errors.
    pub deliveries: Value,
}

const PAGE_SELECT: &str = "SELECT p.id, p.evaluation_id, p.patient_id, p.urgency, p.triggers, \
    p.new_reasons, p.ruleset_version, p.payload, p.created_at, p.acknowledged_at, p.acknowledged_by, \
    CASE WHEN bool_or(d.state = 'dead') THEN 'dead' \
         WHEN bool_and(d.state = 'delivered') THEN 'delivered' ELSE 'pending' END AS state, \
    coalesce(jsonb_agg(jsonb_build_object('channel', d.channel, 'state', d.state, \
      'attempts', d.attempts, 'next_attempt_at', d.next_attempt_at, 'deadline', d.deadline, \
      'delivered_at', d.delivered_at, 'last_error', d.last_error, \
      'history', (SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, \
          'worker', a.worker, 'started_at', a.started_at, 'duration_ms', a.duration_ms, \
          'outcome', a.outcome, 'http_status', a.http_status, 'error', a.error) \
          ORDER BY a.id), '[]'::jsonb) FROM page_attempt a WHERE a.delivery_id = d.id)) \
      ORDER BY d.channel) FILTER (WHERE d.id IS NOT NULL), '[]'::jsonb) AS deliveries \
    FROM consult_page p LEFT JOIN page_delivery d ON d.page_id = p.id";

/// Pages, newest first, filtered by patient and by state.
/// The tenancy condition on a page (through its evaluation), with `$iss`/`$tenant` at `n`, `n+1`.
fn page_tenancy(n: usize) -> String {
    format!(
        "(${n}::text IS NULL OR EXISTS (SELECT 1 FROM evaluation e WHERE e.id = p.evaluation_id \
         AND e.client_iss = ${n} AND e.tenant IS NOT DISTINCT FROM ${}))",
        n + 1
    )
}

pub async fn pages(
    pool: &PgPool,
    patient: Option<&str>,
    state: Option<&str>,
    limit: i64,
    tenancy: &Tenancy,
) -> Result<Vec<PageRow>, sqlx::Error> {
    let (iss, tenant) = tenancy.binds();
    let sql = format!(
        "SELECT * FROM ({PAGE_SELECT} WHERE ($1::text IS NULL OR p.patient_id = $1) AND {} \
         GROUP BY p.id) x WHERE ($2::text IS NULL OR x.state = $2) \
         ORDER BY x.created_at DESC, x.id LIMIT $3",
        page_tenancy(4)
    );
    sqlx::query_as::<_, PageRow>(&sql)
        .bind(patient)
        .bind(state)
        .bind(limit)
        .bind(iss)
        .bind(tenant)
        .fetch_all(pool)
        .await
}

pub async fn page(
    pool: &PgPool,
    id: Uuid,
    tenancy: &Tenancy,
) -> Result<Option<PageRow>, sqlx::Error> {
    let (iss, tenant) = tenancy.binds();
    let sql = format!(
        "{PAGE_SELECT} WHERE p.id = $1 AND {} GROUP BY p.id",
        page_tenancy(2)
    );
    sqlx::query_as::<_, PageRow>(&sql)
        .bind(id)
        .bind(iss)
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// Acknowledges a page (idempotent: the first acknowledgement is kept). False: no such page.
pub async fn acknowledge(pool: &PgPool, id: Uuid, by: Option<&str>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE consult_page SET acknowledged_at = coalesce(acknowledged_at, now()), \
         acknowledged_by = CASE WHEN acknowledged_at IS NULL THEN $2 ELSE acknowledged_by END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts the dead deliveries of a page back in the outbox, due now, with a new horizon. Returns
/// how many were revived (0 when none was dead).
pub async fn retry_dead(pool: &PgPool, id: Uuid, horizon: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE page_delivery SET state = 'pending', next_attempt_at = now(), claimed_until = NULL, \
         deadline = now() + make_interval(secs => $2) WHERE page_id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(horizon.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}
