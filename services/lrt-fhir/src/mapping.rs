//! FHIR records to the engine's [`PatientSnapshot`].
//!
//! * **Observations**: the codings choose the concept through the rule set's value sets (a
//!   concept that `supersedes` another wins; otherwise different concepts on one observation are
//!   ambiguous and the observation is not used). Components become observations of their own
//!   (`<id>/component/<n>`). The unit is the UCUM `code`. `effectiveDateTime`/`Instant` or the
//!   end of `effectivePeriod` (else its start) gives the time; a partial date is not a time.
//! * **Patient**: sex from `gender`; age in completed years at `now` from `birthDate` (a partial
//!   birth date gives the lowest possible age, flagged `imprecise_birth_date`, and the highest
//!   in `age_years_max` when it allows more than one; §9 D4).
//! * **Conditions, procedures, medications, flags**: the rule set's code sets set the context.
//!   Nothing dated after `now` counts (replays see only the past). A kind of resource that was
//!   not searched leaves its flags unknown; a searched kind without a match applies the code
//!   set's `when_absent`. Versions with `report_unmapped_context_codes` report every active
//!   Flag or Condition that no code set maps (`unmapped:<system>|<code>`, §9 D4).
//! * **Ventilation**: invasive-ventilation periods (merged across gaps up to the rule set's
//!   `ventilation_episode_gap_h`) covering `now` mean intubated since the episode's start; without
//!   one, the latest intubation not followed by an extubation.
//!
//! Every resource or value that cannot be used is reported in `data_quality`, never guessed.

use chrono::{DateTime, Utc};
use lrt_engine::RuleSet;
use lrt_engine::concept::{Concept, Dimension};
use lrt_engine::ruleset::codesets::{CodeSet, ContextTarget};
use lrt_engine::ruleset::files::{ResourceKind, WhenAbsent};
use lrt_engine::snapshot::{
    CodedValue, Context, ContextFlag, DiagnosisGroup, Observation, ObservationStatus,
    ObservationValue, Patient, PatientSnapshot, Sex,
};

use crate::bundle::Read;
use crate::read::{
    Coding, ConditionRecord, FlagRecord, MedicationDefinition, MedicationKind, MedicationRecord,
    ObservationRecord, PatientRecord, ProcedureRecord, Record, Value, When,
};
use crate::time::{self, FhirTime};

/// Which kinds of resources were searched (a prefetch key that resolved, a search that ran).
/// A kind that was not searched says nothing about absence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Searched {
    pub conditions: bool,
    pub procedures: bool,
    pub medications: bool,
    pub flags: bool,
}

impl Searched {
    pub const ALL: Searched = Searched {
        conditions: true,
        procedures: true,
        medications: true,
        flags: true,
    };

    fn kind(self, k: ResourceKind) -> bool {
        match k {
            ResourceKind::Conditions => self.conditions,
            ResourceKind::Procedures => self.procedures,
            ResourceKind::Medications => self.medications,
            ResourceKind::Flags => self.flags,
        }
    }
}

/// Every resource gathered for one evaluation (from prefetch, searches or a Bundle file).
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub resources: Vec<Read>,
    pub warnings: Vec<String>,
}

impl Collected {
    pub fn add(&mut self, payload: crate::bundle::Payload) {
        self.resources.extend(payload.resources);
        self.warnings.extend(payload.warnings);
    }

    fn records(&self) -> impl Iterator<Item = (&Read, &Record)> {
        self.resources.iter().map(|r| (r, &r.record))
    }

    /// The kinds present in the resources for `patient` (used when a Bundle is all there is).
    pub fn present_kinds(&self, patient: &str) -> Searched {
        let mut s = Searched::default();
        let subject = self.patient_subject(patient);
        for (_, r) in self.records() {
            match r {
                Record::Condition(c) if subject.is(&c.subject) => s.conditions = true,
                Record::Procedure(p) if subject.is(&p.subject) => s.procedures = true,
                Record::Medication(m) if subject.is(&m.subject) => s.medications = true,
                Record::Flag(f) if subject.is(&f.subject) => s.flags = true,
                _ => {}
            }
        }
        s
    }

    /// What [`build_snapshot`] reads of `patient`: the patient's own resources and those tied
    /// to no patient (medication definitions, OperationOutcomes), with the warnings. A
    /// multi-patient file is split once so that each of many snapshots (a replay at every blood
    /// gas) does not go through every other patient's resources; the snapshot built from it is
    /// the same unless `warn_other_patients` (which counts the others) is set.
    pub fn of_patient(&self, patient: &str) -> Collected {
        let subject = self.patient_subject(patient);
        let resources = self
            .resources
            .iter()
            .filter(|r| match &r.record {
                Record::Patient(p) => p.id.as_deref() == Some(patient),
                Record::Observation(o) => subject.is(&o.subject),
                Record::Condition(c) => subject.is(&c.subject),
                Record::Procedure(p) => subject.is(&p.subject),
                Record::Medication(m) => subject.is(&m.subject),
                Record::Flag(f) => subject.is(&f.subject),
                Record::MedicationDefinition(_) | Record::OperationOutcome(_) => true,
                Record::Other(_) => false,
            })
            .cloned()
            .collect();
        Collected {
            resources,
            warnings: self.warnings.clone(),
        }
    }

    /// The ids of the Patient resources read, in order, each once.
    pub fn patient_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for (_, r) in self.records() {
            if let Record::Patient(p) = r
                && let Some(id) = &p.id
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// The time of the newest observation of `patient` (the default evaluation time of a Bundle).
    pub fn newest_observation(&self, patient: &str) -> Option<DateTime<Utc>> {
        let subject = self.patient_subject(patient);
        self.records()
            .filter_map(|(_, r)| match r {
                Record::Observation(o) if subject.is(&o.subject) => {
                    observation_time(o.effective.as_ref()).ok()
                }
                _ => None,
            })
            .max()
    }

    fn patient_subject(&self, patient: &str) -> Subject {
        let full_url = self.resources.iter().find_map(|r| match &r.record {
            Record::Patient(p) if p.id.as_deref() == Some(patient) => r.full_url.clone(),
            _ => None,
        });
        Subject {
            id: patient.to_string(),
            full_url,
        }
    }
}

/// How resources refer to the patient: `Patient/<id>`, an absolute URL ending so, or the
/// Patient entry's `fullUrl` (`urn:uuid:...` in transactions).
struct Subject {
    id: String,
    full_url: Option<String>,
}

impl Subject {
    fn is(&self, reference: &Option<String>) -> bool {
        let Some(r) = reference.as_deref() else {
            return false;
        };
        let relative = format!("Patient/{}", self.id);
        r == relative
            || r.strip_suffix(&relative)
                .is_some_and(|base| base.ends_with('/'))
            || self.full_url.as_deref() == Some(r)
    }
}

/// Options of one mapping.
#[derive(Debug, Clone, Copy)]
pub struct MapOptions {
    pub searched: Searched,
    /// Report resources of other patients (they never enter the snapshot). True for searches
    /// and prefetch, where they must not occur; false for multi-patient Bundle files.
    pub warn_other_patients: bool,
}

/// Builds the snapshot of `patient` at `now`. Warnings go to `snapshot.data_quality`.
pub fn build_snapshot(
    rules: &RuleSet,
    collected: &Collected,
    patient: &str,
    now: DateTime<Utc>,
    opts: MapOptions,
) -> PatientSnapshot {
    let mut m = Mapper {
        rules,
        now,
        warnings: collected.warnings.clone(),
        context: Context::default(),
    };
    let subject = collected.patient_subject(patient);
    let mut observations = Vec::new();
    let mut conditions = Vec::new();
    let mut procedures = Vec::new();
    let mut medications = Vec::new();
    let mut flags = Vec::new();
    let mut definitions: Vec<&MedicationDefinition> = Vec::new();
    let mut patient_record: Option<&PatientRecord> = None;
    let mut others = 0usize;
    let mut count = |ok: bool| {
        if !ok {
            others += 1;
        }
        ok
    };
    for (_, record) in collected.records() {
        match record {
            Record::Patient(p) if p.id.as_deref() == Some(patient) => patient_record = Some(p),
            Record::Observation(o) if count(subject.is(&o.subject)) => observations.push(o),
            Record::Condition(c) if count(subject.is(&c.subject)) => conditions.push(c),
            Record::Procedure(p) if count(subject.is(&p.subject)) => procedures.push(p),
            Record::Medication(x) if count(subject.is(&x.subject)) => medications.push(x),
            Record::Flag(f) if count(subject.is(&f.subject)) => flags.push(f),
            Record::MedicationDefinition(d) => definitions.push(d),
            Record::OperationOutcome(issues) => m.warn("operation_outcome", &issues.join("; ")),
            _ => {}
        }
    }
    if opts.warn_other_patients && others > 0 {
        m.warn(
            "other_patient",
            &format!("{others} resources of other patients ignored"),
        );
    }
    let patient_out = match patient_record {
        Some(p) => m.patient(p),
        None => {
            m.warn("missing", "patient");
            Patient::default()
        }
    };
    let mut obs_out = Vec::with_capacity(observations.len());
    for o in observations {
        m.observation(o, &mut obs_out);
    }
    m.conditions(&conditions, opts.searched);
    m.flags(&flags, opts.searched);
    m.medications(&medications, &definitions, opts.searched);
    m.procedures(&procedures, opts.searched);
    PatientSnapshot {
        patient: patient_out,
        context: m.context,
        observations: obs_out,
        maneuvers: None,
        data_quality: m.warnings,
    }
}

struct Mapper<'a> {
    rules: &'a RuleSet,
    now: DateTime<Utc>,
    warnings: Vec<String>,
    context: Context,
}

/// An observation's instant: `effectiveDateTime`/`Instant`, or the end (else start) of its period.
fn observation_time(w: Option<&When>) -> Result<DateTime<Utc>, &'static str> {
    let text = match w {
        Some(When::At(t)) => t.as_str(),
        Some(When::Period { end: Some(e), .. }) => e.as_str(),
        Some(When::Period { start: Some(s), .. }) => s.as_str(),
        Some(When::Period { .. }) => return Err("no_time"),
        Some(When::Other(_)) | None => return Err("no_time"),
    };
    match time::parse(text) {
        Some(FhirTime::Instant(t)) => Ok(t),
        Some(FhirTime::Partial { .. }) => Err("imprecise_time"),
        None => Err("no_time"),
    }
}

/// The start of a period (or the instant): `None` when it has no instant start.
fn start_of(w: Option<&When>) -> Option<DateTime<Utc>> {
    match w? {
        When::At(t) => time::parse_instant(t),
        When::Period { start, .. } => time::parse_instant(start.as_deref()?),
        When::Other(_) => None,
    }
}

/// The end of a period: `Some(None)` = open-ended.
fn end_of(w: Option<&When>) -> Option<Option<DateTime<Utc>>> {
    match w? {
        When::At(t) => Some(time::parse_instant(t)),
        When::Period { end: None, .. } => Some(None),
        When::Period { end: Some(e), .. } => time::parse_instant(e).map(Some),
        When::Other(_) => None,
    }
}

/// The earliest day a condition may date from (onset, else recorded date).
fn condition_date(c: &ConditionRecord) -> Option<DateTime<Utc>> {
    let text = match &c.onset {
        Some(When::At(t)) => Some(t.as_str()),
        Some(When::Period { start: Some(s), .. }) => Some(s.as_str()),
        _ => c.recorded.as_deref(),
    }?;
    match time::parse(text)? {
        FhirTime::Instant(t) => Some(t),
        FhirTime::Partial { first, .. } => first.and_hms_opt(0, 0, 0).map(|d| d.and_utc()),
    }
}

/// SNOMED CT Yes/No and HL7 v2 Y/N answers for boolean findings.
fn coded_answer(codes: &[Coding]) -> Option<bool> {
    codes
        .iter()
        .find_map(|c| match (c.system.as_str(), c.code.as_str()) {
            ("http://snomed.info/sct", "373066001")
            | ("http://terminology.hl7.org/CodeSystem/v2-0136", "Y") => Some(true),
            ("http://snomed.info/sct", "373067005")
            | ("http://terminology.hl7.org/CodeSystem/v2-0136", "N") => Some(false),
            _ => None,
        })
}

fn any_match(set: &CodeSet, codes: &[Coding]) -> bool {
    codes.iter().any(|c| set.matches(&c.system, &c.code))
}

impl Mapper<'_> {
    fn warn(&mut self, code: &str, detail: &str) {
        let item = format!("{code}:{detail}");
        if !self.warnings.contains(&item) {
            self.warnings.push(item);
        }
    }

    fn patient(&mut self, p: &PatientRecord) -> Patient {
        let sex = match p.gender.as_deref() {
            Some("male") => Sex::Male,
            Some("female") => Sex::Female,
            _ => Sex::Unknown,
        };
        // §9 D4: a partial birth date allows a range of ages. The snapshot carries both ends;
        // versions with `age_imprecise_as_range` read the range, earlier ones the lowest age.
        let as_range = self
            .rules
            .param("age_imprecise_as_range")
            .is_some_and(|p| p.value >= 1.0);
        let (age_years, age_years_max) = match p.birth_date.as_deref() {
            None => (None, None),
            Some(b) => {
                match (time::age_at(b, self.now), time::age_range_at(b, self.now)) {
                    (Some((age, partial)), Some((_, oldest))) => {
                        if partial && as_range && oldest > age {
                            self.warn(
                            "imprecise_birth_date",
                            &format!("{b} (age {age} to {oldest}: a threshold between them is unknown)"),
                        );
                        } else if partial {
                            self.warn(
                                "imprecise_birth_date",
                                &format!("{b} (age read as {age}, the lowest it can be)"),
                            );
                        }
                        (Some(age), (oldest > age).then_some(oldest))
                    }
                    _ => {
                        self.warn("invalid_value", &format!("Patient.birthDate {b}"));
                        (None, None)
                    }
                }
            }
        };
        Patient {
            sex,
            age_years,
            age_years_max,
        }
    }

    fn observation(&mut self, o: &ObservationRecord, out: &mut Vec<Observation>) {
        let id =
            o.id.clone()
                .unwrap_or_else(|| format!("observation-{}", out.len()));
        let Ok(status) = serde_json::from_value::<ObservationStatus>(serde_json::Value::String(
            o.status.clone(),
        )) else {
            self.warn(
                "unreadable",
                &format!("Observation/{id} (status {:?})", o.status),
            );
            return;
        };
        let effective = match observation_time(o.effective.as_ref()) {
            Ok(t) => t,
            Err(code) => {
                // Only worth a warning when the observation would have been used.
                if self.concept(&o.codings, &id).is_some()
                    || o.components.iter().any(|c| {
                        self.rules
                            .concept_of_codings(
                                c.codings
                                    .iter()
                                    .map(|x| (x.system.as_str(), x.code.as_str())),
                            )
                            .ok()
                            .flatten()
                            .is_some()
                    })
                {
                    self.warn(code, &format!("Observation/{id}"));
                }
                return;
            }
        };
        let issued = o.issued.as_deref().and_then(time::parse_instant);
        if let (Some(concept), Some(value)) = (self.concept(&o.codings, &id), &o.value) {
            self.push(out, &id, concept, value, effective, status, issued);
        }
        for (i, c) in o.components.iter().enumerate() {
            let cid = format!("{id}/component/{i}");
            if let (Some(concept), Some(value)) = (self.concept(&c.codings, &cid), &c.value) {
                self.push(out, &cid, concept, value, effective, status, issued);
            }
        }
    }

    /// The concept and the coding that chose it.
    fn concept(&mut self, codings: &[Coding], id: &str) -> Option<(Concept, Coding)> {
        match self
            .rules
            .concept_of_codings(codings.iter().map(|c| (c.system.as_str(), c.code.as_str())))
        {
            Ok(Some((m, i))) => Some((m.concept, codings[i].clone())),
            Ok(None) => None,
            Err(concepts) => {
                let names: Vec<&str> = concepts.iter().map(|c| c.name()).collect();
                self.warn(
                    "ambiguous_code",
                    &format!("Observation/{id} ({})", names.join(", ")),
                );
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        out: &mut Vec<Observation>,
        id: &str,
        (concept, coding): (Concept, Coding),
        value: &Value,
        effective: DateTime<Utc>,
        status: ObservationStatus,
        issued: Option<DateTime<Utc>>,
    ) {
        let (value, unit) = match value {
            Value::Quantity {
                value: Some(v),
                code,
                ..
            } => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() => (ObservationValue::Number(x), code.clone()),
                _ => {
                    self.warn("invalid_value", &format!("{}/{id}", concept.name()));
                    return;
                }
            },
            Value::Quantity { value: None, .. } => return,
            Value::Integer(i) => (ObservationValue::Number(*i as f64), None),
            Value::Boolean(b) => (ObservationValue::Boolean(*b), None),
            // §9 D14: a concept with `true_values` (the body position) keeps the coded value;
            // the engine reads it against that list. The coding the list names wins, else the
            // first one.
            Value::Coded(codes)
                if !self.rules.concept_config(concept).true_values.is_empty()
                    && !codes.is_empty() =>
            {
                let yes = &self.rules.concept_config(concept).true_values;
                let chosen = codes
                    .iter()
                    .find(|c| yes.iter().any(|t| t.system == c.system && t.code == c.code))
                    .unwrap_or(&codes[0]);
                (
                    ObservationValue::Coded(CodedValue {
                        system: chosen.system.clone(),
                        code: chosen.code.clone(),
                    }),
                    None,
                )
            }
            Value::Coded(codes) if concept.dimension() == Dimension::Boolean => {
                match coded_answer(codes) {
                    Some(b) => (ObservationValue::Boolean(b), None),
                    None => {
                        self.warn(
                            "unsupported_value",
                            &format!("{}/{id} (coded answer)", concept.name()),
                        );
                        return;
                    }
                }
            }
            Value::Coded(_) => {
                self.warn(
                    "unsupported_value",
                    &format!("{}/{id} (coded value)", concept.name()),
                );
                return;
            }
            Value::Other(kind) => {
                self.warn(
                    "unsupported_value",
                    &format!("{}/{id} ({kind})", concept.name()),
                );
                return;
            }
        };
        out.push(Observation {
            id: id.to_string(),
            system: coding.system,
            code: coding.code,
            value,
            unit,
            effective,
            status,
            issued,
        });
    }

    fn sets(&self, kind: ResourceKind) -> impl Iterator<Item = &CodeSet> + use<'_> {
        self.rules.codesets.iter().filter(move |s| s.from == kind)
    }

    /// Records a hit: a context flag set to true, a diagnosis group seen, a hard stop documented.
    fn hit(&mut self, target: ContextTarget, groups: &mut Vec<DiagnosisGroup>) {
        match target {
            ContextTarget::Flag(f) => *f.field(&mut self.context) = Some(true),
            ContextTarget::DiagnosisGroup(g) => groups.push(g),
            ContextTarget::HardStop(i) => {
                let code = self.rules.hard_stops[i].code.to_string();
                if !self.context.hard_stops.contains(&code) {
                    self.context.hard_stops.push(code);
                }
            }
            ContextTarget::InvasiveVentilation
            | ContextTarget::Intubation
            | ContextTarget::Extubation
            | ContextTarget::PronePosition => {}
        }
    }

    /// §9 D4 (versions that set `report_unmapped_context_codes` to 1): an active Flag or
    /// Condition whose codes no code set of its kind maps is reported, one
    /// `unmapped:<system>|<code>` per coding, so a forgotten local mapping does not pass as
    /// "not documented". Codes listed under `unmapped_codes` (left out on purpose) are not
    /// reported; neither is a resource without codings (there is nothing to map).
    fn report_unmapped(&mut self, kind: ResourceKind, codes: &[Coding]) {
        let on = self
            .rules
            .param("report_unmapped_context_codes")
            .is_some_and(|p| p.value >= 1.0);
        if !on || self.sets(kind).any(|s| any_match(s, codes)) {
            return;
        }
        for c in codes {
            let deliberate = self
                .rules
                .unmapped_codes
                .iter()
                .any(|u| u.system == c.system && u.code == c.code);
            if !deliberate {
                self.warn("unmapped", &format!("{}|{}", c.system, c.code));
            }
        }
    }

    fn conditions(&mut self, conditions: &[&ConditionRecord], searched: Searched) {
        let mut groups = Vec::new();
        for c in conditions {
            if matches!(
                c.verification_status.as_deref(),
                Some("refuted" | "entered-in-error")
            ) {
                continue;
            }
            if condition_date(c).is_some_and(|d| d > self.now) {
                continue;
            }
            let active = c
                .clinical_status
                .as_deref()
                .is_none_or(|s| matches!(s, "active" | "recurrence" | "relapse"));
            let dated = condition_date(c);
            let recent = |days: f64| {
                dated.is_some_and(|d| {
                    (self.now - d).num_milliseconds() as f64 <= days * 86_400_000.0
                })
            };
            let targets: Vec<ContextTarget> = self
                .sets(ResourceKind::Conditions)
                .filter(|s| {
                    (active || s.include_resolved || s.resolved_within_days.is_some_and(recent))
                        && any_match(s, &c.codings)
                })
                .map(|s| s.target)
                .collect();
            if active {
                self.report_unmapped(ResourceKind::Conditions, &c.codings);
            }
            for t in targets {
                self.hit(t, &mut groups);
            }
        }
        // Several RESP groups: the first in RESP table order (specific acute diagnoses first).
        self.context.diagnosis_group = DiagnosisGroup::ALL.into_iter().find(|g| groups.contains(g));
        self.absent(ResourceKind::Conditions, searched);
    }

    fn flags(&mut self, flags: &[&FlagRecord], searched: Searched) {
        let mut groups = Vec::new();
        for f in flags {
            if f.status != "active" {
                continue;
            }
            let started = start_of(f.period.as_ref()).is_none_or(|s| s <= self.now);
            let not_ended =
                end_of(f.period.as_ref()).is_none_or(|e| e.is_none_or(|e| e >= self.now));
            if !(started && not_ended) {
                continue;
            }
            let targets: Vec<ContextTarget> = self
                .sets(ResourceKind::Flags)
                .filter(|s| any_match(s, &f.codings))
                .map(|s| s.target)
                .collect();
            self.report_unmapped(ResourceKind::Flags, &f.codings);
            for t in targets {
                self.hit(t, &mut groups);
            }
        }
        self.absent(ResourceKind::Flags, searched);
    }

    fn medications(
        &mut self,
        meds: &[&MedicationRecord],
        definitions: &[&MedicationDefinition],
        searched: Searched,
    ) {
        let mut groups = Vec::new();
        for m in meds {
            let counts = match m.kind {
                MedicationKind::Administration => {
                    !matches!(m.status.as_str(), "not-done" | "entered-in-error")
                }
                MedicationKind::Request => {
                    matches!(m.status.as_str(), "active" | "completed" | "on-hold")
                }
            };
            if !counts || start_of(m.when.as_ref()).is_some_and(|t| t > self.now) {
                continue;
            }
            let mut codes = m.codings.clone();
            if codes.is_empty()
                && let Some(r) = &m.medication_reference
            {
                let id = r.rsplit('/').next().unwrap_or(r);
                if let Some(d) = definitions.iter().find(|d| d.id.as_deref() == Some(id)) {
                    codes = d.codings.clone();
                }
            }
            let targets: Vec<ContextTarget> = self
                .sets(ResourceKind::Medications)
                .filter(|s| any_match(s, &codes))
                .map(|s| s.target)
                .collect();
            for t in targets {
                self.hit(t, &mut groups);
            }
        }
        self.absent(ResourceKind::Medications, searched);
    }

    /// Flags of a searched kind that nothing set take their code set's `when_absent`.
    fn absent(&mut self, kind: ResourceKind, searched: Searched) {
        if !searched.kind(kind) {
            return;
        }
        let falses: Vec<ContextFlag> = self
            .sets(kind)
            .filter(|s| s.when_absent == WhenAbsent::False)
            .filter_map(|s| match s.target {
                ContextTarget::Flag(f) => Some(f),
                _ => None,
            })
            .collect();
        for f in falses {
            let field = f.field(&mut self.context);
            if field.is_none() {
                *field = Some(false);
            }
        }
    }

    fn procedures(&mut self, procedures: &[&ProcedureRecord], searched: Searched) {
        let valid: Vec<&ProcedureRecord> = procedures
            .iter()
            .copied()
            .filter(|p| {
                !matches!(
                    p.status.as_str(),
                    "not-done" | "entered-in-error" | "preparation"
                )
            })
            .collect();
        let set_of =
            |target: ContextTarget| self.rules.codesets.iter().find(|s| s.target == target);
        let periods = |target: ContextTarget| -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>, bool)> {
            let Some(set) = set_of(target) else {
                return Vec::new();
            };
            valid
                .iter()
                .filter(|p| any_match(set, &p.codings))
                .filter_map(|p| {
                    let start = start_of(p.performed.as_ref())?;
                    let end = end_of(p.performed.as_ref()).flatten();
                    Some((start, end, p.status == "in-progress"))
                })
                .filter(|(start, _, _)| *start <= self.now)
                .collect()
        };
        let gap_ms = self
            .rules
            .param("ventilation_episode_gap_h")
            .map_or(0.0, |p| p.value * 3_600_000.0);

        // Ventilation: merged invasive-ventilation periods, then intubation/extubation markers.
        let mut vent = periods(ContextTarget::InvasiveVentilation);
        vent.sort_by_key(|(s, _, _)| *s);
        let mut episodes: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
        for (start, end, ongoing) in vent {
            // A period without an end is open unless the procedure is completed (end unknown).
            let end = if end.is_none() && !ongoing {
                Some(start)
            } else {
                end
            };
            match episodes.last_mut() {
                Some((_, last_end))
                    if last_end.is_none_or(|e| (start - e).num_milliseconds() as f64 <= gap_ms) =>
                {
                    *last_end = match (*last_end, end) {
                        (None, _) | (_, None) => None,
                        (Some(a), Some(b)) => Some(a.max(b)),
                    };
                }
                _ => episodes.push((start, end)),
            }
        }
        let current = episodes
            .iter()
            .find(|(s, e)| *s <= self.now && e.is_none_or(|e| e >= self.now));
        let markers = |target| periods(target).into_iter().map(|(s, _, _)| s).max();
        let (last_intubation, last_extubation) = (
            markers(ContextTarget::Intubation),
            markers(ContextTarget::Extubation),
        );
        let (intubated, mv_start) = match current {
            Some((start, _)) => (Some(true), Some(*start)),
            None => match (last_intubation, last_extubation) {
                (Some(i), e) if e.is_none_or(|e| e < i) => (Some(true), Some(i)),
                (_, Some(_)) => (Some(false), None),
                _ if !episodes.is_empty() => (Some(false), None),
                _ if searched.procedures
                    && set_of(ContextTarget::InvasiveVentilation)
                        .is_some_and(|s| s.when_absent == WhenAbsent::False) =>
                {
                    (Some(false), None)
                }
                _ => (None, None),
            },
        };
        if searched.procedures || intubated.is_some() {
            self.context.intubated = intubated;
            self.context.mv_start = mv_start;
        }

        // Extracorporeal support running now (§9 D2): a procedure of the code set in progress,
        // or one whose period covers now. Without such a procedure, the code set's
        // `when_absent` decides (a searched, empty history is "no" only when it says so).
        let support = ContextTarget::Flag(ContextFlag::OnExtracorporealSupport);
        if let Some(set) = set_of(support) {
            let now = self.now;
            let running = periods(support).iter().any(|(s, e, ongoing)| {
                *s <= now
                    && match e {
                        Some(e) => *e >= now,
                        None => *ongoing,
                    }
            });
            if running {
                self.context.on_extracorporeal_support = Some(true);
            } else if searched.procedures && set.when_absent == WhenAbsent::False {
                self.context.on_extracorporeal_support = Some(false);
            }
        }

        // Prone positioning.
        let sessions = periods(ContextTarget::PronePosition);
        if searched.procedures {
            let now = self.now;
            self.context.currently_prone = Some(sessions.iter().any(|(s, e, ongoing)| {
                *s <= now
                    && match e {
                        Some(e) => *e >= now,
                        None => *ongoing,
                    }
            }));
            let since = mv_start.unwrap_or(DateTime::<Utc>::MIN_UTC);
            let trial = sessions.iter().any(|(s, _, _)| *s >= since);
            let absent_false = set_of(ContextTarget::PronePosition)
                .is_some_and(|s| s.when_absent == WhenAbsent::False);
            self.context.prone_trial_done = if trial {
                Some(true)
            } else if absent_false {
                Some(false)
            } else {
                None
            };
        }
    }
}
