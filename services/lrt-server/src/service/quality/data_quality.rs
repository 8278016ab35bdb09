//! `GET /api/v1/quality/data-quality`: what the EHR fails to chart. The data-quality items of
//! the active evaluations of the window (`assessment.data_quality`, `code:detail` strings, see
//! `lrt_engine::quality`), the 100 most frequent first, by their stable `code` and a `subject`:
//! the concept for the codes whose detail names one (`stale`, `conflict`, `missing`,
//! `missing_or_unpaired`), the site's own code for `unmapped` (`system|code`: a local code no
//! code set maps), and null for the others (their details are observation ids, times or free
//! text, never grouped on). Each counts the evaluations that carried it and their distinct
//! patients.

use serde::Serialize;
use sqlx::PgPool;

use super::{BUCKETS, EVALUATION_FILTERS, QualityQuery, Window};

/// How many items the ranking lists.
pub const TOP: i64 = 100;

#[derive(Debug, Serialize)]
pub struct DataQuality {
    pub window: Window,
    pub filters: super::Filters,
    pub evaluations: i64,
    /// Evaluations with at least one item.
    pub evaluations_with_items: i64,
    pub items: Vec<Item>,
    pub series: Vec<Bucket>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Item {
    pub code: String,
    pub subject: Option<String>,
    pub evaluations: i64,
    pub patients: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub start: chrono::DateTime<chrono::Utc>,
    pub evaluations: i64,
    pub evaluations_with_items: i64,
}

#[derive(sqlx::FromRow)]
struct Totals {
    evaluations: i64,
    evaluations_with_items: i64,
}

/// The window's active evaluations with their items (`$1`…`$9`).
fn evaluations_cte() -> String {
    format!(
        "WITH evaluations AS ( \
           SELECT e.id, e.created_at, e.client_iss, e.tenant, e.patient_id, \
             CASE WHEN jsonb_typeof(e.assessment->'data_quality') = 'array' \
                  THEN e.assessment->'data_quality' ELSE '[]'::jsonb END AS items \
           FROM evaluation e \
           WHERE e.role = 'active' AND e.created_at >= $1 AND e.created_at < $2 \
             AND ($3::text IS NULL OR e.service_id = $3) AND ($4::text IS NULL OR e.hook = $4) \
             AND {EVALUATION_FILTERS}), \
         items AS ( \
           SELECT DISTINCT v.id, v.client_iss, v.tenant, v.patient_id, \
             split_part(i.item, ':', 1) AS code, \
             CASE WHEN split_part(i.item, ':', 1) IN ('stale', 'conflict', 'missing', 'missing_or_unpaired') \
                    THEN substring(substr(i.item, strpos(i.item, ':') + 1) FROM '^[a-z0-9_]+') \
                  WHEN split_part(i.item, ':', 1) = 'unmapped' THEN substr(i.item, strpos(i.item, ':') + 1) \
             END AS subject \
           FROM evaluations v, jsonb_array_elements_text(v.items) AS i(item)) "
    )
}

pub async fn data_quality(pool: &PgPool, q: &QualityQuery) -> Result<DataQuality, sqlx::Error> {
    let cte = evaluations_cte();
    let totals_sql = format!(
        "{cte} SELECT count(*) AS evaluations, \
           count(*) FILTER (WHERE jsonb_array_length(items) > 0) AS evaluations_with_items \
         FROM evaluations"
    );
    let items_sql = format!(
        "{cte} SELECT code, subject, count(DISTINCT id) AS evaluations, \
           count(DISTINCT (client_iss, tenant, patient_id)) AS patients \
         FROM items GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 NULLS FIRST LIMIT {TOP}"
    );
    let series_sql = format!(
        "{cte} SELECT b.start AT TIME ZONE 'UTC' AS start, count(v.id) AS evaluations, \
           count(v.id) FILTER (WHERE jsonb_array_length(v.items) > 0) AS evaluations_with_items \
         FROM {BUCKETS} LEFT JOIN evaluations v ON date_trunc($10, v.created_at AT TIME ZONE 'UTC') = b.start \
         GROUP BY b.start ORDER BY b.start"
    );
    let (totals, items, series) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, Totals>(&totals_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Item>(&items_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, Bucket>(&series_sql))
            .bind(q.window.interval.as_str())
            .fetch_all(pool),
    )?;
    Ok(DataQuality {
        window: q.window,
        filters: q.filters.clone(),
        evaluations: totals.evaluations,
        evaluations_with_items: totals.evaluations_with_items,
        items,
        series,
    })
}
