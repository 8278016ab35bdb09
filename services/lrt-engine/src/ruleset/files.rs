//! The shape of rule files, as read from YAML (after JSON Schema validation).
//!
//! Conditions stay `serde_json::Value` here: they are compiled by hand in
//! [`super::condition`] so that every semantic error can name its exact JSON pointer.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

/// One YAML file of a rule-set version. Every section is optional; sections merge across files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Only in `ruleset.yaml`: the manifest.
    #[serde(default)]
    pub ruleset: Option<Manifest>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterDef>,
    #[serde(default)]
    pub concepts: BTreeMap<String, ConceptDef>,
    #[serde(default)]
    pub hard_stops: Vec<CatalogEntry>,
    #[serde(default)]
    pub mechanisms: Vec<CatalogEntry>,
    #[serde(default)]
    pub recommendations: Vec<CatalogEntry>,
    /// Reasons to page the Lung Rescue Team (rules emit them with an urgency).
    #[serde(default)]
    pub consult_triggers: Vec<CatalogEntry>,
    #[serde(default)]
    pub series: Vec<SeriesDef>,
    #[serde(default)]
    pub scores: Vec<ScoreDef>,
    #[serde(default)]
    pub classifications: Vec<ClassificationDef>,
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    /// Which codes of FHIR conditions, procedures, medications and flags set which context.
    #[serde(default)]
    pub codesets: BTreeMap<String, CodeSetDef>,
    /// Codes known to the rule set but deliberately not mapped, with the reason.
    #[serde(default)]
    pub unmapped_codes: Vec<UnmappedCodeDef>,
    /// What the clinician reads: the reasons catalogue (reason code -> texts). Kept as JSON here;
    /// the card renderer (lrt-hooks) compiles and checks it against the rule set.
    #[serde(default)]
    pub reason_texts: Option<Value>,
    /// Data-quality code -> sentence.
    #[serde(default)]
    pub data_quality_texts: Option<Value>,
    /// Card templates.
    #[serde(default)]
    pub cards: Option<Value>,
    /// Order terminology of the order hooks.
    #[serde(default)]
    pub order_codes: Option<Value>,
}

/// The FHIR resources a code set reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// Condition resources (problem list, encounter diagnoses).
    Conditions,
    /// Procedure resources.
    Procedures,
    /// MedicationAdministration and MedicationRequest resources.
    Medications,
    /// Flag resources.
    Flags,
}

impl ResourceKind {
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::Conditions => "conditions",
            ResourceKind::Procedures => "procedures",
            ResourceKind::Medications => "medications",
            ResourceKind::Flags => "flags",
        }
    }
}

/// What a context flag is when no resource matches although the resources were searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenAbsent {
    /// Not documented means no (e.g. no immunosuppression on the problem list).
    False,
    /// Not documented means unknown (null).
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeMatch {
    /// The code as written.
    #[default]
    Exact,
    /// The code and every code that starts with it (ICD-10 `J18` matches `J18.9`; ATC `M03AC`).
    Prefix,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCodeDef {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default, rename = "match")]
    pub match_: CodeMatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSetDef {
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    pub from: ResourceKind,
    #[serde(default)]
    pub when_absent: WhenAbsent,
    /// Conditions only: also count resolved / inactive ones (a past cardiac arrest).
    #[serde(default)]
    pub include_resolved: bool,
    /// Conditions only: also count a resolved / inactive one dated (onset, else recorded) at
    /// most this many days before `now` (§9 D9: intracranial haemorrhage within 30 days).
    #[serde(default)]
    pub resolved_within_days: Option<f64>,
    pub codes: Vec<SetCodeDef>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmappedCodeDef {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
    pub reason: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub status: ReleaseStatus,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub knowledge_base: KnowledgeBaseRef,
    /// Rule-file format (default 1). From 2 on, `lrt rules check` requires `evidence` and
    /// `cites` on every item that feeds `ecmo_category` or emits a recommendation or consult.
    #[serde(default)]
    pub format: Option<u32>,
}

impl Manifest {
    /// The rule-file format of this version (1 when the manifest does not say).
    pub fn format(&self) -> u32 {
        self.format.unwrap_or(1)
    }
}

/// The knowledge base's evidence tag of an item (its sections and items carry `[V]`, `[M]`,
/// `[H]`). An item that combines sources takes `M` if any is `M`, else `H` if any is `H`, else `V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Evidence {
    /// Verified against the cited source.
    V,
    /// From memory: to be verified against the source.
    M,
    /// Heuristic or local policy.
    H,
}

impl Evidence {
    pub fn name(self) -> &'static str {
        match self {
            Evidence::V => "V",
            Evidence::M => "M",
            Evidence::H => "H",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Draft,
    Released,
    Retired,
}

impl ReleaseStatus {
    pub fn name(self) -> &'static str {
        match self {
            ReleaseStatus::Draft => "draft",
            ReleaseStatus::Released => "released",
            ReleaseStatus::Retired => "retired",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeBaseRef {
    /// The knowledge-base version this rule set encodes (e.g. `lrt-ruleset-0.1-draft`).
    pub version: String,
    /// Sections that rules may cite (`§2.7`, ...).
    pub sections: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterDef {
    pub value: f64,
    pub unit: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptDef {
    /// Must equal the engine's canonical unit for the concept (a self-check for authors).
    pub unit: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// A parameter name (window in h or min), `unlimited`, or `paired` (FiO2 only).
    pub validity: String,
    #[serde(default)]
    pub plausible: Option<Range>,
    /// In preference order: the first code present at an instant is used (§6.1).
    pub codes: Vec<CodeDef>,
    /// Concepts this one wins over when one observation carries codes of both (an SpO2
    /// observation coded 59408-5 and 2708-6 is SpO2, not SaO2).
    #[serde(default)]
    pub supersedes: Vec<String>,
    /// Yes/no concepts only: the coded values (`valueCodeableConcept`) that mean yes; any other
    /// coded value means no (§9 D14: the prone body position).
    #[serde(default)]
    pub true_values: Vec<CodeDef>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeDef {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub code: Arc<str>,
    pub display: Arc<str>,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesDef {
    pub id: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// What the series runs over; v1 knows `blood_gases`.
    pub over: String,
    /// Parameter: how far back from `now` to look (h).
    pub lookback: String,
    /// Parameter: a longer gap between consecutive entries breaks the run (h).
    pub max_gap: String,
    /// Parameter: the latest entry must be at most this old (h).
    pub latest_max_age: String,
    pub qualifies: Value,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Sum,
    Mean,
}

/// What a score is when some items are unknown but at least `min_items` are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partial {
    /// The aggregate of the known items (Murray: the mean of >= 3 components).
    Value,
    /// A lower bound: the known items' sum (plus the missing items' minimum); the true score
    /// may be any higher value (ACP, §3.6: "with missing items the score is a lower bound").
    #[serde(rename = "lower_bound")]
    LowerBound,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreDef {
    pub id: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    pub aggregate: Aggregate,
    /// Fewer known items than this gives `null`. Default: all items.
    #[serde(default)]
    pub min_items: Option<usize>,
    #[serde(default = "default_partial")]
    pub partial: Partial,
    pub items: Vec<ScoreItemDef>,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_partial() -> Partial {
    Partial::Value
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreItemDef {
    pub id: String,
    pub fact: String,
    /// Unit of the band thresholds; must equal the fact's unit (numeric facts only).
    #[serde(default)]
    pub unit: Option<String>,
    /// First matching band gives the points.
    pub bands: Vec<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationDef {
    pub id: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// Evaluated in order; the first case whose condition is definitely true wins.
    pub cases: Vec<CaseDef>,
    pub otherwise: OutcomeDef,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDef {
    /// The category; `null` for "not classifiable".
    pub value: Option<String>,
    pub when: Value,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub reasons_from: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeDef {
    pub value: Option<String>,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default)]
    pub reasons_from: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    pub cites: String,
    /// How sure the knowledge base is of this item (V, M, H); see [`Evidence`].
    #[serde(default)]
    pub evidence: Option<Evidence>,
    pub when: Value,
    /// Facts that must be known for the rule to decide; otherwise its result is unknown (null).
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Machine-readable reason code when the rule fires (default: its id).
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub emits: Option<EmitDef>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitDef {
    #[serde(default)]
    pub recommendation: Option<String>,
    #[serde(default)]
    pub urgency: Option<Urgency>,
    #[serde(default)]
    pub mechanism: Option<String>,
    /// A consult trigger of the `consult_triggers` catalogue: page the LRT.
    #[serde(default)]
    pub consult: Option<String>,
    /// A data-quality item the rule adds to the assessment when it fires (a warning about how
    /// the data were used, e.g. `rr_measured_not_set`, knowledge base §9 D7).
    #[serde(default)]
    pub data_quality: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Routine,
    Urgent,
    Emergent,
}

impl Urgency {
    pub fn name(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
            Urgency::Emergent => "emergent",
        }
    }
    pub fn from_name(s: &str) -> Option<Urgency> {
        match s {
            "routine" => Some(Urgency::Routine),
            "urgent" => Some(Urgency::Urgent),
            "emergent" => Some(Urgency::Emergent),
            _ => None,
        }
    }
}
