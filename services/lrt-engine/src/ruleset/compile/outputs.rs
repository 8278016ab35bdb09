//! Pass 8: the assessment's contract: the items the engine builds the assessment from exist
//! with the right kind, and the attributes it reads have the right type.

use serde_json::Value;

use super::super::{Node, NodeKind, Outputs, RuleSetError, Urgency};
use super::Errors;

/// Where each item the assessment is built from is in `nodes` (the nodes in evaluation order);
/// `dir` is the rule-set folder as shown in problems.
pub(super) fn resolve(nodes: &[Node], dir: &str) -> Result<Outputs, RuleSetError> {
    let mut errors = Errors(Vec::new());
    let out = find_outputs(nodes, dir, &mut errors);
    errors.check()?;
    check_attributes(nodes, &out, &mut errors);
    errors.check()?;
    Ok(out)
}

/// (classification node, attribute, validity test, what it must be).
type AttributeCheck = (usize, &'static str, fn(&Value) -> bool, &'static str);

/// Each item the engine maps onto an assessment field, found by id and kind (`usize::MAX` and a
/// problem where one is missing).
fn find_outputs(nodes: &[Node], dir: &str, errors: &mut Errors) -> Outputs {
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
    Outputs {
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
    }
}

/// The classification attributes the engine reads have the right type in every outcome.
fn check_attributes(nodes: &[Node], out: &Outputs, errors: &mut Errors) {
    let checks: [AttributeCheck; 2] = [
        (
            out.ecmo_category,
            "urgency",
            |v| v.as_str().and_then(Urgency::from_name).is_some(),
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
}
