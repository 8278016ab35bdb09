//! Named facts: the vocabulary shared by the engine and the rule set.
//!
//! The engine computes the *engine facts* below from the snapshot (physiology, context).
//! The rule set adds *derived facts*: each score, classification, series and rule is itself a
//! fact named by its id, so rules can build on each other. Rule files may only name facts that
//! exist here or in the rule set; `lrt rules check` rejects anything else.

use std::sync::Arc;

use crate::snapshot::{DiagnosisGroup, Sex};
use crate::timeline::{Evidence, Millis};

/// What kind of value a fact holds, and for numbers in which unit (UCUM).
#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    Number {
        unit: &'static str,
    },
    Boolean,
    /// One value of a closed list.
    Category {
        values: Vec<Arc<str>>,
    },
    /// A set of codes from a closed list (hard stops).
    Set {
        values: Vec<Arc<str>>,
    },
}

/// `a, b, c`
pub fn join(values: &[Arc<str>]) -> String {
    values
        .iter()
        .map(|v| &**v)
        .collect::<Vec<&str>>()
        .join(", ")
}

impl FactKind {
    pub fn describe(&self) -> String {
        match self {
            FactKind::Number { unit } => format!("number in {unit}"),
            FactKind::Boolean => "boolean".into(),
            FactKind::Category { values } => format!("one of {}", join(values)),
            FactKind::Set { values } => format!("a set of {}", join(values)),
        }
    }
}

/// A fact's value. `Null` is "unknown": missing, stale, conflicting or not computable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FactValue {
    Null,
    Number(f64),
    /// A partial score: the true value lies in `[lo, hi]` (items missing, §6.1 ACP rule).
    Interval {
        lo: f64,
        hi: f64,
    },
    Boolean(bool),
    /// Index into the fact's category values.
    Category(u16),
    /// Bit set over the fact's set values.
    Set(u64),
}

impl FactValue {
    pub fn from_option(v: Option<f64>) -> FactValue {
        v.map_or(FactValue::Null, FactValue::Number)
    }
    pub fn from_bool(v: Option<bool>) -> FactValue {
        v.map_or(FactValue::Null, FactValue::Boolean)
    }
    pub fn is_null(self) -> bool {
        self == FactValue::Null
    }
    pub fn number(self) -> Option<f64> {
        match self {
            FactValue::Number(v) => Some(v),
            _ => None,
        }
    }
    pub fn boolean(self) -> Option<bool> {
        match self {
            FactValue::Boolean(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! engine_facts {
    ($( $variant:ident => $name:literal, $kind:expr, $doc:literal; )*) => {
        /// Facts the engine derives from the snapshot. The discriminant is the fact id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Fact { $( #[doc = $doc] $variant, )* }

        impl Fact {
            pub const ALL: &'static [Fact] = &[ $( Fact::$variant, )* ];
            pub fn name(self) -> &'static str {
                match self { $( Fact::$variant => $name, )* }
            }
            pub fn kind(self) -> FactKind {
                match self { $( Fact::$variant => $kind, )* }
            }
            pub fn description(self) -> &'static str {
                match self { $( Fact::$variant => $doc, )* }
            }
        }
    };
}

fn num(unit: &'static str) -> FactKind {
    FactKind::Number { unit }
}
fn boolean() -> FactKind {
    FactKind::Boolean
}
fn category(values: &[&str]) -> FactKind {
    FactKind::Category {
        values: values.iter().map(|s| Arc::from(*s)).collect(),
    }
}

engine_facts! {
    AgeYears => "age_years", num("a"), "Age in completed years (patient.age_years).";
    Sex => "sex", category(&Sex::NAMES), "Administrative sex used for predicted body weight.";
    Intubated => "intubated", boolean(), "Invasively ventilated now (context.intubated).";
    MvDurationH => "mv_duration_h", num("h"), "Hours since the start of invasive ventilation (now - context.mv_start).";
    PneumoniaCause => "pneumonia_cause", boolean(), "Pneumonia is the cause of ARDS (ACP risk item).";
    DiagnosisGroup => "diagnosis_group", category(&DiagnosisGroup::NAMES), "RESP acute respiratory diagnosis group.";
    Immunocompromised => "immunocompromised", boolean(), "Immunocompromised status (RESP definition).";
    CnsDysfunction => "cns_dysfunction", boolean(), "Central nervous system dysfunction before ECMO.";
    NonpulmonaryInfection => "nonpulmonary_infection", boolean(), "Acute associated non-pulmonary infection.";
    NmbBefore => "nmb_before", boolean(), "Neuromuscular blockade given.";
    InoBefore => "ino_before", boolean(), "Inhaled nitric oxide given.";
    BicarbonateBefore => "bicarbonate_before", boolean(), "Bicarbonate infusion given.";
    CardiacArrestBefore => "cardiac_arrest_before", boolean(), "Cardiac arrest during this illness.";
    HardStops => "hard_stops", FactKind::Set { values: Vec::new() }, "Documented hard stops (codes of the rule set's hard_stops catalogue).";
    ProneTrialDone => "prone_trial_done", boolean(), "A prone positioning trial has been done.";
    CurrentlyProne => "currently_prone", boolean(), "The patient is prone now: context.currently_prone, or a valid body_position observation that says prone (true wins; §9 D14).";
    ProneContraindication => "prone_contraindication", boolean(), "Prone positioning is contraindicated.";
    IntracranialHemorrhage => "intracranial_hemorrhage", boolean(), "Intracranial haemorrhage.";
    AnticoagulationContraindicated => "anticoagulation_contraindicated", boolean(), "Contraindication to anticoagulation.";
    ChronicRespFailureHomeO2 => "chronic_resp_failure_home_o2", boolean(), "Chronic respiratory failure on home oxygen or NIV.";
    GoalsOfCare => "goals_of_care", boolean(), "Documented DNR status or palliative care (context.goals_of_care; §9 D5).";
    OnExtracorporealSupport => "on_extracorporeal_support", boolean(), "Extracorporeal support running now: the latest valid extracorporeal_support observation, or context.on_extracorporeal_support (true wins; §9 D2).";
    Pao2 => "pao2", num("mm[Hg]"), "Latest valid arterial PaO2.";
    Fio2 => "fio2", num("1"), "FiO2 paired to the latest PaO2 (at or before it, within the pairing window).";
    PfRatio => "pf_ratio", num("mm[Hg]"), "PaO2 / FiO2 from the paired values.";
    Paco2 => "paco2", num("mm[Hg]"), "PaCO2 of the current blood gas (same time as the PaO2, ±5 min).";
    Ph => "ph", num("[pH]"), "Arterial pH of the current blood gas (same time as the PaO2, ±5 min).";
    Sao2 => "sao2", num("%"), "Latest valid arterial oxygen saturation.";
    Spo2 => "spo2", num("%"), "Latest valid SpO2.";
    Spo2Fio2 => "spo2_fio2", num("1"), "FiO2 paired to the latest SpO2.";
    SfRatio => "sf_ratio", num("%"), "SpO2 / FiO2 from the paired values.";
    Peep => "peep", num("cm[H2O]"), "Latest valid PEEP (measured before set).";
    Pplat => "pplat", num("cm[H2O]"), "Latest valid plateau pressure.";
    Pip => "pip", num("cm[H2O]"), "Latest valid peak inspiratory pressure.";
    Mpaw => "mpaw", num("cm[H2O]"), "Latest valid mean airway pressure (whole cycle, LOINC 76530-5).";
    TidalVolume => "tidal_volume", num("mL"), "Latest valid tidal volume (delivered before set).";
    RespiratoryRate => "respiratory_rate", num("/min"), "Latest valid respiratory rate (total on ventilator first).";
    RespiratoryRateSet => "respiratory_rate_set", num("/min"), "Latest valid respiratory rate set on the ventilator (§9 D7; concept respiratory_rate_set).";
    MinuteVentilation => "minute_ventilation", num("L/min"), "Latest valid measured minute ventilation.";
    Height => "height", num("cm"), "Latest body height.";
    Weight => "weight", num("kg"), "Latest body weight.";
    Tapse => "tapse", num("mm"), "Latest valid TAPSE (echo).";
    RvLvEdaRatio => "rv_lv_eda_ratio", num("1"), "Latest valid RV/LV end-diastolic area ratio (echo).";
    SeptalDyskinesia => "septal_dyskinesia", boolean(), "Latest valid septal dyskinesia finding (echo).";
    EchoAvailable => "echo_available", boolean(), "Any valid echo finding (RV/LV ratio, septal motion, TAPSE) is present.";
    CxrQuadrants => "cxr_quadrants", num("{#}"), "Quadrants with alveolar consolidation on the latest chest radiograph.";
    VdVt => "vd_vt", num("1"), "Latest valid dead-space fraction.";
    PbwKg => "pbw_kg", num("kg"), "Predicted body weight (ARDSNet); needs sex and height.";
    VtPerKgPbw => "vt_ml_per_kg_pbw", num("mL/kg"), "Tidal volume per kg predicted body weight.";
    DrivingPressure => "driving_pressure", num("cm[H2O]"), "Pplat - PEEP.";
    CrsStatic => "crs_static", num("mL/cm[H2O]"), "Static compliance Vt / (Pplat - PEEP).";
    OxygenationIndex => "oxygenation_index", num("1"), "FiO2 x mPaw x 100 / PaO2.";
    OxygenSaturationIndex => "oxygen_saturation_index", num("1"), "FiO2 x mPaw x 100 / SpO2 (SpO2 <= 97 % only).";
    VentilatoryRatio => "ventilatory_ratio", num("1"), "(VE x PaCO2) / (PBW x 100 x 37.5); VE measured, else RR x Vt.";
    MechanicalPower => "mechanical_power_j_min", num("J/min"), "0.098 x RR x Vt(L) x (Ppeak - driving pressure / 2).";
    Bmi => "bmi", num("kg/m2"), "Body-mass index.";
    Fio2ChallengeSlope => "fio2_challenge_slope", num("mm[Hg]"), "Delta PaO2 / delta FiO2 of the latest FiO2 challenge.";
    RiAssessable => "ri_assessable", boolean(), "The recruitment-to-inflation manoeuvre is assessable.";
    RiRatio => "ri_ratio", num("1"), "Recruitment-to-inflation ratio.";
}

impl Fact {
    pub fn id(self) -> FactId {
        FactId(self as u16)
    }
    pub fn from_name(name: &str) -> Option<Fact> {
        Fact::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// Index of a fact in the fact table (engine facts first, then the rule set's derived facts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactId(pub u16);

impl FactId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Per-ABG facts, usable only inside a `series` (EOLIA runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbgField {
    Pao2,
    Fio2,
    PfRatio,
    Paco2,
    Ph,
}

impl AbgField {
    pub const ALL: [AbgField; 5] = [
        AbgField::Pao2,
        AbgField::Fio2,
        AbgField::PfRatio,
        AbgField::Paco2,
        AbgField::Ph,
    ];
    pub fn name(self) -> &'static str {
        match self {
            AbgField::Pao2 => "abg.pao2",
            AbgField::Fio2 => "abg.fio2",
            AbgField::PfRatio => "abg.pf_ratio",
            AbgField::Paco2 => "abg.paco2",
            AbgField::Ph => "abg.ph",
        }
    }
    pub fn unit(self) -> &'static str {
        match self {
            AbgField::Pao2 | AbgField::PfRatio | AbgField::Paco2 => "mm[Hg]",
            AbgField::Fio2 => "1",
            AbgField::Ph => "[pH]",
        }
    }
    pub fn from_name(name: &str) -> Option<AbgField> {
        AbgField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Values, times and evidence of every fact for one evaluation.
#[derive(Debug, Clone)]
pub struct FactTable {
    pub values: Vec<FactValue>,
    /// When the value was observed (for facts read from observations).
    pub times: Vec<Option<Millis>>,
    /// Observation indices behind each value.
    pub evidence: Vec<Evidence>,
}

impl FactTable {
    pub fn new(len: usize) -> FactTable {
        FactTable {
            values: vec![FactValue::Null; len],
            times: vec![None; len],
            evidence: vec![Evidence::new(); len],
        }
    }
    pub fn get(&self, id: FactId) -> FactValue {
        self.values[id.index()]
    }
    pub fn num(&self, f: Fact) -> Option<f64> {
        self.values[f as usize].number()
    }
    pub fn set(&mut self, f: Fact, v: FactValue) {
        self.values[f as usize] = v;
    }
    pub fn set_observed(
        &mut self,
        f: Fact,
        v: FactValue,
        time: Option<Millis>,
        evidence: Evidence,
    ) {
        let i = f as usize;
        self.values[i] = v;
        self.times[i] = time;
        self.evidence[i] = evidence;
    }
    /// Evidence of a computed figure: the union of its inputs' evidence, in order.
    pub fn union_evidence(&self, inputs: &[Fact]) -> Evidence {
        let mut out = Evidence::new();
        for f in inputs {
            for &e in &self.evidence[*f as usize] {
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        out
    }
}
