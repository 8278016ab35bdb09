//! The LRT pager consult end to end: `lrt serve`'s app (with its dispatcher) on a random port, a
//! fresh PostgreSQL database per test, a real local webhook receiver, and the real FHIR server
//! (Helios) as the EHR for Subscription notifications, API evaluations and the
//! `CommunicationRequest` channel. Authentication is off here (loopback development mode): the
//! JWT rules are covered by `cds_hooks.rs`; these tests are about what pages, when, and that
//! every page arrives.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::gate::TcpGate;
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE, STABLE};
use lrt_server::service::Config;
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::paging::{FhirChannelConfig, WebhookConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PV: &str = "/cds-services/lrt-patient-view";
const SECRET: &str = "test-only-webhook-secret";
const SUBSCRIPTION_SECRET: &str = "test-only-subscription-secret";

/// One FHIR server for the whole test binary (no MIMIC data: each test loads its own patients).
fn fhir() -> &'static FhirServer {
    static SERVER: OnceLock<FhirServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        std::thread::spawn(FhirServer::start)
            .join()
            .expect("the FHIR server starts")
    })
}

fn secret_file(dir: &tempfile::TempDir, name: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// The service with paging to `receiver` (fast retries), the FHIR server as the EHR.
async fn app(
    receiver: &PagerReceiver,
    edit: impl FnOnce(&mut Config),
) -> (TestApp, tempfile::TempDir) {
    lrt_fhir::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let webhook_secret = secret_file(&dir, "webhook", &receiver.secret);
    let subscription_secret = secret_file(&dir, "subscription", SUBSCRIPTION_SECRET);
    let (url, base) = (receiver.url.clone(), fhir().base.clone());
    let app = TestApp::spawn(move |c| {
        c.insecure_no_auth = true;
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.fhir_allow = vec![base.clone()];
        c.ehr.fhir_base = Some(base);
        c.ehr.subscription_secret_file = Some(subscription_secret);
        c.paging.webhook = Some(WebhookConfig {
            url,
            secret_file: Some(webhook_secret),
            secret_env: None,
            timeout_ms: 2_000,
        });
        c.paging.poll_interval_ms = 50;
        c.paging.initial_backoff_ms = 50;
        c.paging.max_backoff_ms = 200;
        c.paging.lease_ms = 5_000;
        edit(c);
    })
    .await;
    (app, dir)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let res = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("the service answers");
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(app: &TestApp, path: &str) -> Value {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

/// Waits until every delivery is delivered or dead (nothing pending).
async fn settled(app: &TestApp) {
    assert!(
        eventually(Duration::from_secs(20), || async {
            count(
                app,
                "SELECT count(*) FROM page_delivery WHERE state = 'pending'",
            )
            .await
                == 0
        })
        .await,
        "deliveries still pending"
    );
}

/// Waits until the inbox row at `location` is done; returns it.
async fn done(app: &TestApp, location: &str) -> Value {
    assert!(
        eventually(Duration::from_secs(15), || async {
            get(app, location).await["state"] == "done"
        })
        .await,
        "{:#}",
        get(app, location).await
    );
    get(app, location).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_page_per_trigger_none_on_retry_none_inside_the_window_a_new_one_on_escalation() {
    let receiver = PagerReceiver::start(SECRET).await;
    let (app, _dir) = app(&receiver, |_| {}).await;

    // 1. Borderline: one page, urgent, delivered with a valid signature.
    let first = synthetic::patient_view("syn-a", BORDERLINE);
    let (status, cards) = post(&app, PV, &first).await;
    assert_eq!(status, StatusCode::OK, "{cards}");
    settled(&app).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].signature_ok);
    let page = &got[0].body;
    assert_eq!(page["urgency"], "urgent");
    assert_eq!(page["reason"]["code"], "ECMO_BORDERLINE");
    assert_eq!(page["patient"]["reference"], "Patient/syn-a");
    assert_eq!(got[0].key, page["idempotency_key"].as_str().unwrap());
    assert!(
        page["evaluation"]["url"]
            .as_str()
            .unwrap()
            .contains("/dashboard/evaluations/")
    );
    // Nothing beyond the minimum to act: no values, no narrative.
    let mut keys: Vec<&str> = page
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "evaluation",
            "idempotency_key",
            "page_id",
            "patient",
            "reason",
            "reasons",
            "ruleset",
            "urgency"
        ],
        "{page}"
    );

    // 2. The same hookInstance again: the same cards, nothing stored, no page.
    let (status, again) = post(&app, PV, &first).await;
    assert_eq!((status, &again), (StatusCode::OK, &cards));
    // 3. A new call, same data, inside the window: evaluated and stored, no page.
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-a", BORDERLINE)).await;
    assert_eq!(status, StatusCode::OK);
    // 4. Another patient who is stable: no page.
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-b", STABLE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM evaluation WHERE role = 'active'"
        )
        .await,
        3
    );
    assert_eq!(count(&app, "SELECT count(*) FROM consult_page").await, 1);

    // 5. Escalation: EOLIA C2 for 7 h, eligible, emergent: a new page.
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-a", ELIGIBLE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].body["urgency"], "emergent");
    assert_eq!(got[1].body["reason"]["code"], "ECMO_ELIGIBLE");
    // 6. Eligible again (same urgency, inside the window): no page.
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-a", ELIGIBLE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    assert_eq!(receiver.received().len(), 2);

    // The API lists both pages, delivered, with their attempts; acknowledging is idempotent.
    let pages = get(&app, "/api/v1/pages?patient=syn-a").await;
    let list = pages["pages"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|p| p["state"] == "delivered"), "{pages:#}");
    assert_eq!(
        list[0]["deliveries"][0]["history"][0]["outcome"],
        "delivered"
    );
    let id = list[0]["id"].as_str().unwrap();
    let (status, acked) = post(&app, &format!("/api/v1/pages/{id}/acknowledge"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    let at = acked["acknowledged_at"].clone();
    assert!(at.is_string());
    let (_, again) = post(&app, &format!("/api/v1/pages/{id}/acknowledge"), &json!({})).await;
    assert_eq!(again["acknowledged_at"], at);
    let (status, _) = post(&app, &format!("/api/v1/pages/{id}/retry"), &json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a delivered page has nothing to retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_while_the_receiver_answers_500_or_is_down_and_delivers_once_it_is_back() {
    let mut receiver = PagerReceiver::start(SECRET).await;
    let (app, _dir) = app(&receiver, |_| {}).await;

    // The receiver answers 500 three times, then accepts.
    receiver.fail_next(3);
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-r1", BORDERLINE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let page = &get(&app, "/api/v1/pages?patient=syn-r1").await["pages"][0];
    assert_eq!(page["state"], "delivered");
    let history = page["deliveries"][0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0]["http_status"], 500);
    assert_eq!(history[3]["outcome"], "delivered");

    // The receiver is down (connection refused): retried until it is back, then delivered.
    receiver.stop().await;
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-r2", BORDERLINE)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(10), || async {
            count(&app, "SELECT coalesce(max(attempts), 0)::bigint FROM page_delivery d JOIN consult_page p ON p.id = d.page_id WHERE p.patient_id = 'syn-r2'").await >= 3
        })
        .await
    );
    let page = &get(&app, "/api/v1/pages?patient=syn-r2").await["pages"][0];
    assert_eq!(page["state"], "pending");
    assert!(
        page["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{page:#}"
    );
    receiver.up().await;
    settled(&app).await;
    let page = &get(&app, "/api/v1/pages?patient=syn-r2").await["pages"][0];
    assert_eq!(page["state"], "delivered", "{page:#}");
    assert_eq!(receiver.accepted_by_key().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_not_delivered_within_the_horizon_is_dead_lettered_and_can_be_retried() {
    let receiver = PagerReceiver::start(SECRET).await;
    receiver.always_fail(true);
    let (app, _dir) = app(&receiver, |c| c.paging.horizon_s = 1).await;
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-d", BORDERLINE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    let dead = get(&app, "/api/v1/pages?state=dead").await;
    let list = dead["pages"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{dead:#}");
    let attempts = list[0]["deliveries"][0]["attempts"].as_i64().unwrap();
    assert!(attempts >= 2, "retried before giving up: {attempts}");
    assert_eq!(receiver.accepted_by_key().len(), 0);

    // Retry from the API once the receiver works again: delivered.
    receiver.always_fail(false);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let (status, body) = post(&app, &format!("/api/v1/pages/{id}/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["requeued_deliveries"], 1);
    settled(&app).await;
    let page = get(&app, &format!("/api/v1/pages/{id}")).await;
    assert_eq!(page["state"], "delivered", "{page:#}");
    assert_eq!(receiver.accepted_by_key().get(&id), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_channel_writes_one_communication_request_per_page() {
    let receiver = PagerReceiver::start(SECRET).await;
    let base = fhir().base.clone();
    let (app, _dir) = app(&receiver, |c| {
        c.paging.fhir = Some(FhirChannelConfig {
            base,
            token_file: None,
            token_env: None,
            recipient: Some("Group/lrt-on-call".into()),
            timeout_ms: 3_000,
        });
    })
    .await;
    let (status, _) = post(&app, PV, &synthetic::patient_view("syn-f", BORDERLINE)).await;
    assert_eq!(status, StatusCode::OK);
    settled(&app).await;
    let page = &get(&app, "/api/v1/pages?patient=syn-f").await["pages"][0];
    assert_eq!(page["state"], "delivered", "{page:#}");
    let id = page["id"].as_str().unwrap();
    let client = fhir().client();
    let read = client
        .read("CommunicationRequest", id)
        .await
        .expect("written");
    assert_eq!(read.resources.len(), 1);
    // Delivered twice (a redelivery after a crash): still one resource with that id.
    let payload = page["payload"].clone();
    let cr = lrt_server::service::paging::channel::communication_request(&payload, None);
    client
        .put("CommunicationRequest", id, &cr.to_string())
        .await
        .unwrap();
    let found = client
        .search(
            "CommunicationRequest",
            &[(
                "identifier".into(),
                format!("urn:lrt-cds:consult-page|{id}"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(found.resources.len(), 1, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_notification_of_a_new_blood_gas_evaluates_stores_and_pages() {
    let receiver = PagerReceiver::start(SECRET).await;
    let (app, _dir) = app(&receiver, |_| {}).await;
    let patient = format!("syn-s-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    fhir()
        .client()
        .transaction(&synthetic::transaction(&patient, "g", BORDERLINE).to_string())
        .await
        .expect("loaded");
    let observation = synthetic::observations(&patient, "g", BORDERLINE)
        .into_iter()
        .next()
        .unwrap();
    let notification = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                      "notificationEvent": [{"eventNumber": "1", "focus": {"reference": format!("Observation/{}", observation["id"].as_str().unwrap())}}]}},
        {"resource": observation}]});
    let path = "/fhir/subscription-notification";
    let send = |secret: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url(path))
            .header("content-type", "application/fhir+json")
            .body(notification.to_string());
        if let Some(s) = secret {
            req = req.bearer_auth(s);
        }
        req.send()
    };
    assert_eq!(send(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(Some("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let started = Instant::now();
    let res = send(Some(SUBSCRIPTION_SECRET)).await.unwrap();
    // Stored and acknowledged before the EHR is read: 202, and where to follow it.
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["new"], true, "{receipt:#}");
    let id = receipt["notification_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/subscription-notifications/{id}"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            !receiver.received().is_empty()
        })
        .await
    );
    let latency = receiver.received()[0].at - started;
    println!(
        "Subscription notification to page received: {:.1} ms",
        latency.as_secs_f64() * 1000.0
    );
    let row = done(&app, &location).await;
    assert_eq!(row["attempts"], 1, "{row:#}");
    let evaluation = row["evaluation_ids"][0].as_str().unwrap().to_string();
    let stored = get(&app, &format!("/api/v1/evaluations/{evaluation}")).await;
    assert_eq!(stored["patient_id"], patient.as_str(), "{stored:#}");
    assert_eq!(stored["ecmo_category"], "borderline", "{stored:#}");

    // The same notification again: the same row, nothing new stored, no page.
    let res = send(Some(SUBSCRIPTION_SECRET)).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["notification_id"], id.as_str(), "{again:#}");
    assert_eq!(again["new"], false);
    assert_eq!(again["state"], "done");
    settled(&app).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM evaluation WHERE role = 'active'"
        )
        .await,
        1
    );

    // An id-only notification (the backport's SubscriptionStatus alone) of the same event, its
    // reference absolute: the same resource, so the same inbox row and evaluation (nothing new).
    let id_only = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "notificationEvent": [
            {"eventNumber": "2", "focus": {"reference": format!("{}/Observation/{}", fhir().base, observation["id"].as_str().unwrap())}}]}}]});
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body(id_only.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let row = done(&app, &location).await;
    assert_eq!(row["id"], id.as_str(), "{row:#}");
    assert_eq!(row["evaluation_ids"][0], evaluation.as_str(), "{row:#}");

    // An id-only notification of a new blood gas of the patient: the worker reads the resource
    // from the EHR to find its patient, and evaluates again.
    let second = synthetic::observations(&patient, "h", BORDERLINE)
        .into_iter()
        .next()
        .unwrap();
    fhir()
        .client()
        .transaction(&synthetic::transaction(&patient, "h", BORDERLINE).to_string())
        .await
        .expect("loaded");
    let id_only = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "notificationEvent": [
            {"eventNumber": "3", "focus": {"reference": format!("Observation/{}", second["id"].as_str().unwrap())}}]}}]});
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body(id_only.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let row = done(&app, &location).await;
    assert_ne!(row["id"], id.as_str(), "{row:#}");
    let evaluation = row["evaluation_ids"][0].as_str().unwrap().to_string();
    let stored = get(&app, &format!("/api/v1/evaluations/{evaluation}")).await;
    assert_eq!(stored["patient_id"], patient.as_str(), "{stored:#}");

    // An id-only focus that is not on the EHR can never be evaluated: dead at once, listed.
    let missing = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "notificationEvent": [
            {"eventNumber": "3", "focus": {"reference": "Observation/not-there-at-all"}}]}}]});
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body(missing.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&app, &location).await["state"] == "dead"
        })
        .await
    );
    let dead = get(&app, "/api/v1/subscription-notifications?state=dead").await;
    assert_eq!(
        dead["notifications"].as_array().unwrap().len(),
        1,
        "{dead:#}"
    );
    assert!(
        dead["notifications"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not on the EHR"),
        "{dead:#}"
    );

    // A focus that would climb out of the EHR's base: 400 before anything is stored or read.
    for reference in [
        "../..",
        "Observation/..",
        "https://elsewhere.example/fhir/Observation/1",
    ] {
        let bad = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "notificationEvent": [
                {"eventNumber": "4", "focus": {"reference": reference}}]}}]});
        let res = app
            .http
            .post(app.url(path))
            .bearer_auth(SUBSCRIPTION_SECRET)
            .body(bad.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{reference}");
    }

    // A heartbeat (no focus): 200, nothing stored.
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body(
            json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "type": "heartbeat"}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        count(&app, "SELECT count(*) FROM subscription_inbox").await,
        3
    );

    // A notification that is not FHIR JSON: 400 with an OperationOutcome.
    let res = app
        .http
        .post(app.url(path))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");

    // A focus whose patient or id is not a FHIR id (a dot segment): 400 naming it, not the 503
    // of an EHR read that cannot be made.
    let mut dotted = observation.clone();
    dotted["subject"]["reference"] = json!("Patient/..");
    let id_only_dotted = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "notificationEvent": [
            {"eventNumber": "3", "focus": {"reference": "Observation/.."}}]}}]});
    for notification in [dotted, id_only_dotted] {
        let res = app
            .http
            .post(app.url(path))
            .bearer_auth(SUBSCRIPTION_SECRET)
            .body(notification.to_string())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let outcome: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{notification}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
}

/// Issue 8, "no trigger lost": a notification that arrives while the EHR's FHIR server is down
/// is stored and acknowledged (202), retried with backoff, and evaluated and paged once the
/// server is back, without the EHR sending it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_received_while_the_fhir_server_is_down_is_evaluated_and_pages_once_it_is_back()
 {
    let receiver = PagerReceiver::start(SECRET).await;
    let target: std::net::SocketAddr = fhir().base.trim_start_matches("http://").parse().unwrap();
    let mut gate = TcpGate::down(target).await;
    let gate_base = gate.base.clone();
    let (app, _dir) = app(&receiver, move |c| {
        c.fhir_allow.push(gate_base.clone());
        c.ehr.fhir_base = Some(gate_base);
        c.ehr.inbox.poll_interval_ms = 50;
        c.ehr.inbox.initial_backoff_ms = 100;
        c.ehr.inbox.max_backoff_ms = 300;
    })
    .await;
    let patient = format!(
        "syn-down-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    fhir()
        .client()
        .transaction(&synthetic::transaction(&patient, "g", ELIGIBLE).to_string())
        .await
        .expect("loaded");
    let observation = synthetic::observations(&patient, "g", ELIGIBLE)
        .into_iter()
        .next()
        .unwrap();
    let notification = json!({"resourceType": "Bundle", "type": "history", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                      "notificationEvent": [{"eventNumber": "1", "focus": {"reference": format!("Observation/{}", observation["id"].as_str().unwrap())}}]}},
        {"resource": observation}]});
    let res = app
        .http
        .post(app.url("/fhir/subscription-notification"))
        .bearer_auth(SUBSCRIPTION_SECRET)
        .body(notification.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_string();

    // Down: attempts fail and are retried; nothing is evaluated or paged.
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&app, &location).await["attempts"].as_i64().unwrap_or(0) >= 3
        })
        .await
    );
    let row = get(&app, &location).await;
    assert_eq!(row["state"], "pending", "{row:#}");
    assert!(
        row["last_error"].as_str().unwrap().contains("EHR"),
        "{row:#}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM evaluation").await, 0);
    assert!(receiver.received().is_empty());
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lrt_subscription_evaluations_total{outcome=\"retry\"}"),
        "{metrics}"
    );

    // Back: the next attempt evaluates and pages, once.
    gate.up().await;
    let row = done(&app, &location).await;
    // At least the failed attempts seen above; the last of them may have been in flight when
    // the gate opened, and succeeded.
    assert!(row["attempts"].as_i64().unwrap() >= 3, "{row:#}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            receiver.received().len() == 1
        })
        .await
    );
    settled(&app).await;
    assert_eq!(receiver.received().len(), 1);
    let page = &receiver.received()[0].body;
    assert!(
        page["reasons"].to_string().contains("ECMO_ELIGIBLE"),
        "{page:#}"
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM evaluation WHERE role = 'active'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_api_evaluations_reads_the_ehr_and_an_idempotency_key_makes_it_safe_to_retry() {
    let receiver = PagerReceiver::start(SECRET).await;
    let (app, _dir) = app(&receiver, |_| {}).await;
    let patient = format!(
        "syn-api-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    fhir()
        .client()
        .transaction(&synthetic::transaction(&patient, "g", ELIGIBLE).to_string())
        .await
        .expect("loaded");
    let call = |key: &'static str| {
        app.http
            .post(app.url("/api/v1/evaluations"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(json!({"patient": format!("Patient/{patient}")}).to_string())
            .send()
    };
    let first: Value = call("k1").await.unwrap().json().await.unwrap();
    assert_eq!(first["ecmo_category"], "eligible", "{first:#}");
    assert_eq!(first["consult_triggers"], json!(["ECMO_ELIGIBLE"]));
    assert_eq!(first["replayed"], false);
    let again: Value = call("k1").await.unwrap().json().await.unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["evaluation_id"], first["evaluation_id"]);
    settled(&app).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(receiver.received()[0].body["urgency"], "emergent");

    // An unknown patient: 404; a malformed body: 400.
    let (status, _) = post(
        &app,
        "/api/v1/evaluations",
        &json!({"patient": "Patient/no-such-patient"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&app, "/api/v1/evaluations", &json!({"patient": "../x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A dot segment is not a FHIR id: 400, not the 503 of an EHR read that cannot be made
    // (found by the schema-driven run, tests/schema_run.rs).
    for id in ["Patient/.", "Patient/..", "."] {
        let (status, body) = post(&app, "/api/v1/evaluations", &json!({"patient": id})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
}
