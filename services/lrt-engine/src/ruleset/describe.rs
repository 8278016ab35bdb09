//! Human-readable texts of conditions, computed once when a rule set is compiled so that
//! explanations cost no formatting at evaluation time.

use std::sync::Arc;

use super::condition::{Cond, FactRef, Rhs};
use super::{FactInfo, Group, Parameter};
use crate::facts::FactKind;

/// The fixed text of one criterion (one leaf of a condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafText {
    /// The fact tested, or `group:<name>`.
    pub fact: Arc<str>,
    /// The test, e.g. `< 80 mm[Hg] (eolia_c2_pf_max)`; `must not hold: ...` under a `not`.
    pub test: Arc<str>,
    /// The fact's unit (none for dimensionless and non-numeric facts).
    pub unit: Option<&'static str>,
}

/// Texts of the leaves of `cond`, in [`Cond::leaves`] order.
pub fn leaf_texts(
    cond: &Cond,
    facts: &[FactInfo],
    params: &[Parameter],
    groups: &[Group],
) -> Vec<LeafText> {
    let mut leaves = Vec::new();
    cond.leaves(false, &mut leaves);
    leaves
        .into_iter()
        .map(|(leaf, negated)| {
            let (fact, unit) = match leaf_fact(leaf) {
                Some(FactRef::Global(id)) => {
                    let info = &facts[id.index()];
                    let unit = match info.kind {
                        FactKind::Number { unit } if unit != "1" => Some(unit),
                        _ => None,
                    };
                    (info.name.clone(), unit)
                }
                Some(FactRef::Abg(field)) => (Arc::from(field.name()), Some(field.unit())),
                None => match leaf {
                    Cond::GroupFired(g) => (Arc::from(format!("group:{}", groups[*g].name)), None),
                    _ => (Arc::from(""), None),
                },
            };
            let test = test_text(leaf, facts, params);
            let test = if negated {
                format!("must not hold: {test}")
            } else {
                test
            };
            LeafText {
                fact,
                test: Arc::from(test),
                unit,
            }
        })
        .collect()
}

pub fn leaf_fact(leaf: &Cond) -> Option<FactRef> {
    match leaf {
        Cond::Compare { fact, .. }
        | Cond::In { fact, .. }
        | Cond::Is { fact, .. }
        | Cond::Missing { fact, .. }
        | Cond::Contains { fact, .. } => Some(*fact),
        _ => None,
    }
}

fn test_text(leaf: &Cond, facts: &[FactInfo], params: &[Parameter]) -> String {
    let values = |f: &FactRef| match f {
        FactRef::Global(id) => match &facts[id.index()].kind {
            FactKind::Category { values } | FactKind::Set { values } => values.clone(),
            _ => Vec::new(),
        },
        FactRef::Abg(_) => Vec::new(),
    };
    let value_name =
        |f: &FactRef, i: usize| values(f).get(i).map(|v| v.to_string()).unwrap_or_default();
    match leaf {
        Cond::Compare { fact, op, rhs } => match rhs {
            Rhs::Param { index, value } => {
                let p = &params[*index];
                match p.unit.as_str() {
                    "1" => format!("{} {} ({})", op.symbol(), value, p.name),
                    unit => format!("{} {} {unit} ({})", op.symbol(), value, p.name),
                }
            }
            Rhs::Bool(b) => format!("{} {b}", op.symbol()),
            Rhs::Category(c) => format!("{} {}", op.symbol(), value_name(fact, *c as usize)),
        },
        Cond::In { fact, values: cs } => {
            let names: Vec<String> = cs.iter().map(|c| value_name(fact, *c as usize)).collect();
            format!("in [{}]", names.join(", "))
        }
        Cond::Is { value, .. } => format!("is {value}"),
        Cond::Missing { missing: true, .. } => "is missing".into(),
        Cond::Missing { missing: false, .. } => "is known".into(),
        Cond::Contains { fact, bit } => format!("contains {}", value_name(fact, *bit as usize)),
        Cond::GroupFired(_) => "a rule of the group fired".into(),
        Cond::All(_) | Cond::Any(_) | Cond::Not(_) => String::new(),
    }
}
