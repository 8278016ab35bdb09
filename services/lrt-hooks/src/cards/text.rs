//! Every text the cards show, and the small policy tables that pick between them (indicator by
//! ECMO category, ServiceRequest priority by urgency), kept apart from the logic in
//! [`super`]. A wording change is a change to this file only.
//!
//! Templates use `{name}` placeholders, filled by [`fill`]. Summaries are cut to fit the
//! 140-character limit after filling ([`crate::model::Summary::truncated`]).
//! Machine codes (reason codes, data-quality items) are shown in Markdown code spans; texts
//! from the rule set (recommendation, mechanism and hard-stop displays) are shown as written.

use crate::model::Indicator;

/// The card `extension` key (reverse-domain, checklist A.3).
pub const EXTENSION_KEY: &str = "org.lrt-cds";

/// `card.source.label`.
pub const SOURCE_LABEL: &str = "Lung Rescue Team rules {version}";

/// `card.source.topic` code system.
pub const TOPIC_SYSTEM: &str = "urn:lrt:card-topic";

/// Card topics: (code, display).
pub const TOPIC_TRIAGE: (&str, &str) = ("lrt-triage", "Lung Rescue Team triage");
pub const TOPIC_ECMO_ORDER: (&str, &str) = ("ecmo-order", "ECMO order check");
pub const TOPIC_VASODILATOR_ORDER: (&str, &str) = (
    "inhaled-vasodilator-order",
    "Inhaled vasodilator order check",
);
pub const TOPIC_PEEP_ORDER: (&str, &str) = ("peep-order", "PEEP order check");

/// `card.overrideReasons` code system and reasons: (code, display). `display` is required.
pub const OVERRIDE_SYSTEM: &str = "urn:lrt:override-reason";
pub const OVERRIDE_REASONS: &[(&str, &str)] = &[
    (
        "already-discussed",
        "Already discussed with the LRT or the ECMO centre",
    ),
    ("data-not-current", "The values shown are not current"),
    (
        "goals-of-care",
        "Not consistent with the patient's goals of care",
    ),
    (
        "clinical-judgement",
        "Clinical judgement: does not apply to this patient",
    ),
];

/// How the patient-view card looks for each ECMO category.
pub struct CategoryCard {
    pub category: &'static str,
    pub indicator: Indicator,
    /// Raise `info` to `warning` when a recommendation of urgency urgent or emergent exists
    /// (an LRT consult is recommended).
    pub escalate_on_urgent: bool,
    /// Summary template: `{reasons}` (short texts of the ECMO reasons), `{pf}`, `{recs}` (number
    /// of recommendations).
    pub summary: &'static str,
    /// First line of the detail: `{category}`, `{urgency}`.
    pub headline: &'static str,
}

/// Indicator policy (checklist §4 "Cards"): critical for an ECMO-eligible patient, warning for
/// borderline and whenever an urgent recommendation (LRT consult) stands, info for insufficient
/// data (naming what is missing) and no indication.
pub const CATEGORY_CARDS: &[CategoryCard] = &[
    CategoryCard {
        category: "eligible",
        indicator: Indicator::Critical,
        escalate_on_urgent: false,
        summary: "LRT: meets ECMO criteria ({reasons}); contact the ECMO centre now",
        headline: "**ECMO category: eligible** (urgency: {urgency}). An EOLIA criterion is met and nothing stands against ECMO.",
    },
    CategoryCard {
        category: "borderline",
        indicator: Indicator::Warning,
        escalate_on_urgent: false,
        summary: "LRT: borderline for ECMO ({reasons}); discuss with the ECMO centre this shift",
        headline: "**ECMO category: borderline** (urgency: {urgency}). Discuss with the ECMO centre now.",
    },
    CategoryCard {
        category: "ineligible",
        indicator: Indicator::Info,
        escalate_on_urgent: true,
        summary: "LRT: ECMO contraindicated ({reasons}); rescue measures may still apply",
        headline: "**ECMO category: ineligible**: a documented hard stop contraindicates ECMO.",
    },
    CategoryCard {
        category: "insufficient_data",
        indicator: Indicator::Info,
        escalate_on_urgent: false,
        summary: "LRT: cannot assess ECMO eligibility, missing {reasons}",
        headline: "**ECMO category: insufficient data**: no valid PaO2 with a paired FiO2; nothing is guessed.",
    },
    CategoryCard {
        category: "not_indicated",
        indicator: Indicator::Info,
        escalate_on_urgent: true,
        summary: "LRT: no ECMO indication now (P/F {pf}); rescue recommendations: {recs}",
        headline: "**ECMO category: not indicated** now.",
    },
];

/// Used when the assessment has no ECMO category (it always has one with the shipped rules).
pub const UNKNOWN_CATEGORY: CategoryCard = CategoryCard {
    category: "unknown",
    indicator: Indicator::Info,
    escalate_on_urgent: false,
    summary: "LRT: no ECMO category could be determined",
    headline: "**ECMO category: not determined.**",
};

/// Short (summary) and long (detail) texts of ECMO reason codes. `hard_stop:<code>` reasons use
/// the rule set's hard-stop display instead; an unknown code is shown as a code span.
pub const REASONS: &[(&str, &str, &str)] = &[
    (
        "eolia_c1",
        "EOLIA C1",
        "EOLIA criterion 1: P/F < 50 mmHg at FiO2 ≥ 0.8 for more than 3 h",
    ),
    (
        "eolia_c2",
        "EOLIA C2",
        "EOLIA criterion 2: P/F < 80 mmHg at FiO2 ≥ 0.8 for more than 6 h",
    ),
    (
        "eolia_c3",
        "EOLIA C3",
        "EOLIA criterion 3: pH < 7.25 with PaCO2 ≥ 60 mmHg for more than 6 h, RR ≥ 35, Pplat ≤ 32",
    ),
    (
        "relative_ci:age",
        "age",
        "Relative contraindication: age at or above the rule set's threshold",
    ),
    (
        "relative_ci:mv_gt_7_days",
        "MV > 7 days",
        "Relative contraindication: mechanical ventilation for more than 7 days",
    ),
    (
        "relative_ci:immunocompromised",
        "immunocompromised",
        "Relative contraindication: immunocompromised",
    ),
    (
        "relative_ci:bmi_gt_45",
        "BMI > 45",
        "Relative contraindication: BMI above 45 kg/m²",
    ),
    (
        "relative_ci:intracranial_hemorrhage",
        "intracranial haemorrhage",
        "Relative contraindication: intracranial haemorrhage",
    ),
    (
        "relative_ci:anticoagulation_contraindicated",
        "no anticoagulation",
        "Relative contraindication: anticoagulation contraindicated",
    ),
    (
        "relative_ci:chronic_resp_failure_home_o2",
        "chronic respiratory failure",
        "Relative contraindication: chronic respiratory failure on home oxygen or NIV",
    ),
    (
        "relative_ci:resp_class_iv_v",
        "RESP class IV–V",
        "Relative contraindication: RESP risk class IV or V",
    ),
    (
        "gap:peep_lt_10",
        "PEEP < 10",
        "Optimisation gap: PEEP below 10 cmH2O with a hypoxaemic EOLIA criterion",
    ),
    (
        "gap:vt_gt_8_ml_per_kg_pbw",
        "Vt > 8 mL/kg PBW",
        "Optimisation gap: tidal volume above 8 mL/kg predicted body weight",
    ),
    (
        "gap:no_prone_trial",
        "no prone trial",
        "Optimisation gap: no prone trial although prone positioning is not contraindicated",
    ),
    (
        "near:pf_lt_80_fio2_ge_0.8_duration_not_met",
        "P/F < 80 at FiO2 ≥ 0.8 not yet 6 h",
        "Near criterion: the latest blood gas has P/F < 80 at FiO2 ≥ 0.8, but not yet for more than 6 h",
    ),
    (
        "near:ph_lt_7.25_paco2_ge_60_conditions_not_met",
        "pH < 7.25 with PaCO2 ≥ 60",
        "Near criterion: the latest blood gas has pH < 7.25 with PaCO2 ≥ 60, but EOLIA C3's duration, RR or Pplat conditions are not met",
    ),
    (
        "near:murray_ge_3",
        "Murray ≥ 3",
        "Near criterion: Murray lung injury score ≥ 3.0 (CESAR referral threshold)",
    ),
    (
        "missing:pao2",
        "a valid PaO2",
        "No valid arterial PaO2 (absent, stale or conflicting; see data quality)",
    ),
    (
        "missing_or_unpaired:fio2",
        "an FiO2 paired with the PaO2",
        "No FiO2 recorded at or within the pairing window before the PaO2",
    ),
];

/// Detail section titles and labels.
pub const VALUES_TITLE: &str = "**Values used**";
pub const VALUES_HEADER: &str = "| | value | time (UTC) |\n|---|---|---|";
pub const NO_VALUE: &str = "not available";
pub const LABEL_PF: &str = "P/F";
pub const LABEL_PAO2: &str = "PaO2";
pub const LABEL_FIO2: &str = "FiO2";
pub const LABEL_PEEP: &str = "PEEP";
pub const LABEL_PACO2: &str = "PaCO2";
pub const LABEL_PH: &str = "pH";
pub const REASONS_TITLE: &str = "**Why**";
pub const CATEGORY_LINE: &str = "- Berlin category: {berlin}; Global definition: {global}";
pub const SCORES_LINE: &str = "- Murray score: {murray}; RESP score: {resp}";
pub const RESP_CLASS: &str = "{score} (class {class}, predicted survival {survival} %)";
pub const RESP_MISSING: &str = "not computable (missing: {missing})";
pub const EOLIA_LINE: &str = "- EOLIA: C1 {c1}; C2 {c2}; C3 {c3}";
pub const EOLIA_MET: &str = "met ({hours} h)";
pub const EOLIA_NOT_MET: &str = "not met";
pub const EOLIA_RUNNING: &str = "not met (run {hours} h)";
pub const MECHANISMS_LINE: &str = "- Mechanisms: {mechanisms}";
pub const NONE: &str = "none";
pub const RECOMMENDATIONS_TITLE: &str = "**Recommendations**";
pub const RECOMMENDATION_ITEM: &str = "{n}. {display} ({urgency})";
pub const NO_RECOMMENDATIONS: &str = "No rescue recommendation.";
pub const DATA_QUALITY_TITLE: &str = "**Data quality**";
pub const DATA_QUALITY_NONE: &str = "No data-quality issue.";
pub const FOOTER: &str =
    "Rule set {ruleset}, evaluated at {evaluated_at}, evaluation {evaluation_id}.";
pub const DRAFT_WARNING: &str = "The rule set is a **draft**: not for clinical use until released.";

/// The consult suggestion.
pub const CONSULT_LABEL: &str = "Request LRT consult";
pub const CONSULT_DESCRIPTION: &str = "Create a Lung Rescue Team consult request";
pub const CONSULT_NOTE: &str =
    "Requested from LRT evaluation {evaluation_id} (rule set {ruleset}).";
pub const CONSULT_REASON: &str = "ECMO category: {category}";

/// The suggestion that removes a draft order.
pub const REMOVE_ORDER_LABEL: &str = "Remove the draft order: {order}";
pub const REMOVE_ORDER_DESCRIPTION: &str = "Remove the draft order {reference}";

/// The link to the evaluation.
pub const EVALUATION_LINK_LABEL: &str = "Open this LRT evaluation";

/// ServiceRequest.priority of the consult by the highest recommendation urgency.
pub const PRIORITY_BY_URGENCY: &[(&str, &str)] = &[
    ("emergent", "stat"),
    ("urgent", "urgent"),
    ("routine", "routine"),
];
pub const DEFAULT_PRIORITY: &str = "routine";

/// Order cards: (summary template, detail headline template). Placeholders: `{order}` (the
/// draft order's text), `{reasons}`, `{category}`.
pub const ECMO_INELIGIBLE_SUMMARY: &str =
    "ECMO order ({order}): ECMO is contraindicated by a documented hard stop ({reasons})";
pub const ECMO_INELIGIBLE_DETAIL: &str = "The draft order **{order}** asks for ECMO, but the LRT assessment classes the patient **ineligible**: {reasons}. Review the goals of care with the team before proceeding.";
pub const ECMO_REVERSIBLE_SUMMARY: &str =
    "ECMO order ({order}) before reversible causes are addressed: {reasons}";
pub const ECMO_REVERSIBLE_DETAIL: &str = "The draft order **{order}** asks for ECMO while reversible physiology has not been addressed: {reasons}. EOLIA and ELSO expect optimised ventilation (PEEP ≥ 10, Vt ≤ 8 mL/kg PBW, a prone trial unless contraindicated) before ECMO. An LRT consult can address them now.";
pub const VASODILATOR_SUMMARY: &str =
    "Inhaled vasodilator ({order}) ordered without documented RV dysfunction";
pub const VASODILATOR_DETAIL: &str = "The draft order **{order}** is an inhaled pulmonary vasodilator. They improve P/F but show no mortality benefit; the LRT rule offers a trial only with documented right-ventricular dysfunction (echo acute cor pulmonale or TAPSE < 17 mm) and P/F < 150 (knowledge base §3.6). Right-ventricular dysfunction: {rv}.";
pub const RV_NOT_ASSESSED: &str = "not assessed (no valid echocardiography)";
pub const RV_ABSENT: &str = "not present on the latest echocardiography";
pub const PEEP_RV_SUMMARY: &str =
    "PEEP increase ({order}) with documented right-ventricular failure";
pub const PEEP_RV_DETAIL: &str = "The draft order **{order}** raises PEEP while right-ventricular dysfunction is documented. Higher PEEP raises RV afterload; RV-protective ventilation limits plateau and driving pressure and PaCO2 (knowledge base §3.6).";

/// Fills `{name}` placeholders in one pass (a value holding `{x}` is never filled again); an
/// unknown placeholder stays as written.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_end = after.find('}');
        match name_end.and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (end, *v))
        }) {
            Some((end, value)) => {
                out.push_str(value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_one_pass() {
        assert_eq!(fill("a {x} b {y}", &[("x", "1"), ("y", "2")]), "a 1 b 2");
        assert_eq!(fill("{x}{x}", &[("x", "{y}"), ("y", "no")]), "{y}{y}");
        assert_eq!(fill("{unknown} {", &[("x", "1")]), "{unknown} {");
        assert_eq!(fill("é{x}ü", &[("x", "ß")]), "éßü");
    }

    #[test]
    fn every_category_has_a_card_and_every_override_reason_a_display() {
        for c in [
            "eligible",
            "borderline",
            "ineligible",
            "insufficient_data",
            "not_indicated",
        ] {
            assert!(CATEGORY_CARDS.iter().any(|r| r.category == c), "{c}");
        }
        assert!(
            OVERRIDE_REASONS
                .iter()
                .all(|(c, d)| !c.is_empty() && !d.is_empty())
        );
        let crit = CATEGORY_CARDS
            .iter()
            .find(|r| r.category == "eligible")
            .map(|r| r.indicator);
        assert_eq!(crit, Some(Indicator::Critical));
    }
}
