//! Pass 2: the parameters (`parameters:`), and the engine's own parameters read from them.

use std::collections::HashMap;

use super::super::condition::{PARAM_HELP, did_you_mean};
use super::super::schema::ParsedFile;
use super::super::{EngineParams, GasPlausibility, Parameter};
use super::Ctx;

/// The rule set's parameters, each defined once, in the order the files define them.
pub(super) struct Parameters {
    pub(super) list: Vec<Parameter>,
    /// Name → position in `list`.
    pub(super) index: HashMap<String, usize>,
    /// Name → the file that defines it.
    file_of: HashMap<String, String>,
    /// (value, unit) by position, as conditions compare against them.
    pub(super) values: Vec<(f64, String)>,
}

/// §9 D8's blood-gas plausibility parameters with the units the engine reads them in (optional:
/// versions before 0.2.0 do not define them; all six or none).
const GAS_PLAUSIBILITY: [(&str, &str); 6] = [
    ("pao2_min_mmhg", "mm[Hg]"),
    ("paco2_min_mmhg", "mm[Hg]"),
    ("kpa_suspect_max_mmhg", "mm[Hg]"),
    ("alveolar_pio2_factor", "mm[Hg]"),
    ("alveolar_rq", "1"),
    ("alveolar_margin", "1"),
];

/// Milliseconds per unit of a time-window parameter.
fn time_unit_ms(unit: &str) -> Option<f64> {
    match unit {
        "s" => Some(1_000.0),
        "min" => Some(60_000.0),
        "h" => Some(3_600_000.0),
        "d" => Some(86_400_000.0),
        _ => None,
    }
}

impl Parameters {
    pub(super) fn compile(files: &[ParsedFile], ctx: &mut Ctx) -> Self {
        let mut list: Vec<Parameter> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut file_of: HashMap<String, String> = HashMap::new();
        for f in files {
            for (name, p) in &f.file.parameters {
                let ptr = format!("/parameters/{name}");
                if let Some(other) = file_of.get(name) {
                    ctx.errors.push(
                        &f.display,
                        &ptr,
                        format!("parameter {name} is also defined in {other}"),
                    );
                    continue;
                }
                ctx.cites(&f.display, &ptr, &p.cites);
                file_of.insert(name.clone(), f.display.clone());
                index.insert(name.clone(), list.len());
                list.push(Parameter {
                    name: name.clone(),
                    value: p.value,
                    unit: p.unit.clone(),
                    cites: p.cites.clone(),
                    description: p.description.clone(),
                });
            }
        }
        let values = list.iter().map(|p| (p.value, p.unit.clone())).collect();
        Parameters {
            list,
            index,
            file_of,
            values,
        }
    }

    /// The time window that parameter `name` gives, in milliseconds, where an item names it at
    /// `file` `ptr`; `None` (and a problem) when it is unknown or not a time.
    pub(super) fn window(&self, ctx: &mut Ctx, file: &str, ptr: &str, name: &str) -> Option<f64> {
        let Some(&i) = self.index.get(name) else {
            ctx.errors.push_help(
                file,
                ptr,
                format!("unknown parameter {name:?}"),
                did_you_mean(name, self.index.keys().map(String::as_str))
                    .unwrap_or_else(|| PARAM_HELP.into()),
            );
            return None;
        };
        let p = &self.list[i];
        match time_unit_ms(&p.unit) {
            Some(ms) => Some(p.value * ms),
            None => {
                ctx.errors.push(
                    file,
                    ptr,
                    format!(
                        "parameter {name} is used as a time window but its unit is {} (use h, min, s or d)",
                        p.unit
                    ),
                );
                None
            }
        }
    }

    /// The parameters the engine itself reads (pairing windows, the FiO2 challenge, §9 D8).
    pub(super) fn engine(&self, ctx: &mut Ctx) -> EngineParams {
        let mut engine = EngineParams {
            fio2_pairing_ms: self.engine_param(ctx, "fio2_pairing_window_min", "min"),
            blood_gas_match_ms: self.engine_param(ctx, "blood_gas_match_window_min", "min"),
            challenge_window_ms: self.engine_param(ctx, "challenge_window_h", "h"),
            challenge_min_dfio2: self.engine_param(ctx, "challenge_min_dfio2", "1"),
            challenge_peep_tol: self.engine_param(ctx, "challenge_peep_tol", "cm[H2O]"),
            gas_plausibility: None,
        };
        let present = GAS_PLAUSIBILITY
            .iter()
            .filter(|(n, _)| self.index.contains_key(*n))
            .count();
        if present == GAS_PLAUSIBILITY.len() {
            let [
                pao2_min,
                paco2_min,
                kpa_suspect_max,
                alveolar_pio2_factor,
                alveolar_rq,
                alveolar_margin,
            ] = GAS_PLAUSIBILITY.map(|(n, u)| self.engine_param(ctx, n, u));
            engine.gas_plausibility = Some(GasPlausibility {
                pao2_min,
                paco2_min,
                kpa_suspect_max,
                alveolar_pio2_factor,
                alveolar_rq,
                alveolar_margin,
            });
        } else if present > 0 {
            ctx.errors.push(
                &ctx.dir,
                "/parameters",
                format!(
                    "blood-gas plausibility (§9 D8) needs all of {} or none",
                    GAS_PLAUSIBILITY
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        engine
    }

    /// Parameter `name`, which the engine reads in `unit` (windows in milliseconds); 0 and a
    /// problem when it is missing or in another unit.
    fn engine_param(&self, ctx: &mut Ctx, name: &str, unit: &str) -> f64 {
        match self.index.get(name).map(|&i| &self.list[i]) {
            Some(p) if p.unit == unit => match unit {
                "min" => p.value * 60_000.0,
                "h" => p.value * 3_600_000.0,
                _ => p.value,
            },
            Some(p) => {
                let file = self.file_of.get(name).unwrap_or(&ctx.dir);
                ctx.errors.push(
                    file,
                    format!("/parameters/{name}/unit"),
                    format!("the engine reads {name} in {unit}, not {}", p.unit),
                );
                0.0
            }
            None => {
                ctx.errors.push(
                    &ctx.dir,
                    "",
                    format!(
                        "the engine needs parameter {name} (unit {unit}); define it under `parameters`"
                    ),
                );
                0.0
            }
        }
    }
}
