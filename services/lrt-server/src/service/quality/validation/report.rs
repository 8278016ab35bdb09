//! A [`Validation`] as a plain-text report for a terminal (`lrt validate` without `--json`):
//! the source and window, what was set apart, both 2×2 tables with their proportions and lead
//! times, the category confusion matrix, and the rows to review (set apart or discordant).

use std::fmt::Write;

use super::stats::Cell;
use super::{Measure, SetApart, Source, Validation};

/// The report.
pub fn text(v: &Validation) -> String {
    let mut out = String::new();
    let source = match &v.source {
        Source::Stored => "stored active evaluations".to_string(),
        Source::Replay {
            run,
            replayed,
            state,
            ruleset_id,
            ruleset_version,
        } => {
            let warning = if state == "finished" {
                String::new()
            } else {
                format!(" — run {state}, not finished: its outcomes so far")
            };
            format!("replay run {run} ({replayed} inputs, {ruleset_id} {ruleset_version}){warning}")
        }
    };
    let _ = writeln!(out, "Silent-mode validation");
    let _ = writeln!(out, "  calls compared:  {source}");
    let _ = writeln!(
        out,
        "  look-back:       {} before each adjudicated time",
        v.window
    );
    let versions = if v.ruleset_versions.is_empty() {
        "none".to_string()
    } else {
        v.ruleset_versions.join(", ")
    };
    let _ = writeln!(out, "  rule sets:       {versions}");
    let _ = writeln!(
        out,
        "  adjudications:   {} ({} evaluated, {} not evaluated)",
        v.adjudications, v.evaluated, v.not_evaluated.count
    );
    set_apart(
        &mut out,
        "Not evaluated (no call in the look-back; in no table)",
        &v.not_evaluated,
    );
    set_apart(
        &mut out,
        "System call insufficient_data (a system negative of the ECMO screen)",
        &v.insufficient_data,
    );
    measure(&mut out, "ECMO screen", &v.screen);
    measure(&mut out, "Consult trigger", &v.consult);
    agreement(&mut out, v);
    discordant(&mut out, v);
    out
}

fn set_apart(out: &mut String, title: &str, s: &SetApart) {
    let _ = writeln!(
        out,
        "\n{title}: {} ({} adjudicated eligible/borderline, {} consult warranted)",
        s.count, s.adjudicated_screen_positive, s.consult_warranted
    );
    for r in &s.rows {
        let _ = writeln!(
            out,
            "  {}  {}  adjudicated {}{}",
            r.patient,
            r.time.to_rfc3339(),
            r.adjudicated_category.code(),
            if r.consult_warranted {
                ", consult warranted"
            } else {
                ""
            }
        );
    }
}

fn measure(out: &mut String, title: &str, m: &Measure) {
    let t = &m.table;
    let _ = writeln!(out, "\n{title}: {}", m.definition);
    let _ = writeln!(out, "                 adjudicated +  adjudicated -");
    let _ = writeln!(out, "  system +       TP {:>10}  FP {:>10}", t.tp, t.fp);
    let _ = writeln!(out, "  system -       FN {:>10}  TN {:>10}", t.r#fn, t.tn);
    for (name, p) in [
        ("sensitivity", m.sensitivity),
        ("specificity", m.specificity),
        ("PPV", m.ppv),
        ("NPV", m.npv),
    ] {
        let _ = writeln!(out, "  {name:<12} {}", p.text());
    }
    let _ = writeln!(out, "  lead time of the TPs: {}", m.lead_time_hours.text());
}

fn agreement(out: &mut String, v: &Validation) {
    let _ = writeln!(
        out,
        "\nExact category agreement: {}",
        v.agreement.exact.text()
    );
    if v.agreement.matrix.is_empty() {
        return;
    }
    let _ = writeln!(out, "  adjudicated        system             rows");
    for cell in &v.agreement.matrix {
        let _ = writeln!(
            out,
            "  {:<18} {:<18} {}",
            cell.adjudicated.code(),
            cell.system,
            cell.rows
        );
    }
}

/// The evaluated rows where the system and the LRT disagree (FP or FN in either table).
fn discordant(out: &mut String, v: &Validation) {
    let wrong = |c: Option<Cell>| matches!(c, Some(Cell::Fp | Cell::Fn));
    let rows: Vec<_> = v
        .rows
        .iter()
        .filter(|r| wrong(r.screen) || wrong(r.consult))
        .collect();
    let _ = writeln!(out, "\nDiscordant rows (FP or FN): {}", rows.len());
    for r in rows {
        let Some(call) = &r.system else { continue };
        let cell = |c: Option<Cell>| c.map_or("-", Cell::as_str);
        let _ = writeln!(
            out,
            "  {}  {}  adjudicated {}{}; system {} at {}{}  [screen {}, consult {}]",
            r.patient,
            r.time.to_rfc3339(),
            r.adjudicated_category.code(),
            if r.consult_warranted {
                " (consult warranted)"
            } else {
                ""
            },
            call.category.as_deref().unwrap_or("none"),
            call.at.to_rfc3339(),
            if call.consult_triggers.is_empty() {
                String::new()
            } else {
                format!(" triggers {}", call.consult_triggers.join("|"))
            },
            cell(r.screen),
            cell(r.consult),
        );
    }
}
