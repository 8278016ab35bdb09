//! The condition language of rule files: a typed tree, compiled once, evaluated in
//! three-valued (Kleene) logic.
//!
//! ```yaml
//! all:                                   # true if every part is true; false if any is false
//!   - {fact: pf_ratio, lt: {param: eolia_c2_pf_max}}   # unknown when pf_ratio is null
//!   - {fact: currently_prone, eq: false}               # unknown when currently_prone is null
//!   - {fact: prone_trial_done, is: false}              # never unknown: null is not false
//!   - {fact: pao2, missing: true}                      # never unknown
//!   - {group_fired: relative_contraindication}         # never unknown: some rule of the group fired
//!   - not: {fact: resp_class, in: [IV, V]}
//!   - {fact: hard_stops, contains: refusal_or_limitation_of_care}
//! ```
//!
//! Numeric comparisons always take a parameter (`{param: name}`), whose unit must equal the
//! fact's unit; thresholds are compared unrounded with ε = 1e-9 (§1.1).

use std::collections::HashMap;

use serde_json::Value;

use crate::concept::EPSILON;
use crate::facts::{AbgField, FactId, FactKind, FactValue};

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl std::ops::Not for Truth {
    type Output = Truth;
    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

impl Truth {
    pub fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
    pub fn is_true(self) -> bool {
        self == Truth::True
    }
    pub fn as_fact(self) -> FactValue {
        match self {
            Truth::True => FactValue::Boolean(true),
            Truth::False => FactValue::Boolean(false),
            Truth::Unknown => FactValue::Null,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Truth::True => "true",
            Truth::False => "false",
            Truth::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Eq => "eq",
            Op::Ne => "ne",
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "≤",
            Op::Gt => ">",
            Op::Ge => "≥",
            Op::Eq => "=",
            Op::Ne => "≠",
        }
    }
    fn from_key(k: &str) -> Option<Op> {
        Some(match k {
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            _ => return None,
        })
    }
    /// Compares unrounded numbers with the §1.1 tolerance.
    pub fn numbers(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b - EPSILON,
            Op::Le => a <= b + EPSILON,
            Op::Gt => a > b + EPSILON,
            Op::Ge => a >= b - EPSILON,
            Op::Eq => (a - b).abs() <= EPSILON,
            Op::Ne => (a - b).abs() > EPSILON,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FactRef {
    Global(FactId),
    Abg(AbgField),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rhs {
    Param { index: usize, value: f64 },
    Bool(bool),
    Category(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Compare { fact: FactRef, op: Op, rhs: Rhs },
    In { fact: FactRef, values: Vec<u16> },
    Is { fact: FactRef, value: bool },
    Missing { fact: FactRef, missing: bool },
    Contains { fact: FactRef, bit: u8 },
    GroupFired(usize),
}

/// What a condition can see while it is evaluated.
pub struct Env<'a> {
    pub facts: &'a [FactValue],
    /// Values of the current blood gas inside a series.
    pub abg: Option<&'a [FactValue; 5]>,
    pub groups_fired: &'a [bool],
}

impl Env<'_> {
    pub fn value(&self, f: FactRef) -> FactValue {
        match f {
            FactRef::Global(id) => self.facts[id.index()],
            FactRef::Abg(field) => self.abg.map_or(FactValue::Null, |a| a[field as usize]),
        }
    }
}

impl Cond {
    pub fn eval(&self, env: &Env<'_>) -> Truth {
        match self {
            Cond::All(parts) => {
                let mut out = Truth::True;
                for p in parts {
                    match p.eval(env) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => out = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                out
            }
            Cond::Any(parts) => {
                let mut out = Truth::False;
                for p in parts {
                    match p.eval(env) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => out = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                out
            }
            Cond::Not(inner) => !inner.eval(env),
            Cond::Compare { fact, op, rhs } => compare(env.value(*fact), *op, *rhs),
            Cond::In { fact, values } => match env.value(*fact) {
                FactValue::Category(c) => Truth::from_bool(values.contains(&c)),
                _ => Truth::Unknown,
            },
            Cond::Is { fact, value } => {
                Truth::from_bool(env.value(*fact) == FactValue::Boolean(*value))
            }
            Cond::Missing { fact, missing } => {
                Truth::from_bool(env.value(*fact).is_null() == *missing)
            }
            Cond::Contains { fact, bit } => match env.value(*fact) {
                FactValue::Set(bits) => Truth::from_bool(bits & (1u64 << bit) != 0),
                _ => Truth::False,
            },
            Cond::GroupFired(g) => Truth::from_bool(env.groups_fired[*g]),
        }
    }

    /// The leaves (criteria) of the tree, in order, each with whether it sits under an odd
    /// number of `not`s (for explanations).
    pub fn leaves<'c>(&'c self, negated: bool, out: &mut Vec<(&'c Cond, bool)>) {
        match self {
            Cond::All(parts) | Cond::Any(parts) => {
                parts.iter().for_each(|p| p.leaves(negated, out))
            }
            Cond::Not(inner) => inner.leaves(!negated, out),
            leaf => out.push((leaf, negated)),
        }
    }

    /// Global facts this condition reads (for dependency ordering).
    pub fn facts(&self, out: &mut Vec<FactId>) {
        match self {
            Cond::All(parts) | Cond::Any(parts) => parts.iter().for_each(|p| p.facts(out)),
            Cond::Not(inner) => inner.facts(out),
            Cond::Compare { fact, .. }
            | Cond::In { fact, .. }
            | Cond::Is { fact, .. }
            | Cond::Missing { fact, .. }
            | Cond::Contains { fact, .. } => {
                if let FactRef::Global(id) = fact {
                    out.push(*id);
                }
            }
            Cond::GroupFired(_) => {}
        }
    }

    /// Groups this condition reads.
    pub fn groups(&self, out: &mut Vec<usize>) {
        match self {
            Cond::All(parts) | Cond::Any(parts) => parts.iter().for_each(|p| p.groups(out)),
            Cond::Not(inner) => inner.groups(out),
            Cond::GroupFired(g) => out.push(*g),
            _ => {}
        }
    }
}

fn compare(v: FactValue, op: Op, rhs: Rhs) -> Truth {
    match (v, rhs) {
        (FactValue::Number(a), Rhs::Param { value, .. }) => Truth::from_bool(op.numbers(a, value)),
        (FactValue::Interval { lo, hi }, Rhs::Param { value, .. }) => {
            let (a, b) = (op.numbers(lo, value), op.numbers(hi, value));
            // Eq/Ne over a range: only decided when the threshold lies outside it.
            match op {
                Op::Eq | Op::Ne if value >= lo - EPSILON && value <= hi + EPSILON => {
                    if (hi - lo).abs() <= EPSILON {
                        Truth::from_bool(a)
                    } else {
                        Truth::Unknown
                    }
                }
                _ if a == b => Truth::from_bool(a),
                _ => Truth::Unknown,
            }
        }
        (FactValue::Boolean(a), Rhs::Bool(b)) => Truth::from_bool(match op {
            Op::Ne => a != b,
            _ => a == b,
        }),
        (FactValue::Category(a), Rhs::Category(b)) => Truth::from_bool(match op {
            Op::Ne => a != b,
            _ => a == b,
        }),
        _ => Truth::Unknown,
    }
}

/// A problem found while compiling, located by JSON pointer inside its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
    /// What to do about it, shown on its own line.
    pub help: Option<String>,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            pointer: pointer.into(),
            message: message.into(),
            help: None,
        }
    }

    /// Adds a help line.
    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
}

/// Names a condition may use while it is compiled.
pub struct Scope<'a> {
    pub facts: &'a HashMap<String, FactId>,
    pub kinds: &'a [FactKind],
    pub params: &'a HashMap<String, usize>,
    pub param_values: &'a [(f64, String)],
    pub groups: &'a HashMap<String, usize>,
    /// Inside a series: `abg.*` facts are visible.
    pub allow_abg: bool,
}

const OPERATORS: [&str; 10] = [
    "lt", "le", "gt", "ge", "eq", "ne", "in", "is", "missing", "contains",
];

impl Scope<'_> {
    pub fn compile(&self, v: &Value, ptr: &str, problems: &mut Vec<Problem>) -> Option<Cond> {
        let Some(obj) = v.as_object() else {
            problems.push(Problem::new(ptr, "a condition must be an object"));
            return None;
        };
        for connective in ["all", "any"] {
            if let Some(list) = obj.get(connective) {
                if obj.len() != 1 {
                    problems.push(Problem::new(
                        ptr,
                        format!("`{connective}` must be the only key of its object"),
                    ));
                    return None;
                }
                let Some(items) = list.as_array().filter(|a| !a.is_empty()) else {
                    problems.push(Problem::new(
                        format!("{ptr}/{connective}"),
                        "must be a non-empty list of conditions",
                    ));
                    return None;
                };
                let parts: Vec<Option<Cond>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        self.compile(item, &format!("{ptr}/{connective}/{i}"), problems)
                    })
                    .collect();
                let parts: Option<Vec<Cond>> = parts.into_iter().collect();
                return parts.map(|p| {
                    if connective == "all" {
                        Cond::All(p)
                    } else {
                        Cond::Any(p)
                    }
                });
            }
        }
        if let Some(inner) = obj.get("not") {
            if obj.len() != 1 {
                problems.push(Problem::new(
                    ptr,
                    "`not` must be the only key of its object",
                ));
                return None;
            }
            return self
                .compile(inner, &format!("{ptr}/not"), problems)
                .map(|c| Cond::Not(Box::new(c)));
        }
        if let Some(group) = obj.get("group_fired") {
            if obj.len() != 1 {
                problems.push(Problem::new(
                    ptr,
                    "`group_fired` must be the only key of its object",
                ));
                return None;
            }
            let name = group.as_str().unwrap_or_default();
            return match self.groups.get(name) {
                Some(&g) => Some(Cond::GroupFired(g)),
                None => {
                    problems.push(
                        Problem::new(
                            format!("{ptr}/group_fired"),
                            format!("unknown group {name:?}: no rule writes it (`group: {name}`)"),
                        )
                        .help(
                            did_you_mean(name, self.groups.keys().map(String::as_str))
                                .unwrap_or_else(|| {
                                    "a group is named by the `group:` of the rules that form it"
                                        .into()
                                }),
                        ),
                    );
                    None
                }
            };
        }
        let Some(fact_name) = obj.get("fact").and_then(Value::as_str) else {
            problems.push(Problem::new(
                ptr,
                "a condition needs `all`, `any`, `not`, `group_fired`, or `fact` with one operator",
            ));
            return None;
        };
        let ops: Vec<&String> = obj.keys().filter(|k| k.as_str() != "fact").collect();
        if ops.len() != 1 || !OPERATORS.contains(&ops[0].as_str()) {
            problems.push(Problem::new(
                ptr,
                format!(
                    "`fact` needs exactly one operator of {} (found: {})",
                    OPERATORS.join(", "),
                    ops.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            return None;
        }
        let op_key = ops[0].as_str();
        let op_ptr = format!("{ptr}/{op_key}");
        let operand = &obj[op_key];
        let (fact, kind) = self.resolve_fact(fact_name, &format!("{ptr}/fact"), problems)?;
        let type_error = |problems: &mut Vec<Problem>| {
            problems.push(Problem::new(
                op_ptr.clone(),
                format!(
                    "operator `{op_key}` with {operand} does not apply to fact {fact_name:?} ({})",
                    kind.describe()
                ),
            ));
            None
        };
        match op_key {
            "missing" => match operand.as_bool() {
                Some(m) => Some(Cond::Missing { fact, missing: m }),
                None => type_error(problems),
            },
            "is" => match (&kind, operand.as_bool()) {
                (FactKind::Boolean, Some(b)) => Some(Cond::Is { fact, value: b }),
                _ => type_error(problems),
            },
            "contains" => match (&kind, operand.as_str()) {
                (FactKind::Set { values }, Some(code)) => {
                    match values.iter().position(|v| &**v == code) {
                        Some(bit) => Some(Cond::Contains {
                            fact,
                            bit: bit as u8,
                        }),
                        None => {
                            problems.push(Problem::new(
                                op_ptr.clone(),
                                format!(
                                    "{code:?} is not a value of {fact_name:?}{}",
                                    suggest(code, values.iter().map(|v| &**v))
                                ),
                            ));
                            None
                        }
                    }
                }
                _ => type_error(problems),
            },
            "in" => match (&kind, operand.as_array()) {
                (FactKind::Category { values }, Some(items)) if !items.is_empty() => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        match self.category_value(
                            item,
                            values,
                            &format!("{op_ptr}/{i}"),
                            fact_name,
                            problems,
                        ) {
                            Some(c) => out.push(c),
                            None => return None,
                        }
                    }
                    Some(Cond::In { fact, values: out })
                }
                _ => type_error(problems),
            },
            _ => {
                let op = Op::from_key(op_key)?;
                match &kind {
                    FactKind::Number { unit } => {
                        let rhs =
                            self.param_operand(operand, unit, &op_ptr, fact_name, problems)?;
                        Some(Cond::Compare { fact, op, rhs })
                    }
                    FactKind::Boolean if matches!(op, Op::Eq | Op::Ne) => match operand.as_bool() {
                        Some(b) => Some(Cond::Compare {
                            fact,
                            op,
                            rhs: Rhs::Bool(b),
                        }),
                        None => type_error(problems),
                    },
                    FactKind::Category { values } if matches!(op, Op::Eq | Op::Ne) => {
                        let c =
                            self.category_value(operand, values, &op_ptr, fact_name, problems)?;
                        Some(Cond::Compare {
                            fact,
                            op,
                            rhs: Rhs::Category(c),
                        })
                    }
                    _ => type_error(problems),
                }
            }
        }
    }

    fn resolve_fact(
        &self,
        name: &str,
        ptr: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<(FactRef, FactKind)> {
        if let Some(field) = AbgField::from_name(name) {
            if self.allow_abg {
                return Some((FactRef::Abg(field), FactKind::Number { unit: field.unit() }));
            }
            problems.push(Problem::new(
                ptr,
                format!(
                    "{name:?} is a per-blood-gas fact, usable only inside a series' `qualifies`"
                ),
            ));
            return None;
        }
        match self.facts.get(name) {
            Some(&id) => Some((FactRef::Global(id), self.kinds[id.index()].clone())),
            None => {
                let names = self.facts.keys().map(String::as_str).chain(
                    AbgField::ALL
                        .iter()
                        .map(|f| f.name())
                        .filter(|_| self.allow_abg),
                );
                problems.push(
                    Problem::new(ptr, format!("unknown fact {name:?}"))
                        .help(did_you_mean(name, names).unwrap_or_else(|| FACT_HELP.into())),
                );
                None
            }
        }
    }

    fn param_operand(
        &self,
        operand: &Value,
        unit: &str,
        ptr: &str,
        fact_name: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Rhs> {
        let Some(name) = operand
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("param"))
            .and_then(Value::as_str)
        else {
            problems.push(
                Problem::new(
                    ptr,
                    format!(
                        "numeric fact {fact_name:?} must be compared with a parameter, not {operand}"
                    ),
                )
                .help(self.threshold_help(operand, unit)),
            );
            return None;
        };
        let Some(&index) = self.params.get(name) else {
            problems.push(
                Problem::new(
                    format!("{ptr}/param"),
                    format!("unknown parameter {name:?}"),
                )
                .help(
                    did_you_mean(name, self.params.keys().map(String::as_str))
                        .unwrap_or_else(|| PARAM_HELP.into()),
                ),
            );
            return None;
        };
        let (value, param_unit) = &self.param_values[index];
        if param_unit != unit {
            problems.push(Problem::new(
                format!("{ptr}/param"),
                format!(
                    "parameter {name:?} is in {param_unit} but fact {fact_name:?} is in {unit}"
                ),
            ));
            return None;
        }
        Some(Rhs::Param {
            index,
            value: *value,
        })
    }

    /// `thresholds are parameters: write `{param: bmi_relative_ci}`` when a parameter of the
    /// fact's unit has the literal's value; otherwise how to define one.
    fn threshold_help(&self, operand: &Value, unit: &str) -> String {
        let mut same: Vec<&str> = match operand.as_f64() {
            Some(x) => self
                .params
                .iter()
                .filter(|(_, i)| {
                    let (v, u) = &self.param_values[**i];
                    u == unit && (v - x).abs() <= EPSILON
                })
                .map(|(n, _)| n.as_str())
                .collect(),
            None => Vec::new(),
        };
        same.sort_unstable();
        if same.is_empty() {
            format!(
                "thresholds are parameters: define one under `parameters` (value, unit: {unit:?}, cites) and write `{{param: <name>}}`"
            )
        } else {
            let written: Vec<String> = same.iter().map(|n| format!("`{{param: {n}}}`")).collect();
            format!("thresholds are parameters: write {}", written.join(" or "))
        }
    }

    fn category_value(
        &self,
        v: &Value,
        values: &[std::sync::Arc<str>],
        ptr: &str,
        fact_name: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<u16> {
        let s = v.as_str().unwrap_or_default();
        match values.iter().position(|x| &**x == s) {
            Some(i) => Some(i as u16),
            None => {
                problems.push(Problem::new(
                    ptr,
                    format!(
                        "{v} is not a value of {fact_name:?} (values: {})",
                        crate::facts::join(values)
                    ),
                ));
                None
            }
        }
    }
}

/// Help for an unknown fact without a close match.
pub(crate) const FACT_HELP: &str = "a fact is an engine fact (rules/README.md section 5.1) or the id of a rule, score, classification or series";

/// Help for an unknown parameter without a close match.
pub(crate) const PARAM_HELP: &str =
    "define it under `parameters` (value, unit, cites), or use one that exists";

/// The closest name, when one is close enough to be a misspelling.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)` when a close name exists (inside a message).
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    closest(name, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

/// `did you mean "x"?` when a close name exists (a help line).
pub fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean {c:?}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(facts: &[FactValue]) -> Env<'_> {
        Env {
            facts,
            abg: None,
            groups_fired: &[],
        }
    }

    fn cmp(op: Op, t: f64) -> Cond {
        Cond::Compare {
            fact: FactRef::Global(FactId(0)),
            op,
            rhs: Rhs::Param { index: 0, value: t },
        }
    }

    #[test]
    fn thresholds_use_epsilon() {
        let at = [FactValue::Number(100.0 + 5e-10)];
        assert_eq!(cmp(Op::Le, 100.0).eval(&env(&at)), Truth::True);
        assert_eq!(cmp(Op::Gt, 100.0).eval(&env(&at)), Truth::False);
        assert_eq!(cmp(Op::Eq, 100.0).eval(&env(&at)), Truth::True);
        let above = [FactValue::Number(100.000_001)];
        assert_eq!(cmp(Op::Gt, 100.0).eval(&env(&above)), Truth::True);
    }

    #[test]
    fn kleene_logic() {
        let null = [FactValue::Null];
        let c = cmp(Op::Lt, 1.0);
        assert_eq!(c.eval(&env(&null)), Truth::Unknown);
        let f = Cond::Missing {
            fact: FactRef::Global(FactId(0)),
            missing: false,
        };
        assert_eq!(
            Cond::All(vec![c.clone(), f.clone()]).eval(&env(&null)),
            Truth::False
        );
        assert_eq!(
            Cond::Any(vec![c.clone(), f.clone()]).eval(&env(&null)),
            Truth::Unknown
        );
        assert_eq!(Cond::Not(Box::new(c)).eval(&env(&null)), Truth::Unknown);
        let is = Cond::Is {
            fact: FactRef::Global(FactId(0)),
            value: false,
        };
        assert_eq!(is.eval(&env(&null)), Truth::False);
    }

    #[test]
    fn intervals_decide_only_when_the_whole_range_agrees() {
        let partial = [FactValue::Interval { lo: 1.0, hi: 2.0 }];
        assert_eq!(cmp(Op::Ge, 2.0).eval(&env(&partial)), Truth::Unknown);
        assert_eq!(cmp(Op::Ge, 1.0).eval(&env(&partial)), Truth::True);
        assert_eq!(cmp(Op::Ge, 3.0).eval(&env(&partial)), Truth::False);
        assert_eq!(cmp(Op::Eq, 5.0).eval(&env(&partial)), Truth::False);
        assert_eq!(cmp(Op::Eq, 1.5).eval(&env(&partial)), Truth::Unknown);
    }
}
