//! Pass 7: the nodes' dependencies (through facts and groups), the checks that need them, and
//! the order the engine evaluates the nodes in.

use std::collections::{BTreeSet, HashMap};

use super::super::{Emit, Group, Node, NodeKind, Rule, RuleError, RuleSetError};
use super::cited_sections;
use super::facts::Groups;
use crate::facts::FactId;

/// The nodes in evaluation order (each after everything it reads) and the groups with their
/// rules renumbered to that order; `produced` are the facts each node produces, by node.
///
/// Problems: a group that is written but never read, (format 2) a decision without `evidence`,
/// a dependency cycle.
pub(super) fn order(
    nodes: Vec<Node>,
    produced: &[Vec<FactId>],
    groups: Groups,
    format: u32,
) -> Result<(Vec<Node>, Vec<Group>), RuleSetError> {
    let mut groups = groups.list;
    let deps = dependencies(&nodes, produced, &groups);
    let mut errors = unread_groups(&nodes, &groups);
    if format >= 2 {
        errors.extend(untagged_decisions(&nodes, &deps));
    }
    if !errors.is_empty() {
        return Err(RuleSetError { errors });
    }
    let order = topological_order(&deps).map_err(|cycle| RuleSetError {
        errors: vec![cycle_error(&nodes, &cycle)],
    })?;
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
    let nodes = order
        .iter()
        .map(|&n| {
            slots[n]
                .take()
                .expect("a topological order has each node once")
        })
        .collect();
    Ok((nodes, groups))
}

/// The groups a node reads: through `group_fired` in its conditions and its outcomes'
/// `reasons_from`.
fn groups_read(node: &Node, out: &mut Vec<usize>) {
    match &node.kind {
        NodeKind::Classification(c) => {
            for case in &c.cases {
                case.when.groups(out);
                out.extend(&case.outcome.reasons_from);
            }
            out.extend(&c.otherwise.reasons_from);
        }
        NodeKind::Rule(r) => r.when.groups(out),
        NodeKind::Series(_) | NodeKind::Score(_) => {}
    }
}

/// Each node's direct dependencies (by index into `nodes`): the producers of the facts it reads
/// and the rules of the groups it reads.
fn dependencies(nodes: &[Node], produced: &[Vec<FactId>], groups: &[Group]) -> Vec<Vec<usize>> {
    let producer: HashMap<FactId, usize> = produced
        .iter()
        .enumerate()
        .flat_map(|(n, fs)| fs.iter().map(move |f| (*f, n)))
        .collect();
    nodes
        .iter()
        .map(|node| {
            let mut read = Vec::new();
            match &node.kind {
                NodeKind::Series(s) => s.qualifies.facts(&mut read),
                NodeKind::Score(s) => read.extend(s.items.iter().map(|i| i.fact)),
                NodeKind::Classification(c) => {
                    for case in &c.cases {
                        case.when.facts(&mut read);
                    }
                }
                NodeKind::Rule(r) => {
                    r.when.facts(&mut read);
                    read.extend(&r.requires);
                }
            }
            let mut read_groups = Vec::new();
            groups_read(node, &mut read_groups);
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
        .collect()
}

/// Every group that a rule writes must be read (`group_fired` or `reasons_from`): a misspelt
/// `group:` would otherwise make its rules silently do nothing.
fn unread_groups(nodes: &[Node], groups: &[Group]) -> Vec<RuleError> {
    let mut read_anywhere = vec![false; groups.len()];
    for node in nodes {
        let mut read_groups = Vec::new();
        groups_read(node, &mut read_groups);
        for g in read_groups {
            read_anywhere[g] = true;
        }
    }
    groups
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
            let help = match super::super::condition::did_you_mean(&g.name, read_names) {
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
        .collect()
}

/// The problem of a dependency cycle (`cycle`: node indices, the first repeated last).
fn cycle_error(nodes: &[Node], cycle: &[usize]) -> RuleError {
    let first = &nodes[cycle[0]];
    RuleError::new(
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
    )
}

/// Format 2: every item that feeds `ecmo_category` (the classification and everything it depends
/// on, transitively, through facts and groups) and every rule that emits a recommendation or a
/// consult trigger must carry `evidence` (and `cites`, which the schema and [`super::Ctx::cites`]
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
                emits: Some(Emit::Recommendation { .. }),
                ..
            }) => Some("emits a recommendation"),
            NodeKind::Rule(Rule {
                emits: Some(Emit::Consult { .. }),
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
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

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
