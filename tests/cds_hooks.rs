//! The CDS Hooks 2.0 service end to end: `lrt serve`'s app on a random port, a fresh PostgreSQL
//! database per test, the real FHIR server (Helios, loaded with the MIMIC-IV demo patients) as
//! the EHR's `fhirServer`, and a CDS client signing ES384 JWTs whose JWK Set a real local HTTP
//! server publishes. Every 200 response passes the CDS Hooks response validator.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use lrt_auth::{AuthConfig, TrustedIssuer};
use lrt_e2e::cds_client::{CdsClient, JwksServer};
use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::service::TestApp;
use lrt_e2e::{expected_pf, hook_requests};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ISS: &str = "https://ehr.test.example";

/// One FHIR server for the whole test binary, loaded once.
fn fhir() -> &'static FhirServer {
    static SERVER: OnceLock<FhirServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        std::thread::spawn(|| {
            let server = FhirServer::start();
            let rt = tokio::runtime::Runtime::new().unwrap();
            assert_eq!(rt.block_on(server.load_mimic()), 86);
            server
        })
        .join()
        .expect("the FHIR server starts and loads")
    })
}

/// A service trusting `client` (keys from `jwks_url`), allowing the test FHIR server, and
/// evaluating at the newest blood gas (the MIMIC dates are shifted into the 22nd century).
async fn app(client: &CdsClient, jwks_url: &str) -> TestApp {
    lrt_fhir::client::install_crypto_provider();
    let fhir_base = fhir().base.clone();
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks_url.parse().unwrap());
    issuer.jku_allow = vec![jwks_url.parse().unwrap()];
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.fhir_allow = vec![fhir_base];
        c.evaluation_time = lrt_server::service::config::EvaluationTime::NewestBloodGas;
    })
    .await
}

struct Setup {
    client: CdsClient,
    jwks: JwksServer,
    app: TestApp,
}

async fn setup() -> Setup {
    let client = CdsClient::new(ISS);
    let jwks = JwksServer::start(client.jwks()).await;
    let app = app(&client, &jwks.url).await;
    Setup { client, jwks, app }
}

impl Setup {
    /// The one number a `SELECT count(*) ...` of the app's database answers.
    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    fn aud(&self, path: &str) -> String {
        self.app.url(path)
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let token = self.client.token(&self.aud(path));
        self.post_with(path, body, Some(&token)).await
    }

    async fn post_with(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("the service answers");
        let status = res.status();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text))
        };
        if status == StatusCode::OK
            && path.starts_with("/cds-services/")
            && !path.ends_with("/feedback")
        {
            let violations = lrt_hooks::validate::validate_response(&body);
            assert!(violations.is_empty(), "{path}: {violations:?}\n{body:#}");
        }
        (status, body)
    }
}

/// A MIMIC request aimed at the test FHIR server, with a fresh hookInstance.
fn mimic_request(patient: &str) -> Value {
    let r = hook_requests()
        .into_iter()
        .find(|r| r.patient == patient)
        .expect("a MIMIC request");
    let mut json = r.json;
    json["fhirServer"] = json!(fhir().base);
    json["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
    json
}

fn outcome_text(body: &Value) -> String {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn call_rows(app: &TestApp, hook_instance: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM hook_call WHERE hook_instance = $1")
        .bind(hook_instance)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn stored_rows(app: &TestApp, hook_instance: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM evaluation WHERE hook_instance = $1")
        .bind(hook_instance)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

const PV: &str = "/cds-services/lrt-patient-view";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_three_services_with_prefetch_templates() {
    let s = setup().await;
    let token = s.client.token(&s.aud("/cds-services"));
    let res = s
        .app
        .http
        .get(s.app.url("/cds-services"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(lrt_hooks::validate::validate_discovery(&body).is_empty());
    let ids: Vec<&str> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["lrt-patient-view", "lrt-order-select", "lrt-order-sign"]
    );
    let obs = body["services"][0]["prefetch"]["Observation"]
        .as_str()
        .unwrap();
    assert!(
        obs.contains("_sort=-date") && obs.contains("_count="),
        "{obs}"
    );
    // Discovery needs a JWT too.
    let res = s
        .app
        .http
        .get(s.app.url("/cds-services"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().is_empty(), "401 without detail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_prefetch_is_answered_stored_and_a_retry_returns_the_same_cards() {
    let s = setup().await;
    let request = mimic_request("mimic-10037975");
    let (status, first) = s.post(PV, &request).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let card = &first["cards"][0];
    assert!(card["summary"].as_str().unwrap().chars().count() < 140);
    let hi = request["hookInstance"].as_str().unwrap();
    // The active version (0.2.0) and the shadow (0.1.0): one row each.
    assert_eq!(stored_rows(&s.app, hi).await, 2);
    let (pf, sources): (Option<f64>, Value) = sqlx::query_as(
        "SELECT pf_ratio, prefetch_sources FROM evaluation WHERE hook_instance = $1 AND role = 'active'",
    )
    .bind(hi)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(pf, Some(61.0));
    assert_eq!(sources["Patient"]["source"], "prefetch");
    assert_eq!(sources["Observation"]["source"], "prefetch");
    // Keys the request did not prefetch were fetched from the FHIR server.
    assert_eq!(sources["Condition"]["source"], "fetched", "{sources}");
    // The same hookInstance again: the same body, nothing stored twice.
    let (status, again) = s.post(PV, &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(stored_rows(&s.app, hi).await, 2);
    assert_eq!(call_rows(&s.app, hi).await, 2);
    // Again with every key sent (those not prefetched as `null`: no data). The service looks
    // the call up only when storing it (issue 9), and still answers what it stored, not the
    // evaluation of this body.
    let mut covered = request.clone();
    every_key_sent(&mut covered);
    let (status, again) = s.post(PV, &covered).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    // And with a prefetch that would fail (412 on its own): the stored answer wins.
    let mut failing = covered.clone();
    failing.as_object_mut().unwrap().remove("fhirServer");
    failing["prefetch"]["Observation"] = json!({"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}]});
    let (status, again) = s.post(PV, &failing).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    assert_eq!(stored_rows(&s.app, hi).await, 2);
    assert_eq!(call_rows(&s.app, hi).await, 4);
    // The same hookInstance for another patient is a conflict, whether it is found before the
    // prefetch is read (some keys fetched) or when the call is stored (every key sent).
    let mut other = mimic_request("mimic-10002428");
    other["hookInstance"] = json!(hi);
    let (status, body) = s.post(PV, &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    outcome_text(&body);
    every_key_sent(&mut other);
    let (status, body) = s.post(PV, &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    outcome_text(&body);
    assert_eq!(stored_rows(&s.app, hi).await, 2);
}

/// Sends every prefetch key of the shipped rule set: those missing as `null` (no data).
fn every_key_sent(request: &mut Value) {
    let rules = lrt_engine::RuleSet::load(&lrt_engine::testing::shipped_version_dir()).unwrap();
    for t in lrt_hooks::services::prefetch_templates(&rules) {
        let prefetch = request["prefetch"].as_object_mut().unwrap();
        prefetch.entry(t.key.clone()).or_insert(Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_null_partial_and_failed_prefetch() {
    let s = setup().await;
    // Absent: everything fetched from the FHIR server, same P/F as with the prefetch.
    let mut absent = mimic_request("mimic-10037975");
    absent.as_object_mut().unwrap().remove("prefetch");
    let (status, body) = s.post(PV, &absent).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (pf,): (Option<f64>,) =
        sqlx::query_as("SELECT pf_ratio FROM evaluation WHERE hook_instance = $1")
            .bind(absent["hookInstance"].as_str().unwrap())
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(pf, Some(61.0));

    // Partial: the Patient sent, the Observations fetched.
    let mut partial = mimic_request("mimic-10037975");
    partial["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("Observation");
    let (status, _) = s.post(PV, &partial).await;
    assert_eq!(status, StatusCode::OK);
    let sources: Value =
        sqlx::query_scalar("SELECT prefetch_sources FROM evaluation WHERE hook_instance = $1")
            .bind(partial["hookInstance"].as_str().unwrap())
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(sources["Patient"]["source"], "prefetch");
    assert_eq!(sources["Observation"]["source"], "fetched");

    // null: no data and no fetch, even with no fhirServer: insufficient data, not a 412.
    let mut null = mimic_request("mimic-10037975");
    null.as_object_mut().unwrap().remove("fhirServer");
    for key in [
        "Observation",
        "Condition",
        "Procedure",
        "MedicationAdministration",
        "MedicationRequest",
        "Flag",
    ] {
        null["prefetch"][key] = Value::Null;
    }
    let (status, body) = s.post(PV, &null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Insufficient data with nothing actionable: no patient-view card (§9 D12).
    assert_eq!(body["cards"], json!([]), "{body}");

    // An OperationOutcome for a required key and no fhirServer: 412 with an OperationOutcome.
    let mut failed = mimic_request("mimic-10037975");
    failed.as_object_mut().unwrap().remove("fhirServer");
    failed["prefetch"]["Observation"] = json!({"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}]});
    let (status, body) = s.post(PV, &failed).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert!(outcome_text(&body).contains("Observation"), "{body}");

    // An OperationOutcome with a fhirServer: fetched instead.
    let mut recovered = mimic_request("mimic-10037975");
    recovered["prefetch"]["Observation"] = json!({"resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}]});
    let (status, body) = s.post(PV, &recovered).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A fhirServer that is not allow-listed is never called: 412 when required data is absent.
    let mut foreign = mimic_request("mimic-10037975");
    foreign["fhirServer"] = json!("http://127.0.0.1:9/fhir");
    foreign["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("Observation");
    let (status, body) = s.post(PV, &foreign).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_unknown_services_and_media_types() {
    let s = setup().await;
    let (status, body) = s
        .post(
            "/cds-services/no-such-service",
            &mimic_request("mimic-10037975"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    outcome_text(&body);

    // Malformed JSON.
    let token = s.client.token(&s.aud(PV));
    let res = s
        .app
        .http
        .post(s.app.url(PV))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"hook\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    outcome_text(&res.json().await.unwrap());

    // Inconsistent: the hook of another service; a hookInstance that is not a UUID; no context.
    for edit in [
        (|r: &mut Value| r["hook"] = json!("order-sign")) as fn(&mut Value),
        |r: &mut Value| r["hookInstance"] = json!("not-a-uuid"),
        |r: &mut Value| {
            r.as_object_mut().unwrap().remove("context");
        },
        |r: &mut Value| r["context"]["patientId"] = json!("mimic-10002428"),
    ] {
        let mut r = mimic_request("mimic-10037975");
        edit(&mut r);
        let (status, body) = s.post(PV, &r).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r:#}\n{body}");
        assert!(!outcome_text(&body).is_empty());
    }

    // Not JSON.
    let token = s.client.token(&s.aud(PV));
    let res = s
        .app
        .http
        .post(s.app.url(PV))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // An unknown route.
    let res = s
        .app
        .http
        .get(s.app.url("/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jwt_rejection_of_section_h_is_a_bare_401() {
    let s = setup().await;
    let aud = s.aud(PV);
    let c = &s.client;
    let request = mimic_request("mimic-10037975");
    let other_key = CdsClient::new(ISS);
    let hs256 = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!(
            "{}.{}",
            b64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": c.kid}).to_string()),
            b64.encode(c.claims(&aud).to_string())
        );
        format!("{input}.{}", b64.encode([0u8; 32]))
    };
    let none = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
            b64.encode(c.claims(&aud).to_string())
        )
    };
    let with = |f: &dyn Fn(&mut Value)| {
        let mut claims = c.claims(&aud);
        f(&mut claims);
        c.sign(&c.header(), &claims)
    };
    let now = chrono::Utc::now().timestamp();
    let foreign_jwks = JwksServer::start(c.jwks()).await;
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("abc.def".into())),
        ("alg none", Some(none)),
        ("HS256", Some(hs256)),
        (
            "unknown issuer",
            Some(with(&|cl| cl["iss"] = json!("https://evil.example"))),
        ),
        (
            "wrong aud",
            Some(with(&|cl| {
                cl["aud"] = json!(s.aud("/cds-services/lrt-order-sign"))
            })),
        ),
        (
            "expired",
            Some(with(&|cl| {
                cl["exp"] = json!(now - 120);
                cl["iat"] = json!(now - 400);
            })),
        ),
        (
            "iat in the future",
            Some(with(&|cl| {
                cl["iat"] = json!(now + 600);
                cl["exp"] = json!(now + 900);
            })),
        ),
        (
            "no jti",
            Some(with(&|cl| {
                cl.as_object_mut().unwrap().remove("jti");
            })),
        ),
        (
            "no exp",
            Some(with(&|cl| {
                cl.as_object_mut().unwrap().remove("exp");
            })),
        ),
        (
            "signed by another key",
            Some(other_key.sign(&c.header(), &c.claims(&aud))),
        ),
        (
            "jku not allow-listed",
            Some(c.sign(
                &json!({"alg": "ES384", "typ": "JWT", "kid": c.kid, "jku": foreign_jwks.url}),
                &c.claims(&aud),
            )),
        ),
        (
            "unknown kid",
            Some(c.sign(
                &json!({"alg": "ES384", "typ": "JWT", "kid": "nope"}),
                &c.claims(&aud),
            )),
        ),
    ];
    for (name, token) in cases {
        let (status, body) = s.post_with(PV, &request, token.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body, Value::Null, "{name}: 401 carries no detail");
    }
    assert_eq!(
        foreign_jwks.hits(),
        0,
        "a jku that is not allow-listed is never fetched"
    );

    // A valid ES384 token with its key from the JWKS: accepted; the same token again: replay.
    let token = c.token(&aud);
    let (status, _) = s.post_with(PV, &request, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(s.jwks.hits() >= 1);
    let (status, _) = s.post_with(PV, &request, Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replayed jti");
    let replays: i64 = sqlx::query_scalar("SELECT count(*) FROM jwt_replay")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert!(replays >= 1);
    // The metrics count rejections by reason.
    let metrics = s
        .app
        .http
        .get(s.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("lrt_jwt_rejections_total"), "{metrics}");
    assert!(
        metrics.contains("status=\"401\""),
        "401s are counted in lrt_hook_calls_total: {metrics}"
    );
    // Issue 8: unauthenticated calls are counted, never written to the database.
    let unauthenticated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM hook_call WHERE status = 401")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(unauthenticated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_needs_no_jwt_and_the_post_carries_the_headers() {
    let s = setup().await;
    let res = s
        .app
        .http
        .request(reqwest::Method::OPTIONS, s.app.url(PV))
        .header("origin", "https://ehr.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    let allow_headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allow_headers.contains("authorization") && allow_headers.contains("content-type"),
        "{allow_headers}"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(h.contains_key("access-control-allow-origin"));
    let token = s.client.token(&s.aud(PV));
    let res = s
        .app
        .http
        .post(s.app.url(PV))
        .bearer_auth(&token)
        .header("origin", "https://ehr.example")
        .header("content-type", "application/json")
        .body(mimic_request("mimic-10037975").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_stored_once() {
    let s = setup().await;
    let (status, body) = s.post(PV, &mimic_request("mimic-10037975")).await;
    assert_eq!(status, StatusCode::OK);
    let card = &body["cards"][0];
    let uuid = card["uuid"].as_str().unwrap();
    let suggestion = card["suggestions"][0]["uuid"].as_str().unwrap();
    let fb = "/cds-services/lrt-patient-view/feedback";
    let feedback = json!({"feedback": [{"card": uuid, "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion}], "outcomeTimestamp": "2026-11-25T10:00:00Z"}]});
    let (status, body) = s.post(fb, &feedback).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"stored": 1, "updated": 0, "duplicates": 0}));
    let (status, body) = s.post(fb, &feedback).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"stored": 0, "updated": 0, "duplicates": 1}));
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM card_feedback WHERE evaluation_id IS NOT NULL")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
    // Accepted without suggestions (cds-fb-2): 400. An unknown card: 404.
    let (status, _) = s
        .post(
            fb,
            &json!({"feedback": [{"card": uuid, "outcome": "accepted",
        "outcomeTimestamp": "2026-11-25T10:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .post(
            fb,
            &json!({"feedback": [{"card": uuid::Uuid::new_v4().to_string(),
        "outcome": "overridden", "outcomeTimestamp": "2026-11-25T10:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Issue 8: feedback that adds an override reason to an earlier feedback for the same card,
/// outcome and time was answered 200 and dropped as a duplicate. It is now stored (the row
/// updated, its revision counted); an exact repeat stays a duplicate; more than 100 items in
/// one call are refused before any database work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_with_a_reason_after_one_without_is_kept() {
    let s = setup().await;
    let (status, body) = s.post(PV, &mimic_request("mimic-10037975")).await;
    assert_eq!(status, StatusCode::OK);
    let uuid = body["cards"][0]["uuid"].as_str().unwrap().to_string();
    let fb = "/cds-services/lrt-patient-view/feedback";
    let bare = json!({"feedback": [{"card": uuid, "outcome": "overridden",
        "outcomeTimestamp": "2026-11-25T10:00:00Z"}]});
    let (status, body) = s.post(fb, &bare).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"stored": 1, "updated": 0, "duplicates": 0}));
    let reason = json!({"reason": {"code": "goals-of-care", "system": "urn:lrt:override-reason",
        "display": "Not consistent with the patient's goals of care"}, "userComment": "family meeting"});
    let with_reason = json!({"feedback": [{"card": uuid, "outcome": "overridden",
        "overrideReason": reason, "outcomeTimestamp": "2026-11-25T10:00:00Z"}]});
    let (status, body) = s.post(fb, &with_reason).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"stored": 0, "updated": 1, "duplicates": 0}));
    // The bare repeat neither erases the reason nor counts as a change.
    let (_, body) = s.post(fb, &bare).await;
    assert_eq!(body, json!({"stored": 0, "updated": 0, "duplicates": 1}));
    let (stored, revision): (Value, i32) = sqlx::query_as(
        "SELECT override_reason, revision FROM card_feedback WHERE card_uuid = $1::uuid",
    )
    .bind(&uuid)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(stored["userComment"], "family meeting");
    assert_eq!(revision, 2);
    // 101 items: 400, nothing stored.
    let many: Vec<Value> = (0..101)
        .map(|i| {
            json!({"card": uuid, "outcome": "overridden",
            "outcomeTimestamp": format!("2026-11-25T11:{:02}:{:02}Z", i / 60, i % 60)})
        })
        .collect();
    let (status, body) = s.post(fb, &json!({"feedback": many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(outcome_text(&body).contains("at most 100"), "{body}");
}

/// All 69 MIMIC requests, with their prefetch and without: the stored assessment's P/F is the
/// §6.1 oracle's (`mimic-iv-demo-lrt-pf-kb.csv`, knowledge base §9 D0) where an FiO2 pairs within
/// 60 min, refused (null) otherwise, and the card shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_69_mimic_requests_agree_with_the_expected_pf_with_and_without_prefetch() {
    let s = setup().await;
    let expected = expected_pf();
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    for r in hook_requests() {
        let mut outcomes = Vec::new();
        for with_prefetch in [true, false] {
            let mut request = mimic_request(&r.patient);
            if !with_prefetch {
                request.as_object_mut().unwrap().remove("prefetch");
            }
            let (status, body) = s.post(PV, &request).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", r.patient);
            let (pf, evaluated_at): (Option<f64>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
                "SELECT pf_ratio, evaluated_at FROM evaluation WHERE hook_instance = $1 AND role = 'active'",
            )
            .bind(request["hookInstance"].as_str().unwrap())
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
            let quality: Value = sqlx::query_scalar(
                "SELECT snapshot->'data_quality' FROM evaluation WHERE hook_instance = $1 AND role = 'active'",
            )
            .bind(request["hookInstance"].as_str().unwrap())
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
            assert!(
                !quality.to_string().contains("operation_outcome"),
                "{}: the FHIR server warned about a search: {quality}",
                r.patient
            );
            let detail = body["cards"][0]["detail"].as_str().unwrap_or("");
            // No card when nothing is actionable (§9 D12); a card shows the P/F it used.
            if let Some(pf) = pf.filter(|_| !detail.is_empty()) {
                assert!(
                    detail.contains(&format!("| P/F | {pf} mmHg |")),
                    "{}: P/F {pf} not on the card:\n{detail}",
                    r.patient
                );
            }
            outcomes.push((pf, evaluated_at));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "{}: prefetch and FHIR server differ",
            r.patient
        );
        let pf = outcomes[0].0;
        let e = expected
            .get(&r.patient)
            .unwrap_or_else(|| panic!("{} is not in the §6.1 oracle", r.patient));
        match (e.pf_ratio, pf) {
            (Some(want), Some(pf)) => {
                assert!((pf - want).abs() < 0.05, "{}: {pf} vs {want}", r.patient);
                *summary.entry("paired within 60 min").or_default() += 1;
            }
            (None, None) => *summary.entry("no FiO2 within 60 min, no P/F").or_default() += 1,
            (want, got) => panic!("{}: P/F {got:?} where §6.1 gives {want:?}", r.patient),
        }
    }
    eprintln!("{summary:?}");
    assert_eq!(summary["paired within 60 min"], 10);
    assert_eq!(summary["no FiO2 within 60 min, no P/F"], 59);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_evaluations_api() {
    let s = setup().await;
    let live = s
        .app
        .http
        .get(s.app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready: Value = s
        .app
        .http
        .get(s.app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "pass");
    let (status, body) = s.post(PV, &mimic_request("mimic-10037975")).await;
    assert_eq!(status, StatusCode::OK);
    let id = body["cards"][0]["extension"]["org.lrt-cds"]["evaluationId"]
        .as_str()
        .unwrap()
        .to_string();
    let api = s.aud("/api/v1");
    let res = s
        .app
        .http
        .get(s.app.url(&format!("/api/v1/evaluations/{id}")))
        .bearer_auth(s.client.token(&api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["patient_id"], "mimic-10037975");
    assert_eq!(e["assessment"]["pf_ratio"], 61.0);
    let list: Value = s
        .app
        .http
        .get(
            s.app
                .url("/api/v1/evaluations?patient=mimic-10037975&role=active"),
        )
        .bearer_auth(s.client.token(&api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["evaluations"].as_array().unwrap().len(), 1);
    let res = s
        .app
        .http
        .get(s.app.url("/api/v1/evaluations"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let metrics = s
        .app
        .http
        .get(s.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("lrt_hook_calls_total"), "{metrics}");
}

/// `openapi/openapi.yaml` and the router agree: every documented operation is routed, and
/// every route the service answers is documented.
/// Readiness waits for the trusted issuer's JWK Set: with the EHR's key server down at start
/// the service answers 503 on `/health/ready` (`jwks.pending` 1), and turns ready by itself once
/// the key server is up (the warm-up retries), with no call needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_trusted_issuers_jwks_is_loaded() {
    let client = CdsClient::new("https://ehr.late-keys.example");
    // An address with nothing listening yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = app(&client, &format!("http://{addr}/jwks.json")).await;
    let ready = || async {
        let res = app.http.get(app.url("/health/ready")).send().await.unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "fail");
    assert_eq!(body["checks"]["database"], "pass");
    assert_eq!(body["checks"]["jwks"]["pending"], 1);

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _keys = JwksServer::start_on(listener, client.jwks());
    let mut seen = (status, body);
    for _ in 0..100 {
        seen = ready().await;
        if seen.0 == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        seen.0,
        StatusCode::OK,
        "ready once the keys load: {}",
        seen.1
    );
    assert_eq!(
        seen.1["checks"]["jwks"],
        json!({"status": "pass", "pending": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_router() {
    let s = setup().await;
    let doc: Value =
        serde_saphyr::from_str(lrt_server::service::routes::health::OPENAPI).expect("valid YAML");
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let concrete = |p: &str| {
        p.replace(
            "{id}",
            if p.starts_with("/api") {
                "00000000-0000-0000-0000-000000000000"
            } else {
                "lrt-patient-view"
            },
        )
    };
    for (method, path) in &documented {
        let res = s
            .app
            .http
            .request(method.parse().unwrap(), s.app.url(&concrete(path)))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !text.contains("no such route"),
            "{method} {path} is documented but not routed ({status})"
        );
    }
    let routed = [
        ("GET", "/cds-services"),
        ("POST", "/cds-services/{id}"),
        ("POST", "/cds-services/{id}/feedback"),
        ("GET", "/api/v1/evaluations"),
        ("POST", "/api/v1/evaluations"),
        ("GET", "/api/v1/evaluations/{id}"),
        ("GET", "/api/v1/pages"),
        ("GET", "/api/v1/pages/{id}"),
        ("POST", "/api/v1/pages/{id}/acknowledge"),
        ("POST", "/api/v1/pages/{id}/retry"),
        ("POST", "/fhir/subscription-notification"),
        ("GET", "/api/v1/subscription-notifications"),
        ("GET", "/api/v1/subscription-notifications/{id}"),
        ("POST", "/api/v1/subscription-notifications/{id}/retry"),
        ("GET", "/api/v1/rulesets"),
        ("GET", "/api/v1/quality/alerts"),
        ("GET", "/api/v1/quality/feedback"),
        ("GET", "/api/v1/quality/consults"),
        ("GET", "/api/v1/quality/shadow"),
        ("GET", "/api/v1/quality/patients"),
        ("GET", "/api/v1/quality/data-quality"),
        ("GET", "/api/v1/quality/measures"),
        ("GET", "/api/v1/quality/measures/{id}"),
        ("POST", "/api/v1/quality/validation"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.yaml"),
        ("GET", "/dashboard/session"),
    ];
    for (method, path) in routed {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is routed but not documented"
        );
        assert_ne!(
            lrt_server::service::routes::route_label(&concrete(path)),
            "other",
            "{path}"
        );
    }
    assert_eq!(documented.len(), routed.len(), "{documented:?}");
}

/// A shadow version (here: 0.1.1, pairing FiO2 without a time limit) is evaluated and stored
/// beside the active one, and never shown: the response is the active version's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_version_is_evaluated_and_stored_but_never_shown() {
    use lrt_engine::testing::{copy_shipped_version, edit_file};
    let root = tempfile::tempdir().unwrap();
    copy_shipped_version(root.path());
    let shadow_dir = root.path().join("lrt-ruleset/0.1.1");
    std::fs::create_dir_all(&shadow_dir).unwrap();
    for entry in std::fs::read_dir(root.path().join("lrt-ruleset/0.1.0")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, shadow_dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    edit_file(
        &shadow_dir.join("ruleset.yaml"),
        "version: 0.1.0",
        "version: 0.1.1",
    );
    edit_file(
        &shadow_dir.join("parameters.yaml"),
        "fio2_pairing_window_min: {value: 60,",
        "fio2_pairing_window_min: {value: 1000000000,",
    );
    std::fs::write(
        root.path().join("index.json"),
        json!({"active": "lrt-ruleset/0.1.0", "shadow": "lrt-ruleset/0.1.1", "versions": {
            "lrt-ruleset/0.1.0": {"status": "draft", "sha256": null},
            "lrt-ruleset/0.1.1": {"status": "draft", "sha256": null}}})
        .to_string(),
    )
    .unwrap();

    let client = CdsClient::new(ISS);
    let jwks = JwksServer::start(client.jwks()).await;
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks.url.parse().unwrap());
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let fhir_base = fhir().base.clone();
    let rules_dir = root.path().to_path_buf();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.fhir_allow = vec![fhir_base];
        c.rules_dir = rules_dir;
        c.evaluation_time = lrt_server::service::config::EvaluationTime::NewestBloodGas;
    })
    .await;
    let s = Setup { client, jwks, app };
    // mimic-10002428: the file's P/F 200 pairs an FiO2 older than 60 min.
    let request = mimic_request("mimic-10002428");
    let (status, body) = s.post(PV, &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<(String, String, Option<f64>, Value)> = sqlx::query_as(
        "SELECT role, ruleset_version, pf_ratio, response FROM evaluation WHERE hook_instance = $1 ORDER BY role",
    )
    .bind(request["hookInstance"].as_str().unwrap())
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2),
        ("active", "0.1.0", None)
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2),
        ("shadow", "0.1.1", Some(200.0))
    );
    assert_eq!(rows[0].3, body, "the response sent is the active version's");
    assert_ne!(rows[1].3, body);
}

/// An issuer with a tenant allow list: a token without `tenant` or with another tenant is a bare
/// 401; the allowed tenant is accepted and stored with the evaluation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_outside_the_issuers_allow_list_are_rejected() {
    let client = CdsClient::new(ISS);
    let jwks = JwksServer::start(client.jwks()).await;
    let mut issuer = TrustedIssuer::new(client.iss.clone());
    issuer.jwks_url = Some(jwks.url.parse().unwrap());
    issuer.tenants = Some(vec!["hospital-a".into()]);
    let mut auth = AuthConfig::new(vec![issuer]);
    auth.allow_insecure_loopback_http = true;
    let fhir_base = fhir().base.clone();
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.fhir_allow = vec![fhir_base];
        c.evaluation_time = lrt_server::service::config::EvaluationTime::NewestBloodGas;
    })
    .await;
    let s = Setup { client, jwks, app };
    let aud = s.aud(PV);
    let request = mimic_request("mimic-10037975");
    for (tenant, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("hospital-b"), StatusCode::UNAUTHORIZED),
        (Some("hospital-a"), StatusCode::OK),
    ] {
        let mut claims = s.client.claims(&aud);
        if let Some(t) = tenant {
            claims["tenant"] = json!(t);
        }
        let token = s.client.sign(&s.client.header(), &claims);
        let (status, _) = s.post_with(PV, &request, Some(&token)).await;
        assert_eq!(status, expected, "tenant {tenant:?}");
    }
    let tenant: Option<String> =
        sqlx::query_scalar("SELECT tenant FROM evaluation WHERE hook_instance = $1")
            .bind(request["hookInstance"].as_str().unwrap())
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(tenant.as_deref(), Some("hospital-a"));
}

/// Issue 8: an unknown member holding an array and empty arrays in any prefetched resource
/// once hung the request forever (fhirbolt's lenient mode) or panicked; two such calls took
/// the whole service down. Now they are read (the members ignored) and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_prefetch_is_answered_and_the_service_stays_up() {
    let s = setup().await;
    for _ in 0..2 {
        let mut r = mimic_request("mimic-10037975");
        r["prefetch"]["Patient"]["fooArr"] = json!([1, 2]);
        r["prefetch"]["Patient"]["name"] = json!([]);
        r["prefetch"]["Patient"]["extension"] = json!([]);
        let entries = r["prefetch"]["Observation"]["entry"]
            .as_array_mut()
            .unwrap();
        entries[0]["resource"]["code"]["coding"] = json!([]);
        entries[0]["resource"]["vendorArr"] = json!([[1], {"a": []}]);
        let call = s.post(PV, &r);
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the call is answered (no hang)");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let live = s
        .app
        .http
        .get(s.app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

/// Sends the headers of a POST announcing a body of `len` bytes, and reads the answer that comes
/// before any of the body: (status, body text).
async fn announce_body(app: &TestApp, path: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("an answer before the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Issue 8: the configured body limit (8 MiB by default) is the real one, and every error
/// status a layer or axum answers (413, 405, 404) carries an OperationOutcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_and_bare_errors_answer_an_operation_outcome() {
    let s = setup().await;
    // 3 MB: above axum's own default of 2 MiB, under the configured 8 MiB.
    let mut r = mimic_request("mimic-10037975");
    r["prefetch"]["Patient"]["vendorNote"] = json!("x".repeat(3_000_000));
    let (status, body) = s.post(PV, &r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 9 MiB: refused with an OperationOutcome from the declared length, before the body is
    // read. (A client that keeps writing after the answer may see the connection closed: the
    // request is sent here as a careful client would, headers first, and the answer read.)
    let (status, body) = announce_body(&s.app, PV, 9 * 1024 * 1024).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert!(
        outcome_text(&body).contains("larger than allowed"),
        "{body}"
    );
    // A method the route does not have.
    let res = s.app.http.get(s.app.url(PV)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/fhir+json"
    );
    outcome_text(&res.json().await.unwrap());
    // An unknown route.
    let res = s
        .app
        .http
        .get(s.app.url("/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    outcome_text(&res.json().await.unwrap());
}

/// Issue 8: a NUL character (which PostgreSQL cannot store) in an id, a unit or a query
/// parameter answered 500; it is a 400 naming the field, before any work is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_naming_the_field() {
    let s = setup().await;
    let mut r = mimic_request("mimic-10037975");
    r["prefetch"]["Observation"]["entry"][0]["resource"]["valueQuantity"]["unit"] =
        json!("mm\u{0}Hg");
    let (status, body) = s.post(PV, &r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = outcome_text(&body);
    assert!(
        text.contains("/prefetch/Observation/entry/0/resource/valueQuantity/unit"),
        "{text}"
    );
    let hi = r["hookInstance"].as_str().unwrap();
    assert_eq!(stored_rows(&s.app, hi).await, 0);
    let api = s.app.url("/api/v1/evaluations?patient=mimic%00x");
    let token = s.client.token(&s.aud("/api/v1"));
    let res = s.app.http.get(api).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(outcome_text(&res.json().await.unwrap()).contains("`patient`"));
}

/// Issue 8: while PostgreSQL (the `jti` replay store) cannot answer, a valid JWT was answered 401
/// with no body, so a client believed its credentials were wrong. It is a 503 OperationOutcome
/// with `Retry-After`; a forged token is still a bare 401 (it fails before the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_store_down_is_503_not_401() {
    let s = setup().await;
    // The app's pool is this pool: closing it is the database becoming unreachable for the app.
    s.app.pool.close().await;
    let request = mimic_request("mimic-10037975");
    let token = s.client.token(&s.aud(PV));
    let res = s
        .app
        .http
        .post(s.app.url(PV))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert!(outcome_text(&body).contains("retry"), "{body}");
    let (status, body) = s.post_with(PV, &request, Some("not.a.jwt")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, Value::Null);
}

/// Issue 9: a call's `jti`, evaluation and `hook_call` row are one transaction, and the lookup of
/// a stored `hookInstance` runs beside the prefetch. Calls racing with one token (each its own
/// hookInstance) store once: one answers 200, the others 401, and nothing of theirs is kept.
/// Calls racing with one hookInstance (each its own token) all get the same cards from one
/// evaluation, and each keeps its row and its `jti`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_calls_with_one_token_store_once_and_with_one_hook_instance_share_the_cards() {
    let s = std::sync::Arc::new(setup().await);
    let race = |calls: Vec<(Value, String)>| {
        let mut set = tokio::task::JoinSet::new();
        for (body, token) in calls {
            let s = s.clone();
            set.spawn(async move { s.post_with(PV, &body, Some(&token)).await });
        }
        set.join_all()
    };

    let token = s.client.token(&s.aud(PV));
    let one_token = (0..6)
        .map(|_| (mimic_request("mimic-10037975"), token.clone()))
        .collect();
    let answers = race(one_token).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((ok, refused), (1, 5), "{statuses:?}");
    assert_eq!(
        s.count("SELECT count(*) FROM evaluation WHERE role = 'active'")
            .await,
        1
    );
    assert_eq!(s.count("SELECT count(*) FROM hook_call").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM jwt_replay").await, 1);

    let request = mimic_request("mimic-10037975");
    let one_hook_instance = (0..6)
        .map(|_| (request.clone(), s.client.token(&s.aud(PV))))
        .collect();
    let answers = race(one_hook_instance).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["cards"], answers[0].1["cards"], "the same cards");
    }
    // With the first race's call: two evaluations, seven rows.
    let evaluations = "SELECT count(*) FROM evaluation WHERE role = 'active'";
    assert_eq!(
        s.count(evaluations).await,
        2,
        "one for the raced hookInstance"
    );
    let rows = "SELECT count(*) FROM hook_call WHERE status = 200";
    assert_eq!(s.count(rows).await, 7, "a row per call");
    assert_eq!(
        s.count("SELECT count(*) FROM jwt_replay").await,
        7,
        "a jti per call"
    );
}

/// Issue 9: one commit per call. A call's token `jti`, its evaluations and its `hook_call` row
/// are written together; a replayed `jti` answers 401 and stores nothing, whether it comes with
/// a new `hookInstance`, the same one, or a body that would be refused (400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_commits_its_jti_evaluations_and_row_together_and_a_replay_stores_nothing() {
    let s = setup().await;
    let request = mimic_request("mimic-10037975");
    let token = s.client.token(&s.aud(PV));
    let (status, _) = s.post_with(PV, &request, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.count("SELECT count(*) FROM evaluation WHERE role = 'active'")
            .await,
        1
    );
    assert_eq!(s.count("SELECT count(*) FROM hook_call").await, 1);
    assert_eq!(s.count("SELECT count(*) FROM jwt_replay").await, 1);
    let (id, row_evaluation): (uuid::Uuid, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT e.id, c.evaluation_id FROM evaluation e, hook_call c WHERE e.role = 'active'",
    )
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(Some(id), row_evaluation, "the row names its evaluation");

    // The same token with a new hookInstance, with the same one, and with a bad body: 401.
    let mut again = request.clone();
    again["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
    let mut bad = request.clone();
    bad["hookInstance"] = json!("not-a-uuid");
    for body in [&again, &request, &bad] {
        let (status, answer) = s.post_with(PV, body, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    }
    assert_eq!(
        s.count("SELECT count(*) FROM evaluation WHERE role = 'active'")
            .await,
        1
    );
    assert_eq!(
        s.count("SELECT count(*) FROM hook_call").await,
        1,
        "401s are not written"
    );

    // A fresh token with a bad body: 400; its jti is spent (the same token again is 401) and
    // its row is written after the answer.
    let token = s.client.token(&s.aud(PV));
    let (status, _) = s.post_with(PV, &bad, Some(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.post_with(PV, &request, Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a jti spent on a 400");
    let mut rows = 0;
    for _ in 0..50 {
        rows = s
            .count("SELECT count(*) FROM hook_call WHERE status = 400")
            .await;
        if rows == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows, 1, "the 400 call's row");

    // A retry of the first call with a fresh token: the stored cards, one more row, no new
    // evaluation.
    let (status, _) = s.post(PV, &request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.count("SELECT count(*) FROM evaluation WHERE role = 'active'")
            .await,
        1
    );
    assert_eq!(
        s.count("SELECT count(*) FROM hook_call WHERE status = 200")
            .await,
        2
    );
}
