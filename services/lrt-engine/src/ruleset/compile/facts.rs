//! Pass 5: the facts: the engine's own, then one or two per rule-set item (series, score,
//! classification, rule), each name once; and the groups the rules write.

use std::collections::HashMap;
use std::sync::Arc;

use super::super::files::CatalogEntry;
use super::super::files::{ClassificationDef, RuleDef, ScoreDef, SeriesDef};
use super::super::schema::ParsedFile;
use super::super::{FactInfo, Group};
use super::Ctx;
use crate::facts::{Fact, FactId, FactKind};

/// An item's definition, before compilation.
pub(super) enum Def<'f> {
    Series(&'f SeriesDef),
    Score(&'f ScoreDef),
    Classification(&'f ClassificationDef),
    Rule(&'f RuleDef),
}

/// An item to compile: its id, its definition and where it is.
pub(super) struct Pending<'f> {
    pub(super) id: &'f str,
    pub(super) file: &'f str,
    pub(super) ptr: String,
    pub(super) def: Def<'f>,
}

/// Every fact, and the items in the order the files define them (series, scores,
/// classifications, then rules of each file).
pub(super) struct Declared<'f> {
    pub(super) facts: Vec<FactInfo>,
    /// Fact name → id.
    pub(super) index: HashMap<String, FactId>,
    pub(super) pending: Vec<Pending<'f>>,
    /// The facts each pending item produces (first = its main fact); none when its id is taken.
    pub(super) produced: Vec<Vec<FactId>>,
}

impl<'f> Declared<'f> {
    pub(super) fn collect(
        files: &'f [ParsedFile],
        hard_stops: &[CatalogEntry],
        ctx: &mut Ctx,
    ) -> Self {
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
        let pending = pending(files);
        let mut index: HashMap<String, FactId> = facts
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_string(), FactId(i as u16)))
            .collect();
        let mut produced: Vec<Vec<FactId>> = Vec::with_capacity(pending.len());
        let mut owner: HashMap<&str, (&str, &str)> = HashMap::new();
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
            owner.insert(p.id, (p.file, &p.ptr));
            for (name, kind, description) in item_facts(p) {
                if index.contains_key(&name) {
                    ctx.errors.push(
                        p.file,
                        format!("{}/id", p.ptr),
                        format!("{name} is already the name of an engine fact"),
                    );
                    continue;
                }
                let id = FactId(facts.len() as u16);
                index.insert(name.clone(), id);
                facts.push(FactInfo {
                    name: Arc::from(name),
                    kind,
                    description,
                });
                mine.push(id);
            }
            produced.push(mine);
        }
        Declared {
            facts,
            index,
            pending,
            produced,
        }
    }
}

/// The items of every file, in file order.
fn pending(files: &[ParsedFile]) -> Vec<Pending<'_>> {
    let mut pending = Vec::new();
    for f in files {
        let file = f.display.as_str();
        let items = f.file.series.iter().enumerate().map(|(i, s)| Pending {
            id: &s.id,
            file,
            ptr: format!("/series/{i}"),
            def: Def::Series(s),
        });
        let items = items.chain(f.file.scores.iter().enumerate().map(|(i, s)| Pending {
            id: &s.id,
            file,
            ptr: format!("/scores/{i}"),
            def: Def::Score(s),
        }));
        let items = items.chain(
            f.file
                .classifications
                .iter()
                .enumerate()
                .map(|(i, c)| Pending {
                    id: &c.id,
                    file,
                    ptr: format!("/classifications/{i}"),
                    def: Def::Classification(c),
                }),
        );
        let items = items.chain(f.file.rules.iter().enumerate().map(|(i, r)| Pending {
            id: &r.id,
            file,
            ptr: format!("/rules/{i}"),
            def: Def::Rule(r),
        }));
        pending.extend(items);
    }
    pending
}

/// The facts an item produces: (name, kind, description), its main fact first.
fn item_facts(p: &Pending<'_>) -> Vec<(String, FactKind, String)> {
    match &p.def {
        Def::Series(_) => vec![
            (
                format!("{}.latest_qualifies", p.id),
                FactKind::Boolean,
                "The latest blood gas qualifies (null when there is none recent enough).".into(),
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
    }
}

/// The groups rules write (`group:`), in the order first written, with their rules (by
/// position in [`Declared::pending`]).
pub(super) struct Groups {
    pub(super) list: Vec<Group>,
    /// Group name → position in `list`.
    pub(super) index: HashMap<String, usize>,
}

impl Groups {
    pub(super) fn collect(declared: &Declared<'_>) -> Self {
        let mut list: Vec<Group> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (n, p) in declared.pending.iter().enumerate() {
            if let Def::Rule(r) = &p.def
                && let Some(g) = &r.group
            {
                let gi = *index.entry(g.clone()).or_insert_with(|| {
                    list.push(Group {
                        name: g.clone(),
                        rules: Vec::new(),
                    });
                    list.len() - 1
                });
                list[gi].rules.push(n);
            }
        }
        Groups { list, index }
    }
}
