//! The engine's output: every field of knowledge base §6.2 `expected` (same names, same value
//! sets), plus the rule-set identity, the evaluation time, the evidence behind each figure and an
//! explanation of every conclusion (criteria with the values and times used).
//!
//! Figures in the §6.2 fields are rounded for display; every threshold was compared on the
//! unrounded value, which the explanations carry. Decimal places: `pf_ratio`, `sf_ratio`, `bmi`
//! and `fio2_challenge_slope` 1; `pao2_mmHg`, `paco2_mmHg`, `vt_ml_per_kg_pbw`,
//! `driving_pressure`, `crs_static`, `oxygenation_index`, `oxygen_saturation_index`,
//! `mechanical_power_j_min` and EOLIA durations 2; `fio2_fraction`, `ph`, `pbw_kg`,
//! `ventilatory_ratio`, `murray_score` and `recruitment_to_inflation.ri` 3;
//! `pf_ratio_precise` is not rounded.
//!
//! Names and texts that come from the rule set are shared `Arc<str>`s: building an assessment
//! copies pointers, not strings (it runs on every CDS Hooks call).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::derive::BloodGas;
use crate::eval::{Evaluation, NodeResult};
use crate::facts::{Fact, FactId, FactKind, FactValue};
use crate::physiology;
use crate::ruleset::condition::{Cond, Env, FactRef, Truth};
use crate::ruleset::describe::leaf_fact;
use crate::ruleset::{CatalogEntry, Emit, LeafText, Node, NodeKind, RuleSet, Urgency};
use crate::snapshot::PatientSnapshot;
use crate::timeline::{Millis, format_millis};

fn round(v: Option<f64>, decimals: i32) -> Option<f64> {
    let m = 10f64.powi(decimals);
    v.map(|x| (x * m).round() / m)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSetRef {
    pub id: Arc<str>,
    pub version: Arc<str>,
    pub sha256: Arc<str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Eolia {
    pub c1: bool,
    pub c2: bool,
    pub c3: bool,
    pub c1_duration_h: Option<f64>,
    pub c2_duration_h: Option<f64>,
    pub c3_duration_h: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecruitmentToInflationOut {
    pub assessable: bool,
    pub crs_low: Option<f64>,
    pub delta_eelv_ml: Option<f64>,
    pub vrec_ml: Option<f64>,
    pub crec: Option<f64>,
    pub ri: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationDetail {
    pub code: Arc<str>,
    pub display: Arc<str>,
    pub urgency: Urgency,
    /// Ids of the rules that gave it.
    pub rules: Vec<Arc<str>>,
}

/// What the rules that fired emitted.
struct Emitted {
    mechanisms: Vec<Arc<str>>,
    recommendations: Vec<RecommendationDetail>,
    consult_triggers: Vec<RecommendationDetail>,
    /// Data-quality items of rules that fired (`emits: {data_quality: ...}`), in rule order.
    data_quality: Vec<String>,
}

/// The values of one blood gas, as a series criterion saw them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BloodGasValues {
    pub pao2: Option<f64>,
    pub fio2: Option<f64>,
    pub pf_ratio: Option<f64>,
    pub paco2: Option<f64>,
    pub ph: Option<f64>,
}

/// A value as it was compared.
///
/// Serialised untagged; deserialised by hand (see [`crate::json`]) so that stored assessments
/// read back identically whatever serde_json features the binary was built with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CriterionValue {
    Null,
    Boolean(bool),
    Number(f64),
    /// A partial score: the true value lies in this range.
    Range {
        at_least: f64,
        at_most: f64,
    },
    Text(Arc<str>),
    Codes(Vec<Arc<str>>),
    BloodGas(BloodGasValues),
}

impl<'de> Deserialize<'de> for CriterionValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use serde_json::Value;
        let value = Value::deserialize(deserializer)?;
        let number = |v: &Value| v.as_f64().filter(|x| x.is_finite());
        Ok(match value {
            Value::Null => CriterionValue::Null,
            Value::Bool(b) => CriterionValue::Boolean(b),
            Value::Number(ref n) => CriterionValue::Number(
                number(&value)
                    .ok_or_else(|| D::Error::custom(format!("{n} is not a finite number")))?,
            ),
            Value::String(s) => CriterionValue::Text(s.into()),
            Value::Array(items) => CriterionValue::Codes(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(Arc::from(s)),
                        other => Err(D::Error::custom(format!(
                            "a list of codes holds {}",
                            crate::json::kind_of(&other)
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) if map.contains_key("at_least") || map.contains_key("at_most") => {
                // A lower bound (a partial score, §3.6/§6.1) has no upper bound: `at_most`
                // is written as null (JSON has no infinity) and read back as +∞.
                let at_most = match map.get("at_most") {
                    Some(Value::Null) => Some(f64::INFINITY),
                    other => other.and_then(number),
                };
                match (map.get("at_least").and_then(number), at_most, map.len()) {
                    (Some(at_least), Some(at_most), 2) => {
                        CriterionValue::Range { at_least, at_most }
                    }
                    _ => {
                        return Err(D::Error::custom(
                            "a range needs the numbers at_least and at_most (null: no upper bound)",
                        ));
                    }
                }
            }
            Value::Object(map) => CriterionValue::BloodGas(
                serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?,
            ),
        })
    }
}

/// One criterion as it was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// The fact tested (`group:<name>` for a group, `blood_gas` for a series entry).
    pub fact: Arc<str>,
    /// The test, e.g. `< 80 mm[Hg] (eolia_c2_pf_max)`.
    pub test: Arc<str>,
    /// The unrounded value compared (null = unknown).
    pub value: CriterionValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Cow<'static, str>>,
    /// When the value was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Arc<str>>,
    pub result: Truth,
}

/// Why the engine concluded something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// What is explained: `ecmo_category`, `recommendation:PRONE_POSITIONING`, `mechanism:shunt_likely`, a rule id...
    pub subject: Arc<str>,
    /// The rule-set item that decided it.
    pub rule: Arc<str>,
    pub kind: Cow<'static, str>,
    pub conclusion: CriterionValue,
    pub cites: Arc<str>,
    /// `<file>#<JSON pointer>` inside the rule-set version.
    pub source: Arc<str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<Criterion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Arc<str>>,
    /// Ids of the observations behind the criteria.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Arc<str>>,
}

/// The assessment of one snapshot at one time under one rule-set version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub ruleset: RuleSetRef,
    pub evaluated_at: String,
    #[serde(rename = "pao2_mmHg")]
    pub pao2_mmhg: Option<f64>,
    pub fio2_fraction: Option<f64>,
    pub pf_ratio: Option<f64>,
    pub pf_ratio_precise: Option<f64>,
    #[serde(rename = "paco2_mmHg")]
    pub paco2_mmhg: Option<f64>,
    pub ph: Option<f64>,
    pub sf_ratio: Option<f64>,
    /// S/F unrounded (thresholds compare this; `sf_ratio` is for display, §9 D13).
    #[serde(default)]
    pub sf_ratio_precise: Option<f64>,
    pub berlin_category: Option<Arc<str>>,
    pub global_category: Option<Arc<str>>,
    pub global_basis: Option<Arc<str>>,
    pub pbw_kg: Option<f64>,
    pub vt_ml_per_kg_pbw: Option<f64>,
    pub driving_pressure: Option<f64>,
    pub crs_static: Option<f64>,
    pub oxygenation_index: Option<f64>,
    pub oxygen_saturation_index: Option<f64>,
    pub ventilatory_ratio: Option<f64>,
    pub mechanical_power_j_min: Option<f64>,
    pub bmi: Option<f64>,
    pub murray_score: Option<f64>,
    pub murray_components: BTreeMap<Arc<str>, f64>,
    pub acp_risk_score: Option<f64>,
    pub acp_risk_complete: bool,
    pub acp_high_risk: Option<bool>,
    pub echo_acp: Option<bool>,
    pub rv_dysfunction: Option<bool>,
    pub resp_score: Option<f64>,
    pub resp_class: Option<Arc<str>>,
    pub resp_survival_pct: Option<f64>,
    pub resp_missing: Vec<Arc<str>>,
    pub eolia: Eolia,
    pub ecmo_category: Option<Arc<str>>,
    pub ecmo_reasons: Vec<Arc<str>>,
    pub ecmo_urgency: Option<Urgency>,
    pub prone_recommended: Option<bool>,
    pub fio2_challenge_slope: Option<f64>,
    pub recruitment_to_inflation: Option<RecruitmentToInflationOut>,
    pub mechanisms: Vec<Arc<str>>,
    pub recommendations: Vec<Arc<str>>,
    pub recommendation_details: Vec<RecommendationDetail>,
    /// Reasons to page the Lung Rescue Team (rule-set `consult_triggers`), in catalogue order,
    /// each with the highest urgency given and the rules that gave it. Empty: no page.
    #[serde(default)]
    pub consult_triggers: Vec<RecommendationDetail>,
    pub data_quality: Vec<String>,
    /// Observation ids behind each figure (fact name -> ids).
    pub evidence: BTreeMap<Cow<'static, str>, Vec<Arc<str>>>,
    pub explanations: Vec<Explanation>,
}

pub(crate) struct Inputs<'a> {
    pub rules: &'a RuleSet,
    pub snapshot: &'a PatientSnapshot,
    pub now: Millis,
    pub gases: &'a [BloodGas],
    pub eval: &'a Evaluation,
    pub data_quality: Vec<String>,
}

/// Builds the assessment; observation ids are shared once per evaluation.
struct Builder<'a> {
    rules: &'a RuleSet,
    eval: &'a Evaluation,
    gases: &'a [BloodGas],
    ids: Vec<Arc<str>>,
    /// Formatted times, each formatted once per evaluation.
    times: std::cell::RefCell<Vec<(Millis, Arc<str>)>>,
}

impl Inputs<'_> {
    pub fn build(self) -> Assessment {
        let b = Builder {
            rules: self.rules,
            eval: self.eval,
            gases: self.gases,
            ids: self
                .snapshot
                .observations
                .iter()
                .map(|o| Arc::from(o.id.as_str()))
                .collect(),
            times: std::cell::RefCell::new(Vec::new()),
        };
        let out = self.rules.out;
        let facts = &self.eval.facts;
        let num = |f: Fact| facts.num(f);
        let (murray_components, murray_score) = b.score_parts(out.murray);
        let (_, acp_known) = b.score_parts(out.acp_risk);
        let acp_complete = matches!(&self.eval.results[out.acp_risk], NodeResult::Score { missing, .. } if missing.is_empty());
        let resp_missing = match (
            &self.rules.nodes[out.resp].kind,
            &self.eval.results[out.resp],
        ) {
            (NodeKind::Score(s), NodeResult::Score { missing, .. }) => {
                missing.iter().map(|&i| s.items[i].id.clone()).collect()
            }
            _ => Vec::new(),
        };
        let resp_score = match &self.rules.nodes[out.resp].kind {
            NodeKind::Score(s) => facts.get(s.fact).number(),
            _ => None,
        };
        let ri = self
            .snapshot
            .maneuvers
            .as_ref()
            .and_then(|m| m.ri)
            .map(|m| {
                let r = physiology::recruitment_to_inflation(&m);
                RecruitmentToInflationOut {
                    assessable: r.assessable,
                    crs_low: round(r.crs_low, 2),
                    delta_eelv_ml: round(r.delta_eelv_ml, 1),
                    vrec_ml: round(r.vrec_ml, 1),
                    crec: round(r.crec, 2),
                    ri: round(r.ri, 3),
                }
            });
        let Emitted {
            mechanisms,
            recommendations: recommendation_details,
            consult_triggers,
            data_quality: emitted_quality,
        } = b.emitted();
        let mut data_quality = self.data_quality;
        data_quality.extend(emitted_quality);
        let mut evidence = BTreeMap::new();
        for &f in Fact::ALL {
            let ev = &facts.evidence[f as usize];
            if !ev.is_empty() && !facts.values[f as usize].is_null() {
                evidence.insert(
                    Cow::Borrowed(f.name()),
                    ev.iter().map(|&i| b.ids[i as usize].clone()).collect(),
                );
            }
        }
        Assessment {
            ruleset: self.rules.ident.clone(),
            evaluated_at: format_millis(self.now),
            pao2_mmhg: round(num(Fact::Pao2), 2),
            fio2_fraction: round(num(Fact::Fio2), 3),
            pf_ratio: round(num(Fact::PfRatio), 1),
            pf_ratio_precise: num(Fact::PfRatio),
            paco2_mmhg: round(num(Fact::Paco2), 2),
            ph: round(num(Fact::Ph), 3),
            // Display precision is rule-set data (§9 D13: 2 decimals from 0.2.0; 1 before).
            sf_ratio: round(
                num(Fact::SfRatio),
                self.rules
                    .param("sf_ratio_display_decimals")
                    .map_or(1, |p| p.value as i32),
            ),
            sf_ratio_precise: num(Fact::SfRatio),
            berlin_category: b.category(out.berlin_category),
            global_category: b.category(out.global_category),
            global_basis: b.category(out.global_basis),
            pbw_kg: round(num(Fact::PbwKg), 3),
            vt_ml_per_kg_pbw: round(num(Fact::VtPerKgPbw), 2),
            driving_pressure: round(num(Fact::DrivingPressure), 2),
            crs_static: round(num(Fact::CrsStatic), 2),
            oxygenation_index: round(num(Fact::OxygenationIndex), 2),
            oxygen_saturation_index: round(num(Fact::OxygenSaturationIndex), 2),
            ventilatory_ratio: round(num(Fact::VentilatoryRatio), 3),
            mechanical_power_j_min: round(num(Fact::MechanicalPower), 2),
            bmi: round(num(Fact::Bmi), 1),
            murray_score: round(murray_score, 3),
            murray_components,
            acp_risk_score: acp_known,
            acp_risk_complete: acp_complete,
            acp_high_risk: b.truth(out.acp_high_risk),
            echo_acp: b.truth(out.echo_acp),
            rv_dysfunction: b.truth(out.rv_dysfunction),
            resp_score,
            resp_class: b.category(out.resp_class),
            resp_survival_pct: b
                .attribute(out.resp_class, "survival_pct")
                .and_then(|v| v.as_f64()),
            resp_missing,
            eolia: Eolia {
                c1: b.truth(out.eolia[0]) == Some(true),
                c2: b.truth(out.eolia[1]) == Some(true),
                c3: b.truth(out.eolia[2]) == Some(true),
                c1_duration_h: round(b.duration(out.eolia_runs[0]), 2),
                c2_duration_h: round(b.duration(out.eolia_runs[1]), 2),
                c3_duration_h: round(b.duration(out.eolia_runs[2]), 2),
            },
            ecmo_category: b.category(out.ecmo_category),
            ecmo_reasons: b.reasons(out.ecmo_category),
            ecmo_urgency: b
                .attribute(out.ecmo_category, "urgency")
                .and_then(|v| v.as_str().and_then(Urgency::from_name)),
            prone_recommended: b.truth(out.prone_recommended),
            fio2_challenge_slope: round(num(Fact::Fio2ChallengeSlope), 1),
            recruitment_to_inflation: ri,
            recommendations: recommendation_details
                .iter()
                .map(|r| r.code.clone())
                .collect(),
            recommendation_details,
            consult_triggers,
            mechanisms,
            evidence,
            explanations: b.explanations(),
            data_quality,
        }
    }
}

impl Builder<'_> {
    fn time_text(&self, t: Millis) -> Arc<str> {
        let mut cache = self.times.borrow_mut();
        if let Some((_, text)) = cache.iter().find(|(at, _)| *at == t) {
            return text.clone();
        }
        let text: Arc<str> = Arc::from(format_millis(t));
        cache.push((t, text.clone()));
        text
    }

    fn truth(&self, node: usize) -> Option<bool> {
        match &self.eval.results[node] {
            NodeResult::Rule(t) => t.as_fact().boolean(),
            _ => None,
        }
    }

    fn category(&self, node: usize) -> Option<Arc<str>> {
        let NodeKind::Classification(c) = &self.rules.nodes[node].kind else {
            return None;
        };
        match self.eval.facts.get(c.fact) {
            FactValue::Category(i) => Some(c.values[i as usize].clone()),
            _ => None,
        }
    }

    fn outcome(&self, node: usize) -> Option<&crate::ruleset::Outcome> {
        let (NodeKind::Classification(c), NodeResult::Classification { case }) =
            (&self.rules.nodes[node].kind, &self.eval.results[node])
        else {
            return None;
        };
        Some(case.map_or(&c.otherwise, |i| &c.cases[i].outcome))
    }

    fn attribute(&self, node: usize, name: &str) -> Option<&serde_json::Value> {
        self.outcome(node).and_then(|o| o.attributes.get(name))
    }

    /// The outcome's fixed reasons, then the reasons of the fired rules of its `reasons_from` groups.
    fn reasons(&self, node: usize) -> Vec<Arc<str>> {
        let Some(o) = self.outcome(node) else {
            return Vec::new();
        };
        let mut out = o.reasons.clone();
        for &g in &o.reasons_from {
            for &r in &self.rules.groups[g].rules {
                if let (NodeKind::Rule(rule), NodeResult::Rule(Truth::True)) =
                    (&self.rules.nodes[r].kind, &self.eval.results[r])
                    && !out.contains(&rule.reason)
                {
                    out.push(rule.reason.clone());
                }
            }
        }
        out
    }

    fn duration(&self, node: usize) -> Option<f64> {
        let NodeKind::Series(s) = &self.rules.nodes[node].kind else {
            return None;
        };
        self.eval.facts.get(s.fact_duration).number()
    }

    /// (components by item id, aggregate of the known items when the score is computable).
    fn score_parts(&self, node: usize) -> (BTreeMap<Arc<str>, f64>, Option<f64>) {
        let (
            NodeKind::Score(s),
            NodeResult::Score {
                components,
                known_value,
                ..
            },
        ) = (&self.rules.nodes[node].kind, &self.eval.results[node])
        else {
            return (BTreeMap::new(), None);
        };
        (
            components
                .iter()
                .map(|&(i, b)| (s.items[i].id.clone(), s.items[i].bands[b].points))
                .collect(),
            *known_value,
        )
    }

    /// Mechanisms, recommendations and consult triggers of fired rules, in catalogue order.
    fn emitted(&self) -> Emitted {
        let mut mech = vec![false; self.rules.mechanisms.len()];
        let mut recs: Vec<Option<(Urgency, Vec<Arc<str>>)>> =
            vec![None; self.rules.recommendations.len()];
        let mut consults: Vec<Option<(Urgency, Vec<Arc<str>>)>> =
            vec![None; self.rules.consult_triggers.len()];
        let mut emitted_quality: Vec<String> = Vec::new();
        for (n, node) in self.rules.nodes.iter().enumerate() {
            let (NodeKind::Rule(r), NodeResult::Rule(Truth::True)) =
                (&node.kind, &self.eval.results[n])
            else {
                continue;
            };
            let (slot, urgency) = match r.emits {
                Some(Emit::Mechanism { index }) => {
                    mech[index] = true;
                    continue;
                }
                Some(Emit::DataQuality { index }) => {
                    let code = self.rules.rule_data_quality[index].to_string();
                    if !emitted_quality.contains(&code) {
                        emitted_quality.push(code);
                    }
                    continue;
                }
                Some(Emit::Recommendation { index, urgency }) => (&mut recs[index], urgency),
                Some(Emit::Consult { index, urgency }) => (&mut consults[index], urgency),
                None => continue,
            };
            let entry = slot.get_or_insert((urgency, Vec::new()));
            entry.0 = entry.0.max(urgency);
            entry.1.push(node.id.clone());
        }
        let details = |found: Vec<Option<(Urgency, Vec<Arc<str>>)>>, catalogue: &[CatalogEntry]| {
            found
                .into_iter()
                .zip(catalogue)
                .filter_map(|(r, entry)| {
                    r.map(|(urgency, rules)| RecommendationDetail {
                        code: entry.code.clone(),
                        display: entry.display.clone(),
                        urgency,
                        rules,
                    })
                })
                .collect()
        };
        Emitted {
            mechanisms: mech
                .iter()
                .zip(&self.rules.mechanisms)
                .filter(|(on, _)| **on)
                .map(|(_, m)| m.code.clone())
                .collect(),
            recommendations: details(recs, &self.rules.recommendations),
            consult_triggers: details(consults, &self.rules.consult_triggers),
            data_quality: emitted_quality,
        }
    }

    /// One explanation per classification and score, per series and output rule, and per
    /// other rule that fired.
    fn explanations(&self) -> Vec<Explanation> {
        let out = self.rules.out;
        let always = |n: usize| {
            out.eolia.contains(&n)
                || out.eolia_runs.contains(&n)
                || [
                    out.prone_recommended,
                    out.acp_high_risk,
                    out.echo_acp,
                    out.rv_dysfunction,
                ]
                .contains(&n)
        };
        let mut list = Vec::with_capacity(self.rules.nodes.len());
        for (n, node) in self.rules.nodes.iter().enumerate() {
            let e = match (&node.kind, &self.eval.results[n]) {
                (NodeKind::Classification(c), NodeResult::Classification { case }) => {
                    let (criteria, ev) = match case {
                        Some(i) => self.criteria(&c.cases[*i].when, &c.cases[*i].texts),
                        None => (Vec::new(), Vec::new()),
                    };
                    let conclusion = self
                        .category(n)
                        .map_or(CriterionValue::Null, CriterionValue::Text);
                    self.explanation(
                        node,
                        "classification",
                        conclusion,
                        criteria,
                        self.reasons(n),
                        ev,
                    )
                }
                (
                    NodeKind::Score(s),
                    NodeResult::Score {
                        components,
                        missing,
                        ..
                    },
                ) => {
                    let mut criteria = Vec::with_capacity(s.items.len());
                    for &(i, b) in components {
                        let item = &s.items[i];
                        let test = item.band_texts[b].clone();
                        criteria.push(self.fact_criterion(item.fact, test, Truth::True));
                    }
                    for &i in missing {
                        let item = &s.items[i];
                        let test = item.missing_text.clone();
                        criteria.push(self.fact_criterion(item.fact, test, Truth::Unknown));
                    }
                    let ev = self.evidence_of(&[s.fact]);
                    self.explanation(
                        node,
                        "score",
                        fact_value(self.eval.facts.get(s.fact)),
                        criteria,
                        Vec::new(),
                        ev,
                    )
                }
                (NodeKind::Series(s), NodeResult::Series { run, latest }) => {
                    if latest.is_none() && !always(n) {
                        continue;
                    }
                    let criteria = run
                        .iter()
                        .map(|&i| self.gas_criterion(&s.qualifies, &self.gases[i]))
                        .collect();
                    let ev = self.evidence_of(&[s.fact_duration]);
                    self.explanation(
                        node,
                        "series",
                        fact_value(self.eval.facts.get(s.fact_duration)),
                        criteria,
                        Vec::new(),
                        ev,
                    )
                }
                (NodeKind::Rule(r), NodeResult::Rule(t)) => {
                    if *t != Truth::True && !always(n) {
                        continue;
                    }
                    let (mut criteria, ev) = self.criteria(&r.when, &r.texts);
                    for f in &r.requires {
                        if self.eval.facts.get(*f).is_null() {
                            criteria.insert(
                                0,
                                self.fact_criterion(*f, Arc::from("required"), Truth::Unknown),
                            );
                        }
                    }
                    self.explanation(
                        node,
                        "rule",
                        fact_value(t.as_fact()),
                        criteria,
                        Vec::new(),
                        ev,
                    )
                }
                _ => continue,
            };
            list.push(e);
        }
        list
    }

    fn explanation(
        &self,
        node: &Node,
        kind: &'static str,
        conclusion: CriterionValue,
        criteria: Vec<Criterion>,
        reasons: Vec<Arc<str>>,
        evidence: Vec<Arc<str>>,
    ) -> Explanation {
        Explanation {
            subject: node.subject.clone(),
            rule: node.id.clone(),
            kind: Cow::Borrowed(kind),
            conclusion,
            cites: node.cites.clone(),
            source: node.source.clone(),
            criteria,
            reasons,
            evidence,
        }
    }

    /// Criteria of a condition (with their precomputed texts) and the observations behind them.
    fn criteria(&self, cond: &Cond, texts: &[LeafText]) -> (Vec<Criterion>, Vec<Arc<str>>) {
        let mut leaves = Vec::new();
        cond.leaves(false, &mut leaves);
        let env = Env {
            facts: &self.eval.facts.values,
            abg: None,
            groups_fired: &self.eval.groups_fired,
        };
        let mut facts_read: Vec<FactId> = Vec::new();
        let criteria = leaves
            .iter()
            .zip(texts)
            .map(|((leaf, _), text)| {
                let result = leaf.eval(&env);
                match (leaf, leaf_fact(leaf)) {
                    (Cond::GroupFired(g), _) => Criterion {
                        fact: text.fact.clone(),
                        test: text.test.clone(),
                        value: CriterionValue::Boolean(self.eval.groups_fired[*g]),
                        unit: None,
                        at: None,
                        result,
                    },
                    (_, Some(FactRef::Global(id))) => {
                        facts_read.push(id);
                        let mut c = self.fact_criterion(id, text.test.clone(), result);
                        c.unit = text.unit.map(Cow::Borrowed);
                        c
                    }
                    _ => Criterion {
                        fact: text.fact.clone(),
                        test: text.test.clone(),
                        value: CriterionValue::Null,
                        unit: None,
                        at: None,
                        result,
                    },
                }
            })
            .collect();
        (criteria, self.evidence_of(&facts_read))
    }

    fn gas_criterion(&self, qualifies: &Cond, g: &BloodGas) -> Criterion {
        let abg = g.values();
        let env = Env {
            facts: &self.eval.facts.values,
            abg: Some(&abg),
            groups_fired: &self.eval.groups_fired,
        };
        Criterion {
            fact: Arc::from("blood_gas"),
            test: Arc::from("qualifies"),
            value: CriterionValue::BloodGas(BloodGasValues {
                pao2: g.pao2,
                fio2: g.fio2,
                pf_ratio: g.pf_ratio(),
                paco2: g.paco2,
                ph: g.ph,
            }),
            unit: None,
            at: Some(self.time_text(g.time)),
            result: qualifies.eval(&env),
        }
    }

    fn fact_criterion(&self, id: FactId, test: Arc<str>, result: Truth) -> Criterion {
        let info = &self.rules.facts[id.index()];
        let v = self.eval.facts.get(id);
        let value = match (v, &info.kind) {
            (FactValue::Category(i), FactKind::Category { values }) => {
                CriterionValue::Text(values[i as usize].clone())
            }
            (FactValue::Set(bits), FactKind::Set { values }) => CriterionValue::Codes(
                values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, s)| s.clone())
                    .collect(),
            ),
            (other, _) => fact_value(other),
        };
        Criterion {
            fact: info.name.clone(),
            test,
            value,
            unit: match info.kind {
                FactKind::Number { unit } if unit != "1" => Some(Cow::Borrowed(unit)),
                _ => None,
            },
            at: self.eval.facts.times[id.index()].map(|t| self.time_text(t)),
            result,
        }
    }

    /// Observation ids behind the given facts, first seen first.
    fn evidence_of(&self, facts: &[FactId]) -> Vec<Arc<str>> {
        let mut seen: Vec<u32> = Vec::new();
        for f in facts {
            for &e in &self.eval.facts.evidence[f.index()] {
                if !seen.contains(&e) {
                    seen.push(e);
                }
            }
        }
        seen.into_iter()
            .map(|i| self.ids[i as usize].clone())
            .collect()
    }
}

fn fact_value(v: FactValue) -> CriterionValue {
    match v {
        FactValue::Null => CriterionValue::Null,
        FactValue::Number(x) => CriterionValue::Number(x),
        FactValue::Interval { lo, hi } => CriterionValue::Range {
            at_least: lo,
            at_most: hi,
        },
        FactValue::Boolean(b) => CriterionValue::Boolean(b),
        FactValue::Category(i) => CriterionValue::Number(f64::from(i)),
        FactValue::Set(bits) => CriterionValue::Number(bits as f64),
    }
}
