//! From an [`Assessment`] to the CDS Hooks response of each service: a renderer of the rule-set
//! version's card templates ([`templates::CardText`], knowledge base §9 D12). This module keeps
//! only the layout: which template, which values, Markdown, suggestions, links and uuids.
//!
//! **patient-view**: one summary card, or none when nothing is actionable (the category is one
//! of the template's `not_actionable_categories` and no recommendation other than a data request
//! stands; `card_when_not_actionable` turns the card back on). The summary puts the action first:
//! the ECMO category's action when its indicator is higher than the most urgent
//! recommendation's (or equal, unless the recommendation `leads_ties` below the template's
//! `category_wins_ties_at`), else that recommendation's action (an ECMO-centre consult is the category's own action and never leads
//! alone); then `because`, cut (never the action)
//! to the 140-character limit. The indicator is the higher of the two. The detail (Markdown)
//! gives the category's headline (same urgency as the summary), what the screen could not check
//! (`unverified:` reasons), why (the reasons catalogue), the values table (P/F, PaO2, FiO2,
//! PEEP, PaCO2, pH with their times; a value that is missing shows no time), categories and
//! scores, recommendations with their texts, data quality in words, and the rule set. One
//! suggestion, "Request LRT consult" (`create` a draft ServiceRequest, intent `proposal`; its
//! code comes from the version's order codes), `selectionBehavior: at-most-one`; override
//! reasons with displays; an `absolute` link to `{dashboard}/dashboard/evaluations/{evaluation_id}` (the evaluation
//! in the quality dashboard page, which a browser opens with the person's sign-in);
//! `extension."org.lrt-cds"` with the rule-set version, its SHA-256 and the evaluation id.
//!
//! **order-select / order-sign**: one card per draft order in scope (the *selected* orders for
//! order-select, all for order-sign) and finding, naming the order in summary and detail, next
//! to an LRT-consult suggestion and, only where the template allows it (`may_remove_order`;
//! never for ECMO, §9 D12), a `delete` suggestion for the order (`selectionBehavior: any`):
//! * an ECMO order for a patient whose category is `ineligible` (a hard stop);
//! * an ECMO order while reversible physiology is not addressed (the ECMO reasons and
//!   recommendations listed in the version's order codes);
//! * an inhaled vasodilator without documented RV dysfunction (`rv_dysfunction` not true);
//! * a PEEP increase with documented RV dysfunction (`rv_dysfunction` true).
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
//! gets the same uuids, and feedback on either answer finds the same card.

pub mod templates;
pub mod text;

use std::sync::Arc;

use lrt_engine::assessment::CriterionValue;
use lrt_engine::concept::Concept;
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
use templates::{CardText, OrderCardText, Placeholder, SummaryTemplate, render};

/// The namespace of the service's v5 UUIDs.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x6c72_742d_6364_4f73_9a1e_4c52_5443_4453);

/// Identifier system of the evaluation id on the consult ServiceRequest.
pub const EVALUATION_ID_SYSTEM: &str = "urn:lrt:evaluation-id";

/// How many characters of an order's own text a summary action shows.
const ORDER_LABEL_MAX_CHARS: usize = 40;

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
    /// The rule set that produced the assessment (parameters, hard-stop and mechanism displays).
    pub rules: &'a RuleSet,
    /// The rule set's card texts ([`CardText::for_rules`]).
    pub text: &'a CardText,
    /// The snapshot evaluated (for the times of the values shown); optional.
    pub snapshot: Option<&'a PatientSnapshot>,
    pub evaluation_id: Uuid,
    /// Base URL of the quality dashboard (`{dashboard}/dashboard/evaluations/{id}`).
    pub dashboard: &'a Url,
    /// The rule set's order codes ([`OrderCodes::for_rules`]).
    pub order_codes: &'a OrderCodes,
}

/// The response of the service for this assessment (see the module docs).
pub fn respond(input: &CardInput, assessment: &Assessment) -> Response {
    let r = Renderer {
        input,
        a: assessment,
        t: input.text,
    };
    let mut cards = match input.service.hook {
        Hook::PatientView => r.patient_view_card().into_iter().collect(),
        Hook::OrderSelect | Hook::OrderSign => r.order_cards(),
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

/// A number for display: cut (not rounded) to 2 decimals, trailing zeros dropped. Cutting
/// never moves a value across a threshold it was compared with ("P/F 79.96 (< 80)", not "80").
pub fn display_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    // Scaled, cleaned of binary noise (79.96 * 100 = 7995.999…), then cut.
    let scaled = ((v * 100.0) * 1e6).round() / 1e6;
    let cut = scaled.trunc() / 100.0;
    let s = format!("{cut:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// An RFC 3339 time as `YYYY-MM-DD hh:mm` (UTC).
fn display_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// `action: because` within the summary limit; `because` is cut, never the action.
fn summary(action: &str, because: &str) -> Summary {
    let action = action.trim();
    let because = because.trim();
    if because.is_empty() {
        return Summary::truncated(action);
    }
    let full = format!("{action}: {because}");
    if full.chars().count() <= Summary::MAX_CHARS {
        return Summary::truncated(&full);
    }
    let room = Summary::MAX_CHARS.saturating_sub(action.chars().count() + 2);
    if room < 8 {
        return Summary::truncated(action);
    }
    let cut: String = because.chars().take(room - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > room / 2 => cut[..i].trim_end().to_string(),
        _ => cut,
    };
    Summary::truncated(&format!("{action}: {cut}…"))
}

/// Shortens an order's own text for a summary action.
fn short_label(label: &str) -> String {
    if label.chars().count() <= ORDER_LABEL_MAX_CHARS {
        label.to_string()
    } else {
        let cut: String = label.chars().take(ORDER_LABEL_MAX_CHARS - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

fn hard_stop_display<'a>(rules: &'a RuleSet, code: &str) -> Option<&'a str> {
    rules
        .hard_stops
        .iter()
        .find(|h| &*h.code == code)
        .map(|h| &*h.display)
}

/// One finding about one draft order.
struct Finding<'o, 't> {
    order: &'o DraftOrder,
    card: &'t OrderCardText,
    names: Vec<(&'static str, String)>,
}

struct Renderer<'a> {
    input: &'a CardInput<'a>,
    a: &'a Assessment,
    t: &'a CardText,
}

impl Renderer<'_> {
    // --- placeholders --------------------------------------------------------------------

    /// Fills a template: `{param:..}`, `{value:..}`, `{time:..}` and the bare `names`.
    fn fill(&self, template: &str, names: &[(&str, String)]) -> String {
        render(template, &|p| match p {
            Placeholder::Param(n) => self.input.rules.param(n).map(|p| display_number(p.value)),
            Placeholder::Value(n) => Some(
                self.value(n)
                    .unwrap_or_else(|| self.t.phrase("no_value_short").to_string()),
            ),
            Placeholder::Time(n) => Some(
                self.fact_time(n)
                    .map(|t| display_time(&t))
                    .unwrap_or_else(|| self.t.phrase("no_value_short").to_string()),
            ),
            Placeholder::Name(n) => names.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()),
        })
    }

    /// The patient's value of a fact as the rules compared it, else an assessment field.
    fn value(&self, name: &str) -> Option<String> {
        let from_criteria = self
            .a
            .explanations
            .iter()
            .flat_map(|e| e.criteria.iter())
            .filter(|c| &*c.fact == name)
            .find_map(|c| match &c.value {
                CriterionValue::Null | CriterionValue::BloodGas(_) => None,
                CriterionValue::Number(x) => Some(display_number(*x)),
                CriterionValue::Boolean(b) => Some(b.to_string()),
                // A partial score: the true value lies in the range.
                CriterionValue::Range { at_least, at_most } if at_most.is_finite() => Some(
                    format!("{}–{}", display_number(*at_least), display_number(*at_most)),
                ),
                CriterionValue::Range { at_least, .. } => {
                    Some(format!("≥ {}", display_number(*at_least)))
                }
                CriterionValue::Text(t) => Some(md(t)),
                CriterionValue::Codes(c) => {
                    Some(c.iter().map(|x| md(x)).collect::<Vec<_>>().join(", "))
                }
            });
        if from_criteria.is_some() {
            return from_criteria;
        }
        let json = serde_json::to_value(self.a).ok()?;
        let mut v = &json;
        for part in name.split('.') {
            v = v.get(part)?;
        }
        match v {
            Value::Number(n) => n.as_f64().map(display_number),
            Value::String(s) => Some(md(s)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The time of a fact's observation: from the snapshot through the evidence, else from the
    /// explanations' criteria.
    fn fact_time(&self, fact: &str) -> Option<String> {
        if let (Some(snapshot), Some(ids)) = (self.input.snapshot, self.a.evidence.get(fact))
            && let Some(first) = ids.first()
            && let Some(o) = snapshot.observations.iter().find(|o| *o.id == **first)
        {
            return Some(
                o.effective
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        self.a
            .explanations
            .iter()
            .flat_map(|e| e.criteria.iter())
            .find(|c| &*c.fact == fact)
            .and_then(|c| c.at.as_ref().map(|t| t.to_string()))
    }

    fn fact_number(&self, fact: &str) -> Option<f64> {
        self.a
            .explanations
            .iter()
            .flat_map(|e| e.criteria.iter())
            .filter(|c| &*c.fact == fact)
            .find_map(|c| match c.value {
                CriterionValue::Number(x) => Some(x),
                _ => None,
            })
    }

    // --- reasons -------------------------------------------------------------------------

    /// Short (summary) and long (detail) text of a reason.
    fn reason_texts(&self, reason: &str) -> (String, String) {
        if let Some(hs) = reason.strip_prefix("hard_stop:") {
            let display = hard_stop_display(self.input.rules, hs).unwrap_or(hs);
            return (display.to_string(), md(display));
        }
        match self.t.reasons.get(reason) {
            Some(r) => (self.fill(&r.short, &[]), self.fill(&r.text, &[])),
            None => (reason.to_string(), code(reason)),
        }
    }

    fn is_unverified(reason: &str) -> bool {
        reason.starts_with("unverified:")
    }

    fn short_reasons(&self, unverified: bool) -> String {
        let list: Vec<String> = self
            .a
            .ecmo_reasons
            .iter()
            .filter(|r| Self::is_unverified(r) == unverified)
            .map(|r| self.reason_texts(r).0)
            .collect();
        if list.is_empty() {
            self.t.phrase("none").to_string()
        } else {
            list.join("; ")
        }
    }

    fn category(&self) -> &str {
        self.a.ecmo_category.as_deref().unwrap_or("unknown")
    }

    fn summary_names(&self) -> Vec<(&'static str, String)> {
        vec![
            ("reasons", self.short_reasons(false)),
            ("category", self.category().to_string()),
        ]
    }

    fn category_template(&self) -> &SummaryTemplate {
        self.a
            .ecmo_category
            .as_deref()
            .and_then(|c| self.t.categories.get(c))
            .map_or(&self.t.unknown_category, |c| {
                c.select(self.a.ecmo_urgency, &self.a.ecmo_reasons)
            })
    }

    // --- detail blocks -------------------------------------------------------------------

    fn headline(&self) -> String {
        self.fill(&self.category_template().headline, &self.summary_names())
    }

    fn incomplete_block(&self) -> Option<String> {
        if !self.a.ecmo_reasons.iter().any(|r| Self::is_unverified(r)) {
            return None;
        }
        Some(self.fill(
            self.t.phrase("incomplete_screen"),
            &[("items", self.short_reasons(true))],
        ))
    }

    fn reasons_block(&self) -> Option<String> {
        let items: Vec<String> = self
            .a
            .ecmo_reasons
            .iter()
            .filter(|r| !Self::is_unverified(r))
            .map(|r| format!("- {}", self.reason_texts(r).1))
            .collect();
        if items.is_empty() {
            return None;
        }
        Some(format!(
            "{}\n\n{}",
            self.t.phrase("reasons_title"),
            items.join("\n")
        ))
    }

    fn label(&self, key: &str) -> String {
        self.t
            .labels
            .get(key)
            .map_or_else(|| key.to_string(), |l| md(l))
    }

    fn value_row(&self, key: &str, value: Option<String>, time_of: &str) -> String {
        // A value that is missing shows no time (the time of another value would mislead).
        let (value, time) = match value {
            Some(v) => (
                md(&v),
                self.fact_time(time_of)
                    .map_or_else(|| "—".to_string(), |t| md(&display_time(&t))),
            ),
            None => (md(self.t.phrase("no_value")), "—".to_string()),
        };
        format!("| {} | {value} | {time} |", self.label(key))
    }

    /// The values table (P/F, PaO2, FiO2, PEEP, PaCO2, pH with times), each value through its
    /// phrase (`value_<fact>`, which carries the unit the engine normalises to, §1.1).
    fn values_block(&self) -> String {
        let a = self.a;
        let shown = |key: &str, v: Option<f64>| {
            v.map(|x| {
                self.fill(
                    self.t.phrase(&format!("value_{key}")),
                    &[("value", display_number(x))],
                )
            })
        };
        let rows = [
            self.value_row(
                "pf_ratio",
                shown("pf_ratio", a.pf_ratio_precise.or(a.pf_ratio)),
                "pao2",
            ),
            self.value_row("pao2", shown("pao2", a.pao2_mmhg), "pao2"),
            self.value_row("fio2", shown("fio2", a.fio2_fraction), "fio2"),
            self.value_row("peep", shown("peep", self.fact_number("peep")), "peep"),
            self.value_row("paco2", shown("paco2", a.paco2_mmhg), "paco2"),
            self.value_row("ph", shown("ph", a.ph), "ph"),
        ];
        format!(
            "{}\n\n{}\n{}",
            self.t.phrase("values_title"),
            self.t.phrase("values_header"),
            rows.join("\n")
        )
    }

    fn eolia_text(&self, met: bool, hours: Option<f64>) -> String {
        let hours_text = hours.map_or_else(
            || self.t.phrase("no_value_short").to_string(),
            display_number,
        );
        match (met, hours) {
            (true, _) => self.fill(self.t.phrase("eolia_met"), &[("hours", hours_text)]),
            (false, Some(_)) => self.fill(self.t.phrase("eolia_running"), &[("hours", hours_text)]),
            (false, None) => self.t.phrase("eolia_not_met").to_string(),
        }
    }

    /// Categories, scores, EOLIA and mechanisms.
    fn findings_block(&self) -> String {
        let a = self.a;
        let no_value = || self.t.phrase("no_value").to_string();
        let opt = |v: &Option<Arc<str>>| v.as_deref().map_or_else(no_value, md);
        let resp = match (a.resp_score, &a.resp_class) {
            (Some(score), Some(class)) => self.fill(
                self.t.phrase("resp_class"),
                &[
                    ("score", display_number(score)),
                    ("class", md(class)),
                    (
                        "survival",
                        a.resp_survival_pct.map_or_else(
                            || self.t.phrase("no_value_short").to_string(),
                            display_number,
                        ),
                    ),
                ],
            ),
            _ if !a.resp_missing.is_empty() => self.fill(
                self.t.phrase("resp_missing"),
                &[(
                    "missing",
                    a.resp_missing
                        .iter()
                        .map(|m| code(m))
                        .collect::<Vec<_>>()
                        .join(", "),
                )],
            ),
            _ => no_value(),
        };
        let mechanisms = if a.mechanisms.is_empty() {
            self.t.phrase("none").to_string()
        } else {
            a.mechanisms
                .iter()
                .map(|m| {
                    self.input
                        .rules
                        .mechanisms
                        .iter()
                        .find(|c| &c.code == m)
                        .map_or_else(|| code(m), |c| md(&c.display))
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        [
            self.fill(
                self.t.phrase("category_line"),
                &[
                    ("berlin", opt(&a.berlin_category)),
                    ("global", opt(&a.global_category)),
                ],
            ),
            self.fill(
                self.t.phrase("scores_line"),
                &[
                    (
                        "murray",
                        a.murray_score.map_or_else(no_value, display_number),
                    ),
                    ("resp", resp),
                ],
            ),
            self.fill(
                self.t.phrase("eolia_line"),
                &[
                    ("c1", self.eolia_text(a.eolia.c1, a.eolia.c1_duration_h)),
                    ("c2", self.eolia_text(a.eolia.c2, a.eolia.c2_duration_h)),
                    ("c3", self.eolia_text(a.eolia.c3, a.eolia.c3_duration_h)),
                ],
            ),
            self.fill(
                self.t.phrase("mechanisms_line"),
                &[("mechanisms", mechanisms)],
            ),
        ]
        .join("\n")
    }

    fn recommendations_block(&self) -> String {
        let names = self.summary_names();
        let body = if self.a.recommendation_details.is_empty() {
            self.t.phrase("no_recommendations").to_string()
        } else {
            self.a
                .recommendation_details
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (action, because, detail) = match self.t.recommendations.get(&*r.code) {
                        Some(t) => (
                            self.fill(&t.action, &names),
                            self.fill(&t.because, &names),
                            t.detail.as_ref().map(|d| self.fill(d, &names)),
                        ),
                        None => (md(&r.display), String::new(), None),
                    };
                    let mut item = self.fill(
                        self.t.phrase("recommendation_item"),
                        &[
                            ("n", (i + 1).to_string()),
                            ("action", action),
                            ("urgency", self.t.urgency(Some(r.urgency)).to_string()),
                            ("because", because),
                        ],
                    );
                    if let Some(d) = detail {
                        item.push_str("\n   ");
                        item.push_str(&d);
                    }
                    item
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!("{}\n\n{body}", self.t.phrase("recommendations_title"))
    }

    /// How long ago a concept was last charted, from the snapshot (`None` without one).
    fn charted_ago(&self, concept: Concept) -> Option<String> {
        let snapshot = self.input.snapshot?;
        let now = chrono::DateTime::parse_from_rfc3339(&self.a.evaluated_at).ok()?;
        let latest = snapshot
            .observations
            .iter()
            .filter(|o| {
                self.input
                    .rules
                    .concept_of(&o.system, &o.code)
                    .is_some_and(|m| m.concept == concept)
            })
            .map(|o| o.effective)
            .filter(|t| *t <= now)
            .max()?;
        let hours = (now.with_timezone(&chrono::Utc) - latest).num_minutes() as f64 / 60.0;
        Some(self.fill(
            self.t.phrase("hours_ago"),
            &[("hours", display_number((hours * 10.0).trunc() / 10.0))],
        ))
    }

    /// One data-quality item (`code:detail`) in words.
    fn data_quality_item(&self, item: &str) -> String {
        let (code_part, detail) = item.split_once(':').unwrap_or((item, ""));
        let Some(template) = self.t.data_quality.get(code_part) else {
            return self.fill(
                self.t.phrase("data_quality_unknown"),
                &[("code", code(item))],
            );
        };
        let concept_name = detail.split(['/', '@', ' ']).next().unwrap_or_default();
        let concept = Concept::from_name(concept_name);
        let time = detail
            .split_once('@')
            .map(|(_, t)| display_time(t.split_whitespace().next().unwrap_or(t)));
        let age = concept
            .and_then(|c| self.charted_ago(c))
            .unwrap_or_else(|| self.t.phrase("age_unknown").to_string());
        self.fill(
            template,
            &[
                ("concept", self.label(concept_name)),
                ("age", age),
                (
                    "time",
                    time.unwrap_or_else(|| self.t.phrase("no_value_short").to_string()),
                ),
                ("detail", md(detail)),
                ("code", md(code_part)),
            ],
        )
    }

    fn data_quality_block(&self) -> String {
        let body = if self.a.data_quality.is_empty() {
            self.t.phrase("data_quality_none").to_string()
        } else {
            self.a
                .data_quality
                .iter()
                .map(|d| format!("- {}", self.data_quality_item(d)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!("{}\n\n{body}", self.t.phrase("data_quality_title"))
    }

    fn ruleset_label(&self) -> String {
        let r = &self.a.ruleset;
        format!(
            "{} {} (sha256 {})",
            r.id,
            r.version,
            &r.sha256[..r.sha256.len().min(12)]
        )
    }

    fn footer(&self) -> String {
        let mut out = self.fill(
            self.t.phrase("footer"),
            &[
                ("ruleset", md(&self.ruleset_label())),
                ("evaluated_at", self.a.evaluated_at.clone()),
                ("evaluation_id", self.input.evaluation_id.to_string()),
            ],
        );
        if self.input.rules.manifest.status == ReleaseStatus::Draft {
            out.push_str("\n\n");
            out.push_str(self.t.phrase("draft_warning"));
        }
        out
    }

    // --- card parts ----------------------------------------------------------------------

    fn source(&self, topic: &str) -> Source {
        Source {
            label: self.fill(
                self.t.phrase("source_label"),
                &[("version", self.a.ruleset.version.to_string())],
            ),
            url: None,
            icon: None,
            topic: Some(Coding::new(
                text::TOPIC_SYSTEM,
                topic,
                self.t.topics.get(topic).map_or(topic, String::as_str),
            )),
        }
    }

    fn override_reasons(&self) -> Vec<Coding> {
        self.t
            .override_reasons
            .iter()
            .map(|o| Coding::new(text::OVERRIDE_SYSTEM, &o.code, &o.display))
            .collect()
    }

    fn evaluation_link(&self) -> Vec<Link> {
        let base = self.input.dashboard.as_str().trim_end_matches('/');
        Url::parse(&format!(
            "{base}/dashboard/evaluations/{}",
            self.input.evaluation_id
        ))
        .ok()
        .map(|url| Link {
            label: self.t.phrase("evaluation_link").to_string(),
            url,
            kind: LinkType::Absolute,
            app_context: None,
        })
        .into_iter()
        .collect()
    }

    fn extension(&self, order: Option<&DraftOrder>) -> Map<String, Value> {
        let a = self.a;
        let mut inner = json!({
            "rulesetVersion": &*a.ruleset.version,
            "rulesetSha256": &*a.ruleset.sha256,
            "evaluationId": self.input.evaluation_id.to_string(),
        });
        if let Some(reference) = order.and_then(DraftOrder::reference) {
            inner["draftOrder"] = Value::String(reference);
        }
        let mut ext = Map::new();
        ext.insert(text::EXTENSION_KEY.to_string(), inner);
        ext
    }

    fn highest_urgency(&self) -> Option<Urgency> {
        self.a
            .recommendation_details
            .iter()
            .map(|r| r.urgency)
            .chain(self.a.ecmo_urgency)
            .max()
    }

    /// The "Request LRT consult" suggestion (needs `context.patientId`).
    fn consult_suggestion(&self, recommended: bool) -> Option<Suggestion> {
        let input = self.input;
        let consult = &self.t.consult;
        let patient = input.request.patient_id()?;
        let priority = self
            .highest_urgency()
            .and_then(|u| consult.priority_by_urgency.get(&u))
            .unwrap_or(&consult.default_priority);
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
            "reasonCode": [{"text": self.fill(&consult.reason, &[("category", self.category().to_string())])}],
            "note": [{"text": self.fill(&consult.note, &[
                ("evaluation_id", input.evaluation_id.to_string()),
                ("ruleset", self.ruleset_label()),
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
            label: consult.label.clone(),
            uuid: None,
            is_recommended: recommended.then_some(true),
            actions: vec![Action {
                kind: ActionType::Create,
                description: consult.description.clone(),
                resource: Some(resource),
                resource_id: None,
            }],
        })
    }

    // --- patient-view --------------------------------------------------------------------

    /// The most urgent recommendation that is not a data request (catalogue order breaks ties).
    fn lead_recommendation(&self) -> Option<&lrt_engine::assessment::RecommendationDetail> {
        self.a
            .recommendation_details
            .iter()
            .filter(|r| {
                !self
                    .t
                    .recommendations
                    .get(&*r.code)
                    .is_some_and(|t| t.data_request || t.category_action)
            })
            .fold(
                None,
                |best: Option<&lrt_engine::assessment::RecommendationDetail>, r| match best {
                    Some(b) if b.urgency >= r.urgency => Some(b),
                    _ => Some(r),
                },
            )
    }

    fn indicator_of(&self, urgency: Urgency) -> Indicator {
        self.t
            .indicator_by_urgency
            .get(&urgency)
            .copied()
            .unwrap_or(Indicator::Info)
    }

    fn patient_view_card(&self) -> Option<Card> {
        let category = self.category_template();
        let lead = self.lead_recommendation();
        let actionable = lead.is_some()
            || !self
                .t
                .not_actionable_categories
                .iter()
                .any(|c| Some(c.as_str()) == self.a.ecmo_category.as_deref());
        if !actionable && !self.t.card_when_not_actionable {
            return None;
        }
        let names = self.summary_names();
        let lead_indicator = lead.map(|r| self.indicator_of(r.urgency));
        let lead_text = lead.and_then(|r| self.t.recommendations.get(&*r.code));
        let summary = match (lead_indicator, lead_text) {
            (Some(li), Some(t))
                if !self.t.category_always_leads && li > category.indicator
                    || (!self.t.category_always_leads
                        && li == category.indicator
                        && t.leads_ties
                        && !self.t.category_wins_ties_at.contains(&li)) =>
            {
                summary(
                    &self.fill(&t.action, &names),
                    &self.fill(&t.because, &names),
                )
            }
            _ => summary(
                &self.fill(&category.action, &names),
                &self.fill(&category.because, &names),
            ),
        };
        let indicator = lead_indicator.map_or(category.indicator, |li| li.max(category.indicator));
        let mut parts = vec![self.headline()];
        parts.extend(self.incomplete_block());
        parts.extend(self.reasons_block());
        parts.push(self.values_block());
        parts.push(self.findings_block());
        parts.push(self.recommendations_block());
        parts.push(self.data_quality_block());
        parts.push(self.footer());
        let suggestions: Vec<Suggestion> = self
            .consult_suggestion(indicator >= Indicator::Warning)
            .into_iter()
            .collect();
        Some(Card {
            uuid: None,
            summary,
            detail: Some(parts.join("\n\n")),
            indicator,
            source: self.source(templates::TOPIC_TRIAGE),
            selection_behavior: (!suggestions.is_empty()).then_some(SelectionBehavior::AtMostOne),
            suggestions,
            override_reasons: self.override_reasons(),
            links: self.evaluation_link(),
            extension: Some(self.extension(None)),
        })
    }

    // --- order-select / order-sign -------------------------------------------------------

    fn order_finding<'o>(
        &self,
        order: &'o DraftOrder,
        concept: OrderConcept,
    ) -> Option<Finding<'o, '_>> {
        let cards = &self.t.order_cards;
        let category = self.a.ecmo_category.as_deref();
        match concept {
            OrderConcept::Ecmo if category == Some("ineligible") => {
                let hard: Vec<String> = self
                    .a
                    .ecmo_reasons
                    .iter()
                    .filter(|r| r.starts_with("hard_stop:"))
                    .map(|r| self.reason_texts(r).0)
                    .collect();
                Some(Finding {
                    order,
                    card: &cards.ecmo_ineligible,
                    names: vec![("reasons", hard.join("; "))],
                })
            }
            OrderConcept::Ecmo => {
                let rev = &self.input.order_codes.reversible;
                let reasons: Vec<String> = self
                    .a
                    .ecmo_reasons
                    .iter()
                    .filter(|r| rev.ecmo_reasons.iter().any(|x| x == &***r))
                    .map(|r| self.reason_texts(r).0)
                    .chain(
                        self.a
                            .recommendation_details
                            .iter()
                            .filter(|r| rev.recommendations.iter().any(|x| x == &*r.code))
                            .map(|r| {
                                self.t
                                    .recommendations
                                    .get(&*r.code)
                                    .map_or_else(|| md(&r.display), |t| self.fill(&t.action, &[]))
                            }),
                    )
                    .collect();
                if reasons.is_empty() {
                    return None;
                }
                Some(Finding {
                    order,
                    card: &cards.ecmo_reversible,
                    names: vec![("reasons", reasons.join("; "))],
                })
            }
            OrderConcept::InhaledVasodilator => {
                let rv = match self.a.rv_dysfunction {
                    Some(true) => return None,
                    Some(false) => &self.t.rv_states.absent,
                    None => &self.t.rv_states.not_assessed,
                };
                Some(Finding {
                    order,
                    card: &cards.inhaled_vasodilator,
                    names: vec![("rv", rv.clone())],
                })
            }
            OrderConcept::PeepIncrease => (self.a.rv_dysfunction == Some(true)).then(|| Finding {
                order,
                card: &cards.peep_increase_rv,
                names: Vec::new(),
            }),
        }
    }

    fn remove_order_suggestion(&self, order: &DraftOrder) -> Option<Suggestion> {
        let reference = order.reference()?;
        let label = self.fill(
            self.t.phrase("remove_order_label"),
            &[("order", order.label.clone())],
        );
        Some(Suggestion {
            label: Summary::truncated(&label).as_str().to_string(),
            uuid: None,
            is_recommended: None,
            actions: vec![Action {
                kind: ActionType::Delete,
                description: self.fill(
                    self.t.phrase("remove_order_description"),
                    &[("reference", reference.clone())],
                ),
                resource: None,
                resource_id: Some(reference),
            }],
        })
    }

    fn order_cards(&self) -> Vec<Card> {
        let input = self.input;
        let relevant = relevant_orders(input.request, input.service.hook, input.order_codes);
        let mut cards = Vec::new();
        for r in &relevant {
            for &concept in &r.concepts {
                let Some(f) = self.order_finding(&r.order, concept) else {
                    continue;
                };
                let mut short = f.names.clone();
                short.push(("order", short_label(&f.order.label)));
                let mut long = f.names.clone();
                long.push(("order", md(&f.order.label)));
                let mut parts = vec![self.fill(&f.card.detail, &long), self.headline()];
                parts.extend(self.incomplete_block());
                parts.extend(self.reasons_block());
                parts.push(self.values_block());
                parts.push(self.recommendations_block());
                parts.push(self.data_quality_block());
                parts.push(self.footer());
                let suggestions: Vec<Suggestion> = self
                    .consult_suggestion(true)
                    .into_iter()
                    .chain(
                        f.card
                            .may_remove_order
                            .then(|| self.remove_order_suggestion(f.order))
                            .flatten(),
                    )
                    .collect();
                cards.push(Card {
                    uuid: None,
                    summary: summary(
                        &self.fill(&f.card.action, &short),
                        &self.fill(&f.card.because, &short),
                    ),
                    detail: Some(parts.join("\n\n")),
                    indicator: f.card.indicator,
                    source: self.source(&f.card.topic),
                    selection_behavior: (!suggestions.is_empty()).then_some(SelectionBehavior::Any),
                    suggestions,
                    override_reasons: self.override_reasons(),
                    links: self.evaluation_link(),
                    extension: Some(self.extension(Some(f.order))),
                });
            }
        }
        cards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_number_cuts_and_never_crosses_a_threshold() {
        assert_eq!(display_number(79.96), "79.96");
        assert_eq!(display_number(79.999), "79.99");
        assert_eq!(display_number(62.0), "62");
        assert_eq!(display_number(7.2), "7.2");
        assert_eq!(display_number(0.8), "0.8");
        assert_eq!(display_number(-0.001), "0");
    }

    #[test]
    fn the_action_is_never_cut() {
        let action = "Prone positioning now, unless contraindicated";
        let s = summary(action, &"word ".repeat(60));
        assert!(s.as_str().starts_with(action), "{}", s.as_str());
        assert!(s.as_str().chars().count() <= Summary::MAX_CHARS);
        assert!(s.as_str().ends_with('…'));
    }
}
