//! Clinical concepts the engine understands, and the explicit unit normalisation of
//! knowledge base §1.1.
//!
//! Which codes mean which concept is **data** (the rule set's `concepts` section); what a
//! concept *is* (its dimension and canonical unit) is engine code, because the physiology
//! formulas depend on it. Every conversion factor lives here and nowhere else.

use std::fmt;

/// mmHg per kPa (§1.1, physical constant).
pub const MMHG_PER_KPA: f64 = 7.50062;
/// cmH2O per mbar (= per hPa); 1 mbar = 100 Pa, 1 cmH2O = 98.0665 Pa.
pub const CMH2O_PER_MBAR: f64 = 100.0 / 98.0665;
/// Centimetres per international inch (§1.1).
pub const CM_PER_INCH: f64 = 2.54;
/// Kilograms per avoirdupois pound.
pub const KG_PER_POUND: f64 = 0.453_592_37;

/// Absolute tolerance for threshold comparisons (§1.1: a value within 1e-9 of a threshold equals it).
pub const EPSILON: f64 = 1e-9;

/// One clinical quantity, independent of the code system that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concept {
    Pao2,
    Paco2,
    Ph,
    Sao2,
    Spo2,
    Fio2,
    Peep,
    Pplat,
    Pip,
    Mpaw,
    TidalVolume,
    RespiratoryRate,
    MinuteVentilation,
    Height,
    Weight,
    Tapse,
    RvLvEdaRatio,
    SeptalDyskinesia,
    CxrQuadrants,
    DeadSpaceFraction,
    /// The respiratory rate set on the ventilator (knowledge base §9 D7), apart from the
    /// measured total rate. Optional: rule sets before 0.2.0 do not define it.
    RespiratoryRateSet,
    /// A signal that extracorporeal support (VV-/VA-ECMO, ECCO2R) is running (§9 D2, D15).
    /// Optional: rule sets before 0.2.0 do not define it.
    ExtracorporealSupport,
    /// The patient's body position is prone (§9 D14, D15): a yes/no finding, from a coded body
    /// position (LOINC 8361-8 with a value the concept lists under `true_values`) or a site's
    /// yes/no flowsheet row. Optional: rule sets before 0.2.0 do not define it.
    BodyPosition,
}

/// The physical dimension of a concept: decides which units are accepted and how they convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Blood-gas partial pressure, canonical mm[Hg].
    GasPressure,
    /// Hydrogen-ion activity, canonical [pH].
    Ph,
    /// Oxygen saturation, canonical % (values <= 1 are fractions, §1.1).
    Saturation,
    /// Inspired oxygen fraction, canonical fraction 0.21-1.0 (§1.1 FiO2 rule).
    InspiredFraction,
    /// Airway pressure, canonical cm[H2O].
    AirwayPressure,
    /// Volume, canonical mL.
    Volume,
    /// Rate, canonical /min.
    Rate,
    /// Flow of gas, canonical L/min.
    Flow,
    /// Body length, canonical cm.
    Length,
    /// Body mass, canonical kg.
    Mass,
    /// Echo distance, canonical mm.
    EchoDistance,
    /// Dimensionless ratio, canonical 1.
    Ratio,
    /// Count of chest-radiograph quadrants, 0-4.
    Count,
    /// A yes/no finding.
    Boolean,
}

impl Concept {
    pub const ALL: [Concept; 23] = [
        Concept::Pao2,
        Concept::Paco2,
        Concept::Ph,
        Concept::Sao2,
        Concept::Spo2,
        Concept::Fio2,
        Concept::Peep,
        Concept::Pplat,
        Concept::Pip,
        Concept::Mpaw,
        Concept::TidalVolume,
        Concept::RespiratoryRate,
        Concept::MinuteVentilation,
        Concept::Height,
        Concept::Weight,
        Concept::Tapse,
        Concept::RvLvEdaRatio,
        Concept::SeptalDyskinesia,
        Concept::CxrQuadrants,
        Concept::DeadSpaceFraction,
        Concept::RespiratoryRateSet,
        Concept::ExtracorporealSupport,
        Concept::BodyPosition,
    ];

    /// The name used in rule files, data-quality warnings and explanations.
    pub fn name(self) -> &'static str {
        match self {
            Concept::Pao2 => "pao2",
            Concept::Paco2 => "paco2",
            Concept::Ph => "ph",
            Concept::Sao2 => "sao2",
            Concept::Spo2 => "spo2",
            Concept::Fio2 => "fio2",
            Concept::Peep => "peep",
            Concept::Pplat => "pplat",
            Concept::Pip => "pip",
            Concept::Mpaw => "mpaw",
            Concept::TidalVolume => "tidal_volume",
            Concept::RespiratoryRate => "respiratory_rate",
            Concept::MinuteVentilation => "minute_ventilation",
            Concept::Height => "height",
            Concept::Weight => "weight",
            Concept::Tapse => "tapse",
            Concept::RvLvEdaRatio => "rv_lv_eda_ratio",
            Concept::SeptalDyskinesia => "septal_dyskinesia",
            Concept::CxrQuadrants => "cxr_quadrants",
            Concept::DeadSpaceFraction => "vd_vt",
            Concept::RespiratoryRateSet => "respiratory_rate_set",
            Concept::ExtracorporealSupport => "extracorporeal_support",
            Concept::BodyPosition => "body_position",
        }
    }

    /// Whether every rule set must define this concept. Concepts added by a later rule-set
    /// version are optional, so that earlier versions stay loadable (and byte-identical):
    /// without a definition no code maps to them and their facts stay unknown.
    pub fn required(self) -> bool {
        !matches!(
            self,
            Concept::RespiratoryRateSet | Concept::ExtracorporealSupport | Concept::BodyPosition
        )
    }

    pub fn from_name(name: &str) -> Option<Concept> {
        Concept::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Index into per-concept arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn dimension(self) -> Dimension {
        match self {
            Concept::Pao2 | Concept::Paco2 => Dimension::GasPressure,
            Concept::Ph => Dimension::Ph,
            Concept::Sao2 | Concept::Spo2 => Dimension::Saturation,
            Concept::Fio2 => Dimension::InspiredFraction,
            Concept::Peep | Concept::Pplat | Concept::Pip | Concept::Mpaw => {
                Dimension::AirwayPressure
            }
            Concept::TidalVolume => Dimension::Volume,
            Concept::RespiratoryRate | Concept::RespiratoryRateSet => Dimension::Rate,
            Concept::MinuteVentilation => Dimension::Flow,
            Concept::Height => Dimension::Length,
            Concept::Weight => Dimension::Mass,
            Concept::Tapse => Dimension::EchoDistance,
            Concept::RvLvEdaRatio | Concept::DeadSpaceFraction => Dimension::Ratio,
            Concept::SeptalDyskinesia | Concept::ExtracorporealSupport | Concept::BodyPosition => {
                Dimension::Boolean
            }
            Concept::CxrQuadrants => Dimension::Count,
        }
    }

    /// The UCUM unit every value of this concept is converted to.
    pub fn canonical_unit(self) -> &'static str {
        self.dimension().canonical_unit()
    }
}

impl fmt::Display for Concept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Dimension {
    pub fn canonical_unit(self) -> &'static str {
        match self {
            Dimension::GasPressure => "mm[Hg]",
            Dimension::Ph => "[pH]",
            Dimension::Saturation => "%",
            Dimension::InspiredFraction => "1",
            Dimension::AirwayPressure => "cm[H2O]",
            Dimension::Volume => "mL",
            Dimension::Rate => "/min",
            Dimension::Flow => "L/min",
            Dimension::Length => "cm",
            Dimension::Mass => "kg",
            Dimension::EchoDistance => "mm",
            Dimension::Ratio => "1",
            Dimension::Count => "{#}",
            Dimension::Boolean => "",
        }
    }

    /// UCUM codes accepted for this dimension (exact, case-sensitive UCUM `code`s, not displays).
    /// `None` in the list means "no unit given" is accepted.
    pub fn accepted_units(self) -> &'static [Option<&'static str>] {
        match self {
            Dimension::GasPressure => &[Some("mm[Hg]"), Some("kPa")],
            Dimension::Ph => &[Some("[pH]"), Some("1"), None],
            Dimension::Saturation => &[Some("%"), Some("1")],
            Dimension::InspiredFraction => &[Some("%"), Some("1"), Some("{ratio}"), None],
            Dimension::AirwayPressure => &[Some("cm[H2O]"), Some("mbar"), Some("hPa")],
            Dimension::Volume => &[Some("mL"), Some("L")],
            Dimension::Rate => &[Some("/min"), Some("{breaths}/min"), Some("1/min")],
            Dimension::Flow => &[Some("L/min"), Some("mL/min")],
            Dimension::Length => &[Some("cm"), Some("m"), Some("[in_i]")],
            Dimension::Mass => &[Some("kg"), Some("g"), Some("[lb_av]")],
            Dimension::EchoDistance => &[Some("mm"), Some("cm")],
            Dimension::Ratio => &[Some("1"), Some("{ratio}"), Some("%"), None],
            Dimension::Count => &[Some("{#}"), Some("1"), Some("{quadrants}"), None],
            Dimension::Boolean => &[None],
        }
    }
}

/// A raw observation value as it arrives (number or boolean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue {
    Number(f64),
    Boolean(bool),
}

/// A value in the concept's canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalised {
    Number(f64),
    Boolean(bool),
}

impl Normalised {
    pub fn as_number(self) -> Option<f64> {
        match self {
            Normalised::Number(v) => Some(v),
            Normalised::Boolean(_) => None,
        }
    }
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Normalised::Boolean(b) => Some(b),
            Normalised::Number(_) => None,
        }
    }
    /// Equal within [`EPSILON`] (booleans exactly).
    pub fn same_as(self, other: Normalised) -> bool {
        match (self, other) {
            (Normalised::Number(a), Normalised::Number(b)) => (a - b).abs() <= EPSILON,
            (Normalised::Boolean(a), Normalised::Boolean(b)) => a == b,
            _ => false,
        }
    }
}

/// Why a value could not be normalised. The caller adds the file, path and observation id.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("unknown unit {unit} for {concept} (accepted: {accepted})")]
    UnknownUnit {
        concept: Concept,
        unit: String,
        accepted: String,
    },
    #[error("{concept} needs a {expected} value, got {got}")]
    WrongValueType {
        concept: Concept,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{concept} value {value} is not a finite number")]
    NotFinite { concept: Concept, value: f64 },
    #[error(
        "FiO2 {value} {unit} is neither a fraction in [0.21, 1.0] nor a percentage in [21, 100]"
    )]
    Fio2OutOfRange { value: f64, unit: String },
    #[error("{concept} {value} {unit} is outside the plausible range {min}-{max} {canonical}")]
    Implausible {
        concept: Concept,
        value: f64,
        unit: String,
        min: f64,
        max: f64,
        canonical: &'static str,
    },
}

/// A normalisation note that does not reject the value (§1.1: FiO2 `0.5 '%'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitNote {
    /// FiO2 <= 1 carried the unit `%`: read as a fraction, warned.
    Fio2FractionWithPercentUnit,
    /// FiO2 in [21, 100] carried a fraction unit: read as a percentage, warned.
    Fio2PercentWithFractionUnit,
}

impl UnitNote {
    pub fn code(self) -> &'static str {
        match self {
            UnitNote::Fio2FractionWithPercentUnit => "fio2_fraction_with_percent_unit",
            UnitNote::Fio2PercentWithFractionUnit => "fio2_percent_with_fraction_unit",
        }
    }
}

/// Plausible range of a concept in its canonical unit (rule-set data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plausible {
    pub min: f64,
    pub max: f64,
}

/// Converts `value` in `unit` to the concept's canonical unit (§1.1), then checks plausibility.
pub fn normalise(
    concept: Concept,
    value: RawValue,
    unit: Option<&str>,
    plausible: Option<Plausible>,
) -> Result<(Normalised, Option<UnitNote>), UnitError> {
    let dimension = concept.dimension();
    let unit = unit.filter(|u| !u.is_empty());
    if !dimension.accepted_units().contains(&unit) {
        return Err(UnitError::UnknownUnit {
            concept,
            unit: unit.unwrap_or("(none)").to_string(),
            accepted: dimension
                .accepted_units()
                .iter()
                .map(|u| u.unwrap_or("(none)"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if dimension == Dimension::Boolean {
        return match value {
            RawValue::Boolean(b) => Ok((Normalised::Boolean(b), None)),
            RawValue::Number(_) => Err(UnitError::WrongValueType {
                concept,
                expected: "boolean",
                got: "number",
            }),
        };
    }
    let v = match value {
        RawValue::Number(v) => v,
        RawValue::Boolean(_) => {
            return Err(UnitError::WrongValueType {
                concept,
                expected: "numeric",
                got: "boolean",
            });
        }
    };
    if !v.is_finite() {
        return Err(UnitError::NotFinite { concept, value: v });
    }
    let unit_str = unit.unwrap_or("");
    let mut note = None;
    let canonical = match (dimension, unit_str) {
        (Dimension::GasPressure, "kPa") => v * MMHG_PER_KPA,
        (Dimension::InspiredFraction, _) => {
            let (fraction, n) = fio2_fraction(v, unit_str)?;
            note = n;
            fraction
        }
        (Dimension::Saturation, _) => {
            // §1.1: SpO2 value <= 1 -> x100, else %.
            if v <= 1.0 + EPSILON { v * 100.0 } else { v }
        }
        (Dimension::AirwayPressure, "mbar" | "hPa") => v * CMH2O_PER_MBAR,
        (Dimension::Volume, "L") => v * 1000.0,
        (Dimension::Flow, "mL/min") => v / 1000.0,
        (Dimension::Length, "[in_i]") => v * CM_PER_INCH,
        (Dimension::Length, "m") => v * 100.0,
        (Dimension::Mass, "g") => v / 1000.0,
        (Dimension::Mass, "[lb_av]") => v * KG_PER_POUND,
        (Dimension::EchoDistance, "cm") => v * 10.0,
        (Dimension::Ratio, "%") => v / 100.0,
        _ => v,
    };
    if let Some(p) = plausible
        && (canonical < p.min - EPSILON || canonical > p.max + EPSILON)
    {
        return Err(UnitError::Implausible {
            concept,
            value: v,
            unit: unit.unwrap_or("(none)").to_string(),
            min: p.min,
            max: p.max,
            canonical: dimension.canonical_unit(),
        });
    }
    Ok((Normalised::Number(canonical), note))
}

/// §1.1 FiO2: [0.21, 1.0] is a fraction, [21, 100] a percentage, anything else is rejected;
/// a value <= 1 carrying `%` is read as a fraction with a warning.
fn fio2_fraction(v: f64, unit: &str) -> Result<(f64, Option<UnitNote>), UnitError> {
    let is_fraction = (0.21 - EPSILON..=1.0 + EPSILON).contains(&v);
    let is_percent = (21.0 - EPSILON..=100.0 + EPSILON).contains(&v);
    if is_fraction {
        let note = (unit == "%").then_some(UnitNote::Fio2FractionWithPercentUnit);
        Ok((v, note))
    } else if is_percent {
        let note = matches!(unit, "1" | "{ratio}").then_some(UnitNote::Fio2PercentWithFractionUnit);
        Ok((v / 100.0, note))
    } else {
        Err(UnitError::Fio2OutOfRange {
            value: v,
            unit: if unit.is_empty() { "(no unit)" } else { unit }.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(c: Concept, v: f64, unit: Option<&str>) -> Result<(f64, Option<UnitNote>), UnitError> {
        normalise(c, RawValue::Number(v), unit, None)
            .map(|(n, note)| (n.as_number().expect("number"), note))
    }

    #[test]
    fn kpa_converts_with_the_physical_constant() {
        let (v, _) = num(Concept::Pao2, 8.0, Some("kPa")).unwrap();
        assert!((v - 60.00496).abs() < 1e-9);
        let (v, _) = num(Concept::Pao2, 13.3322, Some("kPa")).unwrap();
        assert!(v < 100.0);
        let (v, _) = num(Concept::Pao2, 13.334, Some("kPa")).unwrap();
        assert!(v > 100.0);
    }

    #[test]
    fn fio2_forms() {
        assert_eq!(num(Concept::Fio2, 80.0, Some("%")).unwrap(), (0.8, None));
        assert_eq!(num(Concept::Fio2, 0.8, Some("1")).unwrap(), (0.8, None));
        assert_eq!(num(Concept::Fio2, 0.21, None).unwrap(), (0.21, None));
        assert_eq!(num(Concept::Fio2, 100.0, Some("%")).unwrap(), (1.0, None));
        assert_eq!(
            num(Concept::Fio2, 0.8, Some("%")).unwrap(),
            (0.8, Some(UnitNote::Fio2FractionWithPercentUnit))
        );
        assert_eq!(
            num(Concept::Fio2, 50.0, Some("1")).unwrap(),
            (0.5, Some(UnitNote::Fio2PercentWithFractionUnit))
        );
        for bad in [150.0, 0.2, 5.0, 20.9, 100.5, -1.0, 0.0] {
            assert!(
                matches!(
                    num(Concept::Fio2, bad, Some("%")),
                    Err(UnitError::Fio2OutOfRange { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_units() {
        assert_eq!(num(Concept::Spo2, 0.92, Some("%")).unwrap().0, 92.0);
        assert_eq!(num(Concept::Spo2, 92.0, Some("%")).unwrap().0, 92.0);
        assert_eq!(num(Concept::TidalVolume, 0.45, Some("L")).unwrap().0, 450.0);
        assert!((num(Concept::Height, 70.0, Some("[in_i]")).unwrap().0 - 177.8).abs() < 1e-9);
        assert!(
            (num(Concept::Peep, 10.0, Some("mbar")).unwrap().0 - 10.197_162_129_779_28).abs()
                < 1e-9
        );
        assert!(matches!(
            num(Concept::Pao2, 90.0, Some("mmHg")),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            num(Concept::Pao2, 90.0, None),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            normalise(Concept::Pao2, RawValue::Boolean(true), Some("mm[Hg]"), None),
            Err(UnitError::WrongValueType { .. })
        ));
        assert!(matches!(
            normalise(Concept::SeptalDyskinesia, RawValue::Number(1.0), None, None),
            Err(UnitError::WrongValueType { .. })
        ));
    }

    #[test]
    fn plausibility_is_checked_in_the_canonical_unit() {
        let p = Some(Plausible {
            min: 10.0,
            max: 800.0,
        });
        assert!(normalise(Concept::Pao2, RawValue::Number(9000.0), Some("mm[Hg]"), p).is_err());
        assert!(normalise(Concept::Pao2, RawValue::Number(100.0), Some("kPa"), p).is_ok());
        assert!(normalise(Concept::Pao2, RawValue::Number(800.0), Some("mm[Hg]"), p).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for c in Concept::ALL {
            assert_eq!(Concept::from_name(c.name()), Some(c));
            assert_eq!(Concept::ALL[c.index()], c);
        }
    }
}
