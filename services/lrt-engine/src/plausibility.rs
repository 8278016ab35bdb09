//! Blood gases that cannot be physiological are refused (knowledge base §9 D8), when the rule-set
//! version defines the plausibility parameters (0.2.0 on).
//!
//! A refused value is marked in its timeline ([`crate::timeline::SlotValue::Refused`]): it is
//! reported (`implausible:pao2@<time>`, `suspected_kpa_as_mmhg@<time>`), and the evaluation goes
//! on as if the value were absent, without an older value standing in for it (as for a
//! conflict). So an implausible value never feeds a category, a criterion or a page.
//!
//! * PaO2 below `pao2_min_mmhg`, PaCO2 below `paco2_min_mmhg`;
//! * PaO2 and PaCO2 of one gas both below `kpa_suspect_max_mmhg`: kPa sent as mm[Hg] (12.5 and
//!   5.3 "mm[Hg]" are 94 and 40 mmHg); both refused;
//! * PaO2 above the alveolar PO2 by more than `alveolar_margin`: PAO2 = FiO2 ×
//!   `alveolar_pio2_factor` − PaCO2 / `alveolar_rq`, with the FiO2 paired to the gas (§6.1) and
//!   its PaCO2 (0 when unknown, which only widens the bound). Without a paired FiO2 there is no
//!   bound, and the gas has no P/F anyway.
//!
//! Thresholds compare unrounded values (ε = 1e-9, §1.1): a value equal to a minimum is kept.

use crate::concept::{Concept, EPSILON};
use crate::quality::DataQuality;
use crate::ruleset::RuleSet;
use crate::timeline::{Millis, Timelines, format_millis};

/// Refuses the implausible blood-gas values of `t` (no-op for versions without §9 D8).
pub fn refuse_implausible_gases(t: &mut Timelines, rules: &RuleSet, quality: &mut DataQuality) {
    let p = rules.engine_params();
    let Some(d8) = p.gas_plausibility else {
        return;
    };
    let match_ms = p.blood_gas_match_ms;
    let pairing_ms = p.fio2_pairing_ms;
    let mut refuse: Vec<(Concept, usize, &'static str, Millis)> = Vec::new();

    let paco2_slots = t.slots(Concept::Paco2);
    // PaCO2 below its minimum, wherever it is.
    for (i, s) in paco2_slots.iter().enumerate() {
        if s.number().is_some_and(|v| v < d8.paco2_min - EPSILON) {
            refuse.push((Concept::Paco2, i, "implausible:paco2", s.time));
        }
    }
    for (i, s) in t.slots(Concept::Pao2).iter().enumerate() {
        let Some(pao2) = s.number() else { continue };
        // The PaCO2 of the same gas (nearest within the match window, earlier wins a tie).
        let paco2 = paco2_slots
            .iter()
            .enumerate()
            .filter(|(_, c)| ((c.time - s.time).abs() as f64) <= match_ms)
            .min_by_key(|(_, c)| ((c.time - s.time).abs(), c.time))
            .and_then(|(j, c)| c.number().map(|v| (j, v)));
        let low_pao2 = pao2 < d8.pao2_min - EPSILON;
        if let Some((j, paco2)) = paco2
            && pao2 < d8.kpa_suspect_max - EPSILON
            && paco2 < d8.kpa_suspect_max - EPSILON
        {
            refuse.push((Concept::Pao2, i, "suspected_kpa_as_mmhg", s.time));
            refuse.push((Concept::Paco2, j, "suspected_kpa_as_mmhg", s.time));
            continue;
        }
        if low_pao2 {
            refuse.push((Concept::Pao2, i, "implausible:pao2", s.time));
            continue;
        }
        let Some(fio2) = t
            .at_or_before(Concept::Fio2, s.time, pairing_ms)
            .and_then(|f| f.number())
        else {
            continue;
        };
        let paco2 = paco2
            .map(|(_, v)| v)
            .filter(|v| *v >= d8.paco2_min - EPSILON)
            .unwrap_or(0.0);
        let alveolar = fio2 * d8.alveolar_pio2_factor - paco2 / d8.alveolar_rq;
        if pao2 > alveolar * (1.0 + d8.alveolar_margin) + EPSILON {
            refuse.push((Concept::Pao2, i, "implausible:pao2", s.time));
        }
    }
    refuse.sort_by_key(|(c, i, code, _)| (*c, *i, *code));
    let mut reported: Vec<(&'static str, Millis)> = Vec::new();
    for (concept, index, code, time) in refuse {
        t.refuse(concept, index);
        if !reported.contains(&(code, time)) {
            reported.push((code, time));
            let (head, detail) = code.split_once(':').unwrap_or((code, ""));
            let at = format_millis(time);
            if detail.is_empty() {
                quality.push(head, &at);
            } else {
                quality.push(head, &format!("{detail}@{at}"));
            }
        }
    }
}
