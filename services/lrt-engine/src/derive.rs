//! From cleaned timelines to engine facts (knowledge base §6.1 temporal semantics).
//!
//! * **Blood gases**: each PaO2 slot anchors one blood gas; a pH slot more than the match window
//!   (±5 min) away from every PaO2 anchors its own. PaCO2 and pH attach to the nearest anchor
//!   within the window; FiO2 pairs at or before the anchor, within the pairing window (60 min).
//! * **Current blood gas**: the latest PaO2 if it is valid (not stale, not conflicting);
//!   otherwise the latest blood gas (for PaCO2/pH). P/F is null without a valid pair.
//! * **Anchoring to a valid PaO2** (§9 D13, versions that set `paco2_ph_need_valid_pao2` to 1):
//!   a gas whose PaO2 slot is a conflict or was refused (§9 D8) has no PaCO2 and no pH either:
//!   the current values are null (no other gas stands in), and the gas cannot qualify for a
//!   series (EOLIA C3). Versions without the parameter (0.1.0) keep that gas's PaCO2/pH.
//! * **Other concepts**: the latest slot if valid; stale or conflicting latest slots are missing.
//! * **FiO2 challenge**: the current blood gas and the most recent earlier one within the
//!   challenge window with |ΔFiO2| ≥ 0.2 and PEEP within ±1 cmH2O.

use crate::concept::{Concept, EPSILON};
use crate::facts::{Fact, FactTable, FactValue};
use crate::physiology as phys;
use crate::quality::DataQuality;
use crate::ruleset::RuleSet;
use crate::snapshot::{PatientSnapshot, Sex};
use crate::timeline::{Evidence, Latest, MS_PER_HOUR, Millis, Slot, SlotValue, Timelines};

/// One arterial blood gas: the values the EOLIA series and the FiO2 challenge read.
#[derive(Debug, Clone, PartialEq)]
pub struct BloodGas {
    pub time: Millis,
    pub pao2: Option<f64>,
    pub fio2: Option<f64>,
    pub paco2: Option<f64>,
    pub ph: Option<f64>,
    pub pao2_evidence: Evidence,
    pub fio2_evidence: Evidence,
    pub paco2_evidence: Evidence,
    pub ph_evidence: Evidence,
}

impl BloodGas {
    pub fn pf_ratio(&self) -> Option<f64> {
        phys::pf_ratio(self.pao2?, self.fio2?)
    }
    /// Values in [`crate::facts::AbgField`] order.
    pub fn values(&self) -> [FactValue; 5] {
        [
            FactValue::from_option(self.pao2),
            FactValue::from_option(self.fio2),
            FactValue::from_option(self.pf_ratio()),
            FactValue::from_option(self.paco2),
            FactValue::from_option(self.ph),
        ]
    }
    pub fn evidence(&self) -> Evidence {
        let mut out = Evidence::new();
        for ids in [
            &self.pao2_evidence,
            &self.fio2_evidence,
            &self.paco2_evidence,
            &self.ph_evidence,
        ] {
            for &i in ids {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }
}

fn slot_number(s: Option<&Slot>) -> (Option<f64>, Evidence) {
    match s.and_then(|slot| slot.number().map(|v| (v, slot))) {
        Some((v, slot)) => (Some(v), slot.evidence.clone()),
        None => (None, Evidence::new()),
    }
}

/// All blood gases, in time order.
pub fn blood_gases(t: &Timelines, rules: &RuleSet) -> Vec<BloodGas> {
    let p = rules.engine_params();
    let need_valid_pao2 = rules
        .param("paco2_ph_need_valid_pao2")
        .is_some_and(|p| p.value >= 1.0);
    let pao2 = t.slots(Concept::Pao2);
    let mut anchors: Vec<Millis> = pao2.iter().map(|s| s.time).collect();
    for ph in t.slots(Concept::Ph) {
        let near_pao2 = pao2
            .iter()
            .any(|s| ((s.time - ph.time).abs() as f64) <= p.blood_gas_match_ms);
        if !near_pao2 {
            anchors.push(ph.time);
        }
    }
    anchors.sort_unstable();
    anchors.dedup();
    anchors
        .into_iter()
        .map(|time| {
            let pao2_slot = pao2.iter().find(|s| s.time == time);
            let (pao2_v, pao2_e) = slot_number(pao2_slot);
            let (fio2, fio2_e) =
                slot_number(t.at_or_before(Concept::Fio2, time, p.fio2_pairing_ms));
            // §9 D13: PaCO2 and pH anchor only to a valid PaO2.
            let unusable_anchor = need_valid_pao2
                && pao2_slot
                    .is_some_and(|s| matches!(s.value, SlotValue::Conflict | SlotValue::Refused));
            let (paco2, paco2_e, ph, ph_e) = if unusable_anchor {
                (None, Evidence::new(), None, Evidence::new())
            } else {
                let (paco2, paco2_e) =
                    slot_number(t.nearest(Concept::Paco2, time, p.blood_gas_match_ms));
                let (ph, ph_e) = slot_number(t.nearest(Concept::Ph, time, p.blood_gas_match_ms));
                (paco2, paco2_e, ph, ph_e)
            };
            BloodGas {
                time,
                pao2: pao2_v,
                fio2,
                paco2,
                ph,
                pao2_evidence: pao2_e,
                fio2_evidence: fio2_e,
                paco2_evidence: paco2_e,
                ph_evidence: ph_e,
            }
        })
        .collect()
}

/// Fills the engine facts. Returns the index of the current blood gas, if any.
pub fn engine_facts(
    snapshot: &PatientSnapshot,
    rules: &RuleSet,
    t: &Timelines,
    gases: &[BloodGas],
    now: Millis,
    facts: &mut FactTable,
    quality: &mut DataQuality,
) {
    context_facts(snapshot, rules, now, facts, quality);

    // Latest valid value of every concept read on its own; stale ones are reported.
    let latest = |c: Concept, quality: &mut DataQuality| -> Option<&Slot> {
        match t.latest(c, now, rules.window_ms(c)) {
            Latest::Valid(s) => Some(s),
            Latest::Stale(_) => {
                quality.push("stale", c.name());
                None
            }
            Latest::Absent | Latest::Conflict(_) => None,
        }
    };
    let simple = [
        (Concept::Sao2, Fact::Sao2),
        (Concept::Peep, Fact::Peep),
        (Concept::Pplat, Fact::Pplat),
        (Concept::Pip, Fact::Pip),
        (Concept::Mpaw, Fact::Mpaw),
        (Concept::TidalVolume, Fact::TidalVolume),
        (Concept::RespiratoryRate, Fact::RespiratoryRate),
        (Concept::RespiratoryRateSet, Fact::RespiratoryRateSet),
        (Concept::MinuteVentilation, Fact::MinuteVentilation),
        (Concept::Height, Fact::Height),
        (Concept::Weight, Fact::Weight),
        (Concept::Tapse, Fact::Tapse),
        (Concept::RvLvEdaRatio, Fact::RvLvEdaRatio),
        (Concept::CxrQuadrants, Fact::CxrQuadrants),
        (Concept::DeadSpaceFraction, Fact::VdVt),
    ];
    for (concept, fact) in simple {
        if let Some(s) = latest(concept, quality) {
            facts.set_observed(
                fact,
                FactValue::from_option(s.number()),
                Some(s.time),
                s.evidence.clone(),
            );
        }
    }
    if let Some(s) = latest(Concept::SeptalDyskinesia, quality) {
        facts.set_observed(
            Fact::SeptalDyskinesia,
            FactValue::from_bool(s.boolean()),
            Some(s.time),
            s.evidence.clone(),
        );
    }
    // §9 D2: extracorporeal support now, from a valid signal or the context (true wins: a
    // signal of support anywhere is enough to take the patient out of the ECMO screen).
    let signal = latest(Concept::ExtracorporealSupport, quality);
    let observed = signal.and_then(|s| s.boolean());
    let on_support = match (observed, snapshot.context.on_extracorporeal_support) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), _) | (None, Some(false)) => Some(false),
        (None, None) => None,
    };
    facts.set_observed(
        Fact::OnExtracorporealSupport,
        FactValue::from_bool(on_support),
        signal.map(|s| s.time),
        signal.map(|s| s.evidence.clone()).unwrap_or_default(),
    );
    // §9 D14: a valid body-position observation (the ventilator window) that says prone also
    // sets `currently_prone`. [H] A non-prone position (supine, lateral) does not set it to
    // false: it leaves the context's value (unknown when undocumented) and never ends a
    // documented prone session, the clinically safer reading (an ongoing session is not
    // interrupted by an ambiguous charting; the rules read only `currently_prone is true`).
    let position = latest(Concept::BodyPosition, quality);
    let prone_seen = position.filter(|s| s.boolean() == Some(true));
    let currently_prone = match (prone_seen, snapshot.context.currently_prone) {
        (Some(_), _) => Some(true),
        (None, context) => context,
    };
    facts.set_observed(
        Fact::CurrentlyProne,
        FactValue::from_bool(currently_prone),
        prone_seen.map(|s| s.time),
        prone_seen.map(|s| s.evidence.clone()).unwrap_or_default(),
    );
    let echo = [Fact::Tapse, Fact::RvLvEdaRatio, Fact::SeptalDyskinesia];
    facts.set_observed(
        Fact::EchoAvailable,
        FactValue::Boolean(echo.iter().any(|f| !facts.values[*f as usize].is_null())),
        None,
        facts.union_evidence(&echo),
    );

    let pao2_valid = latest(Concept::Pao2, quality).is_some();
    blood_gas_facts(rules, t, gases, now, facts, quality, pao2_valid);
    for c in [Concept::Paco2, Concept::Ph] {
        // Staleness of PaCO2/pH is reported on its own even though the values come from the blood gas.
        let _ = latest(c, quality);
    }
    spo2_facts(rules, t, now, facts, quality);
    mechanics_facts(snapshot, rules, facts, quality);
    challenge_fact(rules, t, gases, now, facts);
    ri_facts(snapshot, facts, quality);
}

fn context_facts(
    snapshot: &PatientSnapshot,
    rules: &RuleSet,
    now: Millis,
    facts: &mut FactTable,
    quality: &mut DataQuality,
) {
    let c = &snapshot.context;
    // §9 D4 (versions that set `age_imprecise_as_range` to 1): an imprecise birth date that
    // allows several ages is a range, so a threshold inside it is unknown, not the lowest age.
    let age_range = rules
        .param("age_imprecise_as_range")
        .is_some_and(|p| p.value >= 1.0);
    let age = match (snapshot.patient.age_years, snapshot.patient.age_years_max) {
        (Some(lo), Some(hi)) if age_range && hi > lo => FactValue::Interval {
            lo: f64::from(lo),
            hi: f64::from(hi),
        },
        (lo, _) => FactValue::from_option(lo.map(f64::from)),
    };
    facts.set(Fact::AgeYears, age);
    facts.set(
        Fact::Sex,
        FactValue::Category(snapshot.patient.sex.index() as u16),
    );
    facts.set(Fact::Intubated, FactValue::from_bool(c.intubated));
    let mv = c
        .mv_start
        .map(crate::timeline::to_millis)
        .filter(|&s| s <= now);
    facts.set_observed(
        Fact::MvDurationH,
        FactValue::from_option(mv.map(|s| (now - s) as f64 / MS_PER_HOUR)),
        mv,
        Evidence::new(),
    );
    let flags = [
        (Fact::PneumoniaCause, c.pneumonia_cause),
        (Fact::Immunocompromised, c.immunocompromised),
        (Fact::CnsDysfunction, c.cns_dysfunction),
        (Fact::NonpulmonaryInfection, c.nonpulmonary_infection),
        (Fact::NmbBefore, c.nmb_before),
        (Fact::InoBefore, c.ino_before),
        (Fact::BicarbonateBefore, c.bicarbonate_before),
        (Fact::CardiacArrestBefore, c.cardiac_arrest_before),
        (Fact::ProneTrialDone, c.prone_trial_done),
        (Fact::ProneContraindication, c.prone_contraindication),
        (Fact::IntracranialHemorrhage, c.intracranial_hemorrhage),
        (
            Fact::AnticoagulationContraindicated,
            c.anticoagulation_contraindicated,
        ),
        (
            Fact::ChronicRespFailureHomeO2,
            c.chronic_resp_failure_home_o2,
        ),
        (Fact::GoalsOfCare, c.goals_of_care),
    ];
    for (fact, v) in flags {
        facts.set(fact, FactValue::from_bool(v));
    }
    facts.set(
        Fact::DiagnosisGroup,
        c.diagnosis_group
            .map_or(FactValue::Null, |g| FactValue::Category(g.index() as u16)),
    );
    let mut bits = 0u64;
    for code in &c.hard_stops {
        match rules.hard_stop_index(code) {
            Some(i) => bits |= 1 << i,
            // Never dropped silently: a documented hard stop the rule set does not know.
            None => quality.push("unknown_hard_stop", code),
        }
    }
    facts.set(Fact::HardStops, FactValue::Set(bits));
}

fn blood_gas_facts(
    rules: &RuleSet,
    t: &Timelines,
    gases: &[BloodGas],
    now: Millis,
    facts: &mut FactTable,
    quality: &mut DataQuality,
    pao2_valid: bool,
) {
    let current = if pao2_valid {
        let last_pao2 = t.slots(Concept::Pao2).last().map(|s| s.time);
        gases.iter().rposition(|g| Some(g.time) == last_pao2)
    } else {
        gases.len().checked_sub(1)
    };
    let Some(g) = current.map(|i| &gases[i]) else {
        return;
    };
    let fresh = |c: Concept| {
        rules
            .window_ms(c)
            .is_none_or(|w| ((now - g.time) as f64) <= w)
    };
    if pao2_valid {
        facts.set_observed(
            Fact::Pao2,
            FactValue::from_option(g.pao2),
            Some(g.time),
            g.pao2_evidence.clone(),
        );
        match g.fio2 {
            Some(fio2) => {
                facts.set_observed(
                    Fact::Fio2,
                    FactValue::Number(fio2),
                    Some(g.time),
                    g.fio2_evidence.clone(),
                );
                facts.set_observed(
                    Fact::PfRatio,
                    FactValue::from_option(g.pf_ratio()),
                    Some(g.time),
                    facts.union_evidence(&[Fact::Pao2, Fact::Fio2]),
                );
            }
            None => quality.push("missing_or_unpaired", "fio2"),
        }
    }
    for (concept, fact, value, evidence) in [
        (Concept::Paco2, Fact::Paco2, g.paco2, &g.paco2_evidence),
        (Concept::Ph, Fact::Ph, g.ph, &g.ph_evidence),
    ] {
        if value.is_some() && fresh(concept) {
            facts.set_observed(
                fact,
                FactValue::from_option(value),
                Some(g.time),
                evidence.clone(),
            );
        } else if pao2_valid && value.is_none() && !t.slots(concept).is_empty() {
            quality.push("missing_or_unpaired", concept.name());
        }
    }
}

fn spo2_facts(
    rules: &RuleSet,
    t: &Timelines,
    now: Millis,
    facts: &mut FactTable,
    quality: &mut DataQuality,
) {
    let s = match t.latest(Concept::Spo2, now, rules.window_ms(Concept::Spo2)) {
        Latest::Valid(s) => s,
        Latest::Stale(_) => {
            quality.push("stale", "spo2");
            return;
        }
        _ => return,
    };
    let Some(spo2) = s.number() else { return };
    facts.set_observed(
        Fact::Spo2,
        FactValue::Number(spo2),
        Some(s.time),
        s.evidence.clone(),
    );
    let paired = t.at_or_before(Concept::Fio2, s.time, rules.engine_params().fio2_pairing_ms);
    if let Some(f) = paired
        && let Some(fio2) = f.number()
    {
        facts.set_observed(
            Fact::Spo2Fio2,
            FactValue::Number(fio2),
            Some(f.time),
            f.evidence.clone(),
        );
        facts.set_observed(
            Fact::SfRatio,
            FactValue::from_option(phys::sf_ratio(spo2, fio2)),
            Some(s.time),
            facts.union_evidence(&[Fact::Spo2, Fact::Spo2Fio2]),
        );
    }
}

fn mechanics_facts(
    snapshot: &PatientSnapshot,
    rules: &RuleSet,
    facts: &mut FactTable,
    quality: &mut DataQuality,
) {
    let n = |f: Fact, facts: &FactTable| facts.num(f);
    // A computed figure is as old as its newest input.
    let computed = |facts: &mut FactTable, f: Fact, v: Option<f64>, inputs: &[Fact]| {
        if v.is_some() {
            let ev = facts.union_evidence(inputs);
            let time = inputs.iter().filter_map(|i| facts.times[*i as usize]).max();
            facts.set_observed(f, FactValue::from_option(v), time, ev);
        }
    };
    let mut sex = snapshot.patient.sex;
    if let Some(h) = n(Fact::Height, facts) {
        // §9 D4 (versions that set `pbw_unknown_sex_as_female` to 1): an unknown sex takes the
        // female PBW, the conservative bound (a higher Vt per kg), and the assessment says so.
        let female_bound = rules
            .param("pbw_unknown_sex_as_female")
            .is_some_and(|p| p.value >= 1.0);
        if sex == Sex::Unknown && female_bound {
            quality.push("pbw_female_for_unknown_sex", "sex");
            sex = Sex::Female;
        } else if sex == Sex::Unknown {
            quality.push("missing", "sex");
        }
        computed(
            facts,
            Fact::PbwKg,
            phys::predicted_body_weight(sex, h),
            &[Fact::Height],
        );
    }
    if let (Some(vt), Some(pbw)) = (n(Fact::TidalVolume, facts), n(Fact::PbwKg, facts)) {
        computed(
            facts,
            Fact::VtPerKgPbw,
            phys::vt_per_kg(vt, pbw),
            &[Fact::TidalVolume, Fact::PbwKg],
        );
    }
    if let (Some(pplat), Some(peep)) = (n(Fact::Pplat, facts), n(Fact::Peep, facts)) {
        match phys::driving_pressure(pplat, peep) {
            Some(dp) => computed(
                facts,
                Fact::DrivingPressure,
                Some(dp),
                &[Fact::Pplat, Fact::Peep],
            ),
            None => quality.push("mechanics_not_assessable", "pplat_not_above_peep"),
        }
        if let Some(vt) = n(Fact::TidalVolume, facts) {
            computed(
                facts,
                Fact::CrsStatic,
                phys::static_compliance(vt, pplat, peep),
                &[Fact::TidalVolume, Fact::Pplat, Fact::Peep],
            );
        }
    }
    if let (Some(fio2), Some(mpaw), Some(pao2)) = (
        n(Fact::Fio2, facts),
        n(Fact::Mpaw, facts),
        n(Fact::Pao2, facts),
    ) {
        computed(
            facts,
            Fact::OxygenationIndex,
            phys::oxygenation_index(fio2, mpaw, pao2),
            &[Fact::Fio2, Fact::Mpaw, Fact::Pao2],
        );
    }
    if let (Some(fio2), Some(mpaw), Some(spo2)) = (
        n(Fact::Spo2Fio2, facts),
        n(Fact::Mpaw, facts),
        n(Fact::Spo2, facts),
    ) {
        computed(
            facts,
            Fact::OxygenSaturationIndex,
            phys::oxygen_saturation_index(fio2, mpaw, spo2),
            &[Fact::Spo2Fio2, Fact::Mpaw, Fact::Spo2],
        );
    }
    // VE: measured minute ventilation first, else RR x Vt.
    let (ve_ml_min, ve_inputs): (Option<f64>, &[Fact]) = match n(Fact::MinuteVentilation, facts) {
        Some(ve) => (Some(ve * 1000.0), &[Fact::MinuteVentilation]),
        None => (
            n(Fact::RespiratoryRate, facts)
                .zip(n(Fact::TidalVolume, facts))
                .map(|(rr, vt)| rr * vt),
            &[Fact::RespiratoryRate, Fact::TidalVolume],
        ),
    };
    if let (Some(ve), Some(paco2), Some(pbw)) =
        (ve_ml_min, n(Fact::Paco2, facts), n(Fact::PbwKg, facts))
    {
        let mut inputs = ve_inputs.to_vec();
        inputs.extend([Fact::Paco2, Fact::PbwKg]);
        computed(
            facts,
            Fact::VentilatoryRatio,
            phys::ventilatory_ratio(ve, paco2, pbw),
            &inputs,
        );
    }
    if let (Some(rr), Some(vt), Some(pip), Some(dp)) = (
        n(Fact::RespiratoryRate, facts),
        n(Fact::TidalVolume, facts),
        n(Fact::Pip, facts),
        n(Fact::DrivingPressure, facts),
    ) {
        computed(
            facts,
            Fact::MechanicalPower,
            Some(phys::mechanical_power(rr, vt, pip, dp)),
            &[
                Fact::RespiratoryRate,
                Fact::TidalVolume,
                Fact::Pip,
                Fact::DrivingPressure,
            ],
        );
    }
    if let (Some(w), Some(h)) = (n(Fact::Weight, facts), n(Fact::Height, facts)) {
        computed(
            facts,
            Fact::Bmi,
            phys::bmi(w, h),
            &[Fact::Weight, Fact::Height],
        );
    }
}

fn challenge_fact(
    rules: &RuleSet,
    t: &Timelines,
    gases: &[BloodGas],
    now: Millis,
    facts: &mut FactTable,
) {
    let p = rules.engine_params();
    if facts.num(Fact::PfRatio).is_none() {
        return;
    }
    let Some(last_pao2) = t.slots(Concept::Pao2).last().map(|s| s.time) else {
        return;
    };
    let Some(current) = gases.iter().rposition(|g| g.time == last_pao2) else {
        return;
    };
    let vent_window = rules.window_ms(Concept::Peep).unwrap_or(f64::INFINITY);
    let peep_at = |time: Millis| {
        t.at_or_before(Concept::Peep, time, vent_window)
            .and_then(|s| s.number().map(|v| (v, s)))
    };
    let b = &gases[current];
    let (Some(pao2_b), Some(fio2_b), Some((peep_b, peep_b_slot))) =
        (b.pao2, b.fio2, peep_at(b.time))
    else {
        return;
    };
    for a in gases[..current].iter().rev() {
        if (b.time - a.time) as f64 > p.challenge_window_ms + EPSILON || a.time > now {
            break;
        }
        let (Some(pao2_a), Some(fio2_a), Some((peep_a, peep_a_slot))) =
            (a.pao2, a.fio2, peep_at(a.time))
        else {
            continue;
        };
        if (fio2_b - fio2_a).abs() < p.challenge_min_dfio2 - EPSILON
            || (peep_b - peep_a).abs() > p.challenge_peep_tol + EPSILON
        {
            continue;
        }
        if let Some(slope) = phys::fio2_challenge_slope(pao2_a, fio2_a, pao2_b, fio2_b) {
            let mut evidence = a.evidence();
            for e in b
                .evidence()
                .into_iter()
                .chain(peep_a_slot.evidence.iter().copied())
                .chain(peep_b_slot.evidence.iter().copied())
            {
                if !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
            facts.set_observed(
                Fact::Fio2ChallengeSlope,
                FactValue::Number(slope),
                Some(b.time),
                evidence,
            );
        }
        return;
    }
}

fn ri_facts(snapshot: &PatientSnapshot, facts: &mut FactTable, quality: &mut DataQuality) {
    let Some(m) = snapshot.maneuvers.as_ref().and_then(|m| m.ri) else {
        return;
    };
    let r = phys::recruitment_to_inflation(&m);
    facts.set(Fact::RiAssessable, FactValue::Boolean(r.assessable));
    facts.set(Fact::RiRatio, FactValue::from_option(r.ri));
    if !r.assessable {
        quality.push("ri_not_assessable", "maneuver");
    }
}
