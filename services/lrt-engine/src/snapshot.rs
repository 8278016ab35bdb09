//! The engine's input: a patient snapshot in the layout of knowledge base §6.2.
//!
//! The FHIR layer builds it from resources; tests and the CLI read it from case files.
//! Observations keep their source ids so that every conclusion can point at its evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::concept::{Concept, RawValue, UnitError, normalise};
use crate::ruleset::RuleSet;

/// Everything the engine knows about one patient at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientSnapshot {
    pub patient: Patient,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub observations: Vec<Observation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maneuvers: Option<Maneuvers>,
    /// Warnings raised while the snapshot was built (e.g. an unreadable FHIR resource); the
    /// assessment lists them first in its `data_quality`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_quality: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    #[default]
    Unknown,
}

impl Sex {
    pub const NAMES: [&'static str; 3] = ["male", "female", "unknown"];
    pub fn index(self) -> usize {
        match self {
            Sex::Male => 0,
            Sex::Female => 1,
            Sex::Unknown => 2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    #[serde(default)]
    pub sex: Sex,
    /// Age in completed years at the evaluation time; with an imprecise birth date, the lowest
    /// age it allows.
    #[serde(default)]
    pub age_years: Option<u32>,
    /// With an imprecise birth date (a year or a month only) that allows more than one age at
    /// the evaluation time: the highest of them (knowledge base §9 D4). Rule-set versions that
    /// set `age_imprecise_as_range` to 1 read the age as the range `age_years..=age_years_max`,
    /// so a threshold inside it is unknown (`unverified:age`); earlier versions read the lowest.
    /// Omitted when the age is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_years_max: Option<u32>,
}

/// The RESP score's acute respiratory diagnosis groups (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisGroup {
    ViralPneumonia,
    BacterialPneumonia,
    Asthma,
    TraumaBurn,
    AspirationPneumonitis,
    OtherAcuteRespiratory,
    NonRespiratoryOrChronic,
}

impl DiagnosisGroup {
    pub const NAMES: [&'static str; 7] = [
        "viral_pneumonia",
        "bacterial_pneumonia",
        "asthma",
        "trauma_burn",
        "aspiration_pneumonitis",
        "other_acute_respiratory",
        "non_respiratory_or_chronic",
    ];
    pub const ALL: [DiagnosisGroup; 7] = [
        DiagnosisGroup::ViralPneumonia,
        DiagnosisGroup::BacterialPneumonia,
        DiagnosisGroup::Asthma,
        DiagnosisGroup::TraumaBurn,
        DiagnosisGroup::AspirationPneumonitis,
        DiagnosisGroup::OtherAcuteRespiratory,
        DiagnosisGroup::NonRespiratoryOrChronic,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Clinical context flags (§6.2). `None` means unknown, never "no".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default)]
    pub intubated: Option<bool>,
    /// Start of invasive mechanical ventilation.
    #[serde(default, serialize_with = "crate::json::instant::option::serialize")]
    pub mv_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pneumonia_cause: Option<bool>,
    #[serde(default)]
    pub diagnosis_group: Option<DiagnosisGroup>,
    #[serde(default)]
    pub immunocompromised: Option<bool>,
    #[serde(default)]
    pub cns_dysfunction: Option<bool>,
    #[serde(default)]
    pub nonpulmonary_infection: Option<bool>,
    #[serde(default)]
    pub nmb_before: Option<bool>,
    #[serde(default)]
    pub ino_before: Option<bool>,
    #[serde(default)]
    pub bicarbonate_before: Option<bool>,
    #[serde(default)]
    pub cardiac_arrest_before: Option<bool>,
    /// Documented hard stops (codes of the rule set's `hard_stops` catalogue).
    #[serde(default)]
    pub hard_stops: Vec<String>,
    #[serde(default)]
    pub prone_trial_done: Option<bool>,
    #[serde(default)]
    pub currently_prone: Option<bool>,
    #[serde(default)]
    pub prone_contraindication: Option<bool>,
    #[serde(default)]
    pub intracranial_hemorrhage: Option<bool>,
    #[serde(default)]
    pub anticoagulation_contraindicated: Option<bool>,
    #[serde(default)]
    pub chronic_resp_failure_home_o2: Option<bool>,
    /// Documented DNR status or palliative care (knowledge base §9 D5, D15): a relative
    /// contraindication from rule set 0.2.0 on, never a hard stop. Omitted from the JSON when
    /// unknown, so snapshots of earlier versions read and print as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goals_of_care: Option<bool>,
    /// Extracorporeal support (ECMO, ECCO2R) running now (§9 D2): from FHIR, a Procedure in
    /// progress coded with the rule set's `on_extracorporeal_support` code set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_extracorporeal_support: Option<bool>,
}

/// The boolean context flags that FHIR resources (conditions, medications, flags) can set,
/// through the rule set's code sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextFlag {
    PneumoniaCause,
    Immunocompromised,
    CnsDysfunction,
    NonpulmonaryInfection,
    NmbBefore,
    InoBefore,
    BicarbonateBefore,
    CardiacArrestBefore,
    ProneContraindication,
    IntracranialHemorrhage,
    AnticoagulationContraindicated,
    ChronicRespFailureHomeO2,
    GoalsOfCare,
    OnExtracorporealSupport,
}

impl ContextFlag {
    pub const ALL: [ContextFlag; 14] = [
        ContextFlag::PneumoniaCause,
        ContextFlag::Immunocompromised,
        ContextFlag::CnsDysfunction,
        ContextFlag::NonpulmonaryInfection,
        ContextFlag::NmbBefore,
        ContextFlag::InoBefore,
        ContextFlag::BicarbonateBefore,
        ContextFlag::CardiacArrestBefore,
        ContextFlag::ProneContraindication,
        ContextFlag::IntracranialHemorrhage,
        ContextFlag::AnticoagulationContraindicated,
        ContextFlag::ChronicRespFailureHomeO2,
        ContextFlag::GoalsOfCare,
        ContextFlag::OnExtracorporealSupport,
    ];

    /// The field name in [`Context`] (and in rule files).
    pub fn name(self) -> &'static str {
        match self {
            ContextFlag::PneumoniaCause => "pneumonia_cause",
            ContextFlag::Immunocompromised => "immunocompromised",
            ContextFlag::CnsDysfunction => "cns_dysfunction",
            ContextFlag::NonpulmonaryInfection => "nonpulmonary_infection",
            ContextFlag::NmbBefore => "nmb_before",
            ContextFlag::InoBefore => "ino_before",
            ContextFlag::BicarbonateBefore => "bicarbonate_before",
            ContextFlag::CardiacArrestBefore => "cardiac_arrest_before",
            ContextFlag::ProneContraindication => "prone_contraindication",
            ContextFlag::IntracranialHemorrhage => "intracranial_hemorrhage",
            ContextFlag::AnticoagulationContraindicated => "anticoagulation_contraindicated",
            ContextFlag::ChronicRespFailureHomeO2 => "chronic_resp_failure_home_o2",
            ContextFlag::GoalsOfCare => "goals_of_care",
            ContextFlag::OnExtracorporealSupport => "on_extracorporeal_support",
        }
    }

    pub fn from_name(name: &str) -> Option<ContextFlag> {
        ContextFlag::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Medications set these; conditions or flags set the others.
    pub fn is_medication(self) -> bool {
        matches!(
            self,
            ContextFlag::NmbBefore | ContextFlag::InoBefore | ContextFlag::BicarbonateBefore
        )
    }

    pub fn field(self, c: &mut Context) -> &mut Option<bool> {
        match self {
            ContextFlag::PneumoniaCause => &mut c.pneumonia_cause,
            ContextFlag::Immunocompromised => &mut c.immunocompromised,
            ContextFlag::CnsDysfunction => &mut c.cns_dysfunction,
            ContextFlag::NonpulmonaryInfection => &mut c.nonpulmonary_infection,
            ContextFlag::NmbBefore => &mut c.nmb_before,
            ContextFlag::InoBefore => &mut c.ino_before,
            ContextFlag::BicarbonateBefore => &mut c.bicarbonate_before,
            ContextFlag::CardiacArrestBefore => &mut c.cardiac_arrest_before,
            ContextFlag::ProneContraindication => &mut c.prone_contraindication,
            ContextFlag::IntracranialHemorrhage => &mut c.intracranial_hemorrhage,
            ContextFlag::AnticoagulationContraindicated => &mut c.anticoagulation_contraindicated,
            ContextFlag::ChronicRespFailureHomeO2 => &mut c.chronic_resp_failure_home_o2,
            ContextFlag::GoalsOfCare => &mut c.goals_of_care,
            ContextFlag::OnExtracorporealSupport => &mut c.on_extracorporeal_support,
        }
    }
}

impl DiagnosisGroup {
    pub fn from_name(name: &str) -> Option<DiagnosisGroup> {
        DiagnosisGroup::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| DiagnosisGroup::ALL[i])
    }
}

/// FHIR `Observation.status` (R4 value set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservationStatus {
    Registered,
    Preliminary,
    Final,
    Amended,
    Corrected,
    Cancelled,
    EnteredInError,
    Unknown,
}

impl ObservationStatus {
    /// §6.1 ranking: amended = corrected > final > preliminary > unknown; `None` = ignored.
    pub fn rank(self) -> Option<u8> {
        match self {
            ObservationStatus::Amended | ObservationStatus::Corrected => Some(3),
            ObservationStatus::Final => Some(2),
            ObservationStatus::Preliminary => Some(1),
            ObservationStatus::Unknown => Some(0),
            ObservationStatus::Registered
            | ObservationStatus::Cancelled
            | ObservationStatus::EnteredInError => None,
        }
    }
}

/// A number or a boolean, as in §6.2, or a coded value `{"system", "code"}` (from rule set
/// 0.2.0: a body position, §9 D14/D15, FHIR `valueCodeableConcept`).
///
/// Deserialised by hand rather than with `#[serde(untagged)]`: serde_json's
/// `arbitrary_precision` feature (switched on in the service by fhirbolt's decimals) hands
/// untagged enums numbers as maps, which would reject every numeric value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ObservationValue {
    Number(f64),
    Boolean(bool),
    Coded(CodedValue),
}

/// A coded observation value (one coding of a FHIR `valueCodeableConcept`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodedValue {
    pub system: String,
    pub code: String,
}

impl<'de> Deserialize<'de> for ObservationValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(b) => Ok(ObservationValue::Boolean(b)),
            serde_json::Value::Object(map) => {
                serde_json::from_value::<CodedValue>(serde_json::Value::Object(map))
                    .map(ObservationValue::Coded)
                    .map_err(|e| {
                        D::Error::custom(format!("a coded value is {{\"system\", \"code\"}}: {e}"))
                    })
            }
            serde_json::Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(ObservationValue::Number)
                .ok_or_else(|| D::Error::custom(format!("{n} is not a finite number"))),
            other => Err(D::Error::custom(format!(
                "expected a number, a boolean or a coded value {{\"system\", \"code\"}}, found {}",
                crate::json::kind_of(&other)
            ))),
        }
    }
}

impl ObservationValue {
    /// The value the unit table reads. A coded value becomes a yes/no: whether the concept lists
    /// it under `true_values` (§9 D14: a prone body position); a concept without `true_values`
    /// takes no coded value.
    pub fn raw(&self, concept: Concept, rules: &RuleSet) -> Result<RawValue, UnitError> {
        match self {
            ObservationValue::Number(n) => Ok(RawValue::Number(*n)),
            ObservationValue::Boolean(b) => Ok(RawValue::Boolean(*b)),
            ObservationValue::Coded(c) => {
                let cfg = rules.concept_config(concept);
                if cfg.true_values.is_empty() {
                    return Err(UnitError::WrongValueType {
                        concept,
                        expected: match concept.dimension() {
                            crate::concept::Dimension::Boolean => "true/false",
                            _ => "numeric",
                        },
                        got: "coded",
                    });
                }
                Ok(RawValue::Boolean(
                    cfg.true_values
                        .iter()
                        .any(|t| t.system == c.system && t.code == c.code),
                ))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// Source id (the FHIR `Observation.id`), cited as evidence.
    pub id: String,
    pub system: String,
    pub code: String,
    pub value: ObservationValue,
    /// UCUM code of the unit (`valueQuantity.code`); `null` for booleans and unitless values.
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(serialize_with = "crate::json::instant::serialize")]
    pub effective: DateTime<Utc>,
    pub status: ObservationStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::instant::option::serialize"
    )]
    pub issued: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maneuvers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ri: Option<RecruitmentManeuver>,
}

/// One-breath PEEP release manoeuvre for the recruitment-to-inflation ratio (§1.3, Chen 2020).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecruitmentManeuver {
    /// cmH2O
    pub peep_high: f64,
    /// cmH2O
    pub peep_low: f64,
    /// mL
    pub vt_ml: f64,
    /// Plateau pressure at low PEEP, cmH2O.
    pub pplat_low: f64,
    /// Expired volume of the release breath, mL.
    pub v_release_ml: f64,
    /// Airway opening pressure, cmH2O, if measured.
    #[serde(default)]
    pub aop: Option<f64>,
}

/// A problem with the input, located by a path inside the snapshot (`observations[3].unit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputIssue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for InputIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl PatientSnapshot {
    /// Strict check of the snapshot against the rule set: every mapped observation must
    /// normalise (known unit, plausible value), ids must be unique, context codes must be known.
    ///
    /// The engine itself is lenient (an unusable observation becomes a data-quality warning);
    /// callers that own their input (CLI case files, tests) use this to reject bad input.
    pub fn validate(&self, rules: &RuleSet, now: DateTime<Utc>) -> Vec<InputIssue> {
        let mut issues = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, obs) in self.observations.iter().enumerate() {
            if obs.id.is_empty() {
                issues.push(InputIssue {
                    path: format!("observations[{i}].id"),
                    message: "observation id is empty".into(),
                });
            } else if !seen.insert(obs.id.as_str()) {
                issues.push(InputIssue {
                    path: format!("observations[{i}].id"),
                    message: format!("duplicate observation id {:?}", obs.id),
                });
            }
            if let Err(e) = crate::time_window::check(obs.effective) {
                issues.push(InputIssue {
                    path: format!("observations[{i}].effective"),
                    message: format!("observation {:?}: {e}", obs.id),
                });
            }
            if obs.status.rank().is_none() {
                continue;
            }
            let Some(mapped) = rules.concept_of(&obs.system, &obs.code) else {
                continue;
            };
            if let Err(e) = obs.value.raw(mapped.concept, rules).and_then(|raw| {
                normalise(
                    mapped.concept,
                    raw,
                    obs.unit.as_deref(),
                    rules.plausible(mapped.concept),
                )
            }) {
                let field = match e {
                    UnitError::UnknownUnit { .. } => "unit",
                    _ => "value",
                };
                issues.push(InputIssue {
                    path: format!("observations[{i}].{field}"),
                    message: format!(
                        "observation {:?} ({} {}): {e}",
                        obs.id, obs.system, obs.code
                    ),
                });
            }
        }
        if let (Some(lo), Some(hi)) = (self.patient.age_years, self.patient.age_years_max)
            && hi < lo
        {
            issues.push(InputIssue {
                path: "patient.age_years_max".into(),
                message: format!("the highest possible age {hi} is below the lowest {lo}"),
            });
        }
        if self.patient.age_years.is_none() && self.patient.age_years_max.is_some() {
            issues.push(InputIssue {
                path: "patient.age_years_max".into(),
                message: "age_years_max needs age_years (the lowest possible age)".into(),
            });
        }
        if let Some(start) = self.context.mv_start
            && start > now
        {
            issues.push(InputIssue {
                path: "context.mv_start".into(),
                message: format!(
                    "mechanical ventilation start {start} is after the evaluation time {now}"
                ),
            });
        }
        for (i, code) in self.context.hard_stops.iter().enumerate() {
            if rules.hard_stop_index(code).is_none() {
                issues.push(InputIssue {
                    path: format!("context.hard_stops[{i}]"),
                    message: format!(
                        "unknown hard stop {code:?} (the rule set knows: {})",
                        rules.hard_stop_codes().join(", ")
                    ),
                });
            }
        }
        if let Some(ri) = &self.maneuvers.as_ref().and_then(|m| m.ri) {
            for (field, v) in [
                ("peep_high", ri.peep_high),
                ("peep_low", ri.peep_low),
                ("vt_ml", ri.vt_ml),
                ("pplat_low", ri.pplat_low),
                ("v_release_ml", ri.v_release_ml),
            ] {
                if !v.is_finite() || v < 0.0 {
                    issues.push(InputIssue {
                        path: format!("maneuvers.ri.{field}"),
                        message: format!("{v} is not a non-negative number"),
                    });
                }
            }
        }
        issues
    }
}
