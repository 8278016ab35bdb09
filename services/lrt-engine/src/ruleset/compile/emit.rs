//! Pass 6, `emits:`: what a rule puts into the assessment when it holds (a recommendation, a
//! mechanism, a consult trigger or a data-quality item), named by its catalogue code.

use super::super::Emit;
use super::super::condition::{Problem, did_you_mean};
use super::super::files::{CatalogEntry, EmitDef};
use super::Catalogues;

/// Where `code` is in a catalogue; if it is not, a problem naming the catalogue.
fn catalogue_index(
    code: &str,
    list: &[CatalogEntry],
    section: &str,
    ptr: String,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let found = list.iter().position(|r| *r.code == *code);
    if found.is_none() {
        problems.push(
            Problem::new(ptr, format!("{code} is not in the `{section}` catalogue")).help(
                did_you_mean(code, list.iter().map(|r| &*r.code)).unwrap_or_else(|| {
                    format!("add an entry to `{section}` (code, display, cites)")
                }),
            ),
        );
    }
    found
}

/// The `emits` of a rule at `ptr`; `None` (and problems) when it names no one catalogue entry.
pub(super) fn compile(
    e: &EmitDef,
    cat: &Catalogues,
    ptr: &str,
    problems: &mut Vec<Problem>,
) -> Option<Emit> {
    let urgency = |what: &str, problems: &mut Vec<Problem>| {
        if e.urgency.is_none() {
            problems.push(Problem::new(
                ptr,
                format!("{what} needs an `urgency` (routine, urgent, emergent)"),
            ));
        }
        e.urgency
    };
    if let Some(code) = &e.data_quality {
        if e.recommendation.is_some() || e.mechanism.is_some() || e.consult.is_some() {
            problems.push(Problem::new(
                ptr,
                "emit exactly one of `recommendation`, `mechanism`, `consult` or `data_quality`",
            ));
            return None;
        }
        if e.urgency.is_some() {
            problems.push(Problem::new(
                format!("{ptr}/urgency"),
                "data-quality items carry no urgency",
            ));
            return None;
        }
        let index = cat.data_quality.iter().position(|c| **c == **code)?;
        return Some(Emit::DataQuality { index });
    }
    match (&e.recommendation, &e.mechanism, &e.consult) {
        (Some(code), None, None) => {
            let at = format!("{ptr}/recommendation");
            let index =
                catalogue_index(code, &cat.recommendations, "recommendations", at, problems)?;
            let urgency = urgency("a recommendation", problems)?;
            Some(Emit::Recommendation { index, urgency })
        }
        (None, None, Some(code)) => {
            let at = format!("{ptr}/consult");
            let index = catalogue_index(
                code,
                &cat.consult_triggers,
                "consult_triggers",
                at,
                problems,
            )?;
            let urgency = urgency("a consult trigger", problems)?;
            Some(Emit::Consult { index, urgency })
        }
        (None, Some(code), None) => {
            if e.urgency.is_some() {
                problems.push(Problem::new(
                    format!("{ptr}/urgency"),
                    "mechanisms carry no urgency",
                ));
                return None;
            }
            let at = format!("{ptr}/mechanism");
            let index = catalogue_index(code, &cat.mechanisms, "mechanisms", at, problems)?;
            Some(Emit::Mechanism { index })
        }
        _ => {
            problems.push(Problem::new(
                ptr,
                "emit exactly one of `recommendation`, `mechanism` or `consult`",
            ));
            None
        }
    }
}
