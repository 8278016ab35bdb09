//! PostgreSQL persistence (sqlx, runtime-checked queries; the integration tests run every query
//! against a real database). Tables are created by the forward-only migrations in
//! `migrations/` (embedded at build time).
//!
//! Idempotency: an evaluation is unique per (`hookInstance`, role). Two concurrent calls with the
//! same `hookInstance` both evaluate, but only the first insert wins; the other reads and returns
//! the stored response, so a retried call returns the same cards and stores nothing twice.
//!
//! Calls are committed together ([`group`]: one transaction for the calls that wait while the
//! previous one commits, written by [`batch`], a call alone as a batch of one); a batch that
//! fails, a retried `hookInstance` and a call whose `jti` or `hookInstance` is already in its
//! batch go through [`store_evaluations`].

pub mod batch;
pub mod group;

use super::auth::Tenancy;
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

/// The migrations of `migrations/`, embedded.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Opens a pool. Does not wait for the database to be up: `/health/ready` tells.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_lazy(url)
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// An evaluation to store.
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    pub id: Uuid,
    pub hook_instance: String,
    pub role: Role,
    pub service_id: String,
    pub hook: String,
    pub patient_id: String,
    pub fhir_server: Option<String>,
    pub client_iss: Option<String>,
    pub client_sub: Option<String>,
    pub tenant: Option<String>,
    pub ruleset_id: String,
    pub ruleset_version: String,
    pub ruleset_sha256: String,
    pub evaluated_at: DateTime<Utc>,
    /// The snapshot and the assessment as JSON text, serialised once from the typed values
    /// (never through a `Value` tree: under load that tree was a tenth of the service's CPU,
    /// issue 9).
    pub snapshot: Box<RawValue>,
    pub assessment: Box<RawValue>,
    pub prefetch_sources: Value,
    pub response: Value,
    pub card_uuids: Vec<Uuid>,
    pub status: i16,
    pub latency_ms: f64,
    pub ecmo_category: Option<String>,
    pub berlin_category: Option<String>,
    pub pf_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Active,
    Shadow,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Shadow => "shadow",
        }
    }
}

/// The stored active evaluation of a hookInstance (what a retry gets back).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCall {
    pub id: Uuid,
    pub service_id: String,
    pub hook: String,
    pub patient_id: String,
    pub response: Value,
}

/// The active evaluation of `hook_instance`, if any.
pub async fn find_call(
    pool: &PgPool,
    hook_instance: &str,
) -> Result<Option<StoredCall>, sqlx::Error> {
    sqlx::query_as::<_, StoredCall>(
        "SELECT id, service_id, hook, patient_id, response FROM evaluation \
         WHERE hook_instance = $1 AND role = 'active'",
    )
    .bind(hook_instance)
    .fetch_optional(pool)
    .await
}

/// What storing an evaluation did.
#[derive(Debug)]
pub enum Stored {
    /// Stored now, with the consult page it wrote, if any.
    New { page: Option<Uuid> },
    /// Another call with the same hookInstance stored first: its row.
    Existing(StoredCall),
    /// The call's token `jti` was used before: nothing stored (the call answers 401).
    ReplayedJti,
}

/// A token's `jti` to record once (replay protection), kept until `keep_until`.
#[derive(Debug, Clone)]
pub struct Jti {
    pub iss: String,
    pub jti: String,
    pub keep_until: DateTime<Utc>,
}

/// What one commit stores: the `jti` of the call's token, the evaluations, the page and the
/// call's own row (issue 9: one commit per call). It owns its data: a call waiting for its
/// group's commit ([`group`]) hands it over, and a client that goes away does not take it along.
#[derive(Debug, Clone)]
pub struct Commit {
    pub jti: Option<Jti>,
    pub active: NewEvaluation,
    pub shadow: Option<NewEvaluation>,
    pub page: Option<crate::service::paging::PagePlan>,
    pub call: Option<CallRecord>,
}

/// Stores, in one transaction: the call's `jti` (a replay stores nothing), the active
/// evaluation and the shadow one, the consult page of `page` (if its triggers were not paged
/// for the patient already: see [`crate::service::paging`]) and the call's row. A retried
/// hookInstance stores nothing and pages no one ([`Stored::Existing`]: the caller records its
/// `jti` and row with [`record_call_with_jti`]).
#[tracing::instrument(name = "store.call", skip_all, fields(evaluation = %c.active.id))]
pub async fn store_evaluations(pool: &PgPool, c: &Commit) -> Result<Stored, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(jti) = &c.jti
        && !insert_jti(&mut tx, jti).await?
    {
        tx.rollback().await?;
        return Ok(Stored::ReplayedJti);
    }
    let inserted = insert(&mut tx, &c.active).await?;
    if !inserted {
        tx.rollback().await?;
        return match find_call(pool, &c.active.hook_instance).await? {
            Some(existing) => Ok(Stored::Existing(existing)),
            // The winner's transaction was rolled back between our insert and our read: retry.
            None => Box::pin(store_evaluations(pool, c)).await,
        };
    }
    if let Some(shadow) = &c.shadow {
        insert(&mut tx, shadow).await?;
    }
    let page = match &c.page {
        Some(plan) => crate::service::paging::outbox::write_page(&mut tx, plan).await?,
        None => None,
    };
    if let Some(call) = &c.call {
        insert_call(&mut tx, call).await?;
    }
    tx.commit().await?;
    Ok(Stored::New { page })
}

/// Records a call that stores no evaluation: its `jti` and its row, in one transaction.
/// False: the `jti` was used before (nothing written; the call answers 401).
pub async fn record_call_with_jti(
    pool: &PgPool,
    jti: Option<&Jti>,
    call: Option<&CallRecord>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(jti) = jti
        && !insert_jti(&mut tx, jti).await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(call) = call {
        insert_call(&mut tx, call).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Records a `jti` once: false when the issuer used it before (and it has not expired).
async fn insert_jti(conn: &mut sqlx::PgConnection, j: &Jti) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO jwt_replay (iss, jti, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (iss, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
         WHERE jwt_replay.expires_at < now()",
    )
    .bind(&j.iss)
    .bind(&j.jti)
    .bind(j.keep_until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    e: &NewEvaluation,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO evaluation (id, hook_instance, role, service_id, hook, patient_id, fhir_server, \
         client_iss, client_sub, tenant, ruleset_id, ruleset_version, ruleset_sha256, evaluated_at, \
         snapshot, assessment, prefetch_sources, response, card_uuids, status, latency_ms, \
         ecmo_category, berlin_category, pf_ratio) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24) \
         ON CONFLICT (hook_instance, role) DO NOTHING",
    )
    .bind(e.id)
    .bind(&e.hook_instance)
    .bind(e.role.as_str())
    .bind(&e.service_id)
    .bind(&e.hook)
    .bind(&e.patient_id)
    .bind(&e.fhir_server)
    .bind(&e.client_iss)
    .bind(&e.client_sub)
    .bind(&e.tenant)
    .bind(&e.ruleset_id)
    .bind(&e.ruleset_version)
    .bind(&e.ruleset_sha256)
    .bind(e.evaluated_at)
    .bind(sqlx::types::Json(&e.snapshot))
    .bind(sqlx::types::Json(&e.assessment))
    .bind(&e.prefetch_sources)
    .bind(&e.response)
    .bind(&e.card_uuids)
    .bind(e.status)
    .bind(e.latency_ms)
    .bind(&e.ecmo_category)
    .bind(&e.berlin_category)
    .bind(e.pf_ratio)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One CDS Hooks call as answered.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub service_id: String,
    pub hook: Option<String>,
    pub hook_instance: Option<String>,
    pub status: i16,
    pub error_code: Option<String>,
    pub latency_ms: f64,
    pub evaluation_id: Option<Uuid>,
    /// The caller's issuer and `tenant` (None: authentication off, or no `tenant` claim), so
    /// that an error answer, which has no evaluation, still belongs to its tenant.
    pub client_iss: Option<String>,
    pub tenant: Option<String>,
}

impl CallRecord {
    /// The row of a call to `service_id` by `client` (None: authentication off), answered now
    /// with `status`; what else is known of the call is set by the caller.
    pub fn answered(
        service_id: &str,
        client: Option<&lrt_auth::VerifiedClient>,
        status: u16,
        started: std::time::Instant,
    ) -> CallRecord {
        CallRecord {
            service_id: service_id.to_string(),
            hook: None,
            hook_instance: None,
            status: status as i16,
            error_code: None,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            evaluation_id: None,
            client_iss: client.map(|c| c.iss.clone()),
            tenant: client.and_then(|c| c.tenant.clone()),
        }
    }
}

pub async fn record_call(pool: &PgPool, c: &CallRecord) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    insert_call(&mut conn, c).await
}

async fn insert_call(conn: &mut sqlx::PgConnection, c: &CallRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO hook_call (service_id, hook, hook_instance, status, error_code, latency_ms, \
           evaluation_id, client_iss, tenant) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&c.service_id)
    .bind(&c.hook)
    .bind(&c.hook_instance)
    .bind(c.status)
    .bind(&c.error_code)
    .bind(c.latency_ms)
    .bind(c.evaluation_id)
    .bind(&c.client_iss)
    .bind(&c.tenant)
    .execute(conn)
    .await
    .map(|_| ())
}

/// One feedback item.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    pub card_uuid: Uuid,
    pub outcome: String,
    pub outcome_timestamp: DateTime<Utc>,
    pub service_id: String,
    pub accepted_suggestions: Option<Value>,
    pub override_reason: Option<Value>,
}

/// What a feedback call changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackStored {
    /// Items new to the service.
    pub stored: u64,
    /// Items that repeat an earlier (card, outcome, outcomeTimestamp) and add or change its
    /// override reason or accepted suggestions: the row is updated and its revision counted.
    pub updated: u64,
    /// Exact repeats: nothing to store.
    pub duplicates: u64,
}

/// Stores a call's feedback in one statement. Items are keyed by (card, outcome,
/// outcomeTimestamp): a repeat that carries an override reason or accepted suggestions the
/// stored row lacks (or different ones) updates the row, keeping what it does not replace, and
/// counts a revision; an exact repeat stores nothing. Items of the same key within the call are
/// merged first, later members winning.
pub async fn store_feedback(
    pool: &PgPool,
    service_id: &str,
    items: &[NewFeedback],
) -> Result<FeedbackStored, sqlx::Error> {
    let mut merged: Vec<NewFeedback> = Vec::with_capacity(items.len());
    for f in items {
        let same = merged.iter_mut().find(|m| {
            m.card_uuid == f.card_uuid
                && m.outcome == f.outcome
                && m.outcome_timestamp == f.outcome_timestamp
        });
        match same {
            Some(m) => {
                if f.accepted_suggestions.is_some() {
                    m.accepted_suggestions.clone_from(&f.accepted_suggestions);
                }
                if f.override_reason.is_some() {
                    m.override_reason.clone_from(&f.override_reason);
                }
            }
            None => merged.push(f.clone()),
        }
    }
    let cards: Vec<Uuid> = merged.iter().map(|f| f.card_uuid).collect();
    let outcomes: Vec<String> = merged.iter().map(|f| f.outcome.clone()).collect();
    let times: Vec<DateTime<Utc>> = merged.iter().map(|f| f.outcome_timestamp).collect();
    let accepted: Vec<Option<Value>> = merged
        .iter()
        .map(|f| f.accepted_suggestions.clone())
        .collect();
    let reasons: Vec<Option<Value>> = merged.iter().map(|f| f.override_reason.clone()).collect();
    let (stored, updated): (i64, i64) = sqlx::query_as(
        "WITH input AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[], $5::jsonb[]) \
             AS t(card_uuid, outcome, outcome_timestamp, accepted_suggestions, override_reason)), \
         written AS ( \
           INSERT INTO card_feedback (card_uuid, outcome, outcome_timestamp, service_id, evaluation_id, \
             accepted_suggestions, override_reason) \
           SELECT i.card_uuid, i.outcome, i.outcome_timestamp, $6, \
             (SELECT e.id FROM evaluation e WHERE e.card_uuids @> ARRAY[i.card_uuid] AND e.role = 'active' LIMIT 1), \
             i.accepted_suggestions, i.override_reason FROM input i \
           ON CONFLICT (card_uuid, outcome, outcome_timestamp) DO UPDATE SET \
             accepted_suggestions = COALESCE(EXCLUDED.accepted_suggestions, card_feedback.accepted_suggestions), \
             override_reason = COALESCE(EXCLUDED.override_reason, card_feedback.override_reason), \
             revision = card_feedback.revision + 1, updated_at = now() \
           WHERE (EXCLUDED.accepted_suggestions IS NOT NULL \
                  AND EXCLUDED.accepted_suggestions IS DISTINCT FROM card_feedback.accepted_suggestions) \
              OR (EXCLUDED.override_reason IS NOT NULL \
                  AND EXCLUDED.override_reason IS DISTINCT FROM card_feedback.override_reason) \
           RETURNING (xmax = 0) AS inserted) \
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
    )
    .bind(&cards)
    .bind(&outcomes)
    .bind(&times)
    .bind(&accepted)
    .bind(&reasons)
    .bind(service_id)
    .fetch_one(pool)
    .await?;
    let (stored, updated) = (stored as u64, updated as u64);
    Ok(FeedbackStored {
        stored,
        updated,
        duplicates: items.len() as u64 - stored - updated,
    })
}

/// Which of `cards` the service issued (feedback on unknown cards is refused), in one query.
pub async fn issued_cards(pool: &PgPool, cards: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar::<_, Uuid>(
        "SELECT DISTINCT u FROM evaluation e, unnest(e.card_uuids) AS u \
         WHERE e.card_uuids && $1::uuid[] AND e.role = 'active' AND u = ANY($1::uuid[])",
    )
    .bind(cards)
    .fetch_all(pool)
    .await
}

/// Records the first use of a JWT `jti` for `iss`; false if it was seen and has not expired.
/// An expired entry is replaced (the token it belonged to can no longer be valid).
pub async fn first_use_of_jti(
    pool: &PgPool,
    iss: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let jti = Jti {
        iss: iss.to_string(),
        jti: jti.to_string(),
        keep_until: expires_at,
    };
    insert_jti(&mut conn, &jti).await
}

/// Deletes expired replay entries; returns how many.
pub async fn purge_expired_jti<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM jwt_replay WHERE expires_at < now() - interval '5 minutes'")
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// An evaluation as the dashboard API shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EvaluationRow {
    pub id: Uuid,
    pub hook_instance: String,
    pub role: String,
    pub service_id: String,
    pub hook: String,
    pub patient_id: String,
    pub ruleset_id: String,
    pub ruleset_version: String,
    pub ruleset_sha256: String,
    pub evaluated_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub status: i16,
    pub latency_ms: f64,
    pub ecmo_category: Option<String>,
    pub berlin_category: Option<String>,
    pub pf_ratio: Option<f64>,
    pub card_uuids: Vec<Uuid>,
    pub prefetch_sources: Value,
}

/// The columns of [`EvaluationRow`] (a macro: sqlx takes only static SQL text).
macro_rules! row_columns {
    () => {
        "id, hook_instance, role, service_id, hook, patient_id, ruleset_id, \
         ruleset_version, ruleset_sha256, evaluated_at, created_at, status, latency_ms, \
         ecmo_category, berlin_category, pf_ratio, card_uuids, prefetch_sources"
    };
}

/// One evaluation with its snapshot, assessment and response.
pub async fn evaluation(
    pool: &PgPool,
    id: Uuid,
    tenancy: &Tenancy,
) -> Result<Option<(EvaluationRow, Value, Value, Value)>, sqlx::Error> {
    let (iss, tenant) = tenancy.binds();
    #[derive(sqlx::FromRow)]
    struct Full {
        #[sqlx(flatten)]
        row: EvaluationRow,
        snapshot: Value,
        assessment: Value,
        response: Value,
    }
    let full = sqlx::query_as::<_, Full>(concat!(
        "SELECT ",
        row_columns!(),
        ", snapshot, assessment, response FROM evaluation WHERE id = $1 \
         AND ($2::text IS NULL OR (client_iss = $2 AND tenant IS NOT DISTINCT FROM $3))"
    ))
    .bind(id)
    .bind(iss)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(full.map(|f| (f.row, f.snapshot, f.assessment, f.response)))
}

/// Evaluations, newest first, optionally of one patient and role, of the caller's tenancy.
pub async fn evaluations(
    pool: &PgPool,
    patient: Option<&str>,
    role: Option<&str>,
    limit: i64,
    tenancy: &Tenancy,
) -> Result<Vec<EvaluationRow>, sqlx::Error> {
    let (iss, tenant) = tenancy.binds();
    sqlx::query_as::<_, EvaluationRow>(concat!(
        "SELECT ",
        row_columns!(),
        " FROM evaluation \
         WHERE ($1::text IS NULL OR patient_id = $1) AND ($2::text IS NULL OR role = $2) \
         AND ($4::text IS NULL OR (client_iss = $4 AND tenant IS NOT DISTINCT FROM $5)) \
         ORDER BY created_at DESC, id LIMIT $3"
    ))
    .bind(patient)
    .bind(role)
    .bind(limit)
    .bind(iss)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// The feedback received on an evaluation's cards, oldest first, as JSON objects (`card_uuid`,
/// `outcome`, `outcome_timestamp`, `accepted_suggestions`, `override_reason`, `received_at`).
/// The caller has already checked that the evaluation is visible to it.
pub async fn feedback_of_evaluation(pool: &PgPool, evaluation: Uuid) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar::<_, Value>(
        "SELECT coalesce(json_agg(json_build_object( \
             'card_uuid', card_uuid, 'outcome', outcome, \
             'outcome_timestamp', outcome_timestamp, \
             'accepted_suggestions', accepted_suggestions, \
             'override_reason', override_reason, 'received_at', received_at) \
           ORDER BY outcome_timestamp, card_uuid), '[]'::json)::jsonb \
         FROM card_feedback WHERE evaluation_id = $1",
    )
    .bind(evaluation)
    .fetch_one(pool)
    .await
}
