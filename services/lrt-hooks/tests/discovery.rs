//! Discovery: the three services, their prefetch templates derived from the rule set's search
//! plan, and prefetch-token filling (checklist B, D.12, D.13, D.16).

mod support;

use lrt_hooks::services::{self, Hook, KeyKind, TokenError, fill_tokens, prefetch_templates};
use lrt_hooks::validate::validate_discovery;
use serde_json::{Map, Value, json};

fn context(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

#[test]
fn discovery_lists_the_three_services_with_prefetch() {
    let rules = support::rules();
    let d = serde_json::to_value(services::discovery(rules)).expect("serialisable");
    assert_eq!(validate_discovery(&d), vec![], "{d:#}");
    let list = d["services"].as_array().expect("services");
    let ids: Vec<(&str, &str)> = list
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or(""),
                s["hook"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("lrt-patient-view", "patient-view"),
            ("lrt-order-select", "order-select"),
            ("lrt-order-sign", "order-sign")
        ]
    );
    for s in list {
        for field in ["title", "description", "usageRequirements"] {
            assert!(
                s[field].as_str().is_some_and(|t| t.len() > 20),
                "{field}: {s}"
            );
        }
        let keys: Vec<&String> = s["prefetch"]
            .as_object()
            .expect("prefetch")
            .keys()
            .collect();
        assert_eq!(
            keys,
            [
                "Condition",
                "Flag",
                "MedicationAdministration",
                "MedicationRequest",
                "Observation",
                "Patient",
                "Procedure"
            ]
        );
        assert_eq!(
            s["extension"]["org.lrt-cds"]["rulesetVersion"],
            rules.version()
        );
        assert_eq!(
            s["extension"]["org.lrt-cds"]["rulesetSha256"],
            rules.sha256.as_str()
        );
    }
    let p = &list[0]["prefetch"];
    assert_eq!(p["Patient"], "Patient/{{context.patientId}}");
    let obs = p["Observation"].as_str().expect("a template");
    assert!(
        obs.starts_with("Observation?patient={{context.patientId}}&code=http://loinc.org|2703-7,"),
        "{obs}"
    );
    assert!(obs.ends_with("&_sort=-date&_count=200"), "{obs}");
    assert!(
        obs.contains("http://loinc.org|8302-2"),
        "height is asked for: {obs}"
    );
    assert!(!obs.contains("date="), "no date in a 2.0 template: {obs}");
    assert!(
        p["Procedure"]
            .as_str()
            .is_some_and(|t| t.contains("http://snomed.info/sct|431182000")),
        "prone code"
    );
    assert_eq!(
        p["Condition"], "Condition?patient={{context.patientId}}&_count=200",
        "ICD prefixes: no code filter"
    );
    assert_eq!(
        p["Flag"], "Flag?patient={{context.patientId}}&_count=200",
        "R4 Flag has no `code` search parameter: every flag, the code sets pick the hard stops"
    );
    assert_eq!(
        p["MedicationRequest"],
        "MedicationRequest?patient={{context.patientId}}&_count=200"
    );
    // Templates stay in the checklist's subset: no _include, no chaining, no _has.
    for t in p.as_object().expect("prefetch").values() {
        let t = t.as_str().expect("a string");
        assert!(
            !t.contains("_include") && !t.contains("_has") && !t.contains("_revinclude"),
            "{t}"
        );
        assert!(services::template_tokens_valid(t), "{t}");
    }
}

#[test]
fn required_keys_are_patient_and_observation() {
    let t = prefetch_templates(support::rules());
    let required: Vec<&str> = t
        .iter()
        .filter(|t| t.required)
        .map(|t| t.key.as_str())
        .collect();
    assert_eq!(required, ["Patient", "Observation"]);
    assert_eq!(t[0].kind, KeyKind::Patient);
    assert_eq!(t[1].kind, KeyKind::Observation);
    assert!(t[2..].iter().all(|t| matches!(t.kind, KeyKind::Context(_))));
}

#[test]
fn hooks_and_services_route_by_id_and_hook() {
    for s in services::SERVICES.iter() {
        assert_eq!(services::find(s.id), Some(s));
        assert_eq!(Hook::from_name(s.hook.name()), Some(s.hook));
    }
    assert_eq!(Hook::from_name("encounter-start"), None);
}

#[test]
fn tokens_are_filled_from_root_level_primitives_and_encoded() {
    let ctx = context(json!({
        "patientId": "p 1&x=2/../y",
        "userId": "Practitioner/abc",
        "encounterId": "e1",
        "count": 3,
        "flag": true,
        "draftOrders": {"resourceType": "Bundle"},
    }));
    assert_eq!(
        fill_tokens("Observation?patient={{context.patientId}}&_count=200", &ctx).expect("filled"),
        "Observation?patient=p%201%26x%3D2%2F..%2Fy&_count=200"
    );
    assert_eq!(
        fill_tokens("Patient/{{context.patientId}}", &ctx).expect("filled"),
        "Patient/p%201%26x%3D2%2F..%2Fy"
    );
    assert_eq!(
        fill_tokens("X?a={{ context.count }}&b={{context.flag}}", &ctx).expect("filled"),
        "X?a=3&b=true"
    );
    assert_eq!(
        fill_tokens("Practitioner/{{userPractitionerId}}", &ctx).expect("filled"),
        "Practitioner/abc"
    );
    assert_eq!(fill_tokens("no tokens", &ctx).expect("filled"), "no tokens");
    assert_eq!(
        fill_tokens("PractitionerRole/{{userPractitionerRoleId}}", &ctx),
        Err(TokenError::NoUser("userPractitionerRoleId".into()))
    );
    assert_eq!(
        fill_tokens("X?p={{context.draftOrders}}", &ctx),
        Err(TokenError::NotPrimitive("draftOrders".into()))
    );
    assert_eq!(
        fill_tokens("X?p={{context.draftOrders.id}}", &ctx),
        Err(TokenError::NotRootLevel("draftOrders.id".into()))
    );
    assert_eq!(
        fill_tokens("X?p={{context.missing}}", &ctx),
        Err(TokenError::Missing("missing".into()))
    );
    assert_eq!(
        fill_tokens("X?p={{Patient.id}}", &ctx),
        Err(TokenError::NotAllowed("Patient.id".into()))
    );
    assert_eq!(
        fill_tokens("X?p={{context.patientId", &ctx),
        Err(TokenError::Unclosed)
    );
    let role = context(json!({"userId": "PractitionerRole/r 9", "patientId": "p"}));
    assert_eq!(
        fill_tokens("{{userPractitionerRoleId}}", &role).expect("filled"),
        "r%209"
    );
    let rel = context(json!({"userId": "RelatedPerson/r1"}));
    assert_eq!(
        fill_tokens("{{userRelatedPersonId}}", &rel).expect("filled"),
        "r1"
    );
    let pat = context(json!({"userId": "Patient/x"}));
    assert_eq!(fill_tokens("{{userPatientId}}", &pat).expect("filled"), "x");
    // The whole shipped template set fills.
    let ctx = context(json!({"patientId": "mimic-10039708", "userId": "Practitioner/example"}));
    for t in prefetch_templates(support::rules()) {
        let filled = fill_tokens(&t.template, &ctx).expect("filled");
        assert!(
            filled.contains("mimic-10039708") && !filled.contains("{{"),
            "{filled}"
        );
    }
}

#[test]
fn discovery_validator_catches_bad_templates_and_shapes() {
    let rules = support::rules();
    let mut d = serde_json::to_value(services::discovery(rules)).expect("serialisable");
    d["services"][0]["prefetch"]["Bad"] =
        json!("MedicationRequest/{{context.draftOrders.ServiceRequest.id}}");
    d["services"][1]
        .as_object_mut()
        .map(|s| s.remove("description"));
    d["services"][2]["id"] = json!("lrt-order-select");
    d["services"][2]["hook"] = json!("order-select");
    let v = validate_discovery(&d);
    let rules_hit: Vec<&str> = v.iter().map(|x| x.rule).collect();
    assert!(rules_hit.contains(&"D.12"), "{v:?}");
    assert!(
        v.iter().any(|x| x.rule == "B.6"
            && x.path == "/services/1"
            && x.message.contains("description")),
        "{v:?}"
    );
    assert!(rules_hit.contains(&"B.7"), "{v:?}");
    assert_eq!(validate_discovery(&json!({"services": []})), vec![]);
    assert!(!validate_discovery(&json!({})).is_empty());
    assert!(!validate_discovery(&json!({"services": [], "x": null})).is_empty());
}
