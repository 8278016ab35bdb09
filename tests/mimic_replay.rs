//! Rule set 0.2.0 on real EHR data (issue 12): every MIMIC-IV demo patient replayed at each of
//! their arterial blood gases, as a hospital would see it, with the safety properties of the
//! clinical lead's decisions (knowledge base §9) asserted on every evaluation:
//!
//! * every evaluation that meets the §3.3 prone physiology (intubated, P/F < 150, FiO2 ≥ 0.6,
//!   PEEP ≥ 5) without a documented contraindication or ongoing prone session recommends
//!   `PRONE_POSITIONING` (§9 D4);
//! * no ECMO consult trigger for a patient not known to be intubated, under 18, or on
//!   extracorporeal support (§9 D1, D2);
//! * no `eligible` / `borderline` without a valid paired P/F, unless EOLIA C3 is met by the
//!   blood gas itself (§9 D3);
//! * a PaO2 refused as implausible (§9 D8) gives no PaO2 and no P/F at its own blood gas.
//!
//! Each evaluation also goes through the patient-view renderer with 0.2.0's own card texts (§9
//! D12): every card is valid CDS Hooks, its summary fits, no code or placeholder is shown raw,
//! and the eligible wording never says "nothing stands against ECMO". It prints the share of
//! evaluations for which patient-view answers a card, and the most frequent summary leads.

use std::collections::BTreeMap;

use lrt_engine::assessment::{CriterionValue, Explanation};
use lrt_engine::testing::{repo_root, shared_dir};
use lrt_engine::{Assessment, RuleSet};
use lrt_fhir::Collected;
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::cards::{self, CardInput};
use lrt_hooks::model::HookRequest;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::services;
use lrt_hooks::validate::validate_response;

fn criterion<'a>(e: &'a Explanation, fact: &str) -> Option<&'a CriterionValue> {
    e.criteria
        .iter()
        .find(|c| &*c.fact == fact)
        .map(|c| &c.value)
}

fn number(v: Option<&CriterionValue>) -> Option<f64> {
    match v {
        Some(CriterionValue::Number(x)) => Some(*x),
        _ => None,
    }
}

fn boolean(v: Option<&CriterionValue>) -> Option<bool> {
    match v {
        Some(CriterionValue::Boolean(b)) => Some(*b),
        _ => None,
    }
}

/// The §3.3 physiology, read from the inputs the prone rule saw (thresholds from §3.3).
fn meets_prone_physiology(a: &Assessment) -> bool {
    let Some(e) = a
        .explanations
        .iter()
        .find(|e| &*e.rule == "prone_recommended")
    else {
        return false;
    };
    boolean(criterion(e, "intubated")) == Some(true)
        && number(criterion(e, "pf_ratio")).is_some_and(|x| x < 150.0)
        && number(criterion(e, "fio2")).is_some_and(|x| x >= 0.6)
        && number(criterion(e, "peep")).is_some_and(|x| x >= 5.0)
        && boolean(criterion(e, "currently_prone")) != Some(true)
        && boolean(criterion(e, "prone_contraindication")) != Some(true)
}

#[test]
fn every_mimic_blood_gas_under_0_2_0_keeps_the_section_9_safety_properties() {
    let rules = RuleSet::load(&repo_root().join("rules/lrt-ruleset/0.2.0")).unwrap();
    let path =
        shared_dir().join("data/mimic-iv-demo-fhir/mimic-iv-demo-icu-resp.transactions.ndjson");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut categories: BTreeMap<String, usize> = BTreeMap::new();
    let mut leads: BTreeMap<String, usize> = BTreeMap::new();
    let card_text = CardText::for_rules(&rules).unwrap();
    let codes = OrderCodes::for_rules(&rules).unwrap();
    let service = services::find("lrt-patient-view").unwrap();
    let dashboard = url::Url::parse("https://lrt.example.org/").unwrap();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut collected = Collected::default();
        collected.add(lrt_fhir::parse(line).unwrap());
        for patient in collected.patient_ids() {
            let opts = lrt_fhir::replay::file_options(&collected, &patient);
            let times = lrt_fhir::replay::arterial_pao2_times(&rules, &collected, &patient, opts);
            for now in times {
                let snapshot = lrt_fhir::build_snapshot(&rules, &collected, &patient, now, opts);
                let a = lrt_engine::evaluate(&rules, &snapshot, now);
                let at = format!("{patient}@{now}");
                let body = serde_json::json!({"hook": "patient-view",
                    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                    "context": {"userId": "Practitioner/replay", "patientId": patient}});
                let request = HookRequest::from_slice(body.to_string().as_bytes()).unwrap();
                *counts.entry("evaluations").or_default() += 1;
                let category = a.ecmo_category.as_deref().unwrap_or("none");
                *categories.entry(category.to_string()).or_default() += 1;
                let recs: Vec<&str> = a.recommendations.iter().map(|r| &**r).collect();
                if meets_prone_physiology(&a) {
                    *counts.entry("prone physiology").or_default() += 1;
                    assert!(recs.contains(&"PRONE_POSITIONING"), "{at}: {recs:?}");
                }
                let ecmo_trigger = a
                    .consult_triggers
                    .iter()
                    .any(|t| t.code.starts_with("ECMO_"));
                if ecmo_trigger || recs.contains(&"ECMO_CENTER_CONSULT") {
                    *counts.entry("ECMO consult").or_default() += 1;
                    let c = &snapshot.context;
                    assert_eq!(c.intubated, Some(true), "{at}: not known to be intubated");
                    assert!(
                        snapshot.patient.age_years.is_none_or(|y| y >= 18),
                        "{at}: a child"
                    );
                    assert_ne!(c.on_extracorporeal_support, Some(true), "{at}: on support");
                }
                // §9 D8: a refused gas at this time feeds nothing.
                let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let refused = a.data_quality.iter().any(|d| {
                    (d.starts_with("implausible:pao2@") || d.starts_with("suspected_kpa_as_mmhg"))
                        && d.ends_with(&stamp)
                });
                if refused {
                    *counts.entry("refused PaO2").or_default() += 1;
                    assert_eq!(a.pao2_mmhg, None, "{at}: a refused PaO2 was used");
                    assert_eq!(a.pf_ratio, None, "{at}");
                }
                if matches!(category, "eligible" | "borderline") {
                    assert!(
                        a.pf_ratio.is_some() || a.eolia.c3,
                        "{at}: {category} without a valid paired P/F"
                    );
                }
                let input = CardInput {
                    service,
                    request: &request,
                    rules: &rules,
                    text: &card_text,
                    snapshot: Some(&snapshot),
                    evaluation_id: uuid::Uuid::nil(),
                    dashboard: &dashboard,
                    order_codes: &codes,
                };
                let response = cards::respond(&input, &a);
                let json = serde_json::to_value(&response).unwrap();
                let violations = validate_response(&json);
                assert!(violations.is_empty(), "{at}: {violations:?}");
                for card in &response.cards {
                    *counts.entry("patient-view cards").or_default() += 1;
                    let summary = card.summary.as_str();
                    let detail = card.detail.as_deref().unwrap_or_default();
                    assert!(summary.chars().count() < 140, "{at}: {summary}");
                    for raw in [
                        "unverified:",
                        "missing:",
                        "gap:",
                        "relative_ci:",
                        "{param:",
                        "{value:",
                        "{time:",
                        "{reasons}",
                    ] {
                        assert!(
                            !summary.contains(raw) && !detail.contains(raw),
                            "{at}: {raw} shown raw:\n{summary}\n{detail}"
                        );
                    }
                    assert!(!detail.contains("nothing stands against"), "{at}");
                    let lead = summary.split(':').next().unwrap_or_default().to_string();
                    *leads.entry(lead).or_default() += 1;
                }
            }
        }
    }
    let n = counts["evaluations"];
    eprintln!(
        "MIMIC replay under 0.2.0: {counts:?}; categories {categories:?}; patient-view would answer a card for {:.1} % of evaluations (no card when nothing is actionable, §9 D12)",
        100.0 * counts.get("patient-view cards").copied().unwrap_or(0) as f64 / n as f64
    );
    let mut by_count: Vec<(&String, &usize)> = leads.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    eprintln!("summary leads: {by_count:?}");
    assert_eq!(n, 706, "every arterial blood gas of the demo");
    assert!(counts["prone physiology"] > 0, "the property was exercised");
}
