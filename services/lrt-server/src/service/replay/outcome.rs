//! The engine on one replay input, and the outcome in the terms of `replay_outcome` (and of the
//! quality dashboard): ECMO category and urgency, Berlin category, P/F, recommendations and
//! consult triggers. Inputs are evaluated on as many threads as asked, in order.

use chrono::{DateTime, Utc};
use lrt_engine::{Assessment, PatientSnapshot, RuleSet};
use serde::Serialize;
use uuid::Uuid;

/// What the run's rule-set version concluded for one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub ecmo_category: Option<String>,
    pub ecmo_urgency: Option<String>,
    pub berlin_category: Option<String>,
    pub pf_ratio: Option<f64>,
    /// Recommendation codes, in the rule set's catalogue order.
    pub recommendations: Vec<String>,
    /// Consult-trigger codes (reasons to page the LRT), in catalogue order; empty: no page.
    pub consult_triggers: Vec<String>,
}

impl Outcome {
    pub fn of(a: &Assessment) -> Outcome {
        Outcome {
            ecmo_category: a.ecmo_category.as_deref().map(str::to_string),
            ecmo_urgency: a.ecmo_urgency.map(|u| u.name().to_string()),
            berlin_category: a.berlin_category.as_deref().map(str::to_string),
            pf_ratio: a.pf_ratio,
            recommendations: a.recommendations.iter().map(|r| r.to_string()).collect(),
            consult_triggers: a
                .consult_triggers
                .iter()
                .map(|c| c.code.to_string())
                .collect(),
        }
    }

    /// Evaluates `snapshot` at `now` under `rules`.
    pub fn evaluate(rules: &RuleSet, snapshot: &PatientSnapshot, now: DateTime<Utc>) -> Outcome {
        Outcome::of(&lrt_engine::evaluate(rules, snapshot, now))
    }
}

/// What the stored evaluation replayed had concluded (stored sources only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceOutcome {
    pub ruleset_version: String,
    pub ecmo_category: Option<String>,
    pub ecmo_urgency: Option<String>,
    pub consult_triggers: Vec<String>,
}

/// One row of `replay_outcome`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    pub source_key: String,
    pub source_evaluation_id: Option<Uuid>,
    pub patient_id: String,
    pub evaluated_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The stored evaluation's own outcome (None for a bundle input).
    pub source: Option<SourceOutcome>,
}

/// `f` over `items` on up to `threads` threads (contiguous slices, so one thread costs nothing
/// but the loop), results in the order of `items`.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_the_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..1001).collect();
        let expected: Vec<u32> = items.iter().map(|x| x * 3).collect();
        for threads in [0, 1, 2, 7, 5000] {
            assert_eq!(par_map(&items, threads, |x| x * 3), expected, "{threads}");
        }
        assert!(par_map(&[] as &[u32], 4, |x| *x).is_empty());
    }
}
