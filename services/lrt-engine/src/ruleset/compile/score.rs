//! Pass 6, scores: each item reads a known fact in the unit of its bands, the bands cover every
//! value, and `min_items`/`partial` are consistent.

use std::collections::HashMap;
use std::sync::Arc;

use super::super::condition::{FACT_HELP, Op, Problem, did_you_mean};
use super::super::files::{Aggregate, Partial, ScoreDef};
use super::super::{Band, BandTest, Score, ScoreItem};
use crate::facts::{FactId, FactKind};
use serde_json::Value;

/// The score of `s` at `ptr`; its two facts are set by the caller.
pub(super) fn compile(
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
                    did_you_mean(&item.fact, fact_index.keys().map(String::as_str))
                        .unwrap_or_else(|| FACT_HELP.into()),
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
