//! The system's calls for each adjudication, from PostgreSQL: one statement over every
//! adjudication at once (`unnest` of the patients and times), using the patient indexes.
//!
//! * Stored: the active evaluations of the patient created in `[t − window, t]`, at
//!   `created_at`; the consult triggers are the codes of the assessment's `consult_triggers`.
//! * Replay: the run's outcomes of the patient; the call's time is the replayed stored
//!   evaluation's `created_at` (the same clock as the stored comparison, so a stored and a replay
//!   validation of the same calls differ only by the rule set), or the outcome's `evaluated_at`
//!   when there is no stored evaluation (a bundle replay, or one since purged).
//!
//! Tenancy ([`Tenancy`]): a tenant's caller matches its own issuer and tenant's evaluations only;
//! replay outcomes through their source evaluation (a bundle replay belongs to no tenant and is
//! matched for a caller who reads every tenant only).

use sqlx::PgPool;
use uuid::Uuid;

use super::{Adjudication, LookBack, Source, SystemCall};
use crate::service::auth::Tenancy;

/// Where to take the system's calls from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Stored,
    Replay(Uuid),
}

/// A replay run id as the API document writes it: a hyphenated UUID (36 characters).
pub fn parse_run_id(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no replay run {0}")]
    NoSuchRun(Uuid),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct CallRow {
    /// The adjudication's position, from 1.
    n: i64,
    at: chrono::DateTime<chrono::Utc>,
    category: Option<String>,
    consult_triggers: Vec<String>,
    ruleset_version: String,
    evaluation_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    source: String,
    state: String,
    ruleset_id: String,
    ruleset_version: String,
}

/// The codes of an evaluation `e`'s consult triggers.
const TRIGGERS: &str = "ARRAY(SELECT x.code FROM (SELECT CASE jsonb_typeof(t) \
      WHEN 'object' THEN t->>'code' WHEN 'string' THEN t #>> '{}' END AS code \
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(e.assessment->'consult_triggers') = 'array' \
      THEN e.assessment->'consult_triggers' ELSE '[]'::jsonb END) t) x \
    WHERE x.code IS NOT NULL)";

/// The caller's tenancy on an evaluation `{e}` bound at `$4` (issuer, NULL for every tenant)
/// and `$5` (tenant).
fn tenancy(e: &str) -> String {
    format!(
        "($4::text IS NULL OR ({e}.client_iss = $4 \
           AND ({e}.tenant = $5 OR ($5::text IS NULL AND {e}.tenant IS NULL))))"
    )
}

/// The source's description and, for each adjudication, its patient's calls in the window in
/// time order.
pub async fn calls(
    pool: &PgPool,
    adjudications: &[Adjudication],
    window: LookBack,
    origin: Origin,
    caller: &Tenancy,
) -> Result<(Source, Vec<Vec<SystemCall>>), LoadError> {
    let patients: Vec<&str> = adjudications.iter().map(|a| a.patient.as_str()).collect();
    let times: Vec<_> = adjudications.iter().map(|a| a.at).collect();
    let seconds = window.duration().num_seconds();
    let (iss, tenant) = caller.binds();
    let adjudicated = "unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS a(patient, at, n)";
    let (source, rows) = match origin {
        Origin::Stored => {
            let sql = format!(
                "SELECT a.n, e.created_at AS at, e.ecmo_category AS category, \
                   {TRIGGERS} AS consult_triggers, e.ruleset_version, e.id AS evaluation_id \
                 FROM {adjudicated} \
                 JOIN evaluation e ON e.patient_id = a.patient AND e.role = 'active' \
                   AND e.created_at >= a.at - $3 * interval '1 second' AND e.created_at <= a.at \
                 WHERE {} \
                 ORDER BY a.n, e.created_at, e.id",
                tenancy("e")
            );
            let rows = sqlx::query_as::<_, CallRow>(&sql)
                .bind(&patients)
                .bind(&times)
                .bind(seconds)
                .bind(iss)
                .bind(tenant)
                .fetch_all(pool)
                .await?;
            (Source::Stored, rows)
        }
        Origin::Replay(run) => {
            let found = sqlx::query_as::<_, RunRow>(
                "SELECT source, state, ruleset_id, ruleset_version FROM replay_run WHERE id = $1",
            )
            .bind(run)
            .fetch_optional(pool)
            .await?
            .ok_or(LoadError::NoSuchRun(run))?;
            let sql = format!(
                "SELECT a.n, c.at, o.ecmo_category AS category, array_remove(o.consult_triggers, NULL) AS consult_triggers, \
                   $7::text AS ruleset_version, e.id AS evaluation_id \
                 FROM {adjudicated} \
                 JOIN replay_outcome o ON o.run_id = $6 AND o.patient_id = a.patient \
                 LEFT JOIN evaluation e ON e.id = o.source_evaluation_id \
                 CROSS JOIN LATERAL (SELECT coalesce(e.created_at, o.evaluated_at) AS at) c \
                 WHERE c.at >= a.at - $3 * interval '1 second' AND c.at <= a.at AND {} \
                 ORDER BY a.n, c.at, o.source_key",
                tenancy("e")
            );
            let rows = sqlx::query_as::<_, CallRow>(&sql)
                .bind(&patients)
                .bind(&times)
                .bind(seconds)
                .bind(iss)
                .bind(tenant)
                .bind(run)
                .bind(&found.ruleset_version)
                .fetch_all(pool)
                .await?;
            let source = Source::Replay {
                run,
                replayed: found.source,
                state: found.state,
                ruleset_id: found.ruleset_id,
                ruleset_version: found.ruleset_version,
            };
            (source, rows)
        }
    };
    let mut calls: Vec<Vec<SystemCall>> = vec![Vec::new(); adjudications.len()];
    for row in rows {
        let Some(slot) = usize::try_from(row.n - 1)
            .ok()
            .and_then(|i| calls.get_mut(i))
        else {
            continue;
        };
        slot.push(SystemCall {
            at: row.at,
            category: row.category,
            consult_triggers: row.consult_triggers,
            ruleset_version: row.ruleset_version,
            evaluation_id: row.evaluation_id,
        });
    }
    Ok((source, calls))
}
