//! Request reading and validation: every 400 case, with messages that name fields and never
//! echo values or tokens; the token is never printable; feedback validation.

mod support;

use lrt_hooks::model::{FeedbackError, FeedbackRequest, HookRequest, RequestError};
use lrt_hooks::services::{self, Service};
use serde_json::{Value, json};
use support::{HOOK_INSTANCE, TOKEN, patient, with_server};

fn svc(id: &str) -> &'static Service {
    services::find(id).expect("a known service")
}

fn order_select() -> Value {
    json!({
        "hook": "order-select",
        "hookInstance": HOOK_INSTANCE,
        "context": {
            "userId": "PractitionerRole/r1",
            "patientId": "p1",
            "selections": ["MedicationRequest/m1"],
            "draftOrders": {"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order",
                              "subject": {"reference": "Patient/p1"}}},
                {"resource": {"resourceType": "ServiceRequest", "id": "s1", "status": "draft", "intent": "order"}}
            ]}
        }
    })
}

fn order_sign() -> Value {
    let mut b = order_select();
    b["hook"] = json!("order-sign");
    b["context"].as_object_mut().map(|c| c.remove("selections"));
    b
}

fn err(body: &Value, service: &str) -> RequestError {
    let r = HookRequest::from_slice(body.to_string().as_bytes()).expect("readable");
    r.validate(svc(service)).expect_err("must be refused")
}

fn ok(body: &Value, service: &str) {
    let r = HookRequest::from_slice(body.to_string().as_bytes()).expect("readable");
    r.validate(svc(service))
        .unwrap_or_else(|e| panic!("{service}: {e}"));
}

#[test]
fn valid_requests_of_each_hook_pass() {
    ok(
        &support::patient_view("p1", json!({"Patient": patient("p1")})),
        "lrt-patient-view",
    );
    ok(
        &with_server(
            support::patient_view("p1", json!({})),
            "https://ehr.example.org/fhir",
        ),
        "lrt-patient-view",
    );
    ok(&order_select(), "lrt-order-select");
    ok(&order_sign(), "lrt-order-sign");
    // Unknown members and extensions are ignored (checklist A.3).
    let mut b = support::patient_view("p1", json!({}));
    b["extension"] = json!({"com.example": {"x": 1}});
    b["somethingNew"] = json!(true);
    b["context"]["extension"] = json!({"com.example": 1});
    ok(&b, "lrt-patient-view");
    // A patient-view userId may be a Patient or RelatedPerson.
    let mut b = support::patient_view("p1", json!({}));
    b["context"]["userId"] = json!("RelatedPerson/x");
    ok(&b, "lrt-patient-view");
    // order-select as in the spec's example: draftOrders without Bundle.type.
    let mut b = order_select();
    b["context"]["draftOrders"]["type"] = Value::Null;
    b["context"]["draftOrders"]
        .as_object_mut()
        .map(|d| d.remove("type"));
    ok(&b, "lrt-order-select");
}

#[test]
fn hook_must_match_the_service() {
    let b = support::patient_view("p1", json!({}));
    assert_eq!(
        err(&b, "lrt-order-sign"),
        RequestError::HookMismatch {
            service: "lrt-order-sign".into(),
            expected: "order-sign".into(),
            hook: "patient-view".into()
        }
    );
    let mut b = support::patient_view("p1", json!({}));
    b.as_object_mut().map(|o| o.remove("hook"));
    assert_eq!(err(&b, "lrt-patient-view"), RequestError::MissingHook);
    assert!(
        services::find("no-such-service").is_none(),
        "an unknown id is the server's 404"
    );
}

#[test]
fn hook_instance_must_be_a_uuid() {
    let mut b = support::patient_view("p1", json!({}));
    b.as_object_mut().map(|o| o.remove("hookInstance"));
    assert_eq!(
        err(&b, "lrt-patient-view"),
        RequestError::MissingHookInstance
    );
    b["hookInstance"] = json!("not-a-uuid");
    assert_eq!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidHookInstance
    );
    b["hookInstance"] = json!(12);
    let e =
        HookRequest::from_slice(b.to_string().as_bytes()).expect_err("a number is not a string");
    assert!(
        matches!(&e, RequestError::Malformed { path, .. } if path == "hookInstance"),
        "{e:?}"
    );
}

#[test]
fn fhir_authorization_needs_fhir_server() {
    let mut b = with_server(
        support::patient_view("p1", json!({})),
        "https://ehr.example.org/fhir",
    );
    b.as_object_mut().map(|o| o.remove("fhirServer"));
    let e = err(&b, "lrt-patient-view");
    assert_eq!(e, RequestError::AuthorizationWithoutFhirServer);
    assert!(e.to_string().contains("cds-r-1"));
    let mut b = with_server(
        support::patient_view("p1", json!({})),
        "https://ehr.example.org/fhir",
    );
    b["fhirAuthorization"]["token_type"] = json!("MAC");
    assert!(matches!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidAuthorization {
            field: "token_type",
            ..
        }
    ));
    b["fhirAuthorization"]["token_type"] = json!("Bearer");
    b["fhirAuthorization"]["access_token"] = json!("  ");
    assert!(matches!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidAuthorization {
            field: "access_token",
            ..
        }
    ));
    // CDS Hooks 2.0: token_type, expires_in, scope and subject are REQUIRED (issue 8).
    for member in ["token_type", "expires_in", "scope", "subject"] {
        let mut b = with_server(
            support::patient_view("p1", json!({})),
            "https://ehr.example.org/fhir",
        );
        b["fhirAuthorization"]
            .as_object_mut()
            .unwrap()
            .remove(member);
        match err(&b, "lrt-patient-view") {
            RequestError::InvalidAuthorization { field, problem } => {
                assert_eq!(field, member);
                assert!(problem.contains("required"), "{problem}");
            }
            other => panic!("{member}: {other:?}"),
        }
    }
    for bad in [
        "ftp://ehr.example.org/fhir",
        "https://user:pw@ehr.example.org/fhir",
        "https://ehr.example.org/fhir?x=1",
    ] {
        let b = with_server(support::patient_view("p1", json!({})), bad);
        assert_eq!(
            err(&b, "lrt-patient-view"),
            RequestError::InvalidFhirServer,
            "{bad}"
        );
    }
    let b = with_server(support::patient_view("p1", json!({})), "not a url");
    let e = HookRequest::from_slice(b.to_string().as_bytes()).expect_err("not a URL");
    assert!(
        matches!(&e, RequestError::Malformed { path, .. } if path == "fhirServer"),
        "{e:?}"
    );
}

#[test]
fn required_context_fields_per_hook() {
    let mut b = support::patient_view("p1", json!({}));
    b.as_object_mut().map(|o| o.remove("context"));
    assert_eq!(err(&b, "lrt-patient-view"), RequestError::MissingContext);

    for field in ["userId", "patientId"] {
        let mut b = support::patient_view("p1", json!({}));
        b["context"].as_object_mut().map(|c| c.remove(field));
        assert!(
            matches!(err(&b, "lrt-patient-view"), RequestError::MissingContextField { hook: "patient-view", field: f } if f == field),
            "{field}"
        );
        let mut b = order_sign();
        b["context"][field] = Value::Null;
        assert!(matches!(
            err(&b, "lrt-order-sign"),
            RequestError::MissingContextField {
                hook: "order-sign",
                ..
            }
        ));
    }
    for field in ["userId", "patientId", "selections", "draftOrders"] {
        let mut b = order_select();
        b["context"].as_object_mut().map(|c| c.remove(field));
        assert!(
            matches!(err(&b, "lrt-order-select"), RequestError::MissingContextField { hook: "order-select", field: f } if f == field),
            "order-select {field}"
        );
    }
    let mut b = order_sign();
    b["context"]
        .as_object_mut()
        .map(|c| c.remove("draftOrders"));
    assert!(matches!(
        err(&b, "lrt-order-sign"),
        RequestError::MissingContextField {
            field: "draftOrders",
            ..
        }
    ));
    // order-sign has no selections: not required.
    ok(&order_sign(), "lrt-order-sign");
}

#[test]
fn context_fields_must_have_the_right_shape() {
    let mut b = support::patient_view("p1", json!({}));
    b["context"]["patientId"] = json!(42);
    assert!(matches!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidContextField {
            field: "patientId",
            ..
        }
    ));
    for bad in ["Patient/p1", "..", "a b", "p1?x=1", ""] {
        b["context"]["patientId"] = json!(bad);
        assert!(
            matches!(
                err(&b, "lrt-patient-view"),
                RequestError::InvalidContextField {
                    field: "patientId",
                    ..
                }
            ),
            "{bad:?}"
        );
    }
    b["context"]["patientId"] = json!("mimic-10039708.v2");
    ok(&b, "lrt-patient-view");
    let mut b = support::patient_view("p1", json!({}));
    b["context"]["userId"] = json!("u1");
    assert!(matches!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidContextField {
            field: "userId",
            ..
        }
    ));
    // order hooks: a Patient cannot be the user.
    let mut b = order_sign();
    b["context"]["userId"] = json!("Patient/p1");
    assert!(matches!(
        err(&b, "lrt-order-sign"),
        RequestError::InvalidContextField {
            field: "userId",
            ..
        }
    ));
    let mut b = support::patient_view("p1", json!({}));
    b["context"]["encounterId"] = json!({"id": "e1"});
    assert!(matches!(
        err(&b, "lrt-patient-view"),
        RequestError::InvalidContextField {
            field: "encounterId",
            ..
        }
    ));
    let mut b = order_sign();
    b["context"]["draftOrders"] = json!([{"resourceType": "MedicationRequest"}]);
    assert!(matches!(
        err(&b, "lrt-order-sign"),
        RequestError::InvalidContextField {
            field: "draftOrders",
            ..
        }
    ));
    let mut b = order_select();
    b["context"]["selections"] = json!("MedicationRequest/m1");
    assert!(matches!(
        err(&b, "lrt-order-select"),
        RequestError::InvalidContextField {
            field: "selections",
            ..
        }
    ));
    b["context"]["selections"] = json!(["m1"]);
    assert!(matches!(
        err(&b, "lrt-order-select"),
        RequestError::InvalidContextField {
            field: "selections",
            ..
        }
    ));
    b["context"]["selections"] = json!(["MedicationRequest/m1", "ServiceRequest/nope"]);
    assert_eq!(
        err(&b, "lrt-order-select"),
        RequestError::SelectionNotInDraftOrders { index: 1 }
    );
}

#[test]
fn prefetched_patient_must_be_the_context_patient() {
    let b = support::patient_view("p1", json!({"Patient": patient("p2")}));
    let e = err(&b, "lrt-patient-view");
    assert_eq!(
        e,
        RequestError::PatientMismatch {
            key: "Patient".into()
        }
    );
    assert!(
        !e.to_string().contains("p2"),
        "no patient id in the message: {e}"
    );
    let b = support::patient_view(
        "p1",
        json!({"Everything": support::searchset(vec![patient("p9")], None)}),
    );
    assert_eq!(
        err(&b, "lrt-patient-view"),
        RequestError::PatientMismatch {
            key: "Everything".into()
        }
    );
}

#[test]
fn unreadable_bodies_name_the_place_not_the_value() {
    let e = HookRequest::from_slice(b"{\"hook\": \"patient-view\", ").expect_err("truncated");
    assert!(matches!(e, RequestError::NotJson { .. }), "{e:?}");
    assert_eq!(e.issue_code(), "structure");
    let e = HookRequest::from_slice(b"{} trailing").expect_err("trailing characters");
    assert!(matches!(e, RequestError::NotJson { .. }), "{e:?}");
    let body =
        json!({"hook": "patient-view", "hookInstance": HOOK_INSTANCE, "context": ["Mrs Jane Doe"]});
    let e =
        HookRequest::from_slice(body.to_string().as_bytes()).expect_err("context is not an object");
    let text = e.to_string();
    assert!(text.contains("context"), "{text}");
    assert!(!text.contains("Jane"), "the value is not echoed: {text}");
    let body = json!({"hook": "patient-view", "fhirAuthorization": {"access_token": 12345}});
    let e = HookRequest::from_slice(body.to_string().as_bytes()).expect_err("a numeric token");
    assert!(!e.to_string().contains("12345"), "{e}");
    assert_eq!(e.issue_code(), "invalid");
}

#[test]
fn the_access_token_is_never_printable() {
    let b = with_server(
        support::patient_view("p1", json!({})),
        "https://ehr.example.org/fhir",
    );
    let r = HookRequest::from_slice(b.to_string().as_bytes()).expect("readable");
    assert_eq!(r.access_token(), Some(TOKEN));
    let debug = format!("{r:?} {:?}", r.fhir_authorization);
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("<redacted>"));
    // Every error of a request carrying a token is free of it.
    let mut b = b.clone();
    b["hookInstance"] = json!(TOKEN);
    let e = HookRequest::from_slice(b.to_string().as_bytes())
        .expect("readable")
        .validate(svc("lrt-patient-view"));
    let e = e.expect_err("not a uuid");
    assert!(!e.to_string().contains(TOKEN));
    let oo = lrt_hooks::model::operation_outcome(e.issue_code(), &e.to_string());
    assert_eq!(oo["resourceType"], "OperationOutcome");
    assert_eq!(
        oo["issue"][0]["diagnostics"],
        "`hookInstance` is not a UUID"
    );
}

#[test]
fn feedback_follows_cds_fb_rules() {
    let good = json!({"feedback": [
        {"card": "c1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}], "outcomeTimestamp": "2025-03-01T12:00:00Z"},
        {"card": "c2", "outcome": "overridden", "overrideReason": {"reason": {"system": "urn:lrt:override-reason", "code": "data-not-current", "display": "The values shown are not current"}, "userComment": "old gas"}, "outcomeTimestamp": "2025-03-01T12:00:00.52Z"}
    ]});
    let f: FeedbackRequest = serde_json::from_value(good.clone()).expect("readable");
    assert_eq!(f.validate().expect("valid").len(), 2);
    let bad = |edit: &dyn Fn(&mut Value), expected: FeedbackError| {
        let mut v = good.clone();
        edit(&mut v);
        let f: FeedbackRequest = serde_json::from_value(v).expect("readable");
        assert_eq!(f.validate().expect_err("invalid"), expected);
    };
    bad(&|v| v["feedback"] = json!([]), FeedbackError::Empty);
    bad(
        &|v| {
            v["feedback"][0]
                .as_object_mut()
                .map(|o| o.remove("acceptedSuggestions"));
        },
        FeedbackError::AcceptedWithoutSuggestions { index: 0 },
    );
    bad(
        &|v| v["feedback"][1]["overrideReason"] = json!({}),
        FeedbackError::EmptyOverrideReason { index: 1 },
    );
    bad(
        &|v| v["feedback"][0]["outcomeTimestamp"] = json!("2025-03-01T13:00:00+01:00"),
        FeedbackError::BadTimestamp { index: 0 },
    );
    bad(
        &|v| v["feedback"][0]["outcomeTimestamp"] = json!("yesterday"),
        FeedbackError::BadTimestamp { index: 0 },
    );
    bad(
        &|v| v["feedback"][0]["card"] = json!(" "),
        FeedbackError::NoCard { index: 0 },
    );
    let wrong: Result<FeedbackRequest, _> = serde_json::from_value(
        json!({"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2025-03-01T12:00:00Z"}]}),
    );
    assert!(
        wrong.is_err(),
        "outcome is accepted | overridden (cds-fb-1)"
    );
}
