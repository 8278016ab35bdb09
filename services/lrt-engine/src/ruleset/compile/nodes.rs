//! Pass 6: each item (series, score, classification, rule) compiled into a [`Node`]: its
//! conditions, windows, bands, outcomes and `emits` checked against the facts, parameters, groups
//! and catalogues of the passes before.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::super::condition::{FACT_HELP, Problem, Scope, did_you_mean};
use super::super::files::{CaseDef, ClassificationDef, OutcomeDef, RuleDef, ScoreDef, SeriesDef};
use super::super::{Case, Classification, Emit, Node, NodeKind, Outcome, Rule, Series};
use super::facts::{Declared, Def, Groups, Pending};
use super::parameters::Parameters;
use super::{Catalogues, Ctx, emit, score};
use crate::facts::{FactId, FactKind};

/// One node per item, in the order of [`Declared::pending`]; `None` where the item has problems
/// (they are in `ctx`) or its id is taken.
pub(super) fn compile(
    declared: &Declared<'_>,
    groups: &Groups,
    params: &Parameters,
    catalogues: &Catalogues,
    ctx: &mut Ctx,
) -> Vec<Option<Node>> {
    let pass = NodePass {
        facts: &declared.index,
        kinds: declared.facts.iter().map(|f| f.kind.clone()).collect(),
        params,
        groups,
        catalogues,
    };
    declared
        .pending
        .iter()
        .zip(&declared.produced)
        .map(|(p, produced)| pass.node(p, produced, ctx))
        .collect()
}

/// What an item's definition is checked against.
struct NodePass<'a> {
    facts: &'a HashMap<String, FactId>,
    /// Each fact's kind, by [`FactId`].
    kinds: Vec<FactKind>,
    params: &'a Parameters,
    groups: &'a Groups,
    catalogues: &'a Catalogues,
}

impl NodePass<'_> {
    /// What conditions may name; `allow_abg` inside a series (the `abg.*` facts of each gas).
    fn scope(&self, allow_abg: bool) -> Scope<'_> {
        Scope {
            facts: self.facts,
            kinds: &self.kinds,
            params: &self.params.index,
            param_values: &self.params.values,
            groups: &self.groups.index,
            allow_abg,
        }
    }

    /// The node of item `p`, which produces the facts `produced` (its main fact first).
    fn node(&self, p: &Pending<'_>, produced: &[FactId], ctx: &mut Ctx) -> Option<Node> {
        if produced.is_empty() {
            return None;
        }
        let mut problems = Vec::new();
        let (cites, evidence, description, kind) = match &p.def {
            Def::Series(s) => {
                let kind = self.series(s, p, produced, ctx, &mut problems);
                (&s.cites, s.evidence, &s.description, kind)
            }
            Def::Score(s) => {
                let kind = self.score(s, p, produced, ctx, &mut problems);
                (&s.cites, s.evidence, &s.description, kind)
            }
            Def::Classification(c) => {
                let kind = self.classification(c, p, produced, ctx, &mut problems);
                (&c.cites, c.evidence, &c.description, kind)
            }
            Def::Rule(r) => {
                let kind = self.rule(r, p, produced, ctx, &mut problems);
                (&r.cites, r.evidence, &r.description, kind)
            }
        };
        ctx.errors.problems(p.file, problems);
        let kind = kind?;
        let file_name = Path::new(p.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(Node {
            id: Arc::from(p.id),
            cites: Arc::from(cites.as_str()),
            evidence,
            file: p.file.to_string(),
            pointer: p.ptr.clone(),
            description: description.clone(),
            subject: Arc::from(self.subject(&kind, p.id)),
            source: Arc::from(format!("{file_name}#{}", p.ptr)),
            kind,
        })
    }

    /// What a node's explanation is about: the catalogue entry a rule emits, else its id.
    fn subject(&self, kind: &NodeKind, id: &str) -> String {
        let cat = self.catalogues;
        match kind {
            NodeKind::Rule(Rule {
                emits: Some(emit), ..
            }) => match emit {
                Emit::Recommendation { index, .. } => {
                    format!("recommendation:{}", cat.recommendations[*index].code)
                }
                Emit::Mechanism { index } => format!("mechanism:{}", cat.mechanisms[*index].code),
                Emit::Consult { index, .. } => {
                    format!("consult:{}", cat.consult_triggers[*index].code)
                }
                Emit::DataQuality { index } => format!("data_quality:{}", cat.data_quality[*index]),
            },
            _ => id.to_string(),
        }
    }

    fn series(
        &self,
        s: &SeriesDef,
        p: &Pending<'_>,
        produced: &[FactId],
        ctx: &mut Ctx,
        problems: &mut Vec<Problem>,
    ) -> Option<NodeKind> {
        ctx.cites(p.file, &p.ptr, &s.cites);
        let window = |ctx: &mut Ctx, field: &str, name: &str| {
            self.params
                .window(ctx, p.file, &format!("{}/{field}", p.ptr), name)
        };
        let lookback = window(ctx, "lookback", &s.lookback);
        let max_gap = window(ctx, "max_gap", &s.max_gap);
        let latest = window(ctx, "latest_max_age", &s.latest_max_age);
        let qualifies =
            self.scope(true)
                .compile(&s.qualifies, &format!("{}/qualifies", p.ptr), problems);
        Some(NodeKind::Series(Series {
            qualifies: qualifies?,
            lookback_ms: lookback?,
            max_gap_ms: max_gap?,
            latest_max_age_ms: latest?,
            fact_latest: produced[0],
            fact_duration: produced[1],
        }))
    }

    fn score(
        &self,
        s: &ScoreDef,
        p: &Pending<'_>,
        produced: &[FactId],
        ctx: &mut Ctx,
        problems: &mut Vec<Problem>,
    ) -> Option<NodeKind> {
        ctx.cites(p.file, &p.ptr, &s.cites);
        let mut score = score::compile(s, &p.ptr, self.facts, &self.kinds, problems)?;
        score.fact = produced[0];
        score.fact_complete = produced[1];
        Some(NodeKind::Score(score))
    }

    fn classification(
        &self,
        c: &ClassificationDef,
        p: &Pending<'_>,
        produced: &[FactId],
        ctx: &mut Ctx,
        problems: &mut Vec<Problem>,
    ) -> Option<NodeKind> {
        ctx.cites(p.file, &p.ptr, &c.cites);
        let values = match &self.kinds[produced[0].index()] {
            FactKind::Category { values } => values.clone(),
            _ => Vec::new(),
        };
        let mut cases = Vec::new();
        let mut ok = true;
        for (i, case) in c.cases.iter().enumerate() {
            let cptr = format!("{}/cases/{i}", p.ptr);
            let when = self
                .scope(false)
                .compile(&case.when, &format!("{cptr}/when"), problems);
            let outcome = self.outcome(&OutcomeView::from_case(case), &values, &cptr, problems);
            match (when, outcome) {
                (Some(w), Some(o)) => cases.push(Case {
                    when: w,
                    outcome: o,
                    texts: Vec::new(),
                }),
                _ => ok = false,
            }
        }
        let otherwise = self.outcome(
            &OutcomeView::from_otherwise(&c.otherwise),
            &values,
            &format!("{}/otherwise", p.ptr),
            problems,
        );
        match (ok, otherwise) {
            (true, Some(o)) => Some(NodeKind::Classification(Classification {
                values,
                cases,
                otherwise: o,
                fact: produced[0],
            })),
            _ => None,
        }
    }

    fn rule(
        &self,
        r: &RuleDef,
        p: &Pending<'_>,
        produced: &[FactId],
        ctx: &mut Ctx,
        problems: &mut Vec<Problem>,
    ) -> Option<NodeKind> {
        ctx.cites(p.file, &p.ptr, &r.cites);
        let when = self
            .scope(false)
            .compile(&r.when, &format!("{}/when", p.ptr), problems);
        let mut requires = Vec::new();
        for (i, name) in r.requires.iter().enumerate() {
            match self.facts.get(name) {
                Some(&id) => requires.push(id),
                None => problems.push(
                    Problem::new(
                        format!("{}/requires/{i}", p.ptr),
                        format!("unknown fact {name:?}"),
                    )
                    .help(
                        did_you_mean(name, self.facts.keys().map(String::as_str))
                            .unwrap_or_else(|| FACT_HELP.into()),
                    ),
                ),
            }
        }
        let emits = r
            .emits
            .as_ref()
            .and_then(|e| emit::compile(e, self.catalogues, &format!("{}/emits", p.ptr), problems));
        let emits_ok = r.emits.is_none() || emits.is_some();
        match when {
            Some(w) if emits_ok && requires.len() == r.requires.len() => {
                Some(NodeKind::Rule(Rule {
                    when: w,
                    requires,
                    group: r.group.as_ref().map(|g| self.groups.index[g]),
                    reason: Arc::from(r.reason.as_deref().unwrap_or(&r.id)),
                    emits,
                    fact: produced[0],
                    texts: Vec::new(),
                }))
            }
            _ => None,
        }
    }

    /// A classification's outcome: its value among `values`, its reasons and the groups whose
    /// firing rules' reasons it takes.
    fn outcome(
        &self,
        o: &OutcomeView,
        values: &[Arc<str>],
        ptr: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Outcome> {
        let groups = &self.groups.index;
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
                        did_you_mean(g, groups.keys().map(String::as_str)).unwrap_or_else(|| {
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
}

/// A case's outcome or the `otherwise` outcome, read alike.
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
