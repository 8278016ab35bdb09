//! Cards of rule set 0.1.0 (the legacy texts) for the worked examples (`clinical/examples.json`),
//! for variations of them (hard stop, optimisation gap, missing FiO2), for the order hooks, and
//! for MIMIC-IV CDS Hooks requests through prefetch resolution. Every response passes the
//! validator. The cards of 0.2.0 (§9 D12) are tested in `cards_0_2_0.rs`.

mod support;

use chrono::{DateTime, Utc};
use lrt_engine::casefile::{Case, CaseFile};
use lrt_engine::testing::shared_dir;
use lrt_engine::{Assessment, PatientSnapshot};
use lrt_hooks::cards::{self, CardInput};
use lrt_hooks::model::{HookRequest, Indicator, Response};
use lrt_hooks::prefetch::{KeySource, resolve};
use lrt_hooks::services;
use lrt_hooks::validate::validate_response;
use serde_json::{Value, json};
use support::{FhirServer, HOOK_INSTANCE, Route};
use url::Url;
use uuid::Uuid;

fn examples() -> Vec<Case> {
    CaseFile::read(&shared_dir().join("clinical/examples.json"))
        .expect("examples.json")
        .cases
}

fn case(id: &str) -> Case {
    examples()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("case {id}"))
}

fn dashboard() -> Url {
    Url::parse("https://lrt.example.org/").expect("a url")
}

/// The response of `service` for `snapshot` at `now`, as JSON, checked by the validator.
fn respond(
    service: &str,
    body: &Value,
    snapshot: &PatientSnapshot,
    now: DateTime<Utc>,
) -> (Assessment, Response, Value) {
    let service = services::find(service).expect("a service");
    let request: HookRequest = support::request(body);
    request.validate(service).expect("a valid request");
    let assessment = lrt_engine::evaluate(support::rules_0_1_0(), snapshot, now);
    let codes = support::codes();
    let text = support::card_text(support::rules_0_1_0());
    let dashboard = dashboard();
    let evaluation_id =
        cards::evaluation_id(request.hook_instance_uuid().expect("a uuid"), service.id);
    let input = CardInput {
        service,
        request: &request,
        rules: support::rules_0_1_0(),
        text: &text,
        snapshot: Some(snapshot),
        evaluation_id,
        dashboard: &dashboard,
        order_codes: &codes,
    };
    let response = cards::respond(&input, &assessment);
    let json = serde_json::to_value(&response).expect("serialisable");
    let violations = validate_response(&json);
    assert!(violations.is_empty(), "{violations:#?}\n{json:#}");
    for c in json["cards"].as_array().expect("cards") {
        let text = format!("{}{}", c["summary"], c["detail"]);
        for placeholder in [
            "{reasons}",
            "{order}",
            "{pf}",
            "{category}",
            "{urgency}",
            "{version}",
            "{recs}",
            "{rv}",
        ] {
            // (unless the request itself carries that text, as an order name)
            assert!(
                !text.contains(placeholder) || body.to_string().contains(placeholder),
                "unfilled {placeholder}: {text}"
            );
        }
    }
    assert!(json.get("systemActions").is_none());
    (assessment, response, json)
}

fn patient_view(
    snapshot: &PatientSnapshot,
    now: DateTime<Utc>,
    patient: &str,
) -> (Assessment, Value) {
    let (a, _, json) = respond(
        "lrt-patient-view",
        &support::patient_view(patient, json!({})),
        snapshot,
        now,
    );
    (a, json)
}

#[test]
fn worked_examples_give_one_valid_summary_card_each() {
    let expected = [
        ("V01", "not_indicated", "info"),
        ("V03", "eligible", "critical"),
        ("V06", "eligible", "critical"),
        ("V12a", "borderline", "warning"),
        ("V24", "borderline", "warning"),
        ("V27", "borderline", "warning"),
        ("V28", "not_indicated", "warning"),
    ];
    let cases = examples();
    assert_eq!(cases.len(), expected.len());
    for (id, category, indicator) in expected {
        let c = cases.iter().find(|c| c.id == id).expect("the case");
        let (a, json) = patient_view(&c.snapshot, c.now, id);
        assert_eq!(a.ecmo_category.as_deref(), Some(category), "{id}");
        let cards = json["cards"].as_array().expect("cards");
        assert_eq!(cards.len(), 1, "{id}");
        let card = &cards[0];
        assert_eq!(card["indicator"], indicator, "{id}: {}", card["summary"]);
        assert_eq!(card["source"]["label"], "Lung Rescue Team rules 0.1.0");
        assert_eq!(card["source"]["topic"]["code"], "lrt-triage");
        assert_eq!(card["selectionBehavior"], "at-most-one");
        let s = &card["suggestions"][0];
        assert_eq!(s["label"], "Request LRT consult");
        let sr = &s["actions"][0]["resource"];
        assert_eq!(s["actions"][0]["type"], "create");
        assert_eq!(sr["resourceType"], "ServiceRequest");
        assert_eq!(sr["status"], "draft");
        assert_eq!(sr["intent"], "proposal");
        assert_eq!(sr["subject"]["reference"], format!("Patient/{id}"));
        assert_eq!(
            sr["code"]["coding"][0],
            json!({"system": "http://snomed.info/sct", "code": "54395008", "display": "Patient referral for medical consultation"})
        );
        assert_eq!(
            s["isRecommended"].as_bool(),
            (indicator != "info").then_some(true),
            "{id}"
        );
        let reasons = card["overrideReasons"]
            .as_array()
            .expect("override reasons");
        assert!(reasons.len() >= 3 && reasons.iter().all(|r| r["display"].is_string()));
        let eid = card["extension"]["org.lrt-cds"]["evaluationId"]
            .as_str()
            .expect("evaluation id");
        assert_eq!(card["extension"]["org.lrt-cds"]["rulesetVersion"], "0.1.0");
        assert_eq!(
            card["extension"]["org.lrt-cds"]["rulesetSha256"],
            support::rules_0_1_0().sha256.as_str()
        );
        assert_eq!(
            card["links"][0]["url"],
            format!("https://lrt.example.org/dashboard/evaluations/{eid}")
        );
        assert_eq!(card["links"][0]["type"], "absolute");
        let detail = card["detail"].as_str().expect("detail");
        for part in [
            "**Values used**",
            "| P/F |",
            "| FiO2 |",
            "| PEEP |",
            "| PaCO2 |",
            "| pH |",
            "Berlin category",
            "Murray score",
            "RESP score",
            "EOLIA: C1",
            "Mechanisms",
            "**Recommendations**",
            "**Data quality**",
            "draft",
        ] {
            assert!(detail.contains(part), "{id}: {part} missing in\n{detail}");
        }
        for r in &a.recommendation_details {
            assert!(detail.contains(&*r.display), "{id}: {}", r.display);
        }
    }
}

#[test]
fn summaries_name_the_category_and_its_reasons() {
    let expected = [
        ("V01", "LRT: no ECMO indication now (P/F 180)"),
        (
            "V06",
            "LRT: meets ECMO criteria (EOLIA C3); contact the ECMO centre now",
        ),
        (
            "V12a",
            "LRT: borderline for ECMO (P/F < 80 at FiO2 ≥ 0.8 not yet 6 h; Murray ≥ 3); discuss with the ECMO centre this shift",
        ),
        ("V28", "LRT: no ECMO indication now (P/F 133.33)"),
    ];
    for (id, summary) in expected {
        let c = case(id);
        let (_, json) = patient_view(&c.snapshot, c.now, id);
        assert_eq!(json["cards"][0]["summary"], summary, "{id}");
    }
}

#[test]
fn the_eligible_card_shows_values_times_and_criteria() {
    let c = case("V03");
    let (a, json) = patient_view(&c.snapshot, c.now, "V03");
    let card = &json["cards"][0];
    let summary = card["summary"].as_str().expect("summary");
    assert_eq!(
        summary,
        "LRT: meets ECMO criteria (EOLIA C2); contact the ECMO centre now"
    );
    let detail = card["detail"].as_str().expect("detail");
    assert!(
        detail.contains("| P/F | 58 mmHg | 2025-03-01 11:00 |"),
        "{detail}"
    );
    assert!(detail.contains("| PEEP | 16 cmH2O |"), "{detail}");
    assert!(
        detail.contains("| FiO2 | 1 | 2025-03-01 11:00 |"),
        "{detail}"
    );
    assert!(
        detail.contains("| PaCO2 | 55 mmHg |") && detail.contains("| pH | 7.31 |"),
        "{detail}"
    );
    assert!(detail.contains("EOLIA criterion 2"), "{detail}");
    assert!(detail.contains("C2 met (6.5 h)"), "{detail}");
    assert!(detail.contains("Berlin category: severe"), "{detail}");
    assert!(
        detail.contains("class I, predicted survival 92 %"),
        "{detail}"
    );
    assert!(detail.contains("Shunt likely"), "{detail}");
    assert!(
        detail.contains("1. **Discuss with the ECMO centre** (emergent)"),
        "{detail}"
    );
    assert_eq!(a.ecmo_urgency.map(|u| u.name()), Some("emergent"));
    let sr = &card["suggestions"][0]["actions"][0]["resource"];
    assert_eq!(sr["priority"], "stat");
    assert_eq!(sr["reasonCode"][0]["text"], "ECMO category: eligible");
}

#[test]
fn uuids_are_deterministic_per_hook_instance() {
    let c = case("V27");
    let body = support::patient_view("V27", json!({}));
    let (_, _, first) = respond("lrt-patient-view", &body, &c.snapshot, c.now);
    let (_, _, again) = respond("lrt-patient-view", &body, &c.snapshot, c.now);
    assert_eq!(first["cards"][0]["uuid"], again["cards"][0]["uuid"]);
    assert_eq!(
        first["cards"][0]["suggestions"][0]["uuid"],
        again["cards"][0]["suggestions"][0]["uuid"]
    );
    let mut other = body.clone();
    other["hookInstance"] = json!("2f8b7a3e-1c0d-4e5f-9a6b-7c8d9e0f1a2b");
    let (_, _, third) = respond("lrt-patient-view", &other, &c.snapshot, c.now);
    assert_ne!(first["cards"][0]["uuid"], third["cards"][0]["uuid"]);
    let hook = Uuid::parse_str(HOOK_INSTANCE).expect("a uuid");
    let eid = cards::evaluation_id(hook, "lrt-patient-view");
    assert_eq!(eid.get_version_num(), 5);
    assert_eq!(
        first["cards"][0]["uuid"],
        cards::card_uuid(eid, 0).to_string()
    );
    assert_eq!(
        first["cards"][0]["suggestions"][0]["uuid"],
        cards::suggestion_uuid(eid, 0, 0).to_string()
    );
    assert_ne!(
        eid,
        cards::evaluation_id(hook, "lrt-order-sign"),
        "ids differ per service"
    );
    assert_ne!(cards::card_uuid(eid, 0), cards::card_uuid(eid, 1));
}

#[test]
fn insufficient_data_names_what_is_missing() {
    let c = case("V03");
    let mut s = c.snapshot.clone();
    s.observations.retain(|o| o.code != "3150-0");
    let (a, json) = patient_view(&s, c.now, "V03");
    assert_eq!(a.ecmo_category.as_deref(), Some("insufficient_data"));
    let card = &json["cards"][0];
    // The category is info; an urgent recommendation raises the card to warning.
    assert_eq!(card["indicator"], "warning");
    assert_eq!(
        card["summary"],
        "LRT: cannot assess ECMO eligibility, missing an FiO2 paired with the PaO2"
    );
    let detail = card["detail"].as_str().expect("detail");
    assert!(detail.contains("| FiO2 | not available | — |"), "{detail}");
    // Data quality in words (the sentence of `missing_or_unpaired:fio2`).
    assert!(
        detail.contains("- FiO2: none charted within the pairing window before the PaO2"),
        "{detail}"
    );
    assert!(detail.contains("Obtain an arterial blood gas"), "{detail}");
}

fn with_hard_stop(c: &Case) -> PatientSnapshot {
    let mut s = c.snapshot.clone();
    s.context.hard_stops = vec!["refusal_or_limitation_of_care".into()];
    s
}

#[test]
fn a_hard_stop_makes_the_patient_view_card_say_ineligible() {
    let c = case("V03");
    let (a, json) = patient_view(&with_hard_stop(&c), c.now, "V03");
    assert_eq!(a.ecmo_category.as_deref(), Some("ineligible"));
    let card = &json["cards"][0];
    assert_eq!(
        card["indicator"], "warning",
        "urgent rescue recommendations remain"
    );
    let summary = card["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with("LRT: ECMO contraindicated (Documented refusal of ECMO"),
        "{summary}"
    );
    assert!(summary.chars().count() < 140);
}

/// An order-select or order-sign body with these draft orders (all selected for order-select).
fn order_body(hook: &str, patient: &str, orders: Vec<Value>, selected: Option<Vec<&str>>) -> Value {
    let mut context = json!({
        "userId": "Practitioner/u1",
        "patientId": patient,
        "encounterId": "e1",
        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                        "entry": orders.iter().map(|o| json!({"resource": o})).collect::<Vec<_>>()},
    });
    if hook == "order-select" {
        let all: Vec<String> = orders
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["resourceType"].as_str().unwrap_or(""),
                    o["id"].as_str().unwrap_or("")
                )
            })
            .collect();
        context["selections"] = json!(
            selected
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .unwrap_or(all)
        );
    }
    json!({"hook": hook, "hookInstance": HOOK_INSTANCE, "context": context})
}

fn ecmo_order(id: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "order",
           "code": {"coding": [{"system": "http://snomed.info/sct", "code": "233573008", "display": "Extracorporeal membrane oxygenation"}], "text": "VV-ECMO"},
           "subject": {"reference": "Patient/V03"}})
}

fn ino_order(id: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
           "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "R07AX01", "display": "Nitric oxide"}]},
           "subject": {"reference": "Patient/V03"}})
}

fn epoprostenol_order(id: &str, route: Option<&str>) -> Value {
    let mut o = json!({"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
           "contained": [{"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "B01AC09"}], "text": "Epoprostenol"}}],
           "medicationReference": {"reference": "#med"},
           "subject": {"reference": "Patient/V03"}});
    if let Some(r) = route {
        // As in the spec's order-select example: dosageInstruction given as an object.
        o["dosageInstruction"] =
            json!({"route": {"coding": [{"system": "http://snomed.info/sct", "code": r}]}});
    }
    o
}

fn peep_order(id: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "id": id, "status": "draft", "intent": "order",
           "code": {"coding": [{"system": "urn:lrt:local", "code": "peep-increase"}], "text": "Increase PEEP to 18"},
           "subject": {"reference": "Patient/V03"}})
}

fn summaries(json: &Value) -> Vec<String> {
    json["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| c["summary"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn inhaled_vasodilators_need_documented_rv_dysfunction() {
    let c = case("V03"); // rv_dysfunction unknown (no echo)
    let orders = vec![
        ino_order("m1"),
        epoprostenol_order("m2", None),
        epoprostenol_order("m3", Some("447694001")),
        peep_order("s1"),
    ];
    let (a, _, json) = respond(
        "lrt-order-sign",
        &order_body("order-sign", "V03", orders, None),
        &c.snapshot,
        c.now,
    );
    assert_eq!(a.rv_dysfunction, None);
    assert_eq!(
        summaries(&json),
        [
            "Inhaled vasodilator (Nitric oxide) ordered without documented RV dysfunction",
            "Inhaled vasodilator (Epoprostenol) ordered without documented RV dysfunction",
        ],
        "intravenous epoprostenol and a PEEP increase without RV failure give no card"
    );
    let card = &json["cards"][0];
    assert_eq!(card["indicator"], "warning");
    assert_eq!(card["selectionBehavior"], "any");
    assert_eq!(card["source"]["topic"]["code"], "inhaled-vasodilator-order");
    assert_eq!(
        card["extension"]["org.lrt-cds"]["draftOrder"],
        "MedicationRequest/m1"
    );
    assert!(
        card["detail"]
            .as_str()
            .is_some_and(|d| d.contains("**Nitric oxide**") && d.contains("not assessed"))
    );
    let remove = &card["suggestions"][1]["actions"][0];
    assert_eq!(remove["type"], "delete");
    assert_eq!(remove["resourceId"], "MedicationRequest/m1");
    assert!(remove.get("resource").is_none());
    assert_eq!(
        json["cards"][1]["extension"]["org.lrt-cds"]["draftOrder"],
        "MedicationRequest/m3"
    );
    let consult = &card["suggestions"][0]["actions"][0]["resource"];
    assert_eq!(consult["encounter"]["reference"], "Encounter/e1");

    // With documented RV dysfunction (V27): no vasodilator card, but the PEEP increase gets one.
    let c = case("V27");
    let orders = vec![ino_order("m1"), peep_order("s1")];
    let (a, _, json) = respond(
        "lrt-order-sign",
        &order_body("order-sign", "V27", orders, None),
        &c.snapshot,
        c.now,
    );
    assert_eq!(a.rv_dysfunction, Some(true));
    assert_eq!(
        summaries(&json),
        ["PEEP increase (Increase PEEP to 18) with documented right-ventricular failure"]
    );
    assert_eq!(
        json["cards"][0]["suggestions"][1]["actions"][0]["resourceId"],
        "ServiceRequest/s1"
    );
}

#[test]
fn order_select_speaks_only_to_the_selected_orders() {
    let c = case("V03");
    let orders = vec![ino_order("m1"), epoprostenol_order("m3", Some("447694001"))];
    let body = order_body(
        "order-select",
        "V03",
        orders,
        Some(vec!["MedicationRequest/m3"]),
    );
    let (_, _, json) = respond("lrt-order-select", &body, &c.snapshot, c.now);
    assert_eq!(
        summaries(&json),
        ["Inhaled vasodilator (Epoprostenol) ordered without documented RV dysfunction"]
    );
    // Nothing relevant selected: no card at all.
    let body = order_body(
        "order-select",
        "V03",
        vec![
            ino_order("m1"),
            json!({"resourceType": "ServiceRequest", "id": "x", "status": "draft", "intent": "order", "code": {"text": "Chest X-ray"}}),
        ],
        Some(vec!["ServiceRequest/x"]),
    );
    let (_, _, json) = respond("lrt-order-select", &body, &c.snapshot, c.now);
    assert_eq!(json, json!({"cards": []}));
}

#[test]
fn ecmo_orders_against_hard_stops_and_unaddressed_physiology() {
    let c = case("V03");
    // Eligible, nothing to address: no card.
    let body = order_body("order-sign", "V03", vec![ecmo_order("s9")], None);
    let (_, _, json) = respond("lrt-order-sign", &body, &c.snapshot, c.now);
    assert_eq!(json["cards"], json!([]));

    // A hard stop: critical.
    let (a, _, json) = respond("lrt-order-sign", &body, &with_hard_stop(&c), c.now);
    assert_eq!(a.ecmo_category.as_deref(), Some("ineligible"));
    let card = &json["cards"][0];
    assert_eq!(card["indicator"], "critical");
    let summary = card["summary"].as_str().expect("summary");
    assert!(summary.starts_with("ECMO order (VV-ECMO): ECMO is contraindicated by a documented hard stop (Documented refusal"), "{summary}");
    assert!(summary.chars().count() < 140);
    // §9 D12: an ECMO order card never offers to delete the order, even under the legacy texts.
    assert_eq!(card["suggestions"].as_array().map(Vec::len), Some(1));
    assert_eq!(card["source"]["topic"]["code"], "ecmo-order");

    // No prone trial although prone is not contraindicated: borderline with a gap → warning.
    let mut s = c.snapshot.clone();
    s.context.prone_trial_done = Some(false);
    let (a, _, json) = respond("lrt-order-sign", &body, &s, c.now);
    assert_eq!(a.ecmo_category.as_deref(), Some("borderline"));
    assert!(
        a.ecmo_reasons.iter().any(|r| &**r == "gap:no_prone_trial"),
        "{:?}",
        a.ecmo_reasons
    );
    assert_eq!(
        summaries(&json),
        ["ECMO order (VV-ECMO) before reversible causes are addressed: no prone trial"]
    );
    assert_eq!(json["cards"][0]["indicator"], "warning");
    let detail = json["cards"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Optimisation gap: no prone trial"),
        "{detail}"
    );
    assert!(detail.contains("**ECMO category: borderline**"), "{detail}");

    // An ECMO order that also matches nothing else yields exactly one card per finding.
    let body = order_body(
        "order-sign",
        "V03",
        vec![ecmo_order("s9"), ino_order("m1")],
        None,
    );
    let (_, _, json) = respond("lrt-order-sign", &body, &s, c.now);
    assert_eq!(json["cards"].as_array().map(Vec::len), Some(2));
    let uuids: Vec<&str> = json["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .filter_map(|c| c["uuid"].as_str())
        .collect();
    assert_ne!(uuids[0], uuids[1]);
}

#[test]
fn order_text_from_the_ehr_cannot_break_markdown_or_the_summary_limit() {
    let c = case("V03");
    let mut o = ino_order("m1");
    o["medicationCodeableConcept"]["text"] =
        json!(format!("**iNO** | {} {{reasons}}", "x".repeat(300)));
    let (_, _, json) = respond(
        "lrt-order-sign",
        &order_body("order-sign", "V03", vec![o], None),
        &c.snapshot,
        c.now,
    );
    let card = &json["cards"][0];
    assert!(
        card["summary"]
            .as_str()
            .is_some_and(|s| s.chars().count() < 140 && s.contains('…'))
    );
    let detail = card["detail"].as_str().expect("detail");
    assert!(detail.contains("\\*\\*iNO\\*\\* \\| "), "{detail}");
    assert!(
        detail.contains("{reasons}"),
        "a value is never filled as a template: {detail}"
    );
}

fn mimic_request(name: &str) -> Value {
    let path = shared_dir()
        .join("data/cds-hooks-requests/mimic-lrt")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the request file")).expect("JSON")
}

/// Patients whose newest PaO2 has an FiO2 within 60 min (10037975: P/F 61; 10023117: 150.9;
/// 10019777: 158.3; 10013049: 247.5) and patients whose newest PaO2 has none (insufficient data).
const MIMIC: [&str; 7] = [
    "mimic-10037975.json",
    "mimic-10023117.json",
    "mimic-10019777.json",
    "mimic-10013049.json",
    "mimic-10002428.json",
    "mimic-10039708.json",
    "mimic-10039831.json",
];

/// Resolves a request's prefetch (nothing allow-listed: its fhirServer 127.0.0.1:8080 is never
/// contacted), evaluates at the newest PaO2 (else the newest observation), and answers
/// patient-view.
async fn mimic_card(
    body: &Value,
    config: &lrt_hooks::prefetch::PrefetchConfig,
) -> (lrt_hooks::prefetch::Resolved, Assessment, Value) {
    let request = support::request(body);
    let service = services::find("lrt-patient-view").expect("service");
    request.validate(service).expect("valid");
    let patient = request.patient_id().expect("patientId").to_string();
    let far: DateTime<Utc> = "2999-01-01T00:00:00Z".parse().expect("a time");
    let resolved = resolve(&request, &support::plan(), config, None)
        .await
        .expect("Patient and Observation are prefetched");
    let newest_pao2 = resolved
        .snapshot(support::rules_0_1_0(), &patient, far)
        .observations
        .iter()
        .filter(|o| o.code == "2703-7")
        .map(|o| o.effective)
        .max();
    let now = newest_pao2
        .or(resolved.collected.newest_observation(&patient))
        .unwrap_or(far);
    let snapshot = resolved.snapshot(support::rules_0_1_0(), &patient, now);
    let (a, _, json) = respond("lrt-patient-view", body, &snapshot, now);
    (resolved, a, json)
}

#[tokio::test]
async fn mimic_requests_give_valid_cards_from_their_prefetch() {
    let mut categories = Vec::new();
    for name in MIMIC {
        let body = mimic_request(name);
        assert_eq!(body["fhirServer"], "http://127.0.0.1:8080");
        let (resolved, a, json) = mimic_card(&body, &support::fast_config()).await;
        assert_eq!(
            resolved.sources["Patient"],
            KeySource::Prefetch { resources: 1 },
            "{name}"
        );
        assert!(
            matches!(resolved.sources["Observation"], KeySource::Prefetch { .. }),
            "{name}"
        );
        for key in [
            "Condition",
            "Procedure",
            "MedicationAdministration",
            "MedicationRequest",
            "Flag",
        ] {
            assert!(
                matches!(&resolved.sources[key], KeySource::Unavailable { reason } if reason.contains("allow list")),
                "{name} {key}: {:?}",
                resolved.sources[key]
            );
        }
        assert!(
            a.data_quality
                .iter()
                .any(|d| d.starts_with("fetch_failed:Flag")),
            "{name}: {:?}",
            a.data_quality
        );
        let card = &json["cards"][0];
        let expected = match a.ecmo_category.as_deref() {
            Some("eligible") => Indicator::Critical,
            Some("borderline") => Indicator::Warning,
            _ if a.ecmo_category.as_deref() != Some("insufficient_data")
                && a.recommendation_details
                    .iter()
                    .any(|r| r.urgency >= lrt_engine::ruleset::Urgency::Urgent) =>
            {
                Indicator::Warning
            }
            _ => Indicator::Info,
        };
        assert_eq!(
            card["indicator"],
            expected.name(),
            "{name}: {}",
            card["summary"]
        );
        let patient = body["context"]["patientId"].as_str().expect("patientId");
        assert_eq!(
            card["suggestions"][0]["actions"][0]["resource"]["subject"]["reference"],
            format!("Patient/{patient}")
        );
        categories.push(a.ecmo_category.clone().unwrap_or_default());
    }
    eprintln!("MIMIC categories: {categories:?}");
    assert_eq!(
        categories
            .iter()
            .filter(|c| &***c != "insufficient_data")
            .count(),
        4,
        "{categories:?}"
    );
    assert!(
        categories.iter().any(|c| &**c == "insufficient_data"),
        "{categories:?}"
    );
}

#[tokio::test]
async fn a_mimic_request_without_prefetch_is_fetched_from_a_local_server() {
    let body = mimic_request("mimic-10039708.json");
    let (_, from_prefetch, _) = mimic_card(&body, &support::fast_config()).await;
    // Serve the request's own prefetch from a local FHIR server and send the request without it.
    let server = FhirServer::start(vec![
        Route::ok(
            "/fhir/Patient/mimic-10039708",
            body["prefetch"]["Patient"].clone(),
        ),
        Route::ok("/fhir/Observation", body["prefetch"]["Observation"].clone())
            .when_query("2703-7"),
        Route::ok("/fhir/Observation", support::searchset(vec![], None)),
        Route::ok("/fhir/Condition", support::searchset(vec![], None)),
        Route::ok("/fhir/Procedure", support::searchset(vec![], None)),
        Route::ok(
            "/fhir/MedicationAdministration",
            support::searchset(vec![], None),
        ),
        Route::ok("/fhir/MedicationRequest", support::searchset(vec![], None)),
        Route::ok("/fhir/Flag", support::searchset(vec![], None)),
    ])
    .await;
    let mut bare = support::with_server(body.clone(), &server.base());
    bare["prefetch"] = json!({});
    let (resolved, fetched, json) = mimic_card(&bare, &server.config()).await;
    assert!(
        resolved
            .sources
            .values()
            .all(|s| matches!(s, KeySource::Fetched { .. })),
        "{:?}",
        resolved.sources
    );
    assert_eq!(fetched.pf_ratio, from_prefetch.pf_ratio);
    assert_eq!(fetched.pao2_mmhg, from_prefetch.pao2_mmhg);
    assert_eq!(fetched.ecmo_category, from_prefetch.ecmo_category);
    assert!(
        json["cards"][0]["detail"]
            .as_str()
            .is_some_and(|d| !d.contains("fetch_failed"))
    );
}
