//! `GET /api/v1/quality/alerts`: the CDS Hooks calls of the window (`hook_call.received_at`) and
//! the cards they answered, over time and by service and hook, card indicator, ECMO category and
//! recommendation; the share of answered calls that carried a card; latency percentiles of the
//! answered calls; error answers by HTTP status and code.
//!
//! Counting rules:
//! * a call is one `hook_call` row: every CDS Hooks call answered, errors included, except 401
//!   (never written, so that a stranger cannot fill the table). A retried `hookInstance` is a
//!   call of its own and answers its cards again;
//! * a call's cards are the `cards` of the response of its active evaluation, for 200 answers
//!   only (a 409 names another call's evaluation);
//! * the category and recommendations are the active evaluation's (200 answers);
//! * tenancy and `tenant` are the call's own (its row stores the caller's issuer and tenant, so
//!   a tenant counts its own error answers); `ruleset_version` and `category` are properties of
//!   the evaluation: an error answer has none, so it is not counted when either is given.

use serde::Serialize;
use sqlx::PgPool;

use super::{BUCKETS, CALL_FILTERS, CARDS, QualityQuery, Window};

/// The whole aggregate.
#[derive(Debug, Serialize)]
pub struct Alerts {
    pub window: Window,
    pub filters: super::Filters,
    pub totals: Totals,
    pub latency_ms: Latency,
    pub series: Vec<Bucket>,
    pub by_service: Vec<ByService>,
    pub by_indicator: Vec<ByIndicator>,
    pub by_category: Vec<ByCategory>,
    pub by_recommendation: Vec<ByRecommendation>,
    pub errors_by_status: Vec<ByStatus>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Totals {
    /// Every call (all statuses but 401).
    pub calls: i64,
    /// Calls answered 200.
    pub answered: i64,
    /// Answered calls whose answer had at least one card.
    pub calls_with_cards: i64,
    /// Cards answered.
    pub cards: i64,
    /// Calls answered with an error status.
    pub errors: i64,
    /// `calls_with_cards / answered` (null without answered calls).
    pub card_share: Option<f64>,
}

/// The service's own latency of the calls answered 200 (from the request to the answer, the
/// prefetch fallback and the commit included), continuous percentiles.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub start: chrono::DateTime<chrono::Utc>,
    pub calls: i64,
    pub calls_with_cards: i64,
    pub cards: i64,
    pub errors: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByService {
    pub service: String,
    /// Null for a call whose body did not say (a 400 or 415).
    pub hook: Option<String>,
    pub calls: i64,
    pub calls_with_cards: i64,
    pub cards: i64,
    pub errors: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByIndicator {
    pub indicator: Option<String>,
    pub cards: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByCategory {
    /// Null when the evaluation gave no ECMO category.
    pub category: Option<String>,
    pub calls: i64,
    pub calls_with_cards: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByRecommendation {
    pub recommendation: String,
    pub calls: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByStatus {
    pub status: i16,
    pub error_code: Option<String>,
    pub calls: i64,
}

/// The calls of the window with their cards, category and recommendations (`$1`…`$9`).
fn calls_cte() -> String {
    format!(
        "WITH calls AS ( \
           SELECT c.id, c.received_at, c.service_id, c.hook, c.status, c.error_code, c.latency_ms, \
             e.ecmo_category, \
             CASE WHEN c.status = 200 THEN {CARDS} ELSE '[]'::jsonb END AS cards, \
             CASE WHEN c.status = 200 THEN coalesce(e.assessment->'recommendations', '[]'::jsonb) \
                  ELSE '[]'::jsonb END AS recommendations \
           FROM hook_call c LEFT JOIN evaluation e ON e.id = c.evaluation_id AND e.role = 'active' \
           WHERE c.received_at >= $1 AND c.received_at < $2 \
             AND ($3::text IS NULL OR c.service_id = $3) AND ($4::text IS NULL OR c.hook = $4) \
             AND {CALL_FILTERS}) "
    )
}

/// Counts of a group of calls: `calls`, `calls_with_cards`, `cards`, `errors` (alias `c`).
const COUNTS: &str = "count(c.id) AS calls, \
    count(c.id) FILTER (WHERE jsonb_array_length(c.cards) > 0) AS calls_with_cards, \
    coalesce(sum(jsonb_array_length(c.cards)), 0)::bigint AS cards, \
    count(c.id) FILTER (WHERE c.status <> 200) AS errors";

/// The aggregate, in eight queries run side by side.
pub async fn alerts(pool: &PgPool, q: &QualityQuery) -> Result<Alerts, sqlx::Error> {
    let cte = calls_cte();
    let totals_sql = format!(
        "{cte} SELECT count(*) AS calls, count(*) FILTER (WHERE status = 200) AS answered, \
           count(*) FILTER (WHERE jsonb_array_length(cards) > 0) AS calls_with_cards, \
           coalesce(sum(jsonb_array_length(cards)), 0)::bigint AS cards, \
           count(*) FILTER (WHERE status <> 200) AS errors, \
           (count(*) FILTER (WHERE jsonb_array_length(cards) > 0))::float8 \
             / nullif(count(*) FILTER (WHERE status = 200), 0) AS card_share \
         FROM calls"
    );
    let latency_sql = format!(
        "{cte} SELECT \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 200) AS p50, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 200) AS p90, \
           percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status = 200) AS p99, \
           max(latency_ms) FILTER (WHERE status = 200) AS max \
         FROM calls"
    );
    let series_sql = format!(
        "{cte} SELECT b.start AT TIME ZONE 'UTC' AS start, {COUNTS} \
         FROM {BUCKETS} LEFT JOIN calls c ON date_trunc($10, c.received_at AT TIME ZONE 'UTC') = b.start \
         GROUP BY b.start ORDER BY b.start"
    );
    let service_sql = format!(
        "{cte} SELECT c.service_id AS service, c.hook, {COUNTS} FROM calls c \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let indicator_sql = format!(
        "{cte} SELECT card->>'indicator' AS indicator, count(*) AS cards \
         FROM calls c, jsonb_array_elements(c.cards) card GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let category_sql = format!(
        "{cte} SELECT c.ecmo_category AS category, count(*) AS calls, \
           count(*) FILTER (WHERE jsonb_array_length(c.cards) > 0) AS calls_with_cards \
         FROM calls c WHERE c.status = 200 GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let recommendation_sql = format!(
        "{cte} SELECT r AS recommendation, count(*) AS calls \
         FROM calls c, jsonb_array_elements_text(c.recommendations) r GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let errors_sql = format!(
        "{cte} SELECT status, error_code, count(*) AS calls FROM calls \
         WHERE status <> 200 GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let (
        totals,
        latency_ms,
        series,
        by_service,
        by_indicator,
        by_category,
        by_recommendation,
        errors_by_status,
    ) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, Totals>(&totals_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Latency>(&latency_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Bucket>(&series_sql))
            .bind(q.window.interval.as_str())
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByService>(&service_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByIndicator>(&indicator_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByCategory>(&category_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByRecommendation>(&recommendation_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByStatus>(&errors_sql))
            .fetch_all(pool),
    )?;
    Ok(Alerts {
        window: q.window,
        filters: q.filters.clone(),
        totals,
        latency_ms,
        series,
        by_service,
        by_indicator,
        by_category,
        by_recommendation,
        errors_by_status,
    })
}
