//! What to ask the EHR's FHIR server for one patient at one time, derived from the rule set:
//! the codes of its value sets and code sets, and a date window wide enough for every validity
//! window, the FiO2 pairing window and the EOLIA lookback. Nothing dated after `now` is asked
//! for, so a replay at a past `now` sees what was known then.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lrt_engine::RuleSet;
use lrt_engine::concept::Concept;
use lrt_engine::ruleset::Validity;
use lrt_engine::ruleset::files::ResourceKind;

/// Page size asked of the server.
pub const PAGE_SIZE: u32 = 200;

/// One FHIR search: `[base]/{resource_type}?{params}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub resource_type: &'static str,
    pub params: Vec<(String, String)>,
    /// The kind of resources it covers (observations and the patient: none).
    pub kind: Option<ResourceKind>,
}

/// How far back observations are searched: the longest validity window, plus the FiO2 pairing
/// window (a valid PaO2 may pair with an earlier FiO2), or the EOLIA lookback if longer.
pub fn observation_lookback(rules: &RuleSet) -> Duration {
    let mut longest_ms = 0.0f64;
    for c in Concept::ALL {
        if let Some(ms) = rules.window_ms(c) {
            longest_ms = longest_ms.max(ms);
        }
    }
    let param_ms = |name: &str| {
        rules.param(name).map_or(0.0, |p| {
            p.value
                * match p.unit.as_str() {
                    "min" => 60_000.0,
                    "h" => 3_600_000.0,
                    "d" => 86_400_000.0,
                    _ => 0.0,
                }
        })
    };
    let total = (longest_ms + param_ms("fio2_pairing_window_min"))
        .max(param_ms("eolia_lookback_h") + param_ms("fio2_pairing_window_min"));
    // Beyond any real record (a test rule set may set an unlimited pairing window).
    let capped = total.min(200.0 * 365.25 * 86_400_000.0);
    Duration::milliseconds(capped as i64)
}

fn token(system: &str, code: &str) -> String {
    format!("{system}|{code}")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The searches for `patient` at `now` (besides the `Patient/{id}` read).
pub fn patient_searches(rules: &RuleSet, patient: &str, now: DateTime<Utc>) -> Vec<Search> {
    let base = |extra: Vec<(&str, String)>| -> Vec<(String, String)> {
        let mut p = vec![("patient".to_string(), patient.to_string())];
        p.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        p.push(("_count".into(), PAGE_SIZE.to_string()));
        p
    };
    let codes_of = |pred: &dyn Fn(Concept) -> bool| -> String {
        let mut list: Vec<String> = Vec::new();
        for c in Concept::ALL.into_iter().filter(|c| pred(*c)) {
            for code in &rules.concept_config(c).codes {
                list.push(token(&code.system, &code.code));
            }
        }
        list.join(",")
    };
    let timed = |c: Concept| !matches!(rules.concept_config(c).validity, Validity::Unlimited);
    let since = now - observation_lookback(rules);
    let mut searches = vec![
        Search {
            resource_type: "Observation",
            params: base(vec![
                ("code", codes_of(&timed)),
                ("date", format!("ge{}", time(since))),
                ("date", format!("le{}", time(now))),
                ("_sort", "-date".into()),
            ]),
            kind: None,
        },
        // Height and weight have no validity window: their latest values, whenever they were taken.
        Search {
            resource_type: "Observation",
            params: base(vec![
                ("code", codes_of(&|c| !timed(c))),
                ("date", format!("le{}", time(now))),
                ("_sort", "-date".into()),
            ]),
            kind: None,
        },
    ];
    // Code sets: exact codes can be searched as tokens; a prefix (ICD category, ATC group) cannot,
    // so such a kind is searched without a code filter.
    let code_param = |kind: ResourceKind| -> Vec<(&str, String)> {
        let sets: Vec<_> = rules.codesets.iter().filter(|s| s.from == kind).collect();
        if sets.iter().any(|s| s.codes.iter().any(|c| c.prefix)) {
            return Vec::new();
        }
        let list: Vec<String> = sets
            .iter()
            .flat_map(|s| s.codes.iter().map(|c| token(&c.system, &c.code)))
            .collect();
        if list.is_empty() {
            Vec::new()
        } else {
            vec![("code", list.join(","))]
        }
    };
    searches.push(Search {
        resource_type: "Condition",
        params: base(code_param(ResourceKind::Conditions)),
        kind: Some(ResourceKind::Conditions),
    });
    searches.push(Search {
        resource_type: "Procedure",
        params: base(code_param(ResourceKind::Procedures)),
        kind: Some(ResourceKind::Procedures),
    });
    for rt in ["MedicationAdministration", "MedicationRequest"] {
        searches.push(Search {
            resource_type: rt,
            params: base(Vec::new()),
            kind: Some(ResourceKind::Medications),
        });
    }
    searches.push(Search {
        resource_type: "Flag",
        // R4 defines no `code` search parameter on Flag (servers ignore it with a warning or
        // refuse it): every flag of the patient is asked for, the code sets pick the hard stops.
        params: base(Vec::new()),
        kind: Some(ResourceKind::Flags),
    });
    searches
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrt_engine::testing::shipped_version_dir;

    #[test]
    fn plan_from_the_shipped_rules() {
        let rules = RuleSet::load(&shipped_version_dir()).unwrap();
        // Echo 72 h is the longest window, plus 60 min FiO2 pairing.
        assert_eq!(observation_lookback(&rules), Duration::hours(73));
        let now: DateTime<Utc> = "2025-03-01T12:00:00Z".parse().unwrap();
        let s = patient_searches(&rules, "p1", now);
        let obs = &s[0];
        assert_eq!(obs.resource_type, "Observation");
        let get = |k: &str| {
            obs.params
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("patient"), ["p1"]);
        assert_eq!(
            get("date"),
            ["ge2025-02-26T11:00:00Z", "le2025-03-01T12:00:00Z"]
        );
        assert!(get("code")[0].contains("http://loinc.org|2703-7,"));
        assert!(
            !get("code")[0].contains("8302-2"),
            "height is searched without a date"
        );
        assert!(
            s[1].params
                .iter()
                .any(|(k, v)| k == "code" && v.contains("http://loinc.org|8302-2"))
        );
        let procedures = s.iter().find(|x| x.resource_type == "Procedure").unwrap();
        assert!(
            procedures
                .params
                .iter()
                .any(|(k, v)| k == "code" && v.contains("http://snomed.info/sct|40617009"))
        );
        let conditions = s.iter().find(|x| x.resource_type == "Condition").unwrap();
        assert!(
            !conditions.params.iter().any(|(k, _)| k == "code"),
            "ICD categories are prefixes: no code filter"
        );
    }
}
