//! Tenancy on `/api/v1` (issue 8): two EHRs (issuers, each with its `tenant`) call the same
//! service; each reads and acts on its own evaluations and pages only, another tenant's are 404;
//! the quality team's issuer reads across tenants; an idempotency key is the caller's own.
//! Real service, real PostgreSQL, real FHIR server (Helios) as the EHR, a real webhook receiver,
//! ES384 JWTs whose JWK Sets real local HTTP servers publish.

use std::sync::OnceLock;
use std::time::Duration;

use lrt_auth::AuthConfig;
use lrt_e2e::cds_client::TenantCaller;
use lrt_e2e::fhir_server::FhirServer;
use lrt_e2e::pager::{PagerReceiver, eventually};
use lrt_e2e::service::TestApp;
use lrt_e2e::synthetic::{self, BORDERLINE, ELIGIBLE};
use lrt_server::service::config::EvaluationTime;
use lrt_server::service::paging::WebhookConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PV: &str = "/cds-services/lrt-patient-view";
const SECRET: &str = "test-only-webhook-secret";

fn fhir() -> &'static FhirServer {
    static SERVER: OnceLock<FhirServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        std::thread::spawn(FhirServer::start)
            .join()
            .expect("the FHIR server starts")
    })
}

struct Setup {
    app: TestApp,
    a: TenantCaller,
    b: TenantCaller,
    quality: TenantCaller,
    _receiver: PagerReceiver,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    lrt_fhir::client::install_crypto_provider();
    let a = TenantCaller::new("https://ehr-a.test.example", Some("hospital-a")).await;
    let b = TenantCaller::new("https://ehr-b.test.example", Some("hospital-b")).await;
    let quality = TenantCaller::new("https://quality.test.example", None).await;
    let receiver = PagerReceiver::start(SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("webhook");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut auth = AuthConfig::new(vec![a.issuer(), b.issuer(), quality.issuer()]);
    auth.allow_insecure_loopback_http = true;
    let (url, base, quality_iss) = (
        receiver.url.clone(),
        fhir().base.clone(),
        quality.client.iss.clone(),
    );
    let app = TestApp::spawn(move |c| {
        c.auth = Some(auth);
        c.quality_issuers = vec![quality_iss];
        c.evaluation_time = EvaluationTime::NewestBloodGas;
        c.fhir_allow = vec![base.clone()];
        c.ehr.fhir_base = Some(base);
        c.paging.webhook = Some(WebhookConfig {
            url,
            secret_file: Some(secret),
            secret_env: None,
            timeout_ms: 2_000,
        });
        c.paging.poll_interval_ms = 50;
    })
    .await;
    Setup {
        app,
        a,
        b,
        quality,
        _receiver: receiver,
        _dir: dir,
    }
}

impl Setup {
    async fn call(
        &self,
        who: &TenantCaller,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        aud_path: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(who.token(&self.app.url(aud_path)));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.expect("the service answers");
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, who: &TenantCaller, path: &str) -> (StatusCode, Value) {
        self.call(who, reqwest::Method::GET, path, None, "/api/v1")
            .await
    }

    async fn post_api(&self, who: &TenantCaller, path: &str) -> (StatusCode, Value) {
        self.call(
            who,
            reqwest::Method::POST,
            path,
            Some(&json!({})),
            "/api/v1",
        )
        .await
    }

    /// A patient-view call by `who` for a borderline synthetic patient (it pages).
    async fn hook(&self, who: &TenantCaller, patient: &str) -> Value {
        let (status, body) = self
            .call(
                who,
                reqwest::Method::POST,
                PV,
                Some(&synthetic::patient_view(patient, BORDERLINE)),
                PV,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
        let mut out: Vec<String> = list[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[field].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn patient(tag: &str) -> String {
    format!(
        "ten-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_and_acts_on_its_own_rows_and_the_quality_team_on_all() {
    let s = setup().await;
    let (pa, pb) = (patient("a"), patient("b"));
    s.hook(&s.a, &pa).await;
    s.hook(&s.b, &pb).await;

    // GET /api/v1/evaluations: own rows only (active and shadow); quality: both.
    let (status, list) = s.get(&s.a, "/api/v1/evaluations").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        Setup::ids(&list, "evaluations", "patient_id"),
        vec![pa.clone()]
    );
    let (_, list) = s.get(&s.b, "/api/v1/evaluations").await;
    assert_eq!(
        Setup::ids(&list, "evaluations", "patient_id"),
        vec![pb.clone()]
    );
    let (_, list) = s.get(&s.quality, "/api/v1/evaluations").await;
    let mut both = vec![pa.clone(), pb.clone()];
    both.sort();
    assert_eq!(Setup::ids(&list, "evaluations", "patient_id"), both);
    // Filtering by another tenant's patient finds nothing.
    let (_, list) = s
        .get(&s.a, &format!("/api/v1/evaluations?patient={pb}"))
        .await;
    assert_eq!(list["evaluations"], json!([]));

    // GET /api/v1/evaluations/{id}: another tenant's is 404, as if it did not exist.
    let (_, list) = s.get(&s.b, "/api/v1/evaluations?role=active").await;
    let b_eval = list["evaluations"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = s.get(&s.b, &format!("/api/v1/evaluations/{b_eval}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get(&s.a, &format!("/api/v1/evaluations/{b_eval}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome");
    let (status, _) = s
        .get(&s.quality, &format!("/api/v1/evaluations/{b_eval}"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // GET /api/v1/pages: one page each (borderline pages the LRT), both for quality.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (_, l) = s.get(&s.quality, "/api/v1/pages").await;
            l["pages"].as_array().is_some_and(|p| p.len() == 2)
        })
        .await,
        "both pages written"
    );
    let (_, pages) = s.get(&s.a, "/api/v1/pages").await;
    assert_eq!(Setup::ids(&pages, "pages", "patient_id"), vec![pa.clone()]);
    let (_, pages) = s.get(&s.b, "/api/v1/pages").await;
    assert_eq!(Setup::ids(&pages, "pages", "patient_id"), vec![pb.clone()]);
    let b_page = pages["pages"][0]["id"].as_str().unwrap().to_string();

    // GET /api/v1/pages/{id}, acknowledge, retry: another tenant's page is 404 and unchanged.
    let (status, _) = s.get(&s.a, &format!("/api/v1/pages/{b_page}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post_api(&s.a, &format!("/api/v1/pages/{b_page}/acknowledge"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post_api(&s.a, &format!("/api/v1/pages/{b_page}/retry"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = s.get(&s.b, &format!("/api/v1/pages/{b_page}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["acknowledged_at"].is_null(), "{page}");
    // Its own tenant acknowledges it; a retry of a page with nothing dead is a conflict.
    let (status, page) = s
        .post_api(&s.b, &format!("/api/v1/pages/{b_page}/acknowledge"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page["acknowledged_at"].is_null(), "{page}");
    let (status, _) = s
        .post_api(&s.b, &format!("/api/v1/pages/{b_page}/retry"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The quality team sees it too.
    let (status, _) = s.get(&s.quality, &format!("/api/v1/pages/{b_page}")).await;
    assert_eq!(status, StatusCode::OK);

    // GET /api/v1/rulesets holds no tenant data: every caller reads it.
    for who in [&s.a, &s.b, &s.quality] {
        let (status, _) = s.get(who, "/api/v1/rulesets").await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_the_callers_own() {
    let s = setup().await;
    let p = patient("shared");
    fhir()
        .client()
        .transaction(&synthetic::transaction(&p, "g", ELIGIBLE).to_string())
        .await
        .expect("loaded");
    let post = |who: &'static str| {
        let caller = if who == "a" { &s.a } else { &s.b };
        s.app
            .http
            .post(s.app.url("/api/v1/evaluations"))
            .bearer_auth(caller.token(&s.app.url("/api/v1")))
            .header("content-type", "application/json")
            .header("idempotency-key", "same-key")
            .body(json!({"patient": format!("Patient/{p}")}).to_string())
            .send()
    };
    let first_a: Value = post("a").await.unwrap().json().await.unwrap();
    assert_eq!(first_a["replayed"], false, "{first_a:#}");
    // The same key from tenant B is B's own evaluation, not A's replayed.
    let first_b: Value = post("b").await.unwrap().json().await.unwrap();
    assert_eq!(first_b["replayed"], false, "{first_b:#}");
    assert_ne!(first_b["evaluation_id"], first_a["evaluation_id"]);
    // Each tenant's retry replays its own.
    let again_a: Value = post("a").await.unwrap().json().await.unwrap();
    assert_eq!(again_a["replayed"], true);
    assert_eq!(again_a["evaluation_id"], first_a["evaluation_id"]);
    // And each reads only its own through the API.
    let (status, _) = s
        .get(
            &s.a,
            &format!(
                "/api/v1/evaluations/{}",
                first_b["evaluation_id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
