//! Code sets: which codes of FHIR conditions, procedures, medications and flags set which part of
//! the snapshot's context. Terminology is rule-set data, so a hospital maps its own codes
//! without touching Rust.
//!
//! A code set's key names its target:
//!
//! | key | from | sets |
//! |---|---|---|
//! | a context flag (`pneumonia_cause`, `immunocompromised`, ...) | conditions or flags | the flag (`true` on a match; `when_absent` otherwise) |
//! | `nmb_before`, `ino_before`, `bicarbonate_before` | medications | the flag |
//! | `invasive_ventilation`, `intubation`, `extubation` | procedures | `intubated` and `mv_start` (the current ventilation episode) |
//! | `prone_position` | procedures | `currently_prone`, `prone_trial_done` |
//! | `diagnosis_group.<value>` | conditions | the RESP diagnosis group; several matches: the first in RESP table order |
//! | `hard_stop.<code>` | flags or conditions | a hard stop of the `hard_stops` catalogue |
//!
//! `when_absent: false` means "searched and not documented = no"; `unknown` (the default)
//! leaves the flag null. Either way, nothing is concluded when that kind of resource was not
//! searched at all.

use super::compile::Ctx;
use super::files::{CatalogEntry, CodeMatch, ResourceKind, WhenAbsent};
use super::schema::ParsedFile;
use crate::snapshot::{ContextFlag, DiagnosisGroup};

/// What a code set sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextTarget {
    Flag(ContextFlag),
    DiagnosisGroup(DiagnosisGroup),
    InvasiveVentilation,
    Intubation,
    Extubation,
    PronePosition,
    /// Index into the `hard_stops` catalogue.
    HardStop(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCode {
    pub system: Box<str>,
    pub code: Box<str>,
    pub prefix: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeSet {
    pub name: String,
    pub target: ContextTarget,
    pub from: ResourceKind,
    pub when_absent: WhenAbsent,
    pub include_resolved: bool,
    /// Resolved / inactive conditions dated within this many days also count.
    pub resolved_within_days: Option<f64>,
    pub codes: Vec<SetCode>,
    pub cites: String,
}

impl CodeSet {
    pub fn matches(&self, system: &str, code: &str) -> bool {
        self.codes.iter().any(|c| {
            &*c.system == system
                && if c.prefix {
                    code.starts_with(&*c.code)
                } else {
                    &*c.code == code
                }
        })
    }
}

/// A code known to the rule set and deliberately not mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedCode {
    pub system: String,
    pub code: String,
    pub reason: String,
}

fn parse_target(key: &str, hard_stops: &[CatalogEntry]) -> Result<ContextTarget, String> {
    if let Some(flag) = ContextFlag::from_name(key) {
        return Ok(ContextTarget::Flag(flag));
    }
    match key {
        "invasive_ventilation" => return Ok(ContextTarget::InvasiveVentilation),
        "intubation" => return Ok(ContextTarget::Intubation),
        "extubation" => return Ok(ContextTarget::Extubation),
        "prone_position" => return Ok(ContextTarget::PronePosition),
        _ => {}
    }
    if let Some(group) = key.strip_prefix("diagnosis_group.") {
        return DiagnosisGroup::from_name(group)
            .map(ContextTarget::DiagnosisGroup)
            .ok_or_else(|| {
                format!(
                    "{group:?} is not a RESP diagnosis group ({})",
                    DiagnosisGroup::NAMES.join(", ")
                )
            });
    }
    if let Some(code) = key.strip_prefix("hard_stop.") {
        return hard_stops
            .iter()
            .position(|h| &*h.code == code)
            .map(ContextTarget::HardStop)
            .ok_or_else(|| format!("{code:?} is not in the `hard_stops` catalogue"));
    }
    let flags: Vec<&str> = ContextFlag::ALL.iter().map(|f| f.name()).collect();
    Err(format!(
        "unknown code-set target {key:?}{}: use a context flag ({}), invasive_ventilation, intubation, extubation, prone_position, diagnosis_group.<group> or hard_stop.<code>",
        super::condition::suggest(key, flags.iter().copied()),
        flags.join(", ")
    ))
}

fn allowed_sources(target: ContextTarget) -> &'static [ResourceKind] {
    match target {
        ContextTarget::Flag(f) if f.is_medication() => &[ResourceKind::Medications],
        // §9 D2: support running now is a Procedure in progress.
        ContextTarget::Flag(ContextFlag::OnExtracorporealSupport) => &[ResourceKind::Procedures],
        ContextTarget::InvasiveVentilation
        | ContextTarget::Intubation
        | ContextTarget::Extubation
        | ContextTarget::PronePosition => &[ResourceKind::Procedures],
        ContextTarget::DiagnosisGroup(_) => &[ResourceKind::Conditions],
        ContextTarget::Flag(_) | ContextTarget::HardStop(_) => {
            &[ResourceKind::Conditions, ResourceKind::Flags]
        }
    }
}

pub(super) fn compile(
    files: &[ParsedFile],
    hard_stops: &[CatalogEntry],
    mapped: &dyn Fn(&str, &str) -> bool,
    ctx: &mut Ctx,
) -> (Vec<CodeSet>, Vec<UnmappedCode>) {
    let mut sets: Vec<CodeSet> = Vec::new();
    let mut unmapped = Vec::new();
    for f in files {
        for (key, def) in &f.file.codesets {
            let ptr = format!("/codesets/{key}");
            ctx.cites(&f.display, &ptr, &def.cites);
            if sets.iter().any(|s| &s.name == key) {
                ctx.errors
                    .push(&f.display, &ptr, format!("code set {key} is defined twice"));
                continue;
            }
            let target = match parse_target(key, hard_stops) {
                Ok(t) => t,
                Err(msg) => {
                    ctx.errors.push(&f.display, &ptr, msg);
                    continue;
                }
            };
            let allowed = allowed_sources(target);
            if !allowed.contains(&def.from) {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/from"),
                    format!(
                        "{key} is read from {}, not {}",
                        allowed
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        def.from.name()
                    ),
                );
            }
            if def.include_resolved && def.from != ResourceKind::Conditions {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/include_resolved"),
                    "include_resolved applies to conditions only",
                );
            }
            if let Some(days) = def.resolved_within_days {
                let problem = if def.from != ResourceKind::Conditions {
                    Some("resolved_within_days applies to conditions only")
                } else if def.include_resolved {
                    Some("resolved_within_days and include_resolved exclude each other")
                } else if !(days.is_finite() && days > 0.0) {
                    Some("resolved_within_days must be a positive number of days")
                } else {
                    None
                };
                if let Some(p) = problem {
                    ctx.errors
                        .push(&f.display, format!("{ptr}/resolved_within_days"), p);
                }
            }
            let mut codes: Vec<SetCode> = Vec::with_capacity(def.codes.len());
            for (i, c) in def.codes.iter().enumerate() {
                let code = SetCode {
                    system: c.system.as_str().into(),
                    code: c.code.as_str().into(),
                    prefix: c.match_ == CodeMatch::Prefix,
                };
                if codes.contains(&code) {
                    ctx.errors.push(
                        &f.display,
                        format!("{ptr}/codes/{i}"),
                        format!("{} {} is listed twice", c.system, c.code),
                    );
                } else {
                    codes.push(code);
                }
            }
            sets.push(CodeSet {
                name: key.clone(),
                target,
                from: def.from,
                when_absent: def.when_absent,
                include_resolved: def.include_resolved,
                resolved_within_days: def.resolved_within_days,
                codes,
                cites: def.cites.clone(),
            });
        }
        for (i, u) in f.file.unmapped_codes.iter().enumerate() {
            let ptr = format!("/unmapped_codes/{i}");
            ctx.cites(&f.display, &ptr, &u.cites);
            if mapped(&u.system, &u.code) {
                ctx.errors.push(
                    &f.display,
                    ptr,
                    format!(
                        "{} {} is listed as unmapped but a concept maps it",
                        u.system, u.code
                    ),
                );
            }
            unmapped.push(UnmappedCode {
                system: u.system.clone(),
                code: u.code.clone(),
                reason: u.reason.clone(),
            });
        }
    }
    (sets, unmapped)
}
