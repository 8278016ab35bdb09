//! Semantic compilation of parsed rule files into a [`RuleSet`].
//!
//! Checks, each reported with file and JSON pointer:
//! * the manifest exists once, its version equals the folder name and its id the parent folder;
//! * every item cites at least one knowledge-base section listed in the manifest;
//! * names are unique (parameters, concepts, codes, catalogue codes, item ids, engine facts);
//! * conditions name known facts, parameters, groups and values, with matching units;
//! * score bands cover every value; concepts use the engine's canonical units;
//! * the rules have no dependency cycle; the items the assessment needs exist.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::condition::{Op, Problem, Scope};
use super::files::{
    Aggregate, CaseDef, CatalogEntry, EmitDef, Manifest, OutcomeDef, Partial, RuleDef, ScoreDef,
    SeriesDef,
};
use super::schema::ParsedFile;
use super::{
    Band, BandTest, Case, Classification, ConceptConfig, EngineParams, FactInfo, Group, MappedCode,
    Node, NodeKind, Outcome, Outputs, Parameter, Rule, RuleError, RuleSet, RuleSetError, Score,
    ScoreItem, Series, Validity,
};
use crate::concept::{Concept, Dimension, Plausible};
use crate::facts::{Fact, FactId, FactKind};

pub(super) struct Errors(Vec<RuleError>);

impl Errors {
    pub(super) fn push(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(RuleError::new(file, pointer, message));
    }
    pub(super) fn push_help(
        &mut self,
        file: &str,
        pointer: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.0
            .push(RuleError::new(file, pointer, message).with_help(Some(help.into())));
    }
    fn problems(&mut self, file: &str, problems: Vec<Problem>) {
        for p in problems {
            self.0
                .push(RuleError::new(file, p.pointer, p.message).with_help(p.help));
        }
    }
}

/// Milliseconds per unit for window parameters.
fn time_unit_ms(unit: &str) -> Option<f64> {
    match unit {
        "s" => Some(1_000.0),
        "min" => Some(60_000.0),
        "h" => Some(3_600_000.0),
        "d" => Some(86_400_000.0),
        _ => None,
    }
}

/// `§2.1`, `§6.1` ... found in a `cites` text.
fn cited_sections(cites: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cites;
    while let Some(pos) = rest.find('§') {
        let after = &rest[pos + '§'.len_utf8()..];
        let len = after
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit()
                    || (*c == '.' && after[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
            })
            .count();
        if len > 0 {
            out.push(format!("§{}", &after[..len]));
        }
        rest = &after[len..];
    }
    out
}

pub(super) struct Ctx<'a> {
    pub(super) errors: Errors,
    sections: &'a [String],
    kb_version: &'a str,
}

impl Ctx<'_> {
    pub(super) fn cites(&mut self, file: &str, ptr: &str, cites: &str) {
        let found = cited_sections(cites);
        if found.is_empty() {
            self.errors.push_help(
                file,
                format!("{ptr}/cites"),
                "cites no knowledge-base section",
                "write the section(s) this item encodes, e.g. `cites: \"§2.7\"`",
            );
        }
        for s in found {
            if !self.sections.contains(&s) {
                self.errors.push(
                    file,
                    format!("{ptr}/cites"),
                    format!(
                        "cites {s}, which knowledge base {} does not have (sections: {})",
                        self.kb_version,
                        self.sections.join(" ")
                    ),
                );
            }
        }
    }
}

/// A node before compilation: its definition and where it came from.
enum Def<'a> {
    Series(&'a SeriesDef),
    Score(&'a ScoreDef),
    Classification(&'a super::files::ClassificationDef),
    Rule(&'a RuleDef),
}

struct Pending<'a> {
    id: &'a str,
    file: &'a str,
    ptr: String,
    def: Def<'a>,
}

pub(crate) fn compile(
    dir: &Path,
    files: Vec<ParsedFile>,
    sha256: String,
) -> Result<RuleSet, RuleSetError> {
    let dir_shown = dir.display().to_string();
    let mut errors = Errors(Vec::new());

    // --- Manifest -----------------------------------------------------------------------
    let mut manifest: Option<(Manifest, &str)> = None;
    for f in &files {
        if let Some(m) = &f.file.ruleset {
            if f.name != "ruleset.yaml" {
                errors.push(
                    &f.display,
                    "/ruleset",
                    "the manifest belongs in ruleset.yaml only",
                );
            } else {
                manifest = Some((m.clone(), &f.display));
            }
        }
    }
    let Some((manifest, manifest_file)) = manifest else {
        errors.push(
            &dir_shown,
            "",
            "ruleset.yaml has no `ruleset` manifest section",
        );
        return Err(RuleSetError { errors: errors.0 });
    };
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if folder.as_deref() != Some(manifest.version.as_str()) {
        errors.push(
            manifest_file,
            "/ruleset/version",
            format!(
                "version {} must equal the folder name ({}): each version lives in its own immutable folder",
                manifest.version,
                folder.unwrap_or_default()
            ),
        );
    }
    let parent = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if parent.as_deref() != Some(manifest.id.as_str()) {
        errors.push(
            manifest_file,
            "/ruleset/id",
            format!(
                "id {} must equal the parent folder name ({})",
                manifest.id,
                parent.unwrap_or_default()
            ),
        );
    }
    let sections = manifest.knowledge_base.sections.clone();
    let mut ctx = Ctx {
        errors,
        sections: &sections,
        kb_version: &manifest.knowledge_base.version,
    };

    // --- Parameters ---------------------------------------------------------------------
    let mut params: Vec<Parameter> = Vec::new();
    let mut param_index: HashMap<String, usize> = HashMap::new();
    let mut param_file: HashMap<String, String> = HashMap::new();
    for f in &files {
        for (name, p) in &f.file.parameters {
            let ptr = format!("/parameters/{name}");
            if let Some(other) = param_file.get(name) {
                ctx.errors.push(
                    &f.display,
                    &ptr,
                    format!("parameter {name} is also defined in {other}"),
                );
                continue;
            }
            ctx.cites(&f.display, &ptr, &p.cites);
            param_file.insert(name.clone(), f.display.clone());
            param_index.insert(name.clone(), params.len());
            params.push(Parameter {
                name: name.clone(),
                value: p.value,
                unit: p.unit.clone(),
                cites: p.cites.clone(),
                description: p.description.clone(),
            });
        }
    }
    let param_values: Vec<(f64, String)> =
        params.iter().map(|p| (p.value, p.unit.clone())).collect();
    let window = |ctx: &mut Ctx, file: &str, ptr: &str, name: &str| -> Option<f64> {
        match param_index.get(name) {
            None => {
                ctx.errors.push_help(
                    file,
                    ptr,
                    format!("unknown parameter {name:?}"),
                    super::condition::did_you_mean(name, param_index.keys().map(String::as_str))
                        .unwrap_or_else(|| super::condition::PARAM_HELP.into()),
                );
                None
            }
            Some(&i) => match time_unit_ms(&params[i].unit) {
                Some(ms) => Some(params[i].value * ms),
                None => {
                    ctx.errors.push(
                        file,
                        ptr,
                        format!(
                            "parameter {name} is used as a time window but its unit is {} (use h, min, s or d)",
                            params[i].unit
                        ),
                    );
                    None
                }
            },
        }
    };
    let engine_param = |ctx: &mut Ctx, name: &str, unit: &str| -> f64 {
        match param_index.get(name) {
            Some(&i) if params[i].unit == unit => {
                if unit == "min" {
                    params[i].value * 60_000.0
                } else if unit == "h" {
                    params[i].value * 3_600_000.0
                } else {
                    params[i].value
                }
            }
            Some(&i) => {
                ctx.errors.push(
                    param_file
                        .get(name)
                        .map(String::as_str)
                        .unwrap_or(&dir_shown),
                    format!("/parameters/{name}/unit"),
                    format!("the engine reads {name} in {unit}, not {}", params[i].unit),
                );
                0.0
            }
            None => {
                ctx.errors.push(
                    &dir_shown,
                    "",
                    format!("the engine needs parameter {name} (unit {unit}); define it under `parameters`"),
                );
                0.0
            }
        }
    };
    let mut engine = EngineParams {
        fio2_pairing_ms: engine_param(&mut ctx, "fio2_pairing_window_min", "min"),
        blood_gas_match_ms: engine_param(&mut ctx, "blood_gas_match_window_min", "min"),
        challenge_window_ms: engine_param(&mut ctx, "challenge_window_h", "h"),
        challenge_min_dfio2: engine_param(&mut ctx, "challenge_min_dfio2", "1"),
        challenge_peep_tol: engine_param(&mut ctx, "challenge_peep_tol", "cm[H2O]"),
        gas_plausibility: None,
    };
    // §9 D8 (optional: versions before 0.2.0 do not define it): all six parameters or none.
    const D8: [(&str, &str); 6] = [
        ("pao2_min_mmhg", "mm[Hg]"),
        ("paco2_min_mmhg", "mm[Hg]"),
        ("kpa_suspect_max_mmhg", "mm[Hg]"),
        ("alveolar_pio2_factor", "mm[Hg]"),
        ("alveolar_rq", "1"),
        ("alveolar_margin", "1"),
    ];
    let present = D8
        .iter()
        .filter(|(n, _)| param_index.contains_key(*n))
        .count();
    if present == D8.len() {
        let v: Vec<f64> = D8
            .iter()
            .map(|(n, u)| engine_param(&mut ctx, n, u))
            .collect();
        engine.gas_plausibility = Some(super::GasPlausibility {
            pao2_min: v[0],
            paco2_min: v[1],
            kpa_suspect_max: v[2],
            alveolar_pio2_factor: v[3],
            alveolar_rq: v[4],
            alveolar_margin: v[5],
        });
    } else if present > 0 {
        ctx.errors.push(
            &dir_shown,
            "/parameters",
            format!(
                "blood-gas plausibility (§9 D8) needs all of {} or none",
                D8.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // --- Concepts (value sets) -------------------------------------------------------------
    let mut concepts: Vec<Option<ConceptConfig>> = vec![None; Concept::ALL.len()];
    let mut codes: FxHashMap<Box<str>, FxHashMap<Box<str>, MappedCode>> = FxHashMap::default();
    let mut code_owner: HashMap<(String, String), String> = HashMap::new();
    let mut supersedes: Vec<(Concept, Concept)> = Vec::new();
    for f in &files {
        for (name, c) in &f.file.concepts {
            let ptr = format!("/concepts/{name}");
            let Some(concept) = Concept::from_name(name) else {
                ctx.errors.push(
                    &f.display,
                    &ptr,
                    format!(
                        "unknown concept {name:?}{} (the engine knows: {})",
                        super::condition::suggest(name, Concept::ALL.iter().map(|c| c.name())),
                        Concept::ALL
                            .iter()
                            .map(|c| c.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            };
            if concepts[concept.index()].is_some() {
                ctx.errors
                    .push(&f.display, &ptr, format!("concept {name} is defined twice"));
                continue;
            }
            ctx.cites(&f.display, &ptr, &c.cites);
            if c.unit != concept.canonical_unit() {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/unit"),
                    format!(
                        "the engine normalises {name} to {:?}, not {:?}",
                        concept.canonical_unit(),
                        c.unit
                    ),
                );
            }
            let validity = match c.validity.as_str() {
                "unlimited" => Validity::Unlimited,
                "paired" => Validity::Paired,
                p => match window(&mut ctx, &f.display, &format!("{ptr}/validity"), p) {
                    Some(ms) => Validity::Window {
                        ms,
                        param: p.to_string(),
                    },
                    None => Validity::Unlimited,
                },
            };
            if (concept == Concept::Fio2) != (validity == Validity::Paired) {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/validity"),
                    "FiO2 (and only FiO2) has validity `paired`: it is used through P/F and S/F pairing (§6.1)",
                );
            }
            if let Some(p) = c.plausible
                && p.min >= p.max
            {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/plausible"),
                    "plausible.min must be below plausible.max",
                );
            }
            for (i, code) in c.codes.iter().enumerate() {
                let key = (code.system.clone(), code.code.clone());
                if let Some(owner) = code_owner.get(&key) {
                    ctx.errors.push(
                        &f.display,
                        format!("{ptr}/codes/{i}"),
                        format!("{} {} already means {owner}", code.system, code.code),
                    );
                    continue;
                }
                code_owner.insert(key, name.clone());
                codes
                    .entry(code.system.as_str().into())
                    .or_default()
                    .insert(
                        code.code.as_str().into(),
                        MappedCode {
                            concept,
                            preference: i as u16,
                        },
                    );
            }
            concepts[concept.index()] = Some(ConceptConfig {
                validity,
                plausible: c.plausible.map(|p| Plausible {
                    min: p.min,
                    max: p.max,
                }),
                codes: c.codes.clone(),
                cites: c.cites.clone(),
                supersedes: Vec::new(),
                true_values: c.true_values.clone(),
            });
            if !c.true_values.is_empty() && concept.dimension() != Dimension::Boolean {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/true_values"),
                    format!(
                        "{name} is not a yes/no concept: only yes/no concepts take true_values"
                    ),
                );
            }
            for (i, other) in c.supersedes.iter().enumerate() {
                match Concept::from_name(other) {
                    Some(o) if o != concept => supersedes.push((concept, o)),
                    _ => ctx.errors.push(
                        &f.display,
                        format!("{ptr}/supersedes/{i}"),
                        format!("{other:?} is not another concept"),
                    ),
                }
            }
        }
    }
    for (winner, loser) in &supersedes {
        if let Some(cfg) = concepts[winner.index()].as_mut() {
            cfg.supersedes.push(*loser);
        }
    }
    for c in Concept::ALL {
        if concepts[c.index()].is_none() && c.required() {
            ctx.errors.push(
                &dir_shown,
                "",
                format!(
                    "concept {} has no definition under `concepts` (codes, unit, validity)",
                    c.name()
                ),
            );
        }
    }

    // --- Catalogues -----------------------------------------------------------------------
    let catalogue = |ctx: &mut Ctx, section: &str, pick: fn(&ParsedFile) -> &Vec<CatalogEntry>| {
        let mut out: Vec<CatalogEntry> = Vec::new();
        for f in &files {
            for (i, e) in pick(f).iter().enumerate() {
                let ptr = format!("/{section}/{i}");
                ctx.cites(&f.display, &ptr, &e.cites);
                if out.iter().any(|o| o.code == e.code) {
                    ctx.errors.push(
                        &f.display,
                        format!("{ptr}/code"),
                        format!("{} is listed twice", e.code),
                    );
                } else {
                    out.push(e.clone());
                }
            }
        }
        out
    };
    let hard_stops = catalogue(&mut ctx, "hard_stops", |f| &f.file.hard_stops);
    let mechanisms = catalogue(&mut ctx, "mechanisms", |f| &f.file.mechanisms);
    let recommendations = catalogue(&mut ctx, "recommendations", |f| &f.file.recommendations);
    let consult_triggers = catalogue(&mut ctx, "consult_triggers", |f| &f.file.consult_triggers);
    // Data-quality items are not a catalogue: the codes rules emit are collected, each once.
    let mut rule_data_quality: Vec<Arc<str>> = Vec::new();
    for f in &files {
        for r in &f.file.rules {
            if let Some(code) = r.emits.as_ref().and_then(|e| e.data_quality.as_deref())
                && !rule_data_quality.iter().any(|c| &**c == code)
            {
                rule_data_quality.push(Arc::from(code));
            }
        }
    }
    let (codesets, unmapped_codes) = super::codesets::compile(
        &files,
        &hard_stops,
        &|system, code| codes.get(system).is_some_and(|m| m.contains_key(code)),
        &mut ctx,
    );
    if hard_stops.len() > 64 {
        ctx.errors
            .push(&dir_shown, "", "at most 64 hard-stop codes are supported");
    }

    // --- Facts: engine facts, then one or two per rule-set item ----------------------------
    let mut facts: Vec<FactInfo> = Fact::ALL
        .iter()
        .map(|f| FactInfo {
            name: Arc::from(f.name()),
            kind: match f {
                Fact::HardStops => FactKind::Set {
                    values: hard_stops.iter().map(|h| h.code.clone()).collect(),
                },
                other => other.kind(),
            },
            description: f.description().to_string(),
        })
        .collect();
    let mut pending: Vec<Pending> = Vec::new();
    for f in &files {
        for (i, s) in f.file.series.iter().enumerate() {
            pending.push(Pending {
                id: &s.id,
                file: &f.display,
                ptr: format!("/series/{i}"),
                def: Def::Series(s),
            });
        }
        for (i, s) in f.file.scores.iter().enumerate() {
            pending.push(Pending {
                id: &s.id,
                file: &f.display,
                ptr: format!("/scores/{i}"),
                def: Def::Score(s),
            });
        }
        for (i, c) in f.file.classifications.iter().enumerate() {
            pending.push(Pending {
                id: &c.id,
                file: &f.display,
                ptr: format!("/classifications/{i}"),
                def: Def::Classification(c),
            });
        }
        for (i, r) in f.file.rules.iter().enumerate() {
            pending.push(Pending {
                id: &r.id,
                file: &f.display,
                ptr: format!("/rules/{i}"),
                def: Def::Rule(r),
            });
        }
    }
    let mut fact_index: HashMap<String, FactId> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.to_string(), FactId(i as u16)))
        .collect();
    // The facts each pending node produces (first = its main fact).
    let mut produced: Vec<Vec<FactId>> = Vec::with_capacity(pending.len());
    let mut owner: HashMap<&str, (&str, String)> = HashMap::new();
    for p in &pending {
        let mut mine = Vec::new();
        if let Some((file, ptr)) = owner.get(p.id) {
            ctx.errors.push(
                p.file,
                format!("{}/id", p.ptr),
                format!("id {} is already used at {file} {ptr}", p.id),
            );
            produced.push(mine);
            continue;
        }
        owner.insert(p.id, (p.file, p.ptr.clone()));
        let new_facts: Vec<(String, FactKind, String)> = match &p.def {
            Def::Series(_) => vec![
                (
                    format!("{}.latest_qualifies", p.id),
                    FactKind::Boolean,
                    "The latest blood gas qualifies (null when there is none recent enough)."
                        .into(),
                ),
                (
                    format!("{}.duration_h", p.id),
                    FactKind::Number { unit: "h" },
                    "Span of the unbroken run of qualifying blood gases ending at the latest one."
                        .into(),
                ),
            ],
            Def::Score(s) => vec![
                (
                    p.id.to_string(),
                    FactKind::Number { unit: "1" },
                    s.description.clone().unwrap_or_default(),
                ),
                (
                    format!("{}.complete", p.id),
                    FactKind::Boolean,
                    "Every item of the score is known.".into(),
                ),
            ],
            Def::Classification(c) => {
                let mut values: Vec<Arc<str>> = Vec::new();
                let outcomes = c
                    .cases
                    .iter()
                    .map(|k| &k.value)
                    .chain(std::iter::once(&c.otherwise.value));
                for v in outcomes.flatten() {
                    if !values.iter().any(|x| **x == **v) {
                        values.push(Arc::from(v.as_str()));
                    }
                }
                vec![(
                    p.id.to_string(),
                    FactKind::Category { values },
                    c.description.clone().unwrap_or_default(),
                )]
            }
            Def::Rule(r) => vec![(
                p.id.to_string(),
                FactKind::Boolean,
                r.description.clone().unwrap_or_default(),
            )],
        };
        for (name, kind, description) in new_facts {
            if fact_index.contains_key(&name) {
                ctx.errors.push(
                    p.file,
                    format!("{}/id", p.ptr),
                    format!("{name} is already the name of an engine fact"),
                );
                continue;
            }
            let id = FactId(facts.len() as u16);
            fact_index.insert(name.clone(), id);
            facts.push(FactInfo {
                name: Arc::from(name),
                kind,
                description,
            });
            mine.push(id);
        }
        produced.push(mine);
    }

    // --- Groups ---------------------------------------------------------------------------
    let mut groups: Vec<Group> = Vec::new();
    let mut group_index: HashMap<String, usize> = HashMap::new();
    for (n, p) in pending.iter().enumerate() {
        if let Def::Rule(r) = &p.def
            && let Some(g) = &r.group
        {
            let gi = *group_index.entry(g.clone()).or_insert_with(|| {
                groups.push(Group {
                    name: g.clone(),
                    rules: Vec::new(),
                });
                groups.len() - 1
            });
            groups[gi].rules.push(n);
        }
    }

    // --- Compile each node ------------------------------------------------------------------
    let kinds: Vec<FactKind> = facts.iter().map(|f| f.kind.clone()).collect();
    let scope = |allow_abg| Scope {
        facts: &fact_index,
        kinds: &kinds,
        params: &param_index,
        param_values: &param_values,
        groups: &group_index,
        allow_abg,
    };
    let mut nodes: Vec<Option<Node>> = Vec::with_capacity(pending.len());
    for (n, p) in pending.iter().enumerate() {
        if produced[n].is_empty() {
            nodes.push(None);
            continue;
        }
        let mut problems = Vec::new();
        let (cites, evidence, description, kind) = match &p.def {
            Def::Series(s) => {
                ctx.cites(p.file, &p.ptr, &s.cites);
                let lookback = window(
                    &mut ctx,
                    p.file,
                    &format!("{}/lookback", p.ptr),
                    &s.lookback,
                );
                let max_gap = window(&mut ctx, p.file, &format!("{}/max_gap", p.ptr), &s.max_gap);
                let latest = window(
                    &mut ctx,
                    p.file,
                    &format!("{}/latest_max_age", p.ptr),
                    &s.latest_max_age,
                );
                let qualifies = scope(true).compile(
                    &s.qualifies,
                    &format!("{}/qualifies", p.ptr),
                    &mut problems,
                );
                let kind = match (qualifies, lookback, max_gap, latest) {
                    (Some(q), Some(l), Some(g), Some(a)) => Some(NodeKind::Series(Series {
                        qualifies: q,
                        lookback_ms: l,
                        max_gap_ms: g,
                        latest_max_age_ms: a,
                        fact_latest: produced[n][0],
                        fact_duration: produced[n][1],
                    })),
                    _ => None,
                };
                (&s.cites, s.evidence, &s.description, kind)
            }
            Def::Score(s) => {
                ctx.cites(p.file, &p.ptr, &s.cites);
                let kind = compile_score(s, &p.ptr, &fact_index, &kinds, &mut problems).map(
                    |mut score| {
                        score.fact = produced[n][0];
                        score.fact_complete = produced[n][1];
                        NodeKind::Score(score)
                    },
                );
                (&s.cites, s.evidence, &s.description, kind)
            }
            Def::Classification(c) => {
                ctx.cites(p.file, &p.ptr, &c.cites);
                let values = match &kinds[produced[n][0].index()] {
                    FactKind::Category { values } => values.clone(),
                    _ => Vec::new(),
                };
                let mut cases = Vec::new();
                let mut ok = true;
                for (i, case) in c.cases.iter().enumerate() {
                    let cptr = format!("{}/cases/{i}", p.ptr);
                    let when =
                        scope(false).compile(&case.when, &format!("{cptr}/when"), &mut problems);
                    let outcome = outcome(
                        &OutcomeView::from_case(case),
                        &values,
                        &group_index,
                        &cptr,
                        &mut problems,
                    );
                    match (when, outcome) {
                        (Some(w), Some(o)) => cases.push(Case {
                            when: w,
                            outcome: o,
                            texts: Vec::new(),
                        }),
                        _ => ok = false,
                    }
                }
                let otherwise = outcome(
                    &OutcomeView::from_otherwise(&c.otherwise),
                    &values,
                    &group_index,
                    &format!("{}/otherwise", p.ptr),
                    &mut problems,
                );
                let kind = match (ok, otherwise) {
                    (true, Some(o)) => Some(NodeKind::Classification(Classification {
                        values,
                        cases,
                        otherwise: o,
                        fact: produced[n][0],
                    })),
                    _ => None,
                };
                (&c.cites, c.evidence, &c.description, kind)
            }
            Def::Rule(r) => {
                ctx.cites(p.file, &p.ptr, &r.cites);
                let when = scope(false).compile(&r.when, &format!("{}/when", p.ptr), &mut problems);
                let mut requires = Vec::new();
                for (i, name) in r.requires.iter().enumerate() {
                    match fact_index.get(name) {
                        Some(&id) => requires.push(id),
                        None => problems.push(
                            Problem::new(
                                format!("{}/requires/{i}", p.ptr),
                                format!("unknown fact {name:?}"),
                            )
                            .help(
                                super::condition::did_you_mean(
                                    name,
                                    fact_index.keys().map(String::as_str),
                                )
                                .unwrap_or_else(|| super::condition::FACT_HELP.into()),
                            ),
                        ),
                    }
                }
                let emits = r.emits.as_ref().and_then(|e| {
                    compile_emit(
                        e,
                        &Catalogues {
                            recommendations: &recommendations,
                            mechanisms: &mechanisms,
                            consult_triggers: &consult_triggers,
                            data_quality: &rule_data_quality,
                        },
                        &format!("{}/emits", p.ptr),
                        &mut problems,
                    )
                });
                let emits_ok = r.emits.is_none() || emits.is_some();
                let kind = match when {
                    Some(w) if emits_ok && requires.len() == r.requires.len() => {
                        Some(NodeKind::Rule(Rule {
                            when: w,
                            requires,
                            group: r.group.as_ref().map(|g| group_index[g]),
                            reason: Arc::from(r.reason.as_deref().unwrap_or(&r.id)),
                            emits,
                            fact: produced[n][0],
                            texts: Vec::new(),
                        }))
                    }
                    _ => None,
                };
                (&r.cites, r.evidence, &r.description, kind)
            }
        };
        ctx.errors.problems(p.file, problems);
        let file_name = Path::new(p.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        nodes.push(kind.map(|kind| Node {
            id: Arc::from(p.id),
            cites: Arc::from(cites.as_str()),
            evidence,
            file: p.file.to_string(),
            pointer: p.ptr.clone(),
            description: description.clone(),
            subject: Arc::from(match &kind {
                NodeKind::Rule(Rule {
                    emits: Some(super::Emit::Recommendation { index, .. }),
                    ..
                }) => {
                    format!("recommendation:{}", recommendations[*index].code)
                }
                NodeKind::Rule(Rule {
                    emits: Some(super::Emit::Mechanism { index }),
                    ..
                }) => {
                    format!("mechanism:{}", mechanisms[*index].code)
                }
                NodeKind::Rule(Rule {
                    emits: Some(super::Emit::Consult { index, .. }),
                    ..
                }) => {
                    format!("consult:{}", consult_triggers[*index].code)
                }
                NodeKind::Rule(Rule {
                    emits: Some(super::Emit::DataQuality { index }),
                    ..
                }) => {
                    format!("data_quality:{}", rule_data_quality[*index])
                }
                _ => p.id.to_string(),
            }),
            source: Arc::from(format!("{file_name}#{}", p.ptr)),
            kind,
        }));
    }
    if !ctx.errors.0.is_empty() {
        return Err(RuleSetError {
            errors: ctx.errors.0,
        });
    }
    let nodes: Vec<Node> = nodes
        .into_iter()
        .map(|n| n.expect("compiled without errors"))
        .collect();

    // --- Dependency order -------------------------------------------------------------------
    let producer: HashMap<FactId, usize> = produced
        .iter()
        .enumerate()
        .flat_map(|(n, fs)| fs.iter().map(move |f| (*f, n)))
        .collect();
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|node| {
            let mut read = Vec::new();
            let mut read_groups = Vec::new();
            match &node.kind {
                NodeKind::Series(s) => s.qualifies.facts(&mut read),
                NodeKind::Score(s) => read.extend(s.items.iter().map(|i| i.fact)),
                NodeKind::Classification(c) => {
                    for case in &c.cases {
                        case.when.facts(&mut read);
                        case.when.groups(&mut read_groups);
                        read_groups.extend(&case.outcome.reasons_from);
                    }
                    read_groups.extend(&c.otherwise.reasons_from);
                }
                NodeKind::Rule(r) => {
                    r.when.facts(&mut read);
                    r.when.groups(&mut read_groups);
                    read.extend(&r.requires);
                }
            }
            let mut d: Vec<usize> = read
                .iter()
                .filter_map(|f| producer.get(f).copied())
                .collect();
            for g in read_groups {
                d.extend(&groups[g].rules);
            }
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    // Every group that a rule writes must be read (`group_fired` or `reasons_from`): a misspelt
    // `group:` would otherwise make its rules silently do nothing.
    let mut read_anywhere = vec![false; groups.len()];
    for node in &nodes {
        let mut read_groups = Vec::new();
        match &node.kind {
            NodeKind::Classification(c) => {
                for case in &c.cases {
                    case.when.groups(&mut read_groups);
                    read_groups.extend(&case.outcome.reasons_from);
                }
                read_groups.extend(&c.otherwise.reasons_from);
            }
            NodeKind::Rule(r) => r.when.groups(&mut read_groups),
            NodeKind::Series(_) | NodeKind::Score(_) => {}
        }
        for g in read_groups {
            read_anywhere[g] = true;
        }
    }
    let unread: Vec<RuleError> = groups
        .iter()
        .zip(&read_anywhere)
        .filter(|(_, read)| !**read)
        .filter_map(|(g, _)| {
            let first = nodes.get(*g.rules.first()?)?;
            let read_names = groups
                .iter()
                .zip(&read_anywhere)
                .filter(|(_, r)| **r)
                .map(|(o, _)| o.name.as_str());
            let help = match super::condition::did_you_mean(&g.name, read_names) {
                Some(d) => format!("{d} (a group that a classification or rule reads)"),
                None => "use a group that a classification or rule reads, or read this one".into(),
            };
            Some(
                RuleError::new(
                    &first.file,
                    format!("{}/group", first.pointer),
                    format!(
                        "group {:?} is written but never read by `group_fired` or `reasons_from`, so the rule changes nothing",
                        g.name,
                    ),
                )
                .with_help(Some(help)),
            )
        })
        .collect();
    let mut unread = unread;
    if manifest.format() >= 2 {
        unread.extend(untagged_decisions(&nodes, &deps));
    }
    if !unread.is_empty() {
        return Err(RuleSetError { errors: unread });
    }
    let order = match topological_order(&deps) {
        Ok(order) => order,
        Err(cycle) => {
            let first = &nodes[cycle[0]];
            return Err(RuleSetError {
                errors: vec![RuleError::new(
                    &first.file,
                    &first.pointer,
                    format!(
                        "these items depend on each other in a cycle: {}",
                        cycle
                            .iter()
                            .map(|&i| &*nodes[i].id)
                            .collect::<Vec<_>>()
                            .join(" -> ")
                    ),
                )],
            });
        }
    };
    let mut position = vec![0usize; nodes.len()];
    for (pos, &n) in order.iter().enumerate() {
        position[n] = pos;
    }
    for g in &mut groups {
        for r in &mut g.rules {
            *r = position[*r];
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let nodes: Vec<Node> = order
        .iter()
        .map(|&n| slots[n].take().expect("each node once"))
        .collect();

    // --- The assessment's contract --------------------------------------------------------------
    let mut errors = Errors(Vec::new());
    let out = resolve_outputs(&nodes, &dir_shown, &mut errors);
    if !errors.0.is_empty() {
        return Err(RuleSetError { errors: errors.0 });
    }
    // Criterion texts for explanations, computed once here.
    let mut nodes = nodes;
    for node in &mut nodes {
        match &mut node.kind {
            NodeKind::Rule(r) => {
                r.texts = super::describe::leaf_texts(&r.when, &facts, &params, &groups);
            }
            NodeKind::Classification(c) => {
                for case in &mut c.cases {
                    case.texts = super::describe::leaf_texts(&case.when, &facts, &params, &groups);
                }
            }
            NodeKind::Series(_) | NodeKind::Score(_) => {}
        }
    }
    let ident = crate::assessment::RuleSetRef {
        id: Arc::from(manifest.id.as_str()),
        version: Arc::from(manifest.version.as_str()),
        sha256: Arc::from(sha256.as_str()),
    };
    let presentation = files
        .iter()
        .flat_map(|f| {
            [
                ("reason_texts", &f.file.reason_texts),
                ("data_quality_texts", &f.file.data_quality_texts),
                ("cards", &f.file.cards),
                ("order_codes", &f.file.order_codes),
            ]
            .into_iter()
            .filter_map(|(section, value)| {
                value.as_ref().map(|v| super::PresentationSection {
                    file: f.display.clone(),
                    section,
                    value: v.clone(),
                })
            })
        })
        .collect();
    Ok(RuleSet {
        presentation,
        codesets,
        unmapped_codes,
        ident,
        manifest,
        sha256,
        dir: dir.to_path_buf(),
        codes,
        // An optional concept a version does not define has no codes: nothing maps to it.
        concepts: concepts
            .into_iter()
            .map(|c| {
                c.unwrap_or(ConceptConfig {
                    validity: Validity::Unlimited,
                    plausible: None,
                    codes: Vec::new(),
                    cites: String::new(),
                    supersedes: Vec::new(),
                    true_values: Vec::new(),
                })
            })
            .collect(),
        params,
        param_index,
        engine,
        hard_stops,
        mechanisms,
        recommendations,
        consult_triggers,
        rule_data_quality,
        facts,
        nodes,
        groups,
        out: out.expect("no errors"),
    })
}

/// Format 2: every item that feeds `ecmo_category` (the classification and everything it depends
/// on, transitively, through facts and groups) and every rule that emits a recommendation or a
/// consult trigger must carry `evidence` (and `cites`, which the schema and [`Ctx::cites`]
/// already require). `deps` are the nodes' direct dependencies, by index into `nodes`.
fn untagged_decisions(nodes: &[Node], deps: &[Vec<usize>]) -> Vec<RuleError> {
    let mut feeds = vec![false; nodes.len()];
    let mut todo: Vec<usize> = nodes
        .iter()
        .position(|n| &*n.id == "ecmo_category" && matches!(n.kind, NodeKind::Classification(_)))
        .into_iter()
        .collect();
    while let Some(n) = todo.pop() {
        if !std::mem::replace(&mut feeds[n], true) {
            todo.extend(deps[n].iter().filter(|d| !feeds[**d]));
        }
    }
    let mut errors = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let emits = match &node.kind {
            NodeKind::Rule(Rule {
                emits: Some(super::Emit::Recommendation { .. }),
                ..
            }) => Some("emits a recommendation"),
            NodeKind::Rule(Rule {
                emits: Some(super::Emit::Consult { .. }),
                ..
            }) => Some("emits a consult trigger"),
            _ => None,
        };
        let why = match (feeds[n], emits) {
            (true, _) if &*node.id == "ecmo_category" => "is the ECMO category",
            (true, _) => "feeds ecmo_category",
            (false, Some(e)) => e,
            (false, None) => continue,
        };
        let kind = match node.kind {
            NodeKind::Series(_) => "series",
            NodeKind::Score(_) => "score",
            NodeKind::Classification(_) => "classification",
            NodeKind::Rule(_) => "rule",
        };
        if node.evidence.is_none() {
            errors.push(
                RuleError::new(
                    &node.file,
                    &node.pointer,
                    format!("{kind} {} {why} but has no `evidence` tag", node.id),
                )
                .with_help(Some(
                    "write `evidence: V` (verified), `M` (from memory) or `H` (heuristic or policy) below `cites:`, as the knowledge base tags what it cites (any [M] source makes it M, else any [H] makes it H)"
                        .into(),
                )),
            );
        }
        if cited_sections(&node.cites).is_empty() {
            errors.push(
                RuleError::new(
                    &node.file,
                    format!("{}/cites", node.pointer),
                    format!(
                        "{kind} {} {why} but cites no knowledge-base section",
                        node.id
                    ),
                )
                .with_help(Some(
                    "write the section(s) this item encodes, e.g. `cites: \"§2.7\"`".into(),
                )),
            );
        }
    }
    errors
}

/// Kahn's algorithm, stable: among ready nodes the earliest defined goes first.
/// On a cycle, returns the nodes of one cycle.
fn topological_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependants[d].push(node);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(next) = ready.pop_first() {
        order.push(next);
        for &d in &dependants[next] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk unresolved dependencies until a node repeats.
    let start = (0..n).find(|&i| remaining[i] > 0).expect("a node is left");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = deps[current]
            .iter()
            .copied()
            .find(|&d| remaining[d] > 0)
            .expect("an unresolved node has an unresolved dependency");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(next);
            return Err(cycle);
        }
        path.push(next);
        current = next;
    }
}

fn compile_score(
    s: &ScoreDef,
    ptr: &str,
    fact_index: &HashMap<String, FactId>,
    kinds: &[FactKind],
    problems: &mut Vec<Problem>,
) -> Option<Score> {
    let min_items = s.min_items.unwrap_or(s.items.len());
    if min_items > s.items.len() {
        problems.push(Problem::new(
            format!("{ptr}/min_items"),
            format!("min_items {min_items} exceeds the {} items", s.items.len()),
        ));
    }
    if s.partial == Partial::LowerBound && s.aggregate != Aggregate::Sum {
        problems.push(Problem::new(
            format!("{ptr}/partial"),
            "partial: lower_bound needs aggregate: sum",
        ));
    }
    let mut items = Vec::new();
    let mut seen = Vec::new();
    for (i, item) in s.items.iter().enumerate() {
        let iptr = format!("{ptr}/items/{i}");
        if seen.contains(&item.id) {
            problems.push(Problem::new(
                format!("{iptr}/id"),
                format!("item id {} is used twice", item.id),
            ));
        }
        seen.push(item.id.clone());
        let Some(&fact) = fact_index.get(&item.fact) else {
            problems.push(
                Problem::new(
                    format!("{iptr}/fact"),
                    format!("unknown fact {:?}", item.fact),
                )
                .help(
                    super::condition::did_you_mean(
                        &item.fact,
                        fact_index.keys().map(String::as_str),
                    )
                    .unwrap_or_else(|| super::condition::FACT_HELP.into()),
                ),
            );
            continue;
        };
        let kind = &kinds[fact.index()];
        if let FactKind::Number { unit } = kind {
            match &item.unit {
                Some(u) if u == unit => {}
                Some(u) => problems.push(Problem::new(
                    format!("{iptr}/unit"),
                    format!("fact {} is in {unit}, but the bands say {u}", item.fact),
                )),
                None => problems.push(Problem::new(
                    format!("{iptr}/unit"),
                    format!(
                        "numeric fact {} needs `unit: {unit}` so the band thresholds have a unit",
                        item.fact
                    ),
                )),
            }
        }
        let mut bands = Vec::new();
        for (b, band) in item.bands.iter().enumerate() {
            let bptr = format!("{iptr}/bands/{b}");
            let obj = band.as_object().cloned().unwrap_or_default();
            let points = obj
                .get("points")
                .and_then(Value::as_f64)
                .unwrap_or_default();
            let Some((key, operand)) = obj.iter().find(|(k, _)| k.as_str() != "points") else {
                problems.push(Problem::new(&bptr, "a band needs a test besides `points`"));
                continue;
            };
            let test = match (key.as_str(), kind) {
                ("otherwise", _) => Some(BandTest::Otherwise),
                (op @ ("lt" | "le" | "gt" | "ge" | "eq"), FactKind::Number { .. }) => {
                    operand.as_f64().map(|t| {
                        let op = match op {
                            "lt" => Op::Lt,
                            "le" => Op::Le,
                            "gt" => Op::Gt,
                            "ge" => Op::Ge,
                            _ => Op::Eq,
                        };
                        BandTest::Compare(op, t)
                    })
                }
                ("is" | "eq", FactKind::Boolean) => operand.as_bool().map(BandTest::Is),
                ("eq", FactKind::Category { values }) => operand
                    .as_str()
                    .and_then(|s| values.iter().position(|v| &**v == s))
                    .map(|i| BandTest::Category(vec![i as u16])),
                ("in", FactKind::Category { values }) => operand.as_array().and_then(|list| {
                    list.iter()
                        .map(|s| {
                            s.as_str()
                                .and_then(|s| values.iter().position(|v| &**v == s))
                                .map(|i| i as u16)
                        })
                        .collect::<Option<Vec<u16>>>()
                        .map(BandTest::Category)
                }),
                _ => None,
            };
            match test {
                Some(t) => bands.push(Band { test: t, points }),
                None => problems.push(Problem::new(
                    format!("{bptr}/{key}"),
                    format!(
                        "band test `{key}: {operand}` does not fit fact {} ({})",
                        item.fact,
                        kind.describe()
                    ),
                )),
            }
        }
        // Every value must score: end with `otherwise`, or cover booleans / categories fully.
        let covered = match kind {
            _ if bands.last().is_some_and(|b| b.test == BandTest::Otherwise) => true,
            FactKind::Boolean => [true, false]
                .iter()
                .all(|v| bands.iter().any(|b| b.test == BandTest::Is(*v))),
            FactKind::Category { values } => (0..values.len() as u16).all(|v| {
                bands
                    .iter()
                    .any(|b| matches!(&b.test, BandTest::Category(cs) if cs.contains(&v)))
            }),
            _ => false,
        };
        if !covered {
            problems.push(Problem::new(
                format!("{iptr}/bands"),
                "bands do not cover every value: end with `{otherwise: true, points: ...}` or list every value",
            ));
        }
        if let Some(pos) = bands.iter().position(|b| b.test == BandTest::Otherwise)
            && pos + 1 != bands.len()
        {
            problems.push(Problem::new(
                format!("{iptr}/bands/{pos}"),
                "`otherwise` must be the last band",
            ));
        }
        let min_points = bands.iter().map(|b| b.points).fold(f64::INFINITY, f64::min);
        let band_texts = bands
            .iter()
            .map(|b| {
                let plural = if b.points == 1.0 { "" } else { "s" };
                let test = match &b.test {
                    BandTest::Compare(op, t) => format!("{} {t}", op.symbol()),
                    BandTest::Is(v) => format!("is {v}"),
                    BandTest::Category(cs) => match &kind {
                        FactKind::Category { values } => {
                            let names: Vec<&str> =
                                cs.iter().map(|c| &*values[*c as usize]).collect();
                            format!("is {}", names.join(" or "))
                        }
                        _ => String::new(),
                    },
                    BandTest::Otherwise => "otherwise".into(),
                };
                Arc::from(format!("{} point{plural} ({}: {test})", b.points, item.id))
            })
            .collect();
        items.push(ScoreItem {
            id: Arc::from(item.id.as_str()),
            fact,
            bands,
            min_points,
            band_texts,
            missing_text: Arc::from(format!("missing: no points ({})", item.id)),
        });
    }
    (items.len() == s.items.len()).then_some(Score {
        aggregate: s.aggregate,
        min_items,
        partial: s.partial,
        items,
        fact: FactId(0),
        fact_complete: FactId(0),
    })
}

struct OutcomeView<'a> {
    value: &'a Option<String>,
    reasons: &'a [String],
    reasons_from: &'a [String],
    attributes: &'a BTreeMap<String, Value>,
}

impl<'a> OutcomeView<'a> {
    fn from_case(c: &'a CaseDef) -> Self {
        OutcomeView {
            value: &c.value,
            reasons: &c.reasons,
            reasons_from: &c.reasons_from,
            attributes: &c.attributes,
        }
    }
    fn from_otherwise(o: &'a OutcomeDef) -> Self {
        OutcomeView {
            value: &o.value,
            reasons: &o.reasons,
            reasons_from: &o.reasons_from,
            attributes: &o.attributes,
        }
    }
}

fn outcome(
    o: &OutcomeView,
    values: &[Arc<str>],
    groups: &HashMap<String, usize>,
    ptr: &str,
    problems: &mut Vec<Problem>,
) -> Option<Outcome> {
    let mut reasons_from = Vec::new();
    for (i, g) in o.reasons_from.iter().enumerate() {
        match groups.get(g) {
            Some(&gi) => reasons_from.push(gi),
            None => problems.push(
                Problem::new(
                    format!("{ptr}/reasons_from/{i}"),
                    format!("unknown group {g:?}: no rule writes it (`group: {g}`)"),
                )
                .help(
                    super::condition::did_you_mean(g, groups.keys().map(String::as_str))
                        .unwrap_or_else(|| {
                            "a group is named by the `group:` of the rules that form it".into()
                        }),
                ),
            ),
        }
    }
    if reasons_from.len() != o.reasons_from.len() {
        return None;
    }
    Some(Outcome {
        value: o
            .value
            .as_ref()
            .and_then(|v| values.iter().position(|x| **x == **v))
            .map(|i| i as u16),
        reasons: o.reasons.iter().map(|r| Arc::from(r.as_str())).collect(),
        reasons_from,
        attributes: o.attributes.clone(),
    })
}

/// The catalogues a rule's `emits` can name.
struct Catalogues<'a> {
    recommendations: &'a [CatalogEntry],
    mechanisms: &'a [CatalogEntry],
    consult_triggers: &'a [CatalogEntry],
    data_quality: &'a [Arc<str>],
}

/// Where `code` is in a catalogue; if it is not, a problem naming the catalogue.
fn catalogue_index(
    code: &str,
    list: &[CatalogEntry],
    section: &str,
    ptr: String,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let found = list.iter().position(|r| *r.code == *code);
    if found.is_none() {
        problems.push(
            Problem::new(ptr, format!("{code} is not in the `{section}` catalogue")).help(
                super::condition::did_you_mean(code, list.iter().map(|r| &*r.code)).unwrap_or_else(
                    || format!("add an entry to `{section}` (code, display, cites)"),
                ),
            ),
        );
    }
    found
}

fn compile_emit(
    e: &EmitDef,
    cat: &Catalogues<'_>,
    ptr: &str,
    problems: &mut Vec<Problem>,
) -> Option<super::Emit> {
    let urgency = |what: &str, problems: &mut Vec<Problem>| {
        if e.urgency.is_none() {
            problems.push(Problem::new(
                ptr,
                format!("{what} needs an `urgency` (routine, urgent, emergent)"),
            ));
        }
        e.urgency
    };
    if let Some(code) = &e.data_quality {
        if e.recommendation.is_some() || e.mechanism.is_some() || e.consult.is_some() {
            problems.push(Problem::new(
                ptr,
                "emit exactly one of `recommendation`, `mechanism`, `consult` or `data_quality`",
            ));
            return None;
        }
        if e.urgency.is_some() {
            problems.push(Problem::new(
                format!("{ptr}/urgency"),
                "data-quality items carry no urgency",
            ));
            return None;
        }
        let index = cat.data_quality.iter().position(|c| **c == **code)?;
        return Some(super::Emit::DataQuality { index });
    }
    match (&e.recommendation, &e.mechanism, &e.consult) {
        (Some(code), None, None) => {
            let at = format!("{ptr}/recommendation");
            let index =
                catalogue_index(code, cat.recommendations, "recommendations", at, problems)?;
            let urgency = urgency("a recommendation", problems)?;
            Some(super::Emit::Recommendation { index, urgency })
        }
        (None, None, Some(code)) => {
            let at = format!("{ptr}/consult");
            let index =
                catalogue_index(code, cat.consult_triggers, "consult_triggers", at, problems)?;
            let urgency = urgency("a consult trigger", problems)?;
            Some(super::Emit::Consult { index, urgency })
        }
        (None, Some(code), None) => {
            if e.urgency.is_some() {
                problems.push(Problem::new(
                    format!("{ptr}/urgency"),
                    "mechanisms carry no urgency",
                ));
                return None;
            }
            let at = format!("{ptr}/mechanism");
            let index = catalogue_index(code, cat.mechanisms, "mechanisms", at, problems)?;
            Some(super::Emit::Mechanism { index })
        }
        _ => {
            problems.push(Problem::new(
                ptr,
                "emit exactly one of `recommendation`, `mechanism` or `consult`",
            ));
            None
        }
    }
}

/// (classification node, attribute, validity test, what it must be).
type AttributeCheck = (usize, &'static str, fn(&Value) -> bool, &'static str);

fn resolve_outputs(nodes: &[Node], dir: &str, errors: &mut Errors) -> Option<Outputs> {
    #[derive(PartialEq)]
    enum K {
        Series,
        Score,
        Classification,
        Rule,
    }
    let mut find = |id: &str, want: K, field: &str| -> usize {
        let found = nodes.iter().position(|n| {
            *n.id == *id
                && matches!(
                    (&n.kind, &want),
                    (NodeKind::Series(_), K::Series)
                        | (NodeKind::Score(_), K::Score)
                        | (NodeKind::Classification(_), K::Classification)
                        | (NodeKind::Rule(_), K::Rule)
                )
        });
        found.unwrap_or_else(|| {
            let kind = match want {
                K::Series => "series",
                K::Score => "score",
                K::Classification => "classification",
                K::Rule => "rule",
            };
            errors.push(
                dir,
                "",
                format!("the engine maps {kind} `{id}` onto the assessment field `{field}`: define a {kind} with this id"),
            );
            usize::MAX
        })
    };
    let out = Outputs {
        eolia_runs: [
            find("eolia_c1_run", K::Series, "eolia.c1_duration_h"),
            find("eolia_c2_run", K::Series, "eolia.c2_duration_h"),
            find("eolia_c3_run", K::Series, "eolia.c3_duration_h"),
        ],
        eolia: [
            find("eolia_c1", K::Rule, "eolia.c1"),
            find("eolia_c2", K::Rule, "eolia.c2"),
            find("eolia_c3", K::Rule, "eolia.c3"),
        ],
        prone_recommended: find("prone_recommended", K::Rule, "prone_recommended"),
        acp_high_risk: find("acp_high_risk", K::Rule, "acp_high_risk"),
        echo_acp: find("echo_acp", K::Rule, "echo_acp"),
        rv_dysfunction: find("rv_dysfunction", K::Rule, "rv_dysfunction"),
        murray: find("murray", K::Score, "murray_score"),
        acp_risk: find("acp_risk", K::Score, "acp_risk_score"),
        resp: find("resp", K::Score, "resp_score"),
        berlin_category: find("berlin_category", K::Classification, "berlin_category"),
        global_category: find("global_category", K::Classification, "global_category"),
        global_basis: find("global_basis", K::Classification, "global_basis"),
        ecmo_category: find("ecmo_category", K::Classification, "ecmo_category"),
        resp_class: find("resp_class", K::Classification, "resp_class"),
    };
    if !errors.0.is_empty() {
        return None;
    }
    // Attributes the engine reads must have the right type.
    let checks: [AttributeCheck; 2] = [
        (
            out.ecmo_category,
            "urgency",
            |v| v.as_str().and_then(super::Urgency::from_name).is_some(),
            "routine, urgent or emergent",
        ),
        (out.resp_class, "survival_pct", Value::is_number, "a number"),
    ];
    for (node, attr, ok, expected) in checks {
        let n = &nodes[node];
        if let NodeKind::Classification(c) = &n.kind {
            let outcomes = c
                .cases
                .iter()
                .map(|k| &k.outcome)
                .chain(std::iter::once(&c.otherwise));
            for (i, o) in outcomes.enumerate() {
                if let Some(v) = o.attributes.get(attr)
                    && !ok(v)
                {
                    errors.push(
                        &n.file,
                        format!("{}/cases/{i}/attributes/{attr}", n.pointer),
                        format!("{attr} must be {expected}, not {v}"),
                    );
                }
            }
        }
    }
    errors.0.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cited_sections() {
        assert_eq!(cited_sections("§2.1, §6.1 (EOLIA)"), vec!["§2.1", "§6.1"]);
        assert_eq!(cited_sections("see §4.4."), vec!["§4.4"]);
        assert!(cited_sections("none").is_empty());
        assert!(cited_sections("§").is_empty());
    }

    #[test]
    fn orders_dependencies_and_reports_cycles() {
        assert_eq!(
            topological_order(&[vec![1], vec![], vec![0]]),
            Ok(vec![1, 0, 2])
        );
        let err = topological_order(&[vec![1], vec![2], vec![0]]).unwrap_err();
        assert_eq!(err.first(), err.last());
        assert_eq!(err.len(), 4);
    }
}
