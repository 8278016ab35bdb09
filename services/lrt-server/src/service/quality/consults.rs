//! `GET /api/v1/quality/consults`: the LRT pages written in the window (`consult_page.created_at`):
//! by reason and urgency, over time, how long from the first qualifying evaluation to delivery and
//! to acknowledgement (median and 90th percentile, PostgreSQL's `percentile_cont`), and the pages
//! that were dead-lettered or needed more than one attempt.
//!
//! Definitions:
//! * a page's **reasons** are its `new_reasons` (the triggers that made it go; the others were
//!   paged inside the repeat window already), each with that trigger's own urgency; the page's
//!   **urgency** is the highest of its triggers;
//! * its **first qualifying evaluation** is the earliest active evaluation of the same patient,
//!   issuer and tenant that carries one of the page's reasons as a consult trigger, created at or
//!   before the page and after the patient's previous page (by any source: hook call,
//!   Subscription or API). Pages are written in the transaction of the evaluation that causes
//!   them, so this is the page's own evaluation unless an earlier one qualified without paging
//!   (paging off or failing at the time);
//! * **delivered** is the first channel's delivery; **acknowledged** is the page's
//!   acknowledgement through the API;
//! * **dead-lettered**: a delivery of the page is dead now; **retried**: a delivery needed more
//!   than one attempt (`failed_attempts` counts the failed ones).
//! * `service`, `hook`, `tenant`, `ruleset_version`, `category` and tenancy are those of the
//!   page's evaluation.

use serde::Serialize;
use sqlx::PgPool;

use super::{BUCKETS, EVALUATION_FILTERS, QualityQuery, Window};

#[derive(Debug, Serialize)]
pub struct Consults {
    pub window: Window,
    pub filters: super::Filters,
    pub totals: Totals,
    pub timeliness_s: Timeliness,
    pub series: Vec<Bucket>,
    pub by_reason: Vec<ByReason>,
    pub by_urgency: Vec<ByUrgency>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Totals {
    pub pages: i64,
    pub delivered: i64,
    pub acknowledged: i64,
    pub dead_lettered: i64,
    pub retried: i64,
    pub failed_attempts: i64,
}

/// Seconds from the first qualifying evaluation (null without any delivered or acknowledged
/// page).
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Timeliness {
    pub to_delivery_median: Option<f64>,
    pub to_delivery_p90: Option<f64>,
    pub to_acknowledgement_median: Option<f64>,
    pub to_acknowledgement_p90: Option<f64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub start: chrono::DateTime<chrono::Utc>,
    pub pages: i64,
    pub acknowledged: i64,
    pub dead_lettered: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByReason {
    pub reason: String,
    pub urgency: Option<String>,
    pub pages: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByUrgency {
    pub urgency: String,
    pub pages: i64,
}

/// The window's pages with their delivery facts and qualifying time (`$1`…`$9`).
fn pages_cte() -> String {
    format!(
        "WITH pages AS ( \
           SELECT p.id, p.created_at, p.urgency, p.triggers, p.new_reasons, p.acknowledged_at, \
             (SELECT min(d.delivered_at) FROM page_delivery d WHERE d.page_id = p.id) AS delivered_at, \
             EXISTS (SELECT 1 FROM page_delivery d WHERE d.page_id = p.id AND d.state = 'dead') AS dead, \
             EXISTS (SELECT 1 FROM page_delivery d WHERE d.page_id = p.id AND d.attempts > 1) AS retried, \
             (SELECT count(*) FROM page_attempt a JOIN page_delivery d ON d.id = a.delivery_id \
               WHERE d.page_id = p.id AND a.outcome = 'failed') AS failed_attempts, \
             coalesce((SELECT min(q.created_at) FROM evaluation q \
               WHERE q.patient_id = p.patient_id AND q.role = 'active' \
                 AND q.client_iss IS NOT DISTINCT FROM e.client_iss \
                 AND q.tenant IS NOT DISTINCT FROM e.tenant \
                 AND q.created_at <= p.created_at \
                 AND q.created_at > coalesce((SELECT max(pp.created_at) FROM consult_page pp \
                     WHERE pp.patient_id = p.patient_id AND pp.created_at < p.created_at), \
                   '-infinity'::timestamptz) \
                 AND EXISTS (SELECT 1 FROM jsonb_array_elements( \
                     coalesce(q.assessment->'consult_triggers', '[]'::jsonb)) t \
                   WHERE t->>'code' = ANY (p.new_reasons))), e.created_at) AS qualified_at \
           FROM consult_page p JOIN evaluation e ON e.id = p.evaluation_id \
           WHERE p.created_at >= $1 AND p.created_at < $2 \
             AND ($3::text IS NULL OR e.service_id = $3) AND ($4::text IS NULL OR e.hook = $4) \
             AND {EVALUATION_FILTERS}) "
    )
}

pub async fn consults(pool: &PgPool, q: &QualityQuery) -> Result<Consults, sqlx::Error> {
    let cte = pages_cte();
    let totals_sql = format!(
        "{cte} SELECT count(*) AS pages, count(delivered_at) AS delivered, \
           count(acknowledged_at) AS acknowledged, count(*) FILTER (WHERE dead) AS dead_lettered, \
           count(*) FILTER (WHERE retried) AS retried, \
           coalesce(sum(failed_attempts), 0)::bigint AS failed_attempts \
         FROM pages"
    );
    let timeliness_sql = format!(
        "{cte} SELECT \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - qualified_at)::float8) \
             AS to_delivery_median, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - qualified_at)::float8) \
             AS to_delivery_p90, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - qualified_at)::float8) \
             AS to_acknowledgement_median, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - qualified_at)::float8) \
             AS to_acknowledgement_p90 \
         FROM pages"
    );
    let series_sql = format!(
        "{cte} SELECT b.start AT TIME ZONE 'UTC' AS start, count(p.id) AS pages, \
           count(p.acknowledged_at) AS acknowledged, count(p.id) FILTER (WHERE p.dead) AS dead_lettered \
         FROM {BUCKETS} LEFT JOIN pages p ON date_trunc($10, p.created_at AT TIME ZONE 'UTC') = b.start \
         GROUP BY b.start ORDER BY b.start"
    );
    let reason_sql = format!(
        "{cte} SELECT r AS reason, \
           (SELECT t->>'urgency' FROM jsonb_array_elements(p.triggers) t WHERE t->>'code' = r LIMIT 1) \
             AS urgency, \
           count(*) AS pages \
         FROM pages p, unnest(p.new_reasons) r GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    );
    let urgency_sql = format!(
        "{cte} SELECT urgency, count(*) AS pages FROM pages GROUP BY 1 \
         ORDER BY CASE urgency WHEN 'emergent' THEN 1 WHEN 'urgent' THEN 2 ELSE 3 END"
    );
    let (totals, timeliness_s, series, by_reason, by_urgency) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, Totals>(&totals_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Timeliness>(&timeliness_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Bucket>(&series_sql))
            .bind(q.window.interval.as_str())
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByReason>(&reason_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByUrgency>(&urgency_sql))
            .fetch_all(pool),
    )?;
    Ok(Consults {
        window: q.window,
        filters: q.filters.clone(),
        totals,
        timeliness_s,
        series,
        by_reason,
        by_urgency,
    })
}
