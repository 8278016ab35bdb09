//! The response validator accepts a complete hand-made response and rejects every rule broken
//! on purpose, naming the rule and the place.

use lrt_hooks::validate::{Violation, validate_response};
use serde_json::{Value, json};

fn good() -> Value {
    json!({
        "cards": [{
            "uuid": "4e0d2c3a-8a4f-4d8e-9a57-0a1b2c3d4e5f",
            "summary": "LRT: meets ECMO criteria (EOLIA C2); contact the ECMO centre now",
            "detail": "**ECMO category: eligible**",
            "indicator": "critical",
            "source": {
                "label": "Lung Rescue Team rules 0.1.0",
                "url": "https://lrt.example.org/about",
                "icon": "https://lrt.example.org/icon.png",
                "topic": {"system": "urn:lrt:card-topic", "code": "lrt-triage", "display": "Lung Rescue Team triage"}
            },
            "suggestions": [
                {"label": "Request LRT consult", "uuid": "0b5cbb0c-6f5a-4c55-8f0e-1d2e3f4a5b6c", "isRecommended": true,
                 "actions": [{"type": "create", "description": "Create a consult request",
                              "resource": {"resourceType": "ServiceRequest", "status": "draft", "intent": "proposal", "subject": {"reference": "Patient/p1"}}}]},
                {"label": "Remove the draft order", "uuid": "7c6d5e4f-3a2b-4c1d-8e9f-0a1b2c3d4e5f",
                 "actions": [{"type": "delete", "description": "Remove ServiceRequest/s1", "resourceId": "ServiceRequest/s1"}]}
            ],
            "selectionBehavior": "any",
            "overrideReasons": [{"system": "urn:lrt:override-reason", "code": "goals-of-care", "display": "Not consistent with the goals of care"}],
            "links": [
                {"label": "Open this LRT evaluation", "url": "https://lrt.example.org/dashboard/evaluations/00000000-0000-4000-8000-000000000001", "type": "absolute"},
                {"label": "LRT app", "url": "https://lrt.example.org/launch", "type": "smart", "appContext": "{\"evaluation\":\"1\"}"}
            ],
            "extension": {"org.lrt-cds": {"rulesetVersion": "0.1.0"}}
        }],
        "systemActions": [
            {"type": "update", "description": "Update the draft", "resource": {"resourceType": "ServiceRequest", "id": "s2", "status": "draft", "intent": "order"}}
        ]
    })
}

/// Applies `edit` to the good response; the violations found.
fn broken(edit: impl Fn(&mut Value)) -> Vec<Violation> {
    let mut v = good();
    edit(&mut v);
    validate_response(&v)
}

/// Asserts that `rule` is reported at `path`.
fn expect(violations: &[Violation], rule: &str, path: &str) {
    assert!(
        violations.iter().any(|v| v.rule == rule && v.path == path),
        "expected [{rule}] at {path:?}, got {violations:#?}"
    );
}

fn card(v: &mut Value) -> &mut Value {
    &mut v["cards"][0]
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().map(|o| o.remove(key));
}

#[test]
fn a_complete_response_and_an_empty_one_are_valid() {
    assert_eq!(validate_response(&good()), vec![]);
    assert_eq!(
        validate_response(&json!({"cards": []})),
        vec![],
        "cards: [] is the one allowed empty array"
    );
}

#[test]
fn no_nulls_and_no_empty_values() {
    expect(
        &broken(|v| card(v)["detail"] = Value::Null),
        "A.2",
        "/cards/0/detail",
    );
    expect(
        &broken(|v| card(v)["detail"] = json!("")),
        "A.2",
        "/cards/0/detail",
    );
    expect(
        &broken(|v| card(v)["links"] = json!([])),
        "A.2",
        "/cards/0/links",
    );
    expect(
        &broken(|v| card(v)["extension"] = json!({})),
        "A.2",
        "/cards/0/extension",
    );
    expect(
        &broken(|v| v["systemActions"] = json!([])),
        "A.2",
        "/systemActions",
    );
    expect(
        &broken(|v| card(v)["suggestions"][0]["actions"][0]["resource"]["note"] = json!([])),
        "A.2",
        "/cards/0/suggestions/0/actions/0/resource/note",
    );
    expect(
        &broken(|v| card(v)["source"]["topic"]["display"] = Value::Null),
        "A.2",
        "/cards/0/source/topic/display",
    );
}

#[test]
fn the_body_and_its_members() {
    expect(&validate_response(&json!([])), "F.19", "");
    expect(&broken(|v| remove(v, "cards")), "F.19", "");
    expect(&broken(|v| v["cards"] = json!({})), "F.19", "/cards");
    expect(
        &broken(|v| v["warnings"] = json!(["x"])),
        "F.19",
        "/warnings",
    );
    expect(
        &broken(|v| card(v)["extension"] = json!("org.lrt-cds")),
        "A.3",
        "/cards/0/extension",
    );
    expect(
        &broken(|v| card(v)["title"] = json!("x")),
        "F.21",
        "/cards/0/title",
    );
}

#[test]
fn summary_indicator_and_detail() {
    let s139 = "x".repeat(139);
    assert_eq!(broken(|v| card(v)["summary"] = json!(s139.clone())), vec![]);
    expect(
        &broken(|v| card(v)["summary"] = json!("é".repeat(140))),
        "F.21",
        "/cards/0/summary",
    );
    expect(&broken(|v| remove(card(v), "summary")), "F.21", "/cards/0");
    expect(
        &broken(|v| card(v)["summary"] = json!("   ")),
        "F.21",
        "/cards/0/summary",
    );
    expect(
        &broken(|v| card(v)["indicator"] = json!("urgent")),
        "F.21",
        "/cards/0/indicator",
    );
    expect(
        &broken(|v| remove(card(v), "indicator")),
        "F.21",
        "/cards/0",
    );
    expect(
        &broken(|v| card(v)["detail"] = json!(3)),
        "F.21",
        "/cards/0/detail",
    );
}

#[test]
fn source_and_codings() {
    expect(&broken(|v| remove(card(v), "source")), "F.22", "/cards/0");
    expect(
        &broken(|v| remove(&mut card(v)["source"], "label")),
        "F.22",
        "/cards/0/source",
    );
    expect(
        &broken(|v| card(v)["source"]["url"] = json!("/about")),
        "F.22",
        "/cards/0/source/url",
    );
    expect(
        &broken(|v| card(v)["source"]["icon"] = json!("icon.png")),
        "F.22",
        "/cards/0/source/icon",
    );
    expect(
        &broken(|v| remove(&mut card(v)["source"]["topic"], "code")),
        "F.26",
        "/cards/0/source/topic",
    );
    expect(
        &broken(|v| card(v)["source"]["topic"] = json!("lrt")),
        "F.26",
        "/cards/0/source/topic",
    );
}

#[test]
fn uuids_on_every_card_and_suggestion() {
    expect(&broken(|v| remove(card(v), "uuid")), "P", "/cards/0");
    expect(
        &broken(|v| card(v)["uuid"] = json!("card-1")),
        "P",
        "/cards/0/uuid",
    );
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][1], "uuid")),
        "P",
        "/cards/0/suggestions/1",
    );
    expect(
        &broken(|v| {
            card(v)["suggestions"][1]["uuid"] = json!("0B5CBB0C-6F5A-4C55-8F0E-1D2E3F4A5B6C")
        }),
        "P",
        "/cards/0/suggestions/1/uuid",
    );
    expect(
        &broken(|v| {
            let c = card(v).clone();
            if let Some(a) = v["cards"].as_array_mut() {
                a.push(c);
            }
        }),
        "P",
        "/cards/1/uuid",
    );
}

#[test]
fn suggestions_and_selection_behavior() {
    expect(
        &broken(|v| remove(card(v), "selectionBehavior")),
        "cds-resp-6",
        "/cards/0",
    );
    expect(
        &broken(|v| card(v)["selectionBehavior"] = json!("all")),
        "F.21",
        "/cards/0/selectionBehavior",
    );
    expect(
        &broken(|v| {
            card(v)["selectionBehavior"] = json!("at-most-one");
            card(v)["suggestions"][1]["isRecommended"] = json!(true);
        }),
        "cds-resp-1",
        "/cards/0",
    );
    assert_eq!(
        broken(|v| card(v)["suggestions"][1]["isRecommended"] = json!(true)),
        vec![],
        "two recommended with `any`"
    );
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][0], "label")),
        "F.23",
        "/cards/0/suggestions/0",
    );
    expect(
        &broken(|v| card(v)["suggestions"][0]["isRecommended"] = json!("yes")),
        "F.23",
        "/cards/0/suggestions/0/isRecommended",
    );
    expect(
        &broken(|v| card(v)["suggestions"] = json!({"label": "x"})),
        "F.21",
        "/cards/0/suggestions",
    );
    expect(
        &broken(|v| card(v)["suggestions"][0]["actionSelectionBehavior"] = json!("all")),
        "F.23",
        "/cards/0/suggestions/0/actionSelectionBehavior",
    );
}

#[test]
fn actions() {
    let a0 = "/cards/0/suggestions/0/actions/0";
    let a1 = "/cards/0/suggestions/1/actions/0";
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][0]["actions"][0], "description")),
        "cds-resp-5",
        a0,
    );
    expect(
        &broken(|v| remove(&mut v["systemActions"][0], "description")),
        "cds-resp-5",
        "/systemActions/0",
    );
    expect(
        &broken(|v| card(v)["suggestions"][0]["actions"][0]["type"] = json!("patch")),
        "F.24",
        &format!("{a0}/type"),
    );
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][0]["actions"][0], "type")),
        "F.24",
        a0,
    );
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][0]["actions"][0], "resource")),
        "F.24",
        a0,
    );
    expect(
        &broken(|v| {
            card(v)["suggestions"][0]["actions"][0]["resource"] = json!({"status": "draft"})
        }),
        "F.24",
        a0,
    );
    expect(
        &broken(|v| remove(&mut v["systemActions"][0]["resource"], "id")),
        "F.24",
        "/systemActions/0/resource",
    );
    expect(
        &broken(|v| {
            card(v)["suggestions"][1]["actions"][0]["resource"] =
                json!({"resourceType": "ServiceRequest", "id": "s1"})
        }),
        "cds-resp-2",
        a1,
    );
    expect(
        &broken(|v| remove(&mut card(v)["suggestions"][1]["actions"][0], "resourceId")),
        "cds-resp-2",
        a1,
    );
    expect(
        &broken(|v| card(v)["suggestions"][1]["actions"][0]["resourceId"] = json!("s1")),
        "F.24",
        &format!("{a1}/resourceId"),
    );
}

#[test]
fn links() {
    expect(
        &broken(|v| card(v)["links"][0]["appContext"] = json!("x")),
        "cds-resp-3",
        "/cards/0/links/0/appContext",
    );
    expect(
        &broken(|v| card(v)["links"][0]["type"] = json!("relative")),
        "F.25",
        "/cards/0/links/0/type",
    );
    expect(
        &broken(|v| remove(&mut card(v)["links"][0], "type")),
        "F.25",
        "/cards/0/links/0",
    );
    expect(
        &broken(|v| card(v)["links"][0]["url"] = json!("dashboard/evaluations/1")),
        "F.25",
        "/cards/0/links/0/url",
    );
    expect(
        &broken(|v| remove(&mut card(v)["links"][1], "label")),
        "F.25",
        "/cards/0/links/1",
    );
}

#[test]
fn override_reasons_need_a_display() {
    expect(
        &broken(|v| remove(&mut card(v)["overrideReasons"][0], "display")),
        "cds-resp-4",
        "/cards/0/overrideReasons/0",
    );
    expect(
        &broken(|v| remove(&mut card(v)["overrideReasons"][0], "system")),
        "F.26",
        "/cards/0/overrideReasons/0",
    );
}

#[test]
fn violations_print_path_rule_and_message() {
    let v = broken(|v| card(v)["indicator"] = json!("urgent"));
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(
        v[0].to_string(),
        "/cards/0/indicator [F.21]: indicator `urgent` is not info, warning or critical"
    );
}
