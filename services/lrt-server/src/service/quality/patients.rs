//! `GET /api/v1/quality/patients`: distinct patients per ECMO category over time. A patient is
//! counted once per category, in the bucket of the first time an active evaluation put it in
//! that category (looking back before `from`: a patient first eligible before the window is not
//! counted again inside it). A patient is its FHIR id under the issuer and tenant that sent it
//! (two EHRs may use the same id for different people).

use serde::Serialize;
use sqlx::PgPool;

use super::{BUCKETS, EVALUATION_FILTERS, QualityQuery, Window};

#[derive(Debug, Serialize)]
pub struct Patients {
    pub window: Window,
    pub filters: super::Filters,
    /// Patients whose first time in a category falls in the window, by category.
    pub by_category: Vec<ByCategory>,
    /// The same per bucket (buckets and categories without a patient are left out).
    pub series: Vec<Bucket>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByCategory {
    /// Null: evaluations that gave no ECMO category.
    pub category: Option<String>,
    pub patients: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub start: chrono::DateTime<chrono::Utc>,
    pub category: Option<String>,
    pub patients: i64,
}

/// Each patient's first time in each category, before `to` (`$1`…`$9`).
fn firsts_cte() -> String {
    format!(
        "WITH firsts AS ( \
           SELECT e.client_iss, e.tenant, e.patient_id, e.ecmo_category AS category, \
             min(e.created_at) AS first_at \
           FROM evaluation e \
           WHERE e.role = 'active' AND e.created_at < $2 \
             AND ($3::text IS NULL OR e.service_id = $3) AND ($4::text IS NULL OR e.hook = $4) \
             AND {EVALUATION_FILTERS} \
           GROUP BY 1, 2, 3, 4), \
         counted AS (SELECT * FROM firsts WHERE first_at >= $1) "
    )
}

pub async fn patients(pool: &PgPool, q: &QualityQuery) -> Result<Patients, sqlx::Error> {
    let cte = firsts_cte();
    let category_sql = format!(
        "{cte} SELECT category, count(*) AS patients FROM counted GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let series_sql = format!(
        "{cte} SELECT b.start AT TIME ZONE 'UTC' AS start, c.category, count(*) AS patients \
         FROM {BUCKETS} JOIN counted c ON date_trunc($10, c.first_at AT TIME ZONE 'UTC') = b.start \
         GROUP BY b.start, c.category ORDER BY b.start, c.category"
    );
    let (by_category, series) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, ByCategory>(&category_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, Bucket>(&series_sql))
            .bind(q.window.interval.as_str())
            .fetch_all(pool),
    )?;
    Ok(Patients {
        window: q.window,
        filters: q.filters.clone(),
        by_category,
        series,
    })
}
