//! What a replay run did, read back from its rows (so a resumed run reports all of it): inputs
//! planned and done, outcomes per ECMO category, and for stored sources what changed against
//! the evaluation replayed (category, urgency, consult triggers as sets).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::ReplayError;
use super::store::RunRow;

/// The summary `lrt replay` prints (and `--json` prints as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub run_id: Uuid,
    /// `stored` or `bundle`.
    pub source: String,
    pub ruleset: RulesetRef,
    /// `running`, `finished` or `failed`.
    pub state: String,
    /// Inputs of the run (planned) and outcomes it holds (done).
    pub inputs: u64,
    pub done: u64,
    /// This invocation: outcomes written, inputs skipped because the run already held them, and
    /// inputs the filter selects whose snapshot retention has purged (never replayable).
    pub written: u64,
    pub skipped_already_done: u64,
    pub skipped_purged: u64,
    /// Wall-clock seconds of this invocation, and of its evaluation alone (snapshots built or
    /// parsed, and the engine), and outcomes written per second.
    pub seconds: f64,
    pub evaluating_seconds: f64,
    pub snapshots_per_second: f64,
    /// Outcomes of the whole run per ECMO category (`none`: no category).
    pub categories: BTreeMap<String, u64>,
    /// Stored sources: the outcomes compared with the evaluation replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Changed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesetRef {
    pub id: String,
    pub version: String,
    pub sha256: String,
}

/// Outcomes that differ from the source evaluation's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub compared: u64,
    pub category: u64,
    pub urgency: u64,
    /// The set of consult-trigger codes differs (order aside).
    pub consult_triggers: u64,
    /// Any of the three.
    pub any: u64,
    /// Category changes, most frequent first.
    pub category_transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: u64,
}

/// This invocation's figures (the rest is read from the tables).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Invocation {
    pub written: u64,
    pub skipped_already_done: u64,
    pub skipped_purged: u64,
    pub seconds: f64,
    pub evaluating_seconds: f64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The codes of an array column as a sorted, distinct array (to compare arrays as sets).
fn code_set(column: &str) -> String {
    format!("ARRAY(SELECT DISTINCT x FROM unnest(coalesce({column}, '{{}}'::text[])) x ORDER BY x)")
}

pub async fn read(
    pool: &PgPool,
    run: &RunRow,
    invocation: Invocation,
) -> Result<Summary, ReplayError> {
    let categories: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(ecmo_category, 'none'), count(*) FROM replay_outcome \
         WHERE run_id = $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(run.id)
    .fetch_all(pool)
    .await?;
    let changed = if run.source == "stored" {
        Some(changed(pool, run.id).await?)
    } else {
        None
    };
    let per_second = if invocation.seconds > 0.0 {
        invocation.written as f64 / invocation.seconds
    } else {
        0.0
    };
    Ok(Summary {
        run_id: run.id,
        source: run.source.clone(),
        ruleset: RulesetRef {
            id: run.ruleset_id.clone(),
            version: run.ruleset_version.clone(),
            sha256: run.ruleset_sha256.clone(),
        },
        state: run.state.clone(),
        inputs: run.planned.map_or(0, |p| count(p.into())),
        done: count(run.done.into()),
        written: invocation.written,
        skipped_already_done: invocation.skipped_already_done,
        skipped_purged: invocation.skipped_purged,
        seconds: invocation.seconds,
        evaluating_seconds: invocation.evaluating_seconds,
        snapshots_per_second: per_second,
        categories: categories.into_iter().map(|(c, n)| (c, count(n))).collect(),
        changed,
    })
}

async fn changed(pool: &PgPool, run: Uuid) -> Result<Changed, ReplayError> {
    let triggers_differ = format!(
        "{} <> {}",
        code_set("consult_triggers"),
        code_set("source_consult_triggers")
    );
    let sql = format!(
        "SELECT count(*), \
           count(*) FILTER (WHERE ecmo_category IS DISTINCT FROM source_ecmo_category), \
           count(*) FILTER (WHERE ecmo_urgency IS DISTINCT FROM source_ecmo_urgency), \
           count(*) FILTER (WHERE {triggers_differ}), \
           count(*) FILTER (WHERE ecmo_category IS DISTINCT FROM source_ecmo_category \
             OR ecmo_urgency IS DISTINCT FROM source_ecmo_urgency OR {triggers_differ}) \
         FROM replay_outcome WHERE run_id = $1 AND source_ruleset_version IS NOT NULL"
    );
    let (compared, category, urgency, consult_triggers, any): (i64, i64, i64, i64, i64) =
        sqlx::query_as(&sql).bind(run).fetch_one(pool).await?;
    let transitions: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT coalesce(source_ecmo_category, 'none'), coalesce(ecmo_category, 'none'), count(*) \
         FROM replay_outcome WHERE run_id = $1 AND source_ruleset_version IS NOT NULL \
           AND ecmo_category IS DISTINCT FROM source_ecmo_category \
         GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    Ok(Changed {
        compared: count(compared),
        category: count(category),
        urgency: count(urgency),
        consult_triggers: count(consult_triggers),
        any: count(any),
        category_transitions: transitions
            .into_iter()
            .map(|(from, to, n)| Transition {
                from,
                to,
                count: count(n),
            })
            .collect(),
    })
}
