//! Evaluation of a compiled rule set over the fact table, node by node in dependency order.
//!
//! * **Series** (EOLIA runs, §6.1): blood gases within the lookback; the latest must be recent
//!   enough; walking back from it, qualifying gases extend the run until a non-qualifying
//!   (or undecidable) gas or a gap longer than `max_gap`.
//! * **Scores**: first matching band per item; too few known items gives null; `partial: lower_bound`
//!   makes an incomplete sum a lower bound: `≥ t` is true once the known points reach `t`, and
//!   unknown otherwise (§3.6, §6.1 ACP rule).
//! * **Classifications**: the first case whose condition is definitely true.
//! * **Rules**: three-valued; a rule *fires* only when definitely true; `requires` makes it
//!   unknown when a needed fact is null.

use crate::derive::BloodGas;
use crate::facts::{FactTable, FactValue};
use crate::ruleset::condition::{Env, Truth};
use crate::ruleset::files::{Aggregate, Partial};
use crate::ruleset::{BandTest, NodeKind, RuleSet, Score};
use crate::timeline::{MS_PER_HOUR, Millis};

/// What each node concluded, for the assessment and its explanations.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeResult {
    Series {
        /// Indices of the blood gases in the run ending at the latest one (oldest first).
        run: Vec<usize>,
        latest: Option<usize>,
    },
    Score {
        /// (item index, band index) of the known items.
        components: Vec<(usize, usize)>,
        missing: Vec<usize>,
        /// Sum or mean of the known items.
        known_value: Option<f64>,
    },
    Classification {
        /// Index of the matching case; `None` = `otherwise`.
        case: Option<usize>,
    },
    Rule(Truth),
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub facts: FactTable,
    pub results: Vec<NodeResult>,
    pub groups_fired: Vec<bool>,
}

pub fn evaluate(
    rules: &RuleSet,
    mut facts: FactTable,
    gases: &[BloodGas],
    now: Millis,
) -> Evaluation {
    let mut results = Vec::with_capacity(rules.nodes.len());
    let mut groups_fired = vec![false; rules.groups.len()];
    for node in &rules.nodes {
        let result = match &node.kind {
            NodeKind::Series(s) => {
                let start = gases.partition_point(|g| ((now - g.time) as f64) > s.lookback_ms);
                let window = &gases[start..];
                let mut run = Vec::new();
                let mut latest_truth = FactValue::Null;
                let latest = window.len().checked_sub(1).map(|i| start + i);
                if let Some(last) =
                    latest.filter(|&l| ((now - gases[l].time) as f64) <= s.latest_max_age_ms)
                {
                    let qualifies = |i: usize| {
                        let abg = gases[i].values();
                        s.qualifies.eval(&Env {
                            facts: &facts.values,
                            abg: Some(&abg),
                            groups_fired: &groups_fired,
                        })
                    };
                    let truth = qualifies(last);
                    latest_truth = truth.as_fact();
                    if truth.is_true() {
                        run.push(last);
                        let mut i = last;
                        while i > start
                            && ((gases[i].time - gases[i - 1].time) as f64) <= s.max_gap_ms
                            && qualifies(i - 1).is_true()
                        {
                            i -= 1;
                            run.push(i);
                        }
                        run.reverse();
                    }
                }
                let evidence: crate::timeline::Evidence =
                    run.iter().flat_map(|&i| gases[i].evidence()).collect();
                let time = latest.map(|l| gases[l].time);
                facts.values[s.fact_latest.index()] = latest_truth;
                facts.times[s.fact_latest.index()] = time;
                facts.evidence[s.fact_latest.index()] = evidence.clone();
                let duration = match (run.first(), run.last()) {
                    (Some(&a), Some(&b)) => {
                        FactValue::Number((gases[b].time - gases[a].time) as f64 / MS_PER_HOUR)
                    }
                    _ => FactValue::Null,
                };
                facts.values[s.fact_duration.index()] = duration;
                facts.times[s.fact_duration.index()] = time;
                facts.evidence[s.fact_duration.index()] = evidence;
                NodeResult::Series { run, latest }
            }
            NodeKind::Score(s) => score(s, &mut facts),
            NodeKind::Classification(c) => {
                let env = Env {
                    facts: &facts.values,
                    abg: None,
                    groups_fired: &groups_fired,
                };
                let case = c.cases.iter().position(|k| k.when.eval(&env).is_true());
                let outcome = case.map_or(&c.otherwise, |i| &c.cases[i].outcome);
                facts.values[c.fact.index()] =
                    outcome.value.map_or(FactValue::Null, FactValue::Category);
                NodeResult::Classification { case }
            }
            NodeKind::Rule(r) => {
                let truth = if r.requires.iter().any(|f| facts.values[f.index()].is_null()) {
                    Truth::Unknown
                } else {
                    r.when.eval(&Env {
                        facts: &facts.values,
                        abg: None,
                        groups_fired: &groups_fired,
                    })
                };
                facts.values[r.fact.index()] = truth.as_fact();
                if truth.is_true()
                    && let Some(g) = r.group
                {
                    groups_fired[g] = true;
                }
                NodeResult::Rule(truth)
            }
        };
        results.push(result);
    }
    Evaluation {
        facts,
        results,
        groups_fired,
    }
}

/// The widest range of whole numbers a score item scores band by band (ages span one or two).
const MAX_RANGE_STEPS: f64 = 10.0;

fn score(s: &Score, facts: &mut FactTable) -> NodeResult {
    let mut components = Vec::new();
    let mut missing = Vec::new();
    let mut evidence = crate::timeline::Evidence::new();
    for (i, item) in s.items.iter().enumerate() {
        let v = facts.values[item.fact.index()];
        let band_of = |v: FactValue| {
            item.bands.iter().position(|b| match (&b.test, v) {
                (BandTest::Otherwise, FactValue::Null | FactValue::Interval { .. }) => false,
                (BandTest::Otherwise, _) => true,
                (BandTest::Compare(op, t), FactValue::Number(x)) => op.numbers(x, *t),
                (BandTest::Is(want), FactValue::Boolean(x)) => x == *want,
                (BandTest::Category(cs), FactValue::Category(x)) => cs.contains(&x),
                _ => false,
            })
        };
        let band = match v {
            // A short range of whole numbers (an age from an imprecise birth date, §9 D4) scores
            // only when every value in it falls in the same band; otherwise the item is missing.
            FactValue::Interval { lo, hi } if hi.is_finite() && hi - lo <= MAX_RANGE_STEPS => {
                let first = band_of(FactValue::Number(lo));
                let mut x = lo + 1.0;
                let mut same = first.is_some() && band_of(FactValue::Number(hi)) == first;
                while same && x < hi {
                    same = band_of(FactValue::Number(x)) == first;
                    x += 1.0;
                }
                if same { first } else { None }
            }
            _ => band_of(v),
        };
        match band {
            Some(b) => {
                components.push((i, b));
                for &e in &facts.evidence[item.fact.index()] {
                    if !evidence.contains(&e) {
                        evidence.push(e);
                    }
                }
            }
            None => missing.push(i),
        }
    }
    let complete = missing.is_empty();
    let sum: f64 = components
        .iter()
        .map(|&(i, b)| s.items[i].bands[b].points)
        .sum();
    let known_value =
        (components.len() >= s.min_items && !components.is_empty()).then(|| match s.aggregate {
            Aggregate::Sum => sum,
            Aggregate::Mean => sum / components.len() as f64,
        });
    let known_value = known_value.or((s.min_items == 0 && components.is_empty()).then_some(0.0));
    let value = match known_value {
        None => FactValue::Null,
        Some(v) if complete => FactValue::Number(v),
        Some(v) => match s.partial {
            Partial::Value => FactValue::Number(v),
            // §3.6/§6.1: with items missing the score is only a lower bound.
            Partial::LowerBound => {
                let lo: f64 = missing.iter().map(|&i| s.items[i].min_points).sum();
                FactValue::Interval {
                    lo: v + lo,
                    hi: f64::INFINITY,
                }
            }
        },
    };
    facts.values[s.fact.index()] = value;
    facts.evidence[s.fact.index()] = evidence;
    facts.values[s.fact_complete.index()] = FactValue::Boolean(complete);
    NodeResult::Score {
        components,
        missing,
        known_value,
    }
}
