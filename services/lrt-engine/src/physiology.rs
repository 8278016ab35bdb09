//! Physiology formulas (knowledge base §1.2, §1.3). Pure functions of canonical-unit values:
//! gases in mmHg, pressures in cmH2O, FiO2 as a fraction, volumes in mL, height in cm.
//! Each returns `None` when the inputs do not allow a meaningful result; none of them rounds.

use crate::snapshot::{RecruitmentManeuver, Sex};

/// PaO2 / FiO2 (Horowitz index), mmHg.
pub fn pf_ratio(pao2_mmhg: f64, fio2: f64) -> Option<f64> {
    (fio2 > 0.0).then(|| pao2_mmhg / fio2)
}

/// SpO2 (%) / FiO2.
pub fn sf_ratio(spo2_pct: f64, fio2: f64) -> Option<f64> {
    (fio2 > 0.0).then(|| spo2_pct / fio2)
}

/// ARDSNet predicted body weight, kg: male 50 + 0.91 (h − 152.4), female 45.5 + 0.91 (h − 152.4).
/// Unknown sex gives `None` (§1.3: do not guess).
pub fn predicted_body_weight(sex: Sex, height_cm: f64) -> Option<f64> {
    let base = match sex {
        Sex::Male => 50.0,
        Sex::Female => 45.5,
        Sex::Unknown => return None,
    };
    let pbw = base + 0.91 * (height_cm - 152.4);
    (pbw > 0.0).then_some(pbw)
}

/// Tidal volume per kg predicted body weight, mL/kg.
pub fn vt_per_kg(vt_ml: f64, pbw_kg: f64) -> Option<f64> {
    (pbw_kg > 0.0).then(|| vt_ml / pbw_kg)
}

/// Driving pressure Pplat − PEEP, cmH2O; `None` unless Pplat > PEEP (§1.3: Crs invalid otherwise).
pub fn driving_pressure(pplat: f64, peep: f64) -> Option<f64> {
    (pplat > peep).then_some(pplat - peep)
}

/// Static compliance Vt / (Pplat − PEEP), mL/cmH2O.
pub fn static_compliance(vt_ml: f64, pplat: f64, peep: f64) -> Option<f64> {
    driving_pressure(pplat, peep).map(|dp| vt_ml / dp)
}

/// Oxygenation index FiO2 × mPaw × 100 / PaO2.
pub fn oxygenation_index(fio2: f64, mpaw: f64, pao2_mmhg: f64) -> Option<f64> {
    (pao2_mmhg > 0.0).then(|| fio2 * mpaw * 100.0 / pao2_mmhg)
}

/// Oxygen saturation index FiO2 × mPaw × 100 / SpO2, only when SpO2 ≤ 97 % (§1.2).
pub fn oxygen_saturation_index(fio2: f64, mpaw: f64, spo2_pct: f64) -> Option<f64> {
    (spo2_pct > 0.0 && spo2_pct <= 97.0 + crate::concept::EPSILON)
        .then(|| fio2 * mpaw * 100.0 / spo2_pct)
}

/// Ventilatory ratio (Sinha): (VE mL/min × PaCO2) / (PBW × 100 × 37.5).
pub fn ventilatory_ratio(ve_ml_min: f64, paco2_mmhg: f64, pbw_kg: f64) -> Option<f64> {
    (pbw_kg > 0.0).then(|| ve_ml_min * paco2_mmhg / (pbw_kg * 100.0 * 37.5))
}

/// Simplified mechanical power (volume control), J/min: 0.098 × RR × Vt(L) × (Ppeak − ½ ΔP).
pub fn mechanical_power(rr: f64, vt_ml: f64, ppeak: f64, driving_pressure: f64) -> f64 {
    0.098 * rr * (vt_ml / 1000.0) * (ppeak - 0.5 * driving_pressure)
}

/// Body-mass index, kg/m².
pub fn bmi(weight_kg: f64, height_cm: f64) -> Option<f64> {
    let m = height_cm / 100.0;
    (m > 0.0).then(|| weight_kg / (m * m))
}

/// FiO2-challenge slope ΔPaO2 / ΔFiO2, mmHg per unit FiO2 (§4.3).
pub fn fio2_challenge_slope(pao2_a: f64, fio2_a: f64, pao2_b: f64, fio2_b: f64) -> Option<f64> {
    let d_fio2 = fio2_b - fio2_a;
    (d_fio2 != 0.0).then(|| (pao2_b - pao2_a) / d_fio2)
}

/// Result of the recruitment-to-inflation computation (Chen 2020, §1.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecruitmentToInflation {
    pub assessable: bool,
    pub crs_low: Option<f64>,
    pub delta_eelv_ml: Option<f64>,
    pub vrec_ml: Option<f64>,
    pub crec: Option<f64>,
    pub ri: Option<f64>,
}

impl RecruitmentToInflation {
    fn not_assessable() -> Self {
        RecruitmentToInflation {
            assessable: false,
            crs_low: None,
            delta_eelv_ml: None,
            vrec_ml: None,
            crec: None,
            ri: None,
        }
    }
}

/// R/I: (1) Crs,low = Vt / (Pplat,low − PEEP,low); (2) ΔEELV = V,release − Vt;
/// (3) Vrec = ΔEELV − Crs,low × (PEEP,high − PEEP,low); (4) Crec = Vrec / (PEEP,high − PEEP,low);
/// (5) R/I = Crec / Crs,low. An airway opening pressure above PEEP,low replaces it in (1), (3), (4);
/// AOP ≥ PEEP,high, or Pplat,low not above the low pressure, makes it not assessable.
pub fn recruitment_to_inflation(m: &RecruitmentManeuver) -> RecruitmentToInflation {
    let low = match m.aop {
        Some(aop) if aop > m.peep_low => aop,
        _ => m.peep_low,
    };
    if m.aop.is_some_and(|aop| aop >= m.peep_high) || m.pplat_low <= low || m.peep_high <= low {
        return RecruitmentToInflation::not_assessable();
    }
    let crs_low = m.vt_ml / (m.pplat_low - low);
    let delta_eelv = m.v_release_ml - m.vt_ml;
    let span = m.peep_high - low;
    let vrec = delta_eelv - crs_low * span;
    let crec = vrec / span;
    let ri = if crs_low > 0.0 {
        Some(crec / crs_low)
    } else {
        None
    };
    RecruitmentToInflation {
        assessable: ri.is_some(),
        crs_low: Some(crs_low),
        delta_eelv_ml: Some(delta_eelv),
        vrec_ml: Some(vrec),
        crec: Some(crec),
        ri,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_values() {
        assert_eq!(pf_ratio(90.0, 0.5), Some(180.0));
        let pbw = predicted_body_weight(Sex::Male, 175.0).unwrap();
        assert!((pbw - 70.566).abs() < 1e-9);
        let pbw_f = predicted_body_weight(Sex::Female, 175.0).unwrap();
        assert!((pbw_f - 66.066).abs() < 1e-9);
        assert_eq!(predicted_body_weight(Sex::Unknown, 175.0), None);
        assert_eq!(driving_pressure(24.0, 10.0), Some(14.0));
        assert_eq!(driving_pressure(10.0, 10.0), None);
        assert!((static_compliance(450.0, 29.0, 16.0).unwrap() - 34.615_384_6).abs() < 1e-6);
        assert!((mechanical_power(20.0, 420.0, 30.0, 14.0) - 18.9336).abs() < 1e-9);
        assert!(
            (ventilatory_ratio(8400.0, 45.0, 70.566).unwrap() - 378_000.0 / 264_622.5).abs()
                < 1e-12
        );
        assert_eq!(oxygen_saturation_index(0.5, 10.0, 98.0), None);
        assert_eq!(
            oxygen_saturation_index(0.5, 10.0, 97.0),
            Some(0.5 * 10.0 * 100.0 / 97.0)
        );
    }

    #[test]
    fn ri_worked_case_and_aop() {
        let m = RecruitmentManeuver {
            peep_high: 15.0,
            peep_low: 5.0,
            vt_ml: 450.0,
            pplat_low: 20.0,
            v_release_ml: 900.0,
            aop: None,
        };
        let r = recruitment_to_inflation(&m);
        assert!(r.assessable);
        assert_eq!(r.crs_low, Some(30.0));
        assert_eq!(r.vrec_ml, Some(150.0));
        assert_eq!(r.crec, Some(15.0));
        assert_eq!(r.ri, Some(0.5));
        // AOP above low PEEP replaces it.
        let r = recruitment_to_inflation(&RecruitmentManeuver {
            aop: Some(8.0),
            ..m
        });
        assert_eq!(r.crs_low, Some(450.0 / 12.0));
        // AOP at or above high PEEP: not assessable.
        let r = recruitment_to_inflation(&RecruitmentManeuver {
            aop: Some(15.0),
            ..m
        });
        assert!(!r.assessable);
        assert_eq!(r.ri, None);
        // AOP below low PEEP is ignored.
        let r = recruitment_to_inflation(&RecruitmentManeuver {
            aop: Some(3.0),
            ..m
        });
        assert_eq!(r.ri, Some(0.5));
    }

    proptest! {
        #[test]
        fn pf_scales_inversely_with_fio2(pao2 in 20.0f64..600.0, fio2 in 0.21f64..1.0) {
            let pf = pf_ratio(pao2, fio2).unwrap();
            prop_assert!(pf >= pao2 - 1e-9);
            prop_assert!((pf * fio2 - pao2).abs() < 1e-9);
        }

        #[test]
        fn pbw_is_increasing_in_height_and_male_exceeds_female(h in 140.0f64..220.0, dh in 0.1f64..20.0) {
            let m = predicted_body_weight(Sex::Male, h).unwrap();
            let f = predicted_body_weight(Sex::Female, h).unwrap();
            prop_assert!((m - f - 4.5).abs() < 1e-9);
            prop_assert!(predicted_body_weight(Sex::Male, h + dh).unwrap() > m);
        }

        #[test]
        fn compliance_times_driving_pressure_is_tidal_volume(vt in 100.0f64..1000.0, peep in 0.0f64..25.0, dp in 0.5f64..40.0) {
            let crs = static_compliance(vt, peep + dp, peep).unwrap();
            let dp2 = driving_pressure(peep + dp, peep).unwrap();
            prop_assert!((crs * dp2 - vt).abs() < 1e-6);
        }

        #[test]
        fn ri_identity_holds(peep_low in 0.0f64..10.0, span in 2.0f64..15.0, vt in 200.0f64..700.0,
                             dp in 2.0f64..30.0, extra in 0.0f64..1500.0) {
            let m = RecruitmentManeuver { peep_high: peep_low + span, peep_low, vt_ml: vt,
                pplat_low: peep_low + dp, v_release_ml: vt + extra, aop: None };
            let r = recruitment_to_inflation(&m);
            prop_assert!(r.assessable);
            let crs = r.crs_low.unwrap();
            // Vrec + Crs,low x span = delta EELV, and R/I x Crs,low x span = Vrec.
            prop_assert!((r.vrec_ml.unwrap() + crs * span - r.delta_eelv_ml.unwrap()).abs() < 1e-6);
            prop_assert!((r.ri.unwrap() * crs * span - r.vrec_ml.unwrap()).abs() < 1e-6);
        }

        #[test]
        fn mechanical_power_is_linear_in_rate(rr in 5.0f64..40.0, vt in 200.0f64..800.0, ppeak in 15.0f64..50.0, dp in 0.0f64..20.0) {
            let one = mechanical_power(rr, vt, ppeak, dp);
            let two = mechanical_power(2.0 * rr, vt, ppeak, dp);
            prop_assert!((two - 2.0 * one).abs() < 1e-9);
        }

        #[test]
        fn bmi_matches_definition(w in 30.0f64..250.0, h in 120.0f64..220.0) {
            let b = bmi(w, h).unwrap();
            prop_assert!((b * (h / 100.0).powi(2) - w).abs() < 1e-9);
        }
    }
}
