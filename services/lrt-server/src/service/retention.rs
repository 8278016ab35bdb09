//! Data retention: how long patient data and rows are kept (`[retention]`), and the purge.
//!
//! Two horizons, both off (0) by default because keeping or dropping clinical records is the
//! hospital's decision, not the software's:
//! * `patient_data_days`: after it, an evaluation keeps what the quality dashboard counts
//!   (service, hook, times, tenant, rule-set version and hash, Berlin and ECMO categories,
//!   urgency, mechanisms, recommendations, consult triggers, data-quality items, P/F, and each
//!   card's uuid and indicator) and loses the snapshot, the values and explanations of the
//!   assessment and the cards' text; its
//!   patient id becomes `sha256:<hex>` (distinct patients can still be counted, nobody can be
//!   named). Pages lose their payload the same way; Subscription notifications their focus.
//!   Replay outcomes (`lrt replay`) are patient data too: those of a run started before the
//!   horizon get the same hashed patient id (in a bundle's source key as well), and the run's
//!   patient filter is hashed and `patient_data_purged_at` added to its parameters (such a run
//!   is no longer resumed). Their categories, P/F and codes are kept, as an evaluation's are.
//! * `row_days`: after it, rows are deleted (evaluations with their feedback and pages, hook
//!   calls, Subscription notifications, replay runs by their start with their outcomes).
//!   Aggregates over older periods are gone with them: set it beyond the quality team's
//!   horizon, and export what must outlive it.
//!
//! The purge works in batches (short transactions, no long locks on the hook path) and runs
//! under an advisory lock, so one replica at a time does it ([`super::housekeeping`]), or once
//! from `lrt purge`. The audit trade-off is spelled out in the README.

use serde::Deserialize;
use sqlx::PgPool;

/// `[retention]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days after which patient data is purged from evaluations, pages and notifications
    /// (0: kept).
    pub patient_data_days: u32,
    /// Days after which rows are deleted (0: kept). At least `patient_data_days` when both are set.
    pub row_days: u32,
}

impl RetentionConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.row_days > 0 && self.patient_data_days > 0 && self.row_days < self.patient_data_days
        {
            return Err(format!(
                "retention.row_days ({}) is shorter than retention.patient_data_days ({}): rows would be deleted before their patient data is due",
                self.row_days, self.patient_data_days
            ));
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.patient_data_days > 0 || self.row_days > 0
    }
}

/// What one purge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Evaluations whose patient data was removed.
    pub evaluations_anonymised: u64,
    /// Pages whose payload was removed.
    pub pages_anonymised: u64,
    /// Subscription notifications whose focus was removed.
    pub notifications_anonymised: u64,
    /// Replay outcomes whose patient id was hashed.
    pub replay_outcomes_anonymised: u64,
    /// Rows deleted, all tables.
    pub rows_deleted: u64,
}

/// Rows per statement: small enough that no statement holds locks for long.
const BATCH: i64 = 2_000;
/// The advisory lock key of the purge (one replica at a time).
const RETENTION_LOCK: i64 = 0x4c52_545f_5245_544e; // "LRT_RETN"

/// The assessment members a purged evaluation keeps (classifications, no values).
const KEPT_ASSESSMENT: &[&str] = &[
    "ruleset",
    "evaluated_at",
    "berlin_category",
    "global_category",
    "ecmo_category",
    "ecmo_reasons",
    "ecmo_urgency",
    "prone_recommended",
    "mechanisms",
    "recommendations",
    "consult_triggers",
    "data_quality",
];

/// What a purged evaluation keeps of its response: each card's uuid and indicator (what the
/// alert and feedback aggregates count), not its text, which names values.
const CARDS_KEPT: &str = "jsonb_build_object('cards', COALESCE((SELECT jsonb_agg(jsonb_build_object(\
    'uuid', card->'uuid', 'indicator', card->'indicator')) FROM jsonb_array_elements(\
    CASE WHEN jsonb_typeof(response->'cards') = 'array' THEN response->'cards' ELSE '[]'::jsonb END) card), \
    '[]'::jsonb))";

/// A patient id replaced by its SHA-256 (distinct patients can still be counted).
const HASHED_PATIENT: &str = "'sha256:' || encode(sha256(convert_to(patient_id, 'UTF8')), 'hex')";

/// Runs the purge due under `config` unless another replica is running it (None).
pub async fn purge(pool: &PgPool, config: &RetentionConfig) -> Result<Option<Purged>, sqlx::Error> {
    if !config.enabled() {
        return Ok(Some(Purged::default()));
    }
    // A session-level lock on one connection held for the whole purge; the batches run on
    // the pool.
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Ok(None);
    }
    let result = purge_locked(pool, config).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(RETENTION_LOCK)
        .execute(&mut *lock)
        .await;
    result.map(Some)
}

async fn purge_locked(pool: &PgPool, config: &RetentionConfig) -> Result<Purged, sqlx::Error> {
    let mut purged = Purged::default();
    if config.patient_data_days > 0 {
        let days = days(config.patient_data_days);
        let kept = KEPT_ASSESSMENT
            .iter()
            .map(|k| format!("'{k}', assessment->'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let evaluations = format!(
            "UPDATE evaluation SET snapshot = '{{}}'::jsonb, response = {CARDS_KEPT}, \
               assessment = jsonb_strip_nulls(jsonb_build_object({kept})), \
               patient_id = {HASHED_PATIENT}, patient_data_purged_at = now() \
             WHERE id IN (SELECT id FROM evaluation WHERE patient_data_purged_at IS NULL \
               AND created_at < now() - make_interval(days => $1) LIMIT $2)"
        );
        let pages = format!(
            "UPDATE consult_page SET payload = '{{}}'::jsonb, patient_id = {HASHED_PATIENT}, \
               patient_data_purged_at = now() \
             WHERE id IN (SELECT id FROM consult_page WHERE patient_data_purged_at IS NULL \
               AND created_at < now() - make_interval(days => $1) LIMIT $2)"
        );
        let notifications = "UPDATE subscription_inbox SET focus = '[]'::jsonb, patient_ids = '{}' \
             WHERE id IN (SELECT id FROM subscription_inbox WHERE state <> 'pending' \
               AND focus <> '[]'::jsonb \
               AND received_at < now() - make_interval(days => $1) LIMIT $2)";
        purged.evaluations_anonymised = until_done(pool, &evaluations, days).await?;
        purged.pages_anonymised = until_done(pool, &pages, days).await?;
        purged.notifications_anonymised = until_done(pool, notifications, days).await?;
        let outcomes = format!(
            "UPDATE replay_outcome SET patient_id = {HASHED_PATIENT}, \
               source_key = CASE WHEN source_evaluation_id IS NULL \
                 THEN split_part(source_key, '/', 1) || '/' || {HASHED_PATIENT} || '/' || \
                      regexp_replace(source_key, '^.*/', '') \
                 ELSE source_key END \
             WHERE ctid IN (SELECT o.ctid FROM replay_outcome o JOIN replay_run r ON r.id = o.run_id \
               WHERE r.started_at < now() - make_interval(days => $1) \
               AND o.patient_id NOT LIKE 'sha256:%' LIMIT $2)"
        );
        let runs = "UPDATE replay_run SET parameters = parameters \
               || jsonb_build_object('patient_data_purged_at', now()) \
               || CASE WHEN jsonb_typeof(parameters->'patient') = 'string' \
                    THEN jsonb_build_object('patient', 'sha256:' || \
                      encode(sha256(convert_to(parameters->>'patient', 'UTF8')), 'hex')) \
                    ELSE '{}'::jsonb END \
             WHERE id IN (SELECT id FROM replay_run WHERE NOT parameters ? 'patient_data_purged_at' \
               AND started_at < now() - make_interval(days => $1) LIMIT $2)";
        purged.replay_outcomes_anonymised = until_done(pool, &outcomes, days).await?;
        until_done(pool, runs, days).await?;
    }
    if config.row_days > 0 {
        let days = days(config.row_days);
        // Children first: attempts, deliveries, pages and feedback of old evaluations, then
        // the evaluations; hook calls and notifications on their own.
        let statements = [
            "DELETE FROM page_attempt WHERE id IN (SELECT a.id FROM page_attempt a \
               JOIN page_delivery d ON d.id = a.delivery_id JOIN consult_page p ON p.id = d.page_id \
               WHERE p.created_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM page_delivery WHERE id IN (SELECT d.id FROM page_delivery d \
               JOIN consult_page p ON p.id = d.page_id \
               WHERE p.created_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM consult_page WHERE id IN (SELECT id FROM consult_page \
               WHERE created_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM card_feedback WHERE ctid IN (SELECT f.ctid FROM card_feedback f \
               JOIN evaluation e ON e.id = f.evaluation_id \
               WHERE e.created_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM evaluation WHERE id IN (SELECT e.id FROM evaluation e \
               WHERE e.created_at < now() - make_interval(days => $1) \
               AND NOT EXISTS (SELECT 1 FROM consult_page p WHERE p.evaluation_id = e.id) \
               LIMIT $2)",
            "DELETE FROM hook_call WHERE id IN (SELECT id FROM hook_call \
               WHERE received_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM subscription_inbox WHERE id IN (SELECT id FROM subscription_inbox \
               WHERE state <> 'pending' AND received_at < now() - make_interval(days => $1) LIMIT $2)",
            // A replay run's outcomes in batches, then the run (its cascade finds none left).
            "DELETE FROM replay_outcome WHERE ctid IN (SELECT o.ctid FROM replay_outcome o \
               JOIN replay_run r ON r.id = o.run_id \
               WHERE r.started_at < now() - make_interval(days => $1) LIMIT $2)",
            "DELETE FROM replay_run WHERE id IN (SELECT id FROM replay_run \
               WHERE started_at < now() - make_interval(days => $1) LIMIT $2)",
        ];
        for statement in statements {
            purged.rows_deleted += until_done(pool, statement, days).await?;
        }
    }
    Ok(purged)
}

/// Days as PostgreSQL's `make_interval` takes them.
fn days(d: u32) -> i32 {
    i32::try_from(d).unwrap_or(i32::MAX)
}

/// Runs `sql` (binding the days as `$1` and the batch size as `$2`) until a batch changes
/// fewer rows than the batch size; the total of rows changed.
async fn until_done(pool: &PgPool, sql: &str, days: i32) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(days)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}
