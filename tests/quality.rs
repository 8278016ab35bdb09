//! The quality aggregates under `/api/v1/quality/…` (issue 10, item 1), end to end: a real
//! service on a database of its own, seeded by real CDS Hooks calls (synthetic patients with
//! full prefetch, ES384 JWTs of two EHR tenants and of the quality team), feedback and pages
//! (a real webhook receiver); then each aggregate is read through the API and compared with
//! figures worked out by hand here.
//!
//! Wall-clock facts (when a call was received, how long it took, when a page was delivered or
//! acknowledged) are set afterwards to fixed values on the rows the calls wrote, so that the
//! buckets, latency percentiles and delays are exact.

use std::time::Duration;

use lrt_auth::AuthConfig;
use lrt_e2e::cds_client::TenantCaller;
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE, Gas, STABLE};
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::paging::WebhookConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PV: &str = "/cds-services/lrt-patient-view";
const SECRET: &str = "test-only-webhook-secret";

struct Setup {
    app: TestApp,
    a: TenantCaller,
    b: TenantCaller,
    quality: TenantCaller,
    receiver: PagerReceiver,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    lrt_fhir::client::install_crypto_provider();
    let a = TenantCaller::new("https://ehr-a.test.example", Some("hospital-a")).await;
    let b = TenantCaller::new("https://ehr-b.test.example", Some("hospital-b")).await;
    let quality = TenantCaller::new("https://quality.test.example", None).await;
    let receiver = PagerReceiver::start(SECRET).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = dir.path().join("webhook");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("the secret file");
    let mut auth = AuthConfig::new(vec![a.issuer(), b.issuer(), quality.issuer()]);
    auth.allow_insecure_loopback_http = true;
    let (url, quality_iss) = (receiver.url.clone(), quality.client.iss.clone());
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.quality_issuers = vec![quality_iss];
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.paging.webhook = Some(WebhookConfig {
            url,
            secret_file: Some(secret),
            secret_env: None,
            timeout_ms: 2_000,
        });
        c.paging.poll_interval_ms = 50;
        // A failed delivery is retried soon, and dead-lettered after 3 s.
        c.paging.initial_backoff_ms = 50;
        c.paging.max_backoff_ms = 200;
        c.paging.horizon_s = 3;
    })
    .await;
    Setup {
        app,
        a,
        b,
        quality,
        receiver,
        _dir: dir,
    }
}

impl Setup {
    /// POSTs `body` to `path` as `who` (the token's `aud` is the endpoint).
    async fn post(&self, who: &TenantCaller, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .post(self.app.url(path))
            .bearer_auth(who.token(&self.app.url(path)))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        let text = res.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GETs an `/api/v1` path as `who`.
    async fn get(&self, who: &TenantCaller, path_and_query: &str) -> (StatusCode, Value) {
        let res = self
            .app
            .http
            .get(self.app.url(path_and_query))
            .bearer_auth(who.token(&self.app.url("/api/v1")))
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        let text = res.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A patient-view call by `who`, answered 200: the request sent and the cards.
    async fn hook(&self, who: &TenantCaller, patient: &str, gases: &[Gas]) -> (Value, Value) {
        let request = synthetic::patient_view(patient, gases);
        let (status, body) = self.post(who, PV, &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (request, body["cards"].clone())
    }

    /// Sets when the call of `hook_instance` was received and how long it took (every row of
    /// that hookInstance, which a retry has two of, gets the `nth` of `times`/`latencies` in
    /// `hook_call.id` order).
    async fn set_call(&self, hook_instance: &str, times: &[&str], latencies: &[f64]) {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM hook_call WHERE hook_instance = $1 ORDER BY id")
                .bind(hook_instance)
                .fetch_all(&self.app.pool)
                .await
                .expect("hook_call rows");
        assert_eq!(ids.len(), times.len(), "rows of {hook_instance}");
        for ((id, at), ms) in ids.iter().zip(times).zip(latencies) {
            sqlx::query(
                "UPDATE hook_call SET received_at = $2::timestamptz, latency_ms = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(ms)
            .execute(&self.app.pool)
            .await
            .expect("updated");
        }
    }

    async fn call_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM hook_call")
            .fetch_one(&self.app.pool)
            .await
            .expect("a count")
    }
}

fn patient(tag: &str) -> String {
    format!(
        "q-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn hook_instance(request: &Value) -> String {
    request["hookInstance"]
        .as_str()
        .expect("a hookInstance")
        .to_string()
}

fn close(actual: &Value, expected: f64) -> bool {
    actual.as_f64().is_some_and(|a| (a - expected).abs() < 1e-9)
}

const WINDOW: &str = "from=2026-11-02T00:00:00Z&to=2026-11-05T00:00:00Z";

/// Alerts: calls and cards per day, by service, indicator, category and recommendation, the card
/// share, latency percentiles and errors by status; each tenant counts its own calls only.
///
/// Seeded calls (all patient-view, synthetic patients with full prefetch):
///
/// | # | who | patient | received | latency | answer |
/// | - | --- | ------- | -------- | ------- | ------ |
/// | 1 | A | borderline | 11-02 10:00 | 10 ms | 200, 1 card |
/// | 2 | A | eligible | 11-02 11:00 | 20 ms | 200, 1 card |
/// | 3 | A | stable | 11-03 09:00 | 30 ms | 200, no card |
/// | 4 | A | #1 retried (same hookInstance) | 11-03 12:00 | 40 ms | 200, the same card |
/// | 5 | B | borderline | 11-02 15:00 | 50 ms | 200, 1 card |
/// | 6 | A | no Observation prefetch, no fhirServer | 11-04 08:00 | 1 ms | 412 |
/// | 7 | A | no context.patientId | 11-04 09:00 | 2 ms | 400 |
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_count_calls_cards_latency_and_errors_per_tenant() {
    let s = setup().await;
    let (r1, c1) = s.hook(&s.a, &patient("a1"), BORDERLINE).await;
    let (r2, c2) = s.hook(&s.a, &patient("a2"), ELIGIBLE).await;
    let (r3, c3) = s.hook(&s.a, &patient("a3"), STABLE).await;
    let (status, again) = s.post(&s.a, PV, &r1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["cards"], c1, "a retry answers the same cards");
    let (r5, c5) = s.hook(&s.b, &patient("b1"), BORDERLINE).await;
    // The cards the EHRs were shown: one each, none for the stable patient.
    assert_eq!(
        [&c1, &c2, &c3, &c5].map(|c| c.as_array().map_or(0, Vec::len)),
        [1, 1, 0, 1]
    );
    let indicators: Vec<&str> = [&c1, &c2, &c5]
        .iter()
        .map(|c| c[0]["indicator"].as_str().expect("an indicator"))
        .collect();

    let mut r6 = synthetic::patient_view(&patient("a6"), BORDERLINE);
    r6["prefetch"]
        .as_object_mut()
        .expect("prefetch")
        .remove("Observation");
    let (status, _) = s.post(&s.a, PV, &r6).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let mut r7 = synthetic::patient_view(&patient("a7"), BORDERLINE);
    r7["context"]
        .as_object_mut()
        .expect("context")
        .remove("patientId");
    let (status, _) = s.post(&s.a, PV, &r7).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Error rows are written after the answer.
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.call_rows().await == 7
        })
        .await,
        "seven hook_call rows"
    );
    s.set_call(
        &hook_instance(&r1),
        &["2026-11-02T10:00:00Z", "2026-11-03T12:00:00Z"],
        &[10.0, 40.0],
    )
    .await;
    s.set_call(&hook_instance(&r2), &["2026-11-02T11:00:00Z"], &[20.0])
        .await;
    s.set_call(&hook_instance(&r3), &["2026-11-03T09:00:00Z"], &[30.0])
        .await;
    s.set_call(&hook_instance(&r5), &["2026-11-02T15:00:00Z"], &[50.0])
        .await;
    s.set_call(&hook_instance(&r6), &["2026-11-04T08:00:00Z"], &[1.0])
        .await;
    s.set_call(&hook_instance(&r7), &["2026-11-04T09:00:00Z"], &[2.0])
        .await;

    // The quality team: all seven calls.
    let (status, q) = s
        .get(
            &s.quality,
            &format!("/api/v1/quality/alerts?{WINDOW}&interval=day"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(
        q["totals"],
        json!({"calls": 7, "answered": 5, "calls_with_cards": 4, "cards": 4, "errors": 2,
               "card_share": 0.8})
    );
    // 200 latencies 10, 20, 30, 40, 50: p50 30; p90 at rank 3.6 → 40 + 0.6 × 10 = 46;
    // p99 at rank 3.96 → 49.6.
    assert!(close(&q["latency_ms"]["p50"], 30.0), "{}", q["latency_ms"]);
    assert!(close(&q["latency_ms"]["p90"], 46.0), "{}", q["latency_ms"]);
    assert!(close(&q["latency_ms"]["p99"], 49.6), "{}", q["latency_ms"]);
    assert!(close(&q["latency_ms"]["max"], 50.0), "{}", q["latency_ms"]);
    assert_eq!(
        q["series"],
        json!([
            {"start": "2026-11-02T00:00:00Z", "calls": 3, "calls_with_cards": 3, "cards": 3, "errors": 0},
            {"start": "2026-11-03T00:00:00Z", "calls": 2, "calls_with_cards": 1, "cards": 1, "errors": 0},
            {"start": "2026-11-04T00:00:00Z", "calls": 2, "calls_with_cards": 0, "cards": 0, "errors": 2},
        ])
    );
    assert_eq!(
        q["by_service"],
        json!([{"service": "lrt-patient-view", "hook": "patient-view", "calls": 7,
                "calls_with_cards": 4, "cards": 4, "errors": 2}])
    );
    // Cards by indicator: calls 1 and 4 show c1's card, 2 shows c2's, 5 shows c5's.
    let mut expected_indicators = std::collections::BTreeMap::<&str, i64>::new();
    for i in [indicators[0], indicators[0], indicators[1], indicators[2]] {
        *expected_indicators.entry(i).or_default() += 1;
    }
    let mut by_indicator = std::collections::BTreeMap::<String, i64>::new();
    for row in q["by_indicator"].as_array().expect("by_indicator") {
        by_indicator.insert(
            row["indicator"].as_str().expect("a name").to_string(),
            row["cards"].as_i64().expect("a count"),
        );
    }
    let expected_indicators: std::collections::BTreeMap<String, i64> = expected_indicators
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(by_indicator, expected_indicators);
    // Categories of the answered calls: borderline #1, #4 (retry), #5; eligible #2;
    // not_indicated #3 (the stable patient: P/F 250).
    assert_eq!(
        q["by_category"],
        json!([
            {"category": "borderline", "calls": 3, "calls_with_cards": 3},
            {"category": "eligible", "calls": 1, "calls_with_cards": 1},
            {"category": "not_indicated", "calls": 1, "calls_with_cards": 0},
        ])
    );
    assert_eq!(
        q["errors_by_status"],
        json!([
            {"status": 400, "error_code": "bad_request", "calls": 1},
            {"status": 412, "error_code": "prefetch_unavailable", "calls": 1},
        ])
    );
    // Rule set 0.2.0 recommends an ECMO-centre consult for the borderline and eligible
    // patients (calls 1, 2, 4 and 5), nothing for the stable one.
    assert_eq!(
        q["by_recommendation"],
        json!([{"recommendation": "ECMO_CENTER_CONSULT", "calls": 4}])
    );

    // The same as CSV: one long table.
    let csv = s
        .app
        .http
        .get(
            s.app
                .url(&format!("/api/v1/quality/alerts?{WINDOW}&interval=day")),
        )
        .bearer_auth(s.quality.token(&s.app.url("/api/v1")))
        .header("accept", "text/csv")
        .send()
        .await
        .expect("an answer");
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(
        csv.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    let csv = csv.text().await.expect("a body");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "section,dimensions,measure,value");
    for row in [
        "totals,,calls,7",
        "totals,,card_share,0.8",
        "series,start=2026-11-03T00:00:00Z,calls,2",
        "errors_by_status,\"status=412;error_code=prefetch_unavailable\",calls,1",
        "by_category,category=eligible,calls,1",
        "by_recommendation,recommendation=ECMO_CENTER_CONSULT,calls,4",
    ] {
        assert!(lines.contains(&row), "{row} in\n{csv}");
    }

    // Tenant A: its six calls (four answered, its two errors), none of B's. Latencies of the
    // answered 10, 20, 30, 40: p50 25, p90 at rank 2.7 → 37, p99 at 2.97 → 39.7.
    let (status, a) = s
        .get(
            &s.a,
            &format!("/api/v1/quality/alerts?{WINDOW}&interval=week"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(
        a["totals"],
        json!({"calls": 6, "answered": 4, "calls_with_cards": 3, "cards": 3, "errors": 2,
               "card_share": 0.75})
    );
    assert!(close(&a["latency_ms"]["p50"], 25.0), "{}", a["latency_ms"]);
    assert!(close(&a["latency_ms"]["p90"], 37.0), "{}", a["latency_ms"]);
    assert!(close(&a["latency_ms"]["p99"], 39.7), "{}", a["latency_ms"]);
    // ISO weeks: 2026-11-02 is a Monday, so the window is one week.
    assert_eq!(
        a["series"],
        json!([{"start": "2026-11-02T00:00:00Z", "calls": 6, "calls_with_cards": 3, "cards": 3, "errors": 2}])
    );
    assert_eq!(
        a["errors_by_status"], q["errors_by_status"],
        "both errors are A's"
    );
    // Tenant B: its one call.
    let (_, b) = s
        .get(&s.b, &format!("/api/v1/quality/alerts?{WINDOW}"))
        .await;
    assert_eq!(
        b["totals"],
        json!({"calls": 1, "answered": 1, "calls_with_cards": 1, "cards": 1, "errors": 0,
               "card_share": 1.0})
    );
    // The quality team filtering on tenant B sees the same; on a category, only those calls.
    let (_, qb) = s
        .get(
            &s.quality,
            &format!("/api/v1/quality/alerts?{WINDOW}&tenant=hospital-b"),
        )
        .await;
    assert_eq!(qb["totals"], b["totals"]);
    let (_, qe) = s
        .get(
            &s.quality,
            &format!("/api/v1/quality/alerts?{WINDOW}&category=eligible"),
        )
        .await;
    assert_eq!(
        qe["totals"],
        json!({"calls": 1, "answered": 1, "calls_with_cards": 1, "cards": 1, "errors": 0,
               "card_share": 1.0})
    );
    // A window before the calls: zero everywhere, one empty bucket per day, no percentile.
    let (_, empty) = s
        .get(
            &s.quality,
            "/api/v1/quality/alerts?from=2026-10-01T00:00:00Z&to=2026-10-03T00:00:00Z",
        )
        .await;
    assert_eq!(empty["totals"]["calls"], 0);
    assert_eq!(empty["totals"]["card_share"], Value::Null);
    assert_eq!(empty["latency_ms"]["p50"], Value::Null);
    assert_eq!(empty["series"].as_array().map(Vec::len), Some(2));
}

/// A bad parameter is a 400 OperationOutcome naming it; no token is a bare 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_naming_the_parameter() {
    let s = setup().await;
    for (query, param) in [
        ("from=yesterday", "from"),
        ("to=2026-11-31T00:00:00Z", "to"),
        ("from=2026-11-05T00:00:00Z&to=2026-11-02T00:00:00Z", "from"),
        ("interval=hour", "interval"),
        (
            "from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=day",
            "interval",
        ),
        ("service=lrt-unknown", "service"),
        ("hook=encounter-start", "hook"),
        ("category=ECMO%20eligible", "category"),
        ("limit=10", "limit"),
    ] {
        let (status, body) = s
            .get(&s.quality, &format!("/api/v1/quality/alerts?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{query}");
        let text = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(text.contains(&format!("`{param}`")), "{query}: {text}");
    }
    let (status, body) = s
        .get(&s.quality, "/api/v1/quality/alerts?colour=blue")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let res = s
        .app
        .http
        .get(s.app.url("/api/v1/quality/alerts"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A resource read by fhirbolt's FHIR R4 model in strict mode (no unknown member, every type
/// right): the check of the MeasureReports and Measures.
fn fhir_r4(resource: &Value) {
    use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
    let read: Result<fhirbolt::model::r4::Resource, _> = fhirbolt::json::from_json_value(
        resource.clone(),
        Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        }),
    );
    if let Err(e) = read {
        panic!("not FHIR R4: {e}\n{resource:#}");
    }
}

impl Setup {
    /// GETs an `/api/v1` path as `who`, asking for FHIR (`application/fhir+json`).
    async fn get_fhir(
        &self,
        who: &TenantCaller,
        path_and_query: &str,
    ) -> (StatusCode, String, Value) {
        let res = self
            .app
            .http
            .get(self.app.url(path_and_query))
            .bearer_auth(who.token(&self.app.url("/api/v1")))
            .header("accept", "application/fhir+json")
            .send()
            .await
            .expect("the service answers");
        let status = res.status();
        let media = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = res.text().await.expect("a body");
        (
            status,
            media,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }
}

/// The count of a MeasureReport group's population `code`.
fn population(group: &Value, code: &str) -> Option<i64> {
    group["population"]
        .as_array()?
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)?["count"]
        .as_i64()
}

/// The evaluation id a card names (`extension."org.lrt-cds".evaluationId`).
fn evaluation_of(card: &Value) -> String {
    card["extension"]["org.lrt-cds"]["evaluationId"]
        .as_str()
        .expect("the card names its evaluation")
        .to_string()
}

impl Setup {
    /// The stored evaluation `id` as `who` reads it.
    async fn evaluation(&self, who: &TenantCaller, id: &str) -> Value {
        let (status, e) = self.get(who, &format!("/api/v1/evaluations/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{e}");
        e
    }

    /// Sends one feedback item on `card` as `who`.
    async fn feedback(
        &self,
        who: &TenantCaller,
        card: &Value,
        outcome: &str,
        at: &str,
        reason: Option<Value>,
    ) {
        let mut item = json!({"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": at});
        if outcome == "accepted" {
            item["acceptedSuggestions"] = json!([{"id": card["suggestions"][0]["uuid"]}]);
        }
        if let Some(r) = reason {
            item["overrideReason"] = r;
        }
        let (status, body) = self
            .post(who, &format!("{PV}/feedback"), &json!({"feedback": [item]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Counts by outcome, as the aggregate gives them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Outcomes {
    cards: i64,
    accepted: i64,
    overridden: i64,
    no_feedback: i64,
}

impl Outcomes {
    fn add(&mut self, outcome: Option<&str>) {
        self.cards += 1;
        match outcome {
            Some("accepted") => self.accepted += 1,
            Some("overridden") => self.overridden += 1,
            _ => self.no_feedback += 1,
        }
    }

    fn of(v: &Value) -> Outcomes {
        let n = |k: &str| v[k].as_i64().unwrap_or(-1);
        Outcomes {
            cards: n("cards"),
            accepted: n("accepted"),
            overridden: n("overridden"),
            no_feedback: n("no_feedback"),
        }
    }
}

/// Feedback: per card (its latest outcome), per card type and recommendation, override reasons
/// ranked, cards without feedback; another tenant's cards not counted.
///
/// Tenant A's cards (one per patient-view call) and what was done with them:
///
/// | card | patient | feedback (in order) | counts as |
/// | ---- | ------- | ------------------- | --------- |
/// | 1 | borderline | accepted | accepted |
/// | 2 | eligible | overridden: goals-of-care + comment | overridden |
/// | 3 | borderline | overridden: goals-of-care, then accepted | accepted |
/// | 4 | eligible | none | no feedback |
/// | 5 | eligible | overridden: not-a-candidate | overridden |
/// | 6 | borderline | overridden: a comment only | overridden |
///
/// Tenant B: one borderline card, accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_counts_outcomes_per_card_type_and_recommendation_and_ranks_reasons() {
    let s = setup().await;
    let gases = [
        BORDERLINE, ELIGIBLE, BORDERLINE, ELIGIBLE, ELIGIBLE, BORDERLINE,
    ];
    let mut cards = Vec::new();
    for (i, g) in gases.iter().enumerate() {
        let (_, c) = s.hook(&s.a, &patient(&format!("f{i}")), g).await;
        cards.push(c[0].clone());
    }
    let (_, b_cards) = s.hook(&s.b, &patient("fb"), BORDERLINE).await;
    let coded = |code: &str, display: &str| json!({"code": code, "system": "urn:lrt:override-reason", "display": display});
    let (t1, t2) = ("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
    s.feedback(&s.a, &cards[0], "accepted", t1, None).await;
    s.feedback(&s.a, &cards[1], "overridden", t1,
        Some(json!({"reason": coded("goals-of-care", "Goals of care"), "userComment": "family meeting"}))).await;
    s.feedback(
        &s.a,
        &cards[2],
        "overridden",
        t1,
        Some(json!({"reason": coded("goals-of-care", "Goals of care")})),
    )
    .await;
    s.feedback(&s.a, &cards[2], "accepted", t2, None).await;
    s.feedback(
        &s.a,
        &cards[4],
        "overridden",
        t1,
        Some(json!({"reason": coded("not-a-candidate", "Not an ECMO candidate")})),
    )
    .await;
    s.feedback(
        &s.a,
        &cards[5],
        "overridden",
        t1,
        Some(json!({"userComment": "already discussed"})),
    )
    .await;
    s.feedback(&s.b, &b_cards[0], "accepted", t1, None).await;

    // By hand: the outcome of each of A's cards, its type (indicator) and its evaluation's
    // recommendations (read one by one through /api/v1/evaluations/{id}).
    let outcomes = [
        Some("accepted"),
        Some("overridden"),
        Some("accepted"),
        None,
        Some("overridden"),
        Some("overridden"),
    ];
    let mut by_type = std::collections::BTreeMap::<String, Outcomes>::new();
    let mut by_recommendation = std::collections::BTreeMap::<String, Outcomes>::new();
    for (card, outcome) in cards.iter().zip(outcomes) {
        let indicator = card["indicator"]
            .as_str()
            .expect("an indicator")
            .to_string();
        by_type.entry(indicator).or_default().add(outcome);
        let e = s.evaluation(&s.a, &evaluation_of(card)).await;
        for r in e["assessment"]["recommendations"]
            .as_array()
            .expect("recommendations")
        {
            by_recommendation
                .entry(r.as_str().expect("a code").to_string())
                .or_default()
                .add(outcome);
        }
    }

    let (status, a) = s.get(&s.a, "/api/v1/quality/feedback").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(
        a["totals"],
        json!({"cards": 6, "accepted": 2, "overridden": 3, "no_feedback": 1, "acceptance_rate": 0.4})
    );
    let got_types: std::collections::BTreeMap<String, Outcomes> = a["by_card_type"]
        .as_array()
        .expect("by_card_type")
        .iter()
        .map(|r| {
            assert_eq!(r["service"], "lrt-patient-view");
            (
                r["indicator"].as_str().expect("an indicator").to_string(),
                Outcomes::of(r),
            )
        })
        .collect();
    assert_eq!(got_types, by_type);
    let got_recommendations: std::collections::BTreeMap<String, Outcomes> = a["by_recommendation"]
        .as_array()
        .expect("by_recommendation")
        .iter()
        .map(|r| {
            (
                r["recommendation"].as_str().expect("a code").to_string(),
                Outcomes::of(r),
            )
        })
        .collect();
    assert_eq!(got_recommendations, by_recommendation);
    // Every overriding item counts (card 3's override too, though its latest is an acceptance);
    // ties ranked by code, a comment without a code last.
    assert_eq!(
        a["override_reasons"],
        json!([
            {"code": "goals-of-care", "system": "urn:lrt:override-reason", "display": "Goals of care",
             "overrides": 2, "with_comment": 1},
            {"code": "not-a-candidate", "system": "urn:lrt:override-reason",
             "display": "Not an ECMO candidate", "overrides": 1, "with_comment": 0},
            {"code": null, "system": null, "display": null, "overrides": 1, "with_comment": 1},
        ])
    );
    // One day's bucket holds them all.
    let today: Vec<&Value> = a["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|b| b["cards"].as_i64() != Some(0))
        .collect();
    assert_eq!(today.len(), 1);
    assert_eq!(
        Outcomes::of(today[0]),
        Outcomes {
            cards: 6,
            accepted: 2,
            overridden: 3,
            no_feedback: 1
        }
    );

    // B: its one accepted card. The quality team: all seven.
    let (_, b) = s.get(&s.b, "/api/v1/quality/feedback").await;
    assert_eq!(
        b["totals"],
        json!({"cards": 1, "accepted": 1, "overridden": 0, "no_feedback": 0, "acceptance_rate": 1.0})
    );
    assert_eq!(b["override_reasons"], json!([]));
    // The alert-acceptance MeasureReport of the same: 6 cards, 5 with feedback, 2 accepted.
    let (status, media, report) = s.get_fhir(&s.a, "/api/v1/quality/feedback").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(media, "application/fhir+json");
    fhir_r4(&report);
    assert_eq!(report["resourceType"], "MeasureReport");
    assert_eq!(report["type"], "summary");
    assert_eq!(
        report["measure"],
        s.app.url("/api/v1/quality/measures/lrt-alert-acceptance")
    );
    let group = &report["group"][0];
    assert_eq!(population(group, "initial-population"), Some(6));
    assert_eq!(population(group, "denominator"), Some(5));
    assert_eq!(population(group, "numerator"), Some(2));
    assert!(close(&group["measureScore"]["value"], 0.4), "{group}");

    let (_, q) = s.get(&s.quality, "/api/v1/quality/feedback").await;
    assert_eq!(
        Outcomes::of(&q["totals"]),
        Outcomes {
            cards: 7,
            accepted: 3,
            overridden: 3,
            no_feedback: 1
        }
    );
}

/// The newest page of a patient, from `/api/v1/pages` (waiting until one is written).
async fn page_of(s: &Setup, who: &TenantCaller, patient: &str) -> Value {
    let path = format!("/api/v1/pages?patient={patient}");
    let written = eventually(Duration::from_secs(10), || async {
        let (_, list) = s.get(who, &path).await;
        list["pages"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    assert!(written, "a page for {patient}");
    let (_, list) = s.get(who, &path).await;
    list["pages"][0].clone()
}

/// Waits until the page of `patient` is in `state`.
async fn page_state(s: &Setup, who: &TenantCaller, patient: &str, state: &str) -> Value {
    let ok = eventually(Duration::from_secs(15), || async {
        page_of(s, who, patient).await["state"] == state
    })
    .await;
    let page = page_of(s, who, patient).await;
    assert!(ok, "page of {patient} {state}: {page}");
    page
}

/// Consults: pages by reason and urgency, time from the qualifying evaluation to delivery and to
/// acknowledgement (median and p90), dead-lettered and retried pages; another tenant's page not
/// counted.
///
/// Tenant A's pages (times set afterwards on 2026-11-10, the evaluation's time = the page's, as
/// the one transaction writes them):
///
/// | page | patient | delivery | page at | delivered | acknowledged |
/// | ---- | ------- | -------- | ------- | --------- | ------------ |
/// | 1 | borderline | first attempt | 10:00:00 | +20 s | +300 s |
/// | 2 | eligible | first attempt | 11:00:00 | +40 s | +900 s |
/// | 3 | borderline | fails once, then delivered | 12:00:00 | +60 s | no |
/// | 4 | borderline | fails until dead-lettered (3 s horizon) | 13:00:00 | never | no |
///
/// To delivery: 20, 40, 60 s → median 40, p90 at rank 1.8 → 40 + 0.8 × 20 = 56.
/// To acknowledgement: 300, 900 s → median 600, p90 at rank 0.9 → 300 + 0.9 × 600 = 840.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consults_count_pages_timeliness_dead_and_retried() {
    let s = setup().await;
    let ps: Vec<String> = (1..=4).map(|i| patient(&format!("c{i}"))).collect();
    s.hook(&s.a, &ps[0], BORDERLINE).await;
    s.hook(&s.a, &ps[1], ELIGIBLE).await;
    let p1 = page_state(&s, &s.a, &ps[0], "delivered").await;
    let p2 = page_state(&s, &s.a, &ps[1], "delivered").await;
    s.receiver.fail_next(1);
    s.hook(&s.a, &ps[2], BORDERLINE).await;
    let p3 = page_state(&s, &s.a, &ps[2], "delivered").await;
    s.receiver.always_fail(true);
    s.hook(&s.a, &ps[3], BORDERLINE).await;
    let p4 = page_state(&s, &s.a, &ps[3], "dead").await;
    s.receiver.always_fail(false);
    let pb = patient("cb");
    s.hook(&s.b, &pb, ELIGIBLE).await;
    page_state(&s, &s.b, &pb, "delivered").await;
    // A stable patient pages no one.
    s.hook(&s.a, &patient("c-stable"), STABLE).await;
    // Pages 1 and 2 acknowledged by A.
    for p in [&p1, &p2] {
        let res = s
            .app
            .http
            .post(s.app.url(&format!(
                "/api/v1/pages/{}/acknowledge",
                p["id"].as_str().expect("an id")
            )))
            .bearer_auth(s.a.token(&s.app.url("/api/v1")))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), StatusCode::OK);
    }
    let day = "2026-11-10";
    for (page, at, delivered, acked) in [
        (&p1, "10:00:00", Some("10:00:20"), Some("10:05:00")),
        (&p2, "11:00:00", Some("11:00:40"), Some("11:15:00")),
        (&p3, "12:00:00", Some("12:01:00"), None),
        (&p4, "13:00:00", None, None),
    ] {
        let id: uuid::Uuid = page["id"].as_str().expect("an id").parse().expect("a uuid");
        let at = format!("{day}T{at}Z");
        let stamp = |t: Option<&str>| t.map(|t| format!("{day}T{t}Z"));
        sqlx::query(
            "UPDATE consult_page SET created_at = $2::timestamptz, acknowledged_at = $3::timestamptz \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&at)
        .bind(stamp(acked))
        .execute(&s.app.pool)
        .await
        .expect("page updated");
        sqlx::query(
            "UPDATE evaluation SET created_at = $2::timestamptz \
             WHERE id = (SELECT evaluation_id FROM consult_page WHERE id = $1)",
        )
        .bind(id)
        .bind(&at)
        .execute(&s.app.pool)
        .await
        .expect("evaluation updated");
        sqlx::query("UPDATE page_delivery SET delivered_at = $2::timestamptz WHERE page_id = $1")
            .bind(id)
            .bind(stamp(delivered))
            .execute(&s.app.pool)
            .await
            .expect("delivery updated");
    }
    // Failed attempts as the receiver saw them (it answered 500) for A's pages 3 and 4.
    let a_keys: Vec<String> = [&p3, &p4]
        .iter()
        .map(|p| p["id"].as_str().expect("an id").to_string())
        .collect();
    let failed = s
        .receiver
        .received()
        .iter()
        .filter(|r| r.status != 200 && a_keys.contains(&r.key))
        .count() as i64;
    assert!(failed >= 2, "page 3 failed once, page 4 at least once");
    // Reasons and urgencies by hand, from the pages as listed.
    let mut by_reason = std::collections::BTreeMap::<(String, String), i64>::new();
    for p in [&p1, &p2, &p3, &p4] {
        for r in p["new_reasons"].as_array().expect("new_reasons") {
            let code = r.as_str().expect("a code");
            let urgency = p["triggers"]
                .as_array()
                .expect("triggers")
                .iter()
                .find(|t| t["code"] == code)
                .and_then(|t| t["urgency"].as_str())
                .expect("the trigger's urgency");
            *by_reason
                .entry((code.to_string(), urgency.to_string()))
                .or_default() += 1;
        }
    }

    let window = "from=2026-11-10T00:00:00Z&to=2026-11-11T00:00:00Z";
    let (status, a) = s
        .get(&s.a, &format!("/api/v1/quality/consults?{window}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(
        a["totals"],
        json!({"pages": 4, "delivered": 3, "acknowledged": 2, "dead_lettered": 1, "retried": 2,
               "failed_attempts": failed})
    );
    let t = &a["timeliness_s"];
    assert!(close(&t["to_delivery_median"], 40.0), "{t}");
    assert!(close(&t["to_delivery_p90"], 56.0), "{t}");
    assert!(close(&t["to_acknowledgement_median"], 600.0), "{t}");
    assert!(close(&t["to_acknowledgement_p90"], 840.0), "{t}");
    assert_eq!(
        a["series"],
        json!([{"start": "2026-11-10T00:00:00Z", "pages": 4, "acknowledged": 2, "dead_lettered": 1}])
    );
    // The synthetic patients: borderline pages ECMO_BORDERLINE (urgent), eligible
    // ECMO_ELIGIBLE (emergent).
    assert_eq!(
        by_reason,
        [
            (("ECMO_BORDERLINE".to_string(), "urgent".to_string()), 3),
            (("ECMO_ELIGIBLE".to_string(), "emergent".to_string()), 1),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        a["by_reason"],
        json!([
            {"reason": "ECMO_BORDERLINE", "urgency": "urgent", "pages": 3},
            {"reason": "ECMO_ELIGIBLE", "urgency": "emergent", "pages": 1},
        ])
    );
    assert_eq!(
        a["by_urgency"],
        json!([{"urgency": "emergent", "pages": 1}, {"urgency": "urgent", "pages": 3}])
    );
    // B's page was written today, not on 2026-11-10: nothing for B in the window; the quality
    // team sees A's four.
    let (_, b) = s
        .get(&s.b, &format!("/api/v1/quality/consults?{window}"))
        .await;
    assert_eq!(b["totals"]["pages"], 0);
    let (_, b_today) = s.get(&s.b, "/api/v1/quality/consults").await;
    assert_eq!(b_today["totals"]["pages"], 1);
    assert_eq!(b_today["totals"]["delivered"], 1);
    let (_, q) = s
        .get(&s.quality, &format!("/api/v1/quality/consults?{window}"))
        .await;
    assert_eq!(q["totals"], a["totals"]);
    // The consult-timeliness MeasureReport: one group per statistic, scores in seconds.
    let (status, _, report) = s
        .get_fhir(&s.a, &format!("/api/v1/quality/consults?{window}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    fhir_r4(&report);
    assert_eq!(
        report["period"],
        json!({"start": "2026-11-10T00:00:00Z", "end": "2026-11-11T00:00:00Z"})
    );
    let groups = report["group"].as_array().expect("groups");
    let expected = [
        ("to-delivery-median", 3, 40.0),
        ("to-delivery-p90", 3, 56.0),
        ("to-acknowledgement-median", 2, 600.0),
        ("to-acknowledgement-p90", 2, 840.0),
    ];
    assert_eq!(groups.len(), expected.len());
    for (group, (name, observed, seconds)) in groups.iter().zip(expected) {
        assert_eq!(group["code"]["text"], name);
        assert_eq!(population(group, "initial-population"), Some(4), "{group}");
        assert_eq!(
            population(group, "measure-population"),
            Some(observed),
            "{group}"
        );
        assert!(close(&group["measureScore"]["value"], seconds), "{group}");
        assert_eq!(group["measureScore"]["code"], "s");
    }

    // The Measures behind them are published, each FHIR R4.
    let (status, _, bundle) = s.get_fhir(&s.a, "/api/v1/quality/measures").await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    fhir_r4(&bundle);
    let urls: Vec<&str> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["url"].as_str())
        .collect();
    assert_eq!(
        urls,
        [
            s.app.url("/api/v1/quality/measures/lrt-alert-acceptance"),
            s.app.url("/api/v1/quality/measures/lrt-consult-timeliness"),
        ]
    );
    for id in ["lrt-alert-acceptance", "lrt-consult-timeliness"] {
        let (status, _, m) = s
            .get_fhir(&s.b, &format!("/api/v1/quality/measures/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        fhir_r4(&m);
        assert_eq!(
            m["url"],
            s.app.url(&format!("/api/v1/quality/measures/{id}"))
        );
    }
    let (status, _, missing) = s.get_fhir(&s.a, "/api/v1/quality/measures/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

/// Shadow: the active (0.2.0) and shadow (0.1.0) evaluations of each call compared per field;
/// the figures worked out here from each pair read through `/api/v1/evaluations`; the
/// disagreeing pairs listed once each across pages of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_agreement_per_field_and_the_disagreements_paginated() {
    let s = setup().await;
    // Three patients as usual, and two without their ventilation (no Procedure): rule set
    // 0.2.0 screens only patients known to be ventilated (§9 D1), 0.1.0 does not.
    let mut patients = Vec::new();
    for (i, g) in [BORDERLINE, ELIGIBLE, STABLE].iter().enumerate() {
        let p = patient(&format!("s{i}"));
        s.hook(&s.a, &p, g).await;
        patients.push(p);
    }
    for (i, g) in [BORDERLINE, ELIGIBLE].iter().enumerate() {
        let p = patient(&format!("sv{i}"));
        let mut r = synthetic::patient_view(&p, g);
        r["prefetch"]["Procedure"] = Value::Null;
        let (status, body) = s.post(&s.a, PV, &r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        patients.push(p);
    }
    s.hook(&s.b, &patient("sb"), ELIGIBLE).await;

    // By hand: each pair's fields.
    let codes = |v: &Value, key: &str| -> Vec<String> {
        let mut out: Vec<String> = v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        x.as_str()
                            .or_else(|| x["code"].as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    };
    let mut agree = [0i64; 4];
    let mut disagreeing = Vec::new();
    for p in &patients {
        let (_, list) = s
            .get(&s.a, &format!("/api/v1/evaluations?patient={p}"))
            .await;
        let rows = list["evaluations"].as_array().expect("evaluations");
        assert_eq!(rows.len(), 2, "an active and a shadow evaluation");
        let id_of = |role: &str| {
            rows.iter()
                .find(|r| r["role"] == role)
                .and_then(|r| r["id"].as_str())
                .expect("the role's evaluation")
                .to_string()
        };
        let active = s.evaluation(&s.a, &id_of("active")).await["assessment"].clone();
        let shadow = s.evaluation(&s.a, &id_of("shadow")).await["assessment"].clone();
        let same = [
            active["ecmo_category"] == shadow["ecmo_category"],
            active["ecmo_urgency"] == shadow["ecmo_urgency"],
            codes(&active, "recommendations") == codes(&shadow, "recommendations"),
            codes(&active, "consult_triggers") == codes(&shadow, "consult_triggers"),
        ];
        for (n, same) in agree.iter_mut().zip(same) {
            *n += i64::from(same);
        }
        if same.contains(&false) {
            disagreeing.push(id_of("active"));
        }
    }
    assert!(
        !disagreeing.is_empty(),
        "0.1.0 and 0.2.0 differ on the unventilated patients"
    );
    disagreeing.sort();

    let (status, a) = s.get(&s.a, "/api/v1/quality/shadow").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["pairs"], 5);
    assert_eq!(a["all_agree"], 5 - disagreeing.len() as i64);
    let fields: Vec<(String, i64, i64)> = a["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["field"].as_str().expect("a name").to_string(),
                f["agree"].as_i64().expect("agree"),
                f["disagree"].as_i64().expect("disagree"),
            )
        })
        .collect();
    assert_eq!(
        fields,
        ["category", "urgency", "recommendations", "triggers"]
            .iter()
            .zip(agree)
            .map(|(f, n)| (f.to_string(), n, 5 - n))
            .collect::<Vec<_>>()
    );
    let v = &a["versions"][0];
    assert_eq!(
        (
            v["active"].as_str(),
            v["shadow"].as_str(),
            v["pairs"].as_i64()
        ),
        (Some("0.2.0"), Some("0.1.0"), Some(5))
    );
    // Pages of one: every disagreeing pair once, then no cursor.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/quality/shadow?limit=1&cursor={c}"),
            None => "/api/v1/quality/shadow?limit=1".to_string(),
        };
        let (status, page) = s.get(&s.a, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for d in page["disagreements"].as_array().expect("disagreements") {
            assert!(!d["fields"].as_array().expect("fields").is_empty());
            listed.push(
                d["active"]["evaluation_id"]
                    .as_str()
                    .expect("an id")
                    .to_string(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(listed.len() <= disagreeing.len(), "{listed:?}");
    }
    listed.sort();
    assert_eq!(listed, disagreeing);
    // B's one pair is B's; the quality team sees six.
    let (_, b) = s.get(&s.b, "/api/v1/quality/shadow").await;
    assert_eq!(b["pairs"], 1);
    let (_, q) = s.get(&s.quality, "/api/v1/quality/shadow").await;
    assert_eq!(q["pairs"], 6);
    // A cursor that this API did not give: 400 naming it.
    let (status, body) = s.get(&s.a, "/api/v1/quality/shadow?cursor=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

impl Setup {
    /// Sets when the evaluations (active and shadow) of the call `request` were created.
    async fn set_evaluated(&self, request: &Value, at: &str) {
        let done = sqlx::query(
            "UPDATE evaluation SET created_at = $2::timestamptz WHERE hook_instance = $1",
        )
        .bind(hook_instance(request))
        .bind(at)
        .execute(&self.app.pool)
        .await
        .expect("updated");
        assert_eq!(done.rows_affected(), 2, "an active and a shadow evaluation");
    }
}

/// Patients: each patient counted once per ECMO category, at its first time in it; a patient
/// first in a category before the window is not counted in it; another tenant's not at all.
///
/// Tenant A (times set afterwards): X borderline on 11-02 and 11-03, eligible on 11-04; Y
/// eligible on 11-03; Z stable (not indicated) on 11-02; W borderline on 10-30 (before the
/// window) and on 11-03. Tenant B: V borderline on 11-02.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_counted_at_their_first_time_in_each_category() {
    let s = setup().await;
    let (x, y, z, w, v) = (
        patient("x"),
        patient("y"),
        patient("z"),
        patient("w"),
        patient("v"),
    );
    for (who, p, gases, at) in [
        (&s.a, &x, BORDERLINE, "2026-11-02T10:00:00Z"),
        (&s.a, &x, BORDERLINE, "2026-11-03T10:00:00Z"),
        (&s.a, &x, ELIGIBLE, "2026-11-04T10:00:00Z"),
        (&s.a, &y, ELIGIBLE, "2026-11-03T11:00:00Z"),
        (&s.a, &z, STABLE, "2026-11-02T12:00:00Z"),
        (&s.a, &w, BORDERLINE, "2026-10-30T10:00:00Z"),
        (&s.a, &w, BORDERLINE, "2026-11-03T12:00:00Z"),
        (&s.b, &v, BORDERLINE, "2026-11-02T13:00:00Z"),
    ] {
        let (request, _) = s.hook(who, p, gases).await;
        s.set_evaluated(&request, at).await;
    }
    let (status, a) = s
        .get(
            &s.a,
            &format!("/api/v1/quality/patients?{WINDOW}&interval=day"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(
        a["by_category"],
        json!([
            {"category": "eligible", "patients": 2},
            {"category": "borderline", "patients": 1},
            {"category": "not_indicated", "patients": 1},
        ])
    );
    assert_eq!(
        a["series"],
        json!([
            {"start": "2026-11-02T00:00:00Z", "category": "borderline", "patients": 1},
            {"start": "2026-11-02T00:00:00Z", "category": "not_indicated", "patients": 1},
            {"start": "2026-11-03T00:00:00Z", "category": "eligible", "patients": 1},
            {"start": "2026-11-04T00:00:00Z", "category": "eligible", "patients": 1},
        ])
    );
    // By month, from October: W's borderline counts in October, X's in November.
    let (_, months) = s
        .get(
            &s.a,
            "/api/v1/quality/patients?from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z&interval=month",
        )
        .await;
    assert_eq!(
        months["series"],
        json!([
            {"start": "2026-10-01T00:00:00Z", "category": "borderline", "patients": 1},
            {"start": "2026-11-01T00:00:00Z", "category": "borderline", "patients": 1},
            {"start": "2026-11-01T00:00:00Z", "category": "eligible", "patients": 2},
            {"start": "2026-11-01T00:00:00Z", "category": "not_indicated", "patients": 1},
        ])
    );
    // The quality team: V too.
    let (_, q) = s
        .get(&s.quality, &format!("/api/v1/quality/patients?{WINDOW}"))
        .await;
    assert_eq!(
        q["by_category"],
        json!([
            {"category": "borderline", "patients": 2},
            {"category": "eligible", "patients": 2},
            {"category": "not_indicated", "patients": 1},
        ])
    );
}

/// Data quality: the items of the evaluations ranked by code and subject, counted by hand from
/// each evaluation's assessment; another tenant's not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_quality_items_are_ranked_by_code_and_subject() {
    let s = setup().await;
    // FiO2 0.5 sent with the unit %: read as a fraction, with a warning naming the observation.
    const FRACTION_AS_PERCENT: &[Gas] = &[("2026-11-30T12:00:00Z", 100.0, 0.5)];
    let mut ids = Vec::new();
    for (i, gases) in [BORDERLINE, STABLE, FRACTION_AS_PERCENT, BORDERLINE]
        .iter()
        .enumerate()
    {
        let p = patient(&format!("dq{i}"));
        let (_, _) = s.hook(&s.a, &p, gases).await;
        let (_, list) = s
            .get(
                &s.a,
                &format!("/api/v1/evaluations?patient={p}&role=active"),
            )
            .await;
        ids.push(
            list["evaluations"][0]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
    }
    // Two patients whose FiO2 was charted 3 hours before the PaO2 (the pairing window is
    // 60 minutes): no P/F, `missing_or_unpaired:fio2`.
    for i in 0..2 {
        let p = patient(&format!("dqu{i}"));
        let mut r = synthetic::patient_view(&p, BORDERLINE);
        for entry in r["prefetch"]["Observation"]["entry"]
            .as_array_mut()
            .expect("entries")
        {
            if entry["resource"]["code"]["coding"][0]["code"] == "3150-0" {
                entry["resource"]["effectiveDateTime"] = json!("2026-11-30T09:00:00Z");
            }
        }
        let (status, body) = s.post(&s.a, PV, &r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, list) = s
            .get(
                &s.a,
                &format!("/api/v1/evaluations?patient={p}&role=active"),
            )
            .await;
        ids.push(
            list["evaluations"][0]["id"]
                .as_str()
                .expect("an id")
                .to_string(),
        );
    }
    s.hook(&s.b, &patient("dqb"), FRACTION_AS_PERCENT).await;
    // By hand: code before the first `:`; the subject is the detail's leading concept name for
    // stale/conflict/missing/missing_or_unpaired, the detail for unmapped, else none.
    let mut expected = std::collections::BTreeMap::<(String, Option<String>), i64>::new();
    let mut with_items = 0;
    for id in &ids {
        let e = s.evaluation(&s.a, id).await;
        let items = e["assessment"]["data_quality"]
            .as_array()
            .expect("data_quality")
            .clone();
        with_items += i64::from(!items.is_empty());
        let mut seen = std::collections::BTreeSet::new();
        for item in &items {
            let item = item.as_str().expect("an item");
            let (code, detail) = item.split_once(':').unwrap_or((item, ""));
            let subject = match code {
                "stale" | "conflict" | "missing" | "missing_or_unpaired" => {
                    let concept: String = detail
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    (!concept.is_empty()).then_some(concept)
                }
                "unmapped" => Some(detail.to_string()),
                _ => None,
            };
            if seen.insert((code.to_string(), subject.clone())) {
                *expected.entry((code.to_string(), subject)).or_default() += 1;
            }
        }
    }
    assert_eq!(
        expected.get(&("fio2_fraction_with_percent_unit".into(), None)),
        Some(&1),
        "{expected:?}"
    );
    assert_eq!(
        expected.get(&("missing_or_unpaired".into(), Some("fio2".into()))),
        Some(&2),
        "{expected:?}"
    );
    let (status, a) = s.get(&s.a, "/api/v1/quality/data-quality").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["evaluations"], 6);
    assert_eq!(a["evaluations_with_items"], with_items);
    let got: std::collections::BTreeMap<(String, Option<String>), i64> = a["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            assert!(
                i["patients"] == i["evaluations"],
                "one evaluation per patient: {i}"
            );
            (
                (
                    i["code"].as_str().expect("a code").to_string(),
                    i["subject"].as_str().map(str::to_string),
                ),
                i["evaluations"].as_i64().expect("a count"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Ranked: counts never increase down the list.
    let counts: Vec<i64> = a["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["evaluations"].as_i64())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    assert_eq!(
        a["items"][0]["code"], "missing_or_unpaired",
        "{}",
        a["items"]
    );
    assert_eq!(a["items"][0]["subject"], "fio2");
    let (_, q) = s.get(&s.quality, "/api/v1/quality/data-quality").await;
    assert_eq!(q["evaluations"], 7);
}

/// Every `/api/v1/quality/…` operation of `openapi/openapi.yaml` is routed, has a metrics label,
/// and answers 200 with a body its document's schema accepts (JSON), or CSV when asked; odd but
/// well-formed parameters are answered 200 or 400, never 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_quality_answer_matches_the_openapi_document() {
    let s = setup().await;
    let (_, cards) = s.hook(&s.a, &patient("o1"), ELIGIBLE).await;
    s.feedback(
        &s.a,
        &cards[0],
        "overridden",
        "2026-12-01T10:00:00Z",
        Some(json!({"userComment": "seen"})),
    )
    .await;
    s.hook(&s.a, &patient("o2"), STABLE).await;
    let doc: Value = serde_saphyr::from_str(lrt_server::service::routes::health::OPENAPI)
        .expect("the OpenAPI document reads");
    let quality: Vec<(&String, &Value)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, item)| {
            path.starts_with("/api/v1/quality/")
                && item["get"]["responses"]["200"]["content"]["application/json"].is_object()
        })
        .collect();
    assert_eq!(
        quality.len(),
        6,
        "alerts, feedback, consults, shadow, patients, data-quality"
    );
    for (path, item) in quality {
        assert_ne!(
            lrt_server::service::routes::route_label(path),
            "other",
            "{path}"
        );
        let content = &item["get"]["responses"]["200"]["content"];
        let mut schema = content["application/json"]["schema"].clone();
        schema["components"] = doc["components"].clone();
        let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
        assert!(
            !validator.is_valid(&json!({"totals": {}})),
            "{path}: the schema checks"
        );
        let (status, body) = s.get(&s.quality, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{path}: {errors:?}\n{body:#}");
        assert!(content["text/csv"].is_object(), "{path} documents its CSV");
        let csv = s
            .app
            .http
            .get(s.app.url(path))
            .bearer_auth(s.a.token(&s.app.url("/api/v1")))
            .header("accept", "application/json;q=0.5, text/csv")
            .send()
            .await
            .expect("an answer");
        assert_eq!(csv.status(), StatusCode::OK, "{path}");
        let text = csv.text().await.expect("a body");
        assert!(
            text.starts_with("section,dimensions,measure,value\r\n"),
            "{path}: {text}"
        );
        for query in [
            "from=0001-01-01T00:00:00Z",
            "to=9999-12-31T23:59:59Z",
            "from=2026-12-31T23:59:60Z",
            "from=2026-11-01T00:00:00%2B14:00&to=2026-11-02T00:00:00-12:00&interval=month",
            "interval=",
            "tenant=%C3%A9",
            "limit=-1",
            "cursor=",
            "from=2026-11-01T00:00:00Z&from=2026-11-02T00:00:00Z",
        ] {
            let (status, body) = s.get(&s.quality, &format!("{path}?{query}")).await;
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{path}?{query}: {status} {body}"
            );
            if status == StatusCode::OK {
                let errors: Vec<String> = validator
                    .iter_errors(&body)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{path}?{query}: {errors:?}");
            } else {
                assert_eq!(body["resourceType"], "OperationOutcome", "{path}?{query}");
            }
        }
    }
}

/// Consults: the delay runs from the *first qualifying* evaluation: an earlier evaluation of the
/// same patient and tenant that carried the page's reason without paging counts, one before the
/// patient's previous page or of another tenant does not.
///
/// Patient Q (tenant A, borderline each time): call 1 pages (P0); call 2 is inside the repeat
/// window (no page); P0 is then moved to 11-08, so call 3 pages again (P2). Times: call 2 at
/// 11-10 10:00:00, call 3 and P2 at 10:10:00, P2 delivered at 10:10:05 and acknowledged at
/// 10:20:00. Tenant B evaluates a patient with the same id at 09:00:00 (no page: Q was paged).
/// From call 2: 605 s to delivery, 1,200 s to acknowledgement (from B's, 3,905 and 4,200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult_delays_run_from_the_first_qualifying_evaluation() {
    let s = setup().await;
    let q = patient("q");
    let (call1, _) = s.hook(&s.a, &q, BORDERLINE).await;
    let p0 = page_state(&s, &s.a, &q, "delivered").await;
    let (call2, _) = s.hook(&s.a, &q, BORDERLINE).await;
    let (_, list) = s.get(&s.a, &format!("/api/v1/pages?patient={q}")).await;
    assert_eq!(
        list["pages"].as_array().map(Vec::len),
        Some(1),
        "call 2 pages no one"
    );
    let p0_id: uuid::Uuid = p0["id"].as_str().expect("an id").parse().expect("a uuid");
    sqlx::query("UPDATE consult_page SET created_at = '2026-11-08T10:00:00Z' WHERE id = $1")
        .bind(p0_id)
        .execute(&s.app.pool)
        .await
        .expect("P0 moved");
    s.set_evaluated(&call1, "2026-11-08T10:00:00Z").await;
    let (call3, _) = s.hook(&s.a, &q, BORDERLINE).await;
    let pages = eventually(Duration::from_secs(10), || async {
        let (_, l) = s.get(&s.a, &format!("/api/v1/pages?patient={q}")).await;
        l["pages"].as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    assert!(pages, "call 3 pages again");
    let (other, _) = s.hook(&s.b, &q, BORDERLINE).await;
    s.set_evaluated(&other, "2026-11-10T09:00:00Z").await;
    s.set_evaluated(&call2, "2026-11-10T10:00:00Z").await;
    s.set_evaluated(&call3, "2026-11-10T10:10:00Z").await;
    let done = sqlx::query(
        "UPDATE consult_page SET created_at = '2026-11-10T10:10:00Z', \
           acknowledged_at = '2026-11-10T10:20:00Z' WHERE id <> $1 AND patient_id = $2",
    )
    .bind(p0_id)
    .bind(&q)
    .execute(&s.app.pool)
    .await
    .expect("P2 set");
    assert_eq!(done.rows_affected(), 1);
    assert!(
        eventually(Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM page_delivery d JOIN consult_page p ON p.id = d.page_id \
                 WHERE p.patient_id = $1 AND d.state = 'delivered'",
            )
            .bind(&q)
            .fetch_one(&s.app.pool)
            .await
            .is_ok_and(|n| n == 2)
        })
        .await,
        "P2 delivered"
    );
    sqlx::query(
        "UPDATE page_delivery SET delivered_at = '2026-11-10T10:10:05Z' \
         WHERE page_id IN (SELECT id FROM consult_page WHERE id <> $1 AND patient_id = $2)",
    )
    .bind(p0_id)
    .bind(&q)
    .execute(&s.app.pool)
    .await
    .expect("P2's delivery set");

    let (status, a) = s
        .get(
            &s.a,
            "/api/v1/quality/consults?from=2026-11-10T00:00:00Z&to=2026-11-11T00:00:00Z",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["totals"]["pages"], 1);
    let t = &a["timeliness_s"];
    assert!(close(&t["to_delivery_median"], 605.0), "{t}");
    assert!(close(&t["to_delivery_p90"], 605.0), "{t}");
    assert!(close(&t["to_acknowledgement_median"], 1200.0), "{t}");
}
