//! `GET /api/v1/quality/feedback`: what clinicians did with the cards issued in the window
//! (the active evaluation's `created_at`): accepted or overridden per card type and per
//! recommendation, override reasons ranked, and the cards nobody gave feedback on.
//!
//! Counting rules:
//! * a card is one element of the `cards` of an active evaluation's response (a retried call
//!   answers the same card again: still one card);
//! * a card's outcome is its latest feedback (`outcomeTimestamp`, then arrival): a card first
//!   overridden and later accepted counts as accepted;
//! * a card's type is its service (the patient-view summary card, or an order card of
//!   order-select / order-sign) and its indicator: the order findings themselves are not stored
//!   in a machine-readable form on the card;
//! * a card counts under every recommendation of its evaluation;
//! * override reasons count every overriding feedback item on the window's cards (a reason that
//!   only has a `userComment` has the code `null`).

use serde::Serialize;
use sqlx::PgPool;

use super::{BUCKETS, CARDS, EVALUATION_FILTERS, QualityQuery, Window};

#[derive(Debug, Serialize)]
pub struct Feedback {
    pub window: Window,
    pub filters: super::Filters,
    pub totals: Totals,
    pub series: Vec<Bucket>,
    pub by_card_type: Vec<ByCardType>,
    pub by_recommendation: Vec<ByRecommendation>,
    pub override_reasons: Vec<OverrideReason>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Totals {
    pub cards: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_feedback: i64,
    /// `accepted / (accepted + overridden)` (null without feedback).
    pub acceptance_rate: Option<f64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bucket {
    pub start: chrono::DateTime<chrono::Utc>,
    pub cards: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_feedback: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByCardType {
    pub service: String,
    pub indicator: Option<String>,
    pub cards: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_feedback: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct ByRecommendation {
    pub recommendation: String,
    pub cards: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_feedback: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OverrideReason {
    /// The coded reason (null: a comment only).
    pub code: Option<String>,
    pub system: Option<String>,
    pub display: Option<String>,
    pub overrides: i64,
    /// How many of them also carried a comment.
    pub with_comment: i64,
}

/// The window's cards with their latest outcome (`$1`…`$9`).
fn cards_cte() -> String {
    format!(
        "WITH cards AS ( \
           SELECT e.id AS evaluation_id, e.created_at, e.service_id, \
             (card->>'uuid')::uuid AS card_uuid, card->>'indicator' AS indicator, \
             coalesce(e.assessment->'recommendations', '[]'::jsonb) AS recommendations \
           FROM evaluation e, jsonb_array_elements({CARDS}) card \
           WHERE e.role = 'active' AND e.created_at >= $1 AND e.created_at < $2 \
             AND card->>'uuid' ~* '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$' \
             AND ($3::text IS NULL OR e.service_id = $3) AND ($4::text IS NULL OR e.hook = $4) \
             AND {EVALUATION_FILTERS}), \
         outcomes AS ( \
           SELECT c.*, (SELECT f.outcome FROM card_feedback f WHERE f.card_uuid = c.card_uuid \
               ORDER BY f.outcome_timestamp DESC, f.received_at DESC LIMIT 1) AS outcome \
           FROM cards c) "
    )
}

/// Counts of a group of cards by outcome (alias `o`).
const COUNTS: &str = "count(o.card_uuid) AS cards, \
    count(*) FILTER (WHERE o.outcome = 'accepted') AS accepted, \
    count(*) FILTER (WHERE o.outcome = 'overridden') AS overridden, \
    count(o.card_uuid) FILTER (WHERE o.outcome IS NULL) AS no_feedback";

pub async fn feedback(pool: &PgPool, q: &QualityQuery) -> Result<Feedback, sqlx::Error> {
    let cte = cards_cte();
    let totals_sql = format!(
        "{cte} SELECT {COUNTS}, \
           (count(*) FILTER (WHERE o.outcome = 'accepted'))::float8 \
             / nullif(count(*) FILTER (WHERE o.outcome IS NOT NULL), 0) AS acceptance_rate \
         FROM outcomes o"
    );
    let series_sql = format!(
        "{cte} SELECT b.start AT TIME ZONE 'UTC' AS start, {COUNTS} \
         FROM {BUCKETS} LEFT JOIN outcomes o ON date_trunc($10, o.created_at AT TIME ZONE 'UTC') = b.start \
         GROUP BY b.start ORDER BY b.start"
    );
    let type_sql = format!(
        "{cte} SELECT o.service_id AS service, o.indicator, {COUNTS} FROM outcomes o \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let recommendation_sql = format!(
        "{cte} SELECT r AS recommendation, {COUNTS} \
         FROM outcomes o, jsonb_array_elements_text(o.recommendations) r GROUP BY 1 ORDER BY 2 DESC, 1"
    );
    let reasons_sql = format!(
        "{cte} SELECT f.override_reason->'reason'->>'code' AS code, \
           f.override_reason->'reason'->>'system' AS system, \
           max(f.override_reason->'reason'->>'display') AS display, \
           count(*) AS overrides, \
           count(*) FILTER (WHERE f.override_reason->>'userComment' IS NOT NULL) AS with_comment \
         FROM card_feedback f JOIN cards c ON c.card_uuid = f.card_uuid \
         WHERE f.outcome = 'overridden' \
         GROUP BY 1, 2 ORDER BY 4 DESC, 1 NULLS LAST, 2"
    );
    let (totals, series, by_card_type, by_recommendation, override_reasons) = tokio::try_join!(
        q.bind(sqlx::query_as::<_, Totals>(&totals_sql))
            .fetch_one(pool),
        q.bind(sqlx::query_as::<_, Bucket>(&series_sql))
            .bind(q.window.interval.as_str())
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByCardType>(&type_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, ByRecommendation>(&recommendation_sql))
            .fetch_all(pool),
        q.bind(sqlx::query_as::<_, OverrideReason>(&reasons_sql))
            .fetch_all(pool),
    )?;
    Ok(Feedback {
        window: q.window,
        filters: q.filters.clone(),
        totals,
        series,
        by_card_type,
        by_recommendation,
        override_reasons,
    })
}
