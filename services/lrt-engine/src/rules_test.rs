//! `lrt rules test`: runs the cases under a rule-set version's `tests/` folder and measures
//! how much of the rule set they exercise.
//!
//! Each case's input is first validated strictly (a case with an unknown unit fails as a test,
//! naming the field), then evaluated at its `now` and compared with its `expected`
//! ([`crate::casefile::compare`]). Every case must have an `expected`.
//!
//! **Coverage**: a rule is covered when some case makes it true and some case does not; a
//! classification when every case (and `otherwise`) is chosen by some test; a score when every
//! band of every item is hit; a series when some test has a qualifying run of two or more blood
//! gases. Uncovered items are listed: each is a rule without a test that would notice a change.

use std::path::PathBuf;

use crate::casefile::{CaseFile, CaseFileError, compare_under};
use crate::eval::{Evaluation, NodeResult};
use crate::ruleset::{NodeKind, RuleSet, Truth};

#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub file: String,
    pub id: String,
    pub title: Option<String>,
    pub problems: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub results: Vec<CaseResult>,
    /// Test files that could not be read.
    pub errors: Vec<CaseFileError>,
    /// Rule-set items the cases do not exercise (see the module docs).
    pub uncovered: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// The `*.json` files under `<version>/tests`, sorted.
pub fn test_files(rules: &RuleSet) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules.dir.join("tests"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

pub fn run(rules: &RuleSet) -> TestReport {
    let mut report = TestReport {
        results: Vec::new(),
        errors: Vec::new(),
        uncovered: Vec::new(),
    };
    let mut coverage = Coverage::new(rules);
    for path in test_files(rules) {
        let file = path.display().to_string();
        let cases = match CaseFile::read(&path) {
            Ok(c) => c,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        for case in &cases.cases {
            let sep = if case.path.is_empty() { "" } else { "." };
            let mut problems: Vec<String> = case
                .snapshot
                .validate(rules, case.now)
                .into_iter()
                .map(|i| format!("bad input: {}{sep}{i}", case.path))
                .collect();
            match &case.expected {
                None => problems.push("the case has no `expected`".into()),
                Some(expected) if problems.is_empty() => {
                    let (assessment, evaluation) =
                        crate::evaluate_traced(rules, &case.snapshot, case.now);
                    coverage.record(&evaluation);
                    problems.extend(
                        compare_under(expected, &assessment, cases.conventions.as_ref())
                            .iter()
                            .map(ToString::to_string),
                    );
                }
                Some(_) => {}
            }
            report.results.push(CaseResult {
                file: file.clone(),
                id: case.id.clone(),
                title: case.title.clone(),
                problems,
            });
        }
    }
    report.uncovered = coverage.uncovered(rules);
    report
}

/// What the cases have made each item conclude so far.
struct Coverage {
    /// Per node: rule (true seen, not-true seen); classification outcomes seen; score bands seen;
    /// series with a run of two or more.
    nodes: Vec<NodeCoverage>,
}

enum NodeCoverage {
    Rule { fired: bool, not_fired: bool },
    Classification { outcomes: Vec<bool> },
    Score { bands: Vec<Vec<bool>> },
    Series { long_run: bool },
}

impl Coverage {
    fn new(rules: &RuleSet) -> Coverage {
        let nodes = rules
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Rule(_) => NodeCoverage::Rule {
                    fired: false,
                    not_fired: false,
                },
                NodeKind::Classification(c) => NodeCoverage::Classification {
                    outcomes: vec![false; c.cases.len() + 1],
                },
                NodeKind::Score(s) => NodeCoverage::Score {
                    bands: s.items.iter().map(|i| vec![false; i.bands.len()]).collect(),
                },
                NodeKind::Series(_) => NodeCoverage::Series { long_run: false },
            })
            .collect();
        Coverage { nodes }
    }

    fn record(&mut self, e: &Evaluation) {
        for (cov, result) in self.nodes.iter_mut().zip(&e.results) {
            match (cov, result) {
                (NodeCoverage::Rule { fired, not_fired }, NodeResult::Rule(t)) => {
                    if *t == Truth::True {
                        *fired = true;
                    } else {
                        *not_fired = true;
                    }
                }
                (
                    NodeCoverage::Classification { outcomes },
                    NodeResult::Classification { case },
                ) => {
                    let last = outcomes.len() - 1;
                    outcomes[case.unwrap_or(last)] = true;
                }
                (NodeCoverage::Score { bands }, NodeResult::Score { components, .. }) => {
                    for &(item, band) in components {
                        bands[item][band] = true;
                    }
                }
                (NodeCoverage::Series { long_run }, NodeResult::Series { run, .. }) => {
                    *long_run |= run.len() >= 2;
                }
                _ => {}
            }
        }
    }

    fn uncovered(&self, rules: &RuleSet) -> Vec<String> {
        let mut out = Vec::new();
        for (cov, node) in self.nodes.iter().zip(&rules.nodes) {
            let id = &node.id;
            match (cov, &node.kind) {
                (NodeCoverage::Rule { fired, not_fired }, _) => {
                    if !fired {
                        out.push(format!("rule {id}: no test makes it true"));
                    }
                    if !not_fired {
                        out.push(format!("rule {id}: every test makes it true"));
                    }
                }
                (NodeCoverage::Classification { outcomes }, NodeKind::Classification(c)) => {
                    for (i, seen) in outcomes.iter().enumerate() {
                        if !seen {
                            let outcome = c.cases.get(i).map_or(&c.otherwise, |k| &k.outcome);
                            let value = outcome
                                .value
                                .map_or("null".to_string(), |v| c.values[v as usize].to_string());
                            let which = if i < c.cases.len() {
                                format!("case {i}")
                            } else {
                                "otherwise".into()
                            };
                            out.push(format!(
                                "classification {id}: no test reaches {which} ({value})"
                            ));
                        }
                    }
                }
                (NodeCoverage::Score { bands }, NodeKind::Score(s)) => {
                    for (item, seen) in s.items.iter().zip(bands) {
                        for (b, hit) in seen.iter().enumerate() {
                            if !hit {
                                out.push(format!(
                                    "score {id}: no test scores {}",
                                    item.band_texts[b]
                                ));
                            }
                        }
                    }
                }
                (NodeCoverage::Series { long_run: false }, _) => {
                    out.push(format!(
                        "series {id}: no test has a qualifying run of two or more blood gases"
                    ));
                }
                _ => {}
            }
        }
        out
    }
}
