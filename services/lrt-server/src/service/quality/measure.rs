//! Two of the aggregates as FHIR R4 quality measures: the `Measure` resources the service
//! publishes (`GET /api/v1/quality/measures[/{id}]`) and a summary `MeasureReport` of each for a
//! window (`Accept: application/fhir+json` on `/quality/feedback` and `/quality/consults`):
//! * [`ALERT_ACCEPTANCE`] (proportion): of the LRT cards issued in the period that got feedback,
//!   the share accepted (a card's latest feedback counts);
//! * [`CONSULT_TIMELINESS`] (continuous variable): seconds from a page's first qualifying
//!   evaluation to its first delivery and to its acknowledgement, median and 90th percentile,
//!   one group each.
//!
//! A Measure's canonical URL is `{public_base_url}/api/v1/quality/measures/{id}`; the report
//! names it. The report's populations and scores are the aggregate's own figures.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Window, consults, feedback};

pub const ALERT_ACCEPTANCE: &str = "lrt-alert-acceptance";
pub const CONSULT_TIMELINESS: &str = "lrt-consult-timeliness";

const POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const SCORING: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
const IMPROVEMENT: &str = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";
const VERSION: &str = "1.0.0";

/// The canonical URL of a measure.
pub fn url(base: &str, id: &str) -> String {
    format!("{base}/api/v1/quality/measures/{id}")
}

fn code(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// A Measure population: its code, what it counts, and its criteria (in words: the service
/// computes it in SQL, not from an expression language).
fn population(kind: &str, description: &str) -> Value {
    json!({
        "code": code(POPULATION, kind),
        "description": description,
        "criteria": {"language": "text/plain", "expression": description},
    })
}

/// The published Measure `id`, if there is one.
pub fn measure(base: &str, id: &str) -> Option<Value> {
    let common = |title: &str, name: &str, description: &str| {
        json!({
            "resourceType": "Measure",
            "id": id,
            "url": url(base, id),
            "version": VERSION,
            "name": name,
            "title": title,
            "status": "active",
            "experimental": false,
            "publisher": "lrt-cds",
            "description": description,
        })
    };
    match id {
        ALERT_ACCEPTANCE => {
            let mut m = common(
                "LRT card acceptance",
                "LrtAlertAcceptance",
                "Of the Lung Rescue Team cards issued in the period (the cards of the active evaluations \
                 created in it) that clinicians gave feedback on, the share accepted; a card's latest \
                 feedback counts.",
            );
            m["scoring"] = code(SCORING, "proportion");
            m["improvementNotation"] = code(IMPROVEMENT, "increase");
            m["group"] = json!([{
                "population": [
                    population("initial-population", "LRT cards issued in the period"),
                    population("denominator", "those cards with feedback (accepted or overridden)"),
                    population("numerator", "those cards whose latest feedback is accepted"),
                ]
            }]);
            Some(m)
        }
        CONSULT_TIMELINESS => {
            let mut m = common(
                "LRT consult timeliness",
                "LrtConsultTimeliness",
                "For the LRT pages written in the period: seconds from the page's first qualifying \
                 evaluation (the earliest evaluation of the patient carrying one of the page's reasons \
                 since the patient's previous page) to the page's first delivery, and to its \
                 acknowledgement; the median and the 90th percentile (continuous percentiles).",
            );
            m["scoring"] = code(SCORING, "continuous-variable");
            m["improvementNotation"] = code(IMPROVEMENT, "decrease");
            m["group"] = Value::Array(
                TIMELINESS_GROUPS
                    .iter()
                    .map(|(group, observed, _)| {
                        json!({
                            "code": {"text": group},
                            "population": [
                                population("initial-population", "LRT pages written in the period"),
                                population("measure-population", observed),
                                population("measure-observation", "seconds from the first qualifying evaluation"),
                            ]
                        })
                    })
                    .collect(),
            );
            Some(m)
        }
        _ => None,
    }
}

/// The consult-timeliness groups: code text, the measure population, and which statistic.
const TIMELINESS_GROUPS: [(&str, &str, Statistic); 4] = [
    (
        "to-delivery-median",
        "pages delivered",
        Statistic::DeliveryMedian,
    ),
    ("to-delivery-p90", "pages delivered", Statistic::DeliveryP90),
    (
        "to-acknowledgement-median",
        "pages acknowledged",
        Statistic::AcknowledgementMedian,
    ),
    (
        "to-acknowledgement-p90",
        "pages acknowledged",
        Statistic::AcknowledgementP90,
    ),
];

#[derive(Clone, Copy)]
enum Statistic {
    DeliveryMedian,
    DeliveryP90,
    AcknowledgementMedian,
    AcknowledgementP90,
}

/// Every published Measure, as a `collection` Bundle.
pub fn measures(base: &str) -> Value {
    let entries: Vec<Value> = [ALERT_ACCEPTANCE, CONSULT_TIMELINESS]
        .iter()
        .filter_map(|id| measure(base, id))
        .map(|m| json!({"fullUrl": m["url"], "resource": m}))
        .collect();
    json!({"resourceType": "Bundle", "type": "collection", "total": entries.len(), "entry": entries})
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn report(base: &str, id: &str, window: &Window, now: DateTime<Utc>, groups: Vec<Value>) -> Value {
    json!({
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": url(base, id),
        "date": instant(now),
        "period": {"start": instant(window.from), "end": instant(window.to)},
        "group": groups,
    })
}

fn count(kind: &str, n: i64) -> Value {
    json!({"code": code(POPULATION, kind), "count": n})
}

/// The alert-acceptance MeasureReport of a feedback aggregate.
pub fn alert_acceptance(base: &str, f: &feedback::Feedback, now: DateTime<Utc>) -> Value {
    let t = &f.totals;
    let mut group = json!({
        "population": [
            count("initial-population", t.cards),
            count("denominator", t.accepted + t.overridden),
            count("numerator", t.accepted),
        ]
    });
    if let Some(rate) = t.acceptance_rate {
        group["measureScore"] = json!({"value": rate});
    }
    report(base, ALERT_ACCEPTANCE, &f.window, now, vec![group])
}

/// The consult-timeliness MeasureReport of a consults aggregate.
pub fn consult_timeliness(base: &str, c: &consults::Consults, now: DateTime<Utc>) -> Value {
    let (t, s) = (&c.totals, &c.timeliness_s);
    let groups = TIMELINESS_GROUPS
        .iter()
        .map(|(name, _, statistic)| {
            let (observed, score) = match statistic {
                Statistic::DeliveryMedian => (t.delivered, s.to_delivery_median),
                Statistic::DeliveryP90 => (t.delivered, s.to_delivery_p90),
                Statistic::AcknowledgementMedian => (t.acknowledged, s.to_acknowledgement_median),
                Statistic::AcknowledgementP90 => (t.acknowledged, s.to_acknowledgement_p90),
            };
            let mut group = json!({
                "code": {"text": name},
                "population": [
                    count("initial-population", t.pages),
                    count("measure-population", observed),
                ]
            });
            if let Some(seconds) = score {
                group["measureScore"] = json!({
                    "value": seconds, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"
                });
            }
            group
        })
        .collect();
    report(base, CONSULT_TIMELINESS, &c.window, now, groups)
}
