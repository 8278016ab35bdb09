//! Pass 3: the concepts (`concepts:`): the value sets that map the EHR's codes onto the
//! engine's concepts, with units, validity and plausible ranges.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::super::condition::suggest;
use super::super::schema::ParsedFile;
use super::super::{ConceptConfig, MappedCode, Validity};
use super::Ctx;
use super::parameters::Parameters;
use crate::concept::{Concept, Dimension, Plausible};

/// The concepts the files define, by [`Concept::index`], and the codes that map onto them.
pub(super) struct Concepts {
    configs: Vec<Option<ConceptConfig>>,
    codes: CodeMap,
}

/// system → code → the concept it means.
pub(super) type CodeMap = FxHashMap<Box<str>, FxHashMap<Box<str>, MappedCode>>;

impl Concepts {
    pub(super) fn compile(files: &[ParsedFile], params: &Parameters, ctx: &mut Ctx) -> Self {
        let mut configs: Vec<Option<ConceptConfig>> = vec![None; Concept::ALL.len()];
        let mut codes = CodeMap::default();
        let mut code_owner: HashMap<(String, String), String> = HashMap::new();
        let mut supersedes: Vec<(Concept, Concept)> = Vec::new();
        for f in files {
            for (name, c) in &f.file.concepts {
                let ptr = format!("/concepts/{name}");
                let Some(concept) = Concept::from_name(name) else {
                    ctx.errors.push(
                        &f.display,
                        &ptr,
                        format!(
                            "unknown concept {name:?}{} (the engine knows: {})",
                            suggest(name, Concept::ALL.iter().map(|c| c.name())),
                            Concept::ALL
                                .iter()
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                };
                if configs[concept.index()].is_some() {
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
                    p => match params.window(ctx, &f.display, &format!("{ptr}/validity"), p) {
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
                configs[concept.index()] = Some(ConceptConfig {
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
            if let Some(cfg) = configs[winner.index()].as_mut() {
                cfg.supersedes.push(*loser);
            }
        }
        for c in Concept::ALL {
            if configs[c.index()].is_none() && c.required() {
                ctx.errors.push(
                    &ctx.dir,
                    "",
                    format!(
                        "concept {} has no definition under `concepts` (codes, unit, validity)",
                        c.name()
                    ),
                );
            }
        }
        Concepts { configs, codes }
    }

    /// Whether `system|code` maps onto a concept.
    pub(super) fn maps(&self, system: &str, code: &str) -> bool {
        self.codes.get(system).is_some_and(|m| m.contains_key(code))
    }

    /// The code map, and one configuration per concept: an optional concept a version does not
    /// define has no codes, so nothing maps to it.
    pub(super) fn into_parts(self) -> (CodeMap, Vec<ConceptConfig>) {
        let configs = self
            .configs
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
            .collect();
        (self.codes, configs)
    }
}
