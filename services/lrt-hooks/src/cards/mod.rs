//! From an [`Assessment`] to the CDS Hooks response of each service. The texts are in
//! [`text`]; this module only decides which card, which text and which values.
//!
//! **patient-view**: one summary card. Indicator by ECMO category ([`text::CATEGORY_CARDS`]):
//! `critical` for eligible, `warning` for borderline or when an urgent recommendation (an LRT
//! consult) stands, `info` for insufficient data (the summary names what is missing) and for no
//! indication. The detail (Markdown) lists P/F, PaO2, FiO2, PEEP, PaCO2 and pH with their times,
//! the Berlin/Global category, Murray and RESP, the EOLIA criteria, mechanisms, recommendations
//! and data quality. One suggestion, "Request LRT consult" (`create` a draft ServiceRequest,
//! intent `proposal`; its code comes from the order-codes data), `selectionBehavior:
//! at-most-one`; override reasons with displays; an `absolute` link to
//! `{dashboard}/api/v1/evaluations/{evaluation_id}`; `extension."org.lrt-cds"` with the rule-set
//! version, its SHA-256 and the evaluation id.
//!
//! **order-select / order-sign**: one card per draft order in scope (the *selected* orders for
//! order-select, all for order-sign) and finding, naming the order in summary and detail and
//! referencing it in a `delete` suggestion (`resourceId`), next to an LRT-consult suggestion
//! (`selectionBehavior: any`: both may be wanted):
//! * an ECMO order for a patient whose category is `ineligible` (a hard stop): `critical`;
//! * an ECMO order while reversible physiology is not addressed (the ECMO reasons and
//!   recommendations listed in the order-codes data: no prone trial, PEEP < 10, Vt > 8 mL/kg
//!   PBW): `warning`;
//! * an inhaled vasodilator without documented RV dysfunction (`rv_dysfunction` not true):
//!   `warning`;
//! * a PEEP increase with documented RV dysfunction (`rv_dysfunction` true): `warning`.
//!
//! No finding gives `{"cards": []}`.
//!
//! **`systemActions`** are never returned: the LRT page is a side effect of the service (its
//! outbox), not an action for the EHR to apply, and a consult order must be accepted by a
//! clinician, so it is a suggestion (checklist F.27).
//!
//! **UUIDs** are deterministic (UUID v5): the evaluation id is derived from the hookInstance and
//! the service id ([`evaluation_id`]), card `i` gets v5(evaluation id, `card/i`) and its
//! suggestion `j` v5(evaluation id, `card/i/suggestion/j`). A retried hookInstance therefore
//! gets the same uuids, and feedback on either answer finds the same card. A server that keeps
//! its own evaluation ids gets the same property as long as it reuses the stored id on retry.

pub mod text;

use std::sync::Arc;

use lrt_engine::ruleset::{ReleaseStatus, Urgency};
use lrt_engine::{Assessment, PatientSnapshot, RuleSet};
use serde_json::{Map, Value, json};
use url::Url;
use uuid::Uuid;

use crate::model::{
    Action, ActionType, Card, Coding, HookRequest, Indicator, Link, LinkType, Response,
    SelectionBehavior, Source, Suggestion, Summary,
};
use crate::orders::{DraftOrder, OrderCodes, OrderConcept, relevant_orders};
use crate::services::{Hook, Service};
use text::{CategoryCard, fill};

/// The namespace of the service's v5 UUIDs.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6c72_742d_6364_4f73_9a1e_4c52_5443_4453);

/// Identifier system of the evaluation id on the consult ServiceRequest.
pub const EVALUATION_ID_SYSTEM: &str = "urn:lrt:evaluation-id";

/// The evaluation id of a hook call: v5(namespace, `<service id>/<hookInstance>`).
pub fn evaluation_id(hook_instance: Uuid, service_id: &str) -> Uuid {
    Uuid::new_v5(
        &UUID_NAMESPACE,
        format!("{service_id}/{}", hook_instance.hyphenated()).as_bytes(),
    )
}

/// The uuid of card `index` of an evaluation.
pub fn card_uuid(evaluation: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&evaluation, format!("card/{index}").as_bytes())
}

/// The uuid of suggestion `suggestion` of card `card`.
pub fn suggestion_uuid(evaluation: Uuid, card: usize, suggestion: usize) -> Uuid {
    Uuid::new_v5(
        &evaluation,
        format!("card/{card}/suggestion/{suggestion}").as_bytes(),
    )
}

/// What the cards of one call need besides the assessment.
#[derive(Debug, Clone, Copy)]
pub struct CardInput<'a> {
    pub service: &'a Service,
    pub request: &'a HookRequest,
    /// The rule set that produced the assessment (for hard-stop and mechanism displays).
    pub rules: &'a RuleSet,
    /// The snapshot evaluated (for the times of the values shown); optional.
    pub snapshot: Option<&'a PatientSnapshot>,
    pub evaluation_id: Uuid,
    /// Base URL of the quality dashboard (`{dashboard}/api/v1/evaluations/{id}`).
    pub dashboard: &'a Url,
    pub order_codes: &'a OrderCodes,
}

/// The response of the service for this assessment (see the module docs).
pub fn respond(input: &CardInput, assessment: &Assessment) -> Response {
    let mut cards = match input.service.hook {
        Hook::PatientView => vec![patient_view_card(input, assessment)],
        Hook::OrderSelect | Hook::OrderSign => order_cards(input, assessment),
    };
    for (i, card) in cards.iter_mut().enumerate() {
        card.uuid = Some(card_uuid(input.evaluation_id, i));
        for (j, s) in card.suggestions.iter_mut().enumerate() {
            s.uuid = Some(suggestion_uuid(input.evaluation_id, i, j));
        }
    }
    Response {
        cards,
        system_actions: Vec::new(),
    }
}

// ------------------------------------------------------------------------------------------
// Formatting helpers
// ------------------------------------------------------------------------------------------

/// Escapes Markdown in free text (order names, rule-set displays).
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~'
        ) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// A machine code as a Markdown code span.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

/// A number with at most `decimals` decimals, trailing zeros dropped.
fn num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn urgency_name(u: Option<Urgency>) -> &'static str {
    u.map_or("none", Urgency::name)
}

fn category_card(category: Option<&str>) -> &'static CategoryCard {
    category
        .and_then(|c| text::CATEGORY_CARDS.iter().find(|r| r.category == c))
        .unwrap_or(&text::UNKNOWN_CATEGORY)
}

fn hard_stop_display<'a>(rules: &'a RuleSet, code: &str) -> Option<&'a str> {
    rules
        .hard_stops
        .iter()
        .find(|h| &*h.code == code)
        .map(|h| &*h.display)
}

/// Short and long text of an ECMO reason code.
fn reason_texts(rules: &RuleSet, reason: &str) -> (String, String) {
    if let Some(hs) = reason.strip_prefix("hard_stop:") {
        let display = hard_stop_display(rules, hs).unwrap_or(hs);
        return (display.to_string(), md(display));
    }
    match text::REASONS.iter().find(|(c, _, _)| *c == reason) {
        Some((_, short, long)) => ((*short).to_string(), (*long).to_string()),
        None => (reason.to_string(), code(reason)),
    }
}

fn short_reasons(rules: &RuleSet, reasons: &[Arc<str>]) -> String {
    if reasons.is_empty() {
        return text::NONE.to_string();
    }
    reasons
        .iter()
        .map(|r| reason_texts(rules, r).0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The time of a fact's observation: from the snapshot through the evidence, else from the
/// explanations' criteria.
fn fact_time(input: &CardInput, a: &Assessment, fact: &str) -> Option<String> {
    if let (Some(snapshot), Some(ids)) = (input.snapshot, a.evidence.get(fact))
        && let Some(first) = ids.first()
        && let Some(o) = snapshot.observations.iter().find(|o| *o.id == **first)
    {
        return Some(
            o.effective
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    a.explanations
        .iter()
        .flat_map(|e| e.criteria.iter())
        .find(|c| &*c.fact == fact)
        .and_then(|c| c.at.as_ref().map(|t| t.to_string()))
}

/// A fact's number as the rules compared it (unit-normalised), from the explanations.
fn fact_number(a: &Assessment, fact: &str) -> Option<f64> {
    a.explanations
        .iter()
        .flat_map(|e| e.criteria.iter())
        .filter(|c| &*c.fact == fact)
        .find_map(|c| match c.value {
            lrt_engine::assessment::CriterionValue::Number(x) => Some(x),
            _ => None,
        })
}

fn value_row(label: &str, value: Option<String>, time: Option<String>) -> String {
    let value = value.unwrap_or_else(|| text::NO_VALUE.to_string());
    let time = time.unwrap_or_else(|| "—".to_string());
    format!("| {label} | {} | {} |", md(&value), md(&time))
}

/// The values table (P/F, PaO2, FiO2, PEEP, PaCO2, pH with times).
fn values_block(input: &CardInput, a: &Assessment) -> String {
    let with_unit =
        |v: Option<f64>, d: usize, unit: &str| v.map(|x| format!("{} {unit}", num(x, d)));
    let rows = [
        value_row(
            text::LABEL_PF,
            with_unit(a.pf_ratio, 1, "mmHg"),
            fact_time(input, a, "pao2"),
        ),
        value_row(
            text::LABEL_PAO2,
            with_unit(a.pao2_mmhg, 1, "mmHg"),
            fact_time(input, a, "pao2"),
        ),
        value_row(
            text::LABEL_FIO2,
            a.fio2_fraction.map(|f| format!("{f:.2}")),
            fact_time(input, a, "fio2"),
        ),
        value_row(
            text::LABEL_PEEP,
            with_unit(fact_number(a, "peep"), 1, "cmH2O"),
            fact_time(input, a, "peep"),
        ),
        value_row(
            text::LABEL_PACO2,
            with_unit(a.paco2_mmhg, 1, "mmHg"),
            fact_time(input, a, "paco2"),
        ),
        value_row(
            text::LABEL_PH,
            a.ph.map(|p| format!("{p:.2}")),
            fact_time(input, a, "ph"),
        ),
    ];
    format!(
        "{}\n\n{}\n{}",
        text::VALUES_TITLE,
        text::VALUES_HEADER,
        rows.join("\n")
    )
}

fn eolia_text(met: bool, hours: Option<f64>) -> String {
    match (met, hours) {
        (true, Some(h)) => fill(text::EOLIA_MET, &[("hours", &num(h, 2))]),
        (true, None) => fill(text::EOLIA_MET, &[("hours", "?")]),
        (false, Some(h)) => fill(text::EOLIA_RUNNING, &[("hours", &num(h, 2))]),
        (false, None) => text::EOLIA_NOT_MET.to_string(),
    }
}

/// Categories, scores, EOLIA and mechanisms.
fn findings_block(rules: &RuleSet, a: &Assessment) -> String {
    let opt = |v: &Option<Arc<str>>| v.as_deref().map_or(text::NO_VALUE.to_string(), md);
    let resp = match (a.resp_score, &a.resp_class) {
        (Some(score), Some(class)) => fill(
            text::RESP_CLASS,
            &[
                ("score", &num(score, 1)),
                ("class", &md(class)),
                (
                    "survival",
                    &a.resp_survival_pct.map_or("?".to_string(), |p| num(p, 0)),
                ),
            ],
        ),
        _ if !a.resp_missing.is_empty() => fill(
            text::RESP_MISSING,
            &[(
                "missing",
                &a.resp_missing
                    .iter()
                    .map(|m| code(m))
                    .collect::<Vec<_>>()
                    .join(", "),
            )],
        ),
        _ => text::NO_VALUE.to_string(),
    };
    let mechanisms = if a.mechanisms.is_empty() {
        text::NONE.to_string()
    } else {
        a.mechanisms
            .iter()
            .map(|m| {
                rules
                    .mechanisms
                    .iter()
                    .find(|c| &c.code == m)
                    .map_or_else(|| code(m), |c| md(&c.display))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    [
        fill(
            text::CATEGORY_LINE,
            &[
                ("berlin", &opt(&a.berlin_category)),
                ("global", &opt(&a.global_category)),
            ],
        ),
        fill(
            text::SCORES_LINE,
            &[
                (
                    "murray",
                    &a.murray_score
                        .map_or(text::NO_VALUE.to_string(), |m| num(m, 2)),
                ),
                ("resp", &resp),
            ],
        ),
        fill(
            text::EOLIA_LINE,
            &[
                ("c1", &eolia_text(a.eolia.c1, a.eolia.c1_duration_h)),
                ("c2", &eolia_text(a.eolia.c2, a.eolia.c2_duration_h)),
                ("c3", &eolia_text(a.eolia.c3, a.eolia.c3_duration_h)),
            ],
        ),
        fill(text::MECHANISMS_LINE, &[("mechanisms", &mechanisms)]),
    ]
    .join("\n")
}

fn recommendations_block(a: &Assessment) -> String {
    let body = if a.recommendation_details.is_empty() {
        text::NO_RECOMMENDATIONS.to_string()
    } else {
        a.recommendation_details
            .iter()
            .enumerate()
            .map(|(i, r)| {
                fill(
                    text::RECOMMENDATION_ITEM,
                    &[
                        ("n", &(i + 1).to_string()),
                        ("display", &md(&r.display)),
                        ("urgency", r.urgency.name()),
                    ],
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!("{}\n\n{body}", text::RECOMMENDATIONS_TITLE)
}

fn data_quality_block(a: &Assessment) -> String {
    let body = if a.data_quality.is_empty() {
        text::DATA_QUALITY_NONE.to_string()
    } else {
        a.data_quality
            .iter()
            .map(|d| format!("- {}", code(d)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!("{}\n\n{body}", text::DATA_QUALITY_TITLE)
}

fn ruleset_label(a: &Assessment) -> String {
    format!(
        "{} {} (sha256 {})",
        a.ruleset.id,
        a.ruleset.version,
        &a.ruleset.sha256[..a.ruleset.sha256.len().min(12)]
    )
}

fn footer(input: &CardInput, a: &Assessment) -> String {
    let mut out = fill(
        text::FOOTER,
        &[
            ("ruleset", &md(&ruleset_label(a))),
            ("evaluated_at", &a.evaluated_at),
            ("evaluation_id", &input.evaluation_id.to_string()),
        ],
    );
    if input.rules.manifest.status == ReleaseStatus::Draft {
        out.push_str("\n\n");
        out.push_str(text::DRAFT_WARNING);
    }
    out
}

fn reasons_block(rules: &RuleSet, a: &Assessment) -> Option<String> {
    if a.ecmo_reasons.is_empty() {
        return None;
    }
    let items: Vec<String> = a
        .ecmo_reasons
        .iter()
        .map(|r| format!("- {}", reason_texts(rules, r).1))
        .collect();
    Some(format!("{}\n\n{}", text::REASONS_TITLE, items.join("\n")))
}

// ------------------------------------------------------------------------------------------
// Card parts
// ------------------------------------------------------------------------------------------

fn source(a: &Assessment, topic: (&str, &str)) -> Source {
    Source {
        label: fill(text::SOURCE_LABEL, &[("version", &a.ruleset.version)]),
        url: None,
        icon: None,
        topic: Some(Coding::new(text::TOPIC_SYSTEM, topic.0, topic.1)),
    }
}

fn override_reasons() -> Vec<Coding> {
    text::OVERRIDE_REASONS
        .iter()
        .map(|(c, d)| Coding::new(text::OVERRIDE_SYSTEM, c, d))
        .collect()
}

fn evaluation_link(input: &CardInput) -> Vec<Link> {
    let base = input.dashboard.as_str().trim_end_matches('/');
    Url::parse(&format!(
        "{base}/api/v1/evaluations/{}",
        input.evaluation_id
    ))
    .ok()
    .map(|url| Link {
        label: text::EVALUATION_LINK_LABEL.to_string(),
        url,
        kind: LinkType::Absolute,
        app_context: None,
    })
    .into_iter()
    .collect()
}

fn extension(input: &CardInput, a: &Assessment, order: Option<&DraftOrder>) -> Map<String, Value> {
    let mut inner = json!({
        "rulesetVersion": &*a.ruleset.version,
        "rulesetSha256": &*a.ruleset.sha256,
        "evaluationId": input.evaluation_id.to_string(),
    });
    if let Some(reference) = order.and_then(DraftOrder::reference) {
        inner["draftOrder"] = Value::String(reference);
    }
    let mut ext = Map::new();
    ext.insert(text::EXTENSION_KEY.to_string(), inner);
    ext
}

fn highest_urgency(a: &Assessment) -> Option<Urgency> {
    a.recommendation_details
        .iter()
        .map(|r| r.urgency)
        .chain(a.ecmo_urgency)
        .max()
}

/// The "Request LRT consult" suggestion (needs `context.patientId`).
fn consult_suggestion(input: &CardInput, a: &Assessment, recommended: bool) -> Option<Suggestion> {
    let patient = input.request.patient_id()?;
    let urgency = highest_urgency(a).map(Urgency::name);
    let priority = text::PRIORITY_BY_URGENCY
        .iter()
        .find(|(u, _)| Some(*u) == urgency)
        .map_or(text::DEFAULT_PRIORITY, |(_, p)| p);
    let category = a.ecmo_category.as_deref().unwrap_or("unknown");
    let codings: Vec<Value> = input
        .order_codes
        .consult
        .codings
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .filter(|v| !v.is_null())
        .collect();
    let mut resource = json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": EVALUATION_ID_SYSTEM, "value": input.evaluation_id.to_string()}],
        "status": "draft",
        "intent": "proposal",
        "priority": priority,
        "code": {"coding": codings, "text": input.order_codes.consult.text},
        "subject": {"reference": format!("Patient/{patient}")},
        "reasonCode": [{"text": fill(text::CONSULT_REASON, &[("category", category)])}],
        "note": [{"text": fill(text::CONSULT_NOTE, &[
            ("evaluation_id", &input.evaluation_id.to_string()),
            ("ruleset", &ruleset_label(a)),
        ])}],
    });
    if let Some(enc) = input.request.encounter_id().filter(|e| !e.is_empty()) {
        let reference = if enc.contains('/') {
            enc.to_string()
        } else {
            format!("Encounter/{enc}")
        };
        resource["encounter"] = json!({"reference": reference});
    }
    Some(Suggestion {
        label: text::CONSULT_LABEL.to_string(),
        uuid: None,
        is_recommended: recommended.then_some(true),
        actions: vec![Action {
            kind: ActionType::Create,
            description: text::CONSULT_DESCRIPTION.to_string(),
            resource: Some(resource),
            resource_id: None,
        }],
    })
}

fn remove_order_suggestion(order: &DraftOrder) -> Option<Suggestion> {
    let reference = order.reference()?;
    Some(Suggestion {
        label: Summary::truncated(&fill(text::REMOVE_ORDER_LABEL, &[("order", &order.label)]))
            .as_str()
            .to_string(),
        uuid: None,
        is_recommended: None,
        actions: vec![Action {
            kind: ActionType::Delete,
            description: fill(text::REMOVE_ORDER_DESCRIPTION, &[("reference", &reference)]),
            resource: None,
            resource_id: Some(reference),
        }],
    })
}

// ------------------------------------------------------------------------------------------
// patient-view
// ------------------------------------------------------------------------------------------

fn patient_view_card(input: &CardInput, a: &Assessment) -> Card {
    let row = category_card(a.ecmo_category.as_deref());
    let urgent = a
        .recommendation_details
        .iter()
        .any(|r| r.urgency >= Urgency::Urgent);
    let indicator = if row.escalate_on_urgent && urgent {
        row.indicator.max(Indicator::Warning)
    } else {
        row.indicator
    };
    let pf = a.pf_ratio.map_or(text::NO_VALUE.to_string(), |p| num(p, 1));
    let recs = if a.recommendations.is_empty() {
        text::NONE.to_string()
    } else {
        a.recommendations.len().to_string()
    };
    let summary = Summary::truncated(&fill(
        row.summary,
        &[
            ("reasons", &short_reasons(input.rules, &a.ecmo_reasons)),
            ("pf", &pf),
            ("recs", &recs),
        ],
    ));
    let mut parts = vec![fill(
        row.headline,
        &[
            ("category", a.ecmo_category.as_deref().unwrap_or("unknown")),
            ("urgency", urgency_name(a.ecmo_urgency)),
        ],
    )];
    parts.extend(reasons_block(input.rules, a));
    parts.push(values_block(input, a));
    parts.push(findings_block(input.rules, a));
    parts.push(recommendations_block(a));
    parts.push(data_quality_block(a));
    parts.push(footer(input, a));
    let suggestions: Vec<Suggestion> =
        consult_suggestion(input, a, indicator >= Indicator::Warning)
            .into_iter()
            .collect();
    Card {
        uuid: None,
        summary,
        detail: Some(parts.join("\n\n")),
        indicator,
        source: source(a, text::TOPIC_TRIAGE),
        selection_behavior: (!suggestions.is_empty()).then_some(SelectionBehavior::AtMostOne),
        suggestions,
        override_reasons: override_reasons(),
        links: evaluation_link(input),
        extension: Some(extension(input, a, None)),
    }
}

// ------------------------------------------------------------------------------------------
// order-select / order-sign
// ------------------------------------------------------------------------------------------

/// One finding about one draft order.
struct Finding<'o> {
    order: &'o DraftOrder,
    indicator: Indicator,
    topic: (&'static str, &'static str),
    summary: String,
    headline: String,
}

fn order_findings<'o>(
    input: &CardInput,
    a: &Assessment,
    order: &'o DraftOrder,
    concept: OrderConcept,
) -> Option<Finding<'o>> {
    let name = order.label.as_str();
    let category = a.ecmo_category.as_deref();
    match concept {
        OrderConcept::Ecmo if category == Some("ineligible") => {
            let hard: Vec<&Arc<str>> = a
                .ecmo_reasons
                .iter()
                .filter(|r| r.starts_with("hard_stop:"))
                .collect();
            let short = hard
                .iter()
                .map(|r| reason_texts(input.rules, r).0)
                .collect::<Vec<_>>()
                .join(", ");
            let long = hard
                .iter()
                .map(|r| reason_texts(input.rules, r).1)
                .collect::<Vec<_>>()
                .join("; ");
            Some(Finding {
                order,
                indicator: Indicator::Critical,
                topic: text::TOPIC_ECMO_ORDER,
                summary: fill(
                    text::ECMO_INELIGIBLE_SUMMARY,
                    &[("order", name), ("reasons", &short)],
                ),
                headline: fill(
                    text::ECMO_INELIGIBLE_DETAIL,
                    &[("order", &md(name)), ("reasons", &long)],
                ),
            })
        }
        OrderConcept::Ecmo => {
            let rev = &input.order_codes.reversible;
            let reasons: Vec<(String, String)> = a
                .ecmo_reasons
                .iter()
                .filter(|r| rev.ecmo_reasons.iter().any(|x| x == &***r))
                .map(|r| reason_texts(input.rules, r))
                .chain(
                    a.recommendation_details
                        .iter()
                        .filter(|r| rev.recommendations.iter().any(|x| x == &*r.code))
                        .map(|r| (r.display.to_string(), md(&r.display))),
                )
                .collect();
            if reasons.is_empty() {
                return None;
            }
            let short = reasons
                .iter()
                .map(|r| r.0.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let long = reasons
                .iter()
                .map(|r| r.1.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            Some(Finding {
                order,
                indicator: Indicator::Warning,
                topic: text::TOPIC_ECMO_ORDER,
                summary: fill(
                    text::ECMO_REVERSIBLE_SUMMARY,
                    &[("order", name), ("reasons", &short)],
                ),
                headline: fill(
                    text::ECMO_REVERSIBLE_DETAIL,
                    &[("order", &md(name)), ("reasons", &long)],
                ),
            })
        }
        OrderConcept::InhaledVasodilator => {
            let rv = match a.rv_dysfunction {
                Some(true) => return None,
                Some(false) => text::RV_ABSENT,
                None => text::RV_NOT_ASSESSED,
            };
            Some(Finding {
                order,
                indicator: Indicator::Warning,
                topic: text::TOPIC_VASODILATOR_ORDER,
                summary: fill(text::VASODILATOR_SUMMARY, &[("order", name)]),
                headline: fill(
                    text::VASODILATOR_DETAIL,
                    &[("order", &md(name)), ("rv", rv)],
                ),
            })
        }
        OrderConcept::PeepIncrease => (a.rv_dysfunction == Some(true)).then(|| Finding {
            order,
            indicator: Indicator::Warning,
            topic: text::TOPIC_PEEP_ORDER,
            summary: fill(text::PEEP_RV_SUMMARY, &[("order", name)]),
            headline: fill(text::PEEP_RV_DETAIL, &[("order", &md(name))]),
        }),
    }
}

fn order_cards(input: &CardInput, a: &Assessment) -> Vec<Card> {
    let relevant = relevant_orders(input.request, input.service.hook, input.order_codes);
    let mut cards = Vec::new();
    for r in &relevant {
        for &concept in &r.concepts {
            let Some(f) = order_findings(input, a, &r.order, concept) else {
                continue;
            };
            let mut parts = vec![f.headline.clone()];
            parts.push(fill(
                category_card(a.ecmo_category.as_deref()).headline,
                &[
                    ("category", a.ecmo_category.as_deref().unwrap_or("unknown")),
                    ("urgency", urgency_name(a.ecmo_urgency)),
                ],
            ));
            parts.extend(reasons_block(input.rules, a));
            parts.push(values_block(input, a));
            parts.push(recommendations_block(a));
            parts.push(data_quality_block(a));
            parts.push(footer(input, a));
            let suggestions: Vec<Suggestion> = consult_suggestion(input, a, true)
                .into_iter()
                .chain(remove_order_suggestion(f.order))
                .collect();
            cards.push(Card {
                uuid: None,
                summary: Summary::truncated(&f.summary),
                detail: Some(parts.join("\n\n")),
                indicator: f.indicator,
                source: source(a, f.topic),
                selection_behavior: (!suggestions.is_empty()).then_some(SelectionBehavior::Any),
                suggestions,
                override_reasons: override_reasons(),
                links: evaluation_link(input),
                extension: Some(extension(input, a, Some(f.order))),
            });
        }
    }
    cards
}
