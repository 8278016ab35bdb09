//! `GET /api/v1/quality/shadow`: the active and shadow evaluations of the same call (the same
//! idempotency key: `hookInstance`, or the Subscription/API key) in the window (the active
//! evaluation's `created_at`), compared field by field: the ECMO category, its urgency
//! (`ecmo_urgency`), the recommendations and the consult triggers (both as sets of codes).
//! Agreement per field, and the disagreeing pairs listed oldest first with both sides' values,
//! cursor-paginated (`cursor` from the previous answer's `next_cursor`, `limit`).
//!
//! Filters and tenancy apply to the active evaluation (`ruleset_version` is the active one's;
//! `versions` says which shadow versions were compared).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Cursor, EVALUATION_FILTERS, Paging, QualityQuery, Window};

/// The fields compared, in the order of the answer.
pub const FIELDS: [&str; 4] = ["category", "urgency", "recommendations", "triggers"];

#[derive(Debug, Serialize)]
pub struct Shadow {
    pub window: Window,
    pub filters: super::Filters,
    /// Pairs of an active and a shadow evaluation.
    pub pairs: i64,
    /// Pairs that agree on every field.
    pub all_agree: i64,
    pub fields: Vec<FieldAgreement>,
    pub versions: Vec<VersionPair>,
    pub disagreements: Vec<Disagreement>,
    /// The cursor of the next page of `disagreements` (null: this is the last).
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FieldAgreement {
    pub field: &'static str,
    pub agree: i64,
    pub disagree: i64,
    /// `agree / pairs` (null without pairs).
    pub agreement: Option<f64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct VersionPair {
    pub active: String,
    pub shadow: String,
    pub pairs: i64,
}

/// One side of a pair.
#[derive(Debug, Serialize)]
pub struct Side {
    pub evaluation_id: Uuid,
    pub ruleset_version: String,
    pub category: Option<String>,
    pub urgency: Option<String>,
    pub recommendations: Vec<String>,
    pub triggers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Disagreement {
    pub created_at: DateTime<Utc>,
    /// The fields that differ, in the order of [`FIELDS`].
    pub fields: Vec<String>,
    pub active: Side,
    pub shadow: Side,
}

#[derive(sqlx::FromRow)]
struct Counts {
    pairs: i64,
    all_agree: i64,
    category: i64,
    urgency: i64,
    recommendations: i64,
    triggers: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    created_at: DateTime<Utc>,
    fields: Vec<String>,
    active_id: Uuid,
    active_version: String,
    active_category: Option<String>,
    active_urgency: Option<String>,
    active_recommendations: Vec<String>,
    active_triggers: Vec<String>,
    shadow_id: Uuid,
    shadow_version: String,
    shadow_category: Option<String>,
    shadow_urgency: Option<String>,
    shadow_recommendations: Vec<String>,
    shadow_triggers: Vec<String>,
}

/// The sorted, distinct codes of a JSON array of strings (`recommendations`) or of objects
/// with a `code` (`consult_triggers`).
fn codes(json: &str, element: &str) -> String {
    format!(
        "(SELECT coalesce(array_agg(DISTINCT {element} ORDER BY {element}), '{{}}'::text[]) \
          FROM jsonb_array_elements(coalesce({json}, '[]'::jsonb)) x)"
    )
}

/// The window's pairs, compared (`$1`…`$9`).
fn pairs_cte() -> String {
    let recommendations = |side: &str| {
        codes(
            &format!("{side}.assessment->'recommendations'"),
            "x #>> '{}'",
        )
    };
    let triggers = |side: &str| {
        codes(
            &format!("{side}.assessment->'consult_triggers'"),
            "x->>'code'",
        )
    };
    format!(
        "WITH pairs AS ( \
           SELECT e.created_at, \
             e.id AS active_id, e.ruleset_version AS active_version, \
             e.ecmo_category AS active_category, e.assessment->>'ecmo_urgency' AS active_urgency, \
             {} AS active_recommendations, {} AS active_triggers, \
             s.id AS shadow_id, s.ruleset_version AS shadow_version, \
             s.ecmo_category AS shadow_category, s.assessment->>'ecmo_urgency' AS shadow_urgency, \
             {} AS shadow_recommendations, {} AS shadow_triggers \
           FROM evaluation e JOIN evaluation s ON s.hook_instance = e.hook_instance AND s.role = 'shadow' \
           WHERE e.role = 'active' AND e.created_at >= $1 AND e.created_at < $2 \
             AND ($3::text IS NULL OR e.service_id = $3) AND ($4::text IS NULL OR e.hook = $4) \
             AND {EVALUATION_FILTERS}), \
         compared AS ( \
           SELECT *, array_remove(ARRAY[ \
               CASE WHEN active_category IS DISTINCT FROM shadow_category THEN 'category' END, \
               CASE WHEN active_urgency IS DISTINCT FROM shadow_urgency THEN 'urgency' END, \
               CASE WHEN active_recommendations <> shadow_recommendations THEN 'recommendations' END, \
               CASE WHEN active_triggers <> shadow_triggers THEN 'triggers' END], NULL) AS fields \
           FROM pairs) ",
        recommendations("e"),
        triggers("e"),
        recommendations("s"),
        triggers("s"),
    )
}

pub async fn shadow(
    pool: &PgPool,
    q: &QualityQuery,
    paging: &Paging,
) -> Result<Shadow, sqlx::Error> {
    let cte = pairs_cte();
    let counts_sql = format!(
        "{cte} SELECT count(*) AS pairs, count(*) FILTER (WHERE cardinality(fields) = 0) AS all_agree, \
           count(*) FILTER (WHERE NOT 'category' = ANY (fields)) AS category, \
           count(*) FILTER (WHERE NOT 'urgency' = ANY (fields)) AS urgency, \
           count(*) FILTER (WHERE NOT 'recommendations' = ANY (fields)) AS recommendations, \
           count(*) FILTER (WHERE NOT 'triggers' = ANY (fields)) AS triggers \
         FROM compared"
    );
    let versions_sql = format!(
        "{cte} SELECT active_version AS active, shadow_version AS shadow, count(*) AS pairs \
         FROM compared GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let list_sql = format!(
        "{cte} SELECT * FROM compared WHERE cardinality(fields) > 0 \
           AND ($10::timestamptz IS NULL OR (created_at, active_id) > ($10, $11)) \
         ORDER BY created_at, active_id LIMIT $12"
    );
    let (counts, versions, mut rows) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, Counts>(&counts_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, VersionPair>(&versions_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, Row>(&list_sql))
            .bind(paging.after.map(|c| c.at))
            .bind(paging.after.map(|c| c.id))
            .bind(paging.limit + 1)
            .fetch_all(pool),
    )?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next_cursor = rows.last().filter(|_| more).map(|r| {
        Cursor {
            at: r.created_at,
            id: r.active_id,
        }
        .encode()
    });
    let agreement = |field: &'static str, agree: i64| FieldAgreement {
        field,
        agree,
        disagree: counts.pairs - agree,
        agreement: (counts.pairs > 0).then(|| agree as f64 / counts.pairs as f64),
    };
    Ok(Shadow {
        window: q.window,
        filters: q.filters.clone(),
        pairs: counts.pairs,
        all_agree: counts.all_agree,
        fields: vec![
            agreement(FIELDS[0], counts.category),
            agreement(FIELDS[1], counts.urgency),
            agreement(FIELDS[2], counts.recommendations),
            agreement(FIELDS[3], counts.triggers),
        ],
        versions,
        disagreements: rows.into_iter().map(Disagreement::from).collect(),
        next_cursor,
    })
}

impl From<Row> for Disagreement {
    fn from(r: Row) -> Self {
        Disagreement {
            created_at: r.created_at,
            fields: r.fields,
            active: Side {
                evaluation_id: r.active_id,
                ruleset_version: r.active_version,
                category: r.active_category,
                urgency: r.active_urgency,
                recommendations: r.active_recommendations,
                triggers: r.active_triggers,
            },
            shadow: Side {
                evaluation_id: r.shadow_id,
                ruleset_version: r.shadow_version,
                category: r.shadow_category,
                urgency: r.shadow_urgency,
                recommendations: r.shadow_recommendations,
                triggers: r.shadow_triggers,
            },
        }
    }
}
