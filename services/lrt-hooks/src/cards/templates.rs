//! The card texts of a rule-set version (knowledge base §9 D12): what a clinician reads is
//! rule-set content, covered by the version's hash. This module reads the presentation sections
//! of a [`RuleSet`] (`cards`, `reason_texts`, `data_quality_texts`; see `rules/README.md`) into
//! a [`CardText`] and checks them against the rules, as passes:
//!
//! 1. **shape**: each section against its typed layout (unknown members refused);
//! 2. **coverage**: every reason a rule can give has a catalogue entry and every entry is given
//!    by some rule; every ECMO category, recommendation and engine data-quality code has a text;
//! 3. **placeholders**: `{param:<name>}` names a parameter, `{value:<fact>}` a fact or an
//!    assessment field, `{time:<fact>}` a fact, and a bare `{name}` is one the template offers;
//! 4. **policy**: order cards about ECMO never offer to remove the order; a summary's action
//!    fits the 140-character summary.
//!
//! Every problem is reported at once, each with its file, JSON pointer, the item and a help line.
//! A version without any presentation section (0.1.0, written before §9 D12) gets the texts it
//! was used with, `data/cards-legacy.yaml`, checked the same way.

use std::collections::BTreeMap;

use lrt_engine::RuleSet;
use lrt_engine::ruleset::{NodeKind, PresentationSection, RuleError, Urgency};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::model::Indicator;

/// The texts of the rule sets that predate §9 D12 (0.1.0).
pub const LEGACY_YAML: &str = include_str!("../../data/cards-legacy.yaml");

/// The longest summary CDS Hooks allows (spec: "less than 140 characters").
pub const SUMMARY_MAX_CHARS: usize = 139;

/// How wide a placeholder's value is assumed to be when checking that an action fits.
const SAMPLE_VALUE_CHARS: usize = 8;

// ------------------------------------------------------------------------------------------
// Layout as written
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardsDef {
    indicator_by_urgency: BTreeMap<Urgency, Indicator>,
    patient_view: PatientViewDef,
    categories: BTreeMap<String, CategoryDef>,
    unknown_category: SummaryTemplate,
    recommendations: BTreeMap<String, RecommendationText>,
    labels: BTreeMap<String, String>,
    phrases: BTreeMap<String, String>,
    topics: BTreeMap<String, String>,
    override_reasons: Vec<CodeDisplay>,
    consult: ConsultText,
    order_cards: BTreeMap<String, OrderCardText>,
    rv_states: RvStates,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientViewDef {
    card_when_not_actionable: bool,
    not_actionable_categories: Vec<String>,
    #[serde(default)]
    category_wins_ties_at: Vec<Indicator>,
    /// `category`: the category always leads the summary (the legacy layout).
    #[serde(default)]
    summary_leads_with: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryDef {
    indicator: Indicator,
    action: String,
    because: String,
    headline: String,
    #[serde(default)]
    urgency: BTreeMap<Urgency, SummaryTemplate>,
    #[serde(default)]
    when_reason: BTreeMap<String, SummaryTemplate>,
}

/// Indicator, summary (`action`: `because`) and the first line of the detail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryTemplate {
    pub indicator: Indicator,
    pub action: String,
    pub because: String,
    pub headline: String,
}

/// The texts of one recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationText {
    /// A request for data (alone, it does not make a patient-view card actionable).
    #[serde(default)]
    pub data_request: bool,
    /// The ECMO category's own action (an ECMO-centre consult): it never leads the summary on
    /// its own; the category's card does.
    #[serde(default)]
    pub category_action: bool,
    /// When this recommendation and the ECMO category have the same indicator, its action leads
    /// the summary (a rescue step that comes before the ECMO discussion, such as prone
    /// positioning); otherwise the category leads a tie.
    #[serde(default)]
    pub leads_ties: bool,
    pub action: String,
    pub because: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// One entry of the reasons catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonText {
    /// For the summary.
    pub short: String,
    /// For the detail's "Why" list.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeDisplay {
    pub code: String,
    pub display: String,
}

/// The "Request LRT consult" suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultText {
    pub label: String,
    pub description: String,
    pub note: String,
    pub reason: String,
    pub priority_by_urgency: BTreeMap<Urgency, String>,
    pub default_priority: String,
}

/// One kind of order card.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderCardText {
    pub topic: String,
    pub indicator: Indicator,
    /// Whether the card offers to delete the draft order (never for ECMO, §9 D12).
    pub may_remove_order: bool,
    pub action: String,
    pub because: String,
    pub detail: String,
}

/// `{rv}` of the inhaled-vasodilator card.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RvStates {
    pub absent: String,
    pub not_assessed: String,
}

// ------------------------------------------------------------------------------------------
// Compiled
// ------------------------------------------------------------------------------------------

/// A category's card: the base texts and the variants by ECMO urgency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryText {
    pub base: SummaryTemplate,
    pub by_urgency: BTreeMap<Urgency, SummaryTemplate>,
    /// Texts that replace the others when the assessment gives this reason (e.g. goals of care
    /// to confirm before any ECMO discussion, §9 D5); the first matching reason wins.
    pub by_reason: BTreeMap<String, SummaryTemplate>,
}

impl CategoryText {
    /// The texts for this assessment: a reason variant, else an urgency variant, else the base.
    pub fn select(
        &self,
        urgency: Option<Urgency>,
        reasons: &[std::sync::Arc<str>],
    ) -> &SummaryTemplate {
        self.by_reason
            .iter()
            .find(|(r, _)| reasons.iter().any(|x| **x == ***r))
            .map(|(_, t)| t)
            .or_else(|| urgency.and_then(|u| self.by_urgency.get(&u)))
            .unwrap_or(&self.base)
    }
}

/// The order cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCards {
    pub ecmo_ineligible: OrderCardText,
    pub ecmo_reversible: OrderCardText,
    pub inhaled_vasodilator: OrderCardText,
    pub peep_increase_rv: OrderCardText,
}

/// Everything the cards of one rule-set version say (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardText {
    /// Where the texts come from: the version's files, or the legacy texts.
    pub origin: TextOrigin,
    pub indicator_by_urgency: BTreeMap<Urgency, Indicator>,
    pub card_when_not_actionable: bool,
    pub not_actionable_categories: Vec<String>,
    /// When the category and the most urgent recommendation have the same indicator, the
    /// category leads the summary at these indicators (else the recommendation does).
    pub category_wins_ties_at: Vec<Indicator>,
    /// The category always leads the summary (the legacy layout of 0.1.0).
    pub category_always_leads: bool,
    pub categories: BTreeMap<String, CategoryText>,
    pub unknown_category: SummaryTemplate,
    pub recommendations: BTreeMap<String, RecommendationText>,
    pub reasons: BTreeMap<String, ReasonText>,
    pub data_quality: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    phrases: BTreeMap<String, String>,
    pub topics: BTreeMap<String, String>,
    pub override_reasons: Vec<CodeDisplay>,
    pub consult: ConsultText,
    pub order_cards: OrderCards,
    pub rv_states: RvStates,
}

/// Where a [`CardText`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOrigin {
    /// The version's own presentation sections (hashed with it).
    RuleSet,
    /// `data/cards-legacy.yaml` (a version written before §9 D12).
    Legacy,
}

/// The fixed phrases of the layout and the bare placeholders each may use.
pub const PHRASES: &[(&str, &[&str])] = &[
    ("source_label", &["version"]),
    ("incomplete_screen", &["items"]),
    ("values_title", &[]),
    ("value_pf_ratio", &["value"]),
    ("value_pao2", &["value"]),
    ("value_fio2", &["value"]),
    ("value_peep", &["value"]),
    ("value_paco2", &["value"]),
    ("value_ph", &["value"]),
    ("hours_ago", &["hours"]),
    ("values_header", &[]),
    ("no_value", &[]),
    ("no_value_short", &[]),
    ("reasons_title", &[]),
    ("category_line", &["berlin", "global"]),
    ("scores_line", &["murray", "resp"]),
    ("resp_class", &["score", "class", "survival"]),
    ("resp_missing", &["missing"]),
    ("eolia_line", &["c1", "c2", "c3"]),
    ("eolia_met", &["hours"]),
    ("eolia_not_met", &[]),
    ("eolia_running", &["hours"]),
    ("mechanisms_line", &["mechanisms"]),
    ("none", &[]),
    ("recommendations_title", &[]),
    (
        "recommendation_item",
        &["n", "action", "urgency", "because"],
    ),
    ("no_recommendations", &[]),
    ("data_quality_title", &[]),
    ("data_quality_none", &[]),
    ("data_quality_unknown", &["code"]),
    ("age_unknown", &[]),
    ("footer", &["ruleset", "evaluated_at", "evaluation_id"]),
    ("draft_warning", &[]),
    ("evaluation_link", &[]),
    ("remove_order_label", &["order"]),
    ("remove_order_description", &["reference"]),
    ("urgency_emergent", &[]),
    ("urgency_urgent", &[]),
    ("urgency_routine", &[]),
    ("urgency_none", &[]),
];

/// Bare placeholders of the category and recommendation templates.
const SUMMARY_NAMES: &[&str] = &["reasons", "category"];
/// Bare placeholders of the order cards.
const ORDER_NAMES: &[&str] = &["order", "reasons", "rv"];
/// Bare placeholders of the data-quality sentences.
const DATA_QUALITY_NAMES: &[&str] = &["concept", "age", "time", "detail", "code"];
/// Topics the layout uses.
pub const TOPIC_TRIAGE: &str = "lrt-triage";
/// Order-card kinds, in the order of [`OrderCards`].
const ORDER_CARD_KINDS: [&str; 4] = [
    "ecmo_ineligible",
    "ecmo_reversible",
    "inhaled_vasodilator",
    "peep_increase_rv",
];
/// Order cards about an ECMO order (never remove the order, §9 D12).
const ECMO_ORDER_CARDS: [&str; 2] = ["ecmo_ineligible", "ecmo_reversible"];

impl CardText {
    /// A fixed phrase (checked to exist when the texts were read).
    pub fn phrase(&self, key: &str) -> &str {
        self.phrases.get(key).map_or("", String::as_str)
    }

    /// The display of an urgency.
    pub fn urgency(&self, urgency: Option<Urgency>) -> &str {
        self.phrase(match urgency {
            Some(Urgency::Emergent) => "urgency_emergent",
            Some(Urgency::Urgent) => "urgency_urgent",
            Some(Urgency::Routine) => "urgency_routine",
            None => "urgency_none",
        })
    }

    /// The texts of a rule-set version (see the module docs), or every problem found.
    pub fn for_rules(rules: &RuleSet) -> Result<CardText, Vec<RuleError>> {
        let own: Vec<&PresentationSection> = rules
            .presentation
            .iter()
            .filter(|s| s.section != "order_codes")
            .collect();
        if own.is_empty() {
            return CardText::legacy(rules);
        }
        let mut errors = Vec::new();
        let cards = one_section::<CardsDef>(&own, "cards", rules, &mut errors);
        let reasons =
            one_section::<BTreeMap<String, ReasonText>>(&own, "reason_texts", rules, &mut errors);
        let data_quality =
            one_section::<BTreeMap<String, String>>(&own, "data_quality_texts", rules, &mut errors);
        let (Some(cards), Some(reasons), Some(data_quality)) = (cards, reasons, data_quality)
        else {
            rules.annotate_errors(&mut errors);
            return Err(errors);
        };
        let text = CardText::assemble(TextOrigin::RuleSet, cards.0, reasons.0, data_quality.0);
        let files = Files {
            cards: cards.1,
            reasons: reasons.1,
            data_quality: data_quality.1,
        };
        check(&text, rules, &files, &mut errors);
        if errors.is_empty() {
            Ok(text)
        } else {
            rules.annotate_errors(&mut errors);
            Err(errors)
        }
    }

    fn legacy(rules: &RuleSet) -> Result<CardText, Vec<RuleError>> {
        const FILE: &str = "lrt-hooks data/cards-legacy.yaml";
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct LegacyFile {
            #[serde(rename = "description")]
            _description: String,
            cards: CardsDef,
            reason_texts: BTreeMap<String, ReasonText>,
            data_quality_texts: BTreeMap<String, String>,
        }
        let options = serde_saphyr::options! { strict_booleans: true };
        let file: LegacyFile = serde_saphyr::from_str_with_options(LEGACY_YAML, options)
            .map_err(|e| vec![error(FILE, "", "", format!("not readable: {e}"), None)])?;
        let text = CardText::assemble(
            TextOrigin::Legacy,
            file.cards,
            file.reason_texts,
            file.data_quality_texts,
        );
        let mut errors = Vec::new();
        let files = Files {
            cards: FILE.to_string(),
            reasons: FILE.to_string(),
            data_quality: FILE.to_string(),
        };
        check(&text, rules, &files, &mut errors);
        if errors.is_empty() {
            Ok(text)
        } else {
            Err(errors)
        }
    }

    fn assemble(
        origin: TextOrigin,
        cards: CardsDef,
        reasons: BTreeMap<String, ReasonText>,
        data_quality: BTreeMap<String, String>,
    ) -> CardText {
        let mut order_cards = cards.order_cards;
        let mut take = |k: &str| {
            order_cards.remove(k).unwrap_or_else(|| OrderCardText {
                topic: String::new(),
                indicator: Indicator::Info,
                may_remove_order: false,
                action: String::new(),
                because: String::new(),
                detail: String::new(),
            })
        };
        let order_cards = OrderCards {
            ecmo_ineligible: take("ecmo_ineligible"),
            ecmo_reversible: take("ecmo_reversible"),
            inhaled_vasodilator: take("inhaled_vasodilator"),
            peep_increase_rv: take("peep_increase_rv"),
        };
        CardText {
            origin,
            indicator_by_urgency: cards.indicator_by_urgency,
            card_when_not_actionable: cards.patient_view.card_when_not_actionable,
            not_actionable_categories: cards.patient_view.not_actionable_categories,
            category_wins_ties_at: cards.patient_view.category_wins_ties_at,
            category_always_leads: cards.patient_view.summary_leads_with.as_deref()
                == Some("category"),
            categories: cards
                .categories
                .into_iter()
                .map(|(k, c)| {
                    (
                        k,
                        CategoryText {
                            base: SummaryTemplate {
                                indicator: c.indicator,
                                action: c.action,
                                because: c.because,
                                headline: c.headline,
                            },
                            by_urgency: c.urgency,
                            by_reason: c.when_reason,
                        },
                    )
                })
                .collect(),
            unknown_category: cards.unknown_category,
            recommendations: cards.recommendations,
            reasons,
            data_quality,
            labels: cards.labels,
            phrases: cards.phrases,
            topics: cards.topics,
            override_reasons: cards.override_reasons,
            consult: cards.consult,
            order_cards,
            rv_states: cards.rv_states,
        }
    }
}

/// The file of each section, for error locations.
struct Files {
    cards: String,
    reasons: String,
    data_quality: String,
}

fn error(
    file: &str,
    pointer: &str,
    item: &str,
    message: String,
    help: Option<String>,
) -> RuleError {
    let mut e = RuleError::new(file, pointer, message).with_help(help);
    if !item.is_empty() {
        e.item = Some(item.to_string());
    }
    e
}

/// JSON-pointer escaping of one key.
fn esc(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reads the one section named `name` (it must be written exactly once).
fn one_section<T: DeserializeOwned>(
    sections: &[&PresentationSection],
    name: &str,
    rules: &RuleSet,
    errors: &mut Vec<RuleError>,
) -> Option<(T, String)> {
    let found: Vec<&&PresentationSection> = sections.iter().filter(|s| s.section == name).collect();
    match found.as_slice() {
        [] => {
            errors.push(error(
                &format!("{}", rules.dir.display()),
                "",
                "",
                format!("no `{name}` section: a version with card texts needs `cards`, `reason_texts` and `data_quality_texts`"),
                Some("see rules/README.md, \"What the clinician reads\"".into()),
            ));
            None
        }
        [one] => match serde_path_to_error::deserialize::<_, T>(&one.value) {
            Ok(v) => Some((v, one.file.clone())),
            Err(e) => {
                let path = e.path().to_string();
                let pointer = if path == "." {
                    format!("/{name}")
                } else {
                    format!("/{name}/{}", path.replace('.', "/"))
                };
                errors.push(error(&one.file, &pointer, "", e.inner().to_string(), None));
                None
            }
        },
        [first, second, ..] => {
            errors.push(error(
                &second.file,
                &format!("/{name}"),
                "",
                format!("`{name}` is also written in {}", first.file),
                Some("keep one; sections of the same name do not merge".into()),
            ));
            None
        }
    }
}

// ------------------------------------------------------------------------------------------
// Placeholders
// ------------------------------------------------------------------------------------------

/// One `{...}` placeholder of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    Param(&'a str),
    Value(&'a str),
    Time(&'a str),
    Name(&'a str),
}

/// The placeholders of a template, in order. `{` without a closing `}` is text.
pub fn placeholders(template: &str) -> Vec<Placeholder<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        out.push(parse_placeholder(after[..end].trim()));
        rest = &after[end + 1..];
    }
    out
}

fn parse_placeholder(inner: &str) -> Placeholder<'_> {
    match inner.split_once(':') {
        Some(("param", n)) => Placeholder::Param(n.trim()),
        Some(("value", n)) => Placeholder::Value(n.trim()),
        Some(("time", n)) => Placeholder::Time(n.trim()),
        _ => Placeholder::Name(inner),
    }
}

/// Fills every placeholder through `resolve` in one pass (a value holding `{x}` is never filled
/// again). A placeholder `resolve` does not know stays as written.
pub fn render(template: &str, resolve: &dyn Fn(Placeholder<'_>) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push('{');
            rest = after;
            continue;
        };
        match resolve(parse_placeholder(after[..end].trim())) {
            Some(v) => {
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Assessment fields `{value:...}` may name besides the rule set's facts (dotted paths).
pub const ASSESSMENT_VALUES: &[&str] = &[
    "pf_ratio",
    "pf_ratio_precise",
    "pao2_mmHg",
    "fio2_fraction",
    "paco2_mmHg",
    "ph",
    "sf_ratio",
    "sf_ratio_precise",
    "pbw_kg",
    "vt_ml_per_kg_pbw",
    "driving_pressure",
    "crs_static",
    "oxygenation_index",
    "oxygen_saturation_index",
    "ventilatory_ratio",
    "mechanical_power_j_min",
    "bmi",
    "murray_score",
    "acp_risk_score",
    "resp_score",
    "resp_class",
    "resp_survival_pct",
    "eolia.c1_duration_h",
    "eolia.c2_duration_h",
    "eolia.c3_duration_h",
    "fio2_challenge_slope",
];

struct Checker<'a> {
    rules: &'a RuleSet,
    errors: &'a mut Vec<RuleError>,
}

impl Checker<'_> {
    fn closest<'b>(name: &str, known: impl Iterator<Item = &'b str>) -> Option<&'b str> {
        known
            .map(|k| (strsim::levenshtein(name, k), k))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k)
    }

    /// Checks one template's placeholders; `names` are the bare ones allowed.
    fn template(&mut self, file: &str, pointer: &str, item: &str, text: &str, names: &[&str]) {
        for p in placeholders(text) {
            match p {
                Placeholder::Param(n) => {
                    if self.rules.param(n).is_none() {
                        let hint =
                            Self::closest(n, self.rules.params.iter().map(|p| p.name.as_str()))
                                .map_or_else(
                                    || "parameters are defined in parameters.yaml".to_string(),
                                    |c| format!("did you mean `{{param:{c}}}`?"),
                                );
                        self.errors.push(error(
                            file,
                            pointer,
                            item,
                            format!("`{{param:{n}}}` names no parameter of this version"),
                            Some(hint),
                        ));
                    }
                }
                Placeholder::Value(n) | Placeholder::Time(n) => {
                    let is_fact = self.rules.facts.iter().any(|f| &*f.name == n);
                    let is_field =
                        matches!(p, Placeholder::Value(_)) && ASSESSMENT_VALUES.contains(&n);
                    if !is_fact && !is_field {
                        let known = self
                            .rules
                            .facts
                            .iter()
                            .map(|f| &*f.name)
                            .chain(ASSESSMENT_VALUES.iter().copied());
                        let hint = Self::closest(n, known).map_or_else(
                            || "write a fact of the rule set (rules/README.md lists them) or an assessment field".to_string(),
                            |c| format!("did you mean `{c}`?"),
                        );
                        self.errors.push(error(
                            file,
                            pointer,
                            item,
                            format!(
                                "`{{{}}}` names no fact of this version",
                                placeholder_text(p)
                            ),
                            Some(hint),
                        ));
                    }
                }
                Placeholder::Name(n) => {
                    if !names.contains(&n) {
                        let help = if n.chars().any(|c| c.is_ascii_digit()) || n.contains(' ') {
                            "thresholds are parameters: write `{param: <name>}` (e.g. `{param:bmi_relative_ci}`)".to_string()
                        } else if names.is_empty() {
                            "this text takes no bare placeholder; use {param:...}, {value:...} or {time:...}".to_string()
                        } else {
                            format!(
                                "known here: {}; or {{param:...}}, {{value:...}}, {{time:...}}",
                                names
                                    .iter()
                                    .map(|n| format!("{{{n}}}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        self.errors.push(error(
                            file,
                            pointer,
                            item,
                            format!("unknown placeholder `{{{n}}}`"),
                            Some(help),
                        ));
                    }
                }
            }
        }
    }

    /// An action must fit the summary with room for its reason.
    fn action(&mut self, file: &str, pointer: &str, item: &str, action: &str) {
        let sample = render(action, &|_| Some("x".repeat(SAMPLE_VALUE_CHARS)));
        let n = sample.chars().count();
        if n > SUMMARY_MAX_CHARS - 20 {
            self.errors.push(error(
                file,
                pointer,
                item,
                format!("the action is {n} characters with its values; a summary has {SUMMARY_MAX_CHARS}, and the action is never cut"),
                Some("shorten the action; put the rest in `because` or the detail".into()),
            ));
        }
    }
}

fn placeholder_text(p: Placeholder<'_>) -> String {
    match p {
        Placeholder::Param(n) => format!("param:{n}"),
        Placeholder::Value(n) => format!("value:{n}"),
        Placeholder::Time(n) => format!("time:{n}"),
        Placeholder::Name(n) => n.to_string(),
    }
}

/// The values of the `ecmo_category` classification.
fn ecmo_categories(rules: &RuleSet) -> Vec<&str> {
    rules
        .nodes
        .iter()
        .find(|n| &*n.id == "ecmo_category")
        .and_then(|n| match &n.kind {
            NodeKind::Classification(c) => Some(c.values.iter().map(|v| &**v).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Passes 2 to 4 of the module docs.
fn check(text: &CardText, rules: &RuleSet, files: &Files, errors: &mut Vec<RuleError>) {
    let mut c = Checker { rules, errors };
    let cards = files.cards.as_str();

    // Reasons catalogue.
    let emitted = rules.emitted_reasons();
    for r in &emitted {
        if r.code.starts_with("hard_stop:") {
            continue;
        }
        if !text.reasons.contains_key(r.code) {
            c.errors.push(error(
                r.file,
                r.pointer,
                r.item,
                format!(
                    "reason `{}` has no entry in the reasons catalogue (`reason_texts`)",
                    r.code
                ),
                Some(format!(
                    "add `\"{}\": {{short: ..., text: ...}}` under `reason_texts` ({})",
                    r.code, files.reasons
                )),
            ));
        }
    }
    for (code, t) in &text.reasons {
        let pointer = format!("/reason_texts/{}", esc(code));
        if !emitted.iter().any(|r| r.code == code) {
            c.errors.push(error(
                &files.reasons,
                &pointer,
                code,
                "no rule gives this reason".into(),
                Some("fix the code to match a rule's `reason:`, or remove the entry".into()),
            ));
        }
        c.template(
            &files.reasons,
            &format!("{pointer}/short"),
            code,
            &t.short,
            &[],
        );
        c.template(
            &files.reasons,
            &format!("{pointer}/text"),
            code,
            &t.text,
            &[],
        );
    }

    // Categories.
    let categories = ecmo_categories(rules);
    for cat in &categories {
        if !text.categories.contains_key(*cat) {
            c.errors.push(error(
                cards,
                "/cards/categories",
                cat,
                format!("ECMO category `{cat}` has no card"),
                Some("add it under cards.categories".into()),
            ));
        }
    }
    for (cat, t) in &text.categories {
        let pointer = format!("/cards/categories/{}", esc(cat));
        if !categories.contains(&cat.as_str()) {
            c.errors.push(error(
                cards,
                &pointer,
                cat,
                "not a value of the ecmo_category classification".into(),
                Some(format!("known: {}", categories.join(", "))),
            ));
        }
        for r in t.by_reason.keys() {
            if !emitted.iter().any(|e| e.code == r.as_str()) {
                c.errors.push(error(
                    cards,
                    &format!("{pointer}/when_reason/{}", esc(r)),
                    cat,
                    format!("no rule gives the reason `{r}`"),
                    Some("a `when_reason` key is a reason code of the rules".into()),
                ));
            }
        }
        let variants = std::iter::once((pointer.clone(), &t.base))
            .chain(
                t.by_urgency
                    .iter()
                    .map(|(u, v)| (format!("{pointer}/urgency/{}", u.name()), v)),
            )
            .chain(
                t.by_reason
                    .iter()
                    .map(|(r, v)| (format!("{pointer}/when_reason/{}", esc(r)), v)),
            );
        for (p, v) in variants {
            c.template(cards, &format!("{p}/action"), cat, &v.action, SUMMARY_NAMES);
            c.action(cards, &format!("{p}/action"), cat, &v.action);
            c.template(
                cards,
                &format!("{p}/because"),
                cat,
                &v.because,
                SUMMARY_NAMES,
            );
            c.template(
                cards,
                &format!("{p}/headline"),
                cat,
                &v.headline,
                SUMMARY_NAMES,
            );
        }
    }
    for cat in &text.not_actionable_categories {
        if !categories.contains(&cat.as_str()) {
            c.errors.push(error(
                cards,
                "/cards/patient_view/not_actionable_categories",
                cat,
                "not a value of the ecmo_category classification".into(),
                Some(format!("known: {}", categories.join(", "))),
            ));
        }
    }
    let u = &text.unknown_category;
    c.template(
        cards,
        "/cards/unknown_category/because",
        "unknown_category",
        &u.because,
        SUMMARY_NAMES,
    );
    c.template(
        cards,
        "/cards/unknown_category/headline",
        "unknown_category",
        &u.headline,
        SUMMARY_NAMES,
    );

    // Recommendations.
    for r in &rules.recommendations {
        if !text.recommendations.contains_key(&*r.code) {
            c.errors.push(error(
                cards,
                "/cards/recommendations",
                &r.code,
                format!("recommendation `{}` has no card text", r.code),
                Some("add `action` and `because` for it under cards.recommendations".into()),
            ));
        }
    }
    for (code, t) in &text.recommendations {
        let pointer = format!("/cards/recommendations/{}", esc(code));
        if !rules.recommendations.iter().any(|r| &*r.code == code) {
            c.errors.push(error(
                cards,
                &pointer,
                code,
                "not a recommendation of this version".into(),
                Some("recommendation codes are listed in recommendations.yaml".into()),
            ));
        }
        c.template(
            cards,
            &format!("{pointer}/action"),
            code,
            &t.action,
            SUMMARY_NAMES,
        );
        c.action(cards, &format!("{pointer}/action"), code, &t.action);
        c.template(
            cards,
            &format!("{pointer}/because"),
            code,
            &t.because,
            SUMMARY_NAMES,
        );
        if let Some(d) = &t.detail {
            c.template(cards, &format!("{pointer}/detail"), code, d, SUMMARY_NAMES);
        }
    }

    // Data quality.
    let needed = lrt_engine::quality::CODES
        .iter()
        .map(|(code, _)| *code)
        .chain(rules.rule_data_quality.iter().map(|c| &**c));
    for code in needed {
        if !text.data_quality.contains_key(code) {
            c.errors.push(error(
                &files.data_quality,
                "/data_quality_texts",
                code,
                format!("data-quality code `{code}` has no sentence"),
                Some("add it under data_quality_texts".into()),
            ));
        }
    }
    for (code, t) in &text.data_quality {
        let pointer = format!("/data_quality_texts/{}", esc(code));
        c.template(&files.data_quality, &pointer, code, t, DATA_QUALITY_NAMES);
    }

    // Labels: every concept the engine knows.
    for concept in lrt_engine::concept::Concept::ALL {
        if !text.labels.contains_key(concept.name()) {
            c.errors.push(error(
                cards,
                "/cards/labels",
                concept.name(),
                format!("concept `{}` has no label", concept.name()),
                Some("add it under cards.labels".into()),
            ));
        }
    }

    // Phrases.
    for (key, names) in PHRASES {
        match text.phrases.get(*key) {
            None => c.errors.push(error(
                cards,
                "/cards/phrases",
                key,
                format!("phrase `{key}` is missing"),
                Some("every phrase of the layout is needed; see rules/README.md".into()),
            )),
            Some(t) => c.template(cards, &format!("/cards/phrases/{key}"), key, t, names),
        }
    }
    for key in text.phrases.keys() {
        if !PHRASES.iter().any(|(k, _)| k == key) {
            c.errors.push(error(
                cards,
                &format!("/cards/phrases/{}", esc(key)),
                key,
                "not a phrase of the layout".into(),
                closest_phrase(key),
            ));
        }
    }
    if !text.topics.contains_key(TOPIC_TRIAGE) {
        c.errors.push(error(
            cards,
            "/cards/topics",
            TOPIC_TRIAGE,
            "the patient-view topic is missing".into(),
            None,
        ));
    }
    if text.override_reasons.is_empty()
        || text
            .override_reasons
            .iter()
            .any(|o| o.code.trim().is_empty() || o.display.trim().is_empty())
    {
        c.errors.push(error(
            cards,
            "/cards/override_reasons",
            "override_reasons",
            "at least one override reason, each with a code and a display".into(),
            None,
        ));
    }
    let consult = &text.consult;
    c.template(
        cards,
        "/cards/consult/note",
        "consult",
        &consult.note,
        &["evaluation_id", "ruleset"],
    );
    c.template(
        cards,
        "/cards/consult/reason",
        "consult",
        &consult.reason,
        &["category"],
    );

    // Order cards.
    for (kind, t) in ORDER_CARD_KINDS.iter().zip([
        &text.order_cards.ecmo_ineligible,
        &text.order_cards.ecmo_reversible,
        &text.order_cards.inhaled_vasodilator,
        &text.order_cards.peep_increase_rv,
    ]) {
        let pointer = format!("/cards/order_cards/{kind}");
        if t.action.is_empty() {
            c.errors.push(error(
                cards,
                "/cards/order_cards",
                kind,
                format!("order card `{kind}` is missing"),
                None,
            ));
            continue;
        }
        if ECMO_ORDER_CARDS.contains(kind) && t.may_remove_order {
            c.errors.push(error(
                cards,
                &format!("{pointer}/may_remove_order"),
                kind,
                "an order card about ECMO may never offer to remove the order (§9 D12)".into(),
                Some("set `may_remove_order: false`".into()),
            ));
        }
        if !text.topics.contains_key(&t.topic) {
            c.errors.push(error(
                cards,
                &format!("{pointer}/topic"),
                kind,
                format!("topic `{}` is not in cards.topics", t.topic),
                None,
            ));
        }
        c.template(
            cards,
            &format!("{pointer}/action"),
            kind,
            &t.action,
            ORDER_NAMES,
        );
        c.template(
            cards,
            &format!("{pointer}/because"),
            kind,
            &t.because,
            ORDER_NAMES,
        );
        c.template(
            cards,
            &format!("{pointer}/detail"),
            kind,
            &t.detail,
            ORDER_NAMES,
        );
    }
}

fn closest_phrase(key: &str) -> Option<String> {
    Checker::closest(key, PHRASES.iter().map(|(k, _)| *k)).map(|c| format!("did you mean `{c}`?"))
}
