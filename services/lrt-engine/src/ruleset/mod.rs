//! The versioned, declarative rule set: loading, JSON Schema validation, compilation.
//!
//! A rule-set version is one folder (`rules/<id>/<version>/`) of YAML files plus `tests/`.
//! Loading a folder:
//!
//! 1. reads every `*.yaml` file (sorted by name; `ruleset.yaml` is the manifest);
//! 2. validates each against the embedded JSON Schema (`rules/schema/rule-file.schema.json`);
//! 3. merges the sections and compiles them (see [`compile`]): names resolve to facts,
//!    parameters, groups and catalogue codes; units must agree; every item must cite a
//!    knowledge-base section the manifest lists; the dependency order between rules is computed;
//! 4. hashes the canonical JSON of the files (SHA-256; the manifest's `status` left out), so each
//!    stored assessment names the exact rules.
//!
//! Every error names the file, the JSON pointer inside it and the reason; all errors are
//! reported at once.

pub mod codesets;
mod compile;
pub mod condition;
pub mod describe;
pub mod files;
pub mod index;
mod locate;
mod schema;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::concept::{Concept, Plausible};
use crate::facts::{FactId, FactKind};
pub use condition::{Cond, Truth};
pub use describe::LeafText;
pub use files::{Aggregate, CatalogEntry, Evidence, Manifest, Partial, ReleaseStatus, Urgency};

/// One error in a rule-set folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    /// JSON pointer inside the file (empty for the whole file).
    pub pointer: String,
    pub message: String,
    /// 1-based line of the pointer in the file (of its deepest ancestor that exists), when the
    /// error is inside a YAML file of the folder.
    pub line: Option<usize>,
    /// The id of the rule, score, classification, series, catalogue entry or named entry
    /// (parameter, concept, code set) the pointer is inside.
    pub item: Option<String>,
    /// What to do about it (`did you mean "bmi"?`, `thresholds are parameters: ...`).
    pub help: Option<String>,
}

impl RuleError {
    pub fn new(
        file: impl Into<String>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RuleError {
            file: file.into(),
            pointer: pointer.into(),
            message: message.into(),
            line: None,
            item: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

/// `file:line: item <id>: message`, then `  help: ...` on its own line. Without a line the
/// JSON pointer stands in: `file: /rules/3/when: message`.
impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None if self.pointer.is_empty() => write!(f, "{}: ", self.file)?,
            None => write!(f, "{}: {}: ", self.file, self.pointer)?,
        }
        if let Some(item) = &self.item {
            write!(f, "item {item}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Why a rule set could not be loaded: every problem found, each located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleSetError {
    pub errors: Vec<RuleError>,
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl RuleSetError {
    fn one(
        file: impl Into<String>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RuleSetError {
            errors: vec![RuleError::new(file, pointer, message)],
        }
    }
}

/// Which concept a code means, and its rank among the concept's codes (0 = preferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedCode {
    pub concept: Concept,
    pub preference: u16,
}

/// How long a concept's latest value stays usable.
#[derive(Debug, Clone, PartialEq)]
pub enum Validity {
    /// Window in milliseconds, from the named parameter.
    Window {
        ms: f64,
        param: String,
    },
    Unlimited,
    /// Used only through pairing with another value (FiO2).
    Paired,
}

#[derive(Debug, Clone)]
pub struct ConceptConfig {
    pub validity: Validity,
    pub plausible: Option<Plausible>,
    pub codes: Vec<files::CodeDef>,
    pub cites: String,
    /// Concepts this one wins over on an observation coded with both.
    pub supersedes: Vec<Concept>,
    /// Yes/no concepts only: the coded values that mean yes (§9 D14: a prone body position);
    /// any other coded value means no. Empty: the concept takes no coded value.
    pub true_values: Vec<files::CodeDef>,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub cites: String,
    pub description: Option<String>,
}

/// Windows and tolerances the engine code itself needs (all from `parameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineParams {
    pub fio2_pairing_ms: f64,
    pub blood_gas_match_ms: f64,
    pub challenge_window_ms: f64,
    pub challenge_min_dfio2: f64,
    pub challenge_peep_tol: f64,
    /// The blood-gas plausibility of knowledge base §9 D8, when the version defines its
    /// parameters (0.2.0 on); `None` leaves blood gases to the concepts' plausible ranges.
    pub gas_plausibility: Option<GasPlausibility>,
}

/// §9 D8: blood gases that cannot be physiological are refused (all in mm[Hg] but the factors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GasPlausibility {
    /// `pao2_min_mmhg`: a PaO2 below it is refused.
    pub pao2_min: f64,
    /// `paco2_min_mmhg`: a PaCO2 below it is refused.
    pub paco2_min: f64,
    /// `kpa_suspect_max_mmhg`: PaO2 and PaCO2 of one gas both below it: kPa sent as mm[Hg].
    pub kpa_suspect_max: f64,
    /// `alveolar_pio2_factor` (mm[Hg]): inspired PO2 = FiO2 × this (sea level, 37 °C).
    pub alveolar_pio2_factor: f64,
    /// `alveolar_rq`: the respiratory quotient of the alveolar gas equation.
    pub alveolar_rq: f64,
    /// `alveolar_margin`: a PaO2 above the alveolar PO2 by more than this fraction is refused.
    pub alveolar_margin: f64,
}

#[derive(Debug, Clone)]
pub struct FactInfo {
    pub name: Arc<str>,
    pub kind: FactKind,
    pub description: String,
}

/// A compiled series (EOLIA runs): its facts are `<id>.latest_qualifies` and `<id>.duration_h`.
#[derive(Debug, Clone)]
pub struct Series {
    pub qualifies: Cond,
    pub lookback_ms: f64,
    pub max_gap_ms: f64,
    pub latest_max_age_ms: f64,
    pub fact_latest: FactId,
    pub fact_duration: FactId,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BandTest {
    Compare(condition::Op, f64),
    Is(bool),
    Category(Vec<u16>),
    Otherwise,
}

#[derive(Debug, Clone)]
pub struct Band {
    pub test: BandTest,
    pub points: f64,
}

#[derive(Debug, Clone)]
pub struct ScoreItem {
    pub id: Arc<str>,
    pub fact: FactId,
    pub bands: Vec<Band>,
    pub min_points: f64,
    /// Explanation text per band (`2 points (pf)`), and for a missing value.
    pub band_texts: Vec<Arc<str>>,
    pub missing_text: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Score {
    pub aggregate: Aggregate,
    pub min_items: usize,
    pub partial: Partial,
    pub items: Vec<ScoreItem>,
    pub fact: FactId,
    pub fact_complete: FactId,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index into the classification's values; `None` = null.
    pub value: Option<u16>,
    pub reasons: Vec<Arc<str>>,
    pub reasons_from: Vec<usize>,
    pub attributes: std::collections::BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub when: Cond,
    pub outcome: Outcome,
    /// Texts of `when`'s criteria, for explanations.
    pub texts: Vec<LeafText>,
}

#[derive(Debug, Clone)]
pub struct Classification {
    pub values: Vec<Arc<str>>,
    pub cases: Vec<Case>,
    pub otherwise: Outcome,
    pub fact: FactId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Recommendation {
        index: usize,
        urgency: Urgency,
    },
    Mechanism {
        index: usize,
    },
    /// Page the Lung Rescue Team for this reason (an entry of `consult_triggers`).
    Consult {
        index: usize,
        urgency: Urgency,
    },
    /// Add a data-quality item (an entry of [`RuleSet::rule_data_quality`]).
    DataQuality {
        index: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub when: Cond,
    pub requires: Vec<FactId>,
    pub group: Option<usize>,
    pub reason: Arc<str>,
    pub emits: Option<Emit>,
    pub fact: FactId,
    /// Texts of `when`'s criteria, for explanations.
    pub texts: Vec<LeafText>,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Series(Series),
    Score(Score),
    Classification(Classification),
    Rule(Rule),
}

/// One named item of the rule set, with where it was defined.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: Arc<str>,
    pub cites: Arc<str>,
    /// The knowledge base's evidence tag of the item (V, M, H), when the file gives one.
    pub evidence: Option<files::Evidence>,
    /// The file as shown in error messages.
    pub file: String,
    pub pointer: String,
    pub description: Option<String>,
    pub kind: NodeKind,
    /// What an explanation of this item is about (`ecmo_category`, `recommendation:PRONE_POSITIONING`...).
    pub subject: Arc<str>,
    /// `<file name>#<JSON pointer>` inside the version folder.
    pub source: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Node indices of the group's rules, in rule order.
    pub rules: Vec<usize>,
}

/// Nodes the engine maps onto the assessment's §6.2 fields (the rule set must define them).
#[derive(Debug, Clone, Copy)]
pub struct Outputs {
    pub eolia_runs: [usize; 3],
    pub eolia: [usize; 3],
    pub prone_recommended: usize,
    pub acp_high_risk: usize,
    pub echo_acp: usize,
    pub rv_dysfunction: usize,
    pub murray: usize,
    pub acp_risk: usize,
    pub resp: usize,
    pub berlin_category: usize,
    pub global_category: usize,
    pub global_basis: usize,
    pub ecmo_category: usize,
    pub resp_class: usize,
}

/// A loaded, validated and compiled rule-set version. Immutable; share it with `Arc`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub manifest: Manifest,
    /// SHA-256 (hex) of the canonical JSON of the rule files.
    pub sha256: String,
    pub dir: PathBuf,
    pub(crate) codes: rustc_hash::FxHashMap<Box<str>, rustc_hash::FxHashMap<Box<str>, MappedCode>>,
    pub(crate) concepts: Vec<ConceptConfig>,
    pub params: Vec<Parameter>,
    pub(crate) param_index: HashMap<String, usize>,
    pub(crate) engine: EngineParams,
    pub hard_stops: Vec<CatalogEntry>,
    pub mechanisms: Vec<CatalogEntry>,
    pub recommendations: Vec<CatalogEntry>,
    /// Reasons to page the Lung Rescue Team.
    pub consult_triggers: Vec<CatalogEntry>,
    /// The data-quality items rules emit (`emits: {data_quality: code}`), each once.
    pub rule_data_quality: Vec<Arc<str>>,
    pub facts: Vec<FactInfo>,
    /// In evaluation (dependency) order.
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    pub(crate) out: Outputs,
    /// Id, version and hash, shared by every assessment.
    pub ident: crate::assessment::RuleSetRef,
    /// Code sets for FHIR conditions, procedures, medications and flags.
    pub codesets: Vec<codesets::CodeSet>,
    /// Codes deliberately not mapped, with the reason.
    pub unmapped_codes: Vec<codesets::UnmappedCode>,
    /// The presentation sections (`reason_texts`, `data_quality_texts`, `cards`, `order_codes`)
    /// as written, each with its file: content of the version (hashed like the rules), compiled
    /// by the card renderer.
    pub presentation: Vec<PresentationSection>,
}

/// One presentation section of one rule file (see [`RuleSet::presentation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PresentationSection {
    /// The file as shown in error messages.
    pub file: String,
    /// `reason_texts`, `data_quality_texts`, `cards` or `order_codes`.
    pub section: &'static str,
    pub value: Value,
}

/// A reason code some item of the rule set can give, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedReason<'a> {
    pub code: &'a str,
    pub item: &'a str,
    pub file: &'a str,
    pub pointer: &'a str,
}

impl RuleSet {
    /// Loads and compiles one rule-set version folder.
    pub fn load(dir: &Path) -> Result<RuleSet, RuleSetError> {
        let files = read_files(dir)?;
        let sha256 = content_hash(&files);
        schema::validate_and_parse(&files)
            .and_then(|parsed| compile::compile(dir, parsed, sha256))
            .map_err(|mut e| {
                locate::annotate(&mut e.errors, &files);
                e
            })
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Fills the line (and the item, when unset) of errors found after loading, by passes
    /// outside the engine (the card texts): each names a file of this folder and a pointer.
    pub fn annotate_errors(&self, errors: &mut [RuleError]) {
        if let Ok(files) = read_files(&self.dir) {
            locate::annotate(errors, &files);
        }
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn concept_of(&self, system: &str, code: &str) -> Option<MappedCode> {
        self.codes.get(system)?.get(code).copied()
    }

    /// The concept of an observation coded with several codes (`codings` in FHIR order): the
    /// single mapped concept, or the one that supersedes all others; `Err` lists the concepts
    /// when they conflict.
    pub fn concept_of_codings<'a>(
        &self,
        codings: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<(MappedCode, usize)>, Vec<Concept>> {
        let mut found: Vec<(MappedCode, usize)> = Vec::new();
        for (i, (system, code)) in codings.enumerate() {
            if let Some(m) = self.concept_of(system, code)
                && !found.iter().any(|(f, _)| f.concept == m.concept)
            {
                found.push((m, i));
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(Some(found[0])),
            _ => {
                let winner = found.iter().find(|(m, _)| {
                    found.iter().all(|(o, _)| {
                        o.concept == m.concept
                            || self.concepts[m.concept.index()]
                                .supersedes
                                .contains(&o.concept)
                    })
                });
                winner
                    .copied()
                    .map(Some)
                    .ok_or_else(|| found.iter().map(|(m, _)| m.concept).collect())
            }
        }
    }

    /// A concept's codes (in preference order), validity and plausible range.
    pub fn concept_config(&self, c: Concept) -> &ConceptConfig {
        &self.concepts[c.index()]
    }

    pub fn plausible(&self, c: Concept) -> Option<Plausible> {
        self.concepts[c.index()].plausible
    }

    /// Validity window of a concept in ms (`None` = unlimited or paired).
    pub fn window_ms(&self, c: Concept) -> Option<f64> {
        match &self.concepts[c.index()].validity {
            Validity::Window { ms, .. } => Some(*ms),
            Validity::Unlimited | Validity::Paired => None,
        }
    }

    pub fn engine_params(&self) -> &EngineParams {
        &self.engine
    }

    /// Every reason code a classification can report, in definition order, each once: its
    /// outcomes' `reasons:` and the `reason:` of the rules of its `reasons_from` groups. `hard_stop:<code>` reasons come from the hard-stop
    /// catalogue (its `display` is their text).
    pub fn emitted_reasons(&self) -> Vec<EmittedReason<'_>> {
        fn push<'a>(out: &mut Vec<EmittedReason<'a>>, code: &'a str, node: &'a Node) {
            if !code.is_empty() && !out.iter().any(|r| r.code == code) {
                out.push(EmittedReason {
                    code,
                    item: &node.id,
                    file: &node.file,
                    pointer: &node.pointer,
                });
            }
        }
        let mut out: Vec<EmittedReason<'_>> = Vec::new();
        // Groups whose rules' reasons a classification reports (`reasons_from`).
        let mut reported: Vec<usize> = Vec::new();
        for node in &self.nodes {
            if let NodeKind::Classification(c) = &node.kind {
                for o in c.cases.iter().map(|c| &c.outcome).chain([&c.otherwise]) {
                    reported.extend(o.reasons_from.iter().copied());
                }
            }
        }
        for node in &self.nodes {
            match &node.kind {
                NodeKind::Rule(r) if r.group.is_some_and(|g| reported.contains(&g)) => {
                    push(&mut out, &r.reason, node);
                }
                NodeKind::Rule(_) => {}
                NodeKind::Classification(c) => {
                    for o in c.cases.iter().map(|c| &c.outcome).chain([&c.otherwise]) {
                        for r in &o.reasons {
                            push(&mut out, r, node);
                        }
                    }
                }
                NodeKind::Series(_) | NodeKind::Score(_) => {}
            }
        }
        out
    }

    pub fn param(&self, name: &str) -> Option<&Parameter> {
        self.param_index.get(name).map(|&i| &self.params[i])
    }

    pub fn hard_stop_index(&self, code: &str) -> Option<usize> {
        self.hard_stops.iter().position(|h| &*h.code == code)
    }

    pub fn hard_stop_codes(&self) -> Vec<&str> {
        self.hard_stops.iter().map(|h| &*h.code).collect()
    }

    /// `lrt-ruleset 0.1.0 (sha256 1a2b3c4d…)`
    pub fn label(&self) -> String {
        format!(
            "{} {} (sha256 {})",
            self.manifest.id,
            self.manifest.version,
            &self.sha256[..12]
        )
    }
}

/// A rule file as read from disk and parsed to JSON.
pub(crate) struct SourceFile {
    /// Path as shown in messages.
    pub display: String,
    /// File name inside the version folder.
    pub name: String,
    pub value: Value,
    /// The YAML text, to turn error pointers into line numbers.
    pub text: String,
}

fn read_files(dir: &Path) -> Result<Vec<SourceFile>, RuleSetError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        RuleSetError::one(&shown, "", format!("cannot read the rule-set folder: {e}"))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    if !paths
        .iter()
        .any(|p| p.file_name().is_some_and(|n| n == "ruleset.yaml"))
    {
        return Err(RuleSetError::one(
            &shown,
            "",
            "no ruleset.yaml manifest in this folder (is it a rule-set version folder such as rules/lrt-ruleset/0.1.0?)",
        ));
    }
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        let display = path.display().to_string();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(RuleError::new(display, "", format!("cannot read: {e}")));
                continue;
            }
        };
        // YAML 1.2 core booleans only: `yes`, `no`, `on`, `off` stay strings (no "Norway problem").
        let options = serde_saphyr::options! { strict_booleans: true };
        match serde_saphyr::from_str_with_options::<Value>(&text, options) {
            Ok(value) => files.push(SourceFile {
                display,
                name,
                value,
                text,
            }),
            Err(e) => errors.push(RuleError::new(display, "", format!("not valid YAML: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(RuleSetError { errors })
    }
}

/// SHA-256 of `{"<file name>": <content>, ...}` serialised as compact JSON with sorted keys.
/// The manifest's `status` is left out: releasing or retiring a version does not change what it
/// evaluates, so its hash (stored with every assessment) stays valid.
fn content_hash(files: &[SourceFile]) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&map[*k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::from("{");
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(f.name.clone()).to_string());
        text.push(':');
        if f.name == "ruleset.yaml" {
            let mut manifest = f.value.clone();
            if let Some(m) = manifest.get_mut("ruleset").and_then(Value::as_object_mut) {
                m.remove("status");
            }
            canonical(&manifest, &mut text);
        } else {
            canonical(&f.value, &mut text);
        }
    }
    text.push('}');
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
